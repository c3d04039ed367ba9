"""The ``edgec`` console entry point: signal handling first, then the CLI (whose imports can be interrupted too)."""

from __future__ import annotations

import contextlib
import sys
import warnings

from edgec import exits

__all__ = ["main"]


def main(argv: list[str] | None = None, restore_handlers: bool = False) -> None:
    """Run the CLI and exit with its code (edgec.exits lists them).

    ``restore_handlers`` puts the previous signal handlers back afterwards (for callers in the same
    process, such as tests); the command itself ignores signals once its outcome is decided, so a late
    Ctrl-C cannot turn a finished run into a traceback.
    """
    for stream, errors in ((sys.stdout, "replace"), (sys.stderr, "backslashreplace")):
        with contextlib.suppress(AttributeError, ValueError):  # a closed or replaced stream
            stream.reconfigure(errors=errors)
    with exits.interrupts_as_exceptions(restore=restore_handlers), warnings.catch_warnings():
        if not exits.debugging():  # library warnings (numpy overflow, deprecations) would break the one-line rule
            warnings.simplefilter("ignore")
        try:
            code = _run(sys.argv[1:] if argv is None else argv)
        except exits.Interrupted as sig:  # raised after run_cli had handled everything else
            code = exits.fail("edgec: interrupted", sig.exit_code)
        exits.outcome_decided()  # from here on a signal is only recorded: the code above is the run's outcome
    sys.exit(code)


def _run(args: list[str]) -> int:
    if sys.stdout is None:
        return exits.fail("edgec: error: standard output is closed; redirect it to a file or /dev/null",
                          exits.BAD_INPUT)
    try:
        from edgec.cli import run_cli
    except BaseException as err:
        if exits.pending_exit_code() is None:
            raise
        del err
        return exits.fail("edgec: interrupted", exits.pending_exit_code())
    return run_cli(args)
