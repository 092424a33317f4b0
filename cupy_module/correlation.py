"""Cost-volume correlation of PWC-Net (Sun et al., CVPR 2018), used by the ST-MFNet teacher's flow estimator.

For displacements dx, dy in [-4, 4] (maximum displacement 4, stride 1, kernel size 1):

    out[b, (dy+4)*9 + (dx+4), y, x] = sum_c first[b, c, y, x] * second[b, c, y+dy, x+dx] / C

with zeros outside the image and C the channel count (the original's normalisation). PWC-Net applies its
leaky ReLU afterwards; it is not part of the op. The backward pass is the true gradient for both inputs.
"""
import torch

from cupy_module._cuda import autocast_backward, autocast_forward, check_float_tensors, launch, use_cuda_kernel

MAX_DISPLACEMENT = 4
_SPAN = 2 * MAX_DISPLACEMENT + 1
NUM_DISPLACEMENTS = _SPAN * _SPAN


def correlation(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """81-channel cost volume of two feature maps (B, C, H, W) -> (B, 81, H, W).

    Under ``torch.compile`` and ``torch.onnx.export`` it is :func:`correlation_traceable` (standard tensor ops).
    """
    if torch.compiler.is_compiling():
        return correlation_traceable(first, second)
    return _Correlation.apply(first, second)


@autocast_forward
def correlation_traceable(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """:func:`correlation` from slices, products and sums only (exports to standard ONNX operators)."""
    check_float_tensors("correlation", first=first, second=second)
    channels, height, width = first.shape[1:]
    padded_second = _padded(second)
    volume = [
        (first * padded_second[:, :, MAX_DISPLACEMENT + dy:MAX_DISPLACEMENT + dy + height,
                               MAX_DISPLACEMENT + dx:MAX_DISPLACEMENT + dx + width]).sum(dim=1)
        for _, dy, dx in _displacements()
    ]
    return torch.stack(volume, dim=1) / channels


def FunctionCorrelation(tenFirst: torch.Tensor, tenSecond: torch.Tensor) -> torch.Tensor:
    """The original entry point; same as :func:`correlation`."""
    return correlation(tenFirst, tenSecond)


class ModuleCorrelation(torch.nn.Module):
    """:func:`correlation` as a (parameter-free) module, the original name."""

    def forward(self, tenFirst: torch.Tensor, tenSecond: torch.Tensor) -> torch.Tensor:
        return correlation(tenFirst, tenSecond)


class _Correlation(torch.autograd.Function):
    @staticmethod
    @autocast_forward
    def forward(ctx, first, second):
        check_float_tensors("correlation", first=first, second=second)
        if first.shape != second.shape:
            raise ValueError(
                f"correlation: first {tuple(first.shape)} and second {tuple(second.shape)} must have the same shape"
            )
        first, second = first.contiguous(), second.contiguous()
        ctx.save_for_backward(first, second)
        batch, _, height, width = first.shape
        if use_cuda_kernel(first):
            output = first.new_empty(batch, NUM_DISPLACEMENTS, height, width)
            launch(_CUDA_SOURCE, "correlation_forward", output.numel(), first, second, output,
                   *first.shape[1:])
            return output
        return _forward_torch(first, second)

    @staticmethod
    @autocast_backward
    def backward(ctx, grad_output):
        first, second = ctx.saved_tensors
        grad_output = grad_output.contiguous()
        if use_cuda_kernel(first):
            grad_first = torch.empty_like(first)
            grad_second = torch.empty_like(second)
            launch(_CUDA_SOURCE, "correlation_backward_first", first.numel(), grad_output, second,
                   grad_first, *first.shape[1:])
            launch(_CUDA_SOURCE, "correlation_backward_second", second.numel(), grad_output,
                   first, grad_second, *first.shape[1:])
            return grad_first, grad_second
        return _backward_torch(first, second, grad_output)


def _displacements():
    """(channel, dy, dx) of every output channel, in the original's order (dy-major)."""
    for channel in range(NUM_DISPLACEMENTS):
        yield channel, channel // _SPAN - MAX_DISPLACEMENT, channel % _SPAN - MAX_DISPLACEMENT


def _padded(tensor: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.pad(tensor, [MAX_DISPLACEMENT] * 4)


def _forward_torch(first, second):
    batch, channels, height, width = first.shape
    padded_second = _padded(second)
    output = first.new_empty(batch, NUM_DISPLACEMENTS, height, width)
    for channel, dy, dx in _displacements():
        rows = slice(MAX_DISPLACEMENT + dy, MAX_DISPLACEMENT + dy + height)
        cols = slice(MAX_DISPLACEMENT + dx, MAX_DISPLACEMENT + dx + width)
        torch.sum(first * padded_second[:, :, rows, cols], dim=1, out=output[:, channel])
    return output / channels


def _backward_torch(first, second, grad_output):
    batch, channels, height, width = first.shape
    grad_output = grad_output / channels
    padded_second = _padded(second)
    grad_first = torch.zeros_like(first)
    grad_padded_second = torch.zeros_like(padded_second)
    for channel, dy, dx in _displacements():
        rows = slice(MAX_DISPLACEMENT + dy, MAX_DISPLACEMENT + dy + height)
        cols = slice(MAX_DISPLACEMENT + dx, MAX_DISPLACEMENT + dx + width)
        grad = grad_output[:, channel : channel + 1]
        grad_first += grad * padded_second[:, :, rows, cols]
        grad_padded_second[:, :, rows, cols] += grad * first
    border = MAX_DISPLACEMENT
    return grad_first, grad_padded_second[:, :, border:-border, border:-border].contiguous()


_CUDA_SOURCE = r"""
#define MAX_DISPLACEMENT 4
#define SPAN 9
#define NUM_DISPLACEMENTS 81

extern "C" __global__ void correlation_forward(
    const long long n, const scalar_t* first, const scalar_t* second, scalar_t* output,
    const long long channels, const long long height, const long long width
) {
    for (long long index = blockIdx.x * (long long) blockDim.x + threadIdx.x; index < n;
         index += (long long) blockDim.x * gridDim.x) {
        const long long x = index % width;
        const long long y = (index / width) % height;
        const long long d = (index / width / height) % NUM_DISPLACEMENTS;
        const long long b = index / width / height / NUM_DISPLACEMENTS;
        const long long y2 = y + d / SPAN - MAX_DISPLACEMENT, x2 = x + d % SPAN - MAX_DISPLACEMENT;
        scalar_t sum = 0;
        if (y2 >= 0 && y2 < height && x2 >= 0 && x2 < width) {
            for (long long c = 0; c < channels; ++c) {
                const long long plane = (b * channels + c) * height;
                sum += first[(plane + y) * width + x] * second[(plane + y2) * width + x2];
            }
        }
        output[index] = sum / (scalar_t) channels;
    }
}

extern "C" __global__ void correlation_backward_first(
    const long long n, const scalar_t* grad_output, const scalar_t* second, scalar_t* grad_first,
    const long long channels, const long long height, const long long width
) {
    for (long long index = blockIdx.x * (long long) blockDim.x + threadIdx.x; index < n;
         index += (long long) blockDim.x * gridDim.x) {
        const long long x = index % width;
        const long long y = (index / width) % height;
        const long long bc = index / width / height;
        const long long b = bc / channels;
        scalar_t sum = 0;
        for (long long d = 0; d < NUM_DISPLACEMENTS; ++d) {
            const long long y2 = y + d / SPAN - MAX_DISPLACEMENT, x2 = x + d % SPAN - MAX_DISPLACEMENT;
            if (y2 >= 0 && y2 < height && x2 >= 0 && x2 < width) {
                sum += grad_output[((b * NUM_DISPLACEMENTS + d) * height + y) * width + x]
                       * second[(bc * height + y2) * width + x2];
            }
        }
        grad_first[index] = sum / (scalar_t) channels;
    }
}

extern "C" __global__ void correlation_backward_second(
    const long long n, const scalar_t* grad_output, const scalar_t* first, scalar_t* grad_second,
    const long long channels, const long long height, const long long width
) {
    for (long long index = blockIdx.x * (long long) blockDim.x + threadIdx.x; index < n;
         index += (long long) blockDim.x * gridDim.x) {
        const long long x = index % width;
        const long long y = (index / width) % height;
        const long long bc = index / width / height;
        const long long b = bc / channels;
        scalar_t sum = 0;
        for (long long d = 0; d < NUM_DISPLACEMENTS; ++d) {
            // second[y, x] met first[y1, x1] through displacement d where (y, x) = (y1 + dy, x1 + dx).
            const long long y1 = y - (d / SPAN - MAX_DISPLACEMENT), x1 = x - (d % SPAN - MAX_DISPLACEMENT);
            if (y1 >= 0 && y1 < height && x1 >= 0 && x1 < width) {
                sum += grad_output[((b * NUM_DISPLACEMENTS + d) * height + y1) * width + x1]
                       * first[(bc * height + y1) * width + x1];
            }
        }
        grad_second[index] = sum / (scalar_t) channels;
    }
}
"""
