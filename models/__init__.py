"""ST-MFNet (teacher) and ST-MFNet Mini (student), selectable by name as with the scripts' ``--net``,
``--teacher`` and ``--student`` flags."""
from __future__ import annotations

from torch import nn

from models.stmfnet import STMFNet
from models.student import student_STMFNet

MODELS: dict[str, type[nn.Module]] = {"STMFNet": STMFNet, "student_STMFNet": student_STMFNet}

__all__ = ["MODELS", "STMFNet", "get_model_class", "student_STMFNet"]


def get_model_class(name: str) -> type[nn.Module]:
    """The model class called ``name`` (the original looked it up with ``getattr(models, name)``)."""
    if name not in MODELS:
        raise ValueError(f"unknown network {name!r}; valid names: {', '.join(MODELS)}")
    return MODELS[name]
