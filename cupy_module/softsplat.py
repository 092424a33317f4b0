"""Softmax splatting (Niklaus & Liu, CVPR 2020): forward warping used by the ST-MFNet teacher (Sec. 3.2).

Every source pixel (x, y) is pushed to (x + flow_x, y + flow_y) and shared between the four surrounding target
pixels with bilinear weights; targets outside the frame are dropped (no clamping), contributions are summed.
The wrapper modes normalise that sum as the original does:

- ``summation``: the raw splat;
- ``average``:   splat [input, 1], divide by the splatted ones;
- ``linear``:    splat [input * metric, metric], divide by the splatted metric;
- ``softmax``:   splat [input * exp(metric), exp(metric)] (no max subtraction, as the original), divide.

Where the splatted normaliser is exactly 0 it is replaced by 1, so those pixels come out as 0 and pass no gradient
to the normaliser. The backward pass is the true gradient of the splat (the floor-selected bilinear piece at exact
integer landing positions), as the original CUDA kernels compute it.
"""
from typing import Optional

import torch

from cupy_module._cuda import autocast_backward, autocast_forward, check_float_tensors, launch, use_cuda_kernel

MODES = ("summation", "average", "linear", "softmax")


def softsplat(input: torch.Tensor, flow: torch.Tensor, metric: Optional[torch.Tensor], mode: str) -> torch.Tensor:
    """Forward-warp ``input`` (B, C, H, W) by ``flow`` (B, 2, H, W; channel 0 = x) in one of :data:`MODES`.

    ``metric`` (B, 1, H, W) is required for ``linear`` and ``softmax`` and ignored otherwise.
    """
    if mode not in MODES:
        raise ValueError(f"softsplat: mode must be one of {MODES}, got {mode!r}")
    if mode in ("linear", "softmax"):
        if metric is None:
            raise ValueError(f"softsplat: mode {mode!r} needs a metric (B, 1, H, W), got None")
        # Shapes only: dtypes are checked by the splat itself, after autocast has cast its inputs to float32.
        if metric.dim() != 4 or metric.shape[0] != input.shape[0] or metric.shape[1] != 1 \
                or metric.shape[2:] != input.shape[2:]:
            raise ValueError(
                f"softsplat: metric {tuple(metric.shape)} must be (B, 1, H, W) for input {tuple(input.shape)}"
            )
    if mode == "average":
        input = torch.cat([input, input.new_ones(input.shape[0], 1, *input.shape[2:])], dim=1)
    elif mode == "linear":
        input = torch.cat([input * metric, metric], dim=1)
    elif mode == "softmax":
        weight = metric.exp()
        input = torch.cat([input * weight, weight], dim=1)

    # torch.compile and torch.onnx.export trace the scatter-add formulation (ScatterElements in ONNX).
    splatted = splat_traceable(input, flow) if torch.compiler.is_compiling() else _Splat.apply(input, flow)
    if mode == "summation":
        return splatted
    normaliser = splatted[:, -1:]
    normaliser = torch.where(normaliser == 0.0, torch.ones_like(normaliser), normaliser)
    return splatted[:, :-1] / normaliser


def FunctionSoftsplat(tenInput: torch.Tensor, tenFlow: torch.Tensor, tenMetric: Optional[torch.Tensor],
                      strType: str) -> torch.Tensor:
    """The original entry point; same as :func:`softsplat`."""
    return softsplat(tenInput, tenFlow, tenMetric, strType)


class ModuleSoftsplat(torch.nn.Module):
    """``softsplat`` as a module with a fixed mode (original name; it has no parameters)."""

    def __init__(self, strType: str):
        super().__init__()
        if strType not in MODES:
            raise ValueError(f"ModuleSoftsplat: mode must be one of {MODES}, got {strType!r}")
        self.strType = strType

    def forward(self, tenInput: torch.Tensor, tenFlow: torch.Tensor,
                tenMetric: Optional[torch.Tensor] = None) -> torch.Tensor:
        return softsplat(tenInput, tenFlow, tenMetric, self.strType)


class _Splat(torch.autograd.Function):
    """The summation splat with the original's explicit backward."""

    @staticmethod
    @autocast_forward
    def forward(ctx, input, flow):
        check_float_tensors("softsplat", input=input, flow=flow)
        if flow.shape[1] != 2 or flow.shape[2:] != input.shape[2:]:
            raise ValueError(
                f"softsplat: flow {tuple(flow.shape)} must be (B, 2, H, W) for input {tuple(input.shape)}"
            )
        input, flow = input.contiguous(), flow.contiguous()
        ctx.save_for_backward(input, flow)
        if use_cuda_kernel(input):
            output = torch.zeros_like(input)
            launch(_CUDA_SOURCE, "splat_forward", input.numel(), input, flow, output,
                   *input.shape[1:])
            return output
        return _forward_torch(input, flow)

    @staticmethod
    @autocast_backward
    def backward(ctx, grad_output):
        input, flow = ctx.saved_tensors
        grad_output = grad_output.contiguous()
        if use_cuda_kernel(input):
            grad_input = torch.empty_like(input)
            grad_flow = torch.empty_like(flow)
            launch(_CUDA_SOURCE, "splat_backward_input", input.numel(), flow, grad_output,
                   grad_input, *input.shape[1:])
            launch(_CUDA_SOURCE, "splat_backward_flow", flow.numel(), input, flow, grad_output,
                   grad_flow, *input.shape[1:])
            return grad_input, grad_flow
        return _backward_torch(input, flow, grad_output)


@autocast_forward
def splat_traceable(input: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """The summation splat from standard tensor ops: a scatter-add of every corner's share, out-of-frame ones zeroed."""
    check_float_tensors("softsplat", input=input, flow=flow)
    return _forward_torch(input.contiguous(), flow.contiguous())


def _corners(flow: torch.Tensor):
    """Landing corners of every source pixel: flat target index, in-frame mask and bilinear weights.

    Returns ``index`` and ``inside`` (B, 4, H*W), ``weights`` (B, 4, H*W), and the derivatives of the weights
    with respect to flow x and flow y (B, 4, H*W). Corner order: north-west, north-east, south-west, south-east.
    The weights are written as in the original kernel, (x0 + 1 - x) rather than 1 - (x - x0), for equal rounding.
    """
    batch, _, height, width = flow.shape
    grid_x = torch.arange(width, device=flow.device, dtype=flow.dtype).view(1, 1, width)
    grid_y = torch.arange(height, device=flow.device, dtype=flow.dtype).view(1, height, 1)
    x = grid_x + flow[:, 0]
    y = grid_y + flow[:, 1]
    west, north = x.floor(), y.floor()
    east, south = west + 1, north + 1
    to_east, to_west = east - x, x - west  # weights of the west and east columns
    to_south, to_north = south - y, y - north
    weights = torch.stack(
        (to_east * to_south, to_west * to_south, to_east * to_north, to_west * to_north), dim=1
    )
    d_weights_dx = torch.stack((-to_south, to_south, -to_north, to_north), dim=1)
    d_weights_dy = torch.stack((-to_east, -to_west, to_east, to_west), dim=1)

    cols = torch.stack((west, east, west, east), dim=1).long()
    rows = torch.stack((north, north, south, south), dim=1).long()
    inside = (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)
    index = torch.where(inside, rows * width + cols, torch.zeros_like(cols))
    flat = (batch, 4, height * width)
    return (index.view(flat), inside.view(flat), weights.view(flat), d_weights_dx.view(flat),
            d_weights_dy.view(flat))


def _forward_torch(input, flow):
    batch, channels, height, width = input.shape
    index, inside, weights, _, _ = _corners(flow)
    contributions = input.view(batch, channels, 1, -1) * (weights * inside).unsqueeze(1)  # (B, C, 4, HW)
    output = input.new_zeros(batch, channels, height * width)
    output.scatter_add_(2, index.view(batch, 1, -1).expand(batch, channels, -1), contributions.flatten(2))
    return output.view_as(input)


def _backward_torch(input, flow, grad_output):
    batch, channels, height, width = input.shape
    index, inside, weights, d_weights_dx, d_weights_dy = _corners(flow)
    # Incoming gradient at each landing corner, zero where the corner fell outside the frame: (B, C, 4, HW).
    grad_at_corners = grad_output.view(batch, channels, -1).gather(
        2, index.view(batch, 1, -1).expand(batch, channels, -1)
    ).view(batch, channels, 4, -1) * inside.unsqueeze(1)
    grad_input = (grad_at_corners * weights.unsqueeze(1)).sum(dim=2).view_as(input)
    input_times_grad = (input.view(batch, channels, 1, -1) * grad_at_corners).sum(dim=1)  # (B, 4, HW)
    grad_flow = torch.stack(
        ((input_times_grad * d_weights_dx).sum(dim=1), (input_times_grad * d_weights_dy).sum(dim=1)), dim=1
    )
    return grad_input, grad_flow.view_as(flow)


_CUDA_SOURCE = r"""
// Landing position of source pixel (x, y) and its four bilinear weights, as the original computes them.
struct Landing {
    long long west, north;
    scalar_t x, y;
};

__device__ Landing land(const scalar_t* flow, long long b, long long y, long long x, long long height,
                        long long width) {
    Landing landing;
    landing.x = (scalar_t) x + flow[((b * 2 + 0) * height + y) * width + x];
    landing.y = (scalar_t) y + flow[((b * 2 + 1) * height + y) * width + x];
    landing.west = (long long) floor(landing.x);
    landing.north = (long long) floor(landing.y);
    return landing;
}

__device__ bool inside(long long col, long long row, long long height, long long width) {
    return col >= 0 && col < width && row >= 0 && row < height;
}

extern "C" __global__ void splat_forward(
    const long long n, const scalar_t* input, const scalar_t* flow, scalar_t* output,
    const long long channels, const long long height, const long long width
) {
    for (long long index = blockIdx.x * (long long) blockDim.x + threadIdx.x; index < n;
         index += (long long) blockDim.x * gridDim.x) {
        const long long x = index % width;
        const long long y = (index / width) % height;
        const long long bc = index / width / height;
        const long long b = bc / channels;
        const Landing p = land(flow, b, y, x, height, width);
        const scalar_t to_east = (scalar_t) (p.west + 1) - p.x, to_west = p.x - (scalar_t) p.west;
        const scalar_t to_south = (scalar_t) (p.north + 1) - p.y, to_north = p.y - (scalar_t) p.north;
        const scalar_t value = input[index];
        scalar_t* plane = output + bc * height * width;
        if (inside(p.west, p.north, height, width))
            atomicAdd(&plane[p.north * width + p.west], value * to_east * to_south);
        if (inside(p.west + 1, p.north, height, width))
            atomicAdd(&plane[p.north * width + p.west + 1], value * to_west * to_south);
        if (inside(p.west, p.north + 1, height, width))
            atomicAdd(&plane[(p.north + 1) * width + p.west], value * to_east * to_north);
        if (inside(p.west + 1, p.north + 1, height, width))
            atomicAdd(&plane[(p.north + 1) * width + p.west + 1], value * to_west * to_north);
    }
}

extern "C" __global__ void splat_backward_input(
    const long long n, const scalar_t* flow, const scalar_t* grad_output, scalar_t* grad_input,
    const long long channels, const long long height, const long long width
) {
    for (long long index = blockIdx.x * (long long) blockDim.x + threadIdx.x; index < n;
         index += (long long) blockDim.x * gridDim.x) {
        const long long x = index % width;
        const long long y = (index / width) % height;
        const long long bc = index / width / height;
        const long long b = bc / channels;
        const Landing p = land(flow, b, y, x, height, width);
        const scalar_t to_east = (scalar_t) (p.west + 1) - p.x, to_west = p.x - (scalar_t) p.west;
        const scalar_t to_south = (scalar_t) (p.north + 1) - p.y, to_north = p.y - (scalar_t) p.north;
        const scalar_t* plane = grad_output + bc * height * width;
        scalar_t sum = 0;
        if (inside(p.west, p.north, height, width))
            sum += plane[p.north * width + p.west] * to_east * to_south;
        if (inside(p.west + 1, p.north, height, width))
            sum += plane[p.north * width + p.west + 1] * to_west * to_south;
        if (inside(p.west, p.north + 1, height, width))
            sum += plane[(p.north + 1) * width + p.west] * to_east * to_north;
        if (inside(p.west + 1, p.north + 1, height, width))
            sum += plane[(p.north + 1) * width + p.west + 1] * to_west * to_north;
        grad_input[index] = sum;
    }
}

// One thread per flow element (b, axis, y, x); the derivative of each corner weight along that axis.
extern "C" __global__ void splat_backward_flow(
    const long long n, const scalar_t* input, const scalar_t* flow, const scalar_t* grad_output,
    scalar_t* grad_flow, const long long channels, const long long height, const long long width
) {
    for (long long index = blockIdx.x * (long long) blockDim.x + threadIdx.x; index < n;
         index += (long long) blockDim.x * gridDim.x) {
        const long long x = index % width;
        const long long y = (index / width) % height;
        const long long axis = (index / width / height) % 2;
        const long long b = index / width / height / 2;
        const Landing p = land(flow, b, y, x, height, width);
        const scalar_t to_east = (scalar_t) (p.west + 1) - p.x, to_west = p.x - (scalar_t) p.west;
        const scalar_t to_south = (scalar_t) (p.north + 1) - p.y, to_north = p.y - (scalar_t) p.north;
        scalar_t d_nw, d_ne, d_sw, d_se;
        if (axis == 0) {
            d_nw = -to_south; d_ne = to_south; d_sw = -to_north; d_se = to_north;
        } else {
            d_nw = -to_east; d_ne = -to_west; d_sw = to_east; d_se = to_west;
        }
        scalar_t sum = 0;
        for (long long c = 0; c < channels; ++c) {
            const scalar_t value = input[((b * channels + c) * height + y) * width + x];
            const scalar_t* plane = grad_output + (b * channels + c) * height * width;
            if (inside(p.west, p.north, height, width))
                sum += value * plane[p.north * width + p.west] * d_nw;
            if (inside(p.west + 1, p.north, height, width))
                sum += value * plane[p.north * width + p.west + 1] * d_ne;
            if (inside(p.west, p.north + 1, height, width))
                sum += value * plane[(p.north + 1) * width + p.west] * d_sw;
            if (inside(p.west + 1, p.north + 1, height, width))
                sum += value * plane[(p.north + 1) * width + p.west + 1] * d_se;
        }
        grad_flow[index] = sum;
    }
}
"""
