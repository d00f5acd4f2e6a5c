"""Full-board cosimulation: the board top (``fpga.top.ChipTop``: the chip behind its host link) on
Verilator or Icarus, driven only through its UART by the host driver (``fpga.host.Chip``, the code
that drives a real board) running in cocotb: in the batch harness, the host's end of the line is
test equipment around the top (``line``), fed and drained in bulk; per cycle, Python drives the pins.

Each episode goes through the link as on a board (``fpga.session``, the code that checks a real board):
identity check, counters cleared, routing tables (a Mosaic), core and readout weights, the rate, the
support set with learning on and the update(s), the query set; every hidden spike is reported, and
everything that comes back is checked against the golden model. With ``malformed``, frames that are
corrupt, truncated, of an unknown type, of a wrong or excessive length are then sent: each must be
refused and none executed. With a bit error rate (``ber``), the line's test equipment flips random
bits both ways (``line.LineNoise``): the driver must detect every damaged frame and record, send
again what was lost, and the episodes must still be the model's bit for bit.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

import torch

from ...fpga.host import Chip
from ...fpga.protocol import LinkConfig, Protocol
from ...fpga.session import check_malformed, run_episodes
from ...model.episode import ChipEpisode, random_network_episode
from ...model.golden import Mismatch
from ...model.learning import LearningConfig
from ...model.snn import SRNNConfig
from ...model.tiles import MosaicConfig
from ..learning.scoreboard import model_lfsr
from ..options import CosimResult, RunOptions
from ..runner import CocotbRun, CosimError, harness_run, harness_verilog, per_cycle_run
from .line import BoardPins

__all__ = ["job_protocol", "host_session", "check_clean_line", "board_harness", "board_run", "run_board_cosim",
           "link_mutation_target", "MUTATION_NOISE"]

TEST_MODULE = "neuromosaic.cosim.board.cocotb_test"


def job_protocol(job: dict) -> Protocol:
    chip = MosaicConfig.from_dict(job["mosaic"]) if job.get("mosaic") else SRNNConfig.from_dict(job["config"])
    return Protocol(chip, LearningConfig(**job["learning"]), LinkConfig(**job["link"]))


def host_session(job: dict, protocol: Protocol, transport) -> dict:
    """What the host does in the cosimulation (in the driver's thread): every episode of the job (its
    ``episodes_file``, or the random episodes of its ``episode_seeds``), checked."""
    if "episode_seeds" in job:
        episodes = [random_network_episode(protocol.network, protocol.cfg, s) for s in job["episode_seeds"]]
    else:
        episodes = [ChipEpisode.from_file(e) for e in torch.load(job["episodes_file"])]
    chip = Chip(protocol, transport, timeout=job.get("timeout", 0.05), verify=job.get("verify", True))
    fault = RunOptions(**job["options"]).fault
    out = run_episodes(chip, protocol, episodes, model_lfsr(protocol.cfg, fault))
    if job.get("malformed"):
        out["malformed"] = check_malformed(chip, protocol, episodes[-1])
    out["bytes_sent"], out["bytes_received"] = chip.bytes_sent, chip.bytes_received
    out["link"] = dataclasses.asdict(chip.stats)
    if not job.get("noise", {}).get("ber"):
        check_clean_line(chip)
    return out


def check_clean_line(chip: Chip) -> None:
    """On a clean line the driver never has to recover, and the chip's frame counters are what the
    driver saw: every frame acknowledged once (``frames_ok``, since reset), and the NAKs since the
    last ``clear`` (``frames_rejected``)."""
    s = chip.stats
    if s.retransmissions or s.damage or s.logits_asked_again:
        raise Mismatch(f"board: on a clean line the driver had to recover: {dataclasses.asdict(s)}.")
    counters = chip.counters()
    if counters["frames_ok"] != s.acks % (1 << 16) or counters["frames_rejected"] != s.naks_since_clear % (1 << 16):
        raise Mismatch(f"board: the chip counted {counters['frames_ok']} frames acknowledged and "
                       f"{counters['frames_rejected']} rejected, the driver received {s.acks} ACKs and "
                       f"{s.naks_since_clear} NAKs since the last clear.")


def board_harness(protocol: Protocol) -> dict:
    """The board top of ``protocol`` in its batch harness with the host's end of the line
    (``line.BoardPins``): ``runner.harness_verilog``'s Verilog, top, layout and ports."""
    return harness_verilog(_board_pins(protocol), "chip_top", cache=_board_what(protocol), **HARNESS_PORTS)


def _board_pins(protocol: Protocol):
    """What makes the board top of ``protocol`` with the host's end of its line."""
    from ...fpga.top import ChipTop
    return lambda: BoardPins(ChipTop(protocol), protocol.link.divisor)


def _board_what(protocol: Protocol) -> dict:
    key = "mosaic" if protocol.kind == "mosaic" else "config"
    return {"design": "board", key: protocol.chip.to_dict(), "learning": dataclasses.asdict(protocol.cfg),
            "link": protocol.link.to_dict()}


HARNESS_PORTS = {"streams": ["host_tx"], "monitors": ["host_rx", "noise"]}


def board_run(sim: str, protocol: Protocol, *, waves: bool = False, per_cycle: bool = False,
              optimise: bool = False) -> tuple[CocotbRun, dict | None]:
    """The simulator build of the board top of ``protocol``: in its batch harness with the host's end
    of the line (``line.BoardPins``; returned with the harness's layout), or per cycle the top alone."""
    from ...fpga.top import ChipTop
    if per_cycle:
        return per_cycle_run(sim, lambda: ChipTop(protocol), "chip_top", waves=waves, optimise=optimise,
                             cache=_board_what(protocol)), None
    return harness_run(sim, _board_pins(protocol), "chip_top", waves=waves, cache=_board_what(protocol),
                       optimise=optimise, **HARNESS_PORTS)


def run_board_cosim(sim: str, protocol: Protocol, *, episodes: int = 1, first_seed: int = 0, episode_list=None,
                    options: RunOptions = RunOptions(), malformed: bool = False, timeout: float = 0.05,
                    ber: float = 0.0, noise_seed: int = 0, verify: bool = True, name: str = "run") -> CosimResult:
    """Runs ``episodes`` random whole-network episodes (or ``episode_list``) on the board top through
    its UART with the host driver, in the batch harness or ``options.per_cycle`` (of ``options`` the
    fault, the waves, the mode and the model's optimisation: the line has no idle pattern). ``ber``:
    bit errors per bit on both directions of the line (``noise_seed``: their draw); ``verify`` False
    turns the driver's record checks off; ``timeout``: seconds of the chip's clock the driver waits
    for an answer before it sends again. Raises :class:`CosimError` on any mismatch, or a frame the
    driver could not get through. The result's ``details["link"]`` has the driver's
    ``LinkStats``, ``details["noise"]`` the bit errors put on each direction."""
    if not 0 <= ber < 1:
        raise CosimError(f"ber={ber}: allowed: 0 <= ber < 1 (bit errors per bit).")
    if ber and options.per_cycle:
        raise CosimError(f"ber={ber}: bit errors are put on the line by the batch harness's test equipment; "
                         "allowed with per-cycle runs: 0.")
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
               "malformed": malformed, "timeout": timeout, "layout": layout, "verify": verify,
               "noise": {"ber": ber, "seed": noise_seed}}
        result = run.test(TEST_MODULE, "board_episodes", job, folder)
    checked = Counter()
    for e in result["episodes"]:
        checked.update(e["checked"])
    rejected = len(result.get("malformed", {}).get("rejected", []))
    result.update(checked=dict(checked), coverage={"rejected_frames": rejected},
                  seconds_per_cycle=1 / protocol.link.clock_hz)
    return CosimResult.from_job_result(sim, result, run.build_dir)


# The line of the link's mutation regression: four cycles a bit, a 64-byte frame buffer; its noisy
# session's bit errors.
MUTATION_LINK = LinkConfig(clock_hz=4_000_000, baud=1_000_000, buffer_bytes=64)
MUTATION_NOISE = {"ber": 3e-4, "seed": 1}
MUTATION_SESSION_CYCLES = 10_000_000    # a session's budget an episode (the design's own: under 1,000,000)


def link_mutation_target(*, seeds: int = 1):
    """The host link of a small board top (8 channels, 8 neurons, 3 outputs) in its batch harness,
    and its regression for mutation testing: ``seeds`` random episodes on a clean line followed by
    the malformed frames and the repeated update, then the same episodes on a line with bit errors
    both ways (``MUTATION_NOISE``: frames sent again, records asked for again). On the clean line the
    driver must never have had to recover; a session past its cycle budget (a mutant that never
    stops sending) fails. Only the link's cells (``top.link``) are mutated."""
    from ..mutation import Target
    protocol = Protocol(SRNNConfig.make(channels=8, neurons=8, outputs=3, lanes=2), LearningConfig(), MUTATION_LINK)
    harness = board_harness(protocol)
    job = {"config": protocol.chip.to_dict(), "learning": dataclasses.asdict(protocol.cfg),
           "link": protocol.link.to_dict(), "episode_seeds": list(range(seeds)), "options": RunOptions().to_job(),
           "timeout": 0.005, "layout": harness["layout"], "max_cycles": MUTATION_SESSION_CYCLES * max(1, seeds),
           "variants": [{"malformed": True}, {"noise": MUTATION_NOISE}]}
    return Target("link", harness, TEST_MODULE, "board_mutants", job, cells="*top.*link.*")
