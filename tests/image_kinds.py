"""PNG files of every kind a frame reader meets, each made from a known 8-bit RGB array so that a test knows the
exact 8-bit RGB frame the reader must return."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

KINDS = ("rgb", "grey", "grey16", "rgb16", "palette", "rgba")


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def write_png16(path: Path, samples: np.ndarray) -> None:
    """A 16-bit PNG (greyscale for (H, W), RGB for (H, W, 3)); Pillow cannot write 16-bit RGB."""
    height, width = samples.shape[:2]
    colour_type = 2 if samples.ndim == 3 else 0
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in samples)
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(rows))
                     + _png_chunk(b"IEND", b""))


def expected_rgb(rgb: np.ndarray, kind: str) -> np.ndarray:
    """The 8-bit RGB frame a reader must return for ``rgb`` saved as ``kind`` (grey kinds keep channel 0)."""
    return np.repeat(rgb[..., :1], 3, axis=-1) if kind.startswith("grey") else rgb


def write_kind(path: Path, rgb: np.ndarray, kind: str) -> Path:
    """Save the (H, W, 3) uint8 ``rgb`` as a PNG of ``kind`` that decodes exactly to ``expected_rgb(rgb, kind)``.

    16-bit kinds store v * 257 (the 8-bit value v spread over 16 bits); a palette image uses a palette of the
    frame's own colours (so at most 256 of them); RGBA gets a random alpha that a reader must drop.
    """
    if kind == "rgb":
        Image.fromarray(rgb).save(path)
    elif kind == "grey":
        Image.fromarray(rgb[..., 0]).save(path)
    elif kind == "grey16":
        write_png16(path, rgb[..., 0].astype(np.uint16) * 257)
    elif kind == "rgb16":
        write_png16(path, rgb.astype(np.uint16) * 257)
    elif kind == "palette":
        colours, indices = np.unique(rgb.reshape(-1, 3), axis=0, return_inverse=True)
        assert len(colours) <= 256, "a palette frame needs at most 256 colours"
        image = Image.fromarray(indices.reshape(rgb.shape[:2]).astype(np.uint8), mode="P")
        image.putpalette(colours.astype(np.uint8).tobytes())
        image.save(path)
    elif kind == "rgba":
        alpha = np.random.default_rng(0).integers(0, 256, rgb.shape[:2], dtype=np.uint8)
        Image.fromarray(np.dstack([rgb, alpha])).save(path)
    else:
        raise ValueError(f"unknown kind {kind!r}; one of {KINDS}")
    return path
