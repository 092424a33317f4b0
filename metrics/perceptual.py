"""LPIPS perceptual distance (Zhang et al., CVPR 2018), AlexNet trunk, v0.1, via the `lpips` package.

The `lpips` package ships its calibrated linear layers but fetches the ImageNet AlexNet
trunk from the internet (torchvision) when built. This wrapper never downloads: it takes
the torchvision AlexNet checkpoint from a given file, from $LPIPS_ALEXNET_WEIGHTS, or from
the torch hub cache, and otherwise raises an error that says how to provide it.

As in the original `calc_lpips`, frames are rounded to 8 bits before scoring.
"""
import os
import warnings
from pathlib import Path
from typing import Optional, Union

import torch
from torch import Tensor, nn

from metrics.quality import quantize

ALEXNET_CHECKPOINT = "alexnet-owt-7be5be79.pth"
ALEXNET_URL = f"https://download.pytorch.org/models/{ALEXNET_CHECKPOINT}"
ALEXNET_WEIGHTS_ENV = "LPIPS_ALEXNET_WEIGHTS"
# torchvision AlexNet `features.<i>` conv layers -> the lpips trunk slice holding layer i.
_TRUNK_SLICE_OF_LAYER = {0: 1, 3: 2, 6: 3, 8: 4, 10: 5}


def find_alexnet_weights(path: Optional[Union[str, Path]] = None) -> Path:
    """The AlexNet checkpoint to use: `path`, else $LPIPS_ALEXNET_WEIGHTS, else the torch hub cache."""
    if path is None:
        path = os.environ.get(ALEXNET_WEIGHTS_ENV) or Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_CHECKPOINT
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"LPIPS needs the ImageNet AlexNet weights and will not download them; {path} does not exist. "
            f"Download {ALEXNET_URL} on a machine with internet access and either put it at "
            f"{Path(torch.hub.get_dir()) / 'checkpoints' / ALEXNET_CHECKPOINT}, set ${ALEXNET_WEIGHTS_ENV} "
            f"to its path, or pass its path explicitly."
        )
    return path


def _trunk_state_dict(alexnet_state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename torchvision AlexNet `features.<i>.*` entries to lpips' `net.slice<k>.<i>.*`."""
    trunk = {}
    for layer, slice_index in _TRUNK_SLICE_OF_LAYER.items():
        for kind in ("weight", "bias"):
            key = f"features.{layer}.{kind}"
            if key not in alexnet_state:
                raise ValueError(f"AlexNet checkpoint lacks {key!r}: expected a torchvision alexnet state dict")
            trunk[f"net.slice{slice_index}.{layer}.{kind}"] = alexnet_state[key]
    return trunk


class LPIPS(nn.Module):
    """Per-image LPIPS (AlexNet, v0.1) between frames in [0, 1]; 0 for identical images, lower is better.

    Build it once, move it to the frames' device, call ``metric(gt, out)`` -> (B,).
    """

    def __init__(self, alexnet_weights: Optional[Union[str, Path]] = None) -> None:
        super().__init__()
        weights_path = find_alexnet_weights(alexnet_weights)
        # Imported here: `lpips` pulls in torchvision and takes seconds to import.
        import lpips

        with warnings.catch_warnings():
            # lpips builds torchvision's alexnet with the deprecated `pretrained=` argument.
            warnings.simplefilter("ignore", UserWarning)
            # pnet_rand=True: an untrained trunk, filled below (the default would download it).
            self.model = lpips.LPIPS(net="alex", version="0.1", pnet_rand=True, verbose=False)
        alexnet_state = torch.load(weights_path, map_location="cpu", weights_only=True)
        missing, unexpected = self.model.load_state_dict(_trunk_state_dict(alexnet_state), strict=False)
        if unexpected or any(key.startswith("net.") for key in missing):
            raise ValueError(f"AlexNet weights from {weights_path} do not fit the LPIPS trunk")
        self.model.eval()
        self.model.requires_grad_(False)

    def forward(self, gt: Tensor, out: Tensor) -> Tensor:
        if gt.shape != out.shape or gt.dim() != 4 or gt.shape[1] != 3:
            raise ValueError(
                f"expected two (B, 3, H, W) tensors of the same shape, got {tuple(gt.shape)} and {tuple(out.shape)}"
            )
        distance = self.model(quantize(gt) / 255, quantize(out) / 255, normalize=True)
        return distance.flatten()
