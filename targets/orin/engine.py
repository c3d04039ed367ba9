"""Build a TensorRT engine from the step graph with TensorRT's Python API, where TensorRT and a GPU exist.

Engines are specific to the GPU and TensorRT version they are built on: on a Jetson this runs on the
device itself (x86 hosts cannot build Jetson engines).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from edgec.errors import EdgecError

__all__ = ["ENGINE_RTOL", "EngineError", "build_engine", "check_engine", "int8_layer_count", "tensorrt_available"]

#: The engine runs fp16 between its int8 layers: its logits against the fp32 simulator, relative to range.
ENGINE_RTOL = 2e-2


class EngineError(EdgecError):
    """TensorRT is missing or rejected the graph."""


def tensorrt_available() -> bool:
    """True when the ``tensorrt`` package can be imported (it needs an NVIDIA GPU and driver)."""
    if importlib.util.find_spec("tensorrt") is None:
        return False
    try:
        import tensorrt as trt

        trt.Builder(trt.Logger(trt.Logger.ERROR))
    except Exception:  # no GPU or driver: the builder cannot be created
        return False
    return True


def _pin_fp32(trt, network, names: set[str]) -> bool:
    """Keep the layers named ``names`` (ONNX node names) and their float outputs in fp32; True if any."""
    pinned = False
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.name in names:
            layer.precision = trt.float32
            for j in range(layer.num_outputs):
                if layer.get_output(j).dtype in (trt.float32, trt.float16):
                    layer.set_output_type(j, trt.float32)
            pinned = True
    return pinned


def build_engine(onnx_path: Path, engine_path: Path, shapes: dict[str, tuple[int, ...]],
                 workspace_mib: int = 1024, fp32_layers: list[str] | None = None) -> None:
    """Parse ``onnx_path`` and serialize an int8 + fp16 engine to ``engine_path``, ``fp32_layers`` kept fp32
    (the same precision constraints as build_engine.sh)."""
    if not tensorrt_available():
        raise EngineError("TensorRT is not available here (pip package tensorrt with an NVIDIA GPU); "
                          "run build_engine.sh on the device or pass --engine never")
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"):  # implicit in TensorRT 10
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        first = parser.get_error(0) if parser.num_errors else "unknown error"
        raise EngineError(f"TensorRT could not parse {onnx_path.name}: {first}")
    config = builder.create_builder_config()
    config.set_flag(trt.BuilderFlag.INT8)
    config.set_flag(trt.BuilderFlag.FP16)
    if _pin_fp32(trt, network, set(fp32_layers or ())):
        config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mib << 20)
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        shape = shapes[tensor.name]
        profile.set_shape(tensor.name, shape, shape, shape)
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineError(f"TensorRT could not build an engine from {onnx_path.name}; see its log above")
    engine_path.write_bytes(bytes(serialized))


def int8_layer_count(layer_info: Path) -> int:
    """Layers that TensorRT ran in INT8, from trtexec's ``--exportLayerInfo`` JSON (detailed verbosity)."""
    import json

    try:
        info = json.loads(layer_info.read_text())
    except (OSError, ValueError, RecursionError) as err:  # RecursionError: nested too deeply
        raise EngineError(f"{layer_info}: unreadable trtexec layer info ({str(err)[:200]}); rerun build_engine.sh") \
            from None
    layers = info.get("Layers", []) if isinstance(info, dict) else info
    if not isinstance(layers, list):
        raise EngineError(f"{layer_info}: not trtexec layer info (no list of layers); rerun build_engine.sh")
    text = [json.dumps(layer) for layer in layers]
    return sum('"Int8"' in t or "INT8" in t for t in text)


def check_engine(folder: Path, golden, state: dict) -> dict:
    """Replay the golden tokens through ``step.engine`` (Polygraphy's TensorRT runner) and check that
    INT8 layers really ran INT8 (``layers.json`` from build_engine.sh). Skipped without TensorRT."""
    from edgec.targets.onnx.build import replay_golden

    result: dict = {"engine": None, "int8_layers": None}
    if (folder / "layers.json").is_file():
        result["int8_layers"] = int8_layer_count(folder / "layers.json")
        if result["int8_layers"] == 0:
            raise EngineError(f"{folder}/layers.json: no layer ran in INT8; rebuild with build_engine.sh (--int8)")
    if not tensorrt_available():
        return result
    from polygraphy.backend.trt import EngineFromBytes, TrtRunner

    try:
        with TrtRunner(EngineFromBytes((folder / "step.engine").read_bytes())) as runner:
            worst = replay_golden(runner.infer, golden, state)
    except Exception as err:  # TensorRT/Polygraphy raise their own types for an engine from another device
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise EngineError(f"{folder}/step.engine: TensorRT cannot run it ({first}); rebuild it on this device "
                          "with build_engine.sh") from None
    if worst > ENGINE_RTOL:
        raise EngineError(f"{folder}/step.engine: logits differ from the golden ones by {worst:.2e} of their range")
    result["engine"] = worst
    return result
