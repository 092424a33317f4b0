"""AdaCoF: adaptive collaboration of flows (Lee et al., CVPR 2020), the warping op of ST-MFNet (Sec. 3.2).

Every output pixel (i, j) is a weighted sum over an F x F grid of taps (k, l), each tap sampling the padded frame
bilinearly at its own offset (alpha, beta):

    out[b, c, i, j] = sum_{k,l} weight[b, kF+l, i, j] * bilinear(frame[b, c], i + k*d + alpha, j + l*d + beta)

Semantics kept from the original CUDA kernel (they change the numbers, so they are part of the contract):
- the integer part of an offset is a C-style ``(int)`` cast, i.e. truncation toward zero, not floor; for an offset
  in (-1, 0) the fraction is negative and the "bilinear" weights extrapolate from pixels p and p+1;
- the two corner rows and two corner columns are clamped to the padded frame independently;
- the backward pass gives no gradient to the frame (the original allocated it and never wrote it), sums the weight
  and offset gradients over the first three channels only (its channel loop was hard-coded to 3; the models always
  pass RGB), and differentiates the offsets with the integer parts held fixed.
"""
import math
import warnings

import torch

from cupy_module._cuda import autocast_backward, autocast_forward, check_float_tensors, launch, use_cuda_kernel

# Taps per band of output rows in the CPU path. A band's indices, fractions and corner weights (about 40 bytes a
# tap) then stay in the last-level cache; much smaller bands pay Python and dispatch overhead band after band.
_CPU_BAND_TAPS = 2**18


def adacof(frame: torch.Tensor, weight: torch.Tensor, offset_i: torch.Tensor, offset_j: torch.Tensor,
           dilation: int) -> torch.Tensor:
    """Warp an already padded ``frame`` (B, C, H+(F-1)d, W+(F-1)d) with per-pixel kernels.

    ``weight``, ``offset_i`` (vertical) and ``offset_j`` (horizontal) are (B, F*F, H, W), channel k*F+l being tap
    row k, column l. Returns (B, C, H, W).

    Under ``torch.compile`` and ``torch.onnx.export`` the forward is :func:`adacof_traceable` (standard tensor ops);
    the frame is detached there so that autograd gives the original's gradients for RGB frames.
    """
    if torch.compiler.is_compiling():
        return adacof_traceable(frame.detach(), weight, offset_i, offset_j, dilation)
    return FunctionAdaCoF.apply(frame, weight, offset_i, offset_j, dilation)


@autocast_forward
def adacof_traceable(frame: torch.Tensor, weight: torch.Tensor, offset_i: torch.Tensor, offset_j: torch.Tensor,
                     dilation: int) -> torch.Tensor:
    """:func:`adacof`'s forward written with gathers and element-wise ops only.

    Compilers fuse it, and it exports to a compact graph of standard ONNX operators (Cast, Clip, Gather, Mul,
    ReduceSum), so any ONNX runtime can run it. The table indices and corner weights of all taps are computed at
    once (about five times the memory of ``weight``), then the taps are gathered and summed one by one. Same numbers
    as the kernel up to float rounding: integer parts by casting to int32 (the kernel's C ``(int)`` cast,
    truncation toward zero) and the kernel's independently clamped corners (see ``_corner_quads``).
    """
    _checked_inputs(frame, weight, offset_i, offset_j, dilation)
    batch, channels, padded_h, padded_w = frame.shape
    num_taps, height, width = weight.shape[1:]
    kernel_size = math.isqrt(num_taps)
    quads = _corner_quads(frame)
    row_length = padded_w + 1
    device, index_dtype = frame.device, torch.int32
    taps = torch.arange(num_taps, device=device, dtype=index_dtype).view(1, num_taps, 1, 1)
    # Corner row and column of each tap without its offset, plus one for the table's replicate border.
    rows = torch.arange(height, device=device, dtype=index_dtype).view(1, 1, height, 1) + (taps // kernel_size) * dilation + 1
    columns = torch.arange(width, device=device, dtype=index_dtype).view(1, 1, 1, width) + (taps % kernel_size) * dilation + 1
    first_rows = torch.arange(batch, device=device, dtype=index_dtype).view(batch, 1, 1, 1) * ((padded_h + 1) * row_length)
    whole_i, whole_j = offset_i.to(index_dtype), offset_j.to(index_dtype)
    index = first_rows + (whole_i + rows).clamp(0, padded_h) * row_length + (whole_j + columns).clamp(0, padded_w)
    frac_i, frac_j = offset_i - whole_i.to(offset_i.dtype), offset_j - whole_j.to(offset_j.dtype)
    lower = weight * frac_i
    upper = weight - lower
    upper_right, lower_right = upper * frac_j, lower * frac_j
    # (B, T, H, W, 4) in the order of the quads: top-left, bottom-left, top-right, bottom-right.
    coefficients = torch.stack((upper - upper_right, lower - lower_right, upper_right, lower_right), dim=-1)
    output = frame.new_zeros(batch * height * width, channels)
    for tap in range(num_taps):
        corners = quads.index_select(0, index[:, tap].reshape(-1))  # (B*H*W, 4, C)
        output = output + (corners * coefficients[:, tap].reshape(-1, 4, 1)).sum(dim=1)
    return output.view(batch, height, width, channels).permute(0, 3, 1, 2)


def _corner_quads(frame: torch.Tensor) -> torch.Tensor:
    """The four bilinear corners of every pixel of the frame replicate-padded by one: (B*(Hp+1)*(Wp+1), 4, C).

    Row (y, x) holds padded[y, x], padded[y+1, x], padded[y, x+1], padded[y+1, x+1] (top-left, bottom-left,
    top-right, bottom-right). For a corner row r = i + k*d + trunc(alpha), table row clamp(r + 1, 0, Hp) holds exactly
    the kernel's rows clamp(r, 0, Hp-1) and clamp(r + 1, 0, Hp-1), and likewise for columns.
    """
    padded = torch.nn.functional.pad(frame, (1, 1, 1, 1), mode="replicate").permute(0, 2, 3, 1)
    quads = torch.stack(
        (padded[:, :-1, :-1], padded[:, 1:, :-1], padded[:, :-1, 1:], padded[:, 1:, 1:]), dim=3
    )  # (B, Hp+1, Wp+1, 4, C)
    return quads.reshape(-1, 4, frame.shape[1])


class FunctionAdaCoF(torch.autograd.Function):
    """The original autograd entry point: ``FunctionAdaCoF.apply(input, weight, offset_i, offset_j, dilation)``."""

    @staticmethod
    @autocast_forward
    def forward(ctx, frame, weight, offset_i, offset_j, dilation):
        frame, weight, offset_i, offset_j = _checked_inputs(frame, weight, offset_i, offset_j, dilation)
        ctx.save_for_backward(frame, weight, offset_i, offset_j)
        ctx.dilation = dilation
        if use_cuda_kernel(frame):
            return _forward_cuda(frame, weight, offset_i, offset_j, dilation)
        return _forward_torch(frame, weight, offset_i, offset_j, dilation)

    @staticmethod
    @autocast_backward
    def backward(ctx, grad_output):
        frame, weight, offset_i, offset_j = ctx.saved_tensors
        grad_output = grad_output.contiguous()
        if use_cuda_kernel(frame):
            grads = _backward_cuda(grad_output, frame, weight, offset_i, offset_j, ctx.dilation)
        else:
            grads = _backward_torch(grad_output, frame, weight, offset_i, offset_j, ctx.dilation)
        grad_weight, grad_offset_i, grad_offset_j = grads
        # No gradient for the frame (see the module docstring) nor for the integer dilation.
        return None, grad_weight, grad_offset_i, grad_offset_j, None


def _checked_inputs(frame, weight, offset_i, offset_j, dilation):
    check_float_tensors("adacof", frame=frame, weight=weight, offset_i=offset_i, offset_j=offset_j)
    if weight.shape != offset_i.shape or weight.shape != offset_j.shape:
        raise ValueError(
            f"adacof: weight {tuple(weight.shape)}, offset_i {tuple(offset_i.shape)} and offset_j "
            f"{tuple(offset_j.shape)} must have the same shape"
        )
    if isinstance(dilation, bool) or not isinstance(dilation, int) or dilation < 1:
        raise ValueError(f"adacof: dilation must be a positive int, got {dilation!r}")
    kernel_size = math.isqrt(weight.shape[1])
    if kernel_size * kernel_size != weight.shape[1]:
        raise ValueError(f"adacof: weight has {weight.shape[1]} channels, which is not F*F for a kernel size F")
    border = (kernel_size - 1) * dilation
    expected = (weight.shape[2] + border, weight.shape[3] + border)
    if tuple(frame.shape[2:]) != expected:
        raise ValueError(
            f"adacof: frame {tuple(frame.shape)} must be padded to H+(F-1)*d x W+(F-1)*d = {expected[0]}x"
            f"{expected[1]} for weight {tuple(weight.shape)} (F={kernel_size}, dilation={dilation})"
        )
    if use_cuda_kernel(frame):
        return frame.contiguous(), weight.contiguous(), offset_i.contiguous(), offset_j.contiguous()
    return frame, weight, offset_i, offset_j


def _pixel_major(tensor: torch.Tensor, rows: slice) -> torch.Tensor:
    """Rows ``rows`` of a (T, H, W) map as (R, W, T); free for a map cut from a channels_last (B, T, H, W) tensor."""
    return tensor[:, rows].permute(1, 2, 0).contiguous()


def _pixel_table(frame: torch.Tensor, channels: int) -> torch.Tensor:
    """The (C, Hp, Wp) frame replicate-padded by one pixel as ((Hp+2)*(Wp+2), channels) rows, zero-filled past C."""
    padded = torch.nn.functional.pad(frame.unsqueeze(0), (1, 1, 1, 1), mode="replicate")[0]
    if channels > frame.shape[0]:
        padded = torch.nn.functional.pad(padded, (0, 0, 0, 0, 0, channels - frame.shape[0]))
    return padded.permute(1, 2, 0).contiguous().view(-1, channels)


class _BandedTaps:
    """Where every tap of one (C, Hp, Wp) frame samples, band of output rows by band, pixel-major.

    Taps index a table of the frame replicate-padded by one pixel, one row per pixel (``_pixel_table``). A tap
    whose top-left corner is row i has its other corners at rows i + (Wp+2), i + 1 and i + (Wp+2) + 1, so the four
    corners are four shifted views of the table (``corners``), all read with the same index; the padding makes
    index clamp(top, -1, Hp-1) + 1 (likewise for columns) give exactly the original's independently clamped
    corners top and top+1.

    Every per-band tensor lives in a buffer allocated once per call: allocating and freeing them band after band
    cost as much as the arithmetic (the allocator hands back fresh pages).
    """

    def __init__(self, frame: torch.Tensor, num_taps: int, height: int, width: int, dilation: int) -> None:
        self.padded_h, self.padded_w = frame.shape[1:]
        self.row_length = self.padded_w + 2
        table_length = (self.padded_h + 2) * self.row_length
        self.table_rows = table_length - (self.row_length + 1)
        self.height = height
        self.rows_per_band = max(1, min(height, _CPU_BAND_TAPS // max(width * num_taps, 1)))
        # 32-bit index arithmetic halves its memory traffic whenever the table has fewer than 2**31 rows.
        index_dtype = torch.int32 if table_length < 2**31 else torch.int64
        device = frame.device
        kernel_size = math.isqrt(num_taps)
        taps = torch.arange(num_taps, device=device, dtype=index_dtype)
        # Table row and column of each tap relative to the band's first row, including the padding's shift.
        band_rows = torch.arange(self.rows_per_band, device=device, dtype=index_dtype).view(-1, 1, 1)
        self.row_offsets = band_rows + (taps // kernel_size) * dilation + 1  # (rows_per_band, 1, T)
        columns = torch.arange(width, device=device, dtype=index_dtype).view(1, -1, 1)
        self.column_offsets = columns + (taps % kernel_size) * dilation + 1  # (1, W, T)
        band_shape = (self.rows_per_band, width, num_taps)
        self._rows = torch.empty(band_shape, device=device, dtype=index_dtype)
        self._columns = torch.empty_like(self._rows)
        self._frac_alpha = frame.new_empty(band_shape)
        self._frac_beta = frame.new_empty(band_shape)
        self._weights = frame.new_empty(4, *band_shape)
        self._scaled_right = frame.new_empty(band_shape)
        self._scaled_left = frame.new_empty(band_shape)

    def corners(self, table: torch.Tensor) -> tuple:
        """The views of a ``_pixel_table`` read by top-left, bottom-left, top-right and bottom-right corners (views of
        ``table`` itself, valid as long as it is)."""
        return tuple(table[shift:shift + self.table_rows] for shift in (0, self.row_length, 1, self.row_length + 1))

    def bands(self):
        """Slices of output rows, one band each."""
        for start in range(0, self.height, self.rows_per_band):
            yield slice(start, min(start + self.rows_per_band, self.height))

    def sample(self, alpha: torch.Tensor, beta: torch.Tensor, rows: slice, first_row: int = 0):
        """Table indices (R*W*T,) and offset fractions (R, W, T) for offsets ``alpha``, ``beta`` of shape (R, W, T).

        ``rows`` are output rows counted from ``first_row``. All three results are views of this object's band
        buffers: valid until the next call."""
        count = rows.stop - rows.start
        origin = first_row + rows.start
        table_row, table_col = self._rows[:count], self._columns[:count]
        frac_alpha, frac_beta = self._frac_alpha[:count], self._frac_beta[:count]
        # Float-to-int conversion truncates toward zero, like the original's C (int) cast.
        table_row.copy_(alpha)
        table_col.copy_(beta)
        torch.sub(alpha, table_row, out=frac_alpha)
        torch.sub(beta, table_col, out=frac_beta)
        # Rows are relative to the band's first row until the final index, so the clamp bounds shift with it.
        table_row.add_(self.row_offsets[:count]).clamp_(-origin, self.padded_h - origin)
        table_col.add_(self.column_offsets).clamp_(0, self.padded_w)
        index = table_col.add_(table_row, alpha=self.row_length).add_(origin * self.row_length)
        return index.view(-1), frac_alpha, frac_beta

    def corner_weights(self, frac_alpha: torch.Tensor, frac_beta: torch.Tensor,
                       scale: torch.Tensor) -> torch.Tensor:
        """``scale`` times the bilinear weights of the four corners: (4, R, W, T) in the order of ``corners``.

        A view of this object's band buffer: valid until the next call."""
        count = scale.shape[0]
        weights = self._weights[:, :count]
        top_left, bottom_left, top_right, bottom_right = weights.unbind(0)
        right = torch.mul(scale, frac_beta, out=self._scaled_right[:count])
        left = torch.sub(scale, right, out=self._scaled_left[:count])
        torch.mul(left, frac_alpha, out=bottom_left)
        torch.sub(left, bottom_left, out=top_left)
        torch.mul(right, frac_alpha, out=bottom_right)
        torch.sub(right, bottom_right, out=top_right)
        return weights

    def corner_matrices(self, index: torch.Tensor, weights: torch.Tensor) -> list[torch.Tensor]:
        """Per corner, the sparse (pixels, table rows) matrix holding its ``weights`` (4, R, W, T) at ``index``.

        Times that corner's table it sums the corner's share of every tap into its output pixel, reading the frame
        where the taps land instead of first copying 4*C values per tap out of it. The matrices hold ``index`` and
        ``weights`` themselves, so they are valid only as long as those buffers are."""
        num_taps = weights.shape[-1]
        size = (index.shape[0] // num_taps, self.table_rows)
        row_starts = torch.arange(0, index.shape[0] + 1, num_taps, device=index.device, dtype=index.dtype)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
            return [torch.sparse_csr_tensor(row_starts, index, corner.reshape(-1), size=size, check_invariants=False)
                    for corner in weights]


def _forward_torch(frame, weight, offset_i, offset_j, dilation):
    batch, channels = frame.shape[:2]
    num_taps, height, width = weight.shape[1:]
    # Pixel-major (B, H, W, C) result, returned as a channels_last (B, C, H, W) view.
    output = frame.new_empty(batch, height, width, channels)
    RowWarp(frame, dilation)(weight, offset_i, offset_j, 0, output)
    return output.permute(0, 3, 1, 2)


class RowWarp:
    """The CPU forward for one already padded frame, a band of output rows at a time.

    A caller can make the kernels of one band, warp with them and drop them (``models/banded_warp.py``); the
    frame's pixel tables are built once. Same numbers as warping all rows at once.
    """

    def __init__(self, frame: torch.Tensor, dilation: int) -> None:
        self.frame, self.dilation = frame, dilation
        self.tables = [_pixel_table(item, frame.shape[1]) for item in frame]

    def __call__(self, weight: torch.Tensor, offset_i: torch.Tensor, offset_j: torch.Tensor, first_row: int,
                 output: torch.Tensor) -> None:
        """Output rows ``first_row`` onwards, one per row of ``weight`` (B, F*F, R, W), into ``output`` (B, R, W, C)."""
        channels = self.frame.shape[1]
        num_taps, height, width = weight.shape[1:]
        for b, table in enumerate(self.tables):
            taps = _BandedTaps(self.frame[b], num_taps, height, width, self.dilation)
            corners = taps.corners(table)
            for rows in taps.bands():
                index, frac_alpha, frac_beta = taps.sample(
                    _pixel_major(offset_i[b], rows), _pixel_major(offset_j[b], rows), rows, first_row
                )
                coefficients = taps.corner_weights(frac_alpha, frac_beta, _pixel_major(weight[b], rows))
                band = output[b, rows].view(-1, channels)
                for corner, (matrix, corner_table) in enumerate(zip(taps.corner_matrices(index, coefficients),
                                                                    corners)):
                    # The first corner overwrites the band (beta=0 ignores its old contents), the others add to it.
                    torch.addmm(band, matrix, corner_table, beta=0 if corner == 0 else 1, out=band)


def _backward_torch(grad_output, frame, weight, offset_i, offset_j, dilation):
    # Only the first three channels contribute, as in the original kernels (identical for RGB frames). They are
    # zero-padded to four so that a pixel is 16 bytes (float32): viewed as one complex128 value, a table lookup is
    # a 1-D gather, several times faster in PyTorch than gathering short rows.
    channels, packed_channels = min(frame.shape[1], 3), 4
    num_taps, height, width = weight.shape[1:]
    grads = tuple(weight.new_empty(weight.shape[0], height, width, num_taps) for _ in range(3))
    for item in range(weight.shape[0]):
        taps = _BandedTaps(frame[item], num_taps, height, width, dilation)
        packed = _pixel_table(frame[item, :channels], packed_channels).view(torch.complex128).squeeze(-1)
        corners = taps.corners(packed)
        band_grad = frame.new_zeros(taps.rows_per_band * width, packed_channels, 1)
        corner_sums = frame.new_empty(4, taps.rows_per_band * width, num_taps, 1)
        gathered = packed.new_empty(taps.rows_per_band * width * num_taps, *packed.shape[1:])
        for rows in taps.bands():
            index, a, b = taps.sample(_pixel_major(offset_i[item], rows), _pixel_major(offset_j[item], rows), rows)
            pixels = index.shape[0] // num_taps
            incoming = grad_output[item, :channels, rows].permute(1, 2, 0)  # (R, W, C)
            band_grad[:pixels, :channels, 0] = incoming.reshape(pixels, channels)
            # Each corner's values dotted with the incoming gradient of their output pixel: (R, W, T) each.
            for table, corner_sum in zip(corners, corner_sums):
                values = torch.index_select(table, 0, index, out=gathered[:index.shape[0]])
                torch.bmm(values.view(frame.dtype).view(pixels, num_taps, packed_channels), band_grad[:pixels],
                          out=corner_sum[:pixels])
            tl, bl, tr, br = corner_sums[:, :pixels].view(4, *a.shape)
            tap_weight = _pixel_major(weight[item], rows)
            grad_weight, grad_alpha, grad_beta = (grad[item, rows] for grad in grads)
            # The three sums of the CUDA kernel: the bilinear sample, and its derivatives along i and j (a, b: the
            # offsets' fractions) times the tap's weight.
            grad_weight.copy_(tl * (1 - a) * (1 - b) + bl * a * (1 - b) + tr * (1 - a) * b + br * a * b)
            grad_alpha.copy_(tap_weight * ((bl - tl) * (1 - b) + (br - tr) * b))
            grad_beta.copy_(tap_weight * ((tr - tl) * (1 - a) + (br - bl) * a))
    return tuple(grad.permute(0, 3, 1, 2) for grad in grads)


_CUDA_SOURCE = r"""
// Shared by forward and backward: the four clamped corners and the truncated-offset fractions of one tap.
struct Tap {
    long long top_left, bottom_left, top_right, bottom_right;  // flat offsets into one padded channel
    scalar_t frac_i, frac_j;
};

__device__ Tap make_tap(scalar_t alpha, scalar_t beta, long long row, long long col,
                        long long padded_h, long long padded_w) {
    const long long whole_i = (long long) (int) alpha;  // C cast: truncation toward zero, as the original
    const long long whole_j = (long long) (int) beta;
    long long top = row + whole_i, bottom = row + whole_i + 1;
    long long left = col + whole_j, right = col + whole_j + 1;
    top = min(max(top, 0LL), padded_h - 1);
    bottom = min(max(bottom, 0LL), padded_h - 1);
    left = min(max(left, 0LL), padded_w - 1);
    right = min(max(right, 0LL), padded_w - 1);
    Tap tap;
    tap.top_left = top * padded_w + left;
    tap.bottom_left = bottom * padded_w + left;
    tap.top_right = top * padded_w + right;
    tap.bottom_right = bottom * padded_w + right;
    tap.frac_i = alpha - (scalar_t) whole_i;
    tap.frac_j = beta - (scalar_t) whole_j;
    return tap;
}

extern "C" __global__ void adacof_forward(
    const long long n, const scalar_t* frame, const scalar_t* weight, const scalar_t* offset_i,
    const scalar_t* offset_j, scalar_t* output, const long long channels, const long long height,
    const long long width, const long long kernel_size, const long long dilation
) {
    const long long padded_h = height + (kernel_size - 1) * dilation;
    const long long padded_w = width + (kernel_size - 1) * dilation;
    const long long taps = kernel_size * kernel_size;
    for (long long index = blockIdx.x * (long long) blockDim.x + threadIdx.x; index < n;
         index += (long long) blockDim.x * gridDim.x) {
        const long long j = index % width;
        const long long i = (index / width) % height;
        const long long c = (index / width / height) % channels;
        const long long b = index / width / height / channels;
        const scalar_t* plane = frame + (b * channels + c) * padded_h * padded_w;
        scalar_t sum = 0;
        for (long long t = 0; t < taps; ++t) {
            const long long at = ((b * taps + t) * height + i) * width + j;
            const Tap tap = make_tap(offset_i[at], offset_j[at], i + (t / kernel_size) * dilation,
                                     j + (t % kernel_size) * dilation, padded_h, padded_w);
            sum += weight[at] * (
                plane[tap.top_left] * (1 - tap.frac_i) * (1 - tap.frac_j)
                + plane[tap.bottom_left] * tap.frac_i * (1 - tap.frac_j)
                + plane[tap.top_right] * (1 - tap.frac_i) * tap.frac_j
                + plane[tap.bottom_right] * tap.frac_i * tap.frac_j);
        }
        output[index] = sum;
    }
}

// One thread per (b, tap, i, j): gradients of weight and both offsets, summed over channels 0..2 (original).
extern "C" __global__ void adacof_backward(
    const long long n, const scalar_t* grad_output, const scalar_t* frame, const scalar_t* weight,
    const scalar_t* offset_i, const scalar_t* offset_j, scalar_t* grad_weight, scalar_t* grad_offset_i,
    scalar_t* grad_offset_j, const long long channels, const long long height, const long long width,
    const long long kernel_size, const long long dilation
) {
    const long long padded_h = height + (kernel_size - 1) * dilation;
    const long long padded_w = width + (kernel_size - 1) * dilation;
    const long long taps = kernel_size * kernel_size;
    const long long used_channels = min(channels, 3LL);
    for (long long index = blockIdx.x * (long long) blockDim.x + threadIdx.x; index < n;
         index += (long long) blockDim.x * gridDim.x) {
        const long long j = index % width;
        const long long i = (index / width) % height;
        const long long t = (index / width / height) % taps;
        const long long b = index / width / height / taps;
        const Tap tap = make_tap(offset_i[index], offset_j[index], i + (t / kernel_size) * dilation,
                                 j + (t % kernel_size) * dilation, padded_h, padded_w);
        scalar_t sum_weight = 0, sum_i = 0, sum_j = 0;
        for (long long c = 0; c < used_channels; ++c) {
            const scalar_t* plane = frame + (b * channels + c) * padded_h * padded_w;
            const scalar_t delta = grad_output[((b * channels + c) * height + i) * width + j];
            const scalar_t tl = plane[tap.top_left], bl = plane[tap.bottom_left];
            const scalar_t tr = plane[tap.top_right], br = plane[tap.bottom_right];
            sum_weight += delta * (tl * (1 - tap.frac_i) * (1 - tap.frac_j) + bl * tap.frac_i * (1 - tap.frac_j)
                                   + tr * (1 - tap.frac_i) * tap.frac_j + br * tap.frac_i * tap.frac_j);
            sum_i += delta * ((bl - tl) * (1 - tap.frac_j) + (br - tr) * tap.frac_j);
            sum_j += delta * ((tr - tl) * (1 - tap.frac_i) + (br - bl) * tap.frac_i);
        }
        grad_weight[index] = sum_weight;
        grad_offset_i[index] = weight[index] * sum_i;
        grad_offset_j[index] = weight[index] * sum_j;
    }
}
"""


def _forward_cuda(frame, weight, offset_i, offset_j, dilation):
    batch, channels = frame.shape[:2]
    num_taps, height, width = weight.shape[1:]
    output = frame.new_empty(batch, channels, height, width)
    launch(_CUDA_SOURCE, "adacof_forward", output.numel(), frame, weight, offset_i, offset_j,
           output, channels, height, width, math.isqrt(num_taps), dilation)
    return output


def _backward_cuda(grad_output, frame, weight, offset_i, offset_j, dilation):
    channels = frame.shape[1]
    num_taps, height, width = weight.shape[1:]
    grad_weight = torch.empty_like(weight)
    grad_offset_i = torch.empty_like(offset_i)
    grad_offset_j = torch.empty_like(offset_j)
    launch(_CUDA_SOURCE, "adacof_backward", weight.numel(), grad_output, frame, weight, offset_i,
           offset_j, grad_weight, grad_offset_i, grad_offset_j, channels, height, width, math.isqrt(num_taps),
           dilation)
    return grad_weight, grad_offset_i, grad_offset_j
