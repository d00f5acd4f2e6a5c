"""The synapse memory's testbench in Amaranth's simulator."""

from __future__ import annotations

from ...rtl.synapse import SynapseMemory
from ..amaranth_loop import back_to_back
from .testbench import SynapseTestbench

__all__ = ["simulate_synapse"]


def simulate_synapse(scenario, *, seed=0, idle=0.2, fault=None, vcd=None) -> dict:
    """Runs a synapse memory scenario on the RTL of its organisation, checked by
    :class:`~.testbench.SynapseTestbench`."""
    return back_to_back(
        SynapseMemory(scenario.memory),
        lambda port: SynapseTestbench(scenario.memory, port, seed=seed, idle=idle, fault=fault),
        [scenario], lambda tb, index, item, cycle: tb.start(item, cycle), ("commands",), vcd)
