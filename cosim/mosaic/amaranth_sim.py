"""The Mosaic's testbench (the learning testbench) in Amaranth's simulator."""

from __future__ import annotations

from ...rtl.mosaic import Mosaic
from ..amaranth_loop import back_to_back
from ..learning.testbench import LearningTestbench, stream_inputs
from ..options import CosimResult, RunOptions

__all__ = ["simulate_mosaic"]


def simulate_mosaic(mc, cfg, episodes, *, options: RunOptions = RunOptions(), tables=None, vcd=None) -> CosimResult:
    """Runs few-shot ``episodes`` (through the core: with ``w_core``) on one ``rtl.mosaic.Mosaic`` of
    ``mc``, every hidden spike, logit and weight write checked by
    :class:`~..learning.testbench.LearningTestbench` against the whole network's model. ``tables``: the
    mesh's routing tables (default: every source to every other tile, right for any weights)."""
    result = back_to_back(
        Mosaic(mc, cfg, tables=tables),
        lambda port: LearningTestbench(mc.network, cfg, port, options, core=True, core_loads=mc.core_load_words),
        episodes, lambda tb, index, episode, cycle: tb.start(episode, cycle), stream_inputs(True), vcd)
    result.details["episodes"] = len(episodes)
    return result
