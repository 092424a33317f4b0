"""Paths and files: the one path type of the project, atomic writes (a reader or a crash never sees a half-written
file, and a failed write leaves the previous file as it was), the clean-up of temporaries a killed process left,
and file hashes (which identify the checkpoint behind a result)."""
from __future__ import annotations

import hashlib
import os
import re
import secrets
from os import PathLike
from pathlib import Path
from typing import Any, BinaryIO, Callable, Optional, Union

import torch
from PIL import Image

PathType = Union[str, PathLike]
TEMPORARY_SUFFIX = ".tmp"


class _WriteErrorRecorder:
    """A binary file wrapper that remembers the OSError of a failed write.

    ``torch.save`` turns a failed write into ``RuntimeError: [enforce fail at inline_container.cc] unexpected pos``;
    the recorded error (e.g. ENOSPC) is what the caller should see.
    """

    def __init__(self, file: BinaryIO) -> None:
        self.file = file
        self.error: Optional[OSError] = None

    def write(self, data: bytes) -> int:
        try:
            return self.file.write(data)
        except OSError as error:
            self.error = error
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self.file, name)


def temporary_path(path: PathType) -> Path:
    """``.<name>.<pid>.<random>.tmp`` beside ``path``: unique per process and call, so that concurrent writers of one
    file never share a temporary, and a stale one names the process that left it."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{TEMPORARY_SUFFIX}")


def atomic_write_with(path: PathType, write: Callable[[BinaryIO], None]) -> None:
    """Write through ``write`` into a temporary file beside ``path``, then rename it to ``path``.

    Readers (and a crash) never see a half-written file, and a failed write leaves the previous ``path`` as it was.
    An OSError (a full disk, a read-only folder) names ``path``. A plain ``open`` rather than
    ``tempfile.mkstemp``, which would create the file with mode 0600.
    """
    path = Path(path)
    temporary = temporary_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(temporary, "wb") as raw_file:
            file = _WriteErrorRecorder(raw_file)
            try:
                write(file)  # type: ignore[arg-type]
            except RuntimeError:
                if file.error is None:
                    raise
                raise file.error from None
            raw_file.flush()
            os.fsync(raw_file.fileno())
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        if error.filename is None or Path(error.filename) == temporary:
            raise OSError(error.errno, error.strerror or str(error), str(path)) from error
        raise
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def atomic_save(obj: Any, path: PathType) -> None:
    """``torch.save`` that never leaves a half-written checkpoint (temporary file + rename)."""
    atomic_write_with(path, lambda file: torch.save(obj, file))


def atomic_write_text(path: PathType, text: str) -> None:
    """Write a text file (UTF-8) that never appears half-written (temporary file + rename)."""
    atomic_write_with(path, lambda file: file.write(text.encode("utf-8")))


def append_text_atomically(path: PathType, text: str) -> None:
    """Append ``text`` to a text file by writing the whole new file atomically: a full disk leaves the file as it
    was, never with half a line."""
    path = Path(path)
    earlier = path.read_text(encoding="utf-8") if path.exists() else ""
    atomic_write_text(path, earlier + text)


def atomic_save_image(image: Image.Image, path: PathType, format: str = "PNG") -> None:
    """Save a PIL image that never appears half-written (temporary file + rename)."""
    atomic_write_with(path, lambda file: image.save(file, format=format))


def remove_stale_temporaries(folder: PathType) -> list[Path]:
    """Delete the temporaries of atomic writes in ``folder`` (see :func:`temporary_path`) that a killed process left
    behind: those whose process no longer runs, or is this one (which is not writing now). Returns them."""
    folder = Path(folder)
    # .<name>.<pid>.<8 hex digits>.tmp (or .<name>.<pid>.tmp, the form without the random part)
    pattern = re.compile(rf"\..+?\.(\d+)(\.[0-9a-f]{{8}})?{re.escape(TEMPORARY_SUFFIX)}")
    removed = []
    for candidate in sorted(folder.glob(f".*{TEMPORARY_SUFFIX}")) if folder.is_dir() else ():
        match = pattern.fullmatch(candidate.name)
        if match and candidate.is_file() and (int(match[1]) == os.getpid() or process_gone(int(match[1]))):
            candidate.unlink(missing_ok=True)
            removed.append(candidate)
    return removed


def process_gone(pid: int) -> bool:
    """Whether no process ``pid`` runs (one of another user counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # it exists, under another user
        return False
    return False


def file_sha256(path: PathType) -> str:
    """Hex SHA-256 of a file (identifies the checkpoint behind a results file)."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
