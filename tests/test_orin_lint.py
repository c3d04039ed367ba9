"""Orin target: JetPack table, the static TensorRT lint on hand-built ONNX graphs, and the trtexec recipe."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgec.errors import EdgecError
from edgec.targets.orin.jetpack import JETPACK, TRT_8_5, TRT_8_6, TRT_10_3, UnknownJetPackError, resolve_jetpack
from edgec.targets.orin.lint import RULES, Finding, LintError, format_findings, lint, require_clean
from edgec.targets.orin.recipe import RecipeError, build_recipe

VERSIONS = (TRT_8_5, TRT_8_6, TRT_10_3)
K, N = 8, 4


def _init(name: str, array: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(array, name)


def _model(nodes, inits, opset: int = 17, inputs=None, outputs=None) -> onnx.ModelProto:
    inputs = inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, K])]
    outputs = outputs or [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, N])]
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _qdq_matmul(act_scale=None, act_zp=None, w_axis: int = 1, opset: int = 17) -> onnx.ModelProto:
    """x -> Q -> DQ -> MatMul(., DQ(W_int8, per-channel)) -> y: TensorRT's clean explicit-quantization pattern."""
    inits = [
        _init("s_x", np.array(0.02, np.float32) if act_scale is None else act_scale),
        _init("zp_x", np.array(0, np.int8) if act_zp is None else act_zp),
        _init("w_q", np.arange(K * N, dtype=np.int8).reshape(K, N)),
        _init("s_w", np.full(N if w_axis in (1, -1) else K, 0.01, np.float32)),
        _init("zp_w", np.zeros(N if w_axis in (1, -1) else K, np.int8)),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s_x", "zp_x"], ["x_q"], name="q_x"),
        helper.make_node("DequantizeLinear", ["x_q", "s_x", "zp_x"], ["x_dq"], name="dq_x"),
        helper.make_node("DequantizeLinear", ["w_q", "s_w", "zp_w"], ["w"], name="dq_w", axis=w_axis),
        helper.make_node("MatMul", ["x_dq", "w"], ["y"], name="matmul"),
    ]
    return _model(nodes, inits, opset=opset)


def _errors(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity == "error"]


# ------------------------------------------------------------------------------------------------
# JetPack table
# ------------------------------------------------------------------------------------------------


def test_jetpack_table():
    assert resolve_jetpack("5") is TRT_8_5 and resolve_jetpack("6.0") is TRT_8_6
    assert resolve_jetpack("6.1") is resolve_jetpack("6.2") is TRT_10_3
    assert [(v.name, v.max_opset) for v in VERSIONS] == [("8.5", 17), ("8.6", 17), ("10.3", 20)]
    assert not TRT_8_5.supports_layernorm and TRT_8_6.supports_layernorm
    assert not any(v.native_cumsum for v in VERSIONS)
    assert [v.strongly_typed_flag_available for v in VERSIONS] == [False, False, True]
    assert set(JETPACK) == {"5", "6.0", "6.1", "6.2"}


def test_unknown_jetpack_message():
    with pytest.raises(UnknownJetPackError) as e:
        resolve_jetpack("4.6")
    assert isinstance(e.value, EdgecError)
    assert str(e.value) == "unknown JetPack version '4.6'; known versions: 5, 6.0, 6.1, 6.2"


# ------------------------------------------------------------------------------------------------
# Lint
# ------------------------------------------------------------------------------------------------


def test_rule_table_shape():
    ids = [r.id for r in RULES]
    assert len(ids) == len(set(ids))
    assert all(r.description and "\n" not in r.description and r.versions for r in RULES)


@pytest.mark.parametrize("trt", VERSIONS, ids=lambda v: v.name)
def test_clean_int8_matmul_passes(trt):
    model = _qdq_matmul()
    onnx.checker.check_model(model, full_check=True)
    findings = lint(model, trt)
    assert findings == []
    require_clean(findings)
    assert format_findings(findings) == "TensorRT lint: no findings"


def test_per_channel_activation_flagged():
    model = _qdq_matmul(act_scale=np.full(K, 0.02, np.float32), act_zp=np.zeros(K, np.int8))
    for node in model.graph.node[:2]:
        node.attribute.append(helper.make_attribute("axis", 1))
    for trt in VERSIONS:
        hits = [f for f in lint(model, trt) if f.rule == "qdq-per-channel-activation"]
        assert {f.node_name for f in hits} == {"q_x", "dq_x"}
        assert all(f.severity == "error" and "activation 'x" in f.message for f in hits)


def test_uint8_zero_point_flagged():
    model = _qdq_matmul(act_zp=np.array(128, np.uint8))
    hits = [f for f in lint(model, TRT_8_6) if f.rule == "qdq-zero-point-dtype"]
    assert [f.node_name for f in hits] == ["q_x", "dq_x"]
    assert "UINT8" in hits[0].message
    with pytest.raises(LintError, match=r"node 'q_x' \(QuantizeLinear\).*UINT8"):
        require_clean(lint(model, TRT_10_3))


def test_opset_19_flagged_for_8_6_not_10_3():
    model = _qdq_matmul(opset=19)
    hits = lint(model, TRT_8_6)
    assert [(f.rule, f.node_name) for f in hits] == [("opset-too-high", "<model>")]
    assert "opset 19" in hits[0].message and "17" in hits[0].message
    assert lint(model, TRT_10_3) == []


def test_loop_flagged_with_name():
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]), helper.make_node("Add", ["v_in", "v_in"], ["v_out"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_in", TensorProto.FLOAT, [1, K])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_out", TensorProto.FLOAT, [1, K])],
    )
    nodes = [helper.make_node("Loop", ["trip", "cond", "x"], ["y"], name="scan_loop", body=body)]
    inits = [_init("trip", np.array(4, np.int64)), _init("cond", np.array(True))]
    model = _model(nodes, inits, outputs=[helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, K])])
    onnx.checker.check_model(model, full_check=True)
    for trt in VERSIONS:
        (f,) = lint(model, trt)
        assert (f.rule, f.node_name, f.op_type, f.severity) == ("sequential-loop", "scan_loop", "Loop", "error")
    with pytest.raises(LintError) as e:
        require_clean(lint(model, TRT_10_3))
    assert str(e.value).startswith("TensorRT lint rejects node 'scan_loop' (Loop): Loop becomes a sequential")
    assert "\n" not in str(e.value)


def test_qdq_parameter_rules():
    # 2-input Q/DQ, float16 activation scale, non-zero zero point, weight axis 0 on a [K,N] MatMul weight.
    model = _qdq_matmul(act_zp=np.array(3, np.int8), w_axis=0)
    model.graph.initializer[0].CopyFrom(_init("s_x", np.array(0.02, np.float16)))
    del model.graph.node[1].input[2]
    by_rule = {}
    for f in lint(model, TRT_8_6):
        by_rule.setdefault(f.rule, []).append(f.node_name)
    assert by_rule["qdq-zero-point-missing"] == ["dq_x"]
    assert by_rule["qdq-zero-point-nonzero"] == ["q_x"]
    assert by_rule["qdq-scale-dtype"] == ["q_x", "dq_x"]
    assert by_rule["qdq-weight-axis"] == ["dq_w"]
    on_10 = {f.rule for f in lint(model, TRT_10_3)}
    assert "qdq-scale-dtype" not in on_10  # fp16 scales are fine from TensorRT 10


def test_weight_axis_through_q_dq_and_gemm():
    # Float weight -> Q -> DQ -> Gemm(transB=1): per-channel axis must be 0; axis 1 is flagged on both Q and DQ.
    w = np.ones((N, K), np.float32)
    inits = [_init("w", w), _init("s_w", np.full(K, 0.01, np.float32)), _init("zp_w", np.zeros(K, np.int8))]
    nodes = [
        helper.make_node("QuantizeLinear", ["w", "s_w", "zp_w"], ["w_q"], name="q_w", axis=1),
        helper.make_node("DequantizeLinear", ["w_q", "s_w", "zp_w"], ["w_dq"], name="dq_w", axis=1),
        helper.make_node("Gemm", ["x", "w_dq"], ["y"], name="gemm", transB=1),
    ]
    hits = [f for f in lint(_model(nodes, inits), TRT_10_3) if f.rule == "qdq-weight-axis"]
    assert [f.node_name for f in hits] == ["q_w", "dq_w"]
    assert "transB=1" in hits[0].message
    for node in nodes[:2]:
        node.attribute[0].i = 0
    inits[1:] = [_init("s_w", np.full(N, 0.01, np.float32)), _init("zp_w", np.zeros(N, np.int8))]
    assert lint(_model(nodes, inits), TRT_10_3) == []


def test_nonconstant_scale_layernorm_topk_cumsum():
    inits = [_init("zp", np.array(0, np.int8)), _init("k", np.array([5000], np.int64)),
             _init("ax", np.array(1, np.int64)), _init("g", np.ones(K, np.float32))]
    nodes = [
        helper.make_node("ReduceMax", ["x"], ["s"], name="amax", keepdims=0),
        helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["xq"], name="q_dyn"),
        helper.make_node("LayerNormalization", ["x", "g"], ["ln"], name="ln"),
        helper.make_node("TopK", ["ln", "k"], ["y", "idx"], name="topk", sorted=0),
        helper.make_node("CumSum", ["x", "ax"], ["cs"], name="cumsum"),
    ]
    model = _model(nodes, inits)
    got = {(f.rule, f.node_name) for f in lint(model, TRT_8_5)}
    assert {("qdq-nonconstant-params", "q_dyn"), ("layernorm-unsupported", "ln"), ("topk-k", "topk"),
            ("cumsum", "cumsum")} <= got
    got_10 = {(f.rule, f.node_name) for f in lint(model, TRT_10_3)}
    assert ("layernorm-unsupported", "ln") not in got_10 and ("topk-sorted", "topk") in got_10


def test_unsupported_and_custom_ops():
    nodes = [helper.make_node("NonZero", ["x"], ["nz"], name="nz"),
             helper.make_node("Einsum", ["x", "x"], ["e"], name="ein", equation="ij,ij->i"),
             helper.make_node("SelectiveScan", ["x"], ["y"], name="ssm", domain="edgec")]
    got = [(f.rule, f.node_name) for f in lint(_model(nodes, []), TRT_10_3)]
    assert got == [("unsupported-op", "ein"), ("unsupported-op", "ssm"), ("data-dependent-shape", "nz")]


def _exp_after(nodes, inits, pinned: tuple[str, ...] = ()) -> onnx.ModelProto:
    model = _model([*nodes, helper.make_node("Exp", [nodes[-1].output[0]], ["y"], name="exp")], inits,
                   outputs=[helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, K])])
    if pinned:
        helper.set_model_props(model, {"edgec.fp32_layers": ",".join(pinned)})
    return model


def test_exp_that_may_overflow_fp16_is_flagged_unless_bounded_or_pinned():
    def hits(model):
        return [(f.rule, f.node_name, f.severity) for f in lint(model, TRT_8_6) if f.rule == "fp16-exp-overflow"]

    unbounded = _exp_after([helper.make_node("Identity", ["x"], ["x1"], name="id")], [])
    assert hits(unbounded) == [("fp16-exp-overflow", "exp", "error")]
    assert "unbounded" in lint(unbounded, TRT_10_3)[0].message
    # -softplus(-x) <= 0 (log sigmoid): exp of it is at most 1
    logsig = [helper.make_node("Neg", ["x"], ["nx"], name="neg"),
              helper.make_node("Softplus", ["nx"], ["sp"], name="sp"),
              helper.make_node("Neg", ["sp"], ["ls"], name="logsig")]
    assert hits(_exp_after(logsig, [])) == []
    for scale, flagged in ((0.1, True), (0.05, False)):  # a dequantized activation reaches 127 * scale
        inits = [_init("s", np.array(scale, np.float32)), _init("z", np.array(0, np.int8))]
        qdq = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"], name="q"),
               helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"], name="dq")]
        assert bool(hits(_exp_after(qdq, inits))) is flagged, scale
    assert hits(_exp_after([helper.make_node("Identity", ["x"], ["x1"], name="id")], [], ("exp",))) == []
    stale = _exp_after([helper.make_node("Identity", ["x"], ["x1"], name="id")], [], ("exp", "gone"))
    assert hits(stale) == [("fp16-exp-overflow", "<model>", "warning")]


def test_axes_computed_in_the_graph_are_flagged():
    nodes = [helper.make_node("Shape", ["x"], ["shape"], name="shape"),
             helper.make_node("Unsqueeze", ["x", "shape"], ["x3"], name="unsq"),
             helper.make_node("ReduceSum", ["x3", "shape"], ["y"], name="rsum", keepdims=0)]
    got = [(f.rule, f.node_name) for f in lint(_model(nodes, []), TRT_8_5) if f.rule == "constant-operand"]
    assert got == [("constant-operand", "unsq"), ("constant-operand", "rsum")]
    nodes[1:] = [helper.make_node("Unsqueeze", ["x", "ax"], ["x3"], name="unsq")]
    assert not [f for f in lint(_model(nodes, [_init("ax", np.array([0], np.int64))]), TRT_8_5)
                if f.rule == "constant-operand"]


def test_format_findings_and_require_clean():
    findings = [Finding("conditional", "if0", "If", "a warning", "warning"),
                Finding("opset-too-high", "<model>", "", "model opset 19 is above 17", "error"),
                Finding("sequential-loop", "l", "Loop", "second", "error")]
    text = format_findings(findings)
    assert text.splitlines()[0] == "TensorRT lint: 2 error(s), 1 warning(s)"
    assert text.splitlines()[1].split()[:2] == ["error", "opset-too-high"]
    with pytest.raises(LintError) as e:
        require_clean(findings)
    assert str(e.value) == ("TensorRT lint rejects the model: model opset 19 is above 17 [opset-too-high] "
                            "(+1 more error(s))")
    require_clean(findings[:1])  # warnings only


# ------------------------------------------------------------------------------------------------
# Recipe
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("trt", VERSIONS, ids=lambda v: v.name)
def test_recipe_flags(trt):
    shapes = {"tokens": (1,), "conv_state": (1, 64, 3)}
    script, data = build_recipe(trt, "step.onnx", "step.engine", shapes)
    assert script.startswith("#!/usr/bin/env bash\n") and "set -euo pipefail" in script
    for flag in ("--onnx=step.onnx", "--saveEngine=step.engine", "--int8", "--fp16",
                 "--shapes=tokens:1,conv_state:1x64x3", "--exportLayerInfo=layers.json",
                 "--profilingVerbosity=detailed", "--memPoolSize=workspace:1024"):
        assert flag in script and flag in data["flags"]
    assert ("--stronglyTyped" in script) == (trt is TRT_10_3)
    assert "--stronglyTyped" not in data["flags"]
    assert data["version"] == trt.name and data["shapes"] == {"tokens": [1], "conv_state": [1, 64, 3]}
    assert build_recipe(trt, "step.onnx", "step.engine", shapes) == (script, data)  # deterministic


def test_recipe_keeps_fp32_layers_in_fp32():
    shapes = {"tokens": (1,)}
    script, data = build_recipe(TRT_8_5, "step.onnx", "step.engine", shapes, fp32_layers=["b0.h.expnegm", "b0.m_out"])
    spec = "b0.h.expnegm:fp32,b0.m_out:fp32"
    for flag in ("--precisionConstraints=obey", f"--layerPrecisions={spec}", f"--layerOutputTypes={spec}"):
        assert flag in data["flags"] and flag in script
    assert data["fp32_layers"] == ["b0.h.expnegm", "b0.m_out"]
    assert "--precisionConstraints" not in "".join(build_recipe(TRT_8_5, "a.onnx", "a.engine", shapes)[1]["flags"])
    with pytest.raises(RecipeError, match="layer name"):
        build_recipe(TRT_8_6, "a.onnx", "a.engine", shapes, fp32_layers=["a:b"])


def test_recipe_rejects_bad_shape():
    with pytest.raises(RecipeError, match="positive"):
        build_recipe(TRT_8_6, "a.onnx", "a.engine", {"tokens": (0,)})
    with pytest.raises(RecipeError, match="cannot be passed"):
        build_recipe(TRT_8_6, "a.onnx", "a.engine", {"a:b": (1,)})


def test_norm_square_that_may_overflow_fp16_is_flagged_unless_bounded_or_pinned():
    """x * x of a value above 255.9 overflows fp16 (a LayerNorm after attention); pinned or bounded, no finding."""
    def hits(nodes, inits, pinned=()):
        model = _model(nodes, inits, outputs=[helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, K])])
        if pinned:
            helper.set_model_props(model, {"edgec.fp32_layers": ",".join(pinned)})
        return [(f.rule, f.node_name, f.severity) for f in lint(model, TRT_8_5) if f.rule == "fp16-square-overflow"]

    square = [helper.make_node("Mul", ["x", "x"], ["y"], name="sq")]
    assert hits(square, []) == [("fp16-square-overflow", "sq", "error")]
    assert hits(square, [], ("sq",)) == []
    two = [_init("two", np.array(2.0, np.float32))]
    assert hits([helper.make_node("Pow", ["x", "two"], ["y"], name="pow")], two) == [
        ("fp16-square-overflow", "pow", "error")]
    for scale, flagged in ((2.0, True), (1.99, False)):  # a dequantized activation reaches 128 * scale (256 > 255.9)
        inits = [_init("s", np.array(scale, np.float32)), _init("z", np.array(0, np.int8))]
        qdq = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"], name="q"),
               helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"], name="dq"),
               helper.make_node("Mul", ["xd", "xd"], ["y"], name="sq")]
        assert bool(hits(qdq, inits)) is flagged, scale


def test_activation_matmul_with_one_int8_side_is_a_warning():
    inits = [_init("s", np.array(0.1, np.float32)), _init("z", np.array(0, np.int8))]
    q = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"], name="q"),
         helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"], name="dq"),
         helper.make_node("Transpose", ["x"], ["xt"], name="t", perm=[1, 0])]
    one_sided = _model([*q, helper.make_node("MatMul", ["xd", "xt"], ["y"], name="mm")], inits)
    got = [(f.rule, f.node_name, f.severity) for f in lint(one_sided, TRT_10_3) if f.rule == "qdq-one-sided-matmul"]
    assert got == [("qdq-one-sided-matmul", "mm", "warning")]
    # through the head split TensorRT propagates Q/DQ across (DQ -> Reshape -> Transpose -> MatMul)
    shape = _init("shape", np.array([K, 1], np.int64))
    split = [*q, helper.make_node("Reshape", ["xd", "shape"], ["xr"], name="r"),
             helper.make_node("Transpose", ["xr"], ["xrt"], name="t2", perm=[1, 0]),
             helper.make_node("MatMul", ["xrt", "xt"], ["y"], name="mm2")]
    got = [(f.rule, f.node_name) for f in lint(_model(split, [*inits, shape]), TRT_10_3)
           if f.rule == "qdq-one-sided-matmul"]
    assert got == [("qdq-one-sided-matmul", "mm2")]
    both = [*q, helper.make_node("QuantizeLinear", ["xt", "s", "z"], ["tq"], name="q2"),
            helper.make_node("DequantizeLinear", ["tq", "s", "z"], ["td"], name="dq2"),
            helper.make_node("MatMul", ["xd", "td"], ["y"], name="mm")]
    assert not [f for f in lint(_model(both, inits), TRT_10_3) if f.rule == "qdq-one-sided-matmul"]
