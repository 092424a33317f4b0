"""GPU parity check of the custom ops (not collected by the CPU test run).

On a CUDA machine with CuPy:  python tests/gpu/check_ops_cuda.py [--reference ../shared/reference]
1. every kernels.pt golden through the CuPy path, float64 and float32: max |got - golden| / max |golden|;
2. random 1920x1088 inputs: CuPy path vs the pure-PyTorch path on the same GPU tensors (outputs and gradients),
   and the forward+backward time of each path (median of 5 after a warm-up).
Exits non-zero if a golden misses the reference README's tolerance.
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from cupy_module import cupy_available, set_cupy_enabled  # noqa: E402
from cupy_module.adacof import adacof  # noqa: E402
from cupy_module.correlation import correlation  # noqa: E402
from cupy_module.softsplat import softsplat  # noqa: E402

INPUT_NAMES = {"adacof": ["input", "weight", "offset_i", "offset_j"], "correlation": ["first", "second"],
               "softsplat": ["input", "flow", "metric"]}


def run_case(case: dict, tensors: dict):
    """Forward of one kernels.pt case and the gradients of its floating inputs."""
    if case["op"] == "adacof":
        output = adacof(tensors["input"], tensors["weight"], tensors["offset_i"], tensors["offset_j"],
                        case["dilation"])
    elif case["op"] == "softsplat":
        output = softsplat(tensors["input"], tensors["flow"], tensors.get("metric"), case["mode"])
    else:
        output = correlation(tensors["first"], tensors["second"])
    output.backward(case["grad_output"].to(output))
    return output, {name: t.grad for name, t in tensors.items() if t.grad is not None}


def check_goldens(reference: Path) -> bool:
    cases = torch.load(reference / "kernels.pt", weights_only=True)
    passed = True
    print(f"{'case':<26} {'dtype':<8} {'worst relative error (forward, grads)':>40}")
    for name, case in cases.items():
        for dtype in (torch.float64, torch.float32):
            tensors = {n: case[n].to("cuda", dtype).requires_grad_() for n in INPUT_NAMES[case["op"]] if n in case}
            output, grads = run_case(case, tensors)
            errors = [_relative(output, case["output"])]
            errors += [_relative(grad, case["grad_" + n]) for n, grad in grads.items()]
            bound = 1e-7 if dtype == torch.float64 else 2e-4
            passed &= max(errors) <= bound
            print(f"{name:<26} {str(dtype)[6:]:<8} {max(errors):>40.2e}")
    return passed


def _relative(got, expected):
    expected = expected.to(got.device)
    return float((got.detach().double() - expected).abs().max() / expected.abs().max().clamp_min(1e-300))


def large_inputs(height=1088, width=1920):
    g = torch.Generator().manual_seed(0)

    def rand(*shape, scale=1.0):
        return (scale * torch.randn(*shape, generator=g)).cuda()

    return {
        "adacof F=5": (lambda t: adacof(*t, 1),
                       [rand(1, 3, height + 4, width + 4), rand(1, 25, height, width).softmax(1),
                        rand(1, 25, height, width), rand(1, 25, height, width)]),
        "softsplat softmax": (lambda t: softsplat(t[0], t[1], t[2], "softmax"),
                              [rand(1, 3, height, width), rand(1, 2, height, width, scale=8.0),
                               rand(1, 1, height, width)]),
        "correlation (1/4 res)": (lambda t: correlation(*t),
                                  [rand(1, 32, height // 4, width // 4), rand(1, 32, height // 4, width // 4)]),
    }


def forward_backward(function, tensors):
    leaves = [t.clone().requires_grad_() for t in tensors]
    output = function(leaves)
    output.backward(torch.ones_like(output))
    return output.detach(), [t.grad for t in leaves if t.grad is not None]


def median_ms(function, tensors, repeats=5):
    forward_backward(function, tensors)
    times = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        start = time.perf_counter()
        forward_backward(function, tensors)
        torch.cuda.synchronize()
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def compare_paths():
    print(f"\n{'op at 1920x1088':<24} {'max |cupy - torch| out':>24} {'grads':>10} {'cupy ms':>9} {'torch ms':>9}")
    for name, (function, tensors) in large_inputs().items():
        set_cupy_enabled(True)
        cupy_out, cupy_grads = forward_backward(function, tensors)
        cupy_ms = median_ms(function, tensors)
        set_cupy_enabled(False)
        torch_out, torch_grads = forward_backward(function, tensors)
        torch_ms = median_ms(function, tensors)
        set_cupy_enabled(True)
        grad_diff = max(float((a - b).abs().max()) for a, b in zip(cupy_grads, torch_grads))
        print(f"{name:<24} {float((cupy_out - torch_out).abs().max()):>24.2e} {grad_diff:>10.2e} "
              f"{cupy_ms:>9.1f} {torch_ms:>9.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", type=Path, default=REPO_ROOT.parent / "shared" / "reference",
                        help="folder holding kernels.pt")
    args = parser.parse_args()
    if not torch.cuda.is_available() or not cupy_available():
        sys.exit("this check needs a CUDA GPU and CuPy (pip install -r requirements-cuda.txt)")
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}")
    passed = check_goldens(args.reference)
    compare_paths()
    if not passed:
        sys.exit("some goldens missed the tolerance")


if __name__ == "__main__":
    main()
