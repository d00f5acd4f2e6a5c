"""The learning core's testbench in Amaranth's simulator."""

from __future__ import annotations

from ...rtl.learning import LearningCore, LearningEngine
from ..amaranth_loop import back_to_back
from ..options import CosimResult, RunOptions
from .stimulus import core_memory, readout_memory
from .testbench import LearningTestbench, stream_inputs

__all__ = ["simulate_learning"]


def simulate_learning(config, cfg, episodes, *, options: RunOptions = RunOptions(), vcd=None, synapses=None,
                      core_synapses=None) -> CosimResult:
    """Runs few-shot ``episodes`` on one ``LearningCore`` (episodes through the core: with
    ``w_core``) or ``LearningEngine`` (hidden rasters only), with a reset between them (the first
    starts from the reset at time 0), checked by :class:`~.testbench.LearningTestbench`.
    ``synapses``: the readout in a synapse memory (``stimulus.readout_memory``);
    ``core_synapses``: the core's weights in one (``stimulus.core_memory``)."""
    core = episodes[0].through_core
    readout = readout_memory(config, synapses)
    result = back_to_back(
        LearningCore(config, cfg, core_synapses=core_memory(config, core_synapses), readout_synapses=readout)
        if core else LearningEngine(config, cfg, synapses=readout),
        lambda port: LearningTestbench(config, cfg, port, options, core=core, synapses=synapses,
                                       core_synapses=core_synapses),
        episodes, lambda tb, index, episode, cycle: tb.start(episode, cycle), stream_inputs(core), vcd)
    result.details["episodes"] = len(episodes)
    return result
