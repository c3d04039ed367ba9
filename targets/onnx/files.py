"""ONNX files of any size: self-contained below protobuf's 2 GB limit, else with the large tensors in one external
data file beside the graph (``<name>.onnx.data``), as the ONNX format requires for larger models.

A model that fits stays in memory (ONNX Runtime takes it as bytes); a larger one is saved first and handled by
its path from then on, so that its tensor bytes are freed from memory once written.
"""

from __future__ import annotations

from pathlib import Path

import onnx

__all__ = ["EXTERNAL_MIN_BYTES", "OnnxModel", "as_proto", "loadable", "needs_external_data", "save_onnx",
           "save_with_data"]

PROTOBUF_LIMIT = 2**31 - 1  # a serialized protobuf message cannot exceed this
HEADROOM = 64 << 20  # room for the graph itself beside its initializers
EXTERNAL_MIN_BYTES = 1 << 20  # tensors from 1 MiB go to the data file: weights; scales and tables stay inline

OnnxModel = onnx.ModelProto | Path  # a model in memory, or saved (with its data file) at a path


def needs_external_data(model: onnx.ModelProto) -> bool:
    """Whether ``model`` is too large to serialize as one protobuf message (summed over its initializers and
    nodes: protobuf cannot even measure a message above the limit)."""
    graph = model.graph
    size = sum(t.ByteSize() for t in graph.initializer) + sum(n.ByteSize() for n in graph.node)
    return size > PROTOBUF_LIMIT - HEADROOM


def save_onnx(model: OnnxModel, path: Path) -> None:
    """Write ``model`` to ``path``: self-contained when it fits, else with its tensors of at least
    EXTERNAL_MIN_BYTES in ``path.name + ".data"`` beside it. A model already saved at ``path`` stays as it is."""
    if isinstance(model, Path):
        if model.resolve() != path.resolve():
            raise ValueError(f"{model} is saved already; it cannot be saved again as {path}")
        return
    if needs_external_data(model):
        save_with_data(model, path)
        onnx.checker.check_model(str(path))  # the checker reads a model above 2 GB from its path only
    else:
        onnx.save_model(model, path)


def save_with_data(model: onnx.ModelProto, path: Path) -> None:
    """Write ``model`` to ``path`` with its tensors of at least EXTERNAL_MIN_BYTES in ``path.name + ".data"``
    (the in-memory model then refers to that file)."""
    onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                    location=path.name + ".data", size_threshold=EXTERNAL_MIN_BYTES)


def loadable(model: onnx.ModelProto, folder: Path, name: str) -> OnnxModel:
    """``model`` itself when it fits in one protobuf message; else saved as ``folder / name`` (with its data file)
    and that path, so the caller can drop the large in-memory model."""
    if not needs_external_data(model):
        return model
    save_onnx(model, folder / name)
    return folder / name


def as_proto(model: OnnxModel) -> onnx.ModelProto:
    """The model in memory (a saved one loaded with its external data)."""
    return model if isinstance(model, onnx.ModelProto) else onnx.load(model)
