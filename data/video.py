"""Decoding a video file into RGB frames with PyAV."""
from __future__ import annotations

from typing import Optional

import av
import numpy as np

from common.files import PathType


def read_video_frames(path: PathType, max_frames: Optional[int] = None) -> list[np.ndarray]:
    """The first ``max_frames`` frames (all when None) of the video's first stream, as (H, W, 3) uint8 RGB arrays."""
    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if max_frames is not None and len(frames) >= max_frames:
                break
    return frames
