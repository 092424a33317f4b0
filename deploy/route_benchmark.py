"""Side-by-side timing of the CPU inference routes of one model, for ``benchmark.py --routes``.

Routes: PyTorch eager float32 (the reference), ``torch.compile`` (inductor), bfloat16 autocast eager and compiled,
and ONNX Runtime (CPU provider) on a file exported in the same run. Every route gets one untimed warm-up (which
compiles, for the compiled routes), then the routes take turns forward by forward, so that a change in the
machine's load hits all of them alike; the median is reported. Each route's output is compared with the eager
float32 output (max absolute difference, and PSNR in dB over the [0, 1]-clipped frames).

The machine's float32 and bfloat16 peaks come from a large matrix product measured in the same process (the faster
of PyTorch's and oneDNN's, see :func:`matmul_peak_gmacs`).
"""
from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn

from deploy.backends import pytorch_interpolator

ROUTES = ("eager", "compiled", "bf16", "bf16_compiled", "onnxruntime")
_PEAK_SHAPE = (8192, 512, 512)


def matmul_peak_gmacs(dtype: torch.dtype, repeats: int = 5) -> float:
    """Best multiply-accumulates per second (in billions) of an 8192 x 512 by 512 x 512 matrix product in ``dtype``,
    the faster of PyTorch's matrix product and oneDNN's (run as a 1x1 convolution over 8192 channels-last pixels).

    The models' convolutions run in oneDNN; PyTorch's float32 product runs in MKL, which on some CPUs (AMD's)
    takes a code path of about half oneDNN's rate, and alone would understate the machine's peak."""
    rows, inner, columns = _PEAK_SHAPE
    generator = torch.Generator().manual_seed(0)
    first = torch.randn(rows, inner, generator=generator).to(dtype)
    second = torch.randn(inner, columns, generator=generator).to(dtype)
    # (rows, inner) as `rows` pixels of `inner` channels, channels-last; the weight maps inner to output channels.
    pixels = first.reshape(1, rows // 64, 64, inner).permute(0, 3, 1, 2)
    weight = second.t().reshape(columns, inner, 1, 1).contiguous()
    products = [lambda: torch.mm(first, second)]
    if torch.backends.mkldnn.is_available():
        products.append(lambda: torch.nn.functional.conv2d(pixels, weight))
    best = float("inf")
    with torch.no_grad():
        for product in products:
            product()
            for _ in range(repeats):
                start = time.perf_counter()
                product()
                best = min(best, time.perf_counter() - start)
    return rows * inner * columns / best / 1e9


def _psnr(output: Tensor, reference: Tensor) -> float:
    mse = (output.clamp(0, 1) - reference.clamp(0, 1)).pow(2).mean().item()
    return float("inf") if mse == 0 else -10 * torch.log10(torch.tensor(mse)).item()


def build_routes(model: nn.Module, routes: list[str], workdir: Path) -> tuple[dict[str, Callable], dict[str, float]]:
    """The callables of ``routes`` and the one-off costs (ONNX export seconds) met while building them."""
    built: dict[str, Callable] = {}
    costs: dict[str, float] = {}
    for route in routes:
        if route == "onnxruntime":
            from deploy.onnx_export import export_model
            from deploy.onnx_runtime import OnnxInterpolator

            path = workdir / "model.onnx"
            start = time.perf_counter()
            export_model(model, path)
            costs["onnx_export_s"] = time.perf_counter() - start
            built[route] = OnnxInterpolator(path, device="cpu")
        else:
            precision = "bf16" if route.startswith("bf16") else "fp32"
            built[route] = pytorch_interpolator(model, precision, compile=route.endswith("compiled"))
    return built, costs


def measure_routes(model: nn.Module, frames: list[Tensor], routes: list[str], repeats: int) -> dict:
    """Per route: median and all forward times, first-call time, and the difference from eager float32."""
    model = model.eval()
    with tempfile.TemporaryDirectory() as workdir:
        built, costs = build_routes(model, routes, Path(workdir))
        with torch.inference_mode():
            reference = model(*frames)
        results: dict[str, dict] = {}
        for route, run in built.items():
            start = time.perf_counter()
            output = run(*frames)
            first_call = time.perf_counter() - start
            results[route] = {"first_call_s": first_call, "times_s": [],
                              "max_abs_diff": (output - reference).abs().max().item(),
                              "psnr_vs_fp32_db": _psnr(output, reference)}
        for _ in range(repeats):
            for route, run in built.items():
                start = time.perf_counter()
                run(*frames)
                results[route]["times_s"].append(time.perf_counter() - start)
    for result in results.values():
        result["forward_s"] = statistics.median(result["times_s"])
    return {"routes": results, **costs}
