"""The one way the project writes a file or a folder: a hidden temporary beside the target, named for this run,
flushed to disk and renamed into place only when complete.

- Name: ``.<stem>.<pid>-<8 hex digits>.<tag><suffix>`` (:func:`partial_path`): unique per run and call, so two
  runs into one target never share a temporary; it keeps the suffix (FFmpeg picks the container from it), and a
  stale one names the process that left it.
- Durability: file contents are fsynced before the rename, so a crash leaves either the old file or the new one.
- Permissions: temporaries are created with a plain ``open`` (the umask applies), as any other file the user makes.
- Clean-up: a failed or interrupted write removes its temporary (:func:`atomic_write_with`, :class:`Partial`);
  ``common.failures.terminate_as_exit`` turns SIGTERM/SIGHUP into ``SystemExit`` so that the same clean-up runs
  when a run is killed politely; and :func:`remove_stale_partials` deletes what a run killed with SIGKILL left
  behind, once its process is gone.
- No clobbering: :func:`publish_file` without ``replace`` never replaces a file that appeared meanwhile.
"""
from __future__ import annotations

import os
import re
import secrets
import shutil
from pathlib import Path
from typing import Any, BinaryIO, Callable, Optional

import torch
from PIL import Image

from common.failures import ScriptError
from common.files import PathType

PARTIAL_TAG = "partial"
# Only "partial" temporaries are ever deleted: a folder moved aside under another tag ("replaced") holds a user's
# earlier output.
_PARTIAL_NAME = re.compile(rf"\.(?P<stem>.*)\.(?P<pid>\d+)-[0-9a-f]{{8}}\.{PARTIAL_TAG}(?P<suffix>(\.[^.]*)?)")


def partial_path(path: PathType, tag: str = PARTIAL_TAG) -> Path:
    """A hidden name beside ``path`` that belongs to this run only and keeps its suffix."""
    path = Path(path)
    return path.with_name(f".{path.stem}.{os.getpid()}-{secrets.token_hex(4)}.{tag}{path.suffix}")


def process_gone(pid: int) -> bool:
    """Whether no process ``pid`` runs (one of another user counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # it exists, under another user
        return False
    return False


def remove_stale_partials(folder: PathType, target: Optional[PathType] = None) -> list[Path]:
    """Delete the temporaries (:func:`partial_path` names) in ``folder`` that killed runs left: those whose process
    is gone. With ``target``, only the temporaries of that file name. Returns them."""
    folder = Path(folder)
    removed = []
    for candidate in sorted(folder.iterdir()) if folder.is_dir() else ():
        match = _PARTIAL_NAME.fullmatch(candidate.name)
        if match is None or candidate.is_symlink():
            continue
        if target is not None and f"{match['stem']}{match['suffix']}" != Path(target).name:
            continue
        if not process_gone(int(match["pid"])):
            continue
        if candidate.is_dir():
            shutil.rmtree(candidate)
        else:
            candidate.unlink(missing_ok=True)
        removed.append(candidate)
    return removed


class Partial:
    """A temporary path for ``target`` that is removed unless :meth:`publish` moved it into place.

    ``with Partial(target) as partial: write(partial.path); partial.publish(replace)``: any exception, Ctrl-C or a
    SIGTERM (see :func:`terminate_as_exit`) in the block removes what was written.
    """

    def __init__(self, target: PathType, tag: str = PARTIAL_TAG) -> None:
        self.target = Path(target)
        self.path = partial_path(self.target, tag)
        self.published = False

    def publish(self, replace: bool) -> None:
        publish_file(self.path, self.target, replace)
        self.published = True

    def __enter__(self) -> "Partial":
        return self

    def __exit__(self, *exc_info: object) -> None:
        if not self.published:
            discard(self.path)


def discard(path: Path) -> None:
    """Remove a temporary file or folder if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


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


def atomic_write_to(path: PathType, write: Callable[[Path], None], replace: bool = True) -> None:
    """Let ``write`` create a file at a temporary path beside ``path`` (for writers that take a path: an ONNX
    exporter, an encoder), fsync it, then rename it to ``path``.

    Readers (and a crash) never see a half-written file, and a failed write leaves the previous ``path`` as it was.
    Without ``replace`` an existing ``path`` is never replaced. An OSError (a full disk, a read-only folder) names
    ``path``, not the temporary.
    """
    path = Path(path)
    try:
        with Partial(path) as partial:
            write(partial.path)
            fsync_file(partial.path)
            partial.publish(replace)
    except OSError as error:
        if error.errno is not None and (error.filename is None or Path(error.filename).name != path.name):
            raise OSError(error.errno, error.strerror or str(error), str(path)) from error
        raise


def fsync_file(path: Path) -> None:
    """Put the contents of ``path`` on disk before it gets its final name."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def atomic_write_with(path: PathType, write: Callable[[BinaryIO], None], replace: bool = True) -> None:
    """:func:`atomic_write_to` for a writer that takes an open binary file."""
    def write_file(temporary: Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with open(temporary, "xb") as raw_file:
            file = _WriteErrorRecorder(raw_file)
            try:
                write(file)  # type: ignore[arg-type]
            except RuntimeError:
                if file.error is None:
                    raise
                raise file.error from None

    atomic_write_to(path, write_file, replace)


def check_new_file(path: PathType, flag: str, replace: bool) -> None:
    """Refuse, before a run, a file path ``flag`` names that cannot be written whole: a folder, an existing file
    without ``replace`` (``--overwrite``), a missing or read-only folder."""
    path = Path(path)
    if path.is_dir():
        raise ScriptError(f"{flag} {path} is a folder; give a file name inside it")
    if path.exists() and not replace:
        raise ScriptError(f"{flag} {path} exists; pass --overwrite to replace it")
    folder = path.resolve().parent
    if not folder.is_dir():
        raise ScriptError(f"{flag} {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ScriptError(f"{flag} {path}: the folder {folder} is not writable")


def atomic_save(obj: Any, path: PathType, replace: bool = True) -> None:
    """``torch.save`` that never leaves a half-written checkpoint."""
    atomic_write_with(path, lambda file: torch.save(obj, file), replace)


def atomic_write_text(path: PathType, text: str, replace: bool = True) -> None:
    """Write a text file (UTF-8) that never appears half-written."""
    atomic_write_with(path, lambda file: file.write(text.encode("utf-8")), replace)


def append_text_atomically(path: PathType, text: str) -> None:
    """Append ``text`` to a text file by writing the whole new file atomically: a full disk leaves the file as it
    was, never with half a line."""
    path = Path(path)
    earlier = path.read_text(encoding="utf-8") if path.exists() else ""
    atomic_write_text(path, earlier + text)


def atomic_save_image(image: Image.Image, path: PathType, format: str = "PNG") -> None:
    """Save a PIL image that never appears half-written."""
    atomic_write_with(path, lambda file: image.save(file, format=format))


def publish_file(temporary: Path, path: Path, replace: bool) -> None:
    """Rename the complete ``temporary`` to ``path``; without ``replace`` an existing ``path`` is never touched."""
    if replace:
        os.replace(temporary, path)
        return
    try:
        os.link(temporary, path)  # fails if ``path`` exists, unlike a rename: another run's output stays
    except FileExistsError as error:
        raise FileExistsError(f"{path} appeared while this run was writing (another run?); it was left as it was"
                              ) from error
    except OSError:  # a file system without hard links
        if os.path.lexists(path):
            raise FileExistsError(f"{path} appeared while this run was writing (another run?); it was left as it was")
        os.replace(temporary, path)
        return
    temporary.unlink()
