"""A results folder owned by one program: a manifest of the files it wrote and an exclusive lock while it writes.

``--overwrite`` may only ever replace what the program itself wrote, so a folder is claimed only when it is new,
empty, or holds the manifest ``.stmfnet-output.json`` of the same program; even then an existing file the manifest
does not list is never replaced. The lock (``flock`` on ``.stmfnet-output.lock``, released by the kernel when the
process ends, however it ends) makes a second run into the same folder fail at once instead of mixing its files with
the first's. An output that equals, contains or lies inside one of the run's inputs is refused, whatever the
spelling (relative paths, ``..``, symbolic links).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Optional

from common.failures import ScriptError
from common.files import PathType
from common.safe_write import atomic_write_text

MANIFEST = ".stmfnet-output.json"
LOCK = ".stmfnet-output.lock"
_OWN_FILES = (MANIFEST, LOCK)

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
    import msvcrt


def check_output_location(path: PathType, flag: str) -> None:
    """Refuse an output folder that is a file, lies under a file, or cannot be created or written."""
    path = Path(path)
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        where = "is a file" if existing == path else f"lies under the file {existing}"
        raise ScriptError(f"{flag} {path} {where}; give a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "" if existing == path else f": {existing}"
        raise ScriptError(f"{flag} {path}{where} is not writable; choose a writable folder")


class OutputFolder:
    """The folder ``path`` claimed by ``program`` for the files ``planned`` (paths relative to the folder).

    Use as ``with OutputFolder(...).claim(overwrite) as folder: ... folder.finish()``. :meth:`check` refuses early
    without touching anything; :meth:`claim` takes the lock, checks again and records the planned files in the
    manifest before any is written, so that a run stopped half-way leaves a folder the next ``--overwrite`` may clean.
    """

    def __init__(self, path: PathType, program: str, flag: str, planned: Iterable[str]) -> None:
        self.path = Path(path)
        self.program = program
        self.flag = flag
        self.planned = list(dict.fromkeys(planned))
        self._lock_file: Optional[int] = None
        self._previous: list[str] = []

    def _manifest(self) -> Optional[dict]:
        try:
            manifest = json.loads((self.path / MANIFEST).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            raise ScriptError(f"{self.flag}: {self.path / MANIFEST} is damaged; choose another output folder")
        if not isinstance(manifest, dict):
            return None
        files = manifest.get("files", [])
        if not isinstance(files, list) or not all(isinstance(name, str) for name in files):
            raise ScriptError(f"{self.flag}: {self.path / MANIFEST} is damaged (its file list is not a list of names); "
                              "choose another output folder")
        for name in files:
            self._check_listed_name(name)
        return manifest

    def _check_listed_name(self, name: str) -> None:
        """A manifest is untrusted input: --overwrite deletes what it lists, so each entry must be a plain relative
        name that stays inside the folder (no absolute path, no '..', no symbolic link leading out)."""
        relative = Path(name)
        inside = (
            name and not relative.is_absolute() and ".." not in relative.parts and name not in _OWN_FILES
            and self.path.resolve() in (self.path / relative).resolve().parents
        )
        if not inside:
            raise ScriptError(
                f"{self.flag}: {self.path / MANIFEST} lists {name!r}, which is not a file inside {self.path}; the "
                "folder is refused (nothing was deleted): choose another output folder"
            )

    def check(self, overwrite: bool) -> None:
        """Refuse a folder that is not ours, ours from an earlier run without ``overwrite``, or in use by a run."""
        if self._lock_file is None and (self.path / LOCK).exists():
            probe = os.open(self.path / LOCK, os.O_RDONLY)
            try:
                if not _try_lock(probe, exclusive=False):
                    raise self._busy()
            finally:
                os.close(probe)
        if not self.path.is_dir():
            self._previous = []
            return
        contents = [entry.name for entry in self.path.iterdir() if entry.name not in _OWN_FILES]
        manifest = self._manifest()
        if manifest is None or manifest.get("program") != self.program:
            if contents:
                raise ScriptError(
                    f"{self.flag}: {self.path} is not empty and was not written by {self.program} (no {MANIFEST}); "
                    f"choose a new or empty folder (--overwrite only replaces earlier {self.program} results)"
                )
            self._previous = []
            return
        previous = [str(name) for name in manifest.get("files", [])]
        if not overwrite and any((self.path / name).exists() for name in previous):
            raise ScriptError(
                f"{self.flag}: {self.path} holds the results of an earlier {self.program} run; pass --overwrite to "
                f"replace them, or choose another folder"
            )
        foreign = [name for name in self.planned if name not in previous and (self.path / name).exists()]
        if foreign:
            raise ScriptError(
                f"{self.flag}: {self.path / foreign[0]} was not written by {self.program}; --overwrite will not "
                f"replace it: move it away or choose another folder"
            )
        self._previous = previous

    def claim(self, overwrite: bool) -> "OutputFolder":
        """Create the folder, take the lock (refusing if another run holds it), check, record the manifest."""
        if not (self.path / LOCK).exists():
            self.check(overwrite)  # a lock is only ever put into a folder that is ours
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._lock_file = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise ScriptError(
                f"{self.flag} {self.path}: cannot create {error.filename or self.path}: {error.strerror}; "
                f"choose a writable folder"
            ) from error
        if not _try_lock(self._lock_file, exclusive=True):
            self.release()
            raise self._busy()
        try:
            self.check(overwrite)  # the folder may have changed while we waited for the lock
            self._write_manifest(list(dict.fromkeys(self._previous + self.planned)))
        except BaseException:
            self.release()
            raise
        return self

    def finish(self) -> None:
        """Record the files this run wrote and delete those an earlier run wrote that this one did not."""
        written = [name for name in self.planned if (self.path / name).exists()]
        for name in self._previous:
            if name not in written:
                (self.path / name).unlink(missing_ok=True)
        self._write_manifest(written)

    def _busy(self) -> ScriptError:
        return ScriptError(
            f"{self.flag}: another {self.program} run is writing to {self.path}; wait for it to finish or choose "
            f"another folder"
        )

    def _write_manifest(self, files: list[str]) -> None:
        atomic_write_text(self.path / MANIFEST, json.dumps({"program": self.program, "files": files}, indent=1))

    def release(self) -> None:
        if self._lock_file is not None:
            os.close(self._lock_file)  # closing the descriptor releases the lock
            self._lock_file = None

    def __enter__(self) -> "OutputFolder":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def _try_lock(descriptor: int, exclusive: bool) -> bool:
    """Take the lock on an open file without waiting; False when another process holds it."""
    try:
        if fcntl is not None:
            fcntl.flock(descriptor, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        else:
            msvcrt.locking(descriptor, msvcrt.LK_NBLCK, 1)
    except OSError:
        return False
    return True
