"""What the scripts' command lines share: number types, the device flags, the model flags, the trained-weights flags
with one ``load_model``, and one logging set-up."""
from __future__ import annotations

import argparse
import logging
import math
import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Optional, TextIO

import torch
from torch import nn

import models
from common.files import PathType
from models.checkpoint import load_checkpoint
from models.stmfnet import ModelConfig

DEVICES = ("auto", "cpu", "cuda")
# Frame rates are fractions with a denominator up to 1001 (NTSC's 30000/1001), within 0.01 % of the rate asked for.
MAX_RATE_DENOMINATOR = 1001
RATE_TOLERANCE = Fraction(1, 10000)


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1 (argparse names the flag in its error)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number above 0, e.g. a frame rate."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text}")
    return value


def exact_frame_rate(value: float, flag: str) -> Fraction:
    """``value`` as the fraction a video can carry (denominator at most 1001, as 30000/1001); ValueError naming
    ``flag`` when that fraction is not the rate asked for (a rate so low it would round to another one, or to 0)."""
    rate = Fraction(value).limit_denominator(MAX_RATE_DENOMINATOR)
    if rate == 0 or abs(rate - Fraction(value)) > Fraction(value) * RATE_TOLERANCE:
        raise ValueError(f"{flag} {value:g} cannot be written as a frame rate (the nearest with a denominator up to "
                         f"{MAX_RATE_DENOMINATOR} is {rate}); give a rate such as 25, 29.97 or 60")
    return rate


def non_negative_float(text: str) -> float:
    """argparse type: a finite number of at least 0, e.g. a learning rate or a loss weight."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of at least 0, got {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number of at least 0, got {text}")
    return value


def checked_by(check: Callable[[str], object]) -> Callable[[str], str]:
    """argparse type: the text itself, once ``check(text)`` has not raised ValueError (whose message argparse then
    shows after the flag's name)."""
    def checked(text: str) -> str:
        try:
            check(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
        return text

    checked.__name__ = getattr(check, "__name__", "checked")  # argparse names the type in some messages
    return checked


def parse_bool(text: str) -> bool:
    """argparse type: true/yes/1 or false/no/0."""
    if text.lower() in ("true", "yes", "1"):
        return True
    if text.lower() in ("false", "no", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def threshold_or_off(text: str) -> Optional[float]:
    """argparse type: a number of at least 0, or 'off' (None)."""
    if text.lower() == "off":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'off', got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0 or 'off', got {text!r}")
    return value


def add_device_arguments(
    parser: argparse.ArgumentParser,
    device_group: Optional[argparse._ArgumentGroup] = None,
    gpu_help: str = "CUDA device index used when the device is a GPU",
) -> None:
    """``--gpu_id`` (the original's) on ``parser`` and ``--device`` on ``device_group`` (default: ``parser``)."""
    parser.add_argument("--gpu_id", type=int, default=0, help=gpu_help)
    (device_group or parser).add_argument("--device", default="auto", choices=DEVICES,
                                          help="auto takes the GPU --gpu_id when there is one, else the CPU")


def select_device(device: str = "auto", gpu_id: int = 0) -> torch.device:
    """The device of ``--device auto|cpu|cuda`` and ``--gpu_id``; auto takes the GPU if there is one."""
    if device not in DEVICES:
        raise ValueError(f"--device must be auto, cpu or cuda, got {device!r}")
    if device == "cpu" or (device == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but PyTorch sees no CUDA GPU; use --device cpu or auto")
    if not 0 <= gpu_id < torch.cuda.device_count():
        raise ValueError(f"--gpu_id {gpu_id} does not exist: {torch.cuda.device_count()} CUDA device(s) visible")
    return torch.device("cuda", gpu_id)


def add_model_arguments(parser: argparse.ArgumentParser, finetune_pwc: bool, finetune_pwc_help: str) -> None:
    """The original model flags (``--featc --featnet --featnorm --kernel_size --dilation --finetune_pwc``), defaults
    from :class:`models.stmfnet.ModelConfig`. ``--finetune_pwc`` is a ``store_true`` flag whose default differs
    between the original scripts (True in train/distill, so always on there; False in evaluate)."""
    defaults = ModelConfig()
    group = parser.add_argument_group("model options")
    group.add_argument("--featc", nargs="+", type=int, default=list(defaults.featc),
                       help="feature extractor widths of the student (the teacher's are fixed)")
    group.add_argument("--featnet", type=str, default=defaults.featnet, help="feature extractor")
    group.add_argument("--featnorm", type=str, default=defaults.featnorm, help="feature extractor normalisation")
    group.add_argument("--kernel_size", type=positive_int, default=defaults.kernel_size, help="AdaCoF kernel size")
    group.add_argument("--dilation", type=positive_int, default=defaults.dilation, help="AdaCoF dilation")
    group.add_argument("--finetune_pwc", dest="finetune_pwc", default=finetune_pwc, action="store_true",
                       help=finetune_pwc_help)


def add_checkpoint_arguments(
    parser: argparse.ArgumentParser, new_options: argparse._ArgumentGroup, default: str, random_use: str
) -> None:
    """``--checkpoint`` (default ``default``) on ``parser``; ``--allow_random`` on ``new_options``, with what random
    weights are good for in this script (``random_use``)."""
    parser.add_argument("--checkpoint", type=str, default=default,
                        help="trained weights, {'epoch', 'state_dict'} or a bare state dict")
    new_options.add_argument("--allow_random", action="store_true",
                             help=f"use random weights when the default checkpoint is missing ({random_use})")


@dataclass
class LoadedModel:
    """A network on its device in eval mode, and where its weights came from (``checkpoint`` None: random)."""

    model: nn.Module
    checkpoint: Optional[Path]
    epoch: Optional[int]


def resolve_checkpoint(checkpoint: str, default: str, allow_random: bool) -> Optional[Path]:
    """``--checkpoint``, or None for random weights (only with ``--allow_random`` and the default path)."""
    path = Path(checkpoint)
    if path.is_file():
        return path
    if allow_random and checkpoint == default:
        return None
    hint = (
        "--allow_random only applies when --checkpoint is left at its default"
        if allow_random
        else "random weights give meaningless results; add --allow_random if that is really wanted"
    )
    raise FileNotFoundError(
        f"checkpoint {path} not found. Pass --checkpoint PATH to trained weights (e.g. the published "
        f"stmfnet_mini.pth for student_STMFNet), or --baseline average|repeat; {hint}."
    )


def load_model(net: str, checkpoint: Optional[PathType], config: ModelConfig, device: torch.device) -> LoadedModel:
    """The network ``net`` built with ``config`` and the weights of ``checkpoint`` (None: random; see
    :func:`resolve_checkpoint`), on ``device`` in eval mode."""
    model = models.get_model_class(net)(config)
    epoch = None
    if checkpoint is not None:
        epoch = load_checkpoint(model, checkpoint).get("epoch")
    return LoadedModel(model.to(device).eval(), None if checkpoint is None else Path(checkpoint), epoch)


def setup_logging(out_dir: Optional[PathType] = None, filename: str = "log.txt", stream: Optional[TextIO] = None
                  ) -> logging.Logger:
    """Log INFO and above to the console (``stream``, default standard output) and, with ``out_dir``, to
    ``out_dir/filename`` (appending, so a resumed run keeps its history).

    Call once from a script's ``main()``; library code only uses ``logging.getLogger(__name__)``.
    """
    handlers: list[logging.Handler] = [logging.StreamHandler(stream or sys.stdout)]
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(Path(out_dir) / filename))
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(message)s", datefmt="%Y-%m-%d %H:%M:%S")
    root = logging.getLogger()
    for handler in list(root.handlers):  # a second call (e.g. in tests) must not duplicate every line
        root.removeHandler(handler)
        handler.close()
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    return logging.getLogger("stmfnet")
