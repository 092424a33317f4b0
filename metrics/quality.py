"""Full-reference quality metrics of the original evaluation: PSNR and SSIM on 8-bit frames.

Both metrics first quantise the frames as they would be saved: clamp to [0, 1], scale to
0..255 and round. Scores are therefore those of the 8-bit images, not of the raw network
output. Each function takes (B, C, H, W) tensors in [0, 1] and returns one value per image.
"""
import torch
import torch.nn.functional as F
from torch import Tensor

SSIM_WINDOW_SIZE = 11
SSIM_SIGMA = 1.5


def quantize(frames: Tensor) -> Tensor:
    """Frames in [0, 1] -> rounded 8-bit values 0..255, in the input dtype."""
    return frames.clamp(0.0, 1.0).mul(255).round()


def _check_pair(gt: Tensor, out: Tensor) -> None:
    if gt.shape != out.shape or gt.dim() != 4:
        raise ValueError(
            f"expected two (B, C, H, W) tensors of the same shape, got {tuple(gt.shape)} and {tuple(out.shape)}"
        )


def calc_psnr(gt: Tensor, out: Tensor) -> Tensor:
    """Per-image PSNR in dB of the 8-bit rounded frames, shape (B,).

    The 1e-8 added to the normalised MSE caps identical images at 80 dB instead of inf.
    """
    _check_pair(gt, out)
    mse = (quantize(gt) - quantize(out)).pow(2).mean(dim=(1, 2, 3))
    return -10 * torch.log10(mse / 255**2 + 1e-8)


def gaussian_taps(size: int, sigma: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Normalised 1-D Gaussian; the 3-D SSIM window is its outer product along (channel, H, W)."""
    offsets = torch.arange(size, dtype=torch.float64) - size // 2
    taps = torch.exp(-(offsets**2) / (2 * sigma**2))
    return (taps / taps.sum()).to(dtype=dtype, device=device)


def calc_ssim(gt: Tensor, out: Tensor, size_average: bool = False) -> Tensor:
    """Per-image SSIM of the 8-bit rounded frames, shape (B,) (with ``size_average``, as in the original, their
    mean as a 0-dimensional tensor); 1 for identical images, at most 1.

    MATLAB-style SSIM on the 0..255 range as in the original (`ssim_matlab` of its
    pytorch_ssim copy): colour is treated as a third dimension, so the statistics use an
    11x11x11 Gaussian window (sigma 1.5) over (channel, H, W) with replicate padding of 5
    on all three axes, C1 = (0.01*255)^2, C2 = (0.03*255)^2, averaged over the whole map.
    Frames must be at least 11x11 (the original shrank the window below that size, which
    made its map larger than the image).
    """
    _check_pair(gt, out)
    height, width = gt.shape[-2:]
    if min(height, width) < SSIM_WINDOW_SIZE:
        raise ValueError(
            f"calc_ssim needs frames of at least {SSIM_WINDOW_SIZE}x{SSIM_WINDOW_SIZE}, got {height}x{width}"
        )
    taps = gaussian_taps(SSIM_WINDOW_SIZE, SSIM_SIGMA, gt.dtype, gt.device)
    pad = SSIM_WINDOW_SIZE // 2

    # (B, 1, C, H, W): one single-channel volume per image.
    img1 = quantize(gt).unsqueeze(1)
    img2 = quantize(out).unsqueeze(1)
    # The five local means in one batch; the separable window is applied one axis at a time after the
    # replicate padding: the original's single 11x11x11 convolution up to float rounding,
    # at a fraction of the cost.
    volumes = F.pad(torch.cat([img1, img2, img1 * img1, img2 * img2, img1 * img2]), (pad,) * 6, mode="replicate")
    for axis_shape in ((1, 1, -1, 1, 1), (1, 1, 1, -1, 1), (1, 1, 1, 1, -1)):
        volumes = F.conv3d(volumes, taps.view(axis_shape))
    mu1, mu2, mean11, mean22, mean12 = volumes.chunk(5)
    sigma1_sq = mean11 - mu1**2
    sigma2_sq = mean22 - mu2**2
    sigma12 = mean12 - mu1 * mu2

    c1 = (0.01 * 255) ** 2
    c2 = (0.03 * 255) ** 2
    ssim_map = ((2 * mu1 * mu2 + c1) * (2 * sigma12 + c2)) / ((mu1**2 + mu2**2 + c1) * (sigma1_sq + sigma2_sq + c2))
    per_image = ssim_map.flatten(1).mean(1)
    return per_image.mean() if size_average else per_image
