"""Expected failures of every script: one line on stderr naming the file or flag at fault and what to do, a
non-zero exit status returned by ``main``, and the traceback only in log.txt (or on the console with ``--debug``).

An expected failure is bad input (:class:`ScriptError`, raised with a message that already names the culprit), the
environment refusing a write (a full disk, a read-only or missing folder: ``OSError``), or the user stopping the
run (Ctrl-C, SIGTERM: :class:`Interrupted`). Anything else is a bug and keeps its traceback. Every script's
``main(argv)`` is ``return run_script(build_parser(), argv, body)``.
"""
from __future__ import annotations

import argparse
import errno
import logging
import signal
import sys
from types import FrameType
from typing import Callable, Optional, Sequence, Union


logger = logging.getLogger(__name__)

# Exit statuses: bad input found at start-up (argparse's own status for usage errors), a failure during the run
# or a write the system refused, and Ctrl-C (the shell's 128 + SIGINT; SIGTERM gives 128 + 15).
BAD_INPUT_STATUS = 2
RUN_FAILURE_STATUS = 1
INTERRUPTED_STATUS = 130

_ENVIRONMENT_ERRNOS = {
    errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EISDIR, errno.ENOENT,
    errno.EEXIST, errno.ENAMETOOLONG,
}


class ScriptError(Exception):
    """An expected failure; the message is one line that names the file or flag at fault and says what to do.
    ``status`` is the exit status: 2 for bad input found before anything was written, 1 for a failure during
    the run."""

    def __init__(self, message: str, status: int = BAD_INPUT_STATUS) -> None:
        super().__init__(message)
        self.status = status


class Interrupted(ScriptError):
    """The user stopped the run; the message says what was (not) written."""

    def __init__(self, message: str = "interrupted", status: int = INTERRUPTED_STATUS) -> None:
        super().__init__(message, status)


class Terminated(SystemExit):
    """SIGTERM or SIGHUP, raised in the main thread so that every clean-up on the way out runs."""


def terminate_as_exit() -> None:
    """Make SIGTERM and SIGHUP raise :class:`Terminated` (exit status 128 + the signal), like Ctrl-C raises
    KeyboardInterrupt; a script calls it once at start-up."""
    def raise_terminated(number: int, _frame: Optional[FrameType]) -> None:
        raise Terminated(128 + number)

    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), raise_terminated)


def describe_os_error(error: OSError, retry: str = "run again") -> str:
    """One line for a refused write or read, naming the path; ``retry`` says how to carry on after a full disk."""
    path = error.filename if error.filename is not None else "the output"
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"no space left on {path}; free some space and {retry} (files written before are intact)"
    if error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"cannot write {path}: {error.strerror}; choose a writable location"
    return f"{path}: {error.strerror}"


def is_environment_error(error: BaseException) -> bool:
    """An OSError the system raised for the files it was given (full disk, permissions, missing folder)."""
    return isinstance(error, OSError) and error.errno in _ENVIRONMENT_ERRNOS


Retry = Union[str, Callable[[argparse.Namespace], str]]


def run_script(parser: argparse.ArgumentParser, argv: Optional[Sequence[str]],
               body: Callable[[argparse.Namespace], object], retry: Retry = "run again") -> int:
    """Parse ``argv`` (the command line when None), run ``body(args)`` and return the exit status: 0, argparse's
    status for a usage error or ``--help``, or that of the expected failure, reported as ``<prog>: error: <one
    line>`` on stderr and, with its traceback, in the log files set up inside ``body``. With ``--debug`` an
    expected failure propagates with its traceback. ``retry`` (or what it returns for the arguments) says how to
    carry on once a full disk has room again. SIGTERM and SIGHUP end the run as Ctrl-C does (clean-up runs)."""
    try:
        args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    except SystemExit as stop:
        return 0 if stop.code is None else stop.code
    terminate_as_exit()
    debug = bool(getattr(args, "debug", False))
    earlier_handlers = list(logging.getLogger().handlers)
    try:
        body(args)
        return 0
    except Interrupted as interruption:
        print(f"{parser.prog}: {interruption}", file=sys.stderr)
        return interruption.status
    except ScriptError as error:
        if debug:
            raise
        return _report(parser.prog, str(error), error.status, earlier_handlers)
    except OSError as error:
        if debug or not is_environment_error(error):
            raise
        message = describe_os_error(error, retry(args) if callable(retry) else retry)
        return _report(parser.prog, message, RUN_FAILURE_STATUS, earlier_handlers)
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return INTERRUPTED_STATUS
    except Terminated as terminated:
        print(f"{parser.prog}: terminated", file=sys.stderr)
        return terminated.code


def _report(program: str, message: str, status: int, earlier_handlers: list[logging.Handler]) -> int:
    line = " ".join(message.split("\n"))
    handlers = [handler for handler in logging.getLogger().handlers
                if handler not in earlier_handlers and isinstance(handler, logging.FileHandler)]
    record = logger.makeRecord(logger.name, logging.ERROR, __file__, 0, line, None, sys.exc_info())
    # Logging must not print its own traceback if the log file is on the full disk.
    raise_exceptions, logging.raiseExceptions = logging.raiseExceptions, False
    try:
        for handler in handlers:
            handler.handle(record)
    finally:
        logging.raiseExceptions = raise_exceptions
    print(f"{program}: error: {line}", file=sys.stderr)
    return status
