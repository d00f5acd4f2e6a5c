"""Full-board cosimulation: the board top (``fpga.top.ChipTop``: the chip behind its host link) on
Verilator or Icarus, driven only through its UART by the host driver (``fpga.host.Chip``, the code
that drives a real board) running in cocotb: in the batch harness, the host's end of the line is
test equipment around the top (``line``), fed and drained in bulk; per cycle, Python drives the pins.

Each episode goes through the link as on a board (``fpga.session``, the code that checks a real board):
identity check, counters cleared, routing tables (a Mosaic), core and readout weights, the rate, the
support set with learning on and the update(s), the query set; every hidden spike is reported, and
everything that comes back is checked against the golden model. With ``malformed``, frames that are
corrupt, truncated, of an unknown type, of a wrong or excessive length are then sent: each must be
refused and none executed.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

import torch

from ...fpga.host import Chip
from ...fpga.protocol import LinkConfig, Protocol
from ...fpga.session import check_malformed, run_episodes
from ...model.episode import ChipEpisode, random_network_episode
from ...model.learning import LearningConfig
from ...model.snn import SRNNConfig
from ...model.tiles import MosaicConfig
from ..learning.scoreboard import model_lfsr
from ..options import CosimResult, RunOptions
from ..runner import CocotbRun, CosimError, harness_run, per_cycle_run
from .line import BoardPins

__all__ = ["job_protocol", "host_session", "board_run", "run_board_cosim"]

TEST_MODULE = "neuromosaic.cosim.board.cocotb_test"


def job_protocol(job: dict) -> Protocol:
    chip = MosaicConfig.from_dict(job["mosaic"]) if job.get("mosaic") else SRNNConfig.from_dict(job["config"])
    return Protocol(chip, LearningConfig(**job["learning"]), LinkConfig(**job["link"]))


def host_session(job: dict, protocol: Protocol, transport) -> dict:
    """What the host does in the cosimulation (in the driver's thread): every episode of the job, checked."""
    episodes = [ChipEpisode.from_file(e) for e in torch.load(job["episodes_file"])]
    chip = Chip(protocol, transport, timeout=job.get("timeout", 0.05))
    fault = RunOptions(**job["options"]).fault
    out = run_episodes(chip, protocol, episodes, lambda: model_lfsr(protocol.cfg, fault))
    if job.get("malformed"):
        out["malformed"] = check_malformed(chip, protocol, episodes[-1])
    out["bytes_sent"], out["bytes_received"] = chip.bytes_sent, chip.bytes_received
    return out


def board_run(sim: str, protocol: Protocol, *, waves: bool = False, per_cycle: bool = False,
              optimise: bool = False) -> tuple[CocotbRun, dict | None]:
    """The simulator build of the board top of ``protocol``: in its batch harness with the host's end
    of the line (``line.BoardPins``; returned with the harness's layout), or per cycle the top alone."""
    from ...fpga.top import ChipTop
    key = "mosaic" if protocol.kind == "mosaic" else "config"
    what = {"design": "board", key: protocol.chip.to_dict(), "learning": dataclasses.asdict(protocol.cfg),
            "link": protocol.link.to_dict()}
    if per_cycle:
        return per_cycle_run(sim, lambda: ChipTop(protocol), "chip_top", waves=waves, optimise=optimise,
                             cache=what), None
    return harness_run(sim, lambda: BoardPins(ChipTop(protocol), protocol.link.divisor), "chip_top", waves=waves,
                       cache=what, optimise=optimise, streams=["host_tx"], monitors=["host_rx"])


def run_board_cosim(sim: str, protocol: Protocol, *, episodes: int = 1, first_seed: int = 0, episode_list=None,
                    options: RunOptions = RunOptions(), malformed: bool = False, timeout: float = 0.05,
                    name: str = "run") -> CosimResult:
    """Runs ``episodes`` random whole-network episodes (or ``episode_list``) on the board top through
    its UART with the host driver, in the batch harness or ``options.per_cycle`` (of ``options`` the
    fault, the waves, the mode and the model's optimisation: the line has no idle pattern). Raises
    :class:`CosimError` on any mismatch, NAK or silence."""
    if episode_list is None:
        if episodes < 1:
            raise CosimError(f"episodes={episodes}: at least 1 is needed.")
        episode_list = [random_network_episode(protocol.network, protocol.cfg, first_seed + i) for i in range(episodes)]
    run, layout = board_run(sim, protocol, waves=options.waves, per_cycle=options.per_cycle,
                            optimise=options.optimise)
    key = "mosaic" if protocol.kind == "mosaic" else "config"
    with run.folder(name) as folder:
        path = folder / "episodes.pt"
        torch.save([e.to_file() for e in episode_list], path)
        job = {key: protocol.chip.to_dict(), "learning": dataclasses.asdict(protocol.cfg),
               "link": protocol.link.to_dict(), "episodes_file": str(path), "options": options.to_job(),
               "malformed": malformed, "timeout": timeout, "layout": layout}
        result = run.test(TEST_MODULE, "board_episodes", job, folder)
    checked = Counter()
    for e in result["episodes"]:
        checked.update(e["checked"])
    rejected = len(result.get("malformed", {}).get("rejected", []))
    result.update(checked=dict(checked), coverage={"rejected_frames": rejected},
                  seconds_per_cycle=1 / protocol.link.clock_hz)
    return CosimResult.from_job_result(sim, result, run.build_dir)



