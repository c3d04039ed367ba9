"""Documented bounds on what edgec accepts, checked before any allocation or long-running work.

Each limit is far above any real model or sensible run (mamba-2.8b: 64 layers, d_inner 5120;
xLSTM-7B: 32 blocks, FFN 10944; vocabularies up to ~256k) and far below what would exhaust this
machine or run forever. A value past a limit is refused with one line naming the value and the limit.
"""

from __future__ import annotations

from edgec.errors import DataError

__all__ = [
    "MAX_CALIB_TOKENS",
    "MAX_CHANNELS",
    "MAX_CLASSES",
    "MAX_CONFIG_BYTES",
    "MAX_CONV_KERNEL",
    "MAX_DATA_BYTES",
    "MAX_DATA_TOKENS",
    "MAX_EVAL_TOKENS",
    "MAX_EXPERTS",
    "MAX_GOLDEN_TOKENS",
    "MAX_HEADER_BYTES",
    "MAX_IMAGE_SIDE",
    "MAX_LAYERS",
    "MAX_NEW_TOKENS",
    "MAX_PARALLELISM",
    "MAX_PATCHES",
    "MAX_PROMPT_BYTES",
    "MAX_SEQ_LEN",
    "MAX_STATE_SIZE",
    "MAX_TASKS",
    "MAX_TEMPERATURE",
    "MAX_TENSOR_RANK",
    "MAX_TOKENIZER_BYTES",
    "MAX_VOCAB",
    "MAX_WIDTH",
    "check_range",
]

# Model dimensions (config.json), checked before the config is expanded into tensor names.
MAX_LAYERS = 1024
MAX_WIDTH = 65_536  # hidden and intermediate sizes
MAX_VOCAB = 4_194_304  # 2^22 tokens
MAX_STATE_SIZE = 1024
MAX_CONV_KERNEL = 64
MAX_IMAGE_SIDE = 8192  # pixels of an image's height or width (vision families)
MAX_CHANNELS = 64  # image channels
MAX_PATCHES = 65_536  # patches of one image (attention holds tokens^2 scores per head)
MAX_EXPERTS = 1024  # experts of one mixture-of-experts layer
MAX_TASKS = 64  # tasks (gates and heads) of a multi-task model
MAX_CLASSES = 4_194_304  # classes of one task head

# Checkpoint files (config.json, model.safetensors.index.json, safetensors headers, tokenizer.json).
MAX_CONFIG_BYTES = 16 << 20  # config.json or a shard index: real ones are a few kB to a few MB
MAX_HEADER_BYTES = 100_000_000  # a safetensors JSON header (the safetensors library's own limit)
MAX_TENSOR_RANK = 16  # dimensions of one safetensors tensor
MAX_TOKENIZER_BYTES = 1 << 28  # tokenizer.json: 256 MiB
MAX_DATA_TOKENS = 1 << 27  # token ids of one data file (1 GiB as int64)

# Data and run lengths (CLI options and data files).
MAX_DATA_BYTES = 1 << 30  # a calibration or evaluation file: 1 GiB
MAX_CALIB_TOKENS = 1 << 20  # --calib-tokens
MAX_EVAL_TOKENS = 1 << 30  # --max-tokens of edgec eval
MAX_SEQ_LEN = 65_536  # --seq-len
MAX_GOLDEN_TOKENS = 4096  # --tokens (golden sequence of a build)
MAX_NEW_TOKENS = 1_000_000  # --max-new-tokens of edgec run
MAX_PROMPT_BYTES = 1 << 20  # --prompt
MAX_PARALLELISM = 65_536  # --parallelism (int8 MACs per cycle)
MAX_TEMPERATURE = 100.0


def check_range(option: str, value: int | float | None, low: float, high: float) -> None:
    """Refuse ``value`` (named as ``option``) unless it is finite and low <= value <= high."""
    if value is None:
        return
    if value != value or not low <= value <= high:  # NaN fails both comparisons
        raise DataError(f"{option} {value} is outside [{_show(low)}, {_show(high)}]; pass a value in that range")


def _show(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else f"{bound:g}"

