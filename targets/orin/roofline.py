"""Roofline estimate of batch-1 decode latency on Jetson Orin: int8 against fp16 weights.

Decode is bandwidth bound: every weight is read once per token, and the recurrent state is read and
written. latency = max(bytes / (efficiency x DRAM bandwidth), 2 x MACs / dense peak). Dense peaks
(no sparsity) and bandwidths are from ../shared/REFERENCES.md ("TensorRT and Jetson Orin").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from edgec.frontends.mamba_spec import MambaSpec

__all__ = ["ORIN_DEVICES", "OrinDevice", "decode_roofline", "format_roofline"]

BANDWIDTH_EFFICIENCY = 0.7  # achievable fraction of peak DRAM bandwidth (REFERENCES: 0.6-0.8)


@dataclass(frozen=True)
class OrinDevice:
    name: str
    dram_gbps: float
    int8_tops: float  # dense
    fp16_tflops: float  # dense (tensor cores)


ORIN_DEVICES = (
    OrinDevice("Orin Nano 8GB", 68.0, 20.0, 10.0),
    OrinDevice("Orin NX 16GB", 102.4, 30.0, 15.0),
    OrinDevice("AGX Orin 64GB", 204.8, 85.0, 42.5),
)


def _macs_and_weights(spec: MambaSpec) -> tuple[int, int]:
    d, e, n, r = spec.hidden_size, spec.intermediate_size, spec.state_size, spec.time_step_rank
    per_layer = 2 * e * d + (r + 2 * n) * e + e * r + d * e + e * spec.conv_kernel
    weights = spec.num_hidden_layers * per_layer + spec.vocab_size * d  # lm_head (embedding: one row)
    return weights, weights  # one MAC per weight at batch 1


def decode_roofline(spec: MambaSpec) -> list[dict]:
    """Per device: int8 and fp16 decode latency (ms/token) and the int8 speed-up."""
    macs, weights = _macs_and_weights(spec)
    state = spec.num_hidden_layers * spec.intermediate_size * (spec.state_size + spec.conv_kernel - 1)
    rows = []
    for dev in ORIN_DEVICES:
        bw = dev.dram_gbps * 1e9 * BANDWIDTH_EFFICIENCY
        # int8: weights 1 byte; fp16: 2 bytes; the state stays fp32 (read + write) in both.
        int8_bytes, fp16_bytes = weights + 8 * state, 2 * weights + 8 * state
        int8_ms = 1e3 * max(int8_bytes / bw, 2 * macs / (dev.int8_tops * 1e12))
        fp16_ms = 1e3 * max(fp16_bytes / bw, 2 * macs / (dev.fp16_tflops * 1e12))
        rows.append({**asdict(dev), "int8_ms": int8_ms, "fp16_ms": fp16_ms, "speedup": fp16_ms / int8_ms,
                     "int8_bytes": int8_bytes, "fp16_bytes": fp16_bytes})
    return rows


def format_roofline(rows: list[dict]) -> str:
    lines = [f"{'device':<15} {'int8 ms/token':>14} {'fp16 ms/token':>14} {'int8 speed-up':>14}"]
    lines += [f"{r['name']:<15} {r['int8_ms']:>14.3f} {r['fp16_ms']:>14.3f} {r['speedup']:>13.2f}x" for r in rows]
    return "\n".join(lines)
