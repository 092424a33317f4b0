"""The AdaCoF warps at full and double scale computed in bands of output rows, for CPU inference.

At those scales each kernel sub-network ends with bilinear upsampling of a low-resolution map and a 3x3
convolution at the target size; at double scale each of the six maps is 52 MB for a 256x512 input. Made for the
whole frame, every map goes to memory and back several times (upsampling, convolution, softmax, warp), and the
machine's memory bandwidth, not its arithmetic, sets the pace. Here one band of rows at a time goes through
upsampling, convolution, softmax and the warp while it is still in cache, and the full-size maps never exist, which
also bounds the memory of large frames.

Same numbers as the plain path to float32 rounding: each band's convolution sees the rows above and below it (and
zeros only at the frame's own edges), and the warp reads the whole frame at the band's true rows.
"""
from __future__ import annotations

from torch import Tensor, nn

from cupy_module.adacof import RowWarp
from deploy.cpu.fused import fused_route, run_layers
from deploy.cpu.resize import numba, upsample

# Rows per band: about this many bytes of one band's map, which keeps a band's working set in cache.
_BAND_BYTES = 2**21
# Layers of a kernel sub-network that upsamples: 0-5 at low resolution, then upsampling and a convolution, then
# the weights' softmax (models/kernel_estimation.py).
_LOW_RESOLUTION_LAYERS = 6


def banded_route(x: Tensor, subnetworks: list[nn.Sequential]) -> bool:
    """Whether the sub-networks' warp can run in bands: fused CPU inference, numba present, and sub-networks that
    end with upsampling and a convolution."""
    return fused_route(x) and numba is not None and all(
        len(net) > _LOW_RESOLUTION_LAYERS + 1 and isinstance(net[_LOW_RESOLUTION_LAYERS], nn.Upsample)
        and isinstance(net[_LOW_RESOLUTION_LAYERS + 1], nn.Conv2d) for net in subnetworks
    )


def warp_in_bands(subnetworks: list[nn.Sequential], features: Tensor, padded_frame: Tensor, dilation: int
                  ) -> Tensor:
    """AdaCoF of ``padded_frame`` with the (weight, vertical offset, horizontal offset) ``subnetworks`` applied to
    ``features``: the same as making the three maps and warping with them, band by band. Returns (B, C, H, W)
    channels-last."""
    # float32 for the upsampling kernel (these maps are small; under bfloat16 autocast they come out bfloat16).
    low_resolution = [run_layers(net[:_LOW_RESOLUTION_LAYERS], features).float() for net in subnetworks]
    upsampling = subnetworks[0][_LOW_RESOLUTION_LAYERS]
    height = int(features.shape[-2] * upsampling.scale_factor)
    width = int(features.shape[-1] * upsampling.scale_factor)
    batch, channels = padded_frame.shape[:2]
    taps = subnetworks[0][_LOW_RESOLUTION_LAYERS + 1].out_channels
    band_rows = max(1, _BAND_BYTES // (batch * width * taps * padded_frame.element_size()))
    output = padded_frame.new_empty(batch, height, width, channels)
    warp = RowWarp(padded_frame, dilation)
    for first in range(0, height, band_rows):
        last = min(first + band_rows, height)
        # The convolution's input: the band plus one row either side, except past the frame's edges.
        above, below = max(first - 1, 0), min(last + 1, height)
        maps = []
        for net, low in zip(subnetworks, low_resolution):
            upsampled = upsample(net[_LOW_RESOLUTION_LAYERS], low, rows=slice(above, below))
            band = net[_LOW_RESOLUTION_LAYERS + 1](upsampled)[:, :, first - above:last - above].float()
            for layer in net[_LOW_RESOLUTION_LAYERS + 2:]:
                band = layer(band)
            maps.append(band)
        warp(*maps, first, output[:, first:last])
    return output.permute(0, 3, 1, 2)
