"""Compression report of phase 1 (Sec. 2 of the ST-MFNet Mini paper): how sparse OBProxSG made the teacher, and
which layers can therefore be narrower.

* Overall density: the fraction of non-zero entries over every parameter whose name contains "weight", exactly
  what the original appended to ``density results.txt`` (batch-norm scales included, biases excluded).
* Per layer: the density of each such parameter and, per output channel, how many of its weights are zero. An
  output channel whose weights are all zero produces a constant and can be removed; a layer's *kept* width is the
  number of channels with any non-zero weight.
* Suggested widths: the kept widths of the convolutions and linear layers, grouped into blocks by module path
  (e.g. ``feature_extractor.conv1.resnext_small``) -- the information the paper used to size the student.

``write_report`` stores the report as JSON and draws ``sparsity.png`` (per-layer density) with matplotlib;
``append_density`` adds a line to the original's ``density results.txt``; ``plot_curves`` draws loss, PSNR and
density per epoch.
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from matplotlib.figure import Figure
from torch import nn

from common.files import PathType
from common.safe_write import append_text_atomically, atomic_write_text, atomic_write_with

# Module-path depth that names a block: "dyntex_generator.encoder.layer1", "get_kernel.moduleWeight1_ds.0".
BLOCK_DEPTH = 3
CHANNEL_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
TRANSPOSED_LAYERS = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
DENSITY_FILE = "density results.txt"  # the original's name


def density_parameters(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """The parameters the original counted: every one whose name contains "weight"."""
    return [(name, param) for name, param in model.named_parameters() if "weight" in name]


def overall_density(model: nn.Module) -> float:
    """Non-zero fraction of all entries of :func:`density_parameters`."""
    weights = [param.detach() for _, param in density_parameters(model)]
    total = sum(weight.numel() for weight in weights)
    if total == 0:
        raise ValueError(f"{type(model).__name__} has no weight parameters to measure")
    return sum(int(torch.count_nonzero(weight)) for weight in weights) / total


def _output_channel_dim(module: nn.Module) -> Optional[int]:
    if isinstance(module, TRANSPOSED_LAYERS):
        return 1  # (in, out, ...) for transposed convolutions
    if isinstance(module, CHANNEL_LAYERS):
        return 0
    return None


def layer_report(model: nn.Module) -> list[dict[str, Any]]:
    """One entry per weight parameter: shape, density and (for conv/linear layers) zeros per output channel."""
    modules = dict(model.named_modules())
    layers = []
    for name, param in density_parameters(model):
        weight = param.detach()
        module_name, _, _ = name.rpartition(".")
        module = modules.get(module_name)
        nonzero = int(torch.count_nonzero(weight))
        entry: dict[str, Any] = {
            "name": name,
            "module": type(module).__name__ if module is not None else None,
            "shape": list(weight.shape),
            "numel": weight.numel(),
            "nonzero": nonzero,
            "density": nonzero / weight.numel(),
        }
        channel_dim = _output_channel_dim(module) if module is not None else None
        if channel_dim is not None:
            per_channel = weight.transpose(0, channel_dim).flatten(1)
            zeros = (per_channel == 0).sum(1)
            entry["out_channels"] = per_channel.shape[0]
            entry["kept_channels"] = int((zeros < per_channel.shape[1]).sum())
            entry["channel_zero_counts"] = zeros.tolist()
        layers.append(entry)
    return layers


def block_name(layer_name: str, depth: int = BLOCK_DEPTH) -> str:
    """The block a parameter belongs to: the first ``depth`` parts of its module path."""
    module_path = layer_name.rpartition(".")[0].split(".")
    return ".".join(module_path[:depth])


def suggest_widths(layers: Sequence[dict[str, Any]], depth: int = BLOCK_DEPTH) -> dict[str, dict[str, list]]:
    """Per block: its conv/linear layers with their current and kept output widths."""
    blocks: dict[str, dict[str, list]] = defaultdict(lambda: {"layers": [], "widths": [], "kept": []})
    for layer in layers:
        if "out_channels" not in layer:
            continue
        block = blocks[block_name(layer["name"], depth)]
        block["layers"].append(layer["name"])
        block["widths"].append(layer["out_channels"])
        block["kept"].append(layer["kept_channels"])
    return dict(blocks)


def sparsity_report(model: nn.Module, epoch: float, step: int) -> dict[str, Any]:
    """Everything written to ``sparsity.json`` (``epoch`` may be fractional for a run stopped mid-epoch)."""
    layers = layer_report(model)
    total = sum(layer["numel"] for layer in layers)
    return {
        "epoch": epoch,
        "step": step,
        "density": sum(layer["nonzero"] for layer in layers) / total,
        "weights": total,
        "suggested_widths": suggest_widths(layers),
        "layers": layers,
    }


def width_suggestion_lines(report: dict[str, Any]) -> list[str]:
    """Human-readable suggested widths, one line per block: "block: 64 64 256 -> 60 64 250"."""
    lines = []
    for block, widths in report["suggested_widths"].items():
        current = " ".join(str(width) for width in widths["widths"])
        kept = " ".join(str(width) for width in widths["kept"])
        lines.append(f"{block}: {current} -> {kept}")
    return lines


def plot_layer_density(report: dict[str, Any], path: PathType) -> None:
    """Bar chart of the density of every weight parameter, coloured by top-level module."""
    layers = report["layers"]
    groups = [layer["name"].split(".")[0] for layer in layers]
    colours = {group: f"C{index % 10}" for index, group in enumerate(dict.fromkeys(groups))}
    figure = Figure(figsize=(max(8.0, 0.04 * len(layers)), 4.5), layout="constrained")
    axes = figure.add_subplot()
    for group, colour in colours.items():
        indices = [i for i, name in enumerate(groups) if name == group]
        axes.bar(indices, [layers[i]["density"] for i in indices], width=1.0, color=colour, label=group)
    axes.set_xlim(-0.5, len(layers) - 0.5)
    axes.set_ylim(0, 1.05)
    axes.set_xlabel("weight parameter (in model order)")
    axes.set_ylabel("density (non-zero fraction)")
    axes.set_title(f"Per-layer density at epoch {report['epoch']:.3g}, step {report['step']} "
                   f"(overall {report['density']:.4f})")
    axes.legend(fontsize="small", loc="lower right")
    atomic_write_with(path, lambda file: figure.savefig(file, format="png", dpi=100))


def write_report(report: dict[str, Any], out_dir: PathType) -> None:
    """``out_dir/sparsity.json`` and ``out_dir/sparsity.png``."""
    out_dir = Path(out_dir)
    atomic_write_text(out_dir / "sparsity.json", json.dumps(report, indent=1))
    plot_layer_density(report, out_dir / "sparsity.png")


def append_density(out_dir: PathType, density: float, psnr: float) -> None:
    """One line ``density,psnr,`` per validation in ``out_dir/density results.txt``, as the original wrote it."""
    append_text_atomically(Path(out_dir) / DENSITY_FILE, f"{density},{psnr},\n")


def plot_curves(history: Sequence[dict[str, Any]], path: PathType) -> None:
    """Training loss, train/validation PSNR and (when recorded) density against epochs."""
    epochs = [record["epoch"] for record in history]
    panels = [("train loss (log scale)", [("train", "train_loss")]),
              ("PSNR (dB)", [("train", "train_psnr"), ("validation", "valid_psnr")])]
    if any("density" in record for record in history):
        panels.append(("density", [("weights", "density")]))
    figure = Figure(figsize=(4.0 * len(panels), 3.5), layout="constrained")
    for index, (title, series) in enumerate(panels, 1):
        axes = figure.add_subplot(1, len(panels), index)
        for label, key in series:
            axes.plot(epochs, [record.get(key, float("nan")) for record in history], marker="o", label=label)
        axes.set_xlabel("epoch")
        axes.set_title(title)
        if index == 1 and all(record["train_loss"] > 0 for record in history):
            axes.set_yscale("log")
        if len(series) > 1:
            axes.legend(fontsize="small")
    atomic_write_with(path, lambda file: figure.savefig(file, format="png", dpi=100))
