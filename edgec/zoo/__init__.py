"""Bundled models: small trained checkpoints in Hugging Face format, with their data and scripts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["BUNDLED", "DEFAULT_MODEL", "ZooEntry"]

_HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class ZooEntry:
    """A bundled checkpoint folder with held-out calibration and evaluation data.

    ``data``: the suffix of its data files: ".txt" (text, language models) or ".npz" (images and labels,
    vision models; edgec.image_data).
    """

    name: str
    description: str
    folder: Path
    data: str = ".txt"

    @property
    def calib(self) -> Path:
        return self.folder / f"calib{self.data}"

    @property
    def eval(self) -> Path:
        return self.folder / f"eval{self.data}"


BUNDLED = {
    "mamba-tiny": ZooEntry("mamba-tiny", "byte-level Mamba, 4 layers, d_model 128, trained on English prose",
                           _HERE / "mamba_tiny"),
    "mamba2-tiny": ZooEntry("mamba2-tiny", "byte-level Mamba-2 (SSD), 4 layers, hidden 128, 8 heads of 32 in 2 groups, "
                            "same prose", _HERE / "mamba2_tiny"),
    "xlstm-tiny": ZooEntry("xlstm-tiny", "byte-level xLSTM (mLSTM, xLSTM-7B blocks), 3 blocks, hidden 128, same prose",
                           _HERE / "xlstm_tiny"),
    "vitmoe-tiny": ZooEntry("vitmoe-tiny", "multi-task ViT-MoE (digit, parity), 4 blocks, 2 MoE with 8 experts top-2, "
                            "32x32 RGB digits", _HERE / "vitmoe_tiny", data=".npz"),
}
DEFAULT_MODEL = "mamba-tiny"
