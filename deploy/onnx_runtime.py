"""ONNX Runtime as an interpolation backend for an exported model (``export_onnx.py``).

Execution providers are taken in the order TensorRT, CUDA, CPU among those the installed ``onnxruntime`` package
offers (``onnxruntime-gpu`` brings the first two); ``device="cpu"`` uses the CPU provider only.
"""
from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import Union

import numpy as np
import torch
from torch import Tensor

from deploy.onnx_export import INPUT_NAMES, NETWORK_KEY, OUTPUT_NAME

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def choose_providers(device: str, available: list[str]) -> list[str]:
    """Providers for ``device`` ('auto', 'cpu' or 'cuda'), fastest first; 'cuda' without a GPU provider fails."""
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {device!r}")
    gpu = [name for name in GPU_PROVIDERS if name in available] if device != "cpu" else []
    if device == "cuda" and not gpu:
        raise ValueError(
            f"--device cuda needs onnxruntime-gpu (TensorRT or CUDA execution provider); installed: {available}"
        )
    return gpu + ["CPUExecutionProvider"]


class OnnxInterpolator:
    """An exported model run by ONNX Runtime, called like a model: four (N, 3, H, W) frames -> the middle frame.

    Frames go in and come back as float32 CPU arrays; the result is returned on the device and in the dtype of
    ``frame1``.
    """

    def __init__(self, path: Union[str, PathLike], device: str = "auto", threads: int = 0) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        # Idle threads sleep instead of spinning: spinning ones take the cores from whatever runs next in the
        # process (PyTorch, the video encoder, another route of benchmark.py).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.providers = choose_providers(device, onnxruntime.get_available_providers())
        try:
            self.session = onnxruntime.InferenceSession(str(path), options, providers=self.providers)
        except Exception as error:  # onnxruntime raises its own exception types for unreadable or invalid files
            raise ValueError(f"ONNX Runtime cannot load {path}: {error}") from None
        names = tuple(node.name for node in self.session.get_inputs())
        if names != INPUT_NAMES:
            raise ValueError(f"{path} takes inputs {names}, not the four frames {INPUT_NAMES} of export_onnx.py")
        self.path = path
        self.network = self.session.get_modelmeta().custom_metadata_map.get(NETWORK_KEY)

    def __call__(self, frame0: Tensor, frame1: Tensor, frame2: Tensor, frame3: Tensor) -> Tensor:
        feeds = {name: np.ascontiguousarray(frame.detach().float().cpu().numpy())
                 for name, frame in zip(INPUT_NAMES, (frame0, frame1, frame2, frame3))}
        (middle,) = self.session.run([OUTPUT_NAME], feeds)
        if middle.shape != feeds[INPUT_NAMES[1]].shape:
            raise OnnxOutputError(
                f"--onnx {self.path} returned a {'x'.join(map(str, middle.shape))} frame for "
                f"{'x'.join(map(str, frame1.shape))} inputs: it is not a model written by export_onnx.py"
            )
        return torch.from_numpy(middle).to(device=frame1.device, dtype=frame1.dtype)

    def describe(self) -> str:
        """What the file is, for output names and results: ``onnx:<file>`` and the network its metadata names."""
        return f"onnx:{Path(self.path).name}" + (f" ({self.network})" if self.network else "")


class OnnxOutputError(ValueError):
    """An ONNX model gave a frame of another shape than its inputs (a wrong model)."""
