"""Where ``interpolate.py`` may write, and how an output is published without losing anything.

Every output is written under a hidden temporary name beside the target that is unique to the run (process id and
a random tag), and renamed to the target only once complete, so two runs into one output never mix their frames
and a run reports success only for a file or folder it wrote whole.

A PNG-folder output holds ``000000.png``, ``000001.png``, ... and a marker, ``.interpolate.json``, saying how many
frames it holds. ``--overwrite`` replaces a file, or a folder whose marker accounts for every file in it; any other
non-empty folder is refused, as is an output that is the input or contains it, however the path is spelled
(``inner/..``, symbolic links). A replaced folder is swapped out by renames and then only the files its marker
lists are deleted. The hidden partial output of a run that was killed is deleted by the next run into the same
target, once its process is gone.
"""
from __future__ import annotations

import errno
import json
import logging
import os
from pathlib import Path
from typing import Optional

from common.safe_write import partial_path, remove_stale_partials

MARKER_NAME = ".interpolate.json"
PROGRAM = "interpolate.py"
_MAX_LISTED_NAMES = 5

logger = logging.getLogger(__name__)


def frame_name(index: int) -> str:
    return f"{index:06d}.png"


def remove_stale_outputs(path: Path) -> list[Path]:
    """Delete the partial outputs for ``path`` that killed runs left beside it (their process is gone)."""
    removed = remove_stale_partials(path.parent, path)
    if removed:
        logger.warning("deleted the partial output of a killed run: %s", ", ".join(str(item) for item in removed))
    return removed


def make_parents(path: Path) -> list[Path]:
    """Create the missing folders above ``path``; returns them, deepest first, for :func:`remove_folders`."""
    missing = [parent for parent in path.parents if not parent.exists()]
    path.parent.mkdir(parents=True, exist_ok=True)
    return missing


def remove_folders(folders: list[Path]) -> None:
    """Remove the folders a failed run created, as long as they are still empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def marker_text(frame_count: int, source: Path) -> str:
    return json.dumps({"program": PROGRAM, "frames": frame_count, "input": str(source)}, indent=1) + "\n"


def previous_output_names(folder: Path) -> Optional[set[str]]:
    """The file names a folder output of this program wrote into ``folder``; None without a valid marker."""
    try:
        marker = json.loads((folder / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # no marker, unreadable, or not JSON
        return None
    if not isinstance(marker, dict) or marker.get("program") != PROGRAM or not isinstance(marker.get("frames"), int):
        return None
    return {MARKER_NAME, *(frame_name(index) for index in range(marker["frames"]))}


def _listed(names: list[str]) -> str:
    more = f", ... ({len(names) - _MAX_LISTED_NAMES} more)" if len(names) > _MAX_LISTED_NAMES else ""
    return ", ".join(names[:_MAX_LISTED_NAMES]) + more


def check_replaceable_folder(folder: Path, shown: Path) -> None:
    """Raise ValueError unless every file in ``folder`` is one a previous run of this program wrote there."""
    ours = previous_output_names(folder)
    if ours is None:
        raise ValueError(
            f"{shown} is a folder that interpolate.py did not write (it has no {MARKER_NAME}); --overwrite replaces "
            "only an earlier output: choose a new or empty folder"
        )
    foreign = sorted(name for name in os.listdir(folder) if name not in ours)
    if foreign:
        raise ValueError(
            f"{shown} holds files interpolate.py did not write ({_listed(foreign)}); move them or choose another "
            "--output"
        )


def check_output(output: Path, source: Path, is_video: bool, overwrite: bool) -> Path:
    """The output's resolved path, once it is sure that writing there loses nothing; else a ValueError or a
    FileExistsError that says why. ``output`` is shown in messages as the user spelled it."""
    target = output.resolve()
    source = source.resolve()
    if target == source or target in source.parents:
        relation = "is" if target == source else "contains"
        raise ValueError(f"the output {output} {relation} the input {source}; choose another --output")
    if target.parent == target:
        raise ValueError(f"the output {output} is the root folder; choose another --output")
    for parent in reversed(target.parents):
        if not parent.exists():
            break
        if not parent.is_dir():
            raise ValueError(f"cannot write {output}: {parent} is a file, not a folder")
    if not os.path.lexists(target):
        return target
    if is_video:
        if target.is_dir():
            raise ValueError(f"{output} is a folder; a video output needs a file name")
        if not overwrite:
            raise FileExistsError(f"{output} exists; pass --overwrite to replace it")
        return target
    if not target.is_dir():
        raise ValueError(f"{output} is a file; a PNG-folder output (a path without a suffix) must be a folder")
    if not os.listdir(target):
        return target
    check_replaceable_folder(target, output)
    if not overwrite:
        raise FileExistsError(f"{output} exists; pass --overwrite to replace it")
    return target


def publish_folder(temporary: Path, path: Path, replace: bool) -> None:
    """Rename the complete folder ``temporary`` to ``path``. With ``replace``, an earlier output at ``path`` is first
    moved aside, and once the new folder is in place only the files its marker lists are deleted."""
    previous = None
    if replace and path.is_dir() and os.listdir(path):
        check_replaceable_folder(path, path)  # again: files may have been added while this run was writing
        previous = partial_path(path, "replaced")
        os.rename(path, previous)
    try:
        os.rename(temporary, path)  # replaces only an empty folder: never merges into another run's output
    except OSError as error:
        if previous is not None:
            os.rename(previous, path)
        if error.errno in (errno.ENOTEMPTY, errno.EEXIST):
            raise FileExistsError(f"{path} was filled while this run was writing (another run?); it was left as it "
                                  "was") from error
        raise
    if previous is not None:
        _remove_previous_output(previous, path)


def _remove_previous_output(folder: Path, published: Path) -> None:
    for name in previous_output_names(folder) or ():
        (folder / name).unlink(missing_ok=True)
    try:
        folder.rmdir()
    except OSError:
        logger.warning("the earlier output of %s was kept in %s: files appeared in it while this run was writing",
                       published, folder)
