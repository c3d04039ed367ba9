"""The architecture of an xLSTM language model (mLSTM blocks, the xLSTM-7B design), from an HF config.json.

Field names follow transformers' xLSTMConfig. Derived widths follow its modules exactly:
q/k width int(hidden * qk_dim_factor), v width int(hidden * v_dim_factor), feed-forward width
hidden * ffn_proj_factor rounded up to a multiple of ffn_round_up_to_multiple_of. The output norm
is always applied and lm_head is never tied (whatever add_out_norm and tie_word_embeddings say),
as in transformers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from edgec.errors import CheckpointError, UnsupportedModelError
from edgec.frontends.config_fields import bool_field, float_field, int_field
from edgec.frontends.validate import short
from edgec.limits import MAX_LAYERS, MAX_VOCAB, MAX_WIDTH

__all__ = ["XlstmSpec"]

_ARCHS = {"xLSTMForCausalLM", "xLSTMModel"}
_WEIGHT_MODES = ("single", "fused")


@dataclass(frozen=True)
class XlstmSpec:
    """Sizes and switches of an xLSTM model (see the module docstring for the derived widths)."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_heads: int
    qk_dim: int
    v_dim: int
    ffn_dim: int
    norm_eps: float = 1e-6
    eps: float = 1e-6
    gate_soft_cap: float | None = 15.0
    output_logit_soft_cap: float | None = 30.0
    chunk_size: int = 64
    weight_mode: str = "single"

    family = "xlstm"

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], source: str = "config.json") -> XlstmSpec:
        """Validate a config dict (types, ranges, cross-field) before anything is sized from it."""
        if not isinstance(cfg, Mapping):
            raise CheckpointError(f"{source}: expected a JSON object, got {type(cfg).__name__}")
        _check_supported(cfg, source)
        hidden = _aliased(cfg, "hidden_size", "embedding_dim", source, MAX_WIDTH, "MAX_WIDTH")
        # transformers builds num_blocks blocks (num_hidden_layers only sizes its cache): a config written with
        # num_blocks alone keeps the default num_hidden_layers 32 beside it
        layers = _aliased(cfg, "num_blocks", "num_hidden_layers", source, MAX_LAYERS, "MAX_LAYERS")
        heads = int_field(cfg, "num_heads", source, MAX_WIDTH, "MAX_WIDTH", default=8)
        qk = int(hidden * float_field(cfg, "qk_dim_factor", source, 0.5, 0, 64))
        v = int(hidden * float_field(cfg, "v_dim_factor", source, 1.0, 0, 64))
        multiple = int_field(cfg, "ffn_round_up_to_multiple_of", source, MAX_WIDTH, "MAX_WIDTH", default=64)
        ffn_real = hidden * float_field(cfg, "ffn_proj_factor", source, 2.667, 0, 64)
        ffn = int((ffn_real + multiple - 1) // multiple * multiple)  # transformers' round_up_to_next_multiple_of
        for name, width in (("q/k width (hidden_size * qk_dim_factor)", qk), ("v width (hidden_size * v_dim_factor)",
                                                                             v)):
            if width < heads or width % heads:
                raise CheckpointError(f"{source}: the {name} {width} is not a positive multiple of num_heads "
                                      f"{heads}; fix qk_dim_factor, v_dim_factor or num_heads")
        if max(qk, v, ffn) > MAX_WIDTH:
            raise CheckpointError(f"{source}: a derived width ({max(qk, v, ffn)}) is over {MAX_WIDTH} (MAX_WIDTH); "
                                  "fix the *_factor fields")
        return cls(
            vocab_size=int_field(cfg, "vocab_size", source, MAX_VOCAB, "MAX_VOCAB"),
            hidden_size=hidden, num_hidden_layers=layers, num_heads=heads, qk_dim=qk, v_dim=v, ffn_dim=ffn,
            norm_eps=float_field(cfg, "norm_eps", source, 1e-6, 0, 1),
            eps=float_field(cfg, "eps", source, 1e-6, 0, 1),
            gate_soft_cap=float_field(cfg, "gate_soft_cap", source, None, 0, 1e6),
            output_logit_soft_cap=float_field(cfg, "output_logit_soft_cap", source, None, 0, 1e6),
            chunk_size=int_field(cfg, "chunk_size", source, 1 << 16, "2^16", default=64),
            weight_mode=cfg.get("weight_mode", "single"),
        )

    def to_config(self) -> dict[str, Any]:
        """A transformers-compatible config.json dict (the factors restate the stored widths)."""
        d = self.hidden_size
        cfg: dict[str, Any] = {k: v for k, v in asdict(self).items() if k not in ("qk_dim", "v_dim", "ffn_dim")}
        cfg.update(model_type="xlstm", architectures=["xLSTMForCausalLM"], num_blocks=self.num_hidden_layers,
                   qk_dim_factor=_factor(self.qk_dim, d), v_dim_factor=_factor(self.v_dim, d),
                   ffn_proj_factor=_factor(self.ffn_dim, d), ffn_round_up_to_multiple_of=1, use_bias=False,
                   tie_word_embeddings=False)
        return cfg

    @property
    def head_dims(self) -> tuple[int, int]:
        """(dqk, dv): the q/k and v widths of one head."""
        return self.qk_dim // self.num_heads, self.v_dim // self.num_heads

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        """One block's recurrent state (without the batch axis): C, n and the stabilizer m, per head."""
        h, (dqk, dv) = self.num_heads, self.head_dims
        return {"C": (h, dqk, dv), "n": (h, dqk), "m": (h,)}

    def expected_shapes(self) -> dict[str, tuple[int, ...]]:
        """The tensor names and shapes a checkpoint of this spec must contain."""
        d, h, qk, v, f = self.hidden_size, self.num_heads, self.qk_dim, self.v_dim, self.ffn_dim
        shapes: dict[str, tuple[int, ...]] = {"backbone.embeddings.weight": (self.vocab_size, d),
                                              "backbone.out_norm.weight": (d,), "lm_head.weight": (self.vocab_size, d)}
        for b in range(self.num_hidden_layers):
            p, m = f"backbone.blocks.{b}.", f"backbone.blocks.{b}.mlstm_layer."
            shapes |= {p + "norm_mlstm.weight": (d,), p + "norm_ffn.weight": (d,), p + "ffn.proj_down.weight": (d, f),
                       m + "multihead_norm.weight": (v,), m + "out_proj.weight": (d, v)}
            if self.weight_mode == "single":
                shapes |= {m + "q.weight": (qk, d), m + "k.weight": (qk, d), m + "v.weight": (v, d),
                           m + "ogate_preact.weight": (v, d), m + "igate_preact.weight": (h, d),
                           m + "igate_preact.bias": (h,), m + "fgate_preact.weight": (h, d),
                           m + "fgate_preact.bias": (h,), p + "ffn.proj_up_gate.weight": (f, d),
                           p + "ffn.proj_up.weight": (f, d)}
            else:
                shapes |= {m + "qkv_opreact.weight": (2 * qk + 2 * v, d), m + "ifgate_preact.weight": (2 * h, d),
                           m + "ifgate_preact.bias": (2 * h,), p + "ffn.proj_up_gate_z.weight": (2 * f, d)}
        return shapes


def _aliased(cfg: Mapping[str, Any], name: str, alias: str, source: str, high: int, limit: str) -> int:
    """Field ``name``, or its alias (transformers fills each from the other when one is null)."""
    if cfg.get(name) is None and cfg.get(alias) is not None:
        return int_field(cfg, alias, source, high, limit)
    return int_field(cfg, name, source, high, limit)


def _factor(width: int, hidden: int) -> float:
    """The smallest float factor with int(hidden * factor) == width (so that a config round-trips)."""
    factor = width / hidden
    while int(hidden * factor) < width:
        factor = math.nextafter(factor, math.inf)
    return factor


def _check_supported(cfg: Mapping[str, Any], source: str) -> None:
    """model_type "xlstm", an xLSTM architecture if any is listed, and no option edgec does not compile."""
    model_type, arch = cfg.get("model_type"), cfg.get("architectures") or []
    if not isinstance(arch, list) or not all(isinstance(a, str) for a in arch):
        raise CheckpointError(f"{source}: architectures must be a list of strings, got {short(arch)}; "
                              'write ["xLSTMForCausalLM"]')
    if model_type != "xlstm" or (arch and not set(arch) & _ARCHS):
        raise UnsupportedModelError(f"{source}: architecture {short(arch[0] if arch else model_type)} is not "
                                    "xLSTM; this reader takes xLSTMForCausalLM checkpoints")
    if bool_field(cfg, "use_bias", source, False):
        raise UnsupportedModelError(f"{source}: use_bias true is not supported (xLSTM-7B and transformers' "
                                    "default have no biases); re-train with use_bias false")
    mode = cfg.get("weight_mode", "single")
    if mode not in _WEIGHT_MODES:
        raise UnsupportedModelError(f"{source}: weight_mode {short(mode)} is not supported; use one of "
                                    f"{', '.join(_WEIGHT_MODES)}")
    dtype = cfg.get("inference_state_dtype", "float32")
    if dtype != "float32":
        raise UnsupportedModelError(f"{source}: inference_state_dtype {short(dtype)} is not supported: the float "
                                    "reference keeps the mLSTM state in float32 (as xLSTM-7B does)")
