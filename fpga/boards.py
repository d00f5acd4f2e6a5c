"""The boards of the flow, one record each: everything that differs between them is here.

A :class:`Board` names its amaranth-boards platform, its clock, the chip it carries by default (a
``LearningCore`` or a Mosaic) with the readout and learning widths that fit it, the synthesis options
and resource names of its FPGA family, and its bitstream's suffix. What the iCE40UP5K's 5,280 logic
cells hold beside the core and the link is the 256-neuron SRNN with a 5-way readout at narrowed
readout and learning widths (the model reads the same config, so it stays bit-exact; the default
widths take about 1,000 cells more); the ULX3S's ECP5-85F carries the seed's network (256 channels,
256 neurons, 20 outputs) as a 4 x 4 Mosaic of 16-neuron tiles with one lane each.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..model.learning import LearningConfig
from ..model.snn import NETWORKS, SRNNConfig

__all__ = ["Board", "BOARDS", "board_spec"]


@dataclass(frozen=True)
class Board:
    name: str
    platform: str                 # amaranth_boards class, "module:Class"
    clock_hz: int                 # the board's oscillator: the chip's clock
    chip: SRNNConfig              # the network the board carries by default
    learning: LearningConfig      # the learning rule's widths it carries by default
    mosaic: bool                  # the chip is a Mosaic of ``default_grid`` tiles, not one LearningCore
    bitstream_suffix: str
    resources: dict               # report field -> the nextpnr cell type it counts
    family: str = "ice40"         # the FPGA family (``fpga.estimate.FAMILIES``): how parts are synthesised
    synth_opts: str = ""
    synth_script: str = ""        # Yosys commands after synthesis; ``{top}`` is the top module's name
    network_widths: dict = field(default_factory=dict)    # the readout widths a network takes on this board
    default_grid: tuple[int, int] | None = None
    tile_lanes: int | None = None  # lanes of each Mosaic tile's LIF core (None: the network's own)
    build_minutes: str = "a few"  # what a build of the chip takes, for the progress line
    env: tuple = ()

    def make(self):
        """The amaranth-boards platform."""
        module, cls = self.platform.split(":")
        mod = __import__(f"amaranth_boards.{module}", fromlist=[cls])
        return getattr(mod, cls)()

    def synthesis_options(self, top: str) -> dict:
        opts = {"synth_opts": self.synth_opts} if self.synth_opts else {}
        if self.synth_script:
            opts["script_after_synth"] = self.synth_script.format(top=top)
        return opts

    def tiled(self, network: SRNNConfig) -> SRNNConfig:
        """``network`` with this board's tile lanes: the same arithmetic, one neuron updated per cycle
        and lane; one lane makes a tile's core about a quarter smaller than two (ECP5, 16 neurons)."""
        if self.tile_lanes is None:
            return network
        return dataclasses.replace(network, core=network.core.replace(lanes=self.tile_lanes))

    def fitted(self, network: SRNNConfig, keep=()) -> SRNNConfig:
        """``network`` with this board's readout widths (fields in ``keep`` left as they are)."""
        return dataclasses.replace(network, **{k: v for k, v in self.network_widths.items() if k not in keep})


_UP5K_WIDTHS = dict(readout_bits=14, logit_bits=20)

BOARDS = {
    # The UP5K's 4 x 256 Kbit SPRAMs hold the weights (rtl/memory.py instantiates them); multipliers go
    # into its DSP blocks (SB_MAC16) rather than logic cells.
    "icebreaker": Board(
        "icebreaker", "icebreaker:ICEBreakerPlatform", 12_000_000,
        chip=SRNNConfig.make(channels=256, neurons=256, outputs=5, lanes=2, **_UP5K_WIDTHS),
        learning=LearningConfig(acc_bits=20, elig_bits=14, prob_bits=10, exp_table_bits=12),
        mosaic=False, bitstream_suffix=".bin",
        resources={"logic_cells": "ICESTORM_LC", "ram_blocks": "ICESTORM_RAM", "spram_blocks": "ICESTORM_SPRAM",
                   "dsps": "ICESTORM_DSP"},
        family="ice40", synth_opts="-dsp", network_widths=_UP5K_WIDTHS, build_minutes="3-6"),
    # ECP5: the LUTs mapped by the classic ABC instead of ABC9, which in this Yosys (yowasp 0.70) fails
    # an internal assertion (ABC_OPS_REINTEGRATE) on the Mosaic's board tops: synthesis runs up to the
    # LUT mapping, ``abc -lut 4`` maps, and synthesis goes on from the cell mapping.
    "ulx3s-85f": Board(
        "ulx3s-85f", "ulx3s:ULX3S_85F_Platform", 25_000_000,
        chip=NETWORKS["seed"], learning=LearningConfig(),
        mosaic=True, bitstream_suffix=".bit",
        resources={"logic_cells": "TRELLIS_COMB", "flip_flops": "TRELLIS_FF", "ram_blocks": "DP16KD",
                   "dsps": "MULT18X18D"},
        family="ecp5", synth_opts="-run :map_luts",
        synth_script="abc -lut 4; clean; synth_ecp5 -run map_cells: -top {top}",
        default_grid=(4, 4), tile_lanes=1, build_minutes="15-25 for the seed-size Mosaic",
        env=(("OPENFPGALOADER", "true"),)),
}


def board_spec(board: str) -> Board:
    """The record of ``board``; an unknown name is refused with the boards there are."""
    if board not in BOARDS:
        raise ValueError(f"board {board!r} is unknown; allowed: {', '.join(BOARDS)}.")
    return BOARDS[board]
