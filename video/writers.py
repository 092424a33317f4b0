"""Frame sinks for ``interpolate.py``: a video encoded with PyAV, or a folder of numbered PNG frames.

Both write under a temporary name beside the target (``.<name>.partial<suffix>``) and rename it only when
``close()`` succeeds; ``abort()`` (or leaving the ``with`` block by an exception, Ctrl-C included) deletes it.
An interrupted run therefore never leaves a file with the requested name, and a run killed outright leaves only
a hidden file whose name says it is partial.
"""
from __future__ import annotations

import logging
import os
import shutil
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Optional, Self

import av
import numpy as np
from PIL import Image

from common.files import PathType

DEFAULT_CODEC = "libx264"
# libx264rgb encodes RGB planes directly; at crf 0 the decoded frames equal the input bit for bit.
LOSSLESS_CODEC = "libx264rgb"
# Codecs (FFmpeg encoder names) that take the x264-style rate-control options --crf and --preset.
CRF_AND_PRESET_CODECS = ("libx264", "libx264rgb", "libx265")
CRF_CODECS = ("libvpx", "libvpx-vp9", "libaom-av1", "libsvtav1")
# How far audio may run ahead of the video written so far; keeps the two interleaved in the file.
AUDIO_LEAD_SECONDS = 0.5

logger = logging.getLogger(__name__)


def partial_path(path: Path) -> Path:
    """Hidden temporary name beside ``path`` that keeps its suffix (FFmpeg picks the container from it)."""
    return path.with_name(f".{path.stem}.partial{path.suffix}")


class _AudioCopy:
    """The first audio stream of a file, added to an output container and copied packet by packet, unchanged."""

    def __init__(self, source: Path, output: av.container.OutputContainer) -> None:
        self.container = av.open(str(source))
        try:
            self.input_stream = self.container.streams.audio[0]
            self.output_stream = output.add_stream_from_template(self.input_stream)
            video = self.container.streams.video
            # The output video starts at 0: shift the audio by the input video's start to keep them in sync.
            video_start = (
                float(video[0].start_time * video[0].time_base) if video and video[0].start_time is not None else 0.0
            )
            self.offset = round(video_start / self.input_stream.time_base)
            self.packets: Iterator[av.Packet] = self.container.demux(self.input_stream)
        except BaseException:
            self.container.close()
            raise
        self.pending: Optional[av.Packet] = None
        self.finished = False

    def mux_until(self, output: av.container.OutputContainer, seconds: Optional[float]) -> None:
        """Copy packets starting before ``seconds`` (all remaining when None)."""
        while not self.finished:
            if self.pending is None:
                self.pending = next(self.packets, None)
                if self.pending is None:
                    self.finished = True
                    return
            packet = self.pending
            if packet.dts is None:  # the demuxer's empty flush packet
                self.pending = None
                continue
            if seconds is not None and float((packet.pts - self.offset) * packet.time_base) > seconds:
                return
            packet.pts -= self.offset
            packet.dts -= self.offset
            packet.stream = self.output_stream
            output.mux(packet)
            self.pending = None

    def close(self) -> None:
        self.container.close()


class _CompleteOrAbort:
    """Context manager of a writer: ``close()`` (publish the output) on success, ``abort()`` (discard it) on error."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class VideoWriter(_CompleteOrAbort):
    """Encode (H, W, 3) uint8 RGB frames at a constant ``frame_rate`` with PyAV, optionally copying audio.

    ``codec`` is an FFmpeg encoder name (default libx264); ``crf`` and ``preset`` apply to the x264/x265 family
    (``crf`` also to VP9/AV1). ``lossless`` switches to libx264rgb at crf 0 with RGB samples (bit-exact; some
    players cannot show it). 4:2:0 needs even sizes, so odd-sized frames are encoded as 4:4:4 instead.
    ``audio_from`` names a file whose first audio stream is copied (use only when the duration is kept).
    """

    def __init__(
        self,
        path: PathType,
        width: int,
        height: int,
        frame_rate: Fraction,
        codec: str = DEFAULT_CODEC,
        crf: Optional[int] = 0,
        preset: Optional[str] = "veryslow",
        pix_fmt: str = "yuv420p",
        lossless: bool = False,
        audio_from: Optional[PathType] = None,
    ) -> None:
        self.path = Path(path)
        self.temporary = partial_path(self.path)
        self.frame_rate = Fraction(frame_rate)
        self.frames_written = 0
        if lossless:
            codec, crf, pix_fmt = LOSSLESS_CODEC, 0, "rgb24"
        if pix_fmt.startswith("yuv420") and (width % 2 or height % 2):
            logger.info("%dx%d is odd-sized: encoding 4:4:4 (yuv444p) instead of %s", width, height, pix_fmt)
            pix_fmt = "yuv444p"
        options = {}
        if crf is not None and codec in CRF_AND_PRESET_CODECS + CRF_CODECS:
            options["crf"] = str(crf)
        if preset is not None and codec in CRF_AND_PRESET_CODECS:
            options["preset"] = preset

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.container = av.open(str(self.temporary), mode="w")
        self.audio: Optional[_AudioCopy] = None
        try:
            self.stream = self.container.add_stream(codec, rate=self.frame_rate, options=options)
            self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, pix_fmt
            self.stream.codec_context.time_base = 1 / self.frame_rate
            if audio_from is not None:
                self.audio = _AudioCopy(Path(audio_from), self.container)
            self.container.start_encoding()  # codec or container problems surface now, before any frame
        except BaseException:
            self.abort()
            raise

    def write(self, frame: np.ndarray) -> None:
        video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        video_frame.pts = self.frames_written
        video_frame.time_base = 1 / self.frame_rate
        for packet in self.stream.encode(video_frame):
            self.container.mux(packet)
        self.frames_written += 1
        if self.audio is not None:
            self.audio.mux_until(self.container, float(self.frames_written / self.frame_rate) + AUDIO_LEAD_SECONDS)

    def close(self) -> None:
        """Flush the encoder, copy the rest of the audio and move the file to its final name."""
        try:
            for packet in self.stream.encode():
                self.container.mux(packet)
            if self.audio is not None:
                self.audio.mux_until(self.container, None)
                self.audio.close()
            self.container.close()
        except BaseException:
            self.abort()
            raise
        os.replace(self.temporary, self.path)

    def abort(self) -> None:
        """Stop and delete the temporary file; the target path is left as it was."""
        if self.audio is not None:
            self.audio.close()
        try:
            self.container.close()
        except (av.error.FFmpegError, ValueError, OSError):
            pass  # a half-initialised stream may fail to finalise; the file is deleted anyway
        self.temporary.unlink(missing_ok=True)


class PNGFolderWriter(_CompleteOrAbort):
    """Write frames as ``000000.png``, ``000001.png``, ... into a folder that appears only when complete.

    An existing folder at ``path`` is replaced by ``close()`` (the caller decides whether that is allowed).
    """

    def __init__(self, path: PathType) -> None:
        self.path = Path(path)
        self.temporary = partial_path(self.path)
        self.frames_written = 0
        if self.temporary.exists():
            shutil.rmtree(self.temporary)
        self.temporary.mkdir(parents=True)

    def write(self, frame: np.ndarray) -> None:
        Image.fromarray(np.ascontiguousarray(frame)).save(self.temporary / f"{self.frames_written:06d}.png")
        self.frames_written += 1

    def close(self) -> None:
        if self.path.is_dir():
            shutil.rmtree(self.path)
        elif self.path.exists():
            self.path.unlink()
        os.replace(self.temporary, self.path)

    def abort(self) -> None:
        shutil.rmtree(self.temporary, ignore_errors=True)
