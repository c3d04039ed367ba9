"""`edgec verify` on an FPGA build: check every hash, recompile the testbench and replay the golden tokens.

The project's own sources (only the files its manifest lists) are copied to a scratch folder and
compiled there with g++ against the installed hls4ml's ap_types headers, so a stray file added to
``firmware/`` cannot shadow a header. The testbench runs on ``data/golden_tokens.bin`` and every logit
must equal ``data/golden_logits.bin`` bit for bit.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgec.errors import ArtifactError, VerificationError
from edgec.hls.toolchain import ToolchainError, ap_types_dir, compile_program, run_program
from edgec.manifest import check_files, read_manifest

__all__ = ["verify_fpga"]

#: Per kind of project (manifest "kind"): its sources, and its data: the weights, the testbench's inputs
#: (the last one int64, one entry per call), the golden logits.
LAYOUTS = {
    "step": (("tb/tb_edgec.cpp", "firmware/edgec_top.cpp"),
             ("data/weights.bin", "data/golden_tokens.bin", "data/golden_logits.bin")),
    "image": (("tb/tb_edgec_image.cpp", "firmware/edgec_top.cpp"),
              ("data/weights.bin", "data/golden_images.bin", "data/golden_tasks.bin", "data/golden_logits.bin")),
}


def verify_fpga(folder: Path, manifest: dict[str, Any] | None = None) -> dict[str, Any]:
    """Check ``folder`` (an ``edgec build --target fpga`` project) and C-simulate its golden tokens.

    Returns tokens, logits_total, logits_equal (== logits_total) and compile/run seconds; raises
    ArtifactError (altered files), ToolchainError (no g++ / ap_types) or VerificationError (a logit differs).
    """
    folder = Path(folder)
    manifest = manifest if manifest is not None else read_manifest(folder, ("edgec-fpga/",), "an FPGA build")
    sources, data = LAYOUTS.get(manifest.get("kind", "step"), LAYOUTS["step"])
    needed = [*sources, *data]  # named first: a missing entry is reported for these, before any hashing
    check_files(folder, manifest, [*needed, *sorted(set(manifest["files"]) - set(needed))])
    calls = np.fromfile(folder / data[-2], "<i8")
    golden = np.fromfile(folder / data[-1], "<i8")
    if calls.size == 0 or golden.size % calls.size:
        raise ArtifactError(f"{folder / data[-1]}: {golden.size} logits do not fit {calls.size} golden calls; "
                            "rebuild the project")
    headers = [name for name in manifest["files"] if name.startswith("firmware/")]
    with tempfile.TemporaryDirectory(prefix="edgec-verify-") as scratch:
        work = Path(scratch)
        try:
            for name in sorted({*sources, *headers}):
                (work / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(folder / name, work / name)
        except OSError as err:
            raise ToolchainError(f"cannot copy the project's sources to a scratch folder in {scratch} "
                                 f"({err.strerror}); check TMPDIR and its free space") from None
        check_files(work, manifest, sorted({*sources, *headers}))  # the copies compiled are the hashed files
        start = time.perf_counter()
        exe = compile_program([work / s for s in sources], work / "tb_edgec", [work / "firmware", ap_types_dir()])
        compile_s = time.perf_counter() - start
        logits = work / "logits.bin"
        start = time.perf_counter()
        try:
            run_program(exe, [*(folder / d for d in data[:-1]), logits, "--golden", folder / data[-1]])
        except ToolchainError:
            if not logits.is_file() or logits.stat().st_size != golden.nbytes:
                raise
        run_s = time.perf_counter() - start
        got = np.fromfile(logits, "<i8")
    equal = int(np.sum(got == golden)) if got.shape == golden.shape else 0
    if equal != golden.size:
        raise VerificationError(f"{folder}: C simulation here differs from data/golden_logits.bin on "
                                f"{golden.size - equal} of {golden.size} logits; check the g++ and hls4ml "
                                "versions, or rebuild the project")
    return {"tokens": int(calls.size), "logits_total": int(golden.size), "logits_equal": equal,
            "compile_s": compile_s, "run_s": run_s}
