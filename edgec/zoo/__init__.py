"""Bundled models: small trained checkpoints in Hugging Face format, with their data and scripts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["BUNDLED", "DEFAULT_MODEL", "ZooEntry"]

_HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class ZooEntry:
    """A bundled checkpoint folder with held-out calibration and evaluation text."""

    name: str
    description: str
    folder: Path

    @property
    def calib(self) -> Path:
        return self.folder / "calib.txt"

    @property
    def eval(self) -> Path:
        return self.folder / "eval.txt"


BUNDLED = {
    "mamba-tiny": ZooEntry("mamba-tiny", "byte-level Mamba, 4 layers, d_model 128, trained on English prose",
                           _HERE / "mamba_tiny"),
    "xlstm-tiny": ZooEntry("xlstm-tiny", "byte-level xLSTM (mLSTM, xLSTM-7B blocks), 3 blocks, hidden 128, same prose",
                           _HERE / "xlstm_tiny"),
}
DEFAULT_MODEL = "mamba-tiny"
