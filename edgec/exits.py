"""Exit codes and how each kind of failure is shown: one line on stderr, never a traceback by default.

| code | meaning |
|---|---|
| 0 | success |
| 1 | internal error (a bug in edgec), or out of memory; EDGEC_DEBUG=1 prints the traceback |
| 2 | bad input: a file, option or environment problem the user can fix (EdgecError, usage, OSError) |
| 130 / 143 | interrupted by SIGINT (Ctrl-C) / SIGTERM; outputs are left as they were before the run |
| 141 | stdout closed early (``edgec run ... | head``) |
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import traceback
from collections.abc import Iterator

__all__ = [
    "BAD_INPUT",
    "BROKEN_PIPE",
    "INTERNAL",
    "OK",
    "SIGINT_EXIT",
    "SIGTERM_EXIT",
    "Interrupted",
    "broken_pipe",
    "describe_unexpected",
    "exit_code_of",
    "fail",
    "interrupts_as_exceptions",
    "one_line",
]

OK, INTERNAL, BAD_INPUT = 0, 1, 2
SIGINT_EXIT, SIGTERM_EXIT, BROKEN_PIPE = 128 + signal.SIGINT, 128 + signal.SIGTERM, 141


class Interrupted(BaseException):  # a signal, like KeyboardInterrupt, not an error
    """Raised in the main thread by SIGINT or SIGTERM, so that every ``finally`` cleans up on the way out."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.exit_code = 128 + signum


def _raise_interrupted(signum: int, _frame: object) -> None:
    raise Interrupted(signum)


@contextlib.contextmanager
def interrupts_as_exceptions() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise :class:`Interrupted` (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    # A signal the parent set to be ignored (SIGINT of a background job) stays ignored.
    previous = {s: signal.signal(s, _raise_interrupted) for s in (signal.SIGINT, signal.SIGTERM)
                if signal.getsignal(s) is not signal.SIG_IGN}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def one_line(message: str) -> str:
    """``message`` with its line breaks escaped (a path may hold one): an error is always one line."""
    return message.replace("\r", "\\r").replace("\n", "\\n")


def fail(line: str, code: int, traceback_too: bool = False) -> int:
    """Print ``line`` (if any) on stderr, the traceback too when asked and EDGEC_DEBUG is set; return ``code``."""
    if traceback_too and os.environ.get("EDGEC_DEBUG"):
        traceback.print_exc()
    if line:
        print(one_line(line), file=sys.stderr)
    return code


def describe_unexpected(err: BaseException) -> str:
    """One line for an exception that is not an EdgecError: an OS problem, memory, or a bug in edgec."""
    if isinstance(err, OSError):
        where = f"{err.filename}: " if err.filename else ""
        return f"edgec: error: {where}{err.strerror or err}"
    if isinstance(err, MemoryError):
        return ("edgec: error: out of memory; the model or data is too large for this machine "
                "(use fewer tokens, or a machine with more memory)")
    detail = str(err).splitlines()[0] if str(err) else ""
    return (f"edgec: internal error: {type(err).__name__}: {detail} (a bug in edgec; rerun with EDGEC_DEBUG=1 "
            "for the traceback and report it)")


def exit_code_of(err: BaseException) -> int:
    """BAD_INPUT for an OS error the user can fix (a path, permissions, a full disk), else INTERNAL."""
    return BAD_INPUT if isinstance(err, OSError) else INTERNAL


def broken_pipe() -> int:
    """stdout was closed by its reader: stop quietly (and keep Python from complaining at exit)."""
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return BROKEN_PIPE
