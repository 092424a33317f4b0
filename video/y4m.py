"""YUV4MPEG2 (``.y4m``) streams in and out: files, or standard input and output for pipes.

A stream is one header line, ``YUV4MPEG2`` followed by space-separated fields, then frames, each a ``FRAME`` line and
the planar Y, U, V samples (8-bit bytes, or 16-bit little-endian words for more bits). The fields read here:
``W`` and ``H`` (size), ``F`` (rate, ``n:d``), ``A`` (pixel aspect ``n:d``, ``0:0`` unknown), ``I`` (interlacing:
only progressive ``p`` or unknown ``?``), ``C`` (colour space: ``420jpeg``, ``420paldv``, ``420mpeg2``, ``420``,
``444``, ``420p10``, ``444p10``; ``420jpeg`` when absent) and the extension ``XCOLORRANGE=LIMITED|FULL``
(limited when absent); other ``X`` extensions are ignored. The header comes from another program, so every field
is checked and a bad one is named in a one-line error. 4:2:0 chroma is read as every 4:2:0 layout is elsewhere in
this project (each sample over its 2x2 block), whatever its siting.

The writer emits the same format (``C420jpeg`` or ``C420p10``, ``444`` likewise), the rate and pixel aspect it is
given and ``XCOLORRANGE``. To a file it writes under a temporary name and publishes it whole
(video/output.py); to standard output it streams frame by frame, and a reader that goes away (a broken pipe)
becomes a one-line error.
"""
from __future__ import annotations

import logging
import os
import re
import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, Iterator, Optional

import numpy as np

from common.safe_write import fsync_file, partial_path, publish_file
from video.colour import Colour, integer_rgb, rgb_to_ycbcr, ycbcr_to_rgb
from video.output import make_parents, remove_folders, remove_stale_outputs
from video.pixel_format import Planes, chroma_shape
from video.readers import CodedFrame, FrameSource, SourceInfo
from video.writers import _CompleteOrAbort
from video.yuv import MATRICES, YUVFormat, split_planes

SIGNATURE = b"YUV4MPEG2"
FRAME_TAG = b"FRAME"
STDIO = "-"
SUFFIX = ".y4m"
# Colour spaces read and written: (chroma format, bit depth); the 4:2:0 variants differ only in chroma siting.
COLOUR_SPACES = {
    "420jpeg": ("420", 8), "420paldv": ("420", 8), "420mpeg2": ("420", 8), "420": ("420", 8),
    "444": ("444", 8), "420p10": ("420", 10), "444p10": ("444", 10),
}
WRITTEN_COLOUR_SPACES = {("420", 8): "420jpeg", ("444", 8): "444", ("420", 10): "420p10", ("444", 10): "444p10"}
COLOUR_RANGES = ("LIMITED", "FULL")
MAX_SIDE = 16384
# A header or FRAME line longer than this is not a YUV4MPEG2 stream (or a hostile one).
MAX_LINE = 4096

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Y4MHeader:
    """The fields of a stream header: ``frame_rate`` None for ``F0:0``/absent, ``aspect`` (0, 0) when unknown."""

    width: int
    height: int
    frame_rate: Optional[Fraction] = None
    aspect: tuple[int, int] = (0, 0)
    chroma: str = "420"
    bit_depth: int = 8
    full_range: bool = False

    @property
    def layout(self) -> YUVFormat:
        return YUVFormat(self.width, self.height, self.chroma, self.bit_depth)

    def to_bytes(self) -> bytes:
        rate = self.frame_rate or Fraction(0)
        colour = WRITTEN_COLOUR_SPACES[(self.chroma, self.bit_depth)]
        colour_range = COLOUR_RANGES[self.full_range]
        return (f"YUV4MPEG2 W{self.width} H{self.height} F{rate.numerator}:{rate.denominator if rate else 0} Ip "
                f"A{self.aspect[0]}:{self.aspect[1]} C{colour} XCOLORRANGE={colour_range}\n").encode("ascii")


def is_y4m_path(path: str) -> bool:
    return path == STDIO or Path(path).suffix.lower() == SUFFIX


def _ratio(value: str, field: str, name: str, allow_zero: bool) -> tuple[int, int]:
    match = re.fullmatch(r"(\d{1,9}):(\d{1,9})", value)
    if not match:
        raise ValueError(f"{name}: YUV4MPEG2 field {field}{value!r} is not of the form n:d")
    numerator, denominator = int(match[1]), int(match[2])
    if (numerator, denominator) == (0, 0) and allow_zero:
        return 0, 0
    if numerator == 0 or denominator == 0:
        raise ValueError(f"{name}: YUV4MPEG2 field {field}{value} must be two positive numbers")
    return numerator, denominator


def parse_header(line: bytes, name: str) -> Y4MHeader:
    """The header line (without its newline) of the stream called ``name`` in messages; ValueError if malformed."""
    try:
        text = line.decode("ascii")
    except UnicodeDecodeError:
        raise ValueError(f"{name}: the YUV4MPEG2 header is not ASCII text") from None
    words = text.split(" ")
    if words[0] != SIGNATURE.decode():
        raise ValueError(f"{name} is not a YUV4MPEG2 stream: it does not start with {SIGNATURE.decode()}")
    fields: dict[str, str] = {}
    colour_range = None
    for word in words[1:]:
        if not word:
            raise ValueError(f"{name}: the YUV4MPEG2 header has an empty field (two spaces)")
        tag, value = word[0], word[1:]
        if tag == "X":
            if value.startswith("COLORRANGE="):
                colour_range = value[len("COLORRANGE="):]
                if colour_range not in COLOUR_RANGES:
                    raise ValueError(f"{name}: XCOLORRANGE={colour_range} is not one of {', '.join(COLOUR_RANGES)}")
            continue
        if tag not in "WHFIAC":
            raise ValueError(f"{name}: unknown YUV4MPEG2 header field {word!r}")
        if tag in fields:
            raise ValueError(f"{name}: the YUV4MPEG2 header gives {tag} twice")
        fields[tag] = value
    size = {}
    for tag in "WH":
        if tag not in fields:
            raise ValueError(f"{name}: the YUV4MPEG2 header has no {tag} (frame {'width' if tag == 'W' else 'height'})")
        if not re.fullmatch(r"\d{1,9}", fields[tag]) or not 1 <= int(fields[tag]) <= MAX_SIDE:
            raise ValueError(f"{name}: YUV4MPEG2 field {tag}{fields[tag]} is not a size from 1 to {MAX_SIDE}")
        size[tag] = int(fields[tag])
    rate = _ratio(fields["F"], "F", name, allow_zero=True) if "F" in fields else (0, 0)
    aspect = _ratio(fields["A"], "A", name, allow_zero=True) if "A" in fields else (0, 0)
    interlacing = fields.get("I", "p")
    if interlacing not in ("p", "?"):
        raise ValueError(f"{name}: interlaced YUV4MPEG2 (I{interlacing}) is not supported; deinterlace it first")
    colour = fields.get("C", "420jpeg")
    if colour not in COLOUR_SPACES:
        raise ValueError(f"{name}: YUV4MPEG2 colour space C{colour} is not supported; use one of "
                         f"{', '.join('C' + space for space in COLOUR_SPACES)}")
    chroma, bit_depth = COLOUR_SPACES[colour]
    return Y4MHeader(size["W"], size["H"], Fraction(*rate) if rate != (0, 0) else None, aspect, chroma, bit_depth,
                     colour_range == "FULL")


def _read_line(stream: BinaryIO, name: str, what: str) -> Optional[bytes]:
    """One line without its newline; None at the end of the stream before any byte."""
    line = bytearray()
    while True:
        byte = stream.read(1)
        if not byte:
            if line:
                raise ValueError(f"{name} ends inside the {what}")
            return None
        if byte == b"\n":
            return bytes(line)
        line += byte
        if len(line) > MAX_LINE:
            raise ValueError(f"{name}: the {what} is longer than {MAX_LINE} bytes; not a YUV4MPEG2 stream")


def header_colour(header: Y4MHeader, matrix: str) -> Colour:
    """The colour of a stream: its range from the header (XCOLORRANGE), its matrix from --yuv_matrix (YUV4MPEG2
    has no field for it)."""
    return Colour(MATRICES[matrix], full_range=header.full_range)


def rgb_to_yuv(frame: np.ndarray, header: Y4MHeader, matrix: str = "bt601") -> bytes:
    """An (H, W, 3) RGB frame (float in [0, 1], or integers at their dtype's full scale) as the planar samples of
    ``header``'s format (4:2:0 chroma is the mean of each 2x2 block)."""
    layout = header.layout
    shape = chroma_shape(layout.pix_fmt, frame.shape[1], frame.shape[0])
    planes = rgb_to_ycbcr(frame, layout.bit_depth, shape, header_colour(header, matrix))
    return b"".join(plane.astype(layout.sample_dtype).tobytes() for plane in planes)


class Y4MSource(FrameSource):
    """A YUV4MPEG2 file, or standard input for ``-`` (read once, as it arrives)."""

    def __init__(self, path: str, frame_rate: Optional[Fraction] = None, matrix: str = "bt601",
                 allow_truncated: bool = False) -> None:
        self.from_stdin = path == STDIO
        self.name = "standard input" if self.from_stdin else path
        self.matrix = matrix
        self.allow_truncated = allow_truncated
        if self.from_stdin:
            if sys.stdin.isatty():
                raise ValueError("--input -: standard input is a terminal; pipe a YUV4MPEG2 stream into it")
            self.stream: Optional[BinaryIO] = sys.stdin.buffer
            self.header, header_size = self._read_header(self.stream)
        else:
            if not Path(path).is_file():
                raise FileNotFoundError(f"input {path} does not exist")
            self.stream = None
            with open(path, "rb") as file:
                self.header, header_size = self._read_header(file)
        frame_count = None
        if not self.from_stdin:  # exact when every frame line is a plain FRAME (as FFmpeg writes them)
            count, remainder = divmod(Path(path).stat().st_size - header_size,
                                      len(FRAME_TAG) + 1 + self.header.layout.bytes_per_frame)
            frame_count = count if remainder == 0 else None
        self.colour = header_colour(self.header, matrix)
        self.info = SourceInfo(Path(path), "y4m", self.header.width, self.header.height,
                               frame_rate or self.header.frame_rate, frame_count,
                               bit_depth=self.header.layout.bit_depth)

    def _read_header(self, stream: BinaryIO) -> tuple[Y4MHeader, int]:
        line = _read_line(stream, self.name, "YUV4MPEG2 header")
        if line is None:
            raise ValueError(f"{self.name} is empty: no YUV4MPEG2 stream")
        return parse_header(line, self.name), len(line) + 1

    def _frames(self, stream: BinaryIO) -> Iterator[np.ndarray]:
        layout = self.header.layout
        index = 0
        while True:
            try:
                line = _read_line(stream, self.name, f"line of frame {index}")
                if line is None:
                    return
                if line != FRAME_TAG and not line.startswith(FRAME_TAG + b" "):
                    raise ValueError(f"{self.name}: frame {index} does not start with FRAME; the stream is damaged")
                data = stream.read(layout.bytes_per_frame)
                if len(data) < layout.bytes_per_frame:
                    raise ValueError(f"{self.name} ends inside frame {index} ({len(data)} of "
                                     f"{layout.bytes_per_frame} bytes)")
            except ValueError as error:
                if not self.allow_truncated:
                    raise ValueError(f"{error}; pass --allow_truncated to use the {index} frames before it") from None
                logger.warning("%s; --allow_truncated: using the %d frames before it", error, index)
                return
            rgb = ycbcr_to_rgb(*split_planes(data, layout), layout.bit_depth, self.colour)
            yield integer_rgb(rgb, np.uint8 if layout.bit_depth == 8 else np.uint16)
            index += 1

    def coded_frames(self) -> Iterator[CodedFrame]:
        rate = self.info.frame_rate
        if self.from_stdin:
            if self.stream is None:
                raise ValueError("standard input can be read only once")
            stream, self.stream = self.stream, None
            frames = self._frames(stream)
        else:
            frames = self._file_frames()
        for index, frame in enumerate(frames):
            yield frame, (Fraction(index) / rate if rate else None), None

    def _file_frames(self) -> Iterator[np.ndarray]:
        with open(self.info.path, "rb") as file:
            self._read_header(file)
            yield from self._frames(file)


class Y4MWriter(_CompleteOrAbort):
    """Write RGB frames as a YUV4MPEG2 stream to ``path``, or to standard output for ``-``.

    A file appears under its name only when complete (``replace`` allows replacing an existing one); standard output
    is streamed and flushed frame by frame. ``write(frame, time)`` takes a time for the other writers' signature:
    a YUV4MPEG2 stream has a constant rate.
    """

    def __init__(self, path: str, header: Y4MHeader, matrix: str = "bt601", replace: bool = False) -> None:
        self.header = header
        self.matrix = matrix
        self.replace = replace
        self.frames_written = 0
        self.to_stdout = path == STDIO
        self.path = Path(path)
        self.created_folders: list[Path] = []
        if self.to_stdout:
            self.file: BinaryIO = sys.stdout.buffer
        else:
            self.created_folders = make_parents(self.path)
            remove_stale_outputs(self.path)
            self.temporary = partial_path(self.path)
            try:
                self.file = open(self.temporary, "xb")
            except BaseException:
                remove_folders(self.created_folders)
                raise
        self._send(header.to_bytes())

    def _send(self, data: bytes) -> None:
        try:
            self.file.write(data)
            if self.to_stdout:
                self.file.flush()
        except BrokenPipeError:
            raise ValueError(f"--output -: the program reading standard output stopped (broken pipe) after "
                             f"{self.frames_written} frames; the stream is incomplete") from None

    # write() takes float RGB, converted to the stream's depth unrounded.
    sample_dtype = np.dtype(np.float32)

    def write(self, frame: np.ndarray, time: Optional[Fraction] = None, planes: Optional[Planes] = None) -> None:
        """One frame; ``time`` and ``planes`` are taken for the other writers' signature (a YUV4MPEG2 stream has a
        constant rate, and its frames are always converted)."""
        self._send(FRAME_TAG + b"\n" + rgb_to_yuv(frame, self.header, self.matrix))
        self.frames_written += 1

    def close(self) -> None:
        if self.to_stdout:
            self._send(b"")
            return
        try:
            self.file.close()
            fsync_file(self.temporary)
            publish_file(self.temporary, self.path, self.replace)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """A file: delete the temporary, leaving ``path`` as it was. Standard output: detach it, so that a broken
        pipe is not reported again when Python exits. Never raises."""
        if self.to_stdout:
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
                os.close(devnull)
            except (OSError, ValueError):
                logger.debug("could not detach standard output", exc_info=True)
            return
        try:
            self.file.close()
            self.temporary.unlink(missing_ok=True)
        except OSError:
            logger.warning("could not delete the partial output %s", self.temporary, exc_info=True)
        remove_folders(self.created_folders)
