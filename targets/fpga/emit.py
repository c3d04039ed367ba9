"""Emit the HLS top function of one decode step from a QuantizedModel's step graph.

Table-driven: one ``_emit_<op>`` per IR op, each returning C++ lines that call a kernel of
``hls/include/edgec_kernels.h`` with the node's buffers, offsets into the weights file and scalar
constants (taken from ``QuantizedModel.int_constants``, the same values the simulator runs with).
An op without an emitter raises UnsupportedOpError before any file is written.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from edgec.errors import UnsupportedOpError
from edgec.ir import Node, Op
from edgec.numerics.hadamard import hadamard_base
from edgec.passes.quantize import QuantizedModel
from edgec.targets.fpga.blob import WeightBlob

__all__ = ["EmittedDesign", "emit_design"]


def c_name(value: str) -> str:
    """A C identifier for an IR value name."""
    return "v_" + re.sub(r"[^0-9A-Za-z_]", "_", value)


def buffer_name(value: str) -> str:
    """The on-chip buffer holding ``value``: layers run one after another, so every layer's values share
    one set of buffers (``l3.x`` -> ``v_x``); the residual stream alternates between two (h0, h1)."""
    layer_value = re.fullmatch(r"l\d+\.(.+)", value)
    if layer_value:
        return c_name(layer_value.group(1))
    residual = re.fullmatch(r"h(\d+)", value)
    return f"v_h{int(residual.group(1)) % 2}" if residual else c_name(value)


@dataclass
class EmittedDesign:
    """The generated sources (file name -> text) and the weights file contents."""

    files: dict[str, str]
    blob: WeightBlob
    traced: list[str] = field(default_factory=list)  # values the trace hook reports, in node order


class _Emitter:
    def __init__(self, qm: QuantizedModel, parallelism: int) -> None:
        self.qm = qm
        self.graph = qm.graphs["step"]
        self.const = qm.int_constants
        self.blob = WeightBlob()
        self.parallelism = parallelism
        self.states: list[tuple[str, str]] = []  # (C name, declaration) of each per-layer state array
        self.partitioned: dict[str, int] = {}  # buffer -> cyclic partition factor (inputs of the engine)

    # -- helpers ----------------------------------------------------------------------------------
    def width(self, value: str) -> int:
        return int(self.graph.values[value].shape[-1])

    def scalar(self, key: str) -> str:
        return f"{int(np.asarray(self.const[key]))}LL"

    def w64(self, key: str) -> str:
        """Pointer expression to an int64 constant array (per-channel m, shift, bias, LUT...)."""
        return f"w64 + {self.blob.add(key, np.asarray(self.const[key]), 'int64')}"

    def w8(self, name: str) -> str:
        return f"w8 + {self.blob.add(name, self.qm.qweights[name], 'int8')}"

    def bias(self, node: Node) -> str:
        key = f"{node.name}/bias"
        return "nullptr" if np.asarray(self.const[key]).ndim == 0 else self.w64(key)

    # -- one emitter per op -----------------------------------------------------------------------
    def _emit_embed(self, node: Node) -> list[str]:
        out, vocab = node.outputs[0], self.qm.spec.vocab_size
        return [f"edgec::embed<{vocab}, {self.width(out)}>(token, {self.w8(node.weights['weight'])}, "
                f"{self.w64(node.name + '/rows/0')}, {self.w64(node.name + '/rows/1')}, "
                f"{self.qm.bits[out]}, {buffer_name(out)});"]

    def _emit_rmsnorm(self, node: Node) -> list[str]:
        n = node.name
        return [f"edgec::rmsnorm<{self.width(node.inputs[0])}>({buffer_name(node.inputs[0])}, "
                f"{self.scalar(n + '/eps')}, {self.scalar(n + '/inv/0')}, {self.scalar(n + '/inv/1')}, "
                f"{buffer_name(node.outputs[0])});"]

    def _emit_linear(self, node: Node) -> list[str]:
        x, out = node.inputs[0], node.outputs[0]
        bits = self.qm.bits.get(out, 0)
        m, shift = (self.w64(node.name + "/out/0"), self.w64(node.name + "/out/1")) if bits else ("nullptr",) * 2
        bias = self.bias(node)
        self.partitioned[buffer_name(x)] = min(self.parallelism, self.width(x))
        return [f"edgec::linear<{self.width(x)}, {self.width(out)}, {self.parallelism}, "
                f"{'false' if bias == 'nullptr' else 'true'}, {bits}>({buffer_name(x)}, "
                f"{self.w8(node.weights['weight'])}, {bias}, {m}, {shift}, {buffer_name(out)});"]

    def _emit_split(self, node: Node) -> list[str]:
        lines, start = [], 0
        for out, size in zip(node.outputs, node.attrs["sizes"], strict=True):
            lines.append(f"edgec::slice<{size}>({buffer_name(node.inputs[0])} + {start}, {buffer_name(out)});")
            start += size
        return lines

    def _emit_conv1d_step(self, node: Node) -> list[str]:
        x, state = node.inputs
        e, k = self.width(x), self.qm.spec.conv_kernel
        if k < 2:
            raise UnsupportedOpError(f"the fpga target needs conv_kernel >= 2 (node {node.name} has {k})")
        self.states.append((c_name(state), f"static int8_t {c_name(state)}[{e}][{k - 1}];"))
        bias = self.bias(node)
        return [f"edgec::conv1d_step<{e}, {k}, {'false' if bias == 'nullptr' else 'true'}>({buffer_name(x)}, "
                f"{c_name(state)}, {self.w8(node.weights['weight'])}, {bias}, {self.w64(node.name + '/out/0')}, "
                f"{self.w64(node.name + '/out/1')}, {self.qm.bits[node.outputs[0]]}, {buffer_name(node.outputs[0])});"]

    def _emit_lut(self, node: Node) -> list[str]:
        return [f"edgec::lut<{self.width(node.inputs[0])}>({buffer_name(node.inputs[0])}, "
                f"{self.w64(node.name + '/lut')}, {buffer_name(node.outputs[0])});"]

    _emit_silu = _emit_softplus = _emit_lut

    def _emit_scan_step(self, node: Node) -> list[str]:
        u, dt, b, c, h = node.inputs
        e, n = self.width(u), self.qm.spec.state_size
        k = node.name + "/scan/"
        self.states.append((c_name(h), f"static int32_t {c_name(h)}[{e}][{n}];"))
        return [f"edgec::scan_step<{e}, {n}>({buffer_name(u)}, {buffer_name(dt)}, {buffer_name(b)}, "
                f"{buffer_name(c)}, {c_name(h)}, "
                f"{self.w64(k + 'a_q')}, {self.scalar(k + 'a_frac')}, {self.scalar(k + 'bu_m')}, "
                f"{self.scalar(k + 'bu_shift')}, {self.scalar(k + 'y_m')}, {self.scalar(k + 'y_shift')}, "
                f"{self.w64(k + 'd_m')}, {self.w64(k + 'd_shift')}, {self.scalar(k + 'y_bits')}, "
                f"{buffer_name(node.outputs[0])});"]

    def _emit_mul(self, node: Node) -> list[str]:
        out = node.outputs[0]
        requant = out in self.qm.scales
        m = self.scalar(node.name + "/out/0") if requant else "0"
        shift = self.scalar(node.name + "/out/1") if requant else "0"
        return [f"edgec::mul<{self.width(out)}>({buffer_name(node.inputs[0])}, {buffer_name(node.inputs[1])}, {m}, "
                f"{shift}, {self.qm.bits[out] if requant else 0}, {buffer_name(out)});"]

    def _emit_hadamard(self, node: Node) -> list[str]:
        plan = node.attrs["plan"]
        hk = self.blob.add(f"hadamard_base_{plan.k}", hadamard_base(plan.k).astype(np.int64), "int64")
        return [f"edgec::hadamard<{plan.dim}, {plan.k}, {plan.m}>({buffer_name(node.inputs[0])}, w64 + {hk}, "
                f"{self.scalar(node.name + '/out/0')}, {self.scalar(node.name + '/out/1')}, "
                f"{buffer_name(node.outputs[0])});"]

    def _emit_add(self, node: Node) -> list[str]:
        out = node.outputs[0]
        return [f"edgec::residual_add<{self.width(out)}>({buffer_name(node.inputs[0])}, "
                f"{buffer_name(node.inputs[1])}, {self.scalar(node.name + '/skip/0')}, "
                f"{self.scalar(node.name + '/skip/1')}, {self.qm.bits[out]}, {buffer_name(out)});"]

    # -- the whole top ----------------------------------------------------------------------------
    def emitter(self, node: Node) -> Callable[[Node], list[str]]:
        fn = getattr(self, f"_emit_{node.op.value}", None)
        if fn is None:
            raise UnsupportedOpError(f"the fpga target has no kernel for op {node.op.value!r} (node {node.name})")
        return fn

    def top(self) -> tuple[str, list[str]]:
        body: list[str] = []
        buffers: dict[str, str] = {}
        traced: list[str] = []
        state_outs = {o for n in self.graph.nodes if n.op in (Op.CONV1D_STEP, Op.SCAN_STEP) for o in n.outputs[1:]}
        for node in self.graph.nodes:
            lines = self.emitter(node)(node)
            for out in node.outputs:
                if out in state_outs:
                    continue
                buffers[buffer_name(out)] = f"static int64_t {buffer_name(out)}[{self.width(out)}];"
                traced.append(out)
            body.append(f"    // {node.format(self.graph.values)}")
            body += [f"    {line}" for line in lines]
            body += [f'    EDGEC_TRACE("{o}", {buffer_name(o)}, {self.width(o)});' for o in node.outputs
                     if o not in state_outs]
        resets = [f"        edgec::clear_state(&{name}[0][0], sizeof({name}));" for name, _ in self.states]
        partitions = [f"#pragma HLS ARRAY_PARTITION variable = {b} cyclic factor = {f}"
                      for b, f in sorted(self.partitioned.items()) if f > 1]
        vocab = self.qm.spec.vocab_size
        n8, n64 = self.blob.sizes
        src = "\n".join([
            "// Generated by edgec: one decode step of the quantized model (int profile).",
            '#include "edgec_top.h"',
            '#include "edgec_kernels.h"',
            "",
            "#ifndef __SYNTHESIS__",
            "edgec_trace_fn edgec_trace_hook = 0;",
            "#define EDGEC_TRACE(name, buf, n) do { if (edgec_trace_hook) edgec_trace_hook(name, buf, n); } while (0)",
            "#else",
            "#define EDGEC_TRACE(name, buf, n)",
            "#endif",
            "",
            *(decl for _, decl in self.states),
            *buffers.values(),
            "",
            _signature(n8, n64, vocab) + " {",
            "#pragma HLS INTERFACE m_axi port = w8 offset = slave bundle = gmem0",
            "#pragma HLS INTERFACE m_axi port = w64 offset = slave bundle = gmem1",
            "#pragma HLS INTERFACE s_axilite port = token",
            "#pragma HLS INTERFACE s_axilite port = reset",
            "#pragma HLS INTERFACE m_axi port = logits offset = slave bundle = gmem2",
            "#pragma HLS INTERFACE s_axilite port = return",
            *partitions,
            f"    if (token < 0 || token >= {vocab}) return;  // never index DRAM with an invalid token",
            "    if (reset) {",
            *resets,
            "    }",
            *body,
            f"    for (int i = 0; i < {vocab}; i++) logits[i] = {c_name('logits')}[i];",
            "}",
            "",
        ])
        return src, traced


def _signature(n8: int, n64: int, vocab: int) -> str:
    return (f"void edgec_step(int64_t token, int reset, const int8_t w8[{max(n8, 1)}], "
            f"const int64_t w64[{max(n64, 1)}], int64_t logits[{vocab}])")


def emit_design(qm: QuantizedModel, parallelism: int = 8) -> EmittedDesign:
    """Generate the top function, its header and the weights file contents for ``qm``."""
    em = _Emitter(qm, parallelism)
    for node in em.graph.nodes:  # every op must have a kernel before anything is generated
        em.emitter(node)
    top, traced = em.top()
    n8, n64 = em.blob.sizes
    header = "\n".join([
        "// Generated by edgec: interface of the decode-step top function.",
        "#ifndef EDGEC_TOP_H",
        "#define EDGEC_TOP_H",
        "#include <stdint.h>",
        f"#define EDGEC_VOCAB {qm.spec.vocab_size}",
        f"#define EDGEC_W8_SIZE {n8}",
        f"#define EDGEC_W64_SIZE {n64}",
        "typedef void (*edgec_trace_fn)(const char *name, const int64_t *values, int n);",
        "#ifndef __SYNTHESIS__",
        "extern edgec_trace_fn edgec_trace_hook;  // C simulation only: called after every node",
        "#endif",
        _signature(n8, n64, qm.spec.vocab_size) + ";",
        "#endif",
        "",
    ])
    return EmittedDesign({"edgec_top.cpp": top, "edgec_top.h": header}, em.blob, traced)
