"""The C++ toolchain for HLS C simulation: g++ plus the ap_types headers that ship with hls4ml.

Nothing here imports hls4ml (it drags in heavy dependencies); its headers are located through the
import system's metadata only. Every failure is a :class:`ToolchainError` with one line saying what
to install or fix.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from edgec import exits
from edgec.errors import EdgecError

__all__ = [
    "HLS_INCLUDE_DIR",
    "ToolchainError",
    "ap_types_dir",
    "compile_program",
    "compiler_command",
    "find_compiler",
    "run_program",
]

#: The edgec HLS kernel headers (edgec_numerics.h, ...), shipped inside this package.
HLS_INCLUDE_DIR = Path(__file__).resolve().parent / "include"

# Compiler messages in English and without colour codes, so the first error line can be found.
_COMPILER_ENV = {"LC_ALL": "C", "LANG": "C", "GCC_COLORS": ""}


class ToolchainError(EdgecError):
    """A C++ compiler or the hls4ml ap_types headers are missing, or a C simulation build/run failed."""


def ap_types_dir() -> Path:
    """The ``templates/vivado/ap_types`` folder of the installed hls4ml package (ap_int.h, ap_fixed.h).

    Found with :func:`importlib.util.find_spec` without importing hls4ml.
    """
    try:
        spec = importlib.util.find_spec("hls4ml")
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        folder = Path(location) / "templates" / "vivado" / "ap_types"
        if (folder / "ap_int.h").is_file():
            return folder
    if not locations:
        raise ToolchainError("the ap_types headers come with hls4ml, which is not installed: pip install hls4ml")
    raise ToolchainError(f"hls4ml at {locations[0]} has no templates/vivado/ap_types/ap_int.h: "
                         "reinstall it (pip install --force-reinstall hls4ml)")


def compiler_command() -> list[str]:
    """The C++ compiler command: ``$CXX`` split like a shell word list ("ccache g++", "g++ -O0"), else g++."""
    cxx = os.environ.get("CXX", "").strip()
    try:
        words = shlex.split(cxx) if cxx else ["g++"]
    except ValueError as err:
        raise ToolchainError(f"CXX={cxx} cannot be split into a command ({err}); fix CXX") from None
    found = shutil.which(words[0])
    if found is None:
        raise ToolchainError(f"CXX={cxx} is not an executable on PATH; install g++ or fix CXX" if cxx
                             else "no C++ compiler found (g++); install g++ or set CXX")
    return [found, *words[1:]]


def find_compiler() -> str:
    """The absolute path of the C++ compiler (the first word of :func:`compiler_command`)."""
    return compiler_command()[0]


def _first_error_line(stderr: str) -> str:
    """The first line of compiler/linker output that reports an error (else the first non-empty line)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:  # "file:line:col: error: ...", "fatal error: ...", or a linker's undefined symbol
        if "error:" in line or "undefined reference" in line:
            return line
    return lines[0] if lines else ""


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL a process group and wait until every member is gone (not only its leader); a second Ctrl-C
    during this wait is only recorded, so the compiler never outlives edgec."""
    with exits.signals_deferred():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 20.0
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.01)


def _run_group(cmd: list[str], timeout: float, env: Mapping[str, str] | None) -> subprocess.CompletedProcess:
    """subprocess.run in a process group of its own, killed whole if edgec stops waiting for any reason.

    g++ runs cc1plus and as as children: killing only g++ (what subprocess.run does on an
    interrupt or a timeout) would leave them running, and writing, after edgec has exited.
    """
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                          start_new_session=True) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except BaseException:
            _kill_group(proc)
            raise
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


def compile_program(sources: list[Path], output: Path, include_dirs: list[Path],
                    defines: dict[str, str] | None = None, opt: str = "-O2", timeout: float = 600.0) -> Path:
    """Compile and link ``sources`` into the executable ``output`` with -std=c++14; return ``output``.

    The command line is deterministic: compiler, standard, ``opt``, include folders in the given
    order, macros sorted by name, ``-o output``, then the sources. stderr is captured; on failure
    the first error line becomes the message of a :class:`ToolchainError`.
    """
    if not sources:
        raise ToolchainError("compile_program: no source files given")
    for path in [*sources, *include_dirs]:
        if not Path(path).exists():
            raise ToolchainError(f"C++ build input {path} does not exist")
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    cmd = [*compiler_command(), "-std=c++14", opt]
    cmd += [f"-I{Path(d)}" for d in include_dirs]
    cmd += [f"-D{name}" if value == "" else f"-D{name}={value}" for name, value in sorted((defines or {}).items())]
    cmd += ["-o", str(output), *(str(Path(s)) for s in sources)]
    try:
        # The compiler's own temporary files go beside the output: if edgec is interrupted and the
        # compiler killed, they are removed with the output's scratch folder instead of littering $TMPDIR.
        proc = _run_group(cmd, timeout, {**os.environ, **_COMPILER_ENV, "TMPDIR": str(output.parent.resolve())})
    except subprocess.TimeoutExpired as exc:
        raise ToolchainError(f"C++ compilation of {Path(sources[0]).name} took over {timeout:g} s") from exc
    except OSError as exc:
        raise ToolchainError(f"cannot run the C++ compiler {cmd[0]}: {exc.strerror or exc}") from exc
    if proc.returncode != 0:
        line = _first_error_line(proc.stderr) or (f"the compiler {cmd[0]} exited with status {proc.returncode} "
                                                   "and no message (check CXX, or install g++)")
        raise ToolchainError(f"C++ compilation of {Path(sources[0]).name} failed: {line}")
    if not output.is_file():
        raise ToolchainError(f"the compiler {cmd[0]} reported success but wrote no program {output.name} "
                             "(check CXX, or install g++)")
    return output


def run_program(exe: Path, args: Sequence[str | os.PathLike[str]] = (), timeout: float = 600.0,
                env: Mapping[str, str] | None = None) -> str:
    """Run a compiled program (a testbench, a C simulation) and return its stdout.

    A non-zero exit, a crash or a timeout raises :class:`ToolchainError` with the program's last
    stderr line.
    """
    cmd = [str(exe), *(os.fspath(a) for a in args)]
    try:
        proc = _run_group(cmd, timeout, None if env is None else {**os.environ, **env})
    except subprocess.TimeoutExpired as exc:
        raise ToolchainError(f"{Path(exe).name} did not finish within {timeout:g} s") from exc
    except OSError as exc:
        raise ToolchainError(f"cannot run {exe}: {exc.strerror or exc}") from exc
    if proc.returncode != 0:
        last = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
        status = f"exit status {proc.returncode}" if proc.returncode > 0 else f"signal {-proc.returncode}"
        detail = f": {last[-1]}" if last else ""
        raise ToolchainError(f"{Path(exe).name} failed ({status}){detail}")
    return proc.stdout
