"""Emit the HLS top function of one decode step from a QuantizedModel's step graph.

Table-driven: one ``_emit_<op>`` per IR op, each returning C++ lines that call a kernel of
``hls/include/edgec_kernels.h`` with the node's buffers, offsets into the weights file and scalar
constants (taken from ``QuantizedModel.int_constants``, the same values the simulator runs with).
An op without an emitter raises UnsupportedOpError before any file is written.

Storage: activations live in int64 buffers (BUFFER_CTYPE) shared between values whose lifetimes do not overlap
(buffers.py). Recurrent state lives in static arrays on chip, except the arrays named in ``dram_states``
(chosen by the estimate's size rule), which live in a DRAM window of the top's ``state`` port: int32
words at fixed offsets, read and written back by their kernel once per token.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields

import numpy as np

from edgec.errors import UnsupportedOpError
from edgec.ir import Node
from edgec.numerics.hadamard import hadamard_base
from edgec.passes.quantize import QuantizedModel
from edgec.runtime.sim_int import MlstmConstants, norm_bits
from edgec.targets.fpga.blob import WeightBlob
from edgec.targets.fpga.buffers import BUFFER_CTYPE, assign_buffers, state_outputs, wide_value

__all__ = ["EmittedDesign", "emit_design"]

#: The scalar fields of an mLSTM cell, in the order of edgec::mlstm_constants (its knots go to the weights).
_CELL_FIELDS = tuple(f.name for f in fields(MlstmConstants) if f.name != "logf")


def c_name(value: str) -> str:
    """A C identifier for an IR value name."""
    return "v_" + re.sub(r"[^0-9A-Za-z_]", "_", value)


@dataclass
class EmittedDesign:
    """The generated sources (file name -> text), the weights file contents and where the state lives."""

    files: dict[str, str]
    blob: WeightBlob
    traced: list[str] = field(default_factory=list)  # values the trace hook reports, in node order
    states: list[str] = field(default_factory=list)  # one line per state array: name, type, shape, where
    state_words: int = 0  # int32 words of state in DRAM (the size of the top's state port)


class _Emitter:
    def __init__(self, qm: QuantizedModel, parallelism: int, dram_states: frozenset[str]) -> None:
        self.qm = qm
        self.graph = qm.graphs["step"]
        self.const = qm.int_constants
        self.blob = WeightBlob()
        self.parallelism = parallelism
        self.dram_states = dram_states
        self.buffers = assign_buffers(self.graph, state_outputs(self.graph))
        self.declarations: list[str] = []  # static state arrays on chip
        self.resets: list[str] = []  # one clear_state per state array
        self.states: list[str] = []
        self.state_words = 0
        self.partitioned: dict[str, int] = {}  # buffer -> cyclic partition factor (inputs of the engine)

    # -- helpers ----------------------------------------------------------------------------------
    def width(self, value: str) -> int:
        return int(self.graph.values[value].shape[-1])

    def buf(self, value: str) -> str:
        return self.buffers[value][0]

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

    def state(self, value: str, ctype: str, flat: bool = False) -> str:
        """Declare the state array of ``value`` (on chip, or a window of the DRAM port) and return its C expression;
        ``flat``: one dimension (the kernel indexes it), else the step graph's shape without the batch axis."""
        dims = self.state_dims(value)
        count = int(np.prod(dims))
        shape = f"{ctype} [{', '.join(map(str, dims))}]"
        if value in self.dram_states:
            if ctype != "int32_t" or not flat:
                raise UnsupportedOpError(f"state %{value} ({shape}) cannot live in DRAM: its kernel keeps it on chip")
            offset, self.state_words = self.state_words, self.state_words + count
            self.resets.append(f"edgec::clear_state(state + {offset}, {4 * count}UL);")
            self.states.append(f"{value}: {shape} in DRAM (state port, int32 offset {offset})")
            return f"state + {offset}"
        name = c_name(value)
        decl = (count,) if flat else dims
        self.declarations.append(f"static {ctype} {name}{''.join(f'[{d}]' for d in decl)};")
        self.resets.append(f"edgec::clear_state(&{name}{'[0]' * len(decl)}, sizeof({name}));")
        self.states.append(f"{value}: {shape} on chip")
        return name

    def partition_pragmas(self) -> list[str]:
        """Cyclic partitions of the engine's input buffers, so that P lanes read P elements per cycle."""
        return [f"#pragma HLS ARRAY_PARTITION variable = {b} cyclic factor = {f}"
                for b, f in sorted(self.partitioned.items()) if f > 1]

    def state_dims(self, value: str) -> tuple[int, ...]:
        return tuple(int(d) for d in self.graph.values[value].shape[1:])  # without the batch axis

    # -- one emitter per op -----------------------------------------------------------------------
    def _emit_embed(self, node: Node) -> list[str]:
        out, vocab = node.outputs[0], self.qm.spec.vocab_size
        return [f"edgec::embed<{vocab}, {self.width(out)}>(token, {self.w8(node.weights['weight'])}, "
                f"{self.w64(node.name + '/rows/0')}, {self.w64(node.name + '/rows/1')}, "
                f"{self.qm.bits[out]}, {self.buf(out)});"]

    def _emit_rmsnorm(self, node: Node) -> list[str]:
        n, src, out = node.name, node.inputs[0], node.outputs[0]
        d, groups, bits = self.width(src), int(node.attrs.get("groups", 1)), self.qm.bits[out]
        consts = f"{self.scalar(n + '/eps')}, {self.scalar(n + '/inv/0')}, {self.scalar(n + '/inv/1')}"
        wide = wide_value(self.qm.bits, src)  # a product given no format (op_rmsnorm's block floating point)
        if groups == 1 and not wide and bits == 8:
            return [f"edgec::rmsnorm<{d}>({self.buf(src)}, {consts}, {self.buf(out)});"]
        return [f"edgec::rmsnorm_groups<{d}, {groups}, {'true' if wide else 'false'}>({self.buf(src)}, {consts}, "
                f"{norm_bits(d // groups) if wide else 0}, {bits}, {self.buf(out)});"]

    def _emit_linear(self, node: Node) -> list[str]:
        x, out = node.inputs[0], node.outputs[0]
        bits = self.qm.bits.get(out, 0)
        m, shift = (self.w64(node.name + "/out/0"), self.w64(node.name + "/out/1")) if bits else ("nullptr",) * 2
        bias = self.bias(node)
        self.partitioned[self.buf(x)] = max(self.partitioned.get(self.buf(x), 1), min(self.parallelism, self.width(x)))
        return [f"edgec::linear<{self.width(x)}, {self.width(out)}, {self.parallelism}, "
                f"{'false' if bias == 'nullptr' else 'true'}, {bits}>({self.buf(x)}, "
                f"{self.w8(node.weights['weight'])}, {bias}, {m}, {shift}, {self.buf(out)});"]

    def _emit_split(self, node: Node) -> list[str]:
        lines, start = [], 0
        for out, size in zip(node.outputs, node.attrs["sizes"], strict=True):
            lines.append(f"edgec::slice<{size}>({self.buf(node.inputs[0])} + {start}, {self.buf(out)});")
            start += size
        return lines

    def _emit_conv1d_step(self, node: Node) -> list[str]:
        x, state = node.inputs
        e, taps = self.state_dims(state)
        if taps < 1:
            raise UnsupportedOpError(f"the fpga target needs conv_kernel >= 2 (node {node.name} has {taps + 1})")
        window = self.state(state, "int8_t")
        bias = self.bias(node)
        return [f"edgec::conv1d_step<{e}, {taps + 1}, {'false' if bias == 'nullptr' else 'true'}>({self.buf(x)}, "
                f"{window}, {self.w8(node.weights['weight'])}, {bias}, {self.w64(node.name + '/out/0')}, "
                f"{self.w64(node.name + '/out/1')}, {self.qm.bits[node.outputs[0]]}, {self.buf(node.outputs[0])});"]

    def _emit_lut(self, node: Node) -> list[str]:
        return [f"edgec::lut<{self.width(node.inputs[0])}>({self.buf(node.inputs[0])}, "
                f"{self.w64(node.name + '/lut')}, {self.buf(node.outputs[0])});"]

    _emit_silu = _emit_softplus = _emit_sigmoid = _emit_lut

    def _emit_softcap(self, node: Node) -> list[str]:
        x = node.inputs[0]
        knot_bits = (np.asarray(self.const[node.name + "/knots"]).size - 1).bit_length() - 1
        return [f"edgec::interp_lut<{self.width(x)}, {knot_bits}>({self.buf(x)}, {self.w64(node.name + '/knots')}, "
                f"{self.qm.bits[x]}, {self.buf(node.outputs[0])});"]

    def _emit_scan_step(self, node: Node) -> list[str]:
        u, dt, b, c, h = node.inputs
        e, n = self.state_dims(h)
        k = node.name + "/scan/"
        state = self.state(h, "int32_t")
        return [f"edgec::scan_step<{e}, {n}>({self.buf(u)}, {self.buf(dt)}, {self.buf(b)}, {self.buf(c)}, {state}, "
                f"{self.w64(k + 'a_q')}, {self.scalar(k + 'a_frac')}, {self.scalar(k + 'bu_m')}, "
                f"{self.scalar(k + 'bu_shift')}, {self.scalar(k + 'y_m')}, {self.scalar(k + 'y_shift')}, "
                f"{self.w64(k + 'd_m')}, {self.w64(k + 'd_shift')}, {self.scalar(k + 'y_bits')}, "
                f"{self.buf(node.outputs[0])});"]

    def _emit_ssd_step(self, node: Node) -> list[str]:
        x, dt, b, c, h = node.inputs
        heads, p, n = self.state_dims(h)
        groups = int(node.attrs["groups"])
        k = node.name + "/ssd/"
        state = self.state(h, "int32_t", flat=True)
        return [f"edgec::ssd_step<{heads}, {groups}, {p}, {n}>({self.buf(x)}, {self.buf(dt)}, {self.buf(b)}, "
                f"{self.buf(c)}, {state}, {self.w64(k + 'dt_q')}, {self.w64(k + 'decay')}, {self.w64(k + 'bu_m')}, "
                f"{self.w64(k + 'bu_shift')}, {self.scalar(k + 'y_m')}, {self.scalar(k + 'y_shift')}, "
                f"{self.w64(k + 'd_m')}, {self.w64(k + 'd_shift')}, {self.scalar(k + 'y_bits')}, "
                f"{self.buf(node.outputs[0])});"]

    def _emit_head_layernorm(self, node: Node) -> list[str]:
        x, heads = node.inputs[0], int(node.attrs["heads"])
        return [f"edgec::head_layernorm<{heads}, {self.width(x) // heads}>({self.buf(x)}, "
                f"{self.scalar(node.name + '/eps')}, {self.w64(node.name + '/inv/0')}, "
                f"{self.w64(node.name + '/inv/1')}, {self.qm.bits[node.outputs[0]]}, {self.buf(node.outputs[0])});"]

    def _emit_mlstm_step(self, node: Node) -> list[str]:
        q, k, v, i, f, c, n, m = node.inputs
        heads, dqk, dv = self.state_dims(c)
        key = node.name + "/cell/"
        knot_bits = (np.asarray(self.const[key + "logf"]).size - 1).bit_length() - 1
        consts = c_name(node.name) + "_cell"
        arrays = (*(self.buf(x) for x in (q, k, v, i, f)), *(self.state(s, "int32_t", flat=True) for s in (c, n, m)))
        return [f"static const edgec::mlstm_constants {consts} = "
                f"{{{', '.join(self.scalar(key + name) for name in _CELL_FIELDS)}}};",
                f"edgec::mlstm_step<{heads}, {dqk}, {dv}, {knot_bits}>({', '.join(arrays)}, {self.w64(key + 'logf')}, "
                f"{consts}, {self.buf(node.outputs[0])});"]

    def _emit_mul(self, node: Node) -> list[str]:
        out = node.outputs[0]
        requant = out in self.qm.scales
        m = self.scalar(node.name + "/out/0") if requant else "0"
        shift = self.scalar(node.name + "/out/1") if requant else "0"
        return [f"edgec::mul<{self.width(out)}>({self.buf(node.inputs[0])}, {self.buf(node.inputs[1])}, {m}, "
                f"{shift}, {self.qm.bits[out] if requant else 0}, {self.buf(out)});"]

    def _emit_hadamard(self, node: Node) -> list[str]:
        plan = node.attrs["plan"]
        hk = self.blob.add(f"hadamard_base_{plan.k}", hadamard_base(plan.k).astype(np.int64), "int64")
        return [f"edgec::hadamard<{plan.dim}, {plan.k}, {plan.m}>({self.buf(node.inputs[0])}, w64 + {hk}, "
                f"{self.scalar(node.name + '/out/0')}, {self.scalar(node.name + '/out/1')}, "
                f"{self.buf(node.outputs[0])});"]

    def _emit_add(self, node: Node) -> list[str]:
        out = node.outputs[0]
        return [f"edgec::residual_add<{self.width(out)}>({self.buf(node.inputs[0])}, "
                f"{self.buf(node.inputs[1])}, {self.scalar(node.name + '/skip/0')}, "
                f"{self.scalar(node.name + '/skip/1')}, {self.qm.bits[out]}, {self.buf(out)});"]

    # -- the whole top ----------------------------------------------------------------------------
    def emitter(self, node: Node) -> Callable[[Node], list[str]]:
        fn = getattr(self, f"_emit_{node.op.value}", None)
        if fn is None:
            raise UnsupportedOpError(f"the fpga target has no kernel for op {node.op.value!r} (node {node.name})")
        return fn

    def top(self) -> tuple[str, list[str]]:
        body: list[str] = []
        traced: list[str] = []
        for node in self.graph.nodes:
            lines = self.emitter(node)(node)
            outs = [o for o in node.outputs if o in self.buffers]
            traced += outs
            body.append(f"    // {node.format(self.graph.values)}")
            body += [f"    {line}" for line in lines]
            body += [f'    EDGEC_TRACE("{o}", {self.buf(o)}, {self.width(o)});' for o in outs]
        buffers = sorted(dict(self.buffers.values()).items(), key=lambda b: int(b[0][3:]))  # buf0, buf1, ...
        partitions = self.partition_pragmas()
        vocab = self.qm.spec.vocab_size
        n8, n64 = self.blob.sizes
        state_port = ["#pragma HLS INTERFACE m_axi port = state offset = slave bundle = gmem3"][:bool(self.state_words)]
        src = "\n".join([
            *top_preamble("one decode step of the quantized model (int profile)", ["edgec_kernels.h"]),
            *self.declarations,
            *(f"static {BUFFER_CTYPE} {name}[{width}];" for name, width in buffers),
            "",
            _signature(n8, n64, vocab, self.state_words) + " {",
            "#pragma HLS INTERFACE m_axi port = w8 offset = slave bundle = gmem0",
            "#pragma HLS INTERFACE m_axi port = w64 offset = slave bundle = gmem1",
            "#pragma HLS INTERFACE s_axilite port = token",
            "#pragma HLS INTERFACE s_axilite port = reset",
            "#pragma HLS INTERFACE m_axi port = logits offset = slave bundle = gmem2",
            *state_port,
            "#pragma HLS INTERFACE s_axilite port = return",
            *partitions,
            f"    if (token < 0 || token >= {vocab}) return;  // never index DRAM with an invalid token",
            "    if (reset) {",
            *(f"        {line}" for line in self.resets),
            "    }",
            *body,
            f"    for (int i = 0; i < {vocab}; i++) logits[i] = {self.buf(self.graph.outputs[0])}[i];",
            "}",
            "",
        ])
        return src, traced


def top_preamble(what: str, headers: list[str]) -> list[str]:
    """The first lines of a generated top: what it computes, its includes, the C-simulation trace hook."""
    return [f"// Generated by edgec: {what}.", '#include "edgec_top.h"', *(f'#include "{h}"' for h in headers), "",
            "#ifndef __SYNTHESIS__",
            "edgec_trace_fn edgec_trace_hook = 0;",
            "#define EDGEC_TRACE(name, buf, n) do { if (edgec_trace_hook) edgec_trace_hook(name, buf, n); } while (0)",
            "#else",
            "#define EDGEC_TRACE(name, buf, n)",
            "#endif",
            ""]


def _signature(n8: int, n64: int, vocab: int, state_words: int) -> str:
    state = f"int32_t state[{state_words}], " if state_words else ""
    return (f"void edgec_step(int64_t token, int reset, const int8_t w8[{max(n8, 1)}], "
            f"const int64_t w64[{max(n64, 1)}], {state}int64_t logits[{vocab}])")


def emit_design(qm: QuantizedModel, parallelism: int = 8, dram_states: frozenset[str] = frozenset()) -> EmittedDesign:
    """Generate the top function, its header and the weights file contents for ``qm``; the state arrays
    named in ``dram_states`` live in DRAM (the top's ``state`` port), the others on chip."""
    em = _Emitter(qm, parallelism, frozenset(dram_states))
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
        f"#define EDGEC_STATE_WORDS {em.state_words}  // int32 words of recurrent state in DRAM (0: all on chip)",
        "typedef void (*edgec_trace_fn)(const char *name, const int64_t *values, int n);",
        "#ifndef __SYNTHESIS__",
        "extern edgec_trace_fn edgec_trace_hook;  // C simulation only: called after every node",
        "#endif",
        _signature(n8, n64, qm.spec.vocab_size, em.state_words) + ";",
        "#endif",
        "",
    ])
    return EmittedDesign({"edgec_top.cpp": top, "edgec_top.h": header}, em.blob, traced, em.states, em.state_words)
