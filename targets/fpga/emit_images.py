"""Emit the HLS top function of an image model: one image and one task per call, every task in one design.

The task graphs share most nodes (equal names, equal nodes); a task's own nodes (its routers' gates, its head)
run under ``if (task == i)``. ``merge_task_graphs`` interleaves them in an order valid for every task (each own
node right after the node its graph runs before it), so one static schedule serves all tasks and the weights of
every task stay in DRAM. Values are [tokens, width] arrays in int64 buffers shared by lifetime (buffers.py);
each op calls a kernel of ``hls/include/edgec_vit_kernels.h`` (or edgec_kernels.h for the row-wise linear
layers, GELU tables and residual adds) with the constants the int simulator lowered (``int_constants``).
Experts run expert by expert (edgec::moe): each active expert's weights are read once per image.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from edgec.ir import Graph, Node, Op, Value, entry_graphs, value_elements, value_rows
from edgec.passes.quantize import QuantizedModel
from edgec.targets.fpga.blob import WeightBlob
from edgec.targets.fpga.buffers import BUFFER_CTYPE, assign_buffers
from edgec.targets.fpga.emit import EmittedDesign, _Emitter, top_preamble

__all__ = ["emit_image_design", "merge_task_graphs"]


def merge_task_graphs(graphs: Mapping[str, Graph]) -> tuple[Graph, dict[str, tuple[int, ...]]]:
    """One schedule for every entry graph, and for each node the indices of the tasks that run it (all tasks:
    an empty tuple). Values keep their largest size over the tasks (a head's logits differ in width)."""
    keys = list(graphs)
    order: list[Node] = list(graphs[keys[0]].nodes)
    values: dict[str, Value] = dict(graphs[keys[0]].values)
    owners: dict[str, set[int]] = {n.name: {0} for n in order}
    for t, key in enumerate(keys[1:], start=1):
        previous = None
        for node in graphs[key].nodes:
            if node.name not in owners:
                at = 0 if previous is None else next(i for i, n in enumerate(order) if n.name == previous) + 1
                order.insert(at, node)
                owners[node.name] = set()
            owners[node.name].add(t)
            previous = node.name
        for name, value in graphs[key].values.items():
            if name not in values or _size(value) > _size(values[name]):  # a wider head's logits
                values[name] = value
    first = graphs[keys[0]]
    tasks = {name: tuple(sorted(o)) if len(o) < len(keys) else () for name, o in owners.items()}
    return Graph("tasks", order, values, list(first.inputs), list(first.outputs)), tasks


def _size(value: Value) -> int:
    return int(np.prod([int(d) for d in value.shape[1:]]))


class _ImageEmitter(_Emitter):
    def __init__(self, qm: QuantizedModel, parallelism: int) -> None:
        self.qm = qm
        self.keys = list(entry_graphs(qm.graphs))
        self.graph, self.tasks = merge_task_graphs({k: qm.graphs[k] for k in self.keys})
        self.const = qm.int_constants
        self.blob = WeightBlob()
        self.parallelism = parallelism
        self.dram_states = frozenset()
        # a TOPK ranks on its router's logits, the input of the softmax before it: alive until the TOPK runs
        order = {n.name: i for i, n in enumerate(self.graph.nodes)}
        self.buffers = assign_buffers(self.graph, reads={order[n.name]: (self.graph.producer(n.inputs[0]).inputs[0],)
                                                         for n in self.graph.nodes if n.op is Op.TOPK})
        self.declarations, self.resets, self.states, self.state_words, self.partitioned = [], [], [], 0, {}

    def rows(self, value: str) -> int:
        return value_rows(self.graph, value)

    def size(self, value: str) -> int:
        return value_elements(self.graph, value)

    def _bits(self, value: str) -> int:
        return int(self.qm.bits.get(value, 0))

    # -- one emitter per op -----------------------------------------------------------------------
    def _emit_normalize_image(self, node: Node) -> list[str]:
        out = node.outputs[0]
        return [f"for (int i = 0; i < {self.size(out)}; i++) {self.buf(out)}[i] = image[i] - 128;  // pixel - 128"]

    def _emit_patch_embed(self, node: Node) -> list[str]:
        (h, w, c), p, out = self.graph.values[node.inputs[0]].shape[1:], node.attrs["patch"], node.outputs[0]
        return [f"edgec::patch_embed<{h}, {w}, {c}, {p}, {self.width(out)}, {self._has_bias(node)}>("
                f"{self.buf(node.inputs[0])}, {self.w8(node.weights['weight'])}, {self.bias(node)}, "
                f"{self.w64(node.name + '/out/0')}, {self.w64(node.name + '/out/1')}, {self._bits(out)}, "
                f"{self.buf(out)});"]

    def _emit_cls_pos(self, node: Node) -> list[str]:
        out = node.outputs[0]
        return [f"edgec::cls_pos<{self.rows(out)}, {self.width(out)}>({self.buf(node.inputs[0])}, "
                f"{self.w64(node.name + '/table')}, {self._bits(out)}, {self.buf(out)});"]

    def _emit_layernorm(self, node: Node) -> list[str]:
        x, out, k = node.inputs[0], node.outputs[0], node.name + "/ln/"
        affine = "true" if np.asarray(self.const[k + "m"]).size > 1 else "false"
        return [f"edgec::layernorm_rows<{self.rows(x)}, {self.width(x)}, {affine}>({self.buf(x)}, "
                f"{self.scalar(k + 'eps')}, {self.w64(k + 'm')}, {self.w64(k + 'shift')}, {self.w64(k + 'bias')}, "
                f"{self.scalar(k + 'out_bits')}, {self.buf(out)});"]

    def _emit_linear(self, node: Node) -> list[str]:
        """Every token through edgec::linear_tokens (each weight row read once per image); a pooled value
        (one row: the heads) through edgec::linear."""
        rows = self.rows(node.inputs[0])
        call = super()._emit_linear(node)[0]
        return [call if rows == 1 else call.replace("edgec::linear<", f"edgec::linear_tokens<{rows}, ", 1)]

    def _emit_split(self, node: Node) -> list[str]:
        x, rows = node.inputs[0], self.rows(node.inputs[0])
        lines, start = [], 0
        for out, size in zip(node.outputs, node.attrs["sizes"], strict=True):
            lines.append(f"for (int t = 0; t < {rows}; t++) edgec::slice<{size}>({self.buf(x)} + t * {self.width(x)} "
                         f"+ {start}, {self.buf(out)} + t * {size});")
            start += size
        return lines

    def _attention_sizes(self, node: Node, v: str) -> str:
        heads = int(node.attrs["heads"])
        return f"{self.rows(v)}, {heads}, {self.width(v) // heads}"

    def _emit_attn_scores(self, node: Node) -> list[str]:
        q, k = node.inputs
        return [f"edgec::attn_scores<{self._attention_sizes(node, k)}>({self.buf(q)}, {self.buf(k)}, "
                f"{self.scalar(node.name + '/out/0')}, {self.scalar(node.name + '/out/1')}, "
                f"{self._bits(node.outputs[0])}, {self.buf(node.outputs[0])});"]

    def _emit_attn_context(self, node: Node) -> list[str]:
        p, v = node.inputs
        return [f"edgec::attn_context<{self._attention_sizes(node, v)}>({self.buf(p)}, {self.buf(v)}, "
                f"{self.scalar(node.name + '/out/0')}, {self.scalar(node.name + '/out/1')}, "
                f"{self._bits(node.outputs[0])}, {self.buf(node.outputs[0])});"]

    def _emit_softmax(self, node: Node) -> list[str]:
        x, out = node.inputs[0], node.outputs[0]
        n = self.width(x)
        rows = self.size(x) // n
        if node.name + "/exp_table/0" in self.const:
            return [f"edgec::softmax_table_rows<{rows}, {n}>({self.buf(x)}, {self.w64(node.name + '/exp_table/0')}, "
                    f"{self.scalar(node.name + '/exp_table/1')}, {self._bits(out)}, {self.buf(out)});"]
        return [f"edgec::softmax_exp2_rows<{rows}, {n}>({self.buf(x)}, {self.scalar(node.name + '/exp2/0')}, "
                f"{self.scalar(node.name + '/exp2/1')}, {self._bits(out)}, {self.buf(out)});"]

    def _emit_gelu(self, node: Node) -> list[str]:
        return [f"edgec::lut<{self.size(node.inputs[0])}>({self.buf(node.inputs[0])}, {self.w64(node.name + '/lut')}, "
                f"{self.buf(node.outputs[0])});"]

    def _emit_route_logits(self, node: Node) -> list[str]:
        x, out = node.inputs[0], node.outputs[0]
        return [f"edgec::route_logits<{self.rows(x)}, {self.width(x)}, {self.width(out)}, {self._has_bias(node)}>("
                f"{self.buf(x)}, {self.w8(node.weights['weight'])}, {self.bias(node)}, "
                f"{self.w64(node.name + '/out/0')}, {self.w64(node.name + '/out/1')}, {self._bits(out)}, "
                f"{self.buf(out)});"]

    def _emit_topk(self, node: Node) -> list[str]:
        """Ranks on the router's logit codes (the softmax's input), returns the probabilities (op_topk)."""
        probs = node.inputs[0]
        softmax = self.graph.producer(probs)
        values, indices = node.outputs
        return [f"edgec::topk_rows<{self.rows(probs)}, {self.width(probs)}, {node.attrs['k']}>("
                f"{self.buf(softmax.inputs[0])}, {self.buf(probs)}, {self.buf(values)}, {self.buf(indices)});"]

    def _emit_moe(self, node: Node) -> list[str]:
        x, weights, indices = node.inputs
        k, w = node.name + "/", node.weights
        experts, hidden = int(node.attrs["experts"]), int(self.qm.qweights[w["fc1_weight"]].shape[1])
        return [f"edgec::moe<{self.rows(x)}, {self.width(x)}, {hidden}, {experts}, {self.width(indices)}>("
                f"{self.buf(x)}, {self.buf(weights)}, {self.buf(indices)}, {self.w8(w['fc1_weight'])}, "
                f"{self.w64(k + 'fc1_bias')}, {self.w64(k + 'fc1_out/0')}, {self.w64(k + 'fc1_out/1')}, "
                f"{self.w64(k + 'act_lut')}, {self.w8(w['fc2_weight'])}, {self.w64(k + 'fc2_bias')}, "
                f"{self.w64(k + 'out/0')}, {self.w64(k + 'out/1')}, {self._bits(node.outputs[0])}, "
                f"{self.buf(node.outputs[0])});"]

    def _emit_cls_pool(self, node: Node) -> list[str]:
        x = node.inputs[0]
        return [f"edgec::cls_pool<{self.rows(x)}, {self.width(x)}>({self.buf(x)}, {self.buf(node.outputs[0])});"]

    def _emit_add(self, node: Node) -> list[str]:
        out = node.outputs[0]
        return [f"edgec::residual_add<{self.size(out)}>({self.buf(node.inputs[0])}, {self.buf(node.inputs[1])}, "
                f"{self.scalar(node.name + '/skip/0')}, {self.scalar(node.name + '/skip/1')}, {self._bits(out)}, "
                f"{self.buf(out)});"]

    def _has_bias(self, node: Node) -> str:
        return "false" if self.bias(node) == "nullptr" else "true"

    # -- the whole top ----------------------------------------------------------------------------
    def top(self) -> tuple[str, list[str]]:
        body: list[str] = []
        traced: list[str] = []
        for node in self.graph.nodes:
            lines = self.emitter(node)(node)
            outs = [o for o in node.outputs if o in self.buffers]
            tasks = self.tasks[node.name]
            guard = " || ".join(f"task == {t}" for t in tasks)
            body.append(f"    // {node.format(self.graph.values)}" + (f"  [tasks {tasks}]" if tasks else ""))
            indent = "    "
            if tasks:
                body.append(f"    if ({guard}) {{")
                indent = "        "
            body += [f"{indent}{line}" for line in lines]
            if not tasks:  # a task's own node is traced by the shared node that reads its value
                traced += outs
                body += [f'    EDGEC_TRACE("{o}", {self.buf(o)}, {self.size(o)});' for o in outs]
            else:
                body.append("    }")
        buffers = sorted(dict(self.buffers.values()).items(), key=lambda b: int(b[0][3:]))
        n8, n64 = self.blob.sizes
        classes = [int(self.qm.graphs[k].values["logits"].shape[-1]) for k in self.keys]
        logits = self.buf(self.graph.outputs[0])
        src = "\n".join([
            *top_preamble("one image through one task of the quantized model (int profile)",
                          ["edgec_kernels.h", "edgec_vit_kernels.h"]),
            f"static const int edgec_classes[{len(classes)}] = {{{', '.join(map(str, classes))}}};",
            *(f"static {BUFFER_CTYPE} {name}[{size}];" for name, size in buffers),
            "",
            _image_signature(self.size("images"), n8, n64, max(classes)) + " {",
            "#pragma HLS INTERFACE m_axi port = image offset = slave bundle = gmem2",
            "#pragma HLS INTERFACE m_axi port = w8 offset = slave bundle = gmem0",
            "#pragma HLS INTERFACE m_axi port = w64 offset = slave bundle = gmem1",
            "#pragma HLS INTERFACE s_axilite port = task",
            "#pragma HLS INTERFACE m_axi port = logits offset = slave bundle = gmem2",
            "#pragma HLS INTERFACE s_axilite port = return",
            *self.partition_pragmas(),
            f"    if (task < 0 || task >= {len(classes)}) return;  // an unknown task leaves logits untouched",
            *body,
            f"    for (int i = 0; i < {max(classes)}; i++) logits[i] = i < edgec_classes[task] ? {logits}[i] : 0;",
            "}",
            "",
        ])
        return src, traced


def _image_signature(pixels: int, n8: int, n64: int, classes: int) -> str:
    return (f"void edgec_image(const int64_t image[{pixels}], int task, const int8_t w8[{max(n8, 1)}], "
            f"const int64_t w64[{max(n64, 1)}], int64_t logits[{classes}])")


def emit_image_design(qm: QuantizedModel, parallelism: int = 8) -> EmittedDesign:
    """The top function (``edgec_image``), its header and the weights file contents of an image model."""
    em = _ImageEmitter(qm, parallelism)
    for node in em.graph.nodes:  # every op must have a kernel before anything is generated
        em.emitter(node)
    top, traced = em.top()
    n8, n64 = em.blob.sizes
    tasks = [k.rsplit("/", 1)[-1] for k in em.keys]
    classes = max(int(qm.graphs[k].values["logits"].shape[-1]) for k in em.keys)
    header = "\n".join([
        "// Generated by edgec: interface of the image top function.",
        "#ifndef EDGEC_TOP_H",
        "#define EDGEC_TOP_H",
        "#include <stdint.h>",
        f"#define EDGEC_PIXELS {em.size('images')}  // H x W x C uint8 pixels, passed as int64",
        f"#define EDGEC_TASKS {len(tasks)}  // {', '.join(f'{i}: {t}' for i, t in enumerate(tasks))}",
        f"#define EDGEC_CLASSES {classes}  // logits per call (a task with fewer classes pads with 0)",
        f"#define EDGEC_W8_SIZE {n8}",
        f"#define EDGEC_W64_SIZE {n64}",
        "typedef void (*edgec_trace_fn)(const char *name, const int64_t *values, int n);",
        "#ifndef __SYNTHESIS__",
        "extern edgec_trace_fn edgec_trace_hook;  // C simulation only: called after every shared node",
        "#endif",
        _image_signature(em.size("images"), n8, n64, classes) + ";",
        "#endif",
        "",
    ])
    return EmittedDesign({"edgec_top.cpp": top, "edgec_top.h": header}, em.blob, traced)
