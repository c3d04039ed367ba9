"""JetPack releases and the TensorRT version each ships, with the ONNX limits the lint checks against.

Sources:

* ../shared/REFERENCES.md ("TensorRT and Jetson Orin"): JetPack 5.x -> TensorRT 8.5 (opset <= 17, no
  LayerNormalization, TopK K constant); JetPack 6.0 -> 8.6 (opset <= 17); JetPack 6.1/6.2 -> 10.3
  (opset <= 20; TopK sorted=1, K < 3840); native cumulative layer only from TensorRT 10.8.
* onnx-tensorrt ``docs/operators.md`` per release: "TensorRT 8.5 supports operators up to Opset 17",
  "TensorRT 8.6 supports operators up to Opset 17", "TensorRT 10.0 supports operators in the inclusive range
  of opset 9 to opset 20"; the TensorRT <= 8.5 table requires TopK's ``K`` to be an initializer.
* TensorRT operator index: the 8.5.3 list has no Normalization layer, the 10.x lists have one (hence
  LayerNormalization from 8.6). ``ITopKLayer::setK``: "Currently only values up to 3840 are supported";
  we keep the stricter K < 3840 from REFERENCES.md for every version.
* ``trtexec --stronglyTyped`` arrived with strongly typed networks in TensorRT 10 (not in 8.x).
"""

from __future__ import annotations

from dataclasses import dataclass

from edgec.errors import EdgecError

__all__ = ["JETPACK", "TRT_8_5", "TRT_8_6", "TRT_10_3", "TensorRTVersion", "UnknownJetPackError", "resolve_jetpack"]


class UnknownJetPackError(EdgecError):
    """``--jetpack`` names no JetPack release edgec knows."""


@dataclass(frozen=True)
class TensorRTVersion:
    """One TensorRT release as the ONNX parser sees it.

    ``topk_max_k`` is the largest constant K TopK accepts; ``native_cumsum`` says CumSum maps to a native
    cumulative layer instead of a sequential ILoop.
    """

    name: str
    max_opset: int
    supports_layernorm: bool
    topk_max_k: int
    native_cumsum: bool
    strongly_typed_flag_available: bool

    @property
    def major(self) -> int:
        return int(self.name.split(".")[0])

    @property
    def needs_fp32_scales(self) -> bool:
        """TensorRT 8.x reads only float32 Q/DQ scales."""
        return self.major < 10

    def __str__(self) -> str:
        return f"TensorRT {self.name}"


TRT_8_5 = TensorRTVersion("8.5", max_opset=17, supports_layernorm=False, topk_max_k=3839, native_cumsum=False,
                          strongly_typed_flag_available=False)
TRT_8_6 = TensorRTVersion("8.6", max_opset=17, supports_layernorm=True, topk_max_k=3839, native_cumsum=False,
                          strongly_typed_flag_available=False)
TRT_10_3 = TensorRTVersion("10.3", max_opset=20, supports_layernorm=True, topk_max_k=3839, native_cumsum=False,
                           strongly_typed_flag_available=True)

JETPACK: dict[str, TensorRTVersion] = {"5": TRT_8_5, "6.0": TRT_8_6, "6.1": TRT_10_3, "6.2": TRT_10_3}


def resolve_jetpack(version: str) -> TensorRTVersion:
    """The TensorRT version a JetPack release ships; raises ``UnknownJetPackError`` for any other string."""
    key = str(version).strip()
    if key in JETPACK:
        return JETPACK[key]
    known = ", ".join(JETPACK)
    raise UnknownJetPackError(f"unknown JetPack version {version!r}; known versions: {known}")
