"""What fills the gap between two neighbouring frames, and how that choice carries through the 2x passes.

Every frame of the stream is paired with the ``Gap`` that follows it. Three kinds come from the input
(see ``video/scenes.py``): an ordinary gap is interpolated; a static gap (the two frames are duplicates) and a
scene cut are filled with copies, each output frame taking the original frame nearest to it in time, ties to the
earlier one. A cut also ends the shot: no four-frame window reaches across it (the window is completed by
repeating the pair's own frames, as at the ends of a video).

4x and 8x chain 2x passes, so a gap's kind must survive being halved. A copied gap's middle frame is its earlier
frame (the tie); the first half then holds only frames nearer the earlier original and the second half only frames
nearer the later one, so the halves become "copy the left end" and "copy the right end". Halves of a cut stay
cuts, so a later pass's windows stop there too.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

INTERPOLATED, NEAREST, LEFT, RIGHT = "interpolated", "nearest", "left", "right"


@dataclass(frozen=True)
class Gap:
    """How the frames between a frame and the next are made: ``fill`` is one of INTERPOLATED (by the network),
    NEAREST (copies of the nearer end, ties to the earlier), LEFT or RIGHT (copies of that end); ``cut`` marks a
    scene cut, which windows never cross."""

    fill: str
    cut: bool = False

    @property
    def is_copy(self) -> bool:
        return self.fill != INTERPOLATED

    def halves(self) -> tuple[Gap, Gap]:
        """The gaps on either side of this gap's middle frame, for the next 2x pass."""
        if self.fill == NEAREST:
            return Gap(LEFT, self.cut), Gap(RIGHT, self.cut)
        return self, self

    def middle_copy(self, left: Tensor, right: Tensor) -> Tensor:
        """The middle frame of a copied gap: the right end only when the whole gap copies it."""
        if not self.is_copy:
            raise ValueError("an interpolated gap has no copied middle frame")
        return right if self.fill == RIGHT else left


INTERPOLATE = Gap(INTERPOLATED)
STATIC = Gap(NEAREST)
CUT = Gap(NEAREST, cut=True)
