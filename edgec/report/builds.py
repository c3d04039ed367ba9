"""Read the build folders a report covers: their manifest and report.json, every field checked on the way in.

Each folder becomes a :class:`Build`: what the page shows of it (FPGA stage breakdown and resources, Orin
roofline and lint, the verification result), as plain numbers and strings. A folder that is no build, or
whose report.json is missing or garbled, is one :class:`ArtifactError` line, before any model is loaded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgec.errors import ArtifactError
from edgec.manifest import describe, owned_files, read_manifest

__all__ = ["Build", "FpgaEstimate", "Roofline", "read_build"]

REPORT = "report.json"
_MAX_REPORT_BYTES = 64 << 20


@dataclass(frozen=True)
class FpgaEstimate:
    """The analytic FPGA estimate: per-stage cycles and DRAM bytes per token (or image), both bounds, resources."""

    unit: str  # "token" or "image"
    device: str
    part: str
    clock_mhz: float
    dram_gbps: float
    parallelism: int
    stage_cycles: dict[str, float]
    stage_bytes: dict[str, float]
    cycles: float
    bytes: float
    compute_rate: float  # units per second if only compute counted
    dram_rate: float  # units per second if only DRAM bandwidth counted
    rate: float
    bound: str
    fits: bool
    resources: dict[str, tuple[float, float]]  # name -> (used, available)


@dataclass(frozen=True)
class Roofline:
    """One Orin device's decode (or per-image) roofline: int8 against fp16."""

    device: str
    int8_ms: float
    fp16_ms: float
    int8_bytes: float
    fp16_bytes: float
    speedup: float


@dataclass(frozen=True)
class Build:
    """What a report shows of one build folder."""

    folder: Path
    target: str  # fpga, cpu or orin
    fmt: str
    source: str
    estimate: FpgaEstimate | None = None
    roofline: dict[str, list[Roofline]] = field(default_factory=dict)  # graph ("step", a task) -> devices
    lint: dict[str, list[dict[str, str]]] = field(default_factory=dict)  # graph -> findings
    tensorrt: str = ""
    verification: list[tuple[str, str, bool]] = field(default_factory=list)  # (what, result, passed)


def read_build(folder: Path) -> Build:
    """The :class:`Build` of ``folder``; one ArtifactError line if it is not a sound edgec build."""
    from edgec.targets.registry import target_of_format

    folder = Path(folder)
    if not folder.exists():
        raise ArtifactError(f"{folder}: no such build folder; pass the output folder of edgec build")
    manifest = read_manifest(folder, what="an edgec build")
    target = target_of_format(manifest["format"])
    if target is None:
        raise ArtifactError(f"{folder}: is {describe(manifest['format'])}, not a build; pass the QDIR as the first "
                            "argument and build folders (edgec build output) after it")
    report = _read_json(folder, manifest)
    try:
        return _parse(folder, target, manifest, report)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as err:
        raise ArtifactError(f"{folder / REPORT}: garbled ({type(err).__name__}: {str(err)[:80]}); the folder was "
                            "altered: rebuild it") from None


def _read_json(folder: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    path = folder / REPORT
    if REPORT not in owned_files(manifest) or not path.is_file():
        raise ArtifactError(f"{folder}: has no {REPORT}; rebuild it with edgec build")
    try:
        if path.stat().st_size > _MAX_REPORT_BYTES:
            raise ArtifactError(f"{path}: larger than {_MAX_REPORT_BYTES >> 20} MB, not an edgec report; rebuild it")
        report = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ArtifactError(f"{path}: cannot be read ({err.strerror}); fix its permissions or rebuild it") from None
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise ArtifactError(f"{path}: garbled ({str(err)[:80]}); the folder was altered: rebuild it") from None
    if not isinstance(report, dict) or report.get("format") != manifest["format"]:
        raise ArtifactError(f"{path}: not the report of this {manifest['format']} build; the folder was altered: "
                            "rebuild it")
    return report


def _num(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{json.dumps(value)[:30]} is not a number")
    return float(value)


def _numbers(table: Any) -> dict[str, float]:
    if not isinstance(table, dict):
        raise TypeError("a table of numbers is not an object")
    return {str(k): _num(v) for k, v in table.items()}


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{json.dumps(value)[:30]} is not a string")
    return value


def _parse(folder: Path, target: str, manifest: dict[str, Any], report: dict[str, Any]) -> Build:
    source = manifest.get("source")
    source = source if isinstance(source, str) else ""
    if target == "fpga":
        return Build(folder, target, manifest["format"], source, estimate=_fpga_estimate(report),
                     verification=_csim(report))
    graphs = report.get("tasks", {"step": report})
    if not isinstance(graphs, dict):
        raise TypeError("tasks is not an object")
    checks = [_agreement(name, entry["reference"]) for name, entry in graphs.items()]
    if target != "orin":
        return Build(folder, target, manifest["format"], source, verification=checks)
    rooflines = report["roofline"] if "tasks" in report else {"step": report["roofline"]}
    lints = report["lint"] if "tasks" in report else {"step": report["lint"], "prefill": report.get("prefill_lint", [])}
    return Build(folder, target, manifest["format"], source, verification=checks, tensorrt=_text(report["tensorrt"]),
                 roofline={str(g): [_roofline(r) for r in rows] for g, rows in rooflines.items()},
                 lint={str(g): [_finding(f) for f in found] for g, found in lints.items()})


def _fpga_estimate(report: dict[str, Any]) -> FpgaEstimate:
    est, device = report["estimate"], report["device"]
    image = "images_per_s" in est
    if image:
        resources = {"DSP": (_num(est["dsp"]), _num(device["dsp"])),
                     "BRAM36": (_num(est["bram36"]), _num(device["bram_36k"]) + 8 * _num(device["uram"]))}
        rates = (_num(est["compute_images_per_s"]), _num(est["dram_images_per_s"]), _num(est["images_per_s"]))
        totals = (_num(est["cycles"]), _num(est["bytes"]))
    else:
        names = {"dsp": "DSP", "bram_36k": "BRAM36", "uram": "URAM", "lut": "LUT"}
        resources = {names.get(k, k): (_num(v["used"]), _num(v["available"])) for k, v in est["resources"].items()}
        rates = (_num(est["compute_tokens_per_s"]), _num(est["dram_tokens_per_s"]), _num(est["tokens_per_s"]))
        totals = (_num(est["cycles_per_token"]), _num(est["bytes_per_token"]))
    return FpgaEstimate(unit="image" if image else "token", device=_text(device["name"]), part=_text(device["part"]),
                        clock_mhz=_num(device["clock_mhz"]), dram_gbps=_num(device["dram_gbps"]),
                        parallelism=int(_num(est["parallelism"])), stage_cycles=_numbers(est["stage_cycles"]),
                        stage_bytes=_numbers(est["stage_bytes"]), cycles=totals[0], bytes=totals[1],
                        compute_rate=rates[0], dram_rate=rates[1], rate=rates[2], bound=_text(est["bound"]),
                        fits=bool(est["fits"]), resources=resources)


def _csim(report: dict[str, Any]) -> list[tuple[str, str, bool]]:
    if "csim" not in report:
        return [("C simulation", "not run (built with --no-csim)", False)]
    c = report["csim"]
    unit = "calls (image x task)" if "devices" in report else "tokens"
    equal, total = int(_num(c["logits_equal"])), int(_num(c["logits_total"]))
    return [("C simulation (g++) vs int simulator", f"{equal}/{total} logits bit-exact over "
             f"{int(_num(c['tokens']))} {unit}", bool(c["bit_exact"]) and equal == total)]


def _agreement(name: str, ref: dict[str, Any]) -> tuple[str, str, bool]:
    from edgec.targets.onnx.build import LOGITS_RTOL  # the bound edgec build checked

    lsb, off = int(_num(ref["max_lsb"])), int(_num(ref["off_by_one"]))
    text = (f"{int(_num(ref['int8_tensors']))} int8 tensors within {lsb} LSB ({off} of "
            f"{int(_num(ref['elements']))} elements off by one); logits max rel. error "
            f"{_num(ref['logits_max_rel']):.1e}")
    if "route_flips" in ref:
        text += f"; {int(_num(ref['route_flips']))} of {int(_num(ref['routed_tokens']))} routed tokens differ"
    passed = lsb <= 1 and _num(ref["logits_max_rel"]) <= LOGITS_RTOL and not ref.get("route_flips")
    return (f"{name}: ONNX Runtime vs qdq simulator", text, passed)


def _roofline(row: dict[str, Any]) -> Roofline:
    return Roofline(_text(row["name"]), _num(row["int8_ms"]), _num(row["fp16_ms"]), _num(row["int8_bytes"]),
                    _num(row["fp16_bytes"]), _num(row["speedup"]))


def _finding(f: dict[str, Any]) -> dict[str, str]:
    return {k: _text(f.get(k, "")) for k in ("severity", "rule", "node_name", "op_type", "message")}
