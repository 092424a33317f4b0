"""Loading trained weights into a network: the original training format ``{"epoch", "state_dict"}`` or a bare state
dict, with or without DataParallel's ``module.`` prefix, checked completely before anything is copied."""
from __future__ import annotations

import os
import pickle
from typing import Any

import torch
from torch import nn

from common.files import PathType

# DataParallel / DistributedDataParallel wrap the model as ``module``, which prefixes every key.
DATA_PARALLEL_PREFIX = "module."
_MAX_LISTED_KEYS = 10


def _listing(label: str, keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_LISTED_KEYS])
    more = f", ... ({len(keys) - _MAX_LISTED_KEYS} more)" if len(keys) > _MAX_LISTED_KEYS else ""
    return f"{label} ({len(keys)}): {shown}{more}"


def _strip_data_parallel_prefix(state_dict: dict[str, Any]) -> dict[str, Any]:
    if state_dict and all(key.startswith(DATA_PARALLEL_PREFIX) for key in state_dict):
        return {key[len(DATA_PARALLEL_PREFIX):]: value for key, value in state_dict.items()}
    return state_dict


def _shape(value: Any) -> Any:
    return tuple(value.shape) if torch.is_tensor(value) else type(value).__name__


def non_finite_tensors(state_dict: dict[str, Any]) -> list[str]:
    """Keys of the floating-point tensors in ``state_dict`` holding a NaN or an infinity."""
    return [
        key for key, value in state_dict.items()
        if torch.is_tensor(value) and value.is_floating_point() and not bool(torch.isfinite(value).all())
    ]


def state_dict_mismatches(model: nn.Module, state_dict: dict[str, Any]) -> list[str]:
    """What keeps ``state_dict`` from loading strictly into ``model``: listings of its missing, unexpected and
    misshaped keys (empty when it fits)."""
    expected = model.state_dict()
    missing = [key for key in expected if key not in state_dict]
    unexpected = [key for key in state_dict if key not in expected]
    misshaped = [
        f"{key} {_shape(state_dict[key])} vs model {tuple(value.shape)}"
        for key, value in expected.items()
        if key in state_dict and _shape(state_dict[key]) != tuple(value.shape)
    ]
    return [
        _listing(label, keys)
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("misshaped", misshaped))
        if keys
    ]


def refuse_non_finite(state_dict: dict[str, Any], source: str) -> None:
    """Raise ValueError naming the NaN or infinite tensors of ``state_dict``: a diverged run's weights would give
    black frames and NaN scores without any error."""
    non_finite = non_finite_tensors(state_dict)
    if non_finite:
        raise ValueError(
            f"{source} holds NaN or infinite weights; nothing was loaded. " + _listing("tensors", non_finite)
        )


def read_torch_file(path: PathType, map_location: Any = "cpu") -> Any:
    """``torch.load`` of an untrusted file: tensors and plain containers only (``weights_only``: nothing in the
    file can run code), and a one-line ValueError for anything that is not such a file."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except OSError:
        raise
    except Exception as error:  # damaged or foreign: RuntimeError, EOFError, UnpicklingError, KeyError, ...
        size = os.path.getsize(path)
        if isinstance(error, pickle.UnpicklingError) and "unsupported global" in str(error).lower():
            raise ValueError(f"{path} is not a plain PyTorch checkpoint ({size} bytes): it holds objects that only "
                             "running its code could rebuild, which is never done") from error
        raise ValueError(f"{path} is not a PyTorch checkpoint ({size} bytes)") from error


def load_checkpoint(model: nn.Module, path: PathType, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint into ``model`` strictly and return the whole checkpoint (e.g. to read ``"epoch"``).

    Accepts the original training format ``{"epoch": ..., "state_dict": ...}`` or a bare state dict, with or
    without DataParallel's ``module.`` prefix. Keys and shapes are checked before anything is copied, so on a
    mismatch the model is left untouched and a ``ValueError`` lists the missing, unexpected and misshaped keys;
    so it is, with the tensors named, when a weight is NaN or infinite.
    """
    checkpoint = read_torch_file(path, map_location)
    if not isinstance(checkpoint, dict):
        raise ValueError(f"{path} holds a {type(checkpoint).__name__}, expected a state dict")
    state_dict = checkpoint.get("state_dict", checkpoint)
    if not isinstance(state_dict, dict):
        raise ValueError(f"{path}: 'state_dict' is a {type(state_dict).__name__}, expected a dict")
    state_dict = _strip_data_parallel_prefix(state_dict)

    problems = state_dict_mismatches(model, state_dict)
    if problems:
        raise ValueError(
            f"checkpoint {path} does not match {type(model).__name__}; nothing was loaded. " + "; ".join(problems)
        )
    refuse_non_finite(state_dict, f"checkpoint {path}")
    model.load_state_dict(state_dict, strict=True)
    return checkpoint
