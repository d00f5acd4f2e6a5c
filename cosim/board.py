"""Full-board cosimulation: the board top (``fpga.top.ChipTop``: the chip behind its host link) on
Verilator or Icarus, driven only through its UART pins by the host driver (``fpga.host.Chip``, the code
that drives a real board) running in cocotb.

Each episode goes through the link as on a board: identity check, counters cleared, routing tables (a
Mosaic), core and readout weights, the rate, the support set with learning on and the update(s), the
query set; every hidden spike is reported. Everything that comes back is checked against the golden
model (``cosim.learning_bench.LearningScoreboard``): every logit and every hidden spike record in
order, the number of weight writes and their digest (the CRC-16 of the new values in write order),
so the readout after each update is the model's bit for bit. With ``malformed``, frames that are
corrupt, truncated, of an unknown type, of a wrong or excessive length are then sent: each must be
answered with a NAK naming its fault, and none may be executed: the counters show no effect and a
query sample run again gives the same logits and spikes.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

import torch

from ..fpga.host import Chip
from ..fpga.protocol import (CRC16_INIT, ERR_CRC, ERR_LENGTH, ERR_TRUNCATED, ERR_TYPE, ERRORS, SYNC, LinkConfig,
                             Protocol, crc_update, frame)
from ..model.config import pack_fields
from ..model.learning import OP_UPDATE, LearningConfig, logit_fields
from ..model.snn import SRNNConfig
from ..model.tiles import MosaicConfig
from .learning_bench import Episode, LearningScoreboard, random_network_episode
from .runner import CocotbRun, CosimError, generate_verilog
from .scoreboard import Mismatch

__all__ = ["job_protocol", "check_episode", "run_episodes", "host_session", "board_run", "run_board_cosim", "write_digest"]

TEST_MODULE = "neuromosaic.cosim.board_tb"


def job_protocol(job: dict) -> Protocol:
    chip = MosaicConfig.from_dict(job["mosaic"]) if job.get("mosaic") else SRNNConfig.from_dict(job["config"])
    return Protocol(chip, LearningConfig(**job["learning"]), LinkConfig(**job["link"]))


def write_digest(news, bits: int) -> int:
    """The link's weight-write digest: CRC-16 (the frames' polynomial) of the new values, in order."""
    crc = CRC16_INIT
    for v in news:
        crc = crc_update(crc, v & ((1 << bits) - 1), bits)
    return crc


def check_episode(protocol: Protocol, episode: Episode, got, fault: str | None = None) -> dict:
    """Checks what the chip returned for ``episode`` (an ``fpga.host.EpisodeResult``) against the golden
    model; raises ``Mismatch`` on the first difference. Returns the counts checked."""
    c = protocol.network
    sb = LearningScoreboard(c, protocol.cfg, "board")
    sb.predict(episode, fault)
    writes = [w for step in sb.take_update_writes() for w in step]
    fields, ev = logit_fields(c), c.core.output_event_fields
    # Samples in the order they ran (the scoreboard's "cycle" is the sample's index here).
    for s, logits in enumerate(got.support_logits + got.query_logits):
        for k, v in enumerate(logits):
            sb.on_logit(s, pack_fields(fields, {"output": k, "value": v}))
        for rec in got.spikes[s]:
            sb.on_hidden(s, pack_fields(ev, rec))
    sb.finish()
    counters = got.counters
    digest = write_digest([new for *_, new in writes], c.readout_weight_bits)
    if counters["weight_writes"] != len(writes) % (1 << 16):
        raise Mismatch(f"board: the chip made {counters['weight_writes']} weight writes, the model {len(writes)}.")
    if counters["write_digest"] != digest:
        raise Mismatch(f"board: the digest of the chip's weight writes is 0x{counters['write_digest']:04x}, the "
                       f"model's 0x{digest:04x}: the readout after an update differs.")
    spikes = sb.checked["hidden_events"] - sum(1 for s in got.spikes for r in s if r["kind"])
    if counters["hidden_spikes"] != spikes % (1 << 16):
        raise Mismatch("board: the chip's hidden spike counter disagrees with the spikes it reported.")
    return {"checked": dict(sb.checked, weight_writes=len(writes)), "predictions": got.predictions,
            "query_logits": got.query_logits,
            "query_labels": episode.query_labels, "bytes_sent": got.bytes_sent, "bytes_received": got.bytes_received}


def _malformed(chip: Chip, protocol: Protocol, episode: Episode) -> dict:
    """Bad frames after an episode; none may execute (checked with a query sample run again)."""
    x = episode.query_x[:, 0]
    before_logits, before_spikes = chip.sample(x)
    before = chip.counters()
    events = protocol.command_frame("events", [pack_fields(protocol.network.core.input_event_fields,
                                                           {"kind": 0, "address": 0})] * 8)
    update = protocol.command_frame("command", [{"op": OP_UPDATE, "label": 0, "learn": 0}])
    rate = protocol.commands["rate"]
    body = bytes([protocol.commands["events"].code]) + (protocol.link.buffer_bytes + 1).to_bytes(2, "little")
    cases = [
        ("events with a bad CRC", events[:-1] + bytes([events[-1] ^ 0x40]), ERR_CRC),
        ("an update with a flipped payload bit", update[:4] + bytes([update[4] ^ 1]) + update[5:], ERR_CRC),
        ("a truncated events frame", events[:len(events) // 2], ERR_TRUNCATED),
        ("an unknown type", frame(0x7E, b"\x01\x02"), ERR_TYPE),
        ("a rate of the wrong length", frame(rate.code, b"\x00" * (rate.item_bytes + 1)), ERR_LENGTH),
        ("a frame longer than the buffer", bytes([SYNC]) + body + b"\x00" * 16, ERR_LENGTH),
    ]
    seen = []
    for what, data, want in cases:
        chip.raw(data)
        nak = chip.expect_nak()
        if nak["error"] != want:
            raise Mismatch(f"board: {what} was answered with error {nak['error']} ({ERRORS.get(nak['error'])}), "
                           f"expected {want} ({ERRORS[want]}).")
        seen.append({"frame": what, "error": ERRORS[want]})
    after = chip.counters()
    if after["frames_rejected"] - before["frames_rejected"] != len(cases):
        raise Mismatch(f"board: {after['frames_rejected'] - before['frames_rejected']} frames rejected, sent "
                       f"{len(cases)} bad ones.")
    if after["weight_writes"] != before["weight_writes"]:
        raise Mismatch("board: a rejected OP_UPDATE frame wrote weights.")
    logits, spikes = chip.sample(x)
    if (logits, spikes) != (before_logits, before_spikes):
        raise Mismatch(f"board: a query sample gives logits {logits} after the bad frames, {before_logits} before: "
                       "a rejected frame was executed.")
    return {"rejected": seen}


def run_episodes(chip: Chip, protocol: Protocol, episodes, fault: str | None = None, progress=None) -> dict:
    """Runs ``episodes`` on ``chip`` (a board or the cosimulation) through the host driver and checks
    each against the golden model. ``progress(i, result)`` is called after each."""
    out = {"info": chip.info(), "episodes": []}
    for i, e in enumerate(episodes):
        got = chip.episode(e.w_core, e.w_out, e.support_x, e.labels, e.query_x, e.rate, e.steps, spikes=True)
        out["episodes"].append(check_episode(protocol, e, got, fault))
        if progress:
            progress(i, out["episodes"][-1])
    return out


def host_session(job: dict, protocol: Protocol, transport) -> dict:
    """What the host does in the cosimulation (in the driver's thread): every episode of the job, checked."""
    episodes = [Episode(**e) for e in torch.load(job["episodes_file"])]
    chip = Chip(protocol, transport, timeout=job.get("timeout", 0.05))
    out = run_episodes(chip, protocol, episodes, job.get("fault"))
    if job.get("malformed"):
        out["malformed"] = _malformed(chip, protocol, episodes[-1])
    out["bytes_sent"], out["bytes_received"] = chip.bytes_sent, chip.bytes_received
    return out


def board_run(sim: str, protocol: Protocol, *, waves: bool = False) -> CocotbRun:
    from ..fpga.top import ChipTop
    return CocotbRun(sim, generate_verilog(ChipTop(protocol), "chip_top"), "chip_top", waves=waves)


def run_board_cosim(sim: str, protocol: Protocol, *, episodes: int = 1, first_seed: int = 0, episode_list=None,
                    fault: str | None = None, malformed: bool = False, timeout: float = 0.05,
                    waves: bool = False, name: str = "run") -> dict:
    """Runs ``episodes`` random whole-network episodes (or ``episode_list``) on the board top through
    its UART with the host driver. Raises :class:`CosimError` on any mismatch, NAK or silence."""
    if episode_list is None:
        if episodes < 1:
            raise CosimError(f"episodes={episodes}: at least 1 is needed.")
        episode_list = [random_network_episode(protocol.network, protocol.cfg, first_seed + i) for i in range(episodes)]
    run = board_run(sim, protocol, waves=waves)
    path = run.build_dir / name / "episodes.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save([dataclasses.asdict(e) for e in episode_list], path)
    key = "mosaic" if protocol.kind == "mosaic" else "config"
    job = {key: protocol.chip.to_dict(), "learning": dataclasses.asdict(protocol.cfg),
           "link": protocol.link.to_dict(), "episodes_file": str(path), "fault": fault, "malformed": malformed,
           "timeout": timeout}
    result = run.test(TEST_MODULE, "board_episodes", job, name)
    checked = Counter()
    for e in result["episodes"]:
        checked.update(e["checked"])
    result.update(checked=dict(checked), coverage={"rejected_frames": len(result.get("malformed", {}).get("rejected", []))},
                  sim=sim, build_dir=str(run.build_dir), seconds_per_cycle=1 / protocol.link.clock_hz)
    return result



