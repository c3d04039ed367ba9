"""ONNX builds of a stateless model (images in, logits out): one ``model_<task>.onnx`` per entry graph.

Shared by ``--target cpu`` and ``--target orin`` when the quantized model has no step graph (a ViT-MoE: one
graph per task, its gates and head chosen at compile time, so each file is a plain static graph). The folder:
``model_<task>.onnx``; ``golden.npz`` (uint8 golden images; per task the logits ONNX Runtime computed at build
time, ``logits_<task>``, once it matched the qdq simulator, whose own are ``sim_logits_<task>``: free-running,
a code that flips by one LSB moves later logits by ~1e-3, so the build-time output is what ``edgec verify``
and Polygraphy compare against at 1e-4); ``golden_inputs.json`` / ``golden_outputs_<task>.json`` in
Polygraphy's formats; ``report.json``;
``manifest.json`` (format, family, tasks and their class counts, the image shape, file hashes).
"""

from __future__ import annotations

import json
import zipfile
import zlib
from dataclasses import asdict
from pathlib import Path

import numpy as np

from edgec.errors import ArtifactError, VerificationError
from edgec.frontends.validate import one_line
from edgec.ir import entry_graphs
from edgec.manifest import check_files, write_manifest
from edgec.numerics.agreement import relative_error
from edgec.passes.quantize import QuantizedModel
from edgec.runtime.sim_qdq import QdqSimulator
from edgec.targets.onnx.export import ExportedGraph, export_image_graph
from edgec.targets.onnx.polygraphy_json import save_inputs, save_outputs
from edgec.targets.onnx.verify import compare_images

__all__ = ["LOGITS_RTOL", "export_verified_images", "golden_images", "is_image_model",
           "model_file", "task_of", "verify_image_output", "write_image_folder"]

LOGITS_RTOL = 1e-4  # ONNX Runtime (optimizations off, int8 tensors pinned) against the simulator


def is_image_model(qm: QuantizedModel) -> bool:
    """A model without a step graph: every entry graph maps images to logits."""
    return "step" not in qm.graphs


def task_of(key: str) -> str:
    """The task an entry graph serves ("task/digit" -> "digit")."""
    return key.rsplit("/", 1)[-1]


def model_file(task: str) -> str:
    return f"model_{task}.onnx"


def golden_images(shape: tuple[int, ...], count: int) -> np.ndarray:
    """Deterministic uint8 images [count, H, W, C] (the same on every machine): smooth blobs plus noise, so
    that attention and routing see structure, not only white noise."""
    rng = np.random.default_rng(20261126)
    h, w, c = shape
    coarse = rng.integers(0, 256, (count, max(h // 4, 1), max(w // 4, 1), c)).astype(np.float64)
    smooth = coarse.repeat(-(-h // coarse.shape[1]), axis=1)[:, :h].repeat(-(-w // coarse.shape[2]), axis=2)[:, :, :w]
    return np.clip(smooth + rng.normal(0, 24, smooth.shape), 0, 255).astype(np.uint8)


def export_verified_images(qm: QuantizedModel, integer_matmul: bool, images: np.ndarray
                           ) -> tuple[dict[str, ExportedGraph], dict]:
    """Export every entry graph and check it with ONNX Runtime against the qdq simulator on ``images``.

    The contract: with every int8 value of the graph pinned to ONNX Runtime's codes, each within 1 LSB (an
    expert's own activations are checked through what follows them), the logits within
    LOGITS_RTOL of their range, and the same experts chosen for every token; else VerificationError. Also
    reported: the free-running comparison and ONNX Runtime with optimizations on.
    """
    exported, report = {}, {}
    for key in entry_graphs(qm.graphs):
        graph = exported[task_of(key)] = export_image_graph(qm, key, integer_matmul)
        exact = compare_images(graph, qm, key, images)
        if exact.max_lsb > 1 or exact.logits_max_rel > LOGITS_RTOL or exact.route_flips:
            raise VerificationError(f"{model_file(task_of(key))}: ONNX Runtime disagrees with the qdq simulator on "
                                    f"{len(images)} golden images: {exact.max_lsb} LSB on an int8 tensor, logits off "
                                    f"by {exact.logits_max_rel:.2e} of their range, {exact.route_flips} tokens routed "
                                    "to other experts")
        report[task_of(key)] = {"reference": asdict(exact),
                                "free_running": asdict(compare_images(graph, qm, key, images, pin_int8=False)),
                                "optimized": asdict(compare_images(graph, qm, key, images, optimize=True))}
    return exported, {"tasks": report}


def _simulated_logits(qm: QuantizedModel, images: np.ndarray) -> dict[str, np.ndarray]:
    sim = QdqSimulator(qm)
    return {task_of(k): sim.run(g, {"images": images})["logits"] for k, g in entry_graphs(qm.graphs).items()}


def _onnx_logits(exported: dict[str, ExportedGraph], images: np.ndarray) -> dict[str, np.ndarray]:
    from edgec.targets.onnx.verify import ort_session

    return {t: ort_session(g.model).run(["logits"], {"images": images})[0] for t, g in exported.items()}


def write_image_folder(tmp: Path, qm: QuantizedModel, exported: dict[str, ExportedGraph], images: np.ndarray,
                       report: dict, fmt: str, unhashed: tuple[str, ...] = ()) -> None:
    """The model files, golden data, report.json and a manifest hashing every file but report.json and
    ``unhashed``."""
    import onnx

    logits, simulated = _onnx_logits(exported, images), _simulated_logits(qm, images)
    for task, graph in exported.items():
        onnx.save(graph.model, tmp / model_file(task))
        save_outputs([{"logits": logits[task]}], tmp / f"golden_outputs_{task}.json", runner="onnxrt-edgec-build")
    np.savez(tmp / "golden.npz", images=images, **{f"logits_{t}": v for t, v in logits.items()},
             **{f"sim_logits_{t}": v for t, v in simulated.items()})
    save_inputs([{"images": images}], tmp / "golden_inputs.json")
    (tmp / "report.json").write_text(json.dumps({"format": fmt, **report}, indent=1, sort_keys=True,
                                                default=str) + "\n")
    spec = qm.spec
    write_manifest(tmp, {"format": fmt, "source": qm.source, "family": spec.family,
                         "tasks": {t: int(v.shape[-1]) for t, v in logits.items()},
                         "image": [int(d) for d in images.shape[1:]]}, ("report.json", *unhashed))


def load_golden_images(folder: Path, tasks: list[str]) -> dict[str, np.ndarray]:
    """golden.npz's images and each task's logits, checked for shape and type (one line if not)."""
    path = folder / "golden.npz"
    try:
        with np.load(path, allow_pickle=False) as npz:
            golden = {"images": npz["images"], **{t: npz[f"logits_{t}"] for t in tasks}}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise ArtifactError(f"{path}: unreadable ({one_line(err)}); rebuild the folder with edgec build") from None
    images = golden["images"]
    if images.dtype != np.uint8 or images.ndim != 4 or any(
            golden[t].ndim != 2 or len(golden[t]) != len(images) or not np.isfinite(golden[t]).all() for t in tasks):
        raise ArtifactError(f"{path}: images or logits of the wrong shape or type; rebuild the folder with edgec build")
    return golden


def verify_image_output(folder: Path, manifest: dict) -> dict[str, float]:
    """Check every hash, then re-run each model_<task>.onnx on the golden images: the logits' max relative
    difference per task (VerificationError above LOGITS_RTOL)."""
    from edgec.targets.onnx.generate import open_session

    tasks = manifest.get("tasks")
    if not isinstance(tasks, dict) or not tasks or not all(isinstance(t, str) and "/" not in t for t in tasks):
        raise ArtifactError(f"{folder / 'manifest.json'}: its 'tasks' entry is garbled; rebuild the folder with "
                            "edgec build")
    needed = [*(model_file(t) for t in tasks), "golden.npz"]
    check_files(folder, manifest, [*needed, *sorted(set(manifest["files"]) - set(needed))])
    golden = load_golden_images(folder, list(tasks))
    worst = {}
    for task in tasks:
        session = open_session(folder / model_file(task))
        try:
            got = session.run(["logits"], {"images": golden["images"]})[0]
        except Exception as err:  # ONNX Runtime raises its own types: a graph that loads but does not run
            raise ArtifactError(f"{folder / model_file(task)}: does not run on the golden images ({one_line(err)}); "
                                "rebuild the folder with edgec build") from None
        worst[task] = relative_error(got, golden[task])
        if worst[task] > LOGITS_RTOL:
            raise VerificationError(f"{folder}: {model_file(task)} logits differ from the golden ones by "
                                    f"{worst[task]:.2e} of their range")
    return worst
