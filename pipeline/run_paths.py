"""Which command-line flags name paths a run reads and which name paths it writes, and the one start-up check that
no written path aliases a read one.

Every script calls :func:`refuse_aliased_paths` before it writes anything. A written path is refused when it is
the same file as a read path (compared resolved: symbolic links, ``..`` and hard links), when it is a folder that
holds a read path, or when it lies inside a read folder (a frame folder, a data set, a training run): a run never
writes over, into or around what it reads. A flag added to a script must be put in :data:`READ_FLAGS`,
:data:`WRITE_FLAGS` or :data:`OTHER_FLAGS`; ``tests/test_run_paths.py`` fails for a path-like flag that is in
none of them.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Mapping, Optional, Union

from common.failures import ScriptError
from common.files import PathType

# Argument names (argparse ``dest``) of the paths a run reads.
READ_FLAGS = ("input", "checkpoint", "onnx", "teacher_dir", "pwc_weights", "data_dir", "load", "video", "run")
# Argument names of the paths a run writes (a file, or a folder it fills).
WRITE_FLAGS = ("output", "out_dir", "out", "report", "json")
# Names that look like paths but are not (rates, formats, switches).
OTHER_FLAGS = ("out_fps", "input_fps", "out_pix_fmt", "overwrite", "output_fps", "fps")
# Standard input or output, never a file.
STREAM = "-"

PathValue = Union[PathType, Iterable[PathType], None]


def _as_paths(value: PathValue) -> list[Path]:
    if value is None:
        return []
    if isinstance(value, (str, os.PathLike)):
        return [] if str(value) == STREAM else [Path(value)]
    return [path for item in value for path in _as_paths(item)]


def _same_file(first: Path, second: Path) -> bool:
    if first.resolve() == second.resolve():
        return True
    try:
        return os.path.samefile(first, second)  # hard links
    except OSError:  # one of them does not exist
        return False


def _inside(path: Path, folder: Path) -> bool:
    return folder.resolve() in path.resolve().parents


def flag_paths(flags: Mapping[str, object], names: Iterable[str]) -> dict[str, list[Path]]:
    """``{--flag: paths}`` of the arguments ``names`` that ``flags`` (values by argument name, e.g.
    ``vars(args)``) holds and that are set."""
    found = {}
    for name in names:
        paths = _as_paths(flags.get(name))  # type: ignore[arg-type]
        if paths:
            found[f"--{name}"] = paths
    return found


def refuse_aliased_paths(
    flags: Mapping[str, object],
    written: Optional[Mapping[str, PathValue]] = None,
    read: Optional[Mapping[str, PathValue]] = None,
) -> None:
    """Raise ScriptError (one line, naming both flags) when a path the run writes aliases one it reads.

    The paths come from ``flags`` (values by argument name, e.g. ``vars(args)``) by :data:`READ_FLAGS` and
    :data:`WRITE_FLAGS`; ``written`` and ``read`` replace or add paths a script derives (``{"--out_dir": the
    folder really written}``).
    """
    writes = flag_paths(flags, WRITE_FLAGS)
    writes.update({flag: _as_paths(value) for flag, value in (written or {}).items()})
    reads = flag_paths(flags, READ_FLAGS)
    reads.update({flag: _as_paths(value) for flag, value in (read or {}).items()})
    for write_flag, write_paths in writes.items():
        for written_path in write_paths:
            for read_flag, read_paths in reads.items():
                for read_path in read_paths:
                    relation = _relation(written_path, read_path)
                    if relation:
                        raise ScriptError(
                            f"{write_flag} {written_path} {relation} {read_flag} {read_path}, which this run reads; "
                            f"choose another {write_flag}"
                        )


def _relation(written: Path, read: Path) -> Optional[str]:
    if _same_file(written, read):
        return "is the same file as"
    if _inside(read, written):
        return "holds"
    if read.is_dir() and _inside(written, read):
        return "lies inside"
    return None
