"""A tiny training dataset in the original on-disk layout, written by the training tests themselves."""
from pathlib import Path

import numpy as np
from PIL import Image

PATCH = 64
FRAME_HEIGHT, FRAME_WIDTH = 64, 80  # a little wider than the crop, so crop positions vary


def _smooth_frames(generator: np.random.Generator, count: int, height: int, width: int) -> list[np.ndarray]:
    """``count`` consecutive frames of a smooth random pattern drifting one pixel per frame (some real motion)."""
    coarse = generator.random((height // 8 + 2, (width + count) // 8 + 2, 3))
    pattern = np.asarray(Image.fromarray((coarse * 255).astype(np.uint8)).resize(
        ((width + count) + 16, height + 16), Image.BICUBIC))
    return [pattern[8:8 + height, 8 + k:8 + k + width] for k in range(count)]


def write_tiny_dataset(root: Path) -> Path:
    """vimeo_septuplet with 2 training and 1 test septuplet of 64x80 frames, bvidvc with 1 quintuplet of 64x64
    tiles: 3 training items (3 steps per epoch at batch size 1) and 1 validation item."""
    generator = np.random.default_rng(0)
    vimeo = root / "vimeo_septuplet"
    names = {"sep_trainlist.txt": ["00001/0001", "00001/0002"], "sep_testlist.txt": ["00002/0001"]}
    for list_name, sequences in names.items():
        for name in sequences:
            folder = vimeo / "sequences" / name
            folder.mkdir(parents=True)
            for k, frame in enumerate(_smooth_frames(generator, 7, FRAME_HEIGHT, FRAME_WIDTH), 1):
                Image.fromarray(frame).save(folder / f"im{k}.png")
        (vimeo / list_name).write_text("\n".join(sequences) + "\n")
    frames = _smooth_frames(generator, 7, PATCH, PATCH)
    tiles = [frames[k] for k in (0, 2, 4, 6, 3)]  # frames 1, 3, 5, 7, then the target 4
    quintuplet = root / "bvidvc" / "quintuplets" / "00000"
    quintuplet.mkdir(parents=True)
    Image.fromarray(np.concatenate(tiles, axis=1)).save(quintuplet / "quintuplet.png")
    return root
