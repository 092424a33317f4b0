"""Streaming frame sources for ``interpolate.py``: any video PyAV decodes, raw YUV files, folders of images; and
``read_video_frames``, the video frames the data sets are cut from. The project's one video decoder.

A source opens and checks its input when it is built (a missing, unreadable or malformed input, or a folder of
frames of different sizes, raises before anything is written) and then yields (H, W, 3) RGB frames one at a time,
so memory does not grow with the length of the video; ``timed_frames()`` pairs each with its time in seconds from
the first frame, ``coded_frames()`` also with its planes as coded (Y'CbCr sources), which lets a writer pass an
original frame through untouched. ``open_source`` picks the source from the path.

Frames keep the source's precision: 8-bit sources give uint8 RGB, deeper ones (10-, 12-, 16-bit video and YUV
files, 16-bit PNGs) uint16 RGB at full scale 65535, never rounded to 8 bits. Y'CbCr is converted with the source's
own matrix and range (video/colour.py).

A video's frames keep their real timestamps, so a variable-frame-rate input keeps its timing; a warning says when
the timestamps disagree with the container's nominal rate. A video that decodes to fewer frames than its header
declares gets a loud warning; a decoding error part-way through is an error unless ``allow_truncated``, which
keeps the frames before it. The display rotation a phone records is read into ``SourceInfo.rotation``.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from fractions import Fraction
from itertools import islice
from pathlib import Path
from typing import Iterator, Optional

import av
import numpy as np
from PIL import Image

from common.files import PathType
from video.colour import Colour, colour_from_tags, integer_rgb, ycbcr_to_rgb
from video.hdr import HDRMetadata, hdr_metadata
from video.images import read_image_rgb
from video.pixel_format import Planes, bit_depth, frame_planes, is_planar_ycbcr
from video.yuv import MATRICES, YUVFormat, format_from_name, frame_rate_from_name, split_planes

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
_SAME_KIND = {".jpeg": ".jpg", ".tiff": ".tif"}
YUV_SUFFIXES = (".yuv",)
# A frame interval this far (relative) from the nominal one means the rate is variable.
RATE_TOLERANCE = 0.1

logger = logging.getLogger(__name__)
TimedFrame = tuple[np.ndarray, Optional[Fraction]]
CodedFrame = tuple[np.ndarray, Optional[Fraction], Optional[Planes]]  # RGB, time, planes in SourceInfo.pix_fmt


@dataclass(frozen=True)
class SourceInfo:
    """What the writer and the progress bar need to know about an input.

    ``frame_rate`` is None when the input does not say (a folder, or a YUV file without ``<n>fps`` in its name);
    ``frame_count`` is None when a container does not record it (then it may be estimated from the duration).
    ``declared_frames`` is the count a container's header states, if any; ``time_base`` the resolution of a
    video's timestamps; ``rotation`` the display rotation in degrees counter-clockwise (stored frames are not
    turned). ``pix_fmt`` and ``bit_depth`` describe the frames as coded, ``colour`` the Y'CbCr sources' colour
    (None for RGB sources) and ``hdr`` a video's HDR metadata, if any.
    """

    path: Path
    kind: str
    width: int
    height: int
    frame_rate: Optional[Fraction]
    frame_count: Optional[int]
    has_audio: bool = False
    declared_frames: Optional[int] = None
    time_base: Optional[Fraction] = None
    rotation: int = 0
    pix_fmt: str = "rgb24"
    bit_depth: int = 8
    colour: Optional[Colour] = None
    hdr: Optional[HDRMetadata] = None


class FrameSource:
    """Base of the sources: ``info`` and iteration over RGB frames, with or without their times and planes."""

    info: SourceInfo

    def coded_frames(self) -> Iterator[CodedFrame]:
        """(frame, seconds since the first frame, planes), the time None when the input has no rate, the planes
        None for RGB sources."""
        raise NotImplementedError

    def timed_frames(self) -> Iterator[TimedFrame]:
        """(frame, seconds since the first frame), the time None when the input has no rate."""
        return ((frame, time) for frame, time, _ in self.coded_frames())

    def __iter__(self) -> Iterator[np.ndarray]:
        return (frame for frame, _ in self.timed_frames())


def _constant_rate_times(frames: Iterator[tuple[np.ndarray, Optional[Planes]]], frame_rate: Optional[Fraction]
                         ) -> Iterator[CodedFrame]:
    for index, (frame, planes) in enumerate(frames):
        yield frame, (index / frame_rate if frame_rate else None), planes


def rgb_samples(rgb: np.ndarray, bits: int) -> np.ndarray:
    """Float RGB as uint8 for 8-bit sources, uint16 for deeper ones."""
    return integer_rgb(rgb, np.uint8 if bits <= 8 else np.uint16)


def _planar_equivalent(frame: av.VideoFrame) -> str:
    """The planar Y'CbCr format holding a packed or semi-planar one's samples (``nv12`` -> ``yuv420p``)."""
    video_format = frame.format
    subsampling = {(1, 1): "444", (2, 1): "422", (2, 2): "420", (1, 2): "440"}[(
        -(-64 // video_format.chroma_width(64)), -(-64 // video_format.chroma_height(64)))]
    depth = bit_depth(video_format.name)
    return f"yuv{subsampling}p" + ("" if depth == 8 else f"{depth}le")


class VideoFileSource(FrameSource):
    """The first video stream of a container, decoded with PyAV (FFmpeg), frame by frame, with its timestamps."""

    def __init__(self, path: PathType, allow_truncated: bool = False) -> None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"input {path} does not exist")
        self.allow_truncated = allow_truncated
        try:
            with av.open(str(path)) as container:
                if not container.streams.video:
                    raise ValueError(f"{path} has no video stream")
                stream = container.streams.video[0]
                rate = stream.average_rate or stream.guessed_rate
                declared = stream.frames or None
                frame_count = declared
                if frame_count is None and stream.duration is not None and rate:
                    frame_count = round(float(stream.duration * stream.time_base * rate))
                first = next(container.decode(stream), None)
                coded_format = first.format.name if first is not None else "rgb24"
                if first is not None and not first.format.is_rgb and not is_planar_ycbcr(coded_format):
                    coded_format = _planar_equivalent(first)
                colour = None
                if first is not None and is_planar_ycbcr(coded_format):
                    colour = colour_from_tags(first.colorspace, first.color_range, first.color_primaries,
                                              first.color_trc, first.width, first.height, coded_format)
                self.info = SourceInfo(
                    path=path,
                    kind="video",
                    width=stream.codec_context.width,
                    height=stream.codec_context.height,
                    frame_rate=Fraction(rate) if rate else None,
                    frame_count=frame_count,
                    has_audio=bool(container.streams.audio),
                    declared_frames=declared,
                    time_base=Fraction(stream.time_base) if stream.time_base else None,
                    rotation=round(first.rotation) if first is not None else 0,
                    pix_fmt=coded_format,
                    bit_depth=bit_depth(coded_format),
                    colour=colour,
                    hdr=hdr_metadata(first) if first is not None else None,
                )
        except av.error.FFmpegError as error:
            raise ValueError(f"cannot read {path} as a video: {error}") from error
        except ValueError as error:
            raise ValueError(f"cannot read {path}: {error}") from error

    def _converted(self, frame: av.VideoFrame) -> tuple[np.ndarray, Optional[Planes]]:
        """A decoded frame as RGB at its own precision, and its Y'CbCr planes (None for RGB formats)."""
        info = self.info
        if info.colour is None:
            return frame.to_ndarray(format="rgb24" if info.bit_depth == 8 else "rgb48le"), None
        if frame.format.name != info.pix_fmt:
            frame = frame.reformat(format=info.pix_fmt)
        planes = frame_planes(frame)
        return rgb_samples(ycbcr_to_rgb(*planes, info.bit_depth, info.colour), info.bit_depth), planes

    def _decoded(self) -> Iterator[av.VideoFrame]:
        """The decoded frames; a decoding error stops with a ValueError, or with ``allow_truncated`` a warning."""
        path = self.info.path
        count = 0
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            # Slice threads only: with frame threads FFmpeg drops a damaged packet's error and decoding just stops.
            stream.thread_type = "SLICE"
            frames = container.decode(stream)
            while True:
                try:
                    frame = next(frames)
                except StopIteration:
                    break
                except av.error.FFmpegError as error:
                    if not self.allow_truncated:
                        raise ValueError(
                            f"{path} is damaged or truncated: decoding failed after {count} frames "
                            f"({getattr(error, 'strerror', None) or error}); pass "
                            f"--allow_truncated to use the {count} frames before the damage"
                        ) from error
                    logger.warning("%s: decoding failed after %d frames (%s); --allow_truncated: using those %d",
                                   path, count, error, count)
                    break
                count += 1
                yield frame
        declared = self.info.declared_frames
        if declared is not None and count < declared:
            logger.warning(
                "%s declares %d frames but only %d decoded: the file is probably truncated; the output covers "
                "the %d frames that decoded", path, declared, count, count,
            )

    def rgb24_frames(self) -> Iterator[np.ndarray]:
        """The frames as FFmpeg converts them to 8-bit RGB (``to_ndarray(format="rgb24")``: swscale's BT.601
        whatever the stream's tags), the conversion the data sets of ``data/`` are cut with, so that they stay
        what the shipped demo student and every held-out figure were made from. :meth:`coded_frames` converts
        with the stream's own colours instead, at its own depth."""
        for frame in self._decoded():
            yield frame.to_ndarray(format="rgb24")

    def coded_frames(self) -> Iterator[CodedFrame]:
        rate = self.info.frame_rate
        origin = previous = None
        warned = False
        for index, frame in enumerate(self._decoded()):
            if frame.pts is not None and frame.time_base is not None:
                time = Fraction(frame.pts) * Fraction(frame.time_base)
            else:  # no timestamp (raw streams): the nominal rate's slot
                time = index / rate if rate else None
            if time is not None:
                origin = time if origin is None else origin
                time -= origin
            if rate and time is not None and previous is not None and not warned:
                interval, nominal = time - previous, 1 / rate
                if abs(interval - nominal) > RATE_TOLERANCE * nominal:
                    warned = True
                    logger.warning(
                        "%s has a variable frame rate: frame %d comes %.1f ms after the one before, where the "
                        "container's rate, %.4g fps, gives %.1f ms", self.info.path, index, 1000 * float(interval),
                        float(rate), 1000 * float(nominal),
                    )
            previous = time
            rgb, planes = self._converted(frame)
            yield rgb, time, planes


def read_video_frames(path: PathType, max_frames: Optional[int] = None) -> list[np.ndarray]:
    """The first ``max_frames`` frames (all when None) of a video file as (H, W, 3) uint8 RGB arrays in FFmpeg's
    rgb24 values (:meth:`VideoFileSource.rgb24_frames`), as the data sets are cut. A missing file raises
    FileNotFoundError, an unreadable or damaged one ValueError naming it."""
    return list(islice(VideoFileSource(path).rgb24_frames(), max_frames))


class YUVFileSource(FrameSource):
    """A raw planar YUV file (see ``video/yuv.py`` for the layout, the name hints and the colour conversion)."""

    def __init__(self, path: PathType, layout: YUVFormat, frame_rate: Optional[Fraction] = None,
                 matrix: str = "bt601") -> None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"input YUV file {path} does not exist")
        file_size = path.stat().st_size
        frame_count, remainder = divmod(file_size, layout.bytes_per_frame)
        if remainder or frame_count == 0:
            raise ValueError(
                f"{path} has {file_size} bytes, not a whole number of {layout} frames "
                f"({layout.bytes_per_frame} bytes each); check --size, --pix_fmt and --bit_depth"
            )
        self.layout = layout
        self.info = SourceInfo(path, "yuv", layout.width, layout.height, frame_rate, frame_count,
                               pix_fmt=layout.pix_fmt, bit_depth=layout.bit_depth,
                               colour=Colour(MATRICES[matrix], full_range=False))

    def _frames(self) -> Iterator[tuple[np.ndarray, Planes]]:
        with open(self.info.path, "rb") as file:
            for _ in range(self.info.frame_count):
                planes = split_planes(file.read(self.layout.bytes_per_frame), self.layout)
                rgb = ycbcr_to_rgb(*planes, self.layout.bit_depth, self.info.colour)
                yield rgb_samples(rgb, self.layout.bit_depth), planes

    def coded_frames(self) -> Iterator[CodedFrame]:
        return _constant_rate_times(self._frames(), self.info.frame_rate)


def numbered_frames(folder: Path) -> tuple[list[Path], list[str]]:
    """The frames of a folder, in the order of their numbers, and what was skipped (each with why).

    The rule: a frame is a file with an image suffix (IMAGE_SUFFIXES; .jpg and .jpeg are one kind) and a number in
    its name (the last one counts: ``frame_0007.png`` is frame 7). Hidden files, other files and images without a
    number are skipped. Frames of two kinds (``001.png`` and ``002.jpg``), or two files with one number
    (``1.png`` and ``001.png``), are ambiguous and refused with a ValueError naming them.
    """
    frames: dict[int, Path] = {}
    kinds: dict[str, Path] = {}
    skipped = []
    for file in sorted(folder.iterdir()):
        numbers = re.findall(r"\d+", file.stem)
        suffix = file.suffix.lower()
        if file.name.startswith(".") or not file.is_file():
            continue
        if suffix not in IMAGE_SUFFIXES:
            skipped.append(f"{file.name} (not {'/'.join(IMAGE_SUFFIXES)})")
        elif not numbers:
            skipped.append(f"{file.name} (no frame number)")
        elif int(numbers[-1]) in frames:
            raise ValueError(f"{folder}: {frames[int(numbers[-1])].name} and {file.name} are both frame "
                             f"{int(numbers[-1])}; keep one of them")
        else:
            frames[int(numbers[-1])] = file
            kinds.setdefault(_SAME_KIND.get(suffix, suffix), file)
    if len(kinds) > 1:
        examples = " and ".join(file.name for file in kinds.values())
        raise ValueError(f"{folder} mixes frames of {len(kinds)} kinds ({examples}); keep one kind of image")
    return [frames[number] for number in sorted(frames)], skipped


def _png_bit_depth(path: Path) -> int:
    """The sample depth in a PNG's header (8 for other images): signature, IHDR length and type, size, depth."""
    with open(path, "rb") as file:
        header = file.read(25)
    return header[24] if len(header) == 25 and header.startswith(b"\x89PNG") and header[12:16] == b"IHDR" else 8


def _read_image_16_bit(path: Path) -> np.ndarray:
    """An image as (H, W, 3) uint16 RGB (FFmpeg's PNG decoder: Pillow reads 16-bit RGB as 8 bits)."""
    with av.open(str(path)) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb48le")


def _image_size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, SyntaxError, ValueError) as error:
        raise ValueError(f"cannot read {path} as an image: {error}") from error


class ImageFolderSource(FrameSource):
    """A folder of numbered PNG/JPEG frames, in the order of the last number in each name."""

    def __init__(self, path: PathType, frame_rate: Optional[Fraction] = None) -> None:
        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"input folder {path} does not exist")
        self.files, skipped = numbered_frames(path)
        if skipped:
            logger.warning("%s: skipped %d file(s) that are not numbered frames: %s", path, len(skipped),
                           ", ".join(skipped[:5]) + (", ..." if len(skipped) > 5 else ""))
        if not self.files:
            raise ValueError(f"{path} holds no numbered {'/'.join(IMAGE_SUFFIXES)} frames")
        # Every frame's size from its header (cheap), so that a stray frame stops the run before it starts.
        width, height = _image_size(self.files[0])
        for file in self.files[1:]:
            if _image_size(file) != (width, height):
                other_width, other_height = _image_size(file)
                raise ValueError(
                    f"{file} is {other_width}x{other_height}, but the first frame, {self.files[0].name}, is "
                    f"{width}x{height}; all frames must have one size"
                )
        sixteen_bit = any(_png_bit_depth(file) == 16 for file in self.files)
        self.read = _read_image_16_bit if sixteen_bit else read_image_rgb
        self.info = SourceInfo(path, "images", width, height, frame_rate, len(self.files),
                               pix_fmt="rgb48le" if sixteen_bit else "rgb24", bit_depth=16 if sixteen_bit else 8)

    def coded_frames(self) -> Iterator[CodedFrame]:
        return _constant_rate_times(((self.read(file), None) for file in self.files), self.info.frame_rate)


def open_source(
    path: PathType,
    size: Optional[str] = None,
    chroma: Optional[str] = None,
    bit_depth: Optional[int] = None,
    frame_rate: Optional[Fraction] = None,
    matrix: str = "bt601",
    allow_truncated: bool = False,
) -> FrameSource:
    """The source for ``path``: a folder of images, a ``.yuv`` file, or a video container.

    ``size``, ``chroma`` and ``bit_depth`` apply to YUV files (None: from the file name, as the original did).
    ``frame_rate`` overrides the input's own rate (needed for folders and for YUV names without ``<n>fps``);
    for a video it sets the nominal rate, and the frames keep their timestamps. ``allow_truncated``: see
    :class:`VideoFileSource`.
    """
    path = Path(path)
    if path.is_dir():
        return ImageFolderSource(path, frame_rate)
    if path.suffix.lower() in YUV_SUFFIXES:
        layout = format_from_name(path, size, chroma, bit_depth)
        return YUVFileSource(path, layout, frame_rate or frame_rate_from_name(path), matrix)
    source = VideoFileSource(path, allow_truncated)
    if frame_rate is not None:
        source.info = replace(source.info, frame_rate=Fraction(frame_rate))
    return source
