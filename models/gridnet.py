"""Multi-input multi-output GridNet: the multi-scale synthesis network of ST-MFNet (Sec. 3.3).

A GridNet (Fourure et al., BMVC 2017) is a grid of residual blocks: every row is one
resolution, information flows along rows through lateral blocks and between rows through
down-sampling blocks (first half of the columns) and up-sampling blocks (second half).
ST-MFNet feeds one input per row -- row 0 the x2 scale, row 1 full scale, row 2 half
scale -- and reads its output from row 1 only (``outrow=(1,)``).

Attribute names (``lateral_{row}_{col}``, ``down_{row}_{col}``, ``up_{row}_{col}``,
``lateral_final_{row}``) are the state-dict keys of the published checkpoints.

Under autocast the output rows stay in float32: they carry the picture itself, and a 16-bit mantissa there costs
0.2 dB PSNR (bfloat16, the student on the shipped clip), while the other rows lose nothing measurable.
"""
from typing import List, Optional, Sequence

import torch
from torch import Tensor, nn


class LateralBlock(nn.Module):
    """Residual PReLU-conv-PReLU-conv block at constant resolution; a 3x3 conv projects the shortcut."""

    def __init__(self, ch_in: int, ch_out: int) -> None:
        super().__init__()
        self.f = nn.Sequential(
            nn.PReLU(),
            nn.Conv2d(ch_in, ch_out, kernel_size=3, padding=1),
            nn.PReLU(),
            nn.Conv2d(ch_out, ch_out, kernel_size=3, padding=1),
        )
        if ch_in != ch_out:
            self.conv = nn.Conv2d(ch_in, ch_out, kernel_size=3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        shortcut = self.conv(x) if hasattr(self, "conv") else x
        return self.f(x) + shortcut


class DownSamplingBlock(nn.Module):
    """Halves the resolution: PReLU, stride-2 conv, PReLU, conv."""

    def __init__(self, ch_in: int, ch_out: int) -> None:
        super().__init__()
        self.f = nn.Sequential(
            nn.PReLU(),
            nn.Conv2d(ch_in, ch_out, kernel_size=3, stride=2, padding=1),
            nn.PReLU(),
            nn.Conv2d(ch_out, ch_out, kernel_size=3, padding=1),
        )

    def forward(self, x: Tensor, residual: Optional[Tensor] = None) -> Tensor:
        """The block's output, plus ``residual`` (of the output's shape) if given."""
        output = self.f(x)
        return output if residual is None else output + residual


class UpSamplingBlock(nn.Module):
    """Doubles the resolution: bilinear x2 (align_corners=False), PReLU, conv, PReLU, conv."""

    def __init__(self, ch_in: int, ch_out: int) -> None:
        super().__init__()
        self.f = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            nn.PReLU(),
            nn.Conv2d(ch_in, ch_out, kernel_size=3, padding=1),
            nn.PReLU(),
            nn.Conv2d(ch_out, ch_out, kernel_size=3, padding=1),
        )

    def forward(self, x: Tensor, residual: Optional[Tensor] = None) -> Tensor:
        """The block's output, plus ``residual`` (of the output's shape) if given."""
        output = self.f(x)
        return output if residual is None else output + residual


class MIMOGridNet(nn.Module):
    """GridNet with one input per row and outputs read from the rows in ``outrow``.

    Row ``r + 1`` has half the resolution of row ``r``. ``n_col`` columns: the first
    ``n_col // 2`` go top-down (row r-1 is down-sampled into row r), the others bottom-up
    (row r+1 is up-sampled into row r).
    """

    def __init__(
        self,
        in_chs: Sequence[int],
        out_chs: Sequence[int],
        grid_chs: Sequence[int] = (32, 64, 96),
        n_row: int = 3,
        n_col: int = 6,
        outrow: Sequence[int] = (0, 1, 2),
    ) -> None:
        super().__init__()
        if len(grid_chs) != n_row or len(in_chs) != n_row:
            raise ValueError(
                f"need one grid and one input channel count per row: n_row={n_row}, "
                f"grid_chs={tuple(grid_chs)}, in_chs={tuple(in_chs)}"
            )
        if len(out_chs) != len(outrow):
            raise ValueError(
                f"need one output channel count per output row: out_chs={tuple(out_chs)}, outrow={tuple(outrow)}"
            )
        self.n_row = n_row
        self.n_col = n_col
        self.outrow = tuple(outrow)
        half = n_col // 2

        for r, n_ch in enumerate(grid_chs):
            setattr(self, f"lateral_{r}_0", LateralBlock(in_chs[r], n_ch))
            for c in range(1, n_col):
                setattr(self, f"lateral_{r}_{c}", LateralBlock(n_ch, n_ch))
        for r, (upper, lower) in enumerate(zip(grid_chs[:-1], grid_chs[1:])):
            for c in range(half):
                setattr(self, f"down_{r}_{c}", DownSamplingBlock(upper, lower))
        for r, (lower, upper) in enumerate(zip(grid_chs[1:], grid_chs[:-1])):
            for c in range(half):
                setattr(self, f"up_{r}_{c}", UpSamplingBlock(lower, upper))
        for r, n_out in zip(outrow, out_chs):
            setattr(self, f"lateral_final_{r}", LateralBlock(grid_chs[r], n_out))

    def forward(self, *inputs: Tensor) -> List[Tensor]:
        if len(inputs) != self.n_row:
            raise ValueError(f"MIMOGridNet takes one input per row ({self.n_row}), got {len(inputs)}")
        for upper, lower in zip(inputs[:-1], inputs[1:]):
            if upper.shape[-2:] != (2 * lower.shape[-2], 2 * lower.shape[-1]):
                raise ValueError(
                    f"each row must have half the resolution of the row above, got {[tuple(x.shape) for x in inputs]}"
                )
        half = self.n_col // 2
        column = list(inputs)
        for c in range(half):
            for r in range(self.n_row):
                column[r] = self._block(f"lateral_{r}_{c}", r, column[r])
                if r > 0:
                    column[r] = self._block(f"down_{r - 1}_{c}", r, column[r - 1], residual=column[r])
        # After the turn, information only moves from row r + 1 into row r, so rows above the first output row can
        # no longer reach an output: skipping them changes no output or gradient (their blocks get none either way).
        for c in range(half, self.n_col):
            for r in reversed(range(min(self.outrow), self.n_row)):
                column[r] = self._block(f"lateral_{r}_{c}", r, column[r])
                if r < self.n_row - 1:
                    column[r] = self._block(f"up_{r}_{c - half}", r, column[r + 1], residual=column[r])
        return [self._block(f"lateral_final_{r}", r, column[r]) for r in self.outrow]

    def _block(self, name: str, row: int, x: Tensor, residual: Optional[Tensor] = None) -> Tensor:
        """Block ``name``, whose output lands in ``row``; in float32 for an output row under autocast."""
        block = getattr(self, name)
        arguments = {} if residual is None else {"residual": residual}
        if row not in self.outrow or not torch.is_autocast_enabled(x.device.type):
            return block(x, **arguments)
        with torch.autocast(x.device.type, enabled=False):
            return block(_widened(x), **{key: _widened(value) for key, value in arguments.items()})


def _widened(x: Tensor) -> Tensor:
    """``x`` in float32 if autocast made it 16-bit, else as it is."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
