"""`edgec build --target cpu`: the qdq step graph as ONNX for ONNX Runtime, verified and self-describing.

Output folder: ``step.onnx``; ``prefill.onnx`` (chunks of DEFAULT_CHUNK tokens, state in and out, no
Loop/Scan/CumSum); ``golden.npz`` (token ids and the qdq simulator's logits for each decode
step, from a zero state); ``report.json`` (agreement with the simulator); ``manifest.json`` (format,
model sizes, file hashes); ``tokenizer.json`` when the model has one.
"""

from __future__ import annotations

import json
import shutil
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from edgec.errors import ArtifactError, VerificationError
from edgec.frontends.validate import one_line
from edgec.manifest import check_files, describe, read_manifest, uses, write_manifest
from edgec.numerics.agreement import relative_error
from edgec.outdir import atomic_dir
from edgec.passes.quantize import QuantizedModel
from edgec.targets.fpga.build import golden_tokens
from edgec.targets.onnx.build_images import (
    export_verified_images,
    golden_images,
    is_image_model,
    verify_image_output,
    write_image_folder,
)
from edgec.targets.onnx.export import export_step, export_step_float, first_layers, state_shapes
from edgec.targets.onnx.files import OnnxModel, loadable, save_onnx
from edgec.targets.onnx.polygraphy_json import save_inputs, save_outputs
from edgec.targets.onnx.prefill import DEFAULT_CHUNK, export_prefill, export_prefill_float
from edgec.targets.onnx.verify import (
    FoldedGraph,
    WeightFolds,
    compare_prefill,
    compare_runs,
    compare_with_simulator,
    exact_reference,
    simulate_io,
)

__all__ = ["FORMAT", "build_cpu", "build_target", "check_options", "export_verified", "load_golden",
           "read_onnx_manifest", "summarize", "verify_build", "verify_output", "write_onnx_folder"]

FORMAT = "edgec-onnx/1"
GOLDEN_TOKENS = 32
OPTIMIZED_TOKENS = 8  # ONNX Runtime with optimizations on: reported over the first golden tokens, not checked
POLYGRAPHY_STEPS = 4  # golden iterations for polygraphy (each carries the full state: keep the files small)
LOGITS_RTOL = 1e-4  # ONNX Runtime (optimizations off) against the simulator, relative to max |logit|
#: prefill against stepping (float twins): the same math in another float order (the chunk's batched MatMuls
#: sum in another order than one token's), per layer. Checked on the states of the first CHECKED_LAYERS layers,
#: which every op of a layer feeds (the second layer's state reads the first layer's output), with twins cut to
#: those layers (export.first_layers: their memory does not grow with depth): deeper, the float32 differences are
#: amplified layer after layer in a random-init model (mamba-2.8b widths, end state over 64 tokens: 8.7e-6 at 2
#: layers, 1.5e-4 at 8, 0.15 at 64; mamba-130m 24 layers 6.7e-4), which is no formula error. The int8 graphs'
#: end state and logits over all layers are reported.
PREFILL_RTOL = 1e-4
CHECKED_LAYERS = 2


def export_verified(qm: QuantizedModel, folder: Path, integer_matmul: bool = False, tokens: int = GOLDEN_TOKENS
                    ) -> tuple[OnnxModel, OnnxModel, dict[str, np.ndarray], dict]:
    """Export step.onnx and prefill.onnx and check them with ONNX Runtime (optimizations off). A graph whose float32
    weights are above FOLD_BUDGET is saved into ``folder`` at once (with its data file above protobuf's 2 GB) and
    returned as its path. Also returned: the golden data (token ids and the qdq simulator's logits) and the report.

    The contract: step.onnx against the qdq simulator, each int8 tensor compared from the same int8 inputs,
    within 1 LSB and the logits within LOGITS_RTOL; prefill against stepping, on their float
    twins (the same graphs with the weights dequantized and no Q/DQ on activations, so that no int8 code flipped by
    float order hides a formula error) cut to the first CHECKED_LAYERS layers, their state within PREFILL_RTOL per
    layer. Else VerificationError. Also reported: the free-running comparison (each side on its own state for the
    whole sequence), ONNX Runtime with optimizations on (below FOLD_BUDGET), and the int8 prefill.onnx against
    step.onnx (all layers).
    """
    model, quantized = export_step(qm, integer_matmul)
    model = loadable(model, folder, "step.onnx")
    seq = golden_tokens(qm.spec.vocab_size, tokens)
    folds = WeightFolds()  # the arrays the exact references hand to ONNX Runtime, shared between graphs
    reference = exact_reference(model, folds)
    model = _settled(model, reference, folder, "step.onnx")
    exact = compare_with_simulator(reference, quantized, qm, seq, pin_int8=True)
    if exact.max_lsb > 1 or exact.logits_max_rel > LOGITS_RTOL:
        raise VerificationError(f"ONNX Runtime disagrees with the qdq simulator: {exact.max_lsb} LSB on an "
                                f"int8 tensor, logits off by {exact.logits_max_rel:.2e} of their range")
    # free-running, whose simulator logits are the golden ones; then optimized, over the first tokens (a Q/DQ
    # graph's fusions dequantize every weight on every call: the slowest run, a reported figure, not checked). Not
    # run where the weights' float32 copies are above FOLD_BUDGET: ONNX Runtime's own order for an optimized graph
    # dequantizes them all before their consumers (xLSTM-7B widths: 2.4 GB a block).
    (free,), logits = compare_runs(model, quantized, qm, seq, [(False, False)], reference=reference)
    optimized = None
    if not isinstance(reference, Path) and not _handed_over(reference):
        (optimized,), _ = compare_runs(model, quantized, qm, seq[:OPTIMIZED_TOKENS], [(True, True)])
    prefill = loadable(export_prefill(qm, integer_matmul=integer_matmul)[0], folder, "prefill.onnx")
    prefill_reference = exact_reference(prefill, folds)
    prefill = _settled(prefill, prefill_reference, folder, "prefill.onnx")
    # at least one whole chunk of golden tokens for prefill (the same deterministic sequence, continued)
    whole = golden_tokens(qm.spec.vocab_size, max(tokens, DEFAULT_CHUNK))
    checked = min(CHECKED_LAYERS, qm.spec.num_hidden_layers)
    cut, twin_folds = first_layers(qm, checked), WeightFolds()  # the twins' own arrays: released after their check
    twins = compare_prefill(exact_reference(export_step_float(cut, None), twin_folds),
                            exact_reference(export_prefill_float(cut, None), twin_folds), whole)
    del cut, twin_folds
    chunks = compare_prefill(reference, prefill_reference, whole)
    if twins is not None and twins.state_max_rel > PREFILL_RTOL * checked:
        raise VerificationError(f"prefill.onnx disagrees with step.onnx over {twins.tokens} golden tokens: the "
                                f"state of the first {checked} layers off by {twins.state_max_rel:.2e} of its range")
    report = {"reference": asdict(exact), "free_running": asdict(free), "optimized": optimized and asdict(optimized),
              "prefill": chunks and asdict(chunks), "prefill_float": twins and asdict(twins)}
    return model, prefill, {"tokens": seq, "logits": logits}, report


def _handed_over(reference: OnnxModel | FoldedGraph) -> bool:
    """Whether ``reference`` holds the graph's own int8 weights apart (above FOLD_BUDGET, external_weights)."""
    return isinstance(reference, FoldedGraph) and not reference.folded


def _settled(model: OnnxModel, reference: OnnxModel | FoldedGraph, folder: Path, name: str) -> OnnxModel:
    """``model`` saved as ``folder / name`` (its path returned, the graph dropped from memory) when its reference
    holds the int8 weights apart (above FOLD_BUDGET: the arrays ONNX Runtime reads); else as it is."""
    if isinstance(model, Path) or not _handed_over(reference):
        return model
    save_onnx(model, folder / name)
    return folder / name


def write_onnx_folder(tmp: Path, qm: QuantizedModel, model: OnnxModel, prefill: OnnxModel,
                      golden: dict[str, np.ndarray], report: dict, fmt: str, tokenizer: Path | None = None,
                      unhashed: tuple[str, ...] = ()) -> None:
    """step.onnx, prefill.onnx (each with its data file when above 2 GB), golden.npz, tokenizer.json, report.json
    and a manifest hashing every file in ``tmp`` but report.json and ``unhashed`` (deterministic)."""
    save_onnx(model, tmp / "step.onnx")
    save_onnx(prefill, tmp / "prefill.onnx")
    np.savez(tmp / "golden.npz", tokens=golden["tokens"], logits=golden["logits"])
    _write_polygraphy_golden(tmp, qm, golden["tokens"][:POLYGRAPHY_STEPS])
    if tokenizer is not None:
        shutil.copyfile(tokenizer, tmp / "tokenizer.json")
    (tmp / "report.json").write_text(json.dumps({"format": fmt, **report}, indent=1, sort_keys=True,
                                                default=str) + "\n")
    spec = qm.spec
    state = {name: list(shape) for name, shape in state_shapes(qm.graphs["step"]).items()}
    write_manifest(tmp, {"format": fmt, "source": qm.source, "family": spec.family, "vocab_size": spec.vocab_size,
                         "layers": spec.num_hidden_layers, "state": state}, ("report.json", *unhashed))


def _write_polygraphy_golden(tmp: Path, qm: QuantizedModel, tokens: np.ndarray) -> None:
    """golden_inputs.json / golden_outputs.json in Polygraphy's formats, one iteration per decode step:
    ``polygraphy run step.onnx --onnxrt --load-inputs golden_inputs.json --load-outputs golden_outputs.json``
    (or ``--trt`` on the device). For the Q/DQ graph of an orin build add ``--graph-optimization-level
    ORT_DISABLE_ALL``: ONNX Runtime's QDQ fusion (see verify.ort_session) moves its logits beyond 1e-4."""
    feeds, outputs = simulate_io(qm, tokens)
    save_inputs(feeds, tmp / "golden_inputs.json")
    save_outputs(outputs, tmp / "golden_outputs.json", runner="edgec-qdq-simulator")


def build_cpu(qm: QuantizedModel, output: Path, tokenizer: Path | None = None, tokens: int = GOLDEN_TOKENS) -> dict:
    """Export, check against the qdq simulator, and write the folder; refuse if they disagree."""
    # integer_matmul: MatMulInteger, ONNX Runtime's int8 CPU kernels
    if is_image_model(qm):
        images = golden_images(qm.graphs[next(iter(qm.graphs))].values["images"].shape[1:], tokens)
        exported, report = export_verified_images(qm, True, images)
        with atomic_dir(output) as tmp:
            write_image_folder(tmp, qm, exported, images, report, FORMAT)
        return report
    with atomic_dir(output) as tmp:  # verified inside: a failed check leaves nothing behind
        model, prefill, golden, report = export_verified(qm, tmp, integer_matmul=True, tokens=tokens)
        write_onnx_folder(tmp, qm, model, prefill, golden, report, FORMAT, tokenizer)
    return report


def replay_golden(run, golden, state: dict[str, np.ndarray]) -> float:
    """Decode the golden tokens with ``run(feeds) -> outputs``; the logits' max relative error."""
    worst = 0.0
    for token, want in zip(golden["tokens"], golden["logits"], strict=True):
        out = run({"tokens": np.array([token], np.int64), **state})
        state = {k: np.asarray(out[k + "_out"], np.float32) for k in state}
        worst = max(worst, relative_error(np.asarray(out["logits"], np.float32).reshape(-1), want))
    return worst


def read_onnx_manifest(folder: Path, command: str) -> dict:
    """The manifest of an ONNX build (cpu or orin); any other edgec folder is named with the command that fits."""
    manifest = read_manifest(folder, what="an edgec ONNX build")
    fmt = manifest["format"]
    if not fmt.startswith(("edgec-onnx/", "edgec-orin/")):
        if fmt.startswith("edgec-qdir/"):
            advice = f"build one with edgec build {folder} --target cpu -o OUT, then edgec {command} OUT"
        else:
            advice = uses(fmt, folder)
        raise ArtifactError(f"{folder}: is {describe(fmt)}, not an ONNX build (edgec {command} takes the output "
                            f"of edgec build --target cpu or orin); {advice}")
    return manifest


def load_golden(folder: Path) -> dict[str, np.ndarray]:
    """golden.npz's token ids and logits (checked against the manifest by the caller)."""
    path = folder / "golden.npz"
    try:
        with np.load(path, allow_pickle=False) as npz:
            golden = {"tokens": npz["tokens"], "logits": npz["logits"]}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise ArtifactError(f"{path}: unreadable ({err}); rebuild the folder with edgec build") from None
    tokens, logits = golden["tokens"], golden["logits"]
    if tokens.ndim != 1 or logits.ndim != 2 or len(tokens) != len(logits) or tokens.dtype.kind not in "iu":
        raise ArtifactError(f"{path}: tokens {tokens.shape} and logits {logits.shape} do not match; rebuild the "
                            "folder with edgec build")
    if len(tokens) == 0 or logits.dtype.kind != "f" or not np.isfinite(logits).all():
        raise ArtifactError(f"{path}: holds no golden tokens, or logits that are not finite numbers; rebuild the "
                            "folder with edgec build")
    return golden


def verify_output(folder: Path, manifest: dict | None = None) -> dict:
    """Check every hash, then re-run ``step.onnx`` on the golden tokens with ONNX Runtime (and ``step.engine``
    with TensorRT where both exist); return the logits' max relative errors and the engine's int8 layer count."""
    from edgec.targets.onnx.generate import checked_vocab, open_session

    manifest = manifest if manifest is not None else read_onnx_manifest(folder, "verify")
    needed = ["step.onnx", "golden.npz"]  # named first: a missing entry is reported for these, before any hashing
    check_files(folder, manifest, [*needed, *sorted(set(manifest["files"]) - set(needed))])
    golden = load_golden(folder)
    session = open_session(folder / "step.onnx")
    if checked_vocab(folder, manifest, session) != golden["logits"].shape[1]:
        raise ArtifactError(f"{folder / 'golden.npz'}: its logits are not as wide as step.onnx's; rebuild the folder "
                            "with edgec build")
    state = {i.name: np.zeros([1, *i.shape[1:]], np.float32) for i in session.get_inputs() if i.name != "tokens"}
    names = [o.name for o in session.get_outputs()]
    try:
        worst = replay_golden(lambda feeds: dict(zip(names, session.run(None, feeds), strict=True)), golden, state)
    except Exception as err:  # ONNX Runtime raises its own types: a graph that loads but does not run
        raise ArtifactError(f"{folder / 'step.onnx'}: does not run on the golden tokens of golden.npz "
                            f"({one_line(err)}); "
                            f"rebuild the folder with edgec build") from None
    if worst > LOGITS_RTOL:
        raise VerificationError(f"{folder}: step.onnx logits differ from the golden ones by {worst:.2e} of their range")
    result: dict = {"onnx": worst, "engine": None, "int8_layers": None}
    if manifest["format"].startswith("edgec-orin/") and (folder / "step.engine").is_file():
        from edgec.targets.orin.engine import check_engine

        result |= check_engine(folder, golden, state)
    return result


def check_options(options: Mapping[str, Any]) -> None:
    """Plug-in entry (targets/registry.py): the cpu target has no options of its own."""


def build_target(qm: QuantizedModel, output: Path, options: Mapping[str, Any], tokenizer: Path | None) -> dict:
    """Plug-in entry: the verified int8 ONNX folder for ONNX Runtime."""
    return build_cpu(qm, output, tokenizer, options["tokens"])


def summarize(report: dict, output: Path) -> str:
    """Plug-in entry: how ONNX Runtime agrees with the qdq simulator, and where the folder was written."""
    if "tasks" in report:
        return "\n".join([*image_summary(report), f"wrote {output}"])
    ref, opt, pre = report["reference"], report["optimized"], report.get("prefill")
    lines = [f"step.onnx: ONNX Runtime vs qdq simulator over {ref['tokens']} tokens: int8 tensors within "
             f"{ref['max_lsb']} LSB, logits {ref['logits_max_rel']:.1e} (optimized: "
             f"{'not run above the fold budget' if opt is None else format(opt['logits_max_rel'], '.1e')})"]
    if pre:
        twin = report["prefill_float"]
        lines.append(f"prefill.onnx vs step.onnx over {pre['tokens']} tokens: first layers' state "
                     f"{twin['state_max_rel']:.1e} (float twins); int8 graphs: end state {pre['state_max_rel']:.1e}, "
                     f"logits {pre['logits_max_rel']:.1e}, same next token at {pre['argmax_agreement']:.0%}")
    return "\n".join([*lines, f"wrote {output}"])


def image_summary(report: dict) -> list[str]:
    """One line per task graph: its agreement with the qdq simulator on the golden images."""
    lines = []
    for task, r in report["tasks"].items():
        ref, free = r["reference"], r["free_running"]
        lines.append(f"model_{task}.onnx: ONNX Runtime vs qdq simulator on {ref['images']} golden images: int8 "
                     f"tensors within {ref['max_lsb']} LSB, logits {ref['logits_max_rel']:.1e}, "
                     f"{ref['route_flips']} of {ref['routed_tokens']} routed tokens differ (free-running: "
                     f"{free['route_flips']}, same top-1 {free['top1_agreement']:.0%})")
    return lines


def verify_build(folder: Path, manifest: dict) -> str:
    """Plug-in entry (edgec verify): every hash, then step.onnx (and step.engine where TensorRT runs)."""
    if "tasks" in manifest:
        worst = verify_image_output(folder, manifest)
        return "\n".join(f"{folder}: model_{t}.onnx matches the golden logits (max relative difference {w:.1e})"
                         for t, w in worst.items())
    result = verify_output(folder, manifest)
    lines = [f"{folder}: step.onnx matches the golden logits (max relative difference {result['onnx']:.1e})"]
    if result["engine"] is not None:
        lines.append(f"{folder}: step.engine matches the golden logits (max relative difference "
                     f"{result['engine']:.1e})")
    elif manifest["format"].startswith("edgec-orin/") and (folder / "step.engine").is_file():
        lines.append(f"{folder}: step.engine not run: TensorRT is not available here")
    if result["int8_layers"] is not None:
        lines.append(f"{folder}: {result['int8_layers']} engine layers ran in INT8 (layers.json)")
    return "\n".join(lines)
