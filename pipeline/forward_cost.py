"""What one forward pass of a network costs: its FLOPs, and where its time goes (``benchmark.py``).

FLOPs: ``torch.utils.flop_counter.FlopCounterMode`` counts the convolutions and matrix products (2 FLOPs per
multiply-add). The three custom ops are autograd Functions it cannot see into, so their calls are intercepted and
counted by formula instead (whatever FlopCounterMode saw inside them, e.g. the CPU AdaCoF's bmm, is taken out):
- AdaCoF: B*C*H*W*F*F multiply-adds of 5 each (4 for the bilinear sample of a tap, 1 to weight and accumulate it);
- softmax splatting (the summation core): B*C*H*W*4 multiply-adds, one per landing corner of each input pixel;
- correlation: B*81*C*H*W multiply-adds (81 displacements of max displacement 4, a C-long dot product each).
Element-wise work (activations, padding, blur arithmetic) is not counted, as FlopCounterMode does not count it.
Count on the plain network, before ``deploy.cpu.accelerate``: FlopCounterMode does not know oneDNN's fused ops.

:func:`profile_breakdown` (``benchmark.py --profile``) breaks one forward down with torch.profiler: the custom ops
(FunctionAdaCoF, _Splat and _Correlation, totals), 2D convolutions (aten::conv2d/conv_transpose2d and the fused
mkldnn::_convolution_pointwise, totals), 3D convolutions (aten::conv3d/conv_transpose3d and the accelerated route's
oneDNN 3D convolutions, totals) and the rest (forward time minus those; an event nested in one already counted is
not counted again). It also lists the convolution kernels that ran, so a slow fallback (slow_conv3d, ...) is visible. The profiler adds a small cost to every op it records,
so an op made of many small ones (the CPU AdaCoF works band by band) reads a little slower than it runs.
"""
import time
from contextlib import ExitStack, contextmanager
from unittest import mock

import torch
from torch.utils.flop_counter import FlopCounterMode

from cupy_module.adacof import FunctionAdaCoF
from cupy_module.correlation import NUM_DISPLACEMENTS, _Correlation
from cupy_module.softsplat import _Splat
from deploy.cpu.conv3d import OneDNNConv3d

# Profiler event names of the custom ops: the autograd Functions' class names.
CUSTOM_OPS = {"adacof": "FunctionAdaCoF", "softsplat": "_Splat", "correlation": "_Correlation"}
# The accelerated 3D convolution calls torch.mkldnn_convolution directly on CPU, past aten::conv3d; the profile
# labels its calls with this name so that they count as 3D convolutions.
CONV3D_MODULE_LABEL = "OneDNNConv3d"
CONV2D_OPS = ("aten::conv2d", "aten::conv_transpose2d", "mkldnn::_convolution_pointwise")
CONV3D_OPS = ("aten::conv3d", "aten::conv_transpose3d", CONV3D_MODULE_LABEL)


def _adacof_macs(frame, weight, *_) -> int:
    batch, channels = frame.shape[:2]
    taps, height, width = weight.shape[1:]
    return batch * channels * height * width * taps * 5


def _softsplat_macs(input, flow) -> int:
    return input.numel() * 4


def _correlation_macs(first, second) -> int:
    return NUM_DISPLACEMENTS * first.numel()


CUSTOM_OP_MACS = {"adacof": (FunctionAdaCoF, _adacof_macs), "softsplat": (_Splat, _softsplat_macs),
                  "correlation": (_Correlation, _correlation_macs)}


@contextmanager
def count_flops():
    """FlopCounterMode plus the custom ops by formula. Yields a dict filled in on exit:
    {"total": FLOPs, "custom": {op: FLOPs}}."""
    result = {"custom": {name: 0 for name in CUSTOM_OP_MACS}}
    hidden = [0]  # FLOPs FlopCounterMode counted inside the custom ops, replaced by their formula
    counter = FlopCounterMode(display=False)

    def counting(name, function_class, macs):
        apply = function_class.apply

        def counted_apply(*args):
            before = counter.get_total_flops()
            output = apply(*args)
            hidden[0] += counter.get_total_flops() - before
            result["custom"][name] += 2 * macs(*args)
            return output
        return counted_apply

    with ExitStack() as stack:
        for name, (function_class, macs) in CUSTOM_OP_MACS.items():
            stack.enter_context(mock.patch.object(function_class, "apply", counting(name, function_class, macs)))
        stack.enter_context(counter)
        yield result
    result["total"] = counter.get_total_flops() - hidden[0] + sum(result["custom"].values())


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _labelled(forward, label: str):
    """``forward`` wrapped in a profiler range named ``label``."""
    def labelled_forward(self, *args, **kwargs):
        with torch.profiler.record_function(label):
            return forward(self, *args, **kwargs)
    return labelled_forward


def profile_breakdown(forward, device: torch.device) -> dict:
    """Milliseconds of one forward per category, and the convolution kernels that ran.

    On CPU the categories are CPU-time totals, on CUDA GPU time (the ops' device time against the summed self
    device time of every event). An event counts only where no enclosing event already counts (a fallback
    aten::conv3d inside a labelled Conv3d is not counted twice)."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with mock.patch.object(OneDNNConv3d, "forward", _labelled(OneDNNConv3d.forward, CONV3D_MODULE_LABEL)), \
            torch.profiler.profile(activities=activities) as profiler:
        start = time.perf_counter()
        forward()
        synchronize(device)
        wall_ms = 1000 * (time.perf_counter() - start)
    on_gpu = device.type == "cuda"
    field = "device_time_total" if on_gpu else "cpu_time_total"
    category_of = {event_name: name for name, event_name in CUSTOM_OPS.items()}
    category_of.update({event_name: "conv2d" for event_name in CONV2D_OPS})
    category_of.update({event_name: "conv3d" for event_name in CONV3D_OPS})
    categories = {name: 0.0 for name in [*CUSTOM_OPS, "conv2d", "conv3d"]}
    for event in profiler.events():
        if event.name in category_of and not _inside_counted_event(event, category_of):
            categories[category_of[event.name]] += getattr(event, field) / 1000
    events = profiler.key_averages()
    forward_ms = sum(event.self_device_time_total for event in events) / 1000 if on_gpu else wall_ms
    categories["rest"] = forward_ms - sum(categories.values())
    top_level = set(CONV2D_OPS + CONV3D_OPS + ("aten::convolution", "aten::_convolution"))
    kernels = sorted(
        ({"name": event.key, "calls": event.count,
          "self_ms": (event.self_device_time_total if on_gpu else event.self_cpu_time_total) / 1000}
         for event in events if "conv" in event.key.lower() and event.key not in top_level),
        key=lambda kernel: -kernel["self_ms"],
    )
    return {"forward_ms": forward_ms, "categories_ms": categories, "conv_kernels": kernels,
            "time_base": "GPU time" if on_gpu else "CPU time"}


def _inside_counted_event(event, counted_names) -> bool:
    parent = event.cpu_parent
    while parent is not None:
        if parent.name in counted_names:
            return True
        parent = parent.cpu_parent
    return False
