"""Frame sinks for ``interpolate.py``: a video encoded with PyAV, or a folder of numbered PNG frames.

Both write under a hidden temporary name beside the target that is unique to the run and publish it by a rename
only when ``close()`` succeeds (see ``video/output.py``); ``abort()`` (or leaving the ``with`` block by an
exception, Ctrl-C included) deletes it and never raises, so the error that stopped the run is the one reported.
An interrupted run therefore never leaves a file with the requested name, and a run killed outright leaves only
a hidden file whose name says it is partial.

A video keeps the times it is given (``write(frame, time)``), so variable-frame-rate inputs keep their timing, and
can carry the input's display rotation, colour tags and HDR metadata. Frames in a planar Y'CbCr format are
converted from RGB here, with the output's matrix and range (video/colour.py); an original frame given with its
planes in the output's format is encoded as it was decoded, untouched. PNG frames are 8- or 16-bit.
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
from common.safe_write import fsync_file, partial_path, publish_file
from video.colour import Colour, image_colour, integer_rgb, rgb_to_ycbcr
from video.hdr import HDRMetadata
from video.output import (
    MARKER_NAME,
    frame_name,
    make_parents,
    marker_text,
    publish_folder,
    remove_folders,
    remove_stale_outputs,
)
from video.pixel_format import Planes, bit_depth, chroma_shape, frame_from_planes, is_planar_ycbcr
DEFAULT_CODEC = "libx264"
# libx264rgb encodes RGB planes directly; at crf 0 the decoded frames equal the input bit for bit.
LOSSLESS_CODEC = "libx264rgb"
# Codecs (FFmpeg encoder names) that take the x264-style rate-control options --crf and --preset.
CRF_AND_PRESET_CODECS = ("libx264", "libx264rgb", "libx265")
CRF_CODECS = ("libvpx", "libvpx-vp9", "libaom-av1", "libsvtav1")
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                "placebo")
# Largest constant rate factor: x264/x265 use 0..51, the VP9 and AV1 encoders 0..63.
MAX_CRF = {**dict.fromkeys(CRF_AND_PRESET_CODECS, 51), **dict.fromkeys(CRF_CODECS, 63)}
# How far audio may run ahead of the video written so far; keeps the two interleaved in the file.
AUDIO_LEAD_SECONDS = 0.5

logger = logging.getLogger(__name__)


def check_encoder_options(codec: str, crf: Optional[int], preset: Optional[str], lossless: bool = False) -> None:
    """Raise ValueError naming the flag when --crf or --preset cannot work with the encoder (as FFmpeg would only
    say with an error code once the encoder opens)."""
    if lossless:
        codec, crf = LOSSLESS_CODEC, 0
    if crf is not None and codec in MAX_CRF and not 0 <= crf <= MAX_CRF[codec]:
        raise ValueError(f"--crf {crf} is out of range for {codec}: use 0 (lossless) to {MAX_CRF[codec]}")
    if preset is not None and codec in CRF_AND_PRESET_CODECS and preset not in X264_PRESETS:
        raise ValueError(f"--preset {preset!r} is not a {codec} preset; one of {', '.join(X264_PRESETS)}")


def encoder_options(codec: str, crf: Optional[int], preset: Optional[str], hdr: Optional[HDRMetadata] = None
                    ) -> dict[str, str]:
    """FFmpeg options for --crf and --preset, crf 0 made truly lossless (x264 at high bit depth is lossless only at
    qp 0, x265 and VP9 only in their lossless modes), and the HDR metadata where the encoder takes it (x265)."""
    options, x265_params = {}, []
    if crf == 0 and codec in ("libx264", "libx264rgb"):
        options["qp"] = "0"
    elif crf == 0 and codec == "libx265":
        x265_params.append("lossless=1")
    elif crf == 0 and codec == "libvpx-vp9":
        options["lossless"] = "1"
    elif crf is not None and codec in CRF_AND_PRESET_CODECS + CRF_CODECS:
        options["crf"] = str(crf)
    if preset is not None and codec in CRF_AND_PRESET_CODECS:
        options["preset"] = preset
    if hdr is not None and codec == "libx265":
        x265_params.append(hdr.x265_params())
        logger.info("HDR metadata carried into the output: %s", hdr.describe())
    elif hdr is not None:
        logger.warning("the input's HDR metadata (%s) is not carried: only libx265 takes it here (--codec libx265)",
                       hdr.describe())
    if x265_params:
        options["x265-params"] = ":".join(x265_params)
    return options


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


def rgb_frame(frame: np.ndarray, bits: int) -> av.VideoFrame:
    """An RGB frame (float in [0, 1], uint8 or uint16) as an ``rgb24`` or, above 8 bits, ``rgb48le`` frame."""
    frame = integer_rgb(frame, np.uint8 if bits <= 8 else np.uint16)
    return av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24" if bits <= 8 else "rgb48le")


class VideoWriter(_CompleteOrAbort):
    """Encode (H, W, 3) RGB frames with PyAV, optionally copying audio.

    ``frame_rate`` is the nominal rate; frames written without a time follow it, frames written with one keep it
    (at the resolution of ``time_base``, default 1 / frame_rate). ``codec`` is an FFmpeg encoder name (default
    libx264); ``crf`` and ``preset`` apply to the x264/x265 family (``crf`` also to VP9/AV1). ``lossless``
    switches to libx264rgb at crf 0 with RGB samples (bit-exact; some players cannot show it). 4:2:0 needs even
    sizes, so odd-sized frames are encoded as 4:4:4 instead. ``colour`` gives the tags written and the Y'CbCr
    conversion (default: the frame size's usual matrix, limited range); ``hdr`` is written where the encoder takes
    it (libx265). ``rotation`` (degrees counter-clockwise) is written as the display matrix, as a phone writes it.
    ``audio_from`` names a file whose first audio stream is copied (use only when the duration is kept). ``replace`` allows replacing an existing file at ``path``.
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
        rotation: int = 0,
        time_base: Optional[Fraction] = None,
        replace: bool = False,
        colour: Optional[Colour] = None,
        hdr: Optional[HDRMetadata] = None,
    ) -> None:
        self.path = Path(path)
        self.replace = replace
        self.frame_rate = Fraction(frame_rate)
        self.time_base = Fraction(time_base) if time_base is not None else 1 / self.frame_rate
        self.frames_written = 0
        self.last_pts: Optional[int] = None
        self.audio: Optional[_AudioCopy] = None
        if lossless:
            codec, crf, pix_fmt = LOSSLESS_CODEC, 0, "rgb24"
        if pix_fmt.startswith("yuv420") and (width % 2 or height % 2):
            wide = pix_fmt.replace("420", "444")
            logger.info("%dx%d is odd-sized: encoding 4:4:4 (%s) instead of %s", width, height, wide, pix_fmt)
            pix_fmt = wide
        self.pix_fmt, self.bit_depth = pix_fmt, bit_depth(pix_fmt)
        self.colour = colour or image_colour(width, height)
        self.ycbcr = is_planar_ycbcr(pix_fmt)
        # What write() takes: float RGB for Y'CbCr (converted here unrounded), else the integers of the depth.
        self.sample_dtype = np.dtype(np.float32 if self.ycbcr else np.uint8 if self.bit_depth <= 8 else np.uint16)
        options = encoder_options(codec, crf, preset, hdr)

        self.created_folders = make_parents(self.path)
        remove_stale_outputs(self.path)
        self.temporary = partial_path(self.path)
        try:
            os.close(os.open(self.temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))  # claim the name
            self.container = av.open(str(self.temporary), mode="w")
        except BaseException:
            self.temporary.unlink(missing_ok=True)
            remove_folders(self.created_folders)
            raise
        try:
            self.stream = self.container.add_stream(codec, rate=self.frame_rate, options=options)
            self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, pix_fmt
            self.stream.codec_context.time_base = self.time_base
            self._tag_colour()
            if rotation:
                self.stream.set_display_rotation(rotation)
            if audio_from is not None:
                self.audio = _AudioCopy(Path(audio_from), self.container)
            self.container.start_encoding()  # codec or container problems surface now, before any frame
        except BaseException:
            self.abort()
            raise

    def _tag_colour(self) -> None:
        """Primaries and transfer as the source's; matrix and range as used for Y'CbCr (RGB formats keep theirs)."""
        context = self.stream.codec_context
        context.color_primaries, context.color_trc = self.colour.primaries, self.colour.transfer
        if self.ycbcr:
            context.colorspace, context.color_range = self.colour.matrix, self.colour.range_code

    def write(self, frame: np.ndarray, time: Optional[Fraction] = None, planes: Optional[Planes] = None) -> None:
        """Encode one RGB frame (``sample_dtype``), shown at ``time`` seconds (default: the next slot of the nominal
        rate); ``planes`` in the output's pixel format, if given, are encoded instead, untouched."""
        height, width = frame.shape[:2]
        if planes is not None:
            video_frame = frame_from_planes(planes, self.pix_fmt)
        elif self.ycbcr:
            coded = rgb_to_ycbcr(frame, self.bit_depth, chroma_shape(self.pix_fmt, width, height), self.colour)
            video_frame = frame_from_planes(coded, self.pix_fmt)
        else:
            video_frame = rgb_frame(frame, self.bit_depth)
        pts = self.frames_written if time is None else round(time / self.time_base)
        if self.last_pts is not None and pts <= self.last_pts:
            pts = self.last_pts + 1  # two inputs at one timestamp: the muxer needs increasing times
        video_frame.pts = self.last_pts = pts
        video_frame.time_base = self.time_base
        for packet in self.stream.encode(video_frame):
            self.container.mux(packet)
        self.frames_written += 1
        if self.audio is not None:
            self.audio.mux_until(self.container, float(pts * self.time_base) + AUDIO_LEAD_SECONDS)

    def close(self) -> None:
        """Flush the encoder, copy the rest of the audio, and publish the file under its name."""
        try:
            for packet in self.stream.encode():
                self.container.mux(packet)
            if self.audio is not None:
                self.audio.mux_until(self.container, None)
                self.audio.close()
            self.container.close()
            fsync_file(self.temporary)
            publish_file(self.temporary, self.path, self.replace)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Stop and delete the temporary file; the target path is left as it was. Never raises."""
        for close in ((self.audio.close,) if self.audio is not None else ()) + (self.container.close,):
            try:
                close()
            except Exception:  # a half-written stream may fail to finalise; the file is deleted anyway
                logger.debug("closing %s after an error failed", self.temporary, exc_info=True)
        try:
            self.temporary.unlink(missing_ok=True)
        except OSError:
            logger.warning("could not delete the partial output %s", self.temporary, exc_info=True)
        remove_folders(self.created_folders)


class PNGFolderWriter(_CompleteOrAbort):
    """Write frames as 8-bit (or, with ``bit_depth`` 16, 16-bit) ``000000.png``, ``000001.png``, ... into a folder
    that appears only when complete.

    ``close()`` adds the marker (``.interpolate.json``) and publishes the folder; with ``replace`` it swaps out an
    earlier output of this program at ``path`` (see ``video/output.py``). ``source`` is recorded in the marker.
    """

    def __init__(self, path: PathType, source: PathType, replace: bool = False, bit_depth: int = 8) -> None:
        self.path = Path(path)
        self.bit_depth = bit_depth
        self.sample_dtype = np.dtype(np.uint8 if bit_depth == 8 else np.uint16)
        self.source = Path(source)
        self.replace = replace
        self.frames_written = 0
        self.created_folders = make_parents(self.path)
        remove_stale_outputs(self.path)
        self.temporary = partial_path(self.path)
        try:
            self.temporary.mkdir()
        except BaseException:
            remove_folders(self.created_folders)
            raise

    def write(self, frame: np.ndarray, time: Optional[Fraction] = None, planes: Optional[Planes] = None) -> None:
        """Save one RGB frame of ``sample_dtype`` (a folder keeps no times or planes: ``time`` and ``planes`` are
        accepted for the video writer's signature)."""
        path = self.temporary / frame_name(self.frames_written)
        if self.bit_depth == 8:
            Image.fromarray(np.ascontiguousarray(frame)).save(path)
        else:  # Pillow cannot write 16-bit RGB
            encoder = av.CodecContext.create("png", "w")
            encoder.height, encoder.width = frame.shape[:2]
            encoder.pix_fmt = "rgb48be"
            image = rgb_frame(frame, 16).reformat(format="rgb48be")
            path.write_bytes(b"".join(bytes(packet) for packet in encoder.encode(image) + encoder.encode(None)))
        self.frames_written += 1

    def close(self) -> None:
        try:
            (self.temporary / MARKER_NAME).write_text(marker_text(self.frames_written, self.source), encoding="utf-8")
            publish_folder(self.temporary, self.path, self.replace)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Delete the temporary folder; the target path is left as it was. Never raises."""
        shutil.rmtree(self.temporary, ignore_errors=True)
        remove_folders(self.created_folders)
