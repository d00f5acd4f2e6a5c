"""The LIF core's testbench in Amaranth's simulator."""

from __future__ import annotations

from ...model.config import LIFConfig
from ...rtl.lif import LIFCore
from ..amaranth_loop import back_to_back
from ..options import CosimResult, RunOptions
from .stimulus import Scenario
from .testbench import LIFTestbench

__all__ = ["simulate_lif"]


def simulate_lif(config: LIFConfig, scenarios: list[Scenario], *, options: RunOptions = RunOptions(),
                 vcd=None) -> CosimResult:
    """Runs ``scenarios`` back to back on one core, with a reset between them. The first uses the
    weights the core was elaborated with; the others load theirs through the weight port. Scenarios
    with a synapse memory (``stimulus.synapse_scenarios``) run on a core built with the first one's."""
    memory = scenarios[0].memory
    return back_to_back(
        LIFCore(config, scenarios[0].weights) if memory is None else LIFCore(config, synapses=memory),
        lambda port: LIFTestbench(config, port, options, synapses=memory),
        scenarios, lambda tb, index, scenario, cycle: tb.start(scenario, cycle, load_weights=index > 0),
        ("events", "weights"), vcd)
