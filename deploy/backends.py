"""How a script runs the network: PyTorch (eager or compiled, float32 or bfloat16 autocast) or ONNX Runtime.

The flags are shared by interpolate.py and evaluate.py. On the CPU, ``--precision bf16`` runs the convolutions
in bfloat16 (fast where the CPU has AVX512-BF16 or AMX; the custom ops and the GridNet's output row stay float32,
which keeps the output within 0.05 dB PSNR of float32 on the shipped clip), and ``--compile`` fuses the
element-wise work with ``torch.compile`` (inductor; the first frame of each size pays the compilation).
``--backend onnxruntime`` runs a file written by ``export_onnx.py``; see docs/performance.md for what each route
costs and keeps.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Optional

import torch
from torch import Tensor, nn

from common.files import PathType
from common.interpolator import Interpolator
from deploy.cpu import accelerate
from video.interpolation import model_interpolator

BACKENDS = ("pytorch", "onnxruntime")
PRECISIONS = ("fp32", "fp16", "bf16")
# The device each reduced precision runs on: float16 autocast on CUDA, bfloat16 autocast on the CPU.
PRECISION_DEVICES = {"fp16": "cuda", "bf16": "cpu"}


@dataclass(frozen=True)
class Runtime:
    """What runs the network: ``backend`` (with the ``onnx`` file for onnxruntime), ``precision`` and
    ``compile``, as the flags of :func:`add_backend_arguments` set them."""

    backend: str = "pytorch"
    onnx: Optional[str] = None
    precision: str = "fp32"
    compile: bool = False

    def check(self, device: torch.device) -> None:
        """ValueError/FileNotFoundError naming the flag for combinations that cannot run on ``device``."""
        if self.backend == "onnxruntime":
            if self.onnx is None:
                raise ValueError("--backend onnxruntime needs --onnx MODEL.onnx (write one with export_onnx.py)")
            if not Path(self.onnx).is_file():
                raise FileNotFoundError(f"--onnx {self.onnx} not found")
            if self.precision != "fp32" or self.compile:
                raise ValueError("--precision and --compile apply to --backend pytorch only")
        elif self.onnx is not None:
            raise ValueError("--onnx is only read with --backend onnxruntime")
        needed = PRECISION_DEVICES.get(self.precision)
        if needed is not None and device.type != needed:
            other = {"cpu": "bf16", "cuda": "fp16"}[device.type]
            raise ValueError(f"--precision {self.precision} runs on {needed.upper() if needed == 'cpu' else 'CUDA'} "
                             f"only, but the device is {device}; use --precision {other} or fp32")

    @classmethod
    def from_args(cls, args: Any) -> Runtime:
        """The runtime of a script's parsed flags (any object with the attributes)."""
        return cls(**{field.name: getattr(args, field.name) for field in fields(cls)})


def add_backend_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--backend", choices=BACKENDS, default=Runtime.backend,
                       help="pytorch, or onnxruntime with a model exported by export_onnx.py (--onnx)")
    group.add_argument("--onnx", type=str, default=None,
                       help="the .onnx file for --backend onnxruntime (TensorRT/CUDA providers when installed)")
    group.add_argument("--precision", choices=PRECISIONS, default=Runtime.precision,
                       help="fp16: float16 autocast on a CUDA GPU; bf16: bfloat16 autocast on the CPU (AVX512-BF16/AMX "
                            "CPUs); the custom ops stay float32")
    group.add_argument("--fp16", dest="precision", action="store_const", const="fp16",
                       help="the same as --precision fp16 (the original teacher script's flag)")
    group.add_argument("--compile", action="store_true",
                       help="torch.compile the network (fuses element-wise work; compiles once per frame size)")


def onnx_interpolator(path: PathType, device: torch.device) -> Interpolator:
    """The ONNX file ``path`` run by ONNX Runtime (CUDA providers on a CUDA ``device``)."""
    from deploy.onnx_runtime import OnnxInterpolator

    return OnnxInterpolator(path, device="cuda" if device.type == "cuda" else "cpu")


def pytorch_interpolator(model: nn.Module, precision: str = "fp32", compile: bool = False) -> Interpolator:
    """A network in eval mode as an interpolator, compiled and in bfloat16 CPU autocast on request; on the CPU it
    runs the accelerated route (``deploy.cpu.accelerate``, applied to ``model`` in place)."""
    model = accelerate(model)
    network = torch.compile(model) if compile else model
    if precision != "bf16":
        return model_interpolator(network, fp16=precision == "fp16")

    def run(frame0: Tensor, frame1: Tensor, frame2: Tensor, frame3: Tensor) -> Tensor:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            return network(frame0, frame1, frame2, frame3).to(frame1.dtype)

    return run
