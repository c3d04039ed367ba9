"""Roofline estimate of batch-1 latency on Jetson Orin: int8 against fp16 weights, per call of a graph.

A call is one decode step of a step graph (every weight read once per token, the recurrent state read and
written: bandwidth bound), or one image through a task graph (every weight read once, each used by every
token: compute bound at ViT widths). latency = max(bytes / (efficiency x DRAM bandwidth), 2 x MACs / dense
peak). Dense peaks (no sparsity) and bandwidths are from ../shared/REFERENCES.md ("TensorRT and Jetson Orin").

The traffic is counted per op (any family), from value shapes alone, so a graph built from a spec without
weights (xLSTM-7B widths, say) has a roofline too; ``rows`` is the tokens a value holds per call (1 in a step
graph, the patches and cls token of an image):

- LINEAR: in x out weights, rows x in x out MACs; EMBED: one row; CONV1D_STEP: channels x taps;
- PATCH_EMBED: D x C x P x P weights, one MAC per weight and patch; ROUTE_LOGITS: D x E, per token;
- ATTN_SCORES and ATTN_CONTEXT: T x T x D MACs each (no weights);
- MOE: all experts' weights (2 x E x D x Hm: every expert is read once per image) and, as the ONNX graph is
  dense-masked, every expert on every token (E / k times the MACs a dispatching kernel would do);
- HADAMARD: its Kronecker factors (K^2 + sum f^2 fp32 constants, as the ONNX exporter writes them);
- stateful steps (conv window, SSM h, mLSTM C, n and m, the SSD's h): each state element read and written in
  fp32 (8 bytes per token, in both precisions), two MACs per element (update and read-out);
- SSD_STEP: also its per-head fp32 constants A, D and dt_bias (3 x H; B and C are broadcast over each group's
  heads, not copied).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from edgec.ir import Graph, Node, Op, value_rows
from edgec.ir.ops import STATEFUL_STEP
from edgec.numerics.hadamard import hadamard_factors

__all__ = ["ORIN_DEVICES", "DecodeTraffic", "OrinDevice", "decode_roofline", "decode_traffic", "format_roofline"]

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


@dataclass(frozen=True)
class DecodeTraffic:
    """What one decode step reads and computes: weight elements (int8 or fp16), fp32 constant and state bytes."""

    weights: int
    macs: int
    state_bytes: int  # fp32 state, read + written
    const_bytes: int  # fp32 constants outside the weights (rotation factors)


def _width(graph: Graph, value: str) -> int:
    return int(graph.values[value].shape[-1])


def _state_elements(graph: Graph, node: Node) -> int:
    total = 0
    for name in node.inputs:
        if name in graph.inputs and name != "tokens":
            count = 1
            for d in graph.values[name].shape[1:]:
                count *= int(d)
            total += count
    return total


def decode_traffic(step: Graph) -> DecodeTraffic:
    """Count the per-token traffic of a step graph, op by op (see the module docstring)."""
    weights = macs = state = consts = 0
    for node in step.nodes:
        if node.op in (Op.LINEAR, Op.ROUTE_LOGITS, Op.PATCH_EMBED):
            rows = value_rows(step, node.outputs[0])
            w = (_width(step, node.outputs[0]) * (_width(step, node.inputs[0]) if node.op is not Op.PATCH_EMBED
                                                  else int(step.values[node.inputs[0]].shape[-1])
                                                  * node.attrs["patch"] ** 2))
            weights, macs = weights + w, macs + rows * w
        elif node.op in (Op.ATTN_SCORES, Op.ATTN_CONTEXT):
            v = node.inputs[1]
            macs += value_rows(step, v) ** 2 * _width(step, v)
        elif node.op is Op.MOE:
            w = 2 * node.attrs["experts"] * _width(step, node.inputs[0]) * node.attrs["hidden"]
            weights, macs = weights + w, macs + value_rows(step, node.inputs[0]) * w
        elif node.op is Op.EMBED:
            weights += _width(step, node.outputs[0])
        elif node.op is Op.HADAMARD:
            plan = node.attrs["plan"]
            factors = hadamard_factors(plan)
            consts += 4 * sum(f * f for f in factors)
            macs += plan.padded_dim * sum(factors)
        elif node.op is Op.SSD_STEP:
            consts += 4 * 3 * node.attrs["heads"]
        if node.op in STATEFUL_STEP:
            elements = _state_elements(step, node)
            state, macs = state + 8 * elements, macs + 2 * elements
            if node.op is Op.CONV1D_STEP:  # channels x taps (the window of K - 1 past values and x)
                taps = int(step.values[node.inputs[1]].shape[-1]) + 1
                w = _width(step, node.outputs[0]) * taps
                weights, macs = weights + w, macs + w
    return DecodeTraffic(weights, macs, state, consts)


def decode_roofline(step: Graph) -> list[dict]:
    """Per device: int8 and fp16 decode latency (ms/token), the int8 speed-up and the bytes behind them."""
    t = decode_traffic(step)
    fixed = t.state_bytes + t.const_bytes  # the state stays fp32 (read + write) in both
    int8_bytes, fp16_bytes = t.weights + fixed, 2 * t.weights + fixed
    rows = []
    for dev in ORIN_DEVICES:
        bw = dev.dram_gbps * 1e9 * BANDWIDTH_EFFICIENCY
        int8_ms = 1e3 * max(int8_bytes / bw, 2 * t.macs / (dev.int8_tops * 1e12))
        fp16_ms = 1e3 * max(fp16_bytes / bw, 2 * t.macs / (dev.fp16_tflops * 1e12))
        rows.append({**asdict(dev), "int8_ms": int8_ms, "fp16_ms": fp16_ms, "speedup": fp16_ms / int8_ms,
                     "int8_bytes": int8_bytes, "fp16_bytes": fp16_bytes, "state_bytes": t.state_bytes,
                     "macs": t.macs})
    return rows


def format_roofline(rows: list[dict], unit: str = "token") -> str:
    head = f"ms/{unit}"
    lines = [f"{'device':<15} {'int8 ' + head:>14} {'fp16 ' + head:>14} {'int8 speed-up':>14}"]
    lines += [f"{r['name']:<15} {r['int8_ms']:>14.3f} {r['fp16_ms']:>14.3f} {r['speedup']:>13.2f}x" for r in rows]
    if rows:
        r = rows[0]
        state = f", of which fp32 state read + written {r['state_bytes'] / 1e6:.2f} MB" if r["state_bytes"] else ""
        lines.append(f"per {unit}: int8 {r['int8_bytes'] / 1e6:.2f} MB, fp16 {r['fp16_bytes'] / 1e6:.2f} MB{state}; "
                     f"{2 * r['macs'] / 1e9:.3f} GOP")
    return "\n".join(lines)
