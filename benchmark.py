"""Cost of the teacher (ST-MFNet) and the student (ST-MFNet Mini): parameters, FLOPs, forward time, peak memory.

    python benchmark.py                                   # both models, CPU or CUDA, 256x448, 480x854, 1080x1920
    python benchmark.py --sizes 256x448 --repeats 3 --profile
    python benchmark.py --device cuda --json cost.json    # float32 plus float16/bfloat16 autocast

Each (model, size, dtype) case runs in a fresh subprocess, so the peak memory is that case's alone: the peak
resident set size (VmHWM, reset through /proc/self/clear_refs just before the timed forwards) on CPU, and
``torch.cuda.max_memory_allocated`` on a GPU. Weights are random (cost does not depend on them); batch 1, so every
figure is per interpolated frame. Forward passes run in eval mode under ``torch.inference_mode()``; the time is the
median of --repeats forwards after one warm-up. Student/teacher ratios come from the same run on the same device.

FLOPs and the --profile breakdown: ``pipeline/forward_cost.py``.
"""
import argparse
import json
import logging
import math
import statistics
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Optional

import torch

import models
from common.failures import ScriptError, run_script
from common.memory import allow_heap_reuse, heap_reuse_for
from common.safe_write import atomic_write_text, check_new_file
from deploy.cpu import accelerate
from deploy.route_benchmark import ROUTES, matmul_peak_gmacs, measure_routes
from pipeline.cli import select_device
from pipeline.forward_cost import count_flops, profile_breakdown, synchronize
from pipeline.run_paths import refuse_aliased_paths
from video.readers import read_video_frames

log = logging.getLogger("benchmark")

DTYPES = {"float32": None, "float16": torch.float16, "bfloat16": torch.bfloat16}  # None: no autocast

# ---------------------------------------------------------------------------------------------------- memory

def _proc_status_bytes(field: str) -> int:
    """VmRSS (current) or VmHWM (peak) resident size of this process, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not found in /proc/self/status")


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    else:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current VmRSS (Linux >= 4.0)


def _peak_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return _proc_status_bytes("VmHWM")


# ---------------------------------------------------------------------------------------------------- one case

def parameter_counts(model: torch.nn.Module) -> dict:
    parameters = list(model.parameters())
    return {"trainable": sum(p.numel() for p in parameters if p.requires_grad),
            "total": sum(p.numel() for p in parameters)}


def measure_case(model_name: str, height: int, width: int, dtype: str, device: torch.device, repeats: int,
                 profile: bool) -> dict:
    """Everything about one (model, size, dtype); meant to run in a process of its own."""
    torch.manual_seed(0)
    model = models.get_model_class(model_name)().to(device).eval()
    frames = [torch.rand(1, 3, height, width, device=device) for _ in range(4)]
    autocast = (torch.autocast(device.type, dtype=DTYPES[dtype]) if DTYPES[dtype] is not None else nullcontext())

    def forward():
        with torch.inference_mode(), autocast:
            return model(*frames)

    with count_flops() as flops:  # doubles as the warm-up forward
        output = forward()
    synchronize(device)
    if not torch.isfinite(output).all():
        raise RuntimeError(f"{model_name} produced non-finite output at {height}x{width} {dtype}")
    del output
    # After the warm-up, whose plain layers would otherwise leave their freed memory on the heap.
    heap_reuse_for(height, width)
    accelerate(model)
    _reset_peak(device)
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        forward()
        synchronize(device)
        times.append(time.perf_counter() - start)
    result = {
        "model": model_name, "size": f"{height}x{width}", "dtype": dtype, "device": str(device),
        "threads": torch.get_num_threads(), "parameters": parameter_counts(model),
        "flops": flops["total"], "macs": flops["total"] / 2, "custom_op_flops": flops["custom"],
        "forward_s": statistics.median(times), "forward_s_all": times, "peak_memory_bytes": _peak_bytes(device),
        "peak_memory_kind": "max_memory_allocated" if device.type == "cuda" else "peak RSS (VmHWM)",
    }
    if profile:
        result["profile"] = profile_breakdown(forward, device)
    return result


SAMPLE_CLIP = Path(__file__).resolve().parent / "assets" / "bbb_448x256.mp4"


def clip_frames(height: int, width: int) -> list:
    """Four consecutive frames of the shipped clip, resized to height x width: real content for the routes."""
    frames = read_video_frames(SAMPLE_CLIP, max_frames=24)[20:24]
    tensors = [torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255 for frame in frames]
    if tensors[0].shape[-2:] != (height, width):
        tensors = [torch.nn.functional.interpolate(t, size=(height, width), mode="bilinear", antialias=True,
                                                   align_corners=False).clamp(0, 1) for t in tensors]
    return tensors


def measure_route_case(model_name: str, height: int, width: int, routes: list, repeats: int) -> dict:
    """Every CPU route of one (model, size) side by side in this process, with the machine's matmul peaks."""
    torch.manual_seed(0)
    model = models.get_model_class(model_name)().eval()
    frames = clip_frames(height, width)
    with count_flops() as flops, torch.inference_mode():
        model(*frames)
    heap_reuse_for(height, width)
    peaks = {"float32": matmul_peak_gmacs(torch.float32), "bfloat16": matmul_peak_gmacs(torch.bfloat16)}
    result = measure_routes(model, frames, routes, repeats)
    macs = flops["total"] / 2
    for route in result["routes"].values():
        route["gmacs_per_s"] = macs / route["forward_s"] / 1e9
        route["fraction_of_fp32_peak"] = route["gmacs_per_s"] / peaks["float32"]
    return {"model": model_name, "size": f"{height}x{width}", "threads": torch.get_num_threads(), "macs": macs,
            "peak_gmacs_per_s": peaks, **result}


def format_routes(report: list) -> str:
    lines = []
    for case in report:
        if "routes" not in case:
            lines.append(f"{case['model']} {case['size']}: {case['note']}")
            continue
        peak = case["peak_gmacs_per_s"]
        lines += ["", f"{case['model']} {case['size']}: {case['macs'] / 1e9:.1f} GMACs per frame; matmul peak "
                      f"{peak['float32']:.0f} GMAC/s float32, {peak['bfloat16']:.0f} GMAC/s bfloat16 "
                      f"({case['threads']} threads)"]
        header = (f"{'route':<14} {'forward s':>9} {'vs eager':>8} {'GMAC/s':>7} {'of fp32 peak':>12} "
                  f"{'first call s':>12} {'max |diff|':>10} {'PSNR vs fp32':>12}")
        lines += [header, "-" * len(header)]
        eager = case["routes"].get("eager", {}).get("forward_s")
        for name, route in case["routes"].items():
            speed = f"{eager / route['forward_s']:.2f}x" if eager else "-"
            lines.append(f"{name:<14} {route['forward_s']:>9.3f} {speed:>8} {route['gmacs_per_s']:>7.1f} "
                         f"{100 * route['fraction_of_fp32_peak']:>11.1f}% {route['first_call_s']:>12.1f} "
                         f"{route['max_abs_diff']:>10.2e} {route['psnr_vs_fp32_db']:>9.2f} dB")
        if "onnx_export_s" in case:
            lines.append(f"(ONNX export took {case['onnx_export_s']:.0f} s)")
    return "\n".join(lines)


def run_case_in_subprocess(args: argparse.Namespace, model_name: str, size: str, dtype: str) -> dict:
    """measure_case in a fresh interpreter (honest peak memory); a failure becomes a note."""
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", "--models", model_name, "--sizes", size,
               "--dtypes", dtype, "--device", args.device, "--repeats", str(args.repeats)]
    if args.threads:
        command += ["--threads", str(args.threads)]
    if args.profile:
        command.append("--profile")
    if args.routes is not None:
        command += ["--routes", *args.routes]
    timeout = 120 + 4 * args.max_seconds * (args.repeats + 2)
    if args.routes is not None:  # every route's forwards, plus compilation and export
        timeout = timeout * (len(args.routes) + 1) + 1800
    case = {"model": model_name, "size": size, "dtype": dtype}
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {**case, "note": f"timed out after {timeout:.0f} s"}
    if completed.returncode != 0:
        last_line = (completed.stderr.strip().splitlines() or [f"exit status {completed.returncode}"])[-1]
        if completed.returncode < 0:
            last_line = f"killed by signal {-completed.returncode} (out of memory?)"
        return {**case, "note": f"failed: {last_line}"}
    return json.loads(completed.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------------- planning

def parse_height_width(text: str) -> tuple[int, int]:
    """``"HxW"`` as (height, width)."""
    try:
        height, width = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r} is not HxW, e.g. 256x448") from None
    return height, width


def size_argument(text: str) -> str:
    """argparse type of --sizes: the text, once it reads as HxW."""
    parse_height_width(text)
    return text


def _available_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return math.inf


def skip_reason(previous: dict, pixels: int, args: argparse.Namespace, device: torch.device):
    """Why a larger size of a case is not attempted, extrapolating linearly in pixels from the last one run."""
    if previous is None or "forward_s" not in previous:
        return None  # nothing to extrapolate from
    scale = pixels / math.prod(parse_height_width(previous["size"]))
    estimated_seconds = previous["forward_s"] * scale
    if estimated_seconds > args.max_seconds:
        return f"skipped: estimated {estimated_seconds:.0f} s per forward > --max_seconds {args.max_seconds:g}"
    estimated_bytes = previous["peak_memory_bytes"] * scale
    if estimated_bytes > _available_bytes(device):
        return f"skipped: estimated peak memory {estimated_bytes / 2**30:.1f} GiB does not fit"
    return None


def ratios(results: list) -> list:
    """Student over teacher for every (size, dtype) both were measured at."""
    measured = {(r["model"], r["size"], r["dtype"]): r for r in results if "forward_s" in r}
    rows = []
    for (model_name, size, dtype), student in measured.items():
        teacher = measured.get(("STMFNet", size, dtype))
        if model_name != "student_STMFNet" or teacher is None:
            continue
        rows.append({
            "size": size, "dtype": dtype,
            "parameters": student["parameters"]["total"] / teacher["parameters"]["total"],
            "flops": student["flops"] / teacher["flops"],
            "forward_s": student["forward_s"] / teacher["forward_s"],
            "peak_memory": student["peak_memory_bytes"] / teacher["peak_memory_bytes"],
        })
    return rows


# ---------------------------------------------------------------------------------------------------- output

def format_tables(report: dict) -> str:
    lines = [f"torch {report['torch']}, device {report['device']}, {report['threads']} threads"]
    header = (f"{'model':<16} {'size':<10} {'dtype':<9} {'params (train/total)':>22} {'GMACs':>9} "
              f"{'ops FLOP%':>9} {'forward s':>10} {'peak MiB':>9}")
    lines += [header, "-" * len(header)]
    for r in report["results"]:
        prefix = f"{r['model']:<16} {r['size']:<10} {r['dtype']:<9}"
        if "forward_s" not in r:
            lines.append(f"{prefix} {r['note']}")
            continue
        params = f"{r['parameters']['trainable']:,}/{r['parameters']['total']:,}"
        custom_share = 100 * sum(r["custom_op_flops"].values()) / r["flops"]
        lines.append(f"{prefix} {params:>22} {r['macs'] / 1e9:>9.2f} {custom_share:>8.1f}% "
                     f"{r['forward_s']:>10.3f} {r['peak_memory_bytes'] / 2**20:>9.0f}")
    lines.append("GMACs per frame (FLOPs / 2); ops FLOP%: share of the FLOPs in AdaCoF, softsplat and correlation; "
                 "peak MiB: " + ("max_memory_allocated" if report["device"] == "cuda" else "peak RSS of the process"))
    if report["ratios"]:
        lines += ["", "student / teacher (same run, same device)",
                  f"{'size':<10} {'dtype':<9} {'params':>8} {'FLOPs':>8} {'forward':>8} {'peak mem':>9}"]
        for r in report["ratios"]:
            lines.append(f"{r['size']:<10} {r['dtype']:<9} {r['parameters']:>8.3f} {r['flops']:>8.3f} "
                         f"{r['forward_s']:>8.3f} {r['peak_memory']:>9.3f}")
    for r in report["results"]:
        if "profile" not in r:
            continue
        profile = r["profile"]
        lines += ["", f"profile {r['model']} {r['size']} {r['dtype']}: one forward {profile['forward_ms']:.1f} ms "
                      f"({profile['time_base']}, under the profiler)"]
        for name, milliseconds in profile["categories_ms"].items():
            lines.append(f"  {name:<12} {milliseconds:>10.1f} ms {100 * milliseconds / profile['forward_ms']:>6.1f}%")
        lines.append("  convolution kernels: " + ", ".join(
            f"{k['name']} x{k['calls']} {k['self_ms']:.1f} ms" + (" [SLOW FALLBACK]" if "slow" in k["name"] else "")
            for k in profile["conv_kernels"]))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="benchmark.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(models.MODELS), choices=list(models.MODELS),
                        help="zoo models to measure")
    parser.add_argument("--sizes", nargs="+", type=size_argument, default=["256x448", "480x854", "1080x1920"],
                        help="frame sizes HxW, smallest first (a size is skipped if it would not fit)")
    parser.add_argument("--dtypes", nargs="+", choices=list(DTYPES), default=None,
                        help="float32, or float16/bfloat16 autocast (default: float32 on CPU, all three on CUDA)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where to run")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--repeats", type=int, default=5, help="timed forwards per case (median reported)")
    parser.add_argument("--max_seconds", type=float, default=60.0,
                        help="skip a size whose forward is estimated (from the previous size) to take longer")
    parser.add_argument("--profile", action="store_true",
                        help="break one forward down into custom ops, 2D convs, 3D convs and the rest")
    parser.add_argument("--routes", nargs="*", choices=ROUTES, default=None,
                        help="compare CPU inference routes side by side in one process per (model, size) instead: "
                             "eager, compiled, bf16, bf16_compiled, onnxruntime (all when none are named)")
    parser.add_argument("--json", type=Path, default=None, help="also write the full report as JSON here")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    return run_script(build_parser(), argv, run_benchmark)


def run_benchmark(args: argparse.Namespace) -> dict:
    """Measure as the flags say; returns the report (also printed, and written to --json)."""
    try:
        device = select_device(args.device)
    except ValueError as error:
        raise ScriptError(str(error)) from error
    if args.threads:
        torch.set_num_threads(args.threads)
    dtypes = args.dtypes or (list(DTYPES) if device.type == "cuda" else ["float32"])
    if args.routes is not None:
        args.routes = args.routes or list(ROUTES)
        if device.type != "cpu":
            raise ScriptError("--routes compares CPU routes; run it with --device cpu")
    if args.json is not None:
        refuse_aliased_paths(vars(args), read={"(the timing clip)": SAMPLE_CLIP})
        check_new_file(args.json, "--json", args.overwrite)
    if args.worker:  # one case, result as one JSON line for run_case_in_subprocess
        height, width = parse_height_width(args.sizes[0])
        if args.routes is not None:
            result = measure_route_case(args.models[0], height, width, args.routes, args.repeats)
        else:
            result = measure_case(args.models[0], height, width, dtypes[0], device, args.repeats, args.profile)
        print(json.dumps(result))
        return result

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout, force=True)
    sizes = sorted(args.sizes, key=lambda size: math.prod(parse_height_width(size)))
    if args.routes is not None:
        cases = []
        for model_name in args.models:
            for size in sizes:
                log.info("measuring the routes of %s at %s ...", model_name, size)
                cases.append(run_case_in_subprocess(args, model_name, size, "float32"))
        log.info("%s", format_routes(cases))
        report = {"routes": cases}
    else:
        results = []
        for model_name in args.models:
            for dtype in dtypes:
                previous = None
                for size in sizes:
                    note = skip_reason(previous, math.prod(parse_height_width(size)), args, device)
                    if previous is not None and "forward_s" not in previous:
                        note = f"skipped: the smaller {previous['size']} did not run"
                    if note:
                        result = {"model": model_name, "size": size, "dtype": dtype, "note": note}
                    else:
                        log.info("measuring %s %s %s ...", model_name, size, dtype)
                        result = run_case_in_subprocess(args, model_name, size, dtype)
                        previous = result
                    results.append(result)
        report = {"torch": torch.__version__, "device": device.type,
                  "threads": args.threads or torch.get_num_threads(), "repeats": args.repeats, "results": results,
                  "ratios": ratios(results)}
        log.info("\n%s", format_tables(report))
    if args.json:
        atomic_write_text(args.json, json.dumps(report, indent=2), replace=args.overwrite)
    return report


if __name__ == "__main__":
    allow_heap_reuse()
    sys.exit(main())
