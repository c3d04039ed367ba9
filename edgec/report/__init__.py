"""`edgec report`: one self-contained HTML page per model, with the tables and plots users look at.

:func:`write_report` checks every input first (the output path, the data files, each build folder's
report.json), then loads and evaluates the model (edgec eval's numbers), measures outliers and routing,
plots, and writes the page to a temporary file beside the output that is renamed into place: a failed
or interrupted run leaves nothing half-written.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edgec.errors import DataError, OutputError

__all__ = ["Written", "write_report"]


@dataclass(frozen=True)
class Written:
    """Where the page went, its size and its plots."""

    path: Path
    size: int
    plots: list[str]


def _check_output(output: Path, inputs: Sequence[Path]) -> None:
    """Refuse, before any work, an output that is a folder, lies in an input, or whose folder is not writable."""
    if output.is_dir():
        raise OutputError(f"{output}: is a folder; pass the HTML file to write with -o (e.g. {output / 'report.html'})")
    try:
        resolved = output.resolve()
        folders = [given.resolve() for given in inputs]
    except (OSError, RuntimeError) as err:  # a symlink loop
        raise OutputError(f"{output}: cannot be resolved ({err}); choose another path with -o") from None
    for given, folder in zip(inputs, folders, strict=True):
        if resolved == folder or folder in resolved.parents:
            raise OutputError(f"{output}: is or lies inside the input {given}; write the report elsewhere with -o")
    parent = output.parent
    if not parent.is_dir():
        raise OutputError(f"{output}: its folder {parent} does not exist (or is not a folder); create it or choose "
                          "another path with -o")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{output}: its folder {parent} is not writable; choose another path with -o")


def _write_atomic(output: Path, text: str) -> int:
    """Write ``text`` to a temporary file beside ``output``, then rename it over ``output``."""
    from edgec.exits import raise_if_pending, signals_deferred

    data = text.encode("utf-8")
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{output.name[:100]}.edgec-", suffix=".tmp", dir=output.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        raise_if_pending()
        with signals_deferred():
            os.replace(tmp, output)
            tmp = None
    except OSError as err:
        raise OutputError(f"{output}: cannot be written ({err.strerror or err}); choose another path with -o") \
            from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return len(data)


def write_report(model: str | None, output: Path, builds: Sequence[Path] = (), data: Path | None = None,
                 calib: Path | None = None, ablate: bool = False, seq_len: int | None = None,
                 max_tokens: int | None = None) -> Written:
    """Evaluate ``model`` (a QDIR, a checkpoint or a bundled name) and write its report page to ``output``."""
    from edgec.data import check_data_file
    from edgec.qdir import is_edgec_output, read_qdir_manifest
    from edgec.report import accuracy as acc
    from edgec.report.builds import read_build
    from edgec.report.card import model_card
    from edgec.report.outliers import linear_inputs
    from edgec.report.sections import ReportData, render_page
    from edgec.resolve import float_and_quantized, input_family, model_name
    from edgec.workloads import EvalOptions, workload_of
    from edgec.zoo import BUNDLED

    output = Path(output)
    name = model_name(model)
    model_path = BUNDLED[name].folder if name in BUNDLED else Path(name)
    if not model_path.exists():
        raise DataError(f"{name}: no such model folder or bundled name (edgec models lists them); pass a QDIR, a "
                        "checkpoint folder or a bundled name")
    _check_output(output, [model_path, *builds, *(p for p in (data, calib) if p is not None)])
    for path in (data, calib):
        if path is not None:
            check_data_file(path)
    options = EvalOptions(seq_len, max_tokens)
    workload_of(input_family(model)).check(options)
    read = [read_build(b) for b in builds]  # a bad build folder fails before any model work
    manifest = read_qdir_manifest(model_path) if is_edgec_output(name) else None
    fm, entry, qm = float_and_quantized(model, calib)
    data_path = data or (entry.eval if entry else None)
    if data_path is None:
        raise DataError(f"no evaluation data: pass --data FILE ({workload_of(fm).data_help})")
    calib_path = calib or (entry.calib if entry else None)
    if ablate and calib_path is None:
        raise DataError("--ablate re-runs the recipe, which needs calibration data: report on a bundled model (or a "
                        "QDIR of one), or on a checkpoint with --calib FILE")
    result = ReportData(card=model_card(fm, qm, manifest), data=data_path, builds=read,
                        accuracy=acc.evaluate(fm, qm, data_path, options),
                        outliers=linear_inputs(fm, acc.first_batch(fm, data_path)))
    if "routing_agreement" in result.accuracy:
        result.expert_load = acc.expert_load(fm, qm, data_path)
    if ablate:
        result.ablation, result.ablation_what = acc.ablation(fm, qm, calib_path, data_path)
    page, names = render_page(result)
    return Written(output, _write_atomic(output, page), names)
