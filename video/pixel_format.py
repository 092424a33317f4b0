"""Pixel formats (FFmpeg names) of decoded and encoded frames: their bit depth and planes, and the format an encoder
writes by default so that a source keeps its bit depth and, where the encoder takes it, its own format.

Planar Y'CbCr formats (``yuv420p``, ``yuv422p10le``, ``yuv444p16le``, ``yuvj420p``, ...) are read and written
plane by plane, so a frame can pass from decoder to encoder untouched; anything else (RGB, packed or semi-planar
formats) goes through RGB.
"""
from __future__ import annotations

from typing import Optional

import av
import numpy as np

Planes = tuple[np.ndarray, ...]
PNG_FORMATS = {"rgb24": 8, "rgb48be": 16, "rgb48le": 16}


def bit_depth(pix_fmt: str) -> int:
    """Bits per sample of a pixel format's first component (8 for ``rgb24``, 10 for ``yuv420p10le``)."""
    return av.VideoFormat(pix_fmt).components[0].bits


def is_planar_ycbcr(pix_fmt: str) -> bool:
    """Three planes Y', Cb, Cr of one depth, little-endian above 8 bits (the formats read plane by plane)."""
    video_format = av.VideoFormat(pix_fmt)
    components = video_format.components
    return (
        pix_fmt.startswith("yuv") and not video_format.is_rgb and len(components) == 3
        and [component.plane for component in components] == [0, 1, 2]
        and (components[0].bits == 8 or pix_fmt.endswith("le"))
    )


def chroma_shape(pix_fmt: str, width: int, height: int) -> tuple[int, int]:
    """(rows, columns) of a chroma plane of a ``width`` x ``height`` frame."""
    video_format = av.VideoFormat(pix_fmt)
    return video_format.chroma_height(height), video_format.chroma_width(width)


def frame_planes(frame: av.VideoFrame) -> Planes:
    """Copies of a planar frame's planes as (rows, columns) arrays without the line padding."""
    dtype = np.dtype(np.uint8 if bit_depth(frame.format.name) == 8 else "<u2")
    planes = []
    for plane in frame.planes:
        samples = np.frombuffer(memoryview(plane), dtype=dtype)
        planes.append(samples.reshape(plane.height, plane.line_size // dtype.itemsize)[:, : plane.width].copy())
    return tuple(planes)


def frame_from_planes(planes: Planes, pix_fmt: str) -> av.VideoFrame:
    """A frame of ``pix_fmt`` holding ``planes`` (as :func:`frame_planes` gives them)."""
    height, width = planes[0].shape
    frame = av.VideoFrame(width, height, pix_fmt)
    for plane, samples in zip(frame.planes, planes):
        rows = np.frombuffer(memoryview(plane), dtype=samples.dtype).reshape(plane.height, -1)
        rows[:, : plane.width] = samples
    return frame


def _subsampling(pix_fmt: str) -> tuple[int, int]:
    video_format = av.VideoFormat(pix_fmt)
    return video_format.chroma_width(64), video_format.chroma_height(64)


def default_output_format(codec: str, source_pix_fmt: str, source_bits: int, width: int, height: int) -> str:
    """The pixel format ``codec`` writes a source in: the source's own when it is planar Y'CbCr and the encoder
    takes it; else planar Y'CbCr of the fewest bits that hold the source's (8-bit RGB sources: ``yuv420p``), with
    the source's chroma subsampling where possible. 4:2:0 needs even sizes: odd ones get 4:4:4.
    Raises ValueError naming --codec and --out_pix_fmt when the encoder cannot keep the bit depth."""
    supported = [video_format.name for video_format in av.codec.Codec(codec, "w").video_formats or ()]
    odd = width % 2 or height % 2
    if is_planar_ycbcr(source_pix_fmt) and (not supported or source_pix_fmt in supported):
        if not (odd and _subsampling(source_pix_fmt) != (64, 64)):
            return source_pix_fmt
    wanted = (64, 64) if odd else _subsampling(source_pix_fmt) if is_planar_ycbcr(source_pix_fmt) else (32, 32)
    candidates = [name for name in supported if is_planar_ycbcr(name) and not name.startswith("yuvj")
                  and bit_depth(name) >= source_bits and (_subsampling(name) == (64, 64) or not odd)]
    if not candidates:
        raise ValueError(
            f"--codec {codec} cannot write {source_bits}-bit video (it takes {', '.join(supported) or 'none'}); "
            f"choose an encoder that can (libx265 up to 12 bits, ffv1 up to 16) or lower the depth with --out_pix_fmt"
        )
    return min(candidates, key=lambda name: (_subsampling(name) != wanted, bit_depth(name)))


def png_bit_depth(out_pix_fmt: Optional[str], source_bits: int) -> int:
    """8 or 16: the source's depth rounded up, or ``--out_pix_fmt`` rgb24 / rgb48be / rgb48le."""
    if out_pix_fmt is None:
        return 8 if source_bits <= 8 else 16
    if out_pix_fmt not in PNG_FORMATS:
        raise ValueError(f"--out_pix_fmt {out_pix_fmt!r} cannot be written as PNG frames; use one of "
                         f"{', '.join(PNG_FORMATS)}")
    return PNG_FORMATS[out_pix_fmt]
