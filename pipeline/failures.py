"""Expected failures of the scripts: one line on stderr naming the file or flag at fault and what to do, a non-zero
exit status, and the traceback only in log.txt (or on the console with ``--debug``).

An expected failure is bad input (:class:`ScriptError`, raised with a message that already names the culprit) or
the environment refusing a write: a full disk, a read-only or missing folder (``OSError``). Anything else is a bug
and keeps its traceback.
"""
from __future__ import annotations

import contextlib
import errno
import logging
import sys
from typing import Callable, Iterator, Union

logger = logging.getLogger(__name__)

# Exit statuses: bad input (argparse's own status for usage errors), and a write the system refused.
BAD_INPUT_STATUS = 2
ENVIRONMENT_STATUS = 1

_ENVIRONMENT_ERRNOS = {
    errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EISDIR, errno.ENOENT,
    errno.EEXIST, errno.ENAMETOOLONG,
}


class ScriptError(Exception):
    """An expected failure; the message is one line that names the file or flag at fault and says what to do."""


def describe_os_error(error: OSError, retry: str = "run again") -> str:
    """One line for a refused write or read, naming the path; ``retry`` says how to carry on after a full disk."""
    path = error.filename if error.filename is not None else "the output"
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"no space left on {path}; free some space and {retry} (files written before are intact)"
    if error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"cannot write {path}: {error.strerror}; choose a writable location"
    return f"{path}: {error.strerror}"


def _log_to_files(message: str, handlers: list[logging.Handler]) -> None:
    """Append ``message`` and the current traceback to the log files among ``handlers`` (the console gets one
    line)."""
    record = logger.makeRecord(logger.name, logging.ERROR, __file__, 0, message, None, sys.exc_info())
    for handler in handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


@contextlib.contextmanager
def reported_failures(
    program: str, debug: bool = False, retry: Union[str, Callable[[], str]] = "run again"
) -> Iterator[None]:
    """Turn the expected failures raised in the block into ``<program>: error: <one line>`` on stderr and
    ``SystemExit``; with ``debug`` they propagate with their traceback. The message and traceback also go to the
    log files set up inside the block (not to those of an earlier run in the same process). ``retry`` (or what it
    returns when called at the failure) says how to carry on once a full disk has room again."""
    earlier_handlers = list(logging.getLogger().handlers)
    try:
        yield
    except ScriptError as error:
        if debug:
            raise
        _exit(program, str(error), BAD_INPUT_STATUS, earlier_handlers)
    except OSError as error:
        if debug or error.errno not in _ENVIRONMENT_ERRNOS:
            raise
        _exit(program, describe_os_error(error, retry() if callable(retry) else retry), ENVIRONMENT_STATUS,
              earlier_handlers)


def _exit(program: str, message: str, status: int, earlier_handlers: list[logging.Handler]) -> None:
    line = " ".join(message.split("\n"))
    handlers = [handler for handler in logging.getLogger().handlers if handler not in earlier_handlers]
    # Logging must not print its own traceback if the log file is on the full disk.
    raise_exceptions, logging.raiseExceptions = logging.raiseExceptions, False
    try:
        _log_to_files(line, handlers)
    finally:
        logging.raiseExceptions = raise_exceptions
    print(f"{program}: error: {line}", file=sys.stderr)
    raise SystemExit(status)
