"""FPGA device profiles: the resources and memory bandwidth the analytic estimate budgets against.

Sources (vendor figures; where a vendor table could not be fetched, a public cross-check is named):

* ZCU102 (XCZU9EG): 2,520 DSP48E2, 912 BRAM36 (32.1 Mb), no UltraRAM, 274,080 CLB LUTs — Zynq UltraScale+
  MPSoC product selection table (DS891), cross-checked against Stanford Spatial's ZCU target
  (``src/spatial/targets/xilinx/ZCU.scala``: 912 RAM36, 2,520 DSP, 548,160 registers = 2 x 274,080 LUTs).
  PS DDR4 SODIMM, 64 bits: 19.2 GB/s at 2400 MT/s (the ZU9EG -2 PS DDR4 rate; the board's own guide,
  UG1182, was not checked here). Clock 300 MHz: Edge-MoE (ICCAD'23) ran M3ViT on this board at 300 MHz.
* Alveo U250 (XCU250): 1,728,000 LUTs, 2,688 BRAM36, 1,280 URAM, 12,288 DSP — Alveo U250 data sheet
  (DS962; same counts in public placement tools' U250 tables). Four DDR4 channels of 16 GB (UG1120, XDMA
  platform): 4 x 19.2 = 76.8 GB/s, "the 77 GB/s bandwidth available on DDR-based Alveo cards" (Vitis
  UG1393, HBM Configuration and Use). 300 MHz is the default kernel clock of the U250 Vitis platforms.
* Kria KV260 (XCK26-SFVC784-2LV-C, a ZU5EV-class part): 117,120 LUTs, 1,248 DSP48E2, 144 BRAM36, 64 URAM —
  Kria K26 SOM data sheet (DS987). DS987: "4 GB 64-bit wide, 2400 Mb/s memory" = 19.2 GB/s. The -2LV
  grade runs its fabric at 0.72 V: 250 MHz is the conservative clock (small designs close at 300 MHz).
"""

from __future__ import annotations

from dataclasses import dataclass

from edgec.errors import EdgecError

__all__ = ["DEVICES", "FpgaDevice", "UnknownDeviceError", "get_device"]


class UnknownDeviceError(EdgecError):
    """``--device`` names no known FPGA profile."""


@dataclass(frozen=True)
class FpgaDevice:
    """One FPGA board/part: programmable-logic resources, fabric clock and DRAM bandwidth.

    ``bram_36k`` counts 36 Kb block RAMs (each two 18 Kb halves); ``uram`` counts 288 Kb UltraRAMs;
    ``dsp`` counts DSP48E2 slices; ``dram_gbps`` is the peak DRAM bandwidth the programmable logic can
    reach, in GB/s (1e9 bytes per second).
    """

    name: str
    part: str
    family: str
    dsp: int
    bram_36k: int
    uram: int
    lut: int
    clock_mhz: float
    dram_gbps: float
    description: str

    @property
    def clock_hz(self) -> float:
        return self.clock_mhz * 1e6

    @property
    def dram_bytes_per_s(self) -> float:
        return self.dram_gbps * 1e9

    @property
    def bram_bytes(self) -> int:
        """Capacity of all BRAM36s: 36 Kb = 4,608 bytes each (the parity bits hold data at 9/18/36/72-bit widths)."""
        return self.bram_36k * 4608

    @property
    def uram_bytes(self) -> int:
        """Data capacity of all URAMs (72-bit words x 4,096: 36,864 bytes each, no parity bits)."""
        return self.uram * 36864


DEVICES: dict[str, FpgaDevice] = {
    d.name: d
    for d in (
        FpgaDevice(
            name="zcu102",
            part="xczu9eg-ffvb1156-2-e",
            family="Zynq UltraScale+ MPSoC",
            dsp=2520,
            bram_36k=912,
            uram=0,
            lut=274_080,
            clock_mhz=300.0,
            dram_gbps=19.2,
            description="AMD ZCU102 evaluation board (ZU9EG), PS DDR4 64-bit 2400 MT/s; the Edge-MoE board",
        ),
        FpgaDevice(
            name="u250",
            part="xcu250-figd2104-2L-e",
            family="Virtex UltraScale+ (Alveo)",
            dsp=12288,
            bram_36k=2688,
            uram=1280,
            lut=1_728_000,
            clock_mhz=300.0,
            dram_gbps=76.8,
            description="AMD Alveo U250 data-center card, 4 x DDR4-2400 channels (64 GB)",
        ),
        FpgaDevice(
            name="kv260",
            part="xck26-sfvc784-2LV-c",
            family="Zynq UltraScale+ MPSoC (Kria K26)",
            dsp=1248,
            bram_36k=144,
            uram=64,
            lut=117_120,
            clock_mhz=250.0,
            dram_gbps=19.2,
            description="AMD Kria KV260 vision starter kit (K26 SOM), 4 GB DDR4 64-bit 2400 MT/s",
        ),
    )
}


def get_device(name: str) -> FpgaDevice:
    """The profile called ``name`` (case-insensitive); :class:`UnknownDeviceError` names the known ones."""
    key = str(name).strip().lower()
    try:
        return DEVICES[key]
    except KeyError:
        known = ", ".join(sorted(DEVICES))
        raise UnknownDeviceError(f"unknown FPGA device {name!r}; known devices: {known}") from None
