"""`edgec build --target fpga`: emit, C-simulate against the simulator, estimate, and write the project."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from edgec.errors import DataError, EdgecError
from edgec.ir import Op, entry_graphs
from edgec.manifest import write_manifest
from edgec.outdir import atomic_dir
from edgec.passes.pipeline import lower_int_constants
from edgec.passes.quantize import QuantizedModel
from edgec.runtime.sim_int import IntSimulator
from edgec.targets.fpga.costs import MACS_PER_DSP
from edgec.targets.fpga.csim import CsimResult, require_bit_exact, run_csim, simulate_steps
from edgec.targets.fpga.csim_images import golden_calls, run_image_csim, simulate_images
from edgec.targets.fpga.devices import FpgaDevice, get_device
from edgec.targets.fpga.emit import emit_design
from edgec.targets.fpga.emit_images import emit_image_design
from edgec.targets.fpga.estimate import estimate, format_estimate
from edgec.targets.fpga.estimate_images import estimate_image, format_image_estimate
from edgec.targets.fpga.project import write_project
from edgec.targets.fpga.project_images import write_image_project
from edgec.targets.onnx.build_images import golden_images, is_image_model, task_of

__all__ = ["FORMAT", "UNHASHED", "build_fpga", "golden_tokens"]

FORMAT = "edgec-fpga/1"
#: Files of a project that are edgec's but not hashed: report.json (timings), and what the project's own
#: recipes write into it: csim.sh (tb_edgec, csim_logits.bin), vitis_hls -f build_prj.tcl (the rest).
UNHASHED = ("report.json", "tb_edgec", "csim_logits.bin", "edgec_prj", "vitis_hls.log")
KERNEL_LANES = 1
DEFAULT_PARALLELISM = 64


def golden_tokens(vocab_size: int, count: int) -> np.ndarray:
    """A deterministic token sequence for the golden run (same on every machine)."""
    return np.random.default_rng(20261125).integers(0, vocab_size, count).astype(np.int64)


def build_fpga(qm: QuantizedModel, output: Path, device_name: str = "zcu102", parallelism: int | None = None,
               csim: bool = True, trace: bool = False, tokens: int = 128) -> dict:
    """Write the HLS project for ``qm`` to ``output``; with ``csim``, only once it is bit-exact."""
    device = get_device(device_name)
    if trace and not csim:
        raise EdgecError("--trace compares C simulation layer by layer: it cannot be used with --no-csim")
    if is_image_model(qm):
        return build_fpga_images(qm, output, device, parallelism, csim, trace, tokens)
    # The generated kernels process one element per cycle outside the matrix-vector engine (lanes = 1);
    # the engine gets the smallest P that already meets the DRAM bound (else DEFAULT_PARALLELISM).
    step = {"graph": qm.graphs["step"], "bits": qm.bits, "lanes": KERNEL_LANES}
    if parallelism is None:
        balanced = estimate(qm.spec, device, None, **step).balanced_parallelism
        parallelism = balanced or DEFAULT_PARALLELISM
    est = estimate(qm.spec, device, parallelism, **step)
    if not est.fits:
        raise EdgecError(f"{device.name}: the model does not fit even with DRAM streaming: {est.reason}")
    if not qm.int_constants:  # a QDIR written before constants were persisted: derive them now
        lower_int_constants(qm, golden_tokens(qm.spec.vocab_size, 4)[None])
    design = emit_design(qm, est.parallelism, est.dram_states)  # state lives where the estimate placed it
    seq = golden_tokens(qm.spec.vocab_size, tokens)
    expected, _ = simulate_steps(qm, seq)
    report: dict = {"format": FORMAT, "device": asdict(device), "estimate": est.as_dict()}
    with atomic_dir(output) as tmp:
        write_project(tmp, qm, design, device, est.parallelism, seq, expected,
                      IntSimulator(qm).logits_scale())
        result: CsimResult | None = None
        if csim:
            result = run_csim(tmp, qm, seq, design.traced, trace=trace, expected=expected, workdir=tmp.parent)
            require_bit_exact(result)
            report["csim"] = asdict(result) | {"bit_exact": result.bit_exact,
                                                "ms_per_token": 1000 * result.run_s / max(result.tokens, 1)}
        (tmp / "report.txt").write_text(format_estimate(est) + "\n")
        (tmp / "report.json").write_text(json.dumps(report, indent=1, sort_keys=True, default=str) + "\n")
        write_manifest(tmp, {"format": FORMAT, "source": qm.source}, UNHASHED)  # deterministic: no timings
    return report


def _image_parallelism(qm: QuantizedModel, device: FpgaDevice) -> int:
    """The widest engine within half the part's DSPs (compute bound: wider is faster), at most the widest
    reduction of the model (P / 2 covers it)."""
    widest = max(int(g.values[n.inputs[0]].shape[-1]) for g in entry_graphs(qm.graphs).values()
                 for n in g.nodes if n.op in (Op.LINEAR, Op.MOE))
    p = MACS_PER_DSP
    while 2 * p <= MACS_PER_DSP * (1 << (widest - 1).bit_length()) and (
            estimate_image(qm, device, 2 * p).dsp <= device.dsp // 2):
        p *= 2
    return p


def build_fpga_images(qm: QuantizedModel, output: Path, device: FpgaDevice, parallelism: int | None, csim: bool,
                      trace: bool, images: int) -> dict:
    """The HLS project of an image model: every golden image under every task, C-simulated bit-exact."""
    p = parallelism or _image_parallelism(qm, device)
    if p < MACS_PER_DSP or p % MACS_PER_DSP:
        raise DataError(f"--parallelism {p}: the engine packs {MACS_PER_DSP} int8 MACs per DSP, so it must be an even "
                        f"number >= {MACS_PER_DSP}")
    est = estimate_image(qm, device, p)
    if not est.fits:
        raise EdgecError(f"{device.name}: the design does not fit: {'; '.join(est.notes) or 'DSP or BRAM'}")
    design = emit_image_design(qm, p)
    keys = list(entry_graphs(qm.graphs))
    shape = tuple(int(d) for d in qm.graphs[keys[0]].values["images"].shape[1:])
    calls, tasks = golden_calls(len(keys), golden_images(shape, images))
    expected, _ = simulate_images(qm, calls, tasks)
    sim = IntSimulator(qm)
    scales = {task_of(k): sim.logits_scale(k) for k in keys}
    others = {name: estimate_image(qm, get_device(name), _image_parallelism(qm, get_device(name))).as_dict()
              for name in ("zcu102", "u250", "kv260")}
    report: dict = {"format": FORMAT, "device": asdict(device), "estimate": est.as_dict(), "devices": others}
    with atomic_dir(output) as tmp:
        write_image_project(tmp, qm, design, device, p, calls, tasks, expected, scales)
        if csim:
            result = run_image_csim(tmp, qm, calls, tasks, design.traced, trace=trace, expected=expected,
                                    workdir=tmp.parent)
            require_bit_exact(result)
            report["csim"] = asdict(result) | {"bit_exact": result.bit_exact,
                                                "ms_per_token": 1000 * result.run_s / max(result.tokens, 1)}
        table = [f"{'device':<8} {'P':>5} {'images/s':>10} {'bound':>8} {'DSP':>6} {'BRAM36':>7}"]
        table += [f"{name:<8} {e['parallelism']:>5} {e['images_per_s']:>10,.1f} {e['bound']:>8} {e['dsp']:>6} "
                  f"{e['bram36']:>7g}" for name, e in others.items()]
        (tmp / "report.txt").write_text(format_image_estimate(est) + "\n\nEvery part at its default engine:\n"
                                        + "\n".join(table) + "\n")
        (tmp / "report.json").write_text(json.dumps(report, indent=1, sort_keys=True, default=str) + "\n")
        write_manifest(tmp, {"format": FORMAT, "kind": "image", "source": qm.source}, UNHASHED)
    return report


def check_options(options: Mapping[str, Any]) -> None:
    """Plug-in entry (targets/registry.py): an unknown device or --trace without C simulation fail now."""
    get_device(options["device"])
    if options["trace"] and not options["csim"]:
        raise DataError("--trace compares C simulation layer by layer: drop --no-csim")


def build_target(qm: QuantizedModel, output: Path, options: Mapping[str, Any], tokenizer: Path | None) -> dict:
    """Plug-in entry: the HLS project (the tokenizer is not part of it: the FPGA takes token ids)."""
    del tokenizer
    return build_fpga(qm, output, options["device"], options["parallelism"], csim=options["csim"],
                      trace=options["trace"], tokens=options["tokens"])


def summarize(report: dict, output: Path) -> str:
    """Plug-in entry: the estimate, the C simulation's agreement and timings, where it was written."""
    lines = [(output / "report.txt").read_text().rstrip()]
    if "csim" in report:
        c = report["csim"]
        unit = "calls (image x task)" if "devices" in report else "tokens"
        lines.append(f"csim: {c['logits_equal']}/{c['logits_total']} logits bit-exact over {c['tokens']} {unit} "
                     f"(compile {c['compile_s']:.1f} s, {c['ms_per_token']:.2f} ms each)")
    return "\n".join([*lines, f"wrote {output}"])


def verify_build(folder: Path, manifest: dict) -> str:
    """Plug-in entry (edgec verify): every hash, then C simulation bit-exact with the golden logits."""
    from edgec.targets.fpga.verify import verify_fpga

    c = verify_fpga(folder, manifest)
    unit = "calls" if manifest.get("kind") == "image" else "tokens"
    return (f"{folder}: C simulation (g++, hls4ml ap_types) is bit-exact with the golden logits: "
            f"{c['logits_equal']}/{c['logits_total']} logits over {c['tokens']} {unit}")
