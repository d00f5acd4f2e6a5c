"""The synapse memory on the FPGA: a self-test top (LFSRs issue random commands, the results and the
access counters fold into an LED) whose synthesis gives each organisation's size."""

from __future__ import annotations

from pathlib import Path

from amaranth.hdl import Cat, Elaboratable, Module, Mux, Signal
from amaranth.lib import io

from ..model import synapse as model
from ..rtl.synapse import SynapseMemory
from .board import Lfsr, synthesis_estimate

__all__ = ["SynapseSelfTest", "synapse_estimate"]


def _limits(memory: model.SynapseMemory) -> dict:
    """The number of values each command field may take."""
    if memory.name in model.FUNCTIONAL_ORGANISATIONS:
        cout, cin = memory.kernel_shape[:2]
        h, w = memory.image
        return {"kind": 3, "post_c": cout, "post_y": h, "post_x": w, "pre_c": cin, "pre_y": h, "pre_x": w}
    return {"kind": 3, "post": memory.post, "pre": memory.pre}


class SynapseSelfTest(Elaboratable):
    """The synapse memory of ``memory`` driven by random commands (indices kept in range)."""

    def __init__(self, memory: model.SynapseMemory):
        self.memory = memory

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = SynapseMemory(self.memory)
        lfsrs = [Lfsr(seed) for seed in (0xACE1, 0x1D2C, 0x7A31)]
        for i, g in enumerate(lfsrs):
            m.submodules[f"lfsr_{i}"] = g
            m.d.comb += g.en.eq(dut.commands.ready)      # a new command once this one is taken
        raw = Cat(*(g.value for g in lfsrs))
        limits, offset = _limits(self.memory), 0
        for f in model.command_fields(self.memory):
            value = raw[offset:offset + f.bits]
            offset += f.bits
            if f.name in limits:
                value = Mux(value < limits[f.name], value, 0)
            m.d.comb += getattr(dut.commands.payload, f.name).eq(value)
        assert offset <= len(raw), "the command word is wider than the LFSRs"
        m.d.comb += dut.commands.valid.eq(1)
        activity = Signal()
        fold = dut.results.payload.as_value().xor() ^ dut.busy
        for name in dut.counters.signature.members:
            fold = fold ^ getattr(dut.counters, name).xor()
        m.d.sync += activity.eq(activity ^ Mux(dut.results.valid, fold, 0))
        if platform is not None:
            led = platform.request("led", 0, dir="-")
            m.submodules.led = buf = io.Buffer("o", led)
            m.d.comb += buf.o.eq(activity)
        return m


def synapse_estimate(memory: model.SynapseMemory, board: str = "icebreaker",
                     out_dir: str | Path = "build/fpga") -> dict:
    """Yosys synthesis of the self-test top on the board's FPGA: cells and RAM blocks."""
    return synthesis_estimate(SynapseSelfTest(memory), board, out_dir, f"synapse-{memory.name}")
