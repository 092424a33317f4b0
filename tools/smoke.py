"""End-to-end smoke run on the shipped clip: four frames in, the interpolated middle frame out.

    python tools/smoke.py [--net student_STMFNet] [--checkpoint PATH] [--device auto|cpu|cuda]

Decodes frames 0-3 of assets/bbb_448x256.mp4, synthesises the frame between frames 1 and 2 and writes it to
smoke_output/<net>_middle.png. Without --checkpoint the network has random weights: the run then checks that
installation, ops and model work together, not picture quality.
"""
import argparse
import sys
import time
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import models  # noqa: E402
from utility import load_checkpoint  # noqa: E402

CLIP = REPO_ROOT / "assets" / "bbb_448x256.mp4"


def read_frames(path: Path, count: int) -> list[torch.Tensor]:
    """The first ``count`` frames of a video as (1, 3, H, W) float tensors in [0, 1]."""
    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            rgb = torch.from_numpy(frame.to_ndarray(format="rgb24")).permute(2, 0, 1)
            frames.append(rgb.unsqueeze(0).float() / 255)
            if len(frames) == count:
                return frames
    raise ValueError(f"{path} has only {len(frames)} frames, {count} needed")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--net", default="student_STMFNet", help="model name: " + ", ".join(models.MODELS))
    parser.add_argument("--checkpoint", default=None, help="optional .pth ({'epoch', 'state_dict'} or bare)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where to run")
    parser.add_argument("--out_dir", default="smoke_output", help="folder for the output PNG")
    return parser


def main() -> None:
    args = build_parser().parse_args()
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)
    torch.manual_seed(0)
    model = models.get_model_class(args.net)()
    if args.checkpoint:
        load_checkpoint(model, args.checkpoint)
    model = model.to(device).eval()

    frames = [frame.to(device) for frame in read_frames(CLIP, 4)]
    start = time.perf_counter()
    with torch.inference_mode():
        middle = model(*frames)
    seconds = time.perf_counter() - start

    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    out_path = out_dir / f"{args.net}_middle.png"
    pixels = (middle[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
    Image.fromarray(np.ascontiguousarray(pixels)).save(out_path)
    weights = args.checkpoint or "random weights"
    print(f"{args.net} ({weights}) on {device}: {tuple(frames[0].shape)} frames -> {tuple(middle.shape)} "
          f"in {seconds:.2f} s, values in [{middle.min():.3f}, {middle.max():.3f}]; wrote {out_path}")


if __name__ == "__main__":
    main()
