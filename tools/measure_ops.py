"""Measure the custom ops on this machine: forward+backward time of each op and the AdaCoF forward's peak memory.

    python tools/measure_ops.py                      # CPU: timings at 256x448, AdaCoF memory at 1920x1088
    python tools/measure_ops.py --device cuda        # the same on a GPU (CuPy path)

Memory is measured in a fresh subprocess as the peak resident set size during the forward minus the resident size
before it (CPU; Linux resets the peak through /proc/self/clear_refs) or as the growth of
``torch.cuda.max_memory_allocated`` (GPU), with the inputs and output allocated first.
"""
import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.failures import run_script  # noqa: E402
from cupy_module.adacof import adacof  # noqa: E402
from cupy_module.correlation import correlation  # noqa: E402
from cupy_module.softsplat import softsplat  # noqa: E402

KERNEL_SIZE = 5


def adacof_inputs(height: int, width: int, device: str, requires_grad: bool = True):
    generator = torch.Generator().manual_seed(0)
    border = KERNEL_SIZE - 1
    frame = torch.rand(1, 3, height + border, width + border, generator=generator)
    weight = torch.randn(1, KERNEL_SIZE**2, height, width, generator=generator).softmax(dim=1)
    offsets = [torch.randn(1, KERNEL_SIZE**2, height, width, generator=generator) for _ in range(2)]
    tensors = [t.to(device) for t in (frame, weight, *offsets)]
    for tensor in tensors[1:]:
        tensor.requires_grad_(requires_grad)
    return tensors


def op_cases(height: int, width: int, device: str):
    """(name, shape description, function of no arguments running forward+backward)."""
    generator = torch.Generator().manual_seed(1)

    def rand(*shape, scale=1.0):
        return (scale * torch.randn(*shape, generator=generator)).to(device).requires_grad_()

    frame, weight, offset_i, offset_j = adacof_inputs(height, width, device)
    image, flow, metric = rand(1, 3, height, width), rand(1, 2, height, width, scale=4.0), rand(1, 1, height, width)
    pwc_shape = (1, 32, height // 4, width // 4)
    first, second = rand(*pwc_shape), rand(*pwc_shape)
    full_first, full_second = rand(1, 32, height, width), rand(1, 32, height, width)
    return [
        (f"adacof F={KERNEL_SIZE}", f"1x3x{height}x{width}",
         lambda: adacof(frame, weight, offset_i, offset_j, 1).sum().backward()),
        ("softsplat softmax", f"1x3x{height}x{width}",
         lambda: softsplat(image, flow, metric, "softmax").sum().backward()),
        ("correlation", "x".join(map(str, pwc_shape)) + " (PWC level 2)",
         lambda: correlation(first, second).sum().backward()),
        ("correlation", f"1x32x{height}x{width}",
         lambda: correlation(full_first, full_second).sum().backward()),
    ]


def median_seconds(function, device: str, repeats: int) -> float:
    function()  # warm-up (and CuPy compilation)
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        function()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _resident_bytes(field: str) -> int:
    """VmRSS (current) or VmHWM (peak) of this process from /proc/self/status, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not found in /proc/self/status")


def _reset_peak_resident() -> None:
    # Writing 5 to clear_refs resets VmHWM to the current resident size (Linux >= 4.0).
    Path("/proc/self/clear_refs").write_text("5")


def adacof_peak_memory(height: int, width: int, device: str) -> dict:
    """Run in this process (call it in a fresh one): memory growth of one AdaCoF forward beyond inputs and output."""
    with torch.no_grad():
        frame, weight, offset_i, offset_j = adacof_inputs(height, width, device, requires_grad=False)
        output = torch.empty(1, 3, height, width, device=device)
        output.fill_(0)
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            baseline = torch.cuda.max_memory_allocated()
        else:
            _reset_peak_resident()
            baseline = _resident_bytes("VmRSS")
        start = time.perf_counter()
        output.copy_(adacof(frame, weight, offset_i, offset_j, 1))
        if device == "cuda":
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
        else:
            peak = _resident_bytes("VmHWM")
        seconds = time.perf_counter() - start
    return {"size": f"{height}x{width}", "extra_bytes": peak - baseline, "seconds": seconds}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="measure_ops.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where the ops run")
    parser.add_argument("--size", default="256x448", help="HxW of the timing inputs")
    parser.add_argument("--memory_size", default="1088x1920", help="HxW of the AdaCoF memory measurement")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per op (median reported)")
    parser.add_argument("--memory_only", action="store_true", help=argparse.SUPPRESS)
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    return run_script(build_parser(), argv, measure)


def measure(args: argparse.Namespace) -> None:
    memory_height, memory_width = map(int, args.memory_size.split("x"))
    if args.memory_only:
        print(json.dumps(adacof_peak_memory(memory_height, memory_width, args.device)))
        return
    height, width = map(int, args.size.split("x"))
    print(f"torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} threads")
    print(f"{'op':<20} {'input':<34} {'forward+backward (ms)':>22}")
    for name, shape, function in op_cases(height, width, args.device):
        milliseconds = 1000 * median_seconds(function, args.device, args.repeats)
        print(f"{name:<20} {shape:<34} {milliseconds:>22.1f}")
    result = subprocess.run([sys.executable, __file__, "--device", args.device, "--memory_size", args.memory_size,
                             "--memory_only"], check=True, capture_output=True, text=True)
    memory = json.loads(result.stdout)
    print(f"adacof F={KERNEL_SIZE} forward at {memory['size']}: peak memory beyond inputs/output "
          f"{memory['extra_bytes'] / 2**20:.0f} MiB, {memory['seconds']:.2f} s")


if __name__ == "__main__":
    sys.exit(main())
