"""The architecture of a Mamba (v1) language model, read from a Hugging Face config.json."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from edgec.errors import CheckpointError, UnsupportedModelError
from edgec.frontends.config_fields import as_int, bool_field, int_field
from edgec.frontends.validate import short
from edgec.limits import MAX_CONV_KERNEL, MAX_LAYERS, MAX_STATE_SIZE, MAX_VOCAB, MAX_WIDTH

__all__ = ["MambaBackbone", "MambaSpec"]

_MAMBA_ARCHS = {"MambaForCausalLM", "MambaModel"}


class MambaBackbone:
    """The checkpoint layout Mamba and Mamba-2 share: embeddings, per layer a norm and a mixer (with optional
    conv1d, in_proj and out_proj biases), norm_f, and an lm_head that may be tied to the embeddings."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    use_bias: bool
    use_conv_bias: bool
    tie_word_embeddings: bool

    @property
    def lm_head_name(self) -> str:
        """The weight lm_head reads: the embeddings when tied, else its own."""
        return "backbone.embeddings.weight" if self.tie_word_embeddings else "lm_head.weight"

    def expected_shapes(self) -> dict[str, tuple[int, ...]]:
        """The tensor names and shapes a checkpoint of this spec must contain."""
        d = self.hidden_size
        shapes: dict[str, tuple[int, ...]] = {"backbone.embeddings.weight": (self.vocab_size, d),
                                              "backbone.norm_f.weight": (d,)}
        for i in range(self.num_hidden_layers):
            p = f"backbone.layers.{i}."
            mixer = self._mixer_shapes(p + "mixer.")
            shapes |= {p + "norm.weight": (d,)} | mixer | self._bias_shapes(p + "mixer.", mixer)
        if not self.tie_word_embeddings:
            shapes["lm_head.weight"] = (self.vocab_size, d)
        return shapes

    def _mixer_shapes(self, prefix: str) -> dict[str, tuple[int, ...]]:
        """One layer's mixer tensors, named ``prefix`` + their name, without the optional biases."""
        raise NotImplementedError

    def _bias_shapes(self, prefix: str, mixer: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
        """The conv1d bias if use_conv_bias, the in_proj and out_proj biases if use_bias: one per weight row."""
        modules = (["conv1d"] if self.use_conv_bias else []) + (["in_proj", "out_proj"] if self.use_bias else [])
        return {prefix + m + ".bias": (mixer[prefix + m + ".weight"][0],) for m in modules}


@dataclass(frozen=True)
class MambaSpec(MambaBackbone):
    """Sizes and switches of a Mamba model; field names follow transformers' MambaConfig."""

    vocab_size: int
    hidden_size: int
    state_size: int
    num_hidden_layers: int
    intermediate_size: int
    conv_kernel: int
    time_step_rank: int
    layer_norm_epsilon: float = 1e-5
    use_bias: bool = False
    use_conv_bias: bool = True
    tie_word_embeddings: bool = True

    family = "mamba"

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], source: str = "config.json") -> MambaSpec:
        """Validate a config dict (types, ranges, cross-field) before anything is sized from it.

        Raises a one-line CheckpointError (UnsupportedModelError for another family) naming the field.
        """
        if not isinstance(cfg, Mapping):
            raise CheckpointError(f"{source}: expected a JSON object, got {type(cfg).__name__}")
        _check_family(cfg, source)
        hidden = int_field(cfg, "hidden_size", source, MAX_WIDTH, "MAX_WIDTH")
        expand = int_field(cfg, "expand", source, MAX_WIDTH, "MAX_WIDTH", default=2)
        inter = int_field(cfg, "intermediate_size", source, MAX_WIDTH, "MAX_WIDTH", default=expand * hidden)
        rank = cfg.get("time_step_rank")
        if rank is None or rank == "auto":
            rank = math.ceil(hidden / 16)
        elif isinstance(rank, str):
            raise CheckpointError(f"{source}: time_step_rank {short(rank)} is neither 'auto' nor an integer; "
                                  "write \"auto\" or a positive integer")
        else:
            rank = as_int(rank, "time_step_rank", source, MAX_WIDTH, "MAX_WIDTH")
        if rank > inter:
            raise CheckpointError(f"{source}: time_step_rank {rank} is larger than intermediate_size {inter}; "
                                  "the dt projection is low-rank: use at most intermediate_size (or \"auto\")")
        return cls(
            vocab_size=int_field(cfg, "vocab_size", source, MAX_VOCAB, "MAX_VOCAB"),
            hidden_size=hidden,
            state_size=int_field(cfg, "state_size", source, MAX_STATE_SIZE, "MAX_STATE_SIZE"),
            num_hidden_layers=int_field(cfg, "num_hidden_layers", source, MAX_LAYERS, "MAX_LAYERS"),
            intermediate_size=inter,
            conv_kernel=int_field(cfg, "conv_kernel", source, MAX_CONV_KERNEL, "MAX_CONV_KERNEL"),
            time_step_rank=rank,
            layer_norm_epsilon=_epsilon(cfg, source),
            use_bias=bool_field(cfg, "use_bias", source, False),
            use_conv_bias=bool_field(cfg, "use_conv_bias", source, True),
            tie_word_embeddings=bool_field(cfg, "tie_word_embeddings", source, True),
        )

    def to_config(self) -> dict[str, Any]:
        """A transformers-compatible config.json dict."""
        cfg: dict[str, Any] = asdict(self)
        cfg.update(model_type="mamba", architectures=["MambaForCausalLM"], hidden_act="silu", expand=2)
        return cfg

    def _mixer_shapes(self, prefix: str) -> dict[str, tuple[int, ...]]:
        """One layer's mixer tensors: in_proj to x | z, the depthwise conv, x_proj to dt | B | C, dt_proj, A, D."""
        d, e, n, r, k = (self.hidden_size, self.intermediate_size, self.state_size,
                         self.time_step_rank, self.conv_kernel)
        return {
            prefix + "in_proj.weight": (2 * e, d),
            prefix + "conv1d.weight": (e, 1, k),
            prefix + "x_proj.weight": (r + 2 * n, e),
            prefix + "dt_proj.weight": (e, r),
            prefix + "dt_proj.bias": (e,),
            prefix + "A_log": (e, n),
            prefix + "D": (e,),
            prefix + "out_proj.weight": (d, e),
        }


def _check_family(cfg: Mapping[str, Any], source: str) -> None:
    """model_type "mamba", a Mamba architecture if any is listed, and the silu activation."""
    model_type = cfg.get("model_type")
    if model_type is not None and not isinstance(model_type, str):
        raise CheckpointError(f"{source}: model_type must be a string, got {short(model_type)}; write \"mamba\"")
    arch = cfg.get("architectures")
    if arch is None:
        arch = []
    if not isinstance(arch, list) or not all(isinstance(a, str) for a in arch):
        raise CheckpointError(f"{source}: architectures must be a list of strings, got {short(arch)}; "
                              'write ["MambaForCausalLM"]')
    if model_type != "mamba" or (arch and not set(arch) & _MAMBA_ARCHS):
        name = arch[0] if arch else model_type or "an unnamed model"
        raise UnsupportedModelError(
            f"{source}: architecture {short(name)} (model_type {short(model_type)}) is not Mamba; "
            "edgec compiles MambaForCausalLM checkpoints"
        )
    act = cfg.get("hidden_act")
    if act is not None and act != "silu":
        raise UnsupportedModelError(f"{source}: hidden_act {short(act)} is not supported (Mamba uses 'silu')")


def _epsilon(cfg: Mapping[str, Any], source: str) -> float:
    """layer_norm_epsilon: a finite number in (0, 1), 1e-5 when missing."""
    value = cfg.get("layer_norm_epsilon")
    if value is None:
        return 1e-5
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise CheckpointError(f"{source}: layer_norm_epsilon {short(value)} is not a number in (0, 1); "
                              "write e.g. 1e-05")
    return float(value)
