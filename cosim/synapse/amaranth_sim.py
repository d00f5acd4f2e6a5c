"""The synapse memory's testbench in Amaranth's simulator."""

from __future__ import annotations

from ...rtl.synapse import SynapseMemory
from ..amaranth_loop import back_to_back
from ..options import CosimResult, RunOptions
from .testbench import SynapseTestbench

__all__ = ["simulate_synapse"]


def simulate_synapse(scenario, *, options: RunOptions = RunOptions(), vcd=None) -> CosimResult:
    """Runs a synapse memory scenario on the RTL of its organisation, checked by
    :class:`~.testbench.SynapseTestbench`."""
    return back_to_back(
        SynapseMemory(scenario.memory),
        lambda port: SynapseTestbench(scenario.memory, port, options),
        [scenario], lambda tb, index, item, cycle: tb.start(item, cycle), ("commands",), vcd)
