"""HDR static metadata of a video: the mastering display's colour volume (SMPTE ST 2086) and the content light
level (MaxCLL, MaxFALL), read from a decoded frame's side data and written back as libx265 parameters.

FFmpeg stores them as ``AVMasteringDisplayMetadata`` (rationals: the R, G, B primaries and the white point as CIE
xy, then the minimum and maximum luminance in cd/m², then two flags saying which are present) and
``AVContentLightMetadata`` (two unsigned ints). x265 takes chromaticities in units of 0.00002 and luminances in
units of 0.0001 cd/m², primaries in G, B, R order.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Optional

import av

CHROMATICITY_UNITS = 50000
LUMINANCE_UNITS = 10000
_MASTERING_LAYOUT = struct.Struct("<20i2i")  # 10 rationals, then has_primaries and has_luminance
_LIGHT_LEVEL_LAYOUT = struct.Struct("<2I")


@dataclass(frozen=True)
class HDRMetadata:
    """x265's ``master-display`` string and (MaxCLL, MaxFALL); either may be None."""

    master_display: Optional[str] = None
    content_light: Optional[tuple[int, int]] = None

    def x265_params(self) -> str:
        params = []
        if self.master_display:
            params.append(f"master-display={self.master_display}")
        if self.content_light:
            params.append(f"max-cll={self.content_light[0]},{self.content_light[1]}")
        return ":".join(params)

    def describe(self) -> str:
        parts = [f"mastering display {self.master_display}"] if self.master_display else []
        if self.content_light:
            parts.append(f"MaxCLL {self.content_light[0]}, MaxFALL {self.content_light[1]} cd/m²")
        return "; ".join(parts)


def _master_display(data: bytes) -> Optional[str]:
    values = _MASTERING_LAYOUT.unpack(data[: _MASTERING_LAYOUT.size])
    rationals = [values[index] / values[index + 1] if values[index + 1] else 0.0 for index in range(0, 20, 2)]
    has_primaries, has_luminance = values[20:]
    if not (has_primaries and has_luminance):
        return None
    (rx, ry, gx, gy, bx, by, wx, wy), (minimum, maximum) = rationals[:8], rationals[8:]

    def point(x: float, y: float) -> str:
        return f"({round(x * CHROMATICITY_UNITS)},{round(y * CHROMATICITY_UNITS)})"

    return (f"G{point(gx, gy)}B{point(bx, by)}R{point(rx, ry)}WP{point(wx, wy)}"
            f"L({round(maximum * LUMINANCE_UNITS)},{round(minimum * LUMINANCE_UNITS)})")


def hdr_metadata(frame: av.VideoFrame) -> Optional[HDRMetadata]:
    """The frame's mastering display and content light level, or None when it carries neither."""
    side_data = frame.side_data
    kinds = av.sidedata.sidedata.Type
    master_display = content_light = None
    if kinds.MASTERING_DISPLAY_METADATA in side_data:
        master_display = _master_display(bytes(side_data[kinds.MASTERING_DISPLAY_METADATA]))
    if kinds.CONTENT_LIGHT_LEVEL in side_data:
        content_light = _LIGHT_LEVEL_LAYOUT.unpack(bytes(side_data[kinds.CONTENT_LIGHT_LEVEL])[:8])
    if master_display is None and content_light is None:
        return None
    return HDRMetadata(master_display, tuple(content_light) if content_light else None)
