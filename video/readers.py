"""Streaming frame sources for ``interpolate.py``: any video PyAV decodes, raw YUV files, folders of images.

A source opens and checks its input when it is built (a missing, unreadable or malformed input raises before
anything is written) and then yields (H, W, 3) uint8 RGB frames one at a time, so memory does not grow with the
length of the video. ``open_source`` picks the source from the path.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Optional, Union

import av
import numpy as np
from PIL import Image

from data.frames import read_image_rgb
from video.yuv import YUVFormat, format_from_name, frame_rate_from_name, split_planes, yuv_to_rgb

PathType = Union[str, Path]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
YUV_SUFFIXES = (".yuv",)


@dataclass(frozen=True)
class SourceInfo:
    """What the writer and the progress bar need to know about an input.

    ``frame_rate`` is None when the input does not say (a folder, or a YUV file without ``<n>fps`` in its name);
    ``frame_count`` is None when a container does not record it.
    """

    path: Path
    kind: str
    width: int
    height: int
    frame_rate: Optional[Fraction]
    frame_count: Optional[int]
    has_audio: bool = False


class FrameSource:
    """Base of the sources: ``info`` and iteration over RGB frames."""

    info: SourceInfo

    def __iter__(self) -> Iterator[np.ndarray]:
        raise NotImplementedError


class VideoFileSource(FrameSource):
    """The first video stream of a container, decoded with PyAV (FFmpeg), frame by frame.

    Variable-frame-rate inputs are treated as constant-rate at their average rate.
    """

    def __init__(self, path: PathType) -> None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"input {path} does not exist")
        try:
            with av.open(str(path)) as container:
                if not container.streams.video:
                    raise ValueError(f"{path} has no video stream")
                stream = container.streams.video[0]
                rate = stream.average_rate or stream.guessed_rate
                frame_count = stream.frames or None
                if frame_count is None and stream.duration is not None and rate:
                    frame_count = round(float(stream.duration * stream.time_base * rate))
                self.info = SourceInfo(
                    path=path,
                    kind="video",
                    width=stream.codec_context.width,
                    height=stream.codec_context.height,
                    frame_rate=Fraction(rate) if rate else None,
                    frame_count=frame_count,
                    has_audio=bool(container.streams.audio),
                )
        except av.error.FFmpegError as error:
            raise ValueError(f"cannot read {path} as a video: {error}") from error

    def __iter__(self) -> Iterator[np.ndarray]:
        with av.open(str(self.info.path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                yield frame.to_ndarray(format="rgb24")


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

    def __iter__(self) -> Iterator[np.ndarray]:
        with open(self.info.path, "rb") as file:
            for _ in range(self.info.frame_count):
                luma, cb, cr = split_planes(file.read(self.layout.bytes_per_frame), self.layout)
                yield yuv_to_rgb(luma, cb, cr, self.layout.bit_depth, self.matrix)


def _frame_number(path: Path) -> tuple[int, str]:
    numbers = re.findall(r"\d+", path.stem)
    return (int(numbers[-1]) if numbers else -1, path.name)


class ImageFolderSource(FrameSource):
    """A folder of numbered PNG/JPEG frames, in the order of the last number in each name."""

    def __init__(self, path: PathType, frame_rate: Optional[Fraction] = None) -> None:
        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"input folder {path} does not exist")
        self.files = sorted(
            (file for file in path.iterdir() if file.suffix.lower() in IMAGE_SUFFIXES and file.is_file()),
            key=_frame_number,
        )
        if not self.files:
            raise ValueError(f"{path} holds no {'/'.join(IMAGE_SUFFIXES)} frames")
        try:
            with Image.open(self.files[0]) as first:
                width, height = first.size
        except OSError as error:
            raise ValueError(f"cannot read {self.files[0]} as an image: {error}") from error
        self.info = SourceInfo(path, "images", width, height, frame_rate, len(self.files))

    def __iter__(self) -> Iterator[np.ndarray]:
        for file in self.files:
            frame = read_image_rgb(file)
            if frame.shape[:2] != (self.info.height, self.info.width):
                raise ValueError(
                    f"{file} is {frame.shape[1]}x{frame.shape[0]}, but the first frame is "
                    f"{self.info.width}x{self.info.height}; all frames must have one size"
                )
            yield frame


def open_source(
    path: PathType,
    size: Optional[str] = None,
    chroma: Optional[str] = None,
    bit_depth: Optional[int] = None,
    frame_rate: Optional[Fraction] = None,
    matrix: str = "bt601",
) -> FrameSource:
    """The source for ``path``: a folder of images, a ``.yuv`` file, or a video container.

    ``size``, ``chroma`` and ``bit_depth`` apply to YUV files (None: from the file name, as the original did).
    ``frame_rate`` overrides the input's own rate (needed for folders and for YUV names without ``<n>fps``).
    """
    path = Path(path)
    if path.is_dir():
        return ImageFolderSource(path, frame_rate)
    if path.suffix.lower() in YUV_SUFFIXES:
        layout = format_from_name(path, size, chroma, bit_depth)
        return YUVFileSource(path, layout, frame_rate or frame_rate_from_name(path), matrix)
    source = VideoFileSource(path)
    if frame_rate is not None:
        source.info = replace(source.info, frame_rate=Fraction(frame_rate))
    return source
