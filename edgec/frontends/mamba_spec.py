"""The architecture of a Mamba (v1) language model, read from a Hugging Face config.json."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from edgec.errors import CheckpointError, UnsupportedModelError

__all__ = ["MambaSpec"]

_MAMBA_ARCHS = {"MambaForCausalLM", "MambaModel"}


@dataclass(frozen=True)
class MambaSpec:
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

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], source: str = "config.json") -> MambaSpec:
        """Validate a config dict; raise a one-line error naming what is wrong."""
        arch = list(cfg.get("architectures") or [])
        model_type = cfg.get("model_type")
        if model_type != "mamba" or (arch and not set(arch) & _MAMBA_ARCHS):
            name = arch[0] if arch else model_type or "an unnamed model"
            raise UnsupportedModelError(
                f"{source}: architecture {name!r} (model_type {model_type!r}) is not Mamba; "
                "edgec compiles MambaForCausalLM checkpoints"
            )
        act = cfg.get("hidden_act", "silu")
        if act != "silu":
            raise UnsupportedModelError(f"{source}: hidden_act {act!r} is not supported (Mamba uses 'silu')")
        try:
            hidden = int(cfg["hidden_size"])
            inter = int(cfg.get("intermediate_size") or int(cfg.get("expand", 2)) * hidden)
            rank = cfg.get("time_step_rank", "auto")
            rank = math.ceil(hidden / 16) if rank == "auto" else int(rank)
            spec = cls(
                vocab_size=int(cfg["vocab_size"]),
                hidden_size=hidden,
                state_size=int(cfg["state_size"]),
                num_hidden_layers=int(cfg["num_hidden_layers"]),
                intermediate_size=inter,
                conv_kernel=int(cfg["conv_kernel"]),
                time_step_rank=rank,
                layer_norm_epsilon=float(cfg.get("layer_norm_epsilon", 1e-5)),
                use_bias=bool(cfg.get("use_bias", False)),
                use_conv_bias=bool(cfg.get("use_conv_bias", True)),
                tie_word_embeddings=bool(cfg.get("tie_word_embeddings", True)),
            )
        except KeyError as err:
            raise CheckpointError(f"{source}: required field {err.args[0]!r} is missing") from None
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"{source}: a size field is not a number ({err})") from None
        for field_name, value in asdict(spec).items():
            if isinstance(value, int) and not isinstance(value, bool) and value <= 0:
                raise CheckpointError(f"{source}: {field_name} must be positive, got {value}")
        return spec

    def to_config(self) -> dict[str, Any]:
        """A transformers-compatible config.json dict."""
        cfg: dict[str, Any] = asdict(self)
        cfg.update(model_type="mamba", architectures=["MambaForCausalLM"], hidden_act="silu", expand=2)
        return cfg

    def expected_shapes(self) -> dict[str, tuple[int, ...]]:
        """The tensor names and shapes a checkpoint of this spec must contain."""
        d, e, n, r, k = (self.hidden_size, self.intermediate_size, self.state_size,
                         self.time_step_rank, self.conv_kernel)
        shapes: dict[str, tuple[int, ...]] = {"backbone.embeddings.weight": (self.vocab_size, d),
                                              "backbone.norm_f.weight": (d,)}
        for i in range(self.num_hidden_layers):
            p = f"backbone.layers.{i}."
            shapes |= {
                p + "norm.weight": (d,),
                p + "mixer.in_proj.weight": (2 * e, d),
                p + "mixer.conv1d.weight": (e, 1, k),
                p + "mixer.x_proj.weight": (r + 2 * n, e),
                p + "mixer.dt_proj.weight": (e, r),
                p + "mixer.dt_proj.bias": (e,),
                p + "mixer.A_log": (e, n),
                p + "mixer.D": (e,),
                p + "mixer.out_proj.weight": (d, e),
            }
            if self.use_conv_bias:
                shapes[p + "mixer.conv1d.bias"] = (e,)
            if self.use_bias:
                shapes[p + "mixer.in_proj.bias"] = (2 * e,)
                shapes[p + "mixer.out_proj.bias"] = (d,)
        if not self.tie_word_embeddings:
            shapes["lm_head.weight"] = (self.vocab_size, d)
        return shapes

    @property
    def lm_head_name(self) -> str:
        return "backbone.embeddings.weight" if self.tie_word_embeddings else "lm_head.weight"
