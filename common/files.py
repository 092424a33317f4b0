"""Paths and file identity: the one path type of the project and file hashes (which identify the checkpoint behind
a result). Writing files safely is :mod:`common.safe_write`."""
from __future__ import annotations

import hashlib
from os import PathLike
from typing import Union

PathType = Union[str, PathLike]


def file_sha256(path: PathType) -> str:
    """Hex SHA-256 of a file (identifies the checkpoint behind a results file)."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
