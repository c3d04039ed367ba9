"""The edgec command line: models, quantize, eval."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from edgec import exits
from edgec.data import CALIB_SEQ_LEN, CALIB_TOKENS
from edgec.errors import DataError, EdgecError
from edgec.limits import (
    MAX_CALIB_TOKENS,
    MAX_EVAL_TOKENS,
    MAX_GOLDEN_TOKENS,
    MAX_NEW_TOKENS,
    MAX_PARALLELISM,
    MAX_PROMPT_BYTES,
    MAX_SEQ_LEN,
    MAX_TEMPERATURE,
    check_range,
)
from edgec.outdir import check_output
from edgec.resolve import float_and_quantized, input_family, load_float, model_name, quantized_model, source_name
from edgec.targets.registry import TARGETS
from edgec.zoo import BUNDLED

__all__ = ["app", "run_cli"]

# Typer raises click's ClickException, from click or from its vendored copy depending on its version.
_USAGE_ERROR = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="edgec: compile state-space models to int8 edge artifacts, checked by a bit-accurate simulator.")


def _model_paths(model: str | None, *files: Path | None) -> list[Path]:
    """The input paths of a command: the model folder (bundled or given) and the data files."""
    name = model_name(model)
    paths = [BUNDLED[name].folder if name in BUNDLED else Path(name)]
    return paths + [f for f in files if f is not None]


@app.command()
def models() -> None:
    """List the bundled models."""
    for entry in BUNDLED.values():
        print(f"{entry.name:12s} {entry.description}  ({entry.folder})")


@app.command()
def quantize(
    model: Annotated[str | None, typer.Argument(help="Mamba, xLSTM or ViT-MoE checkpoint, or bundled name")] = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="QDIR to write")] = Path("out/qdir"),
    calib: Annotated[Path | None, typer.Option(help="calibration data: text or .npy token ids; .npz images")] = None,
    calib_tokens: Annotated[int | None, typer.Option(help=f"language models: calibration tokens [default: "
                                                          f"{CALIB_TOKENS}]")] = None,
    seq_len: Annotated[int | None, typer.Option(help=f"language models: calibration window [default: "
                                                     f"{CALIB_SEQ_LEN}]")] = None,
    hadamard: Annotated[bool, typer.Option(help="online Hadamard before out_proj")] = True,
    percentile: Annotated[bool, typer.Option(help="percentile clipping of the SSM input")] = True,
    per_channel: Annotated[bool, typer.Option(help="per-output-channel weight scales")] = True,
    alpha: Annotated[float, typer.Option(help="percentile of |u| kept by clipping")] = 0.99999,
    softmax: Annotated[str, typer.Option(help="vision: attention softmax (lut, exp2, ibert, shiftmax)")] = "lut",
    gelu: Annotated[str, typer.Option(help="vision: integer GELU (lut, ibert, shiftgelu, edgemoe)")] = "lut",
    probs_bits: Annotated[int, typer.Option(help="vision: bits of the attention probabilities (int profile)")] = 16,
    qdq_pv: Annotated[bool, typer.Option(help="vision: int8 P.V in the qdq profile (TensorRT)")] = False,
) -> None:
    """Calibrate and quantize a model; write a QDIR that later builds reuse."""
    from edgec.passes.pipeline import quantize as run_pipeline
    from edgec.passes.quantize import QuantOptions
    from edgec.qdir import save_qdir
    from edgec.workloads import CalibOptions, workload_of

    check_range("--calib-tokens", calib_tokens, 2, MAX_CALIB_TOKENS)
    check_range("--seq-len", seq_len, 2, MAX_SEQ_LEN)
    if not 0.5 < alpha <= 1.0:
        raise DataError(f"--alpha {alpha} is outside (0.5, 1]; use e.g. 0.99999")
    options = QuantOptions(hadamard=hadamard, percentile=percentile, per_channel=per_channel, alpha=alpha,
                           softmax=softmax, gelu=gelu, probs_bits=probs_bits, qdq_pv=qdq_pv)
    check_output(output, _model_paths(model, calib))
    fm, entry = load_float(model)
    workload = workload_of(fm)
    calib_path = calib or (entry.calib if entry else None)
    if calib_path is None:
        raise DataError(f"no calibration data: pass --calib FILE ({workload.data_help})")
    batches = workload.calibration(fm, calib_path, CalibOptions(seq_len, calib_tokens))
    qm = run_pipeline(fm, batches, options)
    qm.source = source_name(model)
    save_qdir(qm, output)
    for note in qm.notes:
        print(f"note: {note}")
    print(f"wrote {output} ({len(qm.qweights)} int8 weights, calibrated on {qm.calibration['tokens']} {workload.unit})")


@app.command("eval")
def evaluate(
    model: Annotated[str | None, typer.Argument(help="QDIR, HF checkpoint folder or bundled name")] = None,
    data: Annotated[Path | None, typer.Option(help="text, .npy token ids or .npz images (default: bundled)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    layers: Annotated[bool, typer.Option("--layers", help="also print per-layer SQNR of both simulators")] = False,
    calib: Annotated[Path | None, typer.Option(help="calibration data, when MODEL is a checkpoint, not a QDIR")] = None,
    seq_len: Annotated[int | None, typer.Option(help="language models: evaluation window [default: 512]")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="language models: use at most this many tokens")] = None,
) -> None:
    """Accuracy of the float model and of the int and qdq simulators on the same data (perplexity, or top-1 per
    task and routing agreement)."""
    check_range("--seq-len", seq_len, 2, MAX_SEQ_LEN)
    check_range("--max-tokens", max_tokens, 2, MAX_EVAL_TOKENS)
    from edgec.data import check_data_file
    from edgec.workloads import EvalOptions, workload_of

    for path in (data, calib):  # bad data files and options fail before any quantization work
        if path is not None:
            check_data_file(path)
    options = EvalOptions(seq_len, max_tokens, layers and not as_json)
    workload_of(input_family(model)).check(options)
    fm, entry, qm = float_and_quantized(model, calib)
    workload = workload_of(fm)
    data_path = data or (entry.eval if entry else None)
    if data_path is None:
        raise DataError(f"no evaluation data: pass --data FILE ({workload.data_help})")
    result = workload.evaluate(fm, qm, data_path, options)
    print(json.dumps(result) if as_json else workload.report(result, data_path))


@app.command()
def build(
    model: Annotated[str | None, typer.Argument(help="QDIR, HF checkpoint folder or bundled name")] = None,
    target: Annotated[str, typer.Option(help="; ".join(f"{k}: {t.description}" for k, t in TARGETS.items()))] = "fpga",
    output: Annotated[Path, typer.Option("-o", "--output", help="output folder")] = Path("out/build"),
    calib: Annotated[Path | None, typer.Option(help="calibration data, when MODEL is a checkpoint")] = None,
    tokens: Annotated[int | None, typer.Option(help="golden sequence length (fpga 128, cpu/orin 32)")] = None,
    jetpack: Annotated[str | None, typer.Option(help="orin: JetPack version 5, 6.0, 6.1 or 6.2")] = None,
    engine: Annotated[str | None, typer.Option(help="orin: build the TensorRT engine: auto, always, never")] = None,
    device: Annotated[str | None, typer.Option(help="fpga: device profile (zcu102, u250, kv260)")] = None,
    parallelism: Annotated[int | None, typer.Option(help="fpga: int8 MACs per cycle (default: the device's)")] = None,
    csim: Annotated[bool | None, typer.Option(help="fpga: C-simulate with g++ against the simulator")] = None,
    trace: Annotated[bool | None, typer.Option(help="fpga: compare every layer, name the first that differs")] = None,
) -> None:
    """Build a deployable artifact: a Vitis HLS project (fpga), int8 ONNX for TensorRT (orin) or ONNX Runtime (cpu)."""
    from edgec.targets.registry import check_compiles, load_target, target_options

    given = {"tokens": tokens, "jetpack": jetpack, "engine": engine, "device": device, "parallelism": parallelism,
             "csim": csim, "trace": trace}
    options = target_options(target, {k: v for k, v in given.items() if v is not None})
    check_range("--tokens", options["tokens"], 1, MAX_GOLDEN_TOKENS)
    check_range("--parallelism", options.get("parallelism"), 1, MAX_PARALLELISM)
    plugin = load_target(target)
    plugin.check_options(options)  # bad options and models no target compiles fail before any quantization work
    check_compiles(target, input_family(model))
    check_output(output, _model_paths(model, calib))
    qm, tokenizer = quantized_model(model, calib)
    report = plugin.build_target(qm, output, options, tokenizer)
    print(plugin.summarize(report, output))


@app.command()
def run(
    folder: Annotated[Path, typer.Argument(help="an edgec build --target cpu or orin output folder")],
    prompt: Annotated[str, typer.Option(help="text to continue")] = "The ",
    max_new_tokens: Annotated[int, typer.Option(help="tokens to generate")] = 64,
    temperature: Annotated[float, typer.Option(help="0 for greedy decoding")] = 0.0,
    seed: Annotated[int, typer.Option(help="sampling seed")] = 0,
    image: Annotated[Path | None, typer.Option(help="image models: a PNG, JPEG or .npy image to classify")] = None,
    task: Annotated[str | None, typer.Option(help="image models: only this task (default: every task)")] = None,
) -> None:
    """Stream generated text from the step graph, or classify an image (--image), with ONNX Runtime."""
    from edgec.targets.onnx.build import read_onnx_manifest
    from edgec.targets.onnx.generate import generate

    check_range("--max-new-tokens", max_new_tokens, 1, MAX_NEW_TOKENS)
    check_range("--temperature", temperature, 0.0, MAX_TEMPERATURE)
    check_range("--seed", seed, 0, 2**32 - 1)
    try:
        size = len(prompt.encode("utf-8"))
    except UnicodeEncodeError:  # bytes the terminal's encoding could not decode reach Python as surrogates
        raise DataError("--prompt is not valid UTF-8 text; pass UTF-8 (check the terminal's encoding)") from None
    if size > MAX_PROMPT_BYTES:
        raise DataError(f"--prompt is longer than {MAX_PROMPT_BYTES} bytes; pass a shorter prompt")
    if image is not None or (folder / "manifest.json").is_file():  # else generate names what is missing
        manifest = read_onnx_manifest(folder, "run")
        if image is not None or "tasks" in manifest:
            _classify(folder, manifest, image, task)
            return
    if task is not None:
        raise DataError(f"--task applies to image models; {folder} is a language model build")
    pieces = generate(folder, prompt, max_new_tokens, temperature, seed)  # checks the folder before any output
    sys.stdout.write(prompt)
    for piece in pieces:
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")


def _classify(folder: Path, manifest: dict, image: Path | None, task: str | None) -> None:
    from edgec.targets.onnx.classify import classify

    if image is None:
        raise DataError(f"{folder} is an image model build: pass --image FILE (PNG, JPEG or .npy)")
    for name, top in classify(folder, manifest, image, task).items():
        print(f"{name}: " + "  ".join(f"class {c} {100 * p:5.1f}%" for c, p in top))


@app.command()
def verify(folder: Annotated[Path, typer.Argument(help="an edgec build output folder (fpga, cpu or orin)")]) -> None:
    """Check a build: every file against its hash, then FPGA C simulation (g++) or ONNX Runtime on the golden data."""
    from edgec.errors import ArtifactError
    from edgec.manifest import describe, read_manifest, uses
    from edgec.targets.registry import load_target, target_of_format

    manifest = read_manifest(folder, what="an edgec build")
    target = target_of_format(manifest["format"])
    if target is None:
        raise ArtifactError(f"{folder}: is {describe(manifest['format'])}, not a build (edgec verify checks the "
                            f"output of edgec build); {uses(manifest['format'], folder)}")
    print(load_target(target).verify_build(folder, manifest))


@app.command()
def report(
    model: Annotated[str, typer.Argument(help="QDIR, HF checkpoint folder or bundled name")],
    builds: Annotated[list[Path] | None, typer.Argument(help="edgec build output folders (fpga, cpu, orin)")] = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="HTML file to write")] = Path("report.html"),
    data: Annotated[Path | None, typer.Option(help="text, .npy token ids or .npz images (default: bundled)")] = None,
    ablate: Annotated[bool, typer.Option("--ablate", help="also re-run the recipe with each pass or variant "
                                                          "changed (few tokens / images)")] = False,
    calib: Annotated[Path | None, typer.Option(help="calibration data, when MODEL is a checkpoint, not a QDIR")] = None,
    seq_len: Annotated[int | None, typer.Option(help="language models: evaluation window [default: 512]")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="language models: use at most this many tokens")] = None,
) -> None:
    """One self-contained HTML page: model card, accuracy, per-layer SQNR, outliers, MoE routing, and each build's
    FPGA estimate, Orin roofline, lint and verification."""
    from edgec.report import write_report

    check_range("--seq-len", seq_len, 2, MAX_SEQ_LEN)
    check_range("--max-tokens", max_tokens, 2, MAX_EVAL_TOKENS)
    written = write_report(model, output, builds or [], data=data, calib=calib, ablate=ablate, seq_len=seq_len,
                           max_tokens=max_tokens)
    print(f"wrote {written.path} ({written.size / 1e6:.1f} MB, {len(written.plots)} plots)")


def run_cli(args: list[str]) -> int:
    """Run the CLI on ``args`` and return its exit code; every failure becomes one line on stderr."""
    try:
        code = app(args=args, prog_name="edgec", standalone_mode=False)
    except BaseException as err:
        return _failure(err)
    if exits.pending_exit_code() is not None:  # a signal Python swallowed (raised inside a callback)
        return exits.fail("edgec: interrupted", exits.pending_exit_code())
    if code == exits.SIGINT_EXIT:  # a KeyboardInterrupt that typer turned into Exit(130) (not the main thread)
        return exits.fail("edgec: interrupted", code)
    return code if isinstance(code, int) else exits.OK


def _failure(err: BaseException) -> int:
    """The exit code of a run that raised ``err``, after printing its one line."""
    interrupted = exits.pending_exit_code()
    if interrupted is not None:  # whatever the clean-up on the way out raised, the run was interrupted
        return exits.fail("edgec: interrupted", interrupted)
    if isinstance(err, exits.Interrupted):
        return exits.fail("edgec: interrupted", err.exit_code)
    if isinstance(err, KeyboardInterrupt | typer.Abort):
        return exits.fail("edgec: interrupted", exits.SIGINT_EXIT)
    if isinstance(err, EdgecError):
        return exits.fail(f"edgec: error: {err}", exits.BAD_INPUT)
    if isinstance(err, _USAGE_ERROR):  # bad options or arguments: one line too
        message = err.format_message()  # empty when the help was shown for a bare `edgec`
        return exits.fail(f"edgec: error: {message} (see edgec --help)" if message else "", exits.BAD_INPUT)
    if isinstance(err, BrokenPipeError):
        return exits.broken_pipe()
    if isinstance(err, SystemExit):
        if isinstance(err.__context__, BrokenPipeError):  # typer turns a closed stdout into exit 1
            return exits.broken_pipe()
        raise err
    return exits.fail(exits.describe_unexpected(err), exits.exit_code_of(err), traceback_too=True)
