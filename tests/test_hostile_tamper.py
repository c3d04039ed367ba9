"""Tamper evidence: every command that reads a QDIR or a build checks the manifest hashes of what it reads.

Each hostile case copies a folder built once per module, alters it, runs the CLI in-process and checks:
exit 2, one ``edgec: error:`` line naming the file, nothing printed on stdout, nothing written or
changed below the test's folder, no staging or scratch folder left behind.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hostile import assert_fails_cleanly, assert_no_leftovers, run_cli, tree

from edgec.manifest import sha256

# --------------------------------------------------------------------------------------------- fixtures


def _byte_tokenizer(path: Path) -> None:
    """A byte-level BPE tokenizer.json whose token id is the byte value (vocab 256, no merges)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = {}, 0
    for b in range(256):  # GPT-2's bytes -> unicode table, which ByteLevel uses
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b], extra = chr(256 + extra), extra + 1
    tok = Tokenizer(models.BPE(vocab={chars[b]: b for b in range(256)}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.save(str(path))


@pytest.fixture(scope="module")
def base(tmp_path_factory, tiny_checkpoint, byte_text) -> dict[str, Path]:
    """A checkpoint with a tokenizer.json, its QDIR, and an FPGA and a CPU build of that QDIR (built once)."""
    root = tmp_path_factory.mktemp("tamper")
    ckpt = root / "ckpt"
    shutil.copytree(tiny_checkpoint, ckpt)
    _byte_tokenizer(ckpt / "tokenizer.json")
    folders = {"ckpt": ckpt, "q": root / "q", "fpga": root / "fpga", "cpu": root / "cpu", "q_noh": root / "q_noh"}
    for args in (("quantize", ckpt, "--calib", byte_text, "--calib-tokens", "1024", "-o", folders["q"]),
                 ("quantize", ckpt, "--calib", byte_text, "--calib-tokens", "1024", "--no-hadamard", "-o",
                  folders["q_noh"]),
                 ("build", folders["q"], "--tokens", "8", "-o", folders["fpga"]),
                 ("build", folders["q"], "--target", "cpu", "-o", folders["cpu"])):
        res = run_cli(*args)
        assert res.code == 0, res.err
    return folders


@pytest.fixture()
def copy(base, tmp_path) -> Callable[[str], Path]:
    """copy("q" | "fpga" | "cpu" | "ckpt") -> a private copy below tmp_path."""
    def make(kind: str) -> Path:
        dst = tmp_path / kind
        shutil.copytree(base[kind], dst, symlinks=True)
        return dst
    return make


# --------------------------------------------------------------------------------------------- helpers


def flip(path: Path, at: float = 0.5) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * at)] ^= 0x01
    path.write_bytes(bytes(data))


def edit_manifest(folder: Path, change: Callable[[dict], object]) -> None:
    """Apply ``change`` to the manifest; a str it returns replaces the text, a list the whole JSON value."""
    manifest = json.loads((folder / "manifest.json").read_text())
    replaced = change(manifest)
    text = replaced if isinstance(replaced, str) else json.dumps(replaced if isinstance(replaced, list) else manifest)
    (folder / "manifest.json").write_text(text)


def rehash(folder: Path, name: str) -> None:
    """Make the manifest agree with an altered file (a consistent forgery: only the contents can tell)."""
    edit_manifest(folder, lambda m: m["files"].__setitem__(name, sha256(folder / name)))


def fails(tmp_path: Path, args: tuple, *fragments: str) -> str:
    """Run ``edgec ARGS``: one error line with every fragment, no stdout, nothing changed below tmp_path."""
    before = tree(tmp_path)
    res = run_cli(*args)
    line = assert_fails_cleanly(res, *fragments)
    assert res.out == "", res.out
    assert tree(tmp_path) == before
    assert_no_leftovers(tmp_path)
    return line


def eval_args(q: Path, byte_text: Path) -> tuple:
    return ("eval", q, "--data", byte_text, "--seq-len", "64", "--max-tokens", "256")


def build_args(q: Path, tmp_path: Path, target: str = "fpga") -> tuple:
    extra = ("--no-csim", "--tokens", "4") if target == "fpga" else ()
    return ("build", q, "--target", target, *extra, "-o", tmp_path / "out")


# --------------------------------------------------------------------------------------------- QDIR: files


@pytest.mark.parametrize("name,command", [
    ("weights.safetensors", "build"), ("graphs.json", "eval"), ("scales.json", "build"),
    ("weights.safetensors", "eval"), ("tokenizer.json", "build-cpu")])
def test_qdir_flipped_byte(copy, tmp_path, byte_text, name, command):
    q = copy("q")
    flip(q / name)
    args = {"build": build_args(q, tmp_path), "eval": eval_args(q, byte_text),
            "build-cpu": build_args(q, tmp_path, "cpu")}[command]
    fails(tmp_path, args, f"{q / name}", "does not match its hash")


def test_qdir_deleted_file(copy, tmp_path):
    q = copy("q")
    (q / "graphs.json").unlink()
    fails(tmp_path, build_args(q, tmp_path), "graphs.json", "missing")


def test_qdir_entry_removed_then_file_altered(copy, tmp_path):
    q = copy("q")
    edit_manifest(q, lambda m: m["files"].__delitem__("scales.json"))
    (q / "scales.json").write_text('{"activations": {}, "state": {}, "bits": {}}\n')
    fails(tmp_path, build_args(q, tmp_path), "no hash for scales.json")


def test_qdir_tokenizer_entry_removed(copy, tmp_path):
    q = copy("q")
    edit_manifest(q, lambda m: m["files"].__delitem__("tokenizer.json"))
    flip(q / "tokenizer.json")
    fails(tmp_path, build_args(q, tmp_path, "cpu"), "no hash for tokenizer.json")


def test_qdir_tokenizer_and_entry_removed(copy, tmp_path):
    q = copy("q")  # the source record still says the model has a tokenizer: a build would silently lack it
    edit_manifest(q, lambda m: m["files"].__delitem__("tokenizer.json"))
    (q / "tokenizer.json").unlink()
    fails(tmp_path, build_args(q, tmp_path, "cpu"), "no hash for tokenizer.json")


def test_qdir_scales_wrong_type_with_matching_hash(copy, tmp_path):
    q = copy("q")
    scales = json.loads((q / "scales.json").read_text())
    key = sorted(scales["activations"])[0]
    scales["activations"][key] = "big"
    (q / "scales.json").write_text(json.dumps(scales))
    rehash(q, "scales.json")
    fails(tmp_path, build_args(q, tmp_path), "do not belong together")


@pytest.mark.parametrize("name", ["weights.safetensors", "graphs.json", "scales.json"])
@pytest.mark.parametrize("command", ["build-fpga", "build-cpu", "eval"])
def test_qdir_file_swapped_in_from_another_qdir(copy, tmp_path, base, name, command):
    q = copy("q")
    shutil.copyfile(base["q_noh"] / name, q / name)  # another QDIR of the same model: valid, but not this one's
    rehash(q, name)
    args = ("eval", q, "--max-tokens", "64") if command == "eval" else build_args(q, tmp_path, command[6:])
    fails(tmp_path, args, str(q), "do not belong together")


def test_qdir_config_swapped_in_from_another_model(copy, tmp_path):
    q = copy("q")
    edit_manifest(q, lambda m: m["config"].__setitem__("num_hidden_layers", 3))
    fails(tmp_path, build_args(q, tmp_path, "cpu"), "do not belong together")


def test_qdir_graphs_garbled_with_matching_hash(copy, tmp_path):
    q = copy("q")
    (q / "graphs.json").write_text('{"step": {"nodes": 3}}')
    rehash(q, "graphs.json")
    fails(tmp_path, build_args(q, tmp_path), "graphs.json", "garbled")


# --------------------------------------------------------------------------------------------- QDIR: manifest


@pytest.mark.parametrize("garble,fragments", [
    (lambda m: "{not json", ("manifest.json", "garbled")),
    (lambda m: [m], ("manifest.json", "not a JSON object")),
    (lambda m: m.__setitem__("format", "edgec-qdir/9"), ("'edgec-qdir/9'", "re-run edgec quantize")),
    (lambda m: m.__setitem__("format", "something-else/1"), ("manifest.json", "not an edgec format")),
    (lambda m: m.__setitem__("files", ["weights.safetensors"]), ("manifest.json", "'files' table")),
    (lambda m: m["files"].__setitem__("../escape", "0" * 64), ("manifest.json", "'files' table")),
    (lambda m: m.__delitem__("config"), ("manifest.json", "'config' entry is missing")),
    (lambda m: m.__delitem__("options"), ("manifest.json", "'options' entry is missing")),
    (lambda m: m["options"].__setitem__("hadamard", "yes"), ("manifest.json", "options['hadamard']")),
    (lambda m: m["config"].__setitem__("hidden_size", "big"), ("manifest.json", "hidden_size must be a JSON integer")),
    (lambda m: m["source"].__delitem__("path"), ("manifest.json", "'source'")),
], ids=["not-json", "array", "newer-format", "foreign-format", "files-list", "files-escape", "no-config",
        "no-options", "option-type", "config-type", "source-garbled"])
def test_qdir_garbled_manifest(copy, tmp_path, byte_text, garble, fragments):
    q = copy("q")
    edit_manifest(q, garble)
    line = fails(tmp_path, build_args(q, tmp_path), *fragments)
    assert "no config.json" not in line  # reported as an altered QDIR, not as a broken checkpoint
    fails(tmp_path, eval_args(q, byte_text), *fragments)


def test_qdir_extra_file_is_ignored(copy, tmp_path, byte_text):
    q = copy("q")
    (q / "notes.txt").write_text("added by hand\n")
    res = run_cli(*eval_args(q, byte_text), "--json")
    assert res.code == 0, res.err
    assert json.loads(res.out)["metric"] == "perplexity"


# --------------------------------------------------------------------------------------------- QDIR: its source


@pytest.fixture()
def q_own_source(copy) -> tuple[Path, Path]:
    """A QDIR copy whose recorded source is a private copy of the checkpoint."""
    q, ckpt = copy("q"), copy("ckpt")
    edit_manifest(q, lambda m: m["source"].__setitem__("path", str(ckpt.resolve())))
    return q, ckpt


def test_eval_source_moved(q_own_source, tmp_path, byte_text):
    q, ckpt = q_own_source
    ckpt.rename(tmp_path / "elsewhere")
    fails(tmp_path, eval_args(q, byte_text), "needs its source checkpoint", str(ckpt.resolve()), "it is missing",
          "re-run edgec quantize")


@pytest.mark.parametrize("name", ["config.json", "model.safetensors", "tokenizer.json"])
def test_eval_source_altered(q_own_source, tmp_path, byte_text, name):
    q, ckpt = q_own_source
    flip(ckpt / name)
    fails(tmp_path, eval_args(q, byte_text), "needs its source checkpoint", f"{name} has changed")


def test_eval_source_file_deleted_or_added(q_own_source, tmp_path, byte_text):
    q, ckpt = q_own_source
    shutil.copyfile(ckpt / "model.safetensors", ckpt / "extra.safetensors")
    fails(tmp_path, eval_args(q, byte_text), "extra.safetensors was added")
    (ckpt / "extra.safetensors").unlink()
    (ckpt / "tokenizer.json").unlink()
    fails(tmp_path, eval_args(q, byte_text), "tokenizer.json is missing")


def test_eval_with_intact_source(q_own_source, byte_text):
    q, _ = q_own_source
    res = run_cli(*eval_args(q, byte_text), "--json")
    assert res.code == 0, res.err
    out = json.loads(res.out)
    assert abs(out["int"] / out["float"] - 1) < 0.05


def test_build_needs_only_the_qdir(q_own_source, tmp_path):
    from edgec.resolve import quantized_model
    from edgec.targets.fpga.build import build_fpga

    q, ckpt = q_own_source
    shutil.rmtree(ckpt)
    qm, tokenizer = quantized_model(str(q), None)
    assert tokenizer == q / "tokenizer.json"
    build_fpga(qm, tmp_path / "prj", csim=False, tokens=4)
    assert (tmp_path / "prj" / "manifest.json").is_file()


def test_cli_build_needs_only_the_qdir(q_own_source, tmp_path):
    q, ckpt = q_own_source
    shutil.rmtree(ckpt)
    res = run_cli("build", q, "--target", "cpu", "-o", tmp_path / "out")
    assert res.code == 0, res.err
    assert (tmp_path / "out" / "tokenizer.json").read_bytes() == (q / "tokenizer.json").read_bytes()


# --------------------------------------------------------------------------------------------- wrong kind of folder


@pytest.mark.parametrize("kind,command,fragments", [
    ("q", "run", ("is a QDIR", "edgec build", "--target cpu")),
    ("q", "verify", ("is a QDIR", "not a build", "edgec eval")),
    ("fpga", "run", ("is an FPGA build", "edgec verify")),
    ("fpga", "eval", ("is an FPGA build", "not a model", "edgec verify")),
    ("cpu", "build", ("is a CPU build", "not a model", "edgec run")),
    ("q", "quantize", ("is a QDIR", "not a checkpoint folder", "edgec eval")),
])
def test_wrong_kind_of_folder(copy, tmp_path, byte_text, kind, command, fragments):
    folder = copy(kind)
    args = {"run": ("run", folder, "--max-new-tokens", "2"), "verify": ("verify", folder),
            "eval": eval_args(folder, byte_text), "build": build_args(folder, tmp_path),
            "quantize": ("quantize", folder, "--calib", byte_text, "-o", tmp_path / "out")}[command]
    fails(tmp_path, args, str(folder), *fragments)


# --------------------------------------------------------------------------------------------- ONNX builds


@pytest.mark.parametrize("name,command", [
    ("step.onnx", "verify"), ("step.onnx", "run"), ("prefill.onnx", "verify"), ("golden.npz", "verify"),
    ("tokenizer.json", "run"), ("golden_outputs.json", "verify")])
def test_onnx_flipped_byte(copy, tmp_path, name, command):
    cpu = copy("cpu")
    flip(cpu / name)
    args = ("run", cpu, "--max-new-tokens", "2") if command == "run" else ("verify", cpu)
    fails(tmp_path, args, str(cpu / name), "does not match its hash")


def test_onnx_deleted_file(copy, tmp_path):
    cpu = copy("cpu")
    (cpu / "golden.npz").unlink()
    fails(tmp_path, ("verify", cpu), "golden.npz", "missing")


def test_onnx_entry_removed_then_file_altered(copy, tmp_path):
    cpu = copy("cpu")
    edit_manifest(cpu, lambda m: m["files"].__delitem__("step.onnx"))
    flip(cpu / "step.onnx")
    fails(tmp_path, ("run", cpu, "--max-new-tokens", "2"), "no hash for step.onnx")
    fails(tmp_path, ("verify", cpu), "no hash for step.onnx")


@pytest.mark.parametrize("rehashed", [False, True])
def test_truncated_step_onnx(copy, tmp_path, rehashed):
    cpu = copy("cpu")
    data = (cpu / "step.onnx").read_bytes()
    (cpu / "step.onnx").write_bytes(data[: len(data) // 3])
    if rehashed:  # a consistent forgery: the parse error itself must be one line
        rehash(cpu, "step.onnx")
        fails(tmp_path, ("run", cpu, "--max-new-tokens", "2"), "step.onnx", "not a readable ONNX model")
        fails(tmp_path, ("verify", cpu), "step.onnx", "not a readable ONNX model")
    else:
        fails(tmp_path, ("run", cpu, "--max-new-tokens", "2"), "step.onnx", "does not match its hash")


def test_onnx_runtime_refuses_the_graph(copy, tmp_path):
    import onnx

    cpu = copy("cpu")
    model = onnx.load(cpu / "step.onnx")
    model.graph.node[0].op_type = "NoSuchOp"
    onnx.save(model, cpu / "step.onnx")
    rehash(cpu, "step.onnx")
    fails(tmp_path, ("run", cpu, "--max-new-tokens", "2"), "step.onnx", "ONNX Runtime cannot load it")


def test_golden_npz_garbled_with_matching_hash(copy, tmp_path):
    cpu = copy("cpu")
    (cpu / "golden.npz").write_bytes(b"PK\x03\x04 not really a zip")
    rehash(cpu, "golden.npz")
    fails(tmp_path, ("verify", cpu), "golden.npz", "unreadable")


@pytest.mark.parametrize("garble,fragments", [
    (lambda m: "[1, 2", ("manifest.json", "garbled")),
    (lambda m: m.__setitem__("vocab_size", "256"), ("manifest.json", "'vocab_size'")),
    (lambda m: m.__setitem__("unhashed", "report.json"), ("manifest.json", "'unhashed'")),
    (lambda m: m.__delitem__("files"), ("manifest.json", "'files' table")),
], ids=["not-json", "vocab-type", "unhashed-type", "no-files"])
def test_onnx_garbled_manifest(copy, tmp_path, garble, fragments):
    cpu = copy("cpu")
    edit_manifest(cpu, garble)
    fails(tmp_path, ("run", cpu, "--max-new-tokens", "2"), *fragments)


def test_onnx_extra_file_is_ignored_and_intact_build_runs(copy, tmp_path):
    cpu = copy("cpu")
    (cpu / "my_notes.txt").write_text("added by hand\n")
    res = run_cli("run", cpu, "--prompt", "the ", "--max-new-tokens", "8")
    assert res.code == 0, res.err
    assert res.out.startswith("the ") and res.err == ""
    res = run_cli("verify", cpu)
    assert res.code == 0, res.err
    assert "step.onnx matches the golden logits" in res.out


# --------------------------------------------------------------------------------------------- FPGA builds


@pytest.mark.parametrize("name", [
    "firmware/edgec_top.cpp", "firmware/edgec_numerics.h", "firmware/edgec_kernels.h", "tb/tb_edgec.cpp",
    "data/weights.bin", "data/golden_logits.bin", "data/golden_tokens.bin", "build_prj.tcl"])
def test_fpga_flipped_byte(copy, tmp_path, name):
    fpga = copy("fpga")
    flip(fpga / name)
    fails(tmp_path, ("verify", fpga), str(fpga / name), "does not match its hash")


def test_fpga_deleted_file(copy, tmp_path):
    fpga = copy("fpga")
    (fpga / "data" / "golden_tokens.bin").unlink()
    fails(tmp_path, ("verify", fpga), "data/golden_tokens.bin", "missing")


def test_fpga_entry_removed_then_file_altered(copy, tmp_path):
    fpga = copy("fpga")
    edit_manifest(fpga, lambda m: m["files"].__delitem__("tb/tb_edgec.cpp"))
    (fpga / "tb" / "tb_edgec.cpp").write_text("int main() { return 0; }\n")  # a testbench that always passes
    fails(tmp_path, ("verify", fpga), "no hash for tb/tb_edgec.cpp")


def test_fpga_golden_logits_forged_consistently(copy, tmp_path):
    fpga = copy("fpga")
    golden = np.fromfile(fpga / "data" / "golden_logits.bin", "<i8")
    golden[5] += 1
    golden.tofile(fpga / "data" / "golden_logits.bin")
    rehash(fpga, "data/golden_logits.bin")
    fails(tmp_path, ("verify", fpga), str(fpga), "1 of 2048 logits")


def test_fpga_garbled_manifest(copy, tmp_path):
    fpga = copy("fpga")
    (fpga / "manifest.json").write_text('{"format": "edgec-fpga/1", "files": {"README.md": 7}}')
    fails(tmp_path, ("verify", fpga), "manifest.json", "'files' table")


def test_fpga_verify_is_bit_exact_and_ignores_extra_files(copy, tmp_path):
    fpga = copy("fpga")
    # A header added beside the firmware must not be compiled in (it would shadow ap_types' ap_int.h).
    (fpga / "firmware" / "ap_int.h").write_text('#error "a stray header was compiled"\n')
    before = tree(tmp_path)
    res = run_cli("verify", fpga)
    assert res.code == 0, res.err
    assert res.out.strip() == (f"{fpga}: C simulation (g++, hls4ml ap_types) is bit-exact with the golden logits: "
                               "2048/2048 logits over 8 tokens")
    assert tree(tmp_path) == before
    assert_no_leftovers(tmp_path)


def test_builds_list_every_file_they_write(base):
    from edgec.manifest import owned_files

    for kind in ("q", "fpga", "cpu"):
        manifest = json.loads((base[kind] / "manifest.json").read_text())
        written = {str(p.relative_to(base[kind])) for p in base[kind].rglob("*") if p.is_file()}
        assert written <= owned_files(manifest), kind
        assert set(manifest["files"]) == written - {"manifest.json", *manifest["unhashed"]}, kind
    q = json.loads((base["q"] / "manifest.json").read_text())
    assert q["source"]["kind"] == "checkpoint"
    assert set(q["source"]["files"]) == {"config.json", "model.safetensors", "tokenizer.json"}
    assert q["files"]["tokenizer.json"] == q["source"]["files"]["tokenizer.json"]  # the QDIR carries its own copy
