"""Export of ST-MFNet and ST-MFNet Mini to ONNX with standard operators only.

The graph takes the four frames I0, I1, I2, I3 (each N x 3 x H x W float32 in [0, 1], temporal order) and returns
the N x 3 x H x W middle frame. Batch, height and width are dynamic: the model's reflect padding to a multiple of
128 and the final crop are part of the graph, so one file serves every frame size.

Under ``torch.onnx.export`` the custom ops trace their plain-tensor forms (``cupy_module``: AdaCoF as one gather
per tap, softmax splatting as a scatter-add, correlation as 81 shifted products), so the file needs no custom
operator domain and any ONNX runtime can run it.
"""
from __future__ import annotations

from os import PathLike
from typing import Optional, Union

import onnx
import torch
from torch import nn

INPUT_NAMES = ("I0", "I1", "I2", "I3")
OUTPUT_NAME = "middle"
NETWORK_KEY = "network"  # metadata entry naming the exported network (its --net)
# ScatterElements with reduction="add" (softmax splatting) needs opset 16; 18 is what the exporter targets.
OPSET = 18
# Traced frame size: any size works afterwards; a small one keeps the export quick.
_TRACE_SIZE = (128, 128)


def export_model(
    model: nn.Module, path: Union[str, PathLike], opset: int = OPSET, network: Optional[str] = None
) -> onnx.ModelProto:
    """Write ``model`` (float32, evaluated on the CPU) as a self-contained ONNX file and check it.

    Returns the checked model. The weights are stored inside the file (no external data file); ``network`` (the
    ``--net`` name) goes into the file's metadata as ``network``. ValueError when the exporter cannot write
    ``opset``.
    """
    model = model.float().cpu().eval()
    frames = tuple(torch.rand(1, 3, *_TRACE_SIZE, generator=torch.Generator().manual_seed(index))
                   for index in range(4))
    # Named dimensions, shared by the four inputs and the output.
    dims = {0: "batch", 2: "height", 3: "width"}
    with torch.no_grad():
        program = torch.onnx.export(
            model, frames, input_names=list(INPUT_NAMES), output_names=[OUTPUT_NAME],
            dynamic_shapes=tuple(dims for _ in INPUT_NAMES), opset_version=opset, dynamo=True, external_data=False,
            # The exporter's graph optimizer takes many minutes on the unrolled AdaCoF taps; runtimes fold the
            # constants and fuse the graph themselves when they load it.
            optimize=False,
        )
    proto = program.model_proto
    written_opset = default_opset(proto)
    if written_opset != opset:
        raise ValueError(f"--opset {opset}: the exporter wrote opset {written_opset} instead; use --opset {OPSET}")
    if network is not None:
        proto.metadata_props.add(key=NETWORK_KEY, value=network)
    onnx.checker.check_model(proto, full_check=True)
    onnx.save_model(proto, str(path))
    return proto


def default_opset(proto: onnx.ModelProto) -> Optional[int]:
    """The version of the standard ONNX operator set a model imports."""
    return next((entry.version for entry in proto.opset_import if entry.domain in ("", "ai.onnx")), None)
