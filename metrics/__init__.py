"""Frame-quality metrics: PSNR and SSIM on 8-bit rounded frames, and LPIPS (AlexNet)."""
from metrics.perceptual import LPIPS, find_alexnet_weights
from metrics.quality import calc_psnr, calc_ssim, quantize

__all__ = ["LPIPS", "calc_psnr", "calc_ssim", "find_alexnet_weights", "quantize"]
