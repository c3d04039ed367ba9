"""Where the FPGA design keeps its recurrent state and activation buffers: URAM, BRAM or DRAM.

Arrays are mapped onto 36 Kb BRAM / 288 Kb URAM blocks by their memory shape (word width x depth, the
cheapest aspect ratio). State a kernel must keep on chip (conv windows, the SSM state) goes to URAM
first, layer by layer, then to BRAM; activation buffers go to BRAM (small ones to LUTRAM). Streamable
state (the mLSTM C matrices, swept once per token in row order) stays on chip when, with it, BRAM and
URAM use stay within ONCHIP_BUDGET of the part (the size rule); otherwise every such array lives in
DRAM, read and written back once per token through a two-row buffer on chip.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgec.targets.fpga.costs import StateArray
from edgec.targets.fpga.devices import FpgaDevice

__all__ = ["LUTRAM_BITS", "ONCHIP_BUDGET", "Memory", "StatePlacement", "mb", "place_states"]

#: Streamable state stays on chip only while BRAM and URAM use stay within this fraction of the part.
ONCHIP_BUDGET = 0.8
#: Buffers of at most this many bits sit in LUTRAM or registers, not in BRAM (as HLS maps small arrays).
LUTRAM_BITS = 4096
#: Block shapes (width bits, depth) in simple dual-port mode: BRAM18, BRAM36, URAM.
_BRAM18_SHAPES = ((36, 512), (18, 1024), (9, 2048), (4, 4096), (2, 8192), (1, 16384))
_BRAM36_SHAPES = ((72, 512), (36, 1024), (18, 2048), (9, 4096), (4, 8192), (2, 16384), (1, 32768))
_URAM_SHAPE = (72, 4096)


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _bram36(width_bits: int, depth: int) -> float:
    """BRAM36 equivalents of a width x depth buffer: the cheapest aspect ratio, 18 Kb halves allowed."""
    if width_bits <= 0 or depth <= 0:
        return 0.0
    half = min(_cdiv(width_bits, w) * _cdiv(depth, dd) for w, dd in _BRAM18_SHAPES) / 2
    full = min(_cdiv(width_bits, w) * _cdiv(depth, dd) for w, dd in _BRAM36_SHAPES)
    return min(half, float(full))


def _uram(width_bits: int, depth: int) -> int:
    if width_bits <= 0 or depth <= 0:
        return 0
    return _cdiv(width_bits, _URAM_SHAPE[0]) * _cdiv(depth, _URAM_SHAPE[1])


def mb(nbytes: float) -> str:
    return f"{nbytes / 1e6:.2f} MB"


@dataclass(frozen=True)
class StatePlacement:
    """Where the state arrays of one kind (one per layer) live: URAM, BRAM, URAM+BRAM or DRAM."""

    kind: str
    values: tuple[str, ...]  # the step graph's state inputs
    shape: tuple[int, ...]  # of one array
    bits: int
    nbytes: int  # all arrays
    where: str

    def describe(self) -> str:
        dims = ", ".join(map(str, self.shape))
        return f"{self.kind} {len(self.values)} x [{dims}] x {self.bits // 8} B = {mb(self.nbytes)}"


class Memory:
    """BRAM36 / URAM in use while arrays are placed."""

    def __init__(self, device: FpgaDevice) -> None:
        self.device, self.bram, self.uram = device, 0.0, 0

    def place(self, word_bits: int, depth: int, count: int) -> str:
        """``count`` arrays of word_bits x depth: URAM first (array by array), the rest in BRAM."""
        k = 0
        while k < count and self.uram + _uram(word_bits, (k + 1) * depth) <= self.device.uram:
            k += 1
        self.uram += _uram(word_bits, k * depth)
        self.bram += _bram36(word_bits, (count - k) * depth)
        return "URAM" if k == count else ("BRAM" if k == 0 else "URAM+BRAM")

    def within(self, fraction: float) -> bool:
        return self.bram <= fraction * self.device.bram_36k and self.uram <= fraction * self.device.uram


def place_states(groups: list[tuple[StateArray, list[str]]], buffers: list[tuple[int, int]], device: FpgaDevice,
                 lanes: int) -> tuple[Memory, list[StatePlacement]]:
    """Place state groups (one array of a kind, every state input holding one) and activation buffers
    ((elements, bits) each) as the module docstring says; returns the memory use and the placements."""
    mem = Memory(device)
    placed: list[StatePlacement] = []

    def placement(s: StateArray, values: list[str], where: str) -> StatePlacement:
        return StatePlacement(s.kind, tuple(values), s.shape, s.bits, s.bytes * len(values), where)

    for s, values in (g for g in groups if not g[0].streamable):
        placed.append(placement(s, values, mem.place(s.word_bits, s.depth, len(values))))
    mem.bram += sum(_bram36(lanes * bits, _cdiv(n, lanes)) for n, bits in buffers if n * bits > LUTRAM_BITS)
    for s, values in (g for g in groups if g[0].streamable):
        trial = Memory(device)
        trial.bram, trial.uram = mem.bram, mem.uram
        where = trial.place(s.word_bits, s.depth, len(values))
        if trial.within(ONCHIP_BUDGET):
            mem = trial
        else:  # in DRAM, through a ping/pong pair of rows on chip
            where = "DRAM"
            mem.bram += _bram36(s.word_bits, 2 * _cdiv(s.shape[-1], s.word_bits // s.bits))
        placed.append(placement(s, values, where))
    return mem, placed
