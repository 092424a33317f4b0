"""Streaming frame sources for ``interpolate.py``: any video PyAV decodes, raw YUV files, folders of images.

A source opens and checks its input when it is built (a missing, unreadable or malformed input, or a folder of
frames of different sizes, raises before anything is written) and then yields (H, W, 3) uint8 RGB frames one at
a time, so memory does not grow with the length of the video; ``timed_frames()`` pairs each with its time in
seconds from the first frame. ``open_source`` picks the source from the path.

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
from pathlib import Path
from typing import Iterator, Optional

import av
import numpy as np
from PIL import Image

from common.files import PathType
from data.frames import read_image_rgb
from video.yuv import YUVFormat, format_from_name, frame_rate_from_name, split_planes, yuv_to_rgb

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
_SAME_KIND = {".jpeg": ".jpg", ".tiff": ".tif"}
YUV_SUFFIXES = (".yuv",)
# A frame interval this far (relative) from the nominal one means the rate is variable.
RATE_TOLERANCE = 0.1

logger = logging.getLogger(__name__)
TimedFrame = tuple[np.ndarray, Optional[Fraction]]


@dataclass(frozen=True)
class SourceInfo:
    """What the writer and the progress bar need to know about an input.

    ``frame_rate`` is None when the input does not say (a folder, or a YUV file without ``<n>fps`` in its name);
    ``frame_count`` is None when a container does not record it (then it may be estimated from the duration).
    ``declared_frames`` is the count a container's header states, if any; ``time_base`` the resolution of a
    video's timestamps; ``rotation`` the display rotation in degrees counter-clockwise (stored frames are not
    turned).
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


class FrameSource:
    """Base of the sources: ``info`` and iteration over RGB frames, with or without their times."""

    info: SourceInfo

    def timed_frames(self) -> Iterator[TimedFrame]:
        """(frame, seconds since the first frame), the time None when the input has no rate."""
        raise NotImplementedError

    def __iter__(self) -> Iterator[np.ndarray]:
        return (frame for frame, _ in self.timed_frames())


def _constant_rate_times(frames: Iterator[np.ndarray], frame_rate: Optional[Fraction]) -> Iterator[TimedFrame]:
    for index, frame in enumerate(frames):
        yield frame, (index / frame_rate if frame_rate else None)


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
                )
        except av.error.FFmpegError as error:
            raise ValueError(f"cannot read {path} as a video: {error}") from error

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

    def timed_frames(self) -> Iterator[TimedFrame]:
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
            yield frame.to_ndarray(format="rgb24"), time


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
        self.matrix = matrix
        self.info = SourceInfo(path, "yuv", layout.width, layout.height, frame_rate, frame_count)

    def _frames(self) -> Iterator[np.ndarray]:
        with open(self.info.path, "rb") as file:
            for _ in range(self.info.frame_count):
                luma, cb, cr = split_planes(file.read(self.layout.bytes_per_frame), self.layout)
                yield yuv_to_rgb(luma, cb, cr, self.layout.bit_depth, self.matrix)

    def timed_frames(self) -> Iterator[TimedFrame]:
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
            raise ValueError(f"{frames[int(numbers[-1])]} and {file.name} are both frame {int(numbers[-1])}; keep "
                             "one of them")
        else:
            frames[int(numbers[-1])] = file
            kinds.setdefault(_SAME_KIND.get(suffix, suffix), file)
    if len(kinds) > 1:
        examples = " and ".join(file.name for file in kinds.values())
        raise ValueError(f"{folder} mixes frames of {len(kinds)} kinds ({examples}); keep one kind of image")
    return [frames[number] for number in sorted(frames)], skipped


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
        self.info = SourceInfo(path, "images", width, height, frame_rate, len(self.files))

    def timed_frames(self) -> Iterator[TimedFrame]:
        return _constant_rate_times((read_image_rgb(file) for file in self.files), self.info.frame_rate)


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
