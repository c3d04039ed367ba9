"""Strict readers shared by the input formats: file checks by stat, strict JSON, tokenizer.json.

Each refuses a bad input with one line naming the file and the problem, before any data is read.
"""

from __future__ import annotations

import errno
import functools
import json
import math
import os
import stat
import sys
from pathlib import Path
from typing import Any

from edgec.errors import CheckpointError, EdgecError

__all__ = ["check_file", "is_present", "load_tokenizer", "loads_json", "one_line", "path_problem", "read_bytes",
           "short"]

_Error = type[EdgecError]


def short(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, for quoting a hostile value in a one-line error."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def one_line(err: BaseException, limit: int = 200) -> str:
    """An exception's message on one line (third-party messages can span several)."""
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _os_problem(path: Path, err: OSError | ValueError) -> str:
    """What an OSError (or the ValueError of a NUL byte) from stat/open says about ``path``."""
    if isinstance(err, ValueError):
        return "the path contains a NUL byte"
    code = err.errno
    if code == errno.ENOENT and os.path.islink(path):
        return "is a broken or looping symlink (its target does not exist)"
    if code == errno.ELOOP:
        return "is a broken or looping symlink (it points back at itself)"
    return {
        errno.ENOENT: "does not exist",
        errno.ENOTDIR: "a component of the path is a file, not a folder",
        errno.ENAMETOOLONG: "the path is too long for the file system",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.EISDIR: "is a directory, not a file",
    }.get(code, err.strerror or type(err).__name__)


def path_problem(path: Path, want_dir: bool = False) -> str | None:
    """None if ``path`` is a regular file (a folder if ``want_dir``), else what it is instead."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError) as err:
        return _os_problem(path, err)
    if want_dir:
        return None if stat.S_ISDIR(mode) else "is a file, not a folder"
    if stat.S_ISDIR(mode):
        return "is a directory, not a file"
    return None if stat.S_ISREG(mode) else "is not a regular file (a device, FIFO or socket)"


def is_present(path: Path) -> bool:
    """Whether anything (even a broken symlink) is at ``path``; errors other than 'absent' count as present."""
    try:
        os.lstat(path)
    except FileNotFoundError:
        return False
    except (OSError, ValueError):
        return True
    return True


def check_file(path: Path, what: str, error: _Error, max_bytes: int | None = None, limit_name: str = "") -> int:
    """The size of ``path`` after refusing anything but a regular file (of at most ``max_bytes``)."""
    problem = path_problem(path)
    if problem is not None:
        raise error(f"{path}: {problem}; pass {what}")
    size = os.stat(path).st_size
    if max_bytes is not None and size > max_bytes:
        raise error(f"{path}: {size} bytes is larger than {limit_name} = {max_bytes} bytes; pass {what}")
    return size


def read_bytes(path: Path, what: str, error: _Error, max_bytes: int, limit_name: str) -> bytes:
    """The content of a small file checked by :func:`check_file`."""
    check_file(path, what, error, max_bytes, limit_name)
    try:
        return path.read_bytes()
    except OSError as err:
        raise error(f"{path}: cannot read it ({_os_problem(path, err)}); pass {what}") from None


class _Refused(ValueError):
    """A JSON value strict parsing refuses (NaN, Infinity, an overflowing number, a duplicate key)."""


def _no_constant(name: str) -> Any:
    raise _Refused(f"the literal {name} is not JSON; write a finite number")


class JsonInfinity:
    """The bare literal ``Infinity`` of a config.json written by Python's json (transformers 4.x writes Mamba-2's
    time_step_limit so): not a number to any field check, so only a field that allows it takes it."""

    def __repr__(self) -> str:
        return "Infinity"


JSON_INFINITY = JsonInfinity()


def _infinity_only(name: str) -> Any:
    if name != "Infinity":
        _no_constant(name)
    return JSON_INFINITY


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"the number {short(text)} overflows a float; write a finite number")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Refused(f"key {short(key)} appears twice in one object; keep one")
        out[key] = value
    return out


def loads_json(raw: bytes, source: str | Path, error: _Error = CheckpointError, infinity: bool = False) -> Any:
    """Strict JSON of UTF-8 bytes: no NaN/Infinity, no overflowing numbers, no duplicate keys. With ``infinity``,
    a bare ``Infinity`` is read as JSON_INFINITY (still no number to any field that does not allow it)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise error(f"{source}: not UTF-8 (byte 0x{raw[err.start]:02x} at offset {err.start}); "
                    "re-save it as UTF-8 JSON") from None
    try:
        return json.loads(text.removeprefix("\ufeff"), parse_constant=_infinity_only if infinity else _no_constant,
                          parse_float=_finite_float,
                          object_pairs_hook=_unique_keys)
    except _Refused as err:
        raise error(f"{source}: not valid JSON ({err})") from None
    except json.JSONDecodeError as err:
        raise error(f"{source}: not valid JSON ({err.msg}: line {err.lineno}, column {err.colno}); "
                    "fix or re-download it") from None
    except RecursionError:
        raise error(f"{source}: not valid JSON (nested too deeply); fix or re-download it") from None
    except ValueError:  # json.loads raises a bare ValueError only for an integer of too many digits
        raise error(f"{source}: not valid JSON (an integer has more than {sys.get_int_max_str_digits()} digits); "
                    "fix or re-download it") from None


def load_tokenizer(path: Path) -> Any:
    """A ``tokenizers.Tokenizer`` from tokenizer.json; anything the library refuses is a CheckpointError."""
    from edgec.limits import MAX_TOKENIZER_BYTES

    size = check_file(path, "a tokenizer.json written by save_pretrained, or remove it to use byte-level tokens",
                      CheckpointError, MAX_TOKENIZER_BYTES, "MAX_TOKENIZER_BYTES")
    return _cached_tokenizer(str(path), os.stat(path).st_mtime_ns, size)


@functools.lru_cache(maxsize=4)
def _cached_tokenizer(path: str, mtime_ns: int, size: int) -> Any:
    from tokenizers import Tokenizer

    try:
        return Tokenizer.from_file(path)
    except BaseException as err:  # the library raises plain Exception, and pyo3's PanicException on a panic
        if not isinstance(err, Exception) and type(err).__name__ != "PanicException":
            raise  # Ctrl-C, SIGTERM, exit: not the file's fault
        raise CheckpointError(f"{path}: the tokenizers library refuses this tokenizer.json ({one_line(err)}); "
                              "re-save it with tokenizer.save_pretrained, or remove it") from None
