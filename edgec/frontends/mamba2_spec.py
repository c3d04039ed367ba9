"""The architecture of a Mamba-2 language model (transformers' Mamba2ForCausalLM), read from a config.json.

Field names follow transformers' Mamba2Config; the semantics follow its Mamba2Mixer (torch path):
in_proj -> z | xBC | dt with widths (E, E + 2*G*N, H), E = num_heads * head_dim = expand * hidden_size;
a depthwise causal conv and silu on xBC; the SSD scan with dt = clamp(softplus(dt + dt_bias),
*time_step_limit), A = -exp(A_log) and D per head, B and C shared by the num_heads / n_groups heads of
a group; then the gated RMSNorm rmsnorm_groups(y * silu(z)) over n_groups slices of E (the gate
multiplies before the norm); out_proj; the residual; norm_f; lm_head (untied unless
tie_word_embeddings, whose default is false for Mamba-2).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from edgec.errors import CheckpointError, UnsupportedModelError
from edgec.frontends.config_fields import bool_field, float_field, int_field
from edgec.frontends.mamba_spec import MambaBackbone
from edgec.frontends.validate import JSON_INFINITY, short
from edgec.frontends.weights import WeightStore
from edgec.limits import MAX_CONV_KERNEL, MAX_LAYERS, MAX_SEQ_LEN, MAX_STATE_SIZE, MAX_VOCAB, MAX_WIDTH

__all__ = ["Mamba2Spec", "check_checkpoint"]

_ARCHS = {"Mamba2ForCausalLM", "Mamba2Model"}
#: The int profile's SSD output sums N products of 32-bit states and 8-bit C codes before one requant, whose
#: input must stay below 2^47 (runtime/int_ops.py): N <= 256 keeps it there with a saturated state (2^31 x 2^7 x
#: 2^8 = 2^46). Released Mamba-2 models use 64 or 128.
MAX_SSD_STATE = min(256, MAX_STATE_SIZE)
_INF_TAG = {"__float__": "Infinity"}  # how transformers >= 5 writes float("inf") into config.json


@dataclass(frozen=True)
class Mamba2Spec(MambaBackbone):
    """Sizes and switches of a Mamba-2 model (see the module docstring for the derived widths)."""

    vocab_size: int
    hidden_size: int
    state_size: int
    num_hidden_layers: int
    num_heads: int
    head_dim: int
    n_groups: int
    expand: int = 2
    conv_kernel: int = 4
    chunk_size: int = 256
    layer_norm_epsilon: float = 1e-5
    use_bias: bool = False
    use_conv_bias: bool = True
    tie_word_embeddings: bool = False
    time_step_limit: tuple[float, float] = (0.0, math.inf)

    family = "mamba2"

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], source: str = "config.json") -> Mamba2Spec:
        """Validate a config dict (types, ranges, cross-field) before anything is sized from it.

        Raises a one-line CheckpointError (UnsupportedModelError for another family or an unsupported
        variant) naming the field.
        """
        if not isinstance(cfg, Mapping):
            raise CheckpointError(f"{source}: expected a JSON object, got {type(cfg).__name__}")
        _check_supported(cfg, source)
        hidden = int_field(cfg, "hidden_size", source, MAX_WIDTH, "MAX_WIDTH")
        expand = int_field(cfg, "expand", source, MAX_WIDTH, "MAX_WIDTH", default=2)
        heads = int_field(cfg, "num_heads", source, MAX_WIDTH, "MAX_WIDTH")
        head_dim = int_field(cfg, "head_dim", source, MAX_WIDTH, "MAX_WIDTH")
        groups = int_field(cfg, "n_groups", source, MAX_WIDTH, "MAX_WIDTH", default=8)
        state = int_field(cfg, "state_size", source, MAX_SSD_STATE, "MAX_SSD_STATE")
        if heads * head_dim != expand * hidden:
            raise CheckpointError(f"{source}: num_heads {heads} x head_dim {head_dim} = {heads * head_dim} is not "
                                  f"expand {expand} x hidden_size {hidden} = {expand * hidden}; transformers "
                                  "requires them equal: fix num_heads, head_dim or expand")
        if heads * head_dim > MAX_WIDTH:
            raise CheckpointError(f"{source}: the inner width num_heads x head_dim = {heads * head_dim} is over "
                                  f"{MAX_WIDTH} (MAX_WIDTH); fix num_heads or head_dim")
        if heads % groups:
            raise CheckpointError(f"{source}: num_heads {heads} is not a multiple of n_groups {groups} (each group's "
                                  "B and C are shared by num_heads / n_groups heads); fix n_groups")
        if groups * state > MAX_WIDTH:
            raise CheckpointError(f"{source}: n_groups x state_size = {groups * state} is over {MAX_WIDTH} "
                                  "(MAX_WIDTH); fix n_groups or state_size")
        return cls(
            vocab_size=int_field(cfg, "vocab_size", source, MAX_VOCAB, "MAX_VOCAB"),
            hidden_size=hidden,
            state_size=state,
            num_hidden_layers=int_field(cfg, "num_hidden_layers", source, MAX_LAYERS, "MAX_LAYERS"),
            num_heads=heads,
            head_dim=head_dim,
            n_groups=groups,
            expand=expand,
            conv_kernel=int_field(cfg, "conv_kernel", source, MAX_CONV_KERNEL, "MAX_CONV_KERNEL", default=4),
            chunk_size=int_field(cfg, "chunk_size", source, MAX_SEQ_LEN, "MAX_SEQ_LEN", default=256),
            layer_norm_epsilon=float_field(cfg, "layer_norm_epsilon", source, 1e-5, 0, 1),
            use_bias=bool_field(cfg, "use_bias", source, False),
            use_conv_bias=bool_field(cfg, "use_conv_bias", source, True),
            tie_word_embeddings=bool_field(cfg, "tie_word_embeddings", source, False),
            time_step_limit=_time_step_limit(cfg, source),
        )

    def to_config(self) -> dict[str, Any]:
        """A transformers-compatible config.json dict (strict JSON: an infinite limit is written as transformers
        writes it, ``{"__float__": "Infinity"}``)."""
        cfg: dict[str, Any] = asdict(self)
        low, high = self.time_step_limit
        cfg.update(model_type="mamba2", architectures=["Mamba2ForCausalLM"], hidden_act="silu",
                   time_step_limit=[low, dict(_INF_TAG) if math.isinf(high) else high])
        return cfg

    @property
    def intermediate_size(self) -> int:
        """E = num_heads * head_dim (= expand * hidden_size): the width of x, z, y and the gated norm."""
        return self.num_heads * self.head_dim

    @property
    def conv_dim(self) -> int:
        """The width of xBC, which the causal conv runs over: E + 2 * n_groups * state_size."""
        return self.intermediate_size + 2 * self.n_groups * self.state_size

    @property
    def in_proj_segments(self) -> tuple[int, int, int]:
        """in_proj's output widths: z, xBC, dt."""
        return self.intermediate_size, self.conv_dim, self.num_heads

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        """One layer's recurrent state (without the batch axis): the conv window and the SSM state."""
        return {"conv": (self.conv_dim, self.conv_kernel - 1),
                "ssm": (self.num_heads, self.head_dim, self.state_size)}

    def _mixer_shapes(self, prefix: str) -> dict[str, tuple[int, ...]]:
        """One layer's mixer tensors: in_proj to z | xBC | dt, the depthwise conv, dt_bias, A, D, the gated norm."""
        d, e, h, k = self.hidden_size, self.intermediate_size, self.num_heads, self.conv_kernel
        return {
            prefix + "in_proj.weight": (sum(self.in_proj_segments), d),
            prefix + "conv1d.weight": (self.conv_dim, 1, k),
            prefix + "dt_bias": (h,),
            prefix + "A_log": (h,),
            prefix + "D": (h,),
            prefix + "norm.weight": (e,),
            prefix + "out_proj.weight": (d, e),
        }


def check_checkpoint(spec: Mamba2Spec, store: WeightStore, source: str) -> None:
    """Refuse, with the reason, an in_proj wider than z | xBC | dt: mamba_ssm's Mamba2 with d_ssm < d_inner
    (transformers' older ``d_mlp``) also projects a gated MLP there, which transformers' Mamba2 does not run."""
    expected = sum(spec.in_proj_segments)
    for i in range(spec.num_hidden_layers):
        name = f"backbone.layers.{i}.mixer.in_proj.weight"
        if name in store and len(store.shape(name)) == 2 and store.shape(name)[0] > expected:
            extra = store.shape(name)[0] - expected
            raise UnsupportedModelError(
                f"{source}: tensor {name!r} has {store.shape(name)[0]} rows, {extra} more than z | xBC | dt "
                f"({' + '.join(map(str, spec.in_proj_segments))}): a Mamba-2 whose in_proj also feeds a gated MLP "
                "(d_mlp > 0) is not supported; transformers' Mamba2ForCausalLM has none")


def _check_supported(cfg: Mapping[str, Any], source: str) -> None:
    """model_type "mamba2", a Mamba-2 architecture if any is listed, silu, and no variant edgec does not compile."""
    model_type, arch = cfg.get("model_type"), cfg.get("architectures") or []
    if not isinstance(arch, list) or not all(isinstance(a, str) for a in arch):
        raise CheckpointError(f"{source}: architectures must be a list of strings, got {short(arch)}; "
                              'write ["Mamba2ForCausalLM"]')
    if model_type != "mamba2" or (arch and not set(arch) & _ARCHS):
        raise UnsupportedModelError(f"{source}: architecture {short(arch[0] if arch else model_type)} (model_type "
                                    f"{short(model_type)}) is not Mamba-2; this reader takes Mamba2ForCausalLM "
                                    "checkpoints")
    act = cfg.get("hidden_act")
    if act is not None and act != "silu":
        raise UnsupportedModelError(f"{source}: hidden_act {short(act)} is not supported (Mamba-2 uses 'silu')")
    if not bool_field(cfg, "rms_norm", source, True):
        raise UnsupportedModelError(f"{source}: rms_norm false is not supported: transformers' Mamba2 always "
                                    "applies the gated RMSNorm (mamba_ssm's rmsnorm=False variant is not compiled)")
    if bool_field(cfg, "norm_before_gate", source, False):
        raise UnsupportedModelError(f"{source}: norm_before_gate true is not supported: transformers' Mamba2 "
                                    "multiplies by silu(z) before the gated RMSNorm")


def _limit(value: Any) -> float | None:
    """A time_step_limit bound as a float: a number, or infinity as transformers 5 writes it ({"__float__":
    "Infinity"}), as transformers 4 did (a bare Infinity) or as a string "Infinity"; else None."""
    if value == _INF_TAG or value is JSON_INFINITY or value == "Infinity" or (isinstance(value, float)
                                                                              and value == math.inf):
        return math.inf
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _time_step_limit(cfg: Mapping[str, Any], source: str) -> tuple[float, float]:
    """time_step_limit [min, max]: 0 <= min <= max, max may be infinite; (0, inf) when missing or null."""
    value = cfg.get("time_step_limit")
    if value is None:
        return 0.0, math.inf
    bounds = [_limit(v) for v in value] if isinstance(value, list | tuple) and len(value) == 2 else [None]
    if None in bounds or not 0 <= bounds[0] <= bounds[1] or math.isinf(bounds[0]):
        raise CheckpointError(f"{source}: time_step_limit {short(value)} is not [min, max] with 0 <= min <= max "
                              '(max may be {"__float__": "Infinity"}); fix config.json or remove it for [0, inf]')
    return bounds[0], bounds[1]
