"""Paths and files: the one path type of the project, atomic writes (a reader or a crash never sees a half-written
file) and file hashes (which identify the checkpoint behind a result)."""
from __future__ import annotations

import hashlib
import os
from os import PathLike
from pathlib import Path
from typing import Any, BinaryIO, Callable, Union

import torch

PathType = Union[str, PathLike]


def _atomic_write(path: PathType, write: Callable[[BinaryIO], None]) -> None:
    """Write through ``write`` into a temporary file beside ``path``, then rename it to ``path``.

    A plain ``open`` rather than ``tempfile.mkstemp``, which would create the file with mode 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def atomic_save(obj: Any, path: PathType) -> None:
    """``torch.save`` that never leaves a half-written checkpoint (temporary file + rename)."""
    _atomic_write(path, lambda file: torch.save(obj, file))


def atomic_write_text(path: PathType, text: str) -> None:
    """Write a text file (UTF-8) that never appears half-written (temporary file + rename)."""
    _atomic_write(path, lambda file: file.write(text.encode("utf-8")))


def file_sha256(path: PathType) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
