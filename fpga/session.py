"""A board session: few-shot episodes run through the host driver and checked against the golden model.

What comes back over the link is checked against ``model.golden.predict_episode``: every logit,
every hidden spike record in order (of each sample whose records all came whole: over a noisy line
a damaged spike record is not sent again), the number of hidden spikes, and the number and digest
(CRC-16 of the new values in write order) of the weight writes, so that the readout after each
update is the model's bit for bit. :func:`check_malformed` then sends frames that are corrupt,
truncated, of an unknown type, of a wrong or excessive length: each must be answered with a NAK
naming its fault and none may be executed; and a repeat (a frame with the number of the last one
executed), which must be acknowledged and not executed.
The same code checks a real board (``neuromosaic fpga run``) and the full-board cosimulation.
"""

from __future__ import annotations

from collections import defaultdict

from ..model.config import pack_fields, unpack_fields
from ..model.episode import ChipEpisode
from ..model.golden import Mismatch, predict_episode
from ..model.learning import LFSR, OP_UPDATE
from ..rtl.layouts import EventKind
from .host import Chip, EpisodeResult
from .protocol import (
    ERR_CRC,
    ERR_LENGTH,
    ERR_TRUNCATED,
    ERR_TYPE,
    ERRORS,
    HEADER_BYTES,
    SYNC,
    Protocol,
    frame,
    write_digest,
)

__all__ = ["check_episode", "run_episodes", "check_malformed"]


def _check_sequence(expected: list, got: list, thing: str, fields: str, sample: int) -> None:
    """The chip's ``got`` values of one sample against the model's ``(value, what)`` predictions."""
    for value, (want, what) in zip(got, expected):
        if value != want:
            raise Mismatch(f"board: {thing} mismatch in sample {sample} ({what}): the chip sent {fields}={value}, "
                           f"the model predicts {want}.")
    if len(got) != len(expected):
        raise Mismatch(f"board: the chip sent {len(got)} {thing}s in sample {sample}, the model predicts "
                       f"{len(expected)}.")


def check_episode(protocol: Protocol, episode: ChipEpisode, got: EpisodeResult, lfsr: LFSR | None = None) -> dict:
    """Checks what the chip returned for ``episode`` against the golden model (``lfsr``: the model's
    rounding PRNG, by default the rule's own); raises :class:`Mismatch` on the first difference.
    Returns the counts checked."""
    c = protocol.network
    pred = predict_episode(c, protocol.cfg, episode, lfsr=lfsr)
    writes = [w for step, _ in pred.update_writes for w in step]
    samples = got.support_logits + got.query_logits
    if len(samples) * c.outputs != len(pred.logits) or len(got.spikes) != len(samples):
        raise Mismatch(f"board: the chip ran {len(samples)} samples, the model {len(pred.logits) // c.outputs}.")
    ev = c.core.output_event_fields
    hidden = defaultdict(list)                   # each sample's predicted events, by its name
    for word, what in pred.hidden:
        hidden[what].append((word, what))
    complete = got.spikes_complete or [True] * len(samples)
    events = 0
    for s, logits in enumerate(samples):
        expected = pred.logits[s * c.outputs:(s + 1) * c.outputs]
        _check_sequence(expected, list(enumerate(logits)), "logit", "(output, value)", s)
        if complete[s]:          # a sample whose records all came whole: every event, in order
            predicted = hidden[expected[0][1]]
            _check_sequence(predicted, [pack_fields(ev, rec) for rec in got.spikes[s]], "hidden spike event",
                            "packed (kind, address)", s)
            events += len(predicted)
    counters = got.counters
    digest = write_digest([new for *_, new in writes], c.readout_weight_bits)
    if counters["weight_writes"] != len(writes) % (1 << 16):
        raise Mismatch(f"board: the chip made {counters['weight_writes']} weight writes, the model {len(writes)}.")
    if counters["write_digest"] != digest:
        raise Mismatch(f"board: the digest of the chip's weight writes is 0x{counters['write_digest']:04x}, the "
                       f"model's 0x{digest:04x}: the readout after an update differs.")
    spikes = sum(1 for word, _ in pred.hidden if unpack_fields(ev, word)["kind"] == EventKind.SPIKE.value)
    if counters["hidden_spikes"] != spikes % (1 << 16):
        raise Mismatch(f"board: the chip counted {counters['hidden_spikes']} hidden spikes, the model predicts "
                       f"{spikes}.")
    checked = {"logits": len(pred.logits), "hidden_events": events, "weight_writes": len(writes)}
    return {"checked": checked, "predictions": got.predictions, "query_logits": got.query_logits,
            "query_labels": episode.query_labels, "bytes_sent": got.bytes_sent, "bytes_received": got.bytes_received}


def run_episodes(chip: Chip, protocol: Protocol, episodes, lfsr: LFSR | None = None, progress=None) -> dict:
    """Runs ``episodes`` on ``chip`` (a board or the cosimulation, from its reset) through the host
    driver and checks each against the golden model. The chip's rounding PRNG runs on from one
    episode to the next, and so does the model's: one ``lfsr`` (default the rule's own) for the whole
    session. ``progress(i, result)`` is called after each."""
    out = {"info": chip.info(), "episodes": []}
    lfsr = LFSR(protocol.cfg) if lfsr is None else lfsr
    for i, e in enumerate(episodes):
        got = chip.episode(e.w_core, e.w_out, e.support_x, e.labels, e.query_x, e.rate, e.steps, spikes=True)
        out["episodes"].append(check_episode(protocol, e, got, lfsr))
        if progress:
            progress(i, out["episodes"][-1])
    return out


def check_malformed(chip: Chip, protocol: Protocol, episode: ChipEpisode) -> dict:
    """Bad frames after an episode; each must be NAKed with its fault and none may execute; then an
    update repeated with the number of the last frame executed, acknowledged and not executed
    (checked with the counters and a query sample of ``episode`` run again)."""
    x = episode.query_x[:, 0]
    before_logits, before_spikes = chip.sample(x)
    before = chip.counters()
    events = protocol.command_frame("events", [pack_fields(protocol.network.core.input_event_fields,
                                                           {"kind": 0, "address": 0})] * 8)
    update = protocol.command_frame("command", [{"op": OP_UPDATE, "label": 0, "learn": 0}])
    rate = protocol.commands["rate"]
    body = bytes([protocol.commands["events"].code, 0]) + (protocol.link.buffer_bytes + 1).to_bytes(2, "little")
    cases = [
        ("events with a bad CRC", events[:-1] + bytes([events[-1] ^ 0x40]), ERR_CRC),
        ("an update with a flipped payload bit", update[:HEADER_BYTES] + bytes([update[HEADER_BYTES] ^ 1])
         + update[HEADER_BYTES + 1:], ERR_CRC),
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
    repeat = chip.last_seq
    chip.raw(protocol.command_frame("command", [{"op": OP_UPDATE, "label": 0, "learn": 0}], repeat))
    ack = chip.await_ack(repeat)
    if isinstance(ack, str):
        raise Mismatch(f"board: a repeated frame was not acknowledged: {ack}.")
    if chip.counters()["weight_writes"] != before["weight_writes"]:
        raise Mismatch("board: a repeated OP_UPDATE frame (the number of the last frame executed) wrote weights.")
    logits, spikes = chip.sample(x)
    if (logits, spikes) != (before_logits, before_spikes):
        raise Mismatch(f"board: a query sample gives logits {logits} after the bad frames, {before_logits} before: "
                       "a rejected frame was executed.")
    return {"rejected": seen, "repeats_not_executed": 1}
