"""Decoding a video file into 8-bit RGB frames for the data sets (``video/readers.py`` decodes)."""
from __future__ import annotations

from itertools import islice
from typing import Optional

import numpy as np

from common.files import PathType
from video.readers import VideoFileSource


def read_video_frames(path: PathType, max_frames: Optional[int] = None) -> list[np.ndarray]:
    """The first ``max_frames`` frames (all when None) of the video's first stream, as (H, W, 3) uint8 RGB arrays
    (:meth:`video.readers.VideoFileSource.rgb24_frames`). A missing, unreadable or damaged file is a ValueError
    (FileNotFoundError when missing) naming it."""
    return list(islice(VideoFileSource(path).rgb24_frames(), max_frames))
