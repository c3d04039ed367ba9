"""Exit codes and how each kind of failure is shown: one line on stderr, never a traceback by default.

| code | meaning |
|---|---|
| 0 | success |
| 1 | internal error (a bug in edgec), or out of memory; EDGEC_DEBUG=1 prints the traceback |
| 2 | bad input: a file, option or environment problem the user can fix (EdgecError, usage, OSError) |
| 130 / 143 / 129 | interrupted by SIGINT (Ctrl-C) / SIGTERM / SIGHUP; an output is either as it was before the run |
| | or, when the signal came during the final swap, the complete new one; never a mix |
| 141 | stdout closed early (``edgec run ... | head``) |
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from typing import Any

__all__ = [
    "BAD_INPUT",
    "BROKEN_PIPE",
    "INTERNAL",
    "OK",
    "SIGINT_EXIT",
    "SIGTERM_EXIT",
    "Interrupted",
    "broken_pipe",
    "debugging",
    "describe_unexpected",
    "escape_line_breaks",
    "exit_code_of",
    "fail",
    "interrupts_as_exceptions",
    "outcome_decided",
    "pending_exit_code",
    "raise_if_pending",
    "signals_deferred",
]

OK, INTERNAL, BAD_INPUT = 0, 1, 2
_HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
SIGINT_EXIT, SIGTERM_EXIT, BROKEN_PIPE = 128 + signal.SIGINT, 128 + signal.SIGTERM, 141


class Interrupted(BaseException):  # a signal, like KeyboardInterrupt, not an error
    """Raised in the main thread by SIGINT or SIGTERM, so that every ``finally`` cleans up on the way out."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.exit_code = 128 + signum


class _SignalState:
    """The last SIGINT/SIGTERM received (kept until the CLI reports it) and whether raising is deferred."""

    pending: int | None = None
    deferring: int = 0


def _on_signal(signum: int, _frame: object) -> None:
    # Recorded as well as raised: an exception raised inside a weakref callback or __del__ is printed and
    # dropped by Python, and the recorded signal still ends the run (raise_if_pending, run_cli's exit code).
    # Only the first signal raises: a second Ctrl-C must not cut short the clean-up the first one started.
    first = _SignalState.pending is None
    _SignalState.pending = signum
    if first and not _SignalState.deferring:
        raise Interrupted(signum)


def outcome_decided() -> None:
    """The run's exit code is known: until the handlers are restored, signals are recorded, never raised."""
    _SignalState.deferring += 1


def raise_if_pending() -> None:
    """Raise :class:`Interrupted` for a signal that arrived but was swallowed or deferred."""
    if _SignalState.pending is not None:
        raise Interrupted(_SignalState.pending)


def pending_exit_code() -> int | None:
    """128 + the signal received during this run, if any."""
    return None if _SignalState.pending is None else 128 + _SignalState.pending


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Within the block a signal is only recorded (a few renames must not be split); callers check
    :func:`raise_if_pending` where stopping is safe."""
    _SignalState.deferring += 1
    try:
        yield
    finally:
        _SignalState.deferring -= 1


@contextlib.contextmanager
def interrupts_as_exceptions(restore: bool = True) -> Iterator[None]:
    """Within the block, SIGINT, SIGTERM and SIGHUP raise :class:`Interrupted` (main thread only).

    Afterwards the previous handlers come back (``restore``), or these signals are ignored: the run's
    outcome is decided, and the process is about to exit with it.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _SignalState.pending = None
    # A signal the parent set to be ignored (SIGINT of a background job, SIGHUP under nohup) stays ignored.
    previous = {s: signal.signal(s, _on_signal) for s in _HANDLED if signal.getsignal(s) is not signal.SIG_IGN}
    hook = sys.unraisablehook
    sys.unraisablehook = _quiet_about_interrupts(hook)
    try:
        yield
    finally:
        sys.unraisablehook = hook
        for s, handler in previous.items():
            signal.signal(s, handler if restore else signal.SIG_IGN)
        if restore:  # the caller goes on in this process: a signal of this run must not stop its next one
            _SignalState.pending, _SignalState.deferring = None, 0


def debugging() -> bool:
    """EDGEC_DEBUG is set: show tracebacks and library warnings."""
    return bool(os.environ.get("EDGEC_DEBUG"))


def _quiet_about_interrupts(hook: Callable[[Any], object]) -> Callable[[Any], None]:
    """An unraisable-exception hook that drops :class:`Interrupted` (recorded already) and passes the rest on."""

    def quiet(unraisable: Any) -> None:
        if not isinstance(unraisable.exc_value, Interrupted):
            hook(unraisable)

    return quiet


def escape_line_breaks(message: str) -> str:
    """``message`` with its line breaks escaped (a path may hold one): an error is always one line."""
    return message.replace("\r", "\\r").replace("\n", "\\n")


def fail(line: str, code: int, traceback_too: bool = False) -> int:
    """Print ``line`` (if any) on stderr, the traceback too when asked and EDGEC_DEBUG is set; return ``code``."""
    if traceback_too and debugging():
        traceback.print_exc()
    if line:
        print(escape_line_breaks(line), file=sys.stderr)
    return code


def describe_unexpected(err: BaseException) -> str:
    """One line for an exception that is not an EdgecError: an OS problem, memory, or a bug in edgec."""
    if isinstance(err, OSError):
        where = f"{err.filename}: " if err.filename else ""
        return f"edgec: error: {where}{err.strerror or err} (check that path: its permissions, mounts and free space)"
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
