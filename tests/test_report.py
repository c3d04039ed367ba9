"""edgec report: one self-contained HTML page per model (mamba, xLSTM, ViT-MoE), its numbers equal to edgec eval's,
every plot a real non-blank PNG of its declared size, rendered by a headless Chromium when one is installed;
bad inputs fail in one line with nothing written."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hostile import assert_fails_cleanly, run_cli
from PIL import Image

from edgec.zoo import BUNDLED

LM_EVAL = ("--max-tokens", "512", "--seq-len", "128")
LM_PLOTS = ["sqnr", "outliers", "outlier_histograms"]
VIT_PLOTS = [*LM_PLOTS, "expert_load", "routing_agreement"]
BUILD_PLOTS = {"fpga": ["fpga_stages", "fpga_resources"], "orin": ["orin_roofline"], "cpu": []}


def _ok(*args: str | Path) -> str:
    res = run_cli(*args)
    assert res.code == 0, res.err
    return res.out


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("report")


@pytest.fixture(scope="module")
def mamba(work) -> dict[str, Path]:
    """A mamba-tiny QDIR and its fpga, orin and cpu builds (short golden runs)."""
    paths = {"qdir": work / "mq", "fpga": work / "mf", "orin": work / "mo", "cpu": work / "mc"}
    _ok("quantize", "mamba-tiny", "-o", paths["qdir"], "--calib-tokens", "512")
    for target in ("fpga", "orin", "cpu"):
        _ok("build", paths["qdir"], "--target", target, "--tokens", "2", "-o", paths[target])
    return paths


@pytest.fixture(scope="module")
def vit(work) -> dict[str, Path]:
    """A vitmoe-tiny QDIR, its orin build, and 32 labelled evaluation images."""
    paths = {"qdir": work / "vq", "orin": work / "vo", "data": work / "v32.npz"}
    with np.load(BUNDLED["vitmoe-tiny"].eval) as d:
        np.savez(paths["data"], **{k: v[:32] for k, v in d.items()})
    _ok("quantize", "vitmoe-tiny", "-o", paths["qdir"])
    _ok("build", paths["qdir"], "--target", "orin", "--tokens", "2", "-o", paths["orin"])
    return paths


@pytest.fixture(scope="module")
def pages(work, mamba, vit) -> dict[str, Path]:
    """The pages the browser test renders (each written by the tests below, here once for all)."""
    out = {"mamba": work / "mamba.html", "vit": work / "vit.html"}
    _ok("report", mamba["qdir"], mamba["fpga"], mamba["orin"], mamba["cpu"], *LM_EVAL, "-o", out["mamba"])
    _ok("report", vit["qdir"], vit["orin"], "--data", vit["data"], "--ablate", "-o", out["vit"])
    return out


def _data(page: str) -> dict:
    found = re.search(r'<script type="application/json" id="edgec-data">(.*?)</script>', page, re.S)
    assert found
    return json.loads(found.group(1))


def _images(page: str) -> list[tuple[str, Image.Image, int, int]]:
    """(plot name, decoded PNG, declared width, declared height) of every <img>."""
    tags = re.findall(r"<img [^>]*>", page)
    out = []
    for tag in tags:
        src = re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', tag)
        assert src, tag[:80]
        image = Image.open(io.BytesIO(base64.b64decode(src.group(1))))
        image.load()
        width, height = (int(re.search(rf'{a}="(\d+)"', tag).group(1)) for a in ("width", "height"))
        out.append((re.search(r'data-plot="([a-z_]+)"', tag).group(1), image, width, height))
    return out


def assert_self_contained(page: str) -> None:
    assert not re.search(r"(?i)\b(https?|ftp|file):", page)
    assert not re.search(r"(?i)(src|href|action)\s*=\s*[\"']?//", page)
    assert not re.search(r"(?i)<link\b|@import|url\(|<iframe|<object|<embed", page)
    for attr, value in re.findall(r'(?i)\b(src|href)="([^"]*)"', page):
        assert value.startswith("data:image/png;base64," if attr.lower() == "src" else "#"), value[:60]


def assert_plots(page: str, expected: list[str]) -> None:
    """The page holds exactly the expected plots, each a non-blank PNG of its declared size."""
    images = _images(page)
    assert [name for name, *_ in images] == expected
    assert _data(page)["plots"] == expected
    for name, image, width, height in images:
        assert image.format == "PNG" and image.size == (width, height) and width == 960, name
        low, high = image.convert("L").getextrema()
        assert high - low > 100, f"{name} is blank"
        assert len(image.convert("RGB").getcolors(1 << 20) or []) > 10, f"{name} has almost no colours"


def _eval(*args: str | Path) -> dict:
    return json.loads(_ok("eval", *args, "--json"))


def _eval_layers(*args: str | Path) -> dict[str, tuple[float, float]]:
    """`edgec eval --layers` 's SQNR lines: value -> (int dB, qdq dB), as printed (one decimal)."""
    out = _ok("eval", *args, "--layers")
    rows = re.findall(r"^  (\S+)\s+int\s+(\S+)\s+qdq\s+(\S+)$", out, re.M)
    assert rows, out
    return {name: (float(i), float(q)) for name, i, q in rows}


def test_mamba_qdir_and_builds(mamba, pages):
    """QDIR + fpga, orin and cpu builds: perplexities and SQNR equal edgec eval's, one section per build."""
    page = pages["mamba"].read_text(encoding="utf-8")
    assert_self_contained(page)
    assert_plots(page, LM_PLOTS + BUILD_PLOTS["fpga"] + BUILD_PLOTS["orin"])
    data = _data(page)
    expected = _eval(mamba["qdir"], *LM_EVAL)
    assert {k: data["accuracy"][k] for k in expected} == expected
    for k in ("float", "int", "qdq"):
        assert f"<td class=\"num\">{expected[k]:,.4f}</td>" in page
    layers = _eval_layers(mamba["qdir"], *LM_EVAL)
    assert {k: (round(v["int"], 1), round(v["qdq"], 1)) for k, v in data["accuracy"]["layers"].items()} == layers
    manifest = json.loads((mamba["qdir"] / "manifest.json").read_text())
    assert data["model"]["files"] == manifest["files"] and data["model"]["options"] == manifest["options"]
    for digest in manifest["files"].values():
        assert digest in page
    assert data["model"]["family"] == "Mamba" and data["model"]["parameters"] > 100_000
    assert data["model"]["bytes_fp32"] == 2 * data["model"]["bytes_fp16"] > data["model"]["bytes_int8"]
    assert [b["target"] for b in data["builds"]] == ["fpga", "orin", "cpu"]
    assert all(passed for b in data["builds"] for *_, passed in b["verification"])
    csim = json.loads((mamba["fpga"] / "report.json").read_text())["csim"]
    assert f"{csim['logits_equal']}/{csim['logits_total']} logits bit-exact" in page
    est = json.loads((mamba["fpga"] / "report.json").read_text())["estimate"]
    assert f"{est['cycles_per_token']:,}" in page and f"{est['bytes_per_token']:,}" in page
    for row in json.loads((mamba["orin"] / "report.json").read_text())["roofline"]:
        assert f"{row['name']}</td><td class=\"num\">{row['int8_ms']:,.4f}" in page
    assert "No findings (step, prefill)." in page
    assert "Note: this build was made from" not in page  # every build is of this QDIR's model
    assert len(data["outliers"]) == 17 and data["ablation"] is None


def test_mamba_qdir_alone_ablate_and_data(work, mamba):
    """A QDIR alone, with --data and --ablate: the recipe and each --no-* switch, numbers equal to eval on --data."""
    text = work / "text.txt"
    text.write_text(BUNDLED["mamba-tiny"].eval.read_text()[:4000])
    out = work / "alone.html"
    assert "3 plots" in _ok("report", mamba["qdir"], "--data", text, "--ablate", "-o", out)
    page = out.read_text(encoding="utf-8")
    assert_self_contained(page)
    assert_plots(page, LM_PLOTS)
    data = _data(page)
    expected = _eval(mamba["qdir"], "--data", text)
    assert {k: data["accuracy"][k] for k in expected} == expected
    rows = data["ablation"]
    assert [r["change"] for r in rows] == ["recipe (as quantized)", "--no-hadamard", "--no-percentile",
                                           "--no-per-channel"]
    assert [r["options"]["hadamard"] for r in rows] == [True, False, True, True]
    assert len({r["metrics"]["float"] for r in rows}) == 1  # one float reference for every row
    assert all(1 <= r["metrics"]["int"] < 2 * r["metrics"]["float"] for r in rows)
    assert rows[0]["metrics"] != rows[1]["metrics"]


def test_vitmoe_report(vit, pages):
    """ViT-MoE: top-1 per task and routing agreement equal edgec eval's on the same images; expert load sums to 1;
    the approximation variants in the ablation; the orin build's per-task roofline."""
    page = pages["vit"].read_text(encoding="utf-8")
    assert_self_contained(page)
    assert_plots(page, VIT_PLOTS + BUILD_PLOTS["orin"])
    data = _data(page)
    expected = _eval(vit["qdir"], "--data", vit["data"])
    assert {k: data["accuracy"][k] for k in expected} == expected
    load = data["expert_load"]
    assert set(load) == {"float", "int"}
    assert sorted(load["float"]) == ["digit blocks.1", "digit blocks.3", "parity blocks.1", "parity blocks.3"]
    assert all(len(v) == 8 and abs(sum(v) - 1) < 1e-9 for p in load.values() for v in p.values())
    changes = [r["change"] for r in data["ablation"]]
    assert changes == ["recipe (as quantized)", "--softmax ibert", "--softmax shiftmax", "--softmax exp2",
                       "--gelu ibert", "--gelu shiftgelu", "--gelu edgemoe"]
    assert all(0 <= v <= 1 for r in data["ablation"] for v in r["metrics"].values())
    for task in ("digit", "parity"):
        assert f"{100 * expected['tasks'][task]['int']:,.4f}" in page
    assert "digit: ONNX Runtime vs qdq simulator" in page and "parity: ONNX Runtime vs qdq simulator" in page


def test_xlstm_bundled_name(work):
    """A bundled name (quantized in memory): no QDIR files, the card says so; numbers finite and close to float."""
    out = work / "xlstm.html"
    _ok("report", "xlstm-tiny", "--max-tokens", "256", "--seq-len", "128", "-o", out)
    page = out.read_text(encoding="utf-8")
    assert_self_contained(page)
    assert_plots(page, LM_PLOTS)
    data = _data(page)
    assert data["model"]["family"] == "xLSTM" and data["model"]["files"] == {}
    assert "Quantized in memory for this report" in page
    acc = data["accuracy"]
    assert acc["tokens"] == 254 and 1 < acc["float"] <= acc["int"] * 1.05 and acc["int"] < 1.2 * acc["float"]
    assert all(np.isfinite(row["int"]) for row in acc["layers"].values())


def _browser() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


@pytest.mark.parametrize("which", ["mamba", "vit"])
def test_renders_in_headless_chromium(pages, which, tmp_path):
    """Chromium loads the page from disk: every image decodes at its declared size (the page's own script counts
    them), and the screenshot is not blank."""
    browser = _browser()
    if browser is None:
        pytest.skip("no chromium binary (apt-get install chromium): the browser check of the report is skipped")
    page = pages[which]
    count = len(_images(page.read_text(encoding="utf-8")))
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=5000"]
    dom = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    assert f'data-images-rendered="{count}"' in dom, dom[:300]
    shot = tmp_path / "shot.png"
    subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1000,3000", page.as_uri()], capture_output=True,
                   timeout=120, check=True)
    image = Image.open(shot).convert("RGB")
    assert image.size == (1000, 3000)
    assert len(image.getcolors(1 << 20) or []) > 50  # text, tables and plots, not a blank page


def _garble(build: Path, tmp: Path, text: str) -> Path:
    copy = tmp / f"garbled-{build.name}"
    shutil.copytree(build, copy)
    (copy / "report.json").write_text(text)
    return copy


@pytest.mark.parametrize("case", ["missing model", "missing build", "not edgec", "qdir as build", "garbled json",
                                  "garbled field", "output folder", "output parent missing", "output under a file",
                                  "output in input", "seq-len", "vision --max-tokens"])
def test_bad_input_fails_cleanly(case, mamba, vit, tmp_path):
    """One `edgec: error:` line, exit 2, no output and no temporary file left, before any model work."""
    out = tmp_path / "out" / "report.html"
    out.parent.mkdir()
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("hello")
    (tmp_path / "file").write_text("x")
    model, extra = mamba["qdir"], []
    fragment = {"missing model": "no such model", "missing build": "no such build folder", "not edgec": "no manifest",
                "qdir as build": "not a build", "garbled json": "garbled", "garbled field": "garbled",
                "output folder": "is a folder", "output parent missing": "does not exist",
                "output under a file": "does not exist", "output in input": "inside the input",
                "seq-len": "--seq-len", "vision --max-tokens": "--max-tokens"}[case]
    if case == "missing model":
        model = tmp_path / "nope"
    elif case == "missing build":
        extra = [tmp_path / "nope"]
    elif case == "not edgec":
        extra = [stranger]
    elif case == "qdir as build":
        extra = [vit["qdir"]]
    elif case == "garbled json":
        extra = [_garble(mamba["cpu"], tmp_path, "{not json")]
    elif case == "garbled field":
        report = json.loads((mamba["orin"] / "report.json").read_text())
        report["roofline"][0]["int8_ms"] = "fast"
        extra = [_garble(mamba["orin"], tmp_path, json.dumps(report))]
    elif case == "output folder":
        out = out.parent
    elif case == "output parent missing":
        out = tmp_path / "no" / "such" / "report.html"
    elif case == "output under a file":
        out = tmp_path / "file" / "report.html"
    elif case == "output in input":
        out = mamba["qdir"] / "report.html"
    elif case == "seq-len":
        extra = ["--seq-len", "1"]
    else:
        model, extra = vit["qdir"], ["--max-tokens", "64"]
    before = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert_fails_cleanly(run_cli("report", model, *extra, "-o", out), fragment)
    assert not (out.exists() and out.is_file())
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == before
    assert not (mamba["qdir"] / "report.html").exists()
