"""The host driver: runs a chip (``fpga.top``) through its UART link (``fpga.protocol``).

:class:`Chip` is the same code on a real board (:class:`SerialTransport`, pyserial) and in the
full-board cosimulation (``cosim.board.cocotb_test``'s transport, which drives the top's UART pins in
cocotb). A transport has ``write(data)`` and ``read(count, timeout)`` (seconds; returns what arrived,
possibly fewer bytes).

The driver sends one frame at a time and waits for its ACK (stop-and-wait: the chip's buffer holds
one frame). Records that arrive meanwhile (logits, hidden spikes) are collected in order. Over a
noisy line it sends a frame again until it is acknowledged (the frames' sequence numbers keep the
chip from executing one twice), and asks again for what a damaged or lost record carried; what it
saw is in :class:`LinkStats`. A chip that keeps refusing a frame or goes quiet raises
:class:`LinkError` with the reason. Every frame sent and every record received is logged at DEBUG
on the ``neuromosaic.fpga.host`` logger.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch

from ..model.episode import input_tokens
from ..model.learning import OP_END, OP_UPDATE, quantise_rate
from ..model.router import table_writes
from ..model.tiles import mosaic_tables
from .protocol import ERRORS, HEADER_BYTES, SAMPLE_FIELD, SYNC, TRAILER_BYTES, Protocol, bytes_to_items, crc16

__all__ = ["LinkError", "Chip", "SerialTransport", "EpisodeResult", "LinkStats"]

log = logging.getLogger(__name__)


class LinkError(RuntimeError):
    pass


class _Silence(LinkError):
    """The chip sent fewer bytes than expected within the timeout."""


class SerialTransport:
    """A serial port (pyserial), e.g. ``/dev/ttyUSB1`` for the iCEBreaker's FTDI bridge."""

    def __init__(self, port: str, baud: int):
        try:
            import serial
        except ImportError as e:
            raise LinkError("pyserial is not installed; pip install pyserial.") from e
        try:
            self._port = serial.Serial(port, baud, timeout=0.1)
        except serial.SerialException as e:
            raise LinkError(f"cannot open serial port {port!r}: {e}") from e
        self.bytes_written = self.bytes_read = 0

    def write(self, data: bytes) -> None:
        self._port.write(data)
        self.bytes_written += len(data)

    def read(self, count: int, timeout: float) -> bytes:
        self._port.timeout = timeout
        data = self._port.read(count)
        self.bytes_read += len(data)
        return data

    def close(self) -> None:
        self._port.close()


@dataclass
class EpisodeResult:
    support_logits: list = field(default_factory=list)     # per support sample (per inner step), [outputs]
    query_logits: list = field(default_factory=list)
    spikes: list = field(default_factory=list)             # per sample: the hidden spike records, in order
    spikes_complete: list = field(default_factory=list)    # per sample: no record was damaged or lost in it
    counters: dict = field(default_factory=dict)
    predictions: list = field(default_factory=list)        # argmax of each query sample's logits
    bytes_sent: int = 0
    bytes_received: int = 0


@dataclass
class LinkStats:
    """What the driver saw of the line: frames sent again, records damaged (bad CRC or an impossible
    header) and records lost whole (gaps in the chip's numbering), logit sets asked for again; the
    ACKs and NAKs received (NAKs also since the last ``clear``)."""
    frames: int = 0
    acks: int = 0
    naks: int = 0
    naks_since_clear: int = 0
    retransmissions: int = 0
    records: int = 0
    records_damaged: int = 0
    records_lost: int = 0
    logits_asked_again: int = 0

    @property
    def damage(self) -> int:
        return self.records_damaged + self.records_lost


class Chip:
    """The driver of one chip over ``transport``; ``timeout`` in seconds per reply.

    The driver numbers its frames and sends a frame again (``tries`` times at most) when neither its
    ACK nor a NAK naming its number comes within ``timeout``, or when a NAK names it; the chip
    executes a frame once however often it comes. It checks every record's CRC and numbering
    (``verify``; off only to show what the checks save): a damaged or lost record makes it ask again
    for what it was waiting for (counters, identity, a sample's logits), so that a noisy line loses
    nothing. A session begins with :meth:`info` (it asks again until it has an answer, which also
    gets past a chip whose last frame had the number this driver starts with).
    """

    def __init__(self, protocol: Protocol, transport, timeout: float = 2.0, tries: int = 8, verify: bool = True):
        self.p, self.t, self.timeout, self.tries, self.verify = protocol, transport, timeout, tries, verify
        self.logits: dict[int, int] = {}
        self.spikes: list[dict] = []
        self.bytes_sent = self.bytes_received = 0
        self.stats = LinkStats()
        self._answers: dict[str, dict] = {}
        self._seq = 0                       # the number of the next frame
        self._record_seq = None             # the number of the last record received
        self._sample = 0                    # samples begun since the last ``clear`` (as SAMPLE_FIELD wraps)
        self._unread = bytearray()          # bytes of a damaged record, searched again for a SYNC
        # bytes without a SYNC after which the chip counts as saying nothing (64 of its longest records)
        self._hunt_limit = 64 * (HEADER_BYTES + max(m.item_bytes for m in protocol.records.values()) + TRAILER_BYTES)

    # -- records -----------------------------------------------------------------------------------
    def _read(self, count: int) -> bytes:
        data = bytes(self._unread[:count])
        del self._unread[:count]
        if len(data) < count:
            more = self.t.read(count - len(data), self.timeout)
            self.bytes_received += len(more)
            data += more
        if len(data) < count:
            raise _Silence(f"the chip sent {len(data)} of {count} expected bytes within {self.timeout} s.")
        return data

    def read_record(self) -> tuple[str, dict]:
        """The next record from the chip (bytes before a SYNC are skipped): ``(name, values)``, or
        ``("damaged", {...})`` for one with a bad CRC or an impossible header (the bytes after its
        SYNC are searched again). A gap in the records' numbering counts the records lost."""
        skipped = 0
        while self._read(1)[0] != SYNC:
            skipped += 1
            if skipped > self._hunt_limit:
                raise _Silence(f"the chip sent {skipped} bytes without a record's SYNC.")
        header = self._read(HEADER_BYTES - 1)
        kind, seq, length = header[0], header[1], int.from_bytes(header[2:4], "little")
        msg = self.p.by_code.get(kind)
        if msg is None or length != msg.item_bytes:
            if self.verify:
                return self._damaged(header, f"a record header of type 0x{kind:02x} and {length} bytes")
            raise LinkError(f"the chip sent an unknown record (type 0x{kind:02x}, {length} bytes).")
        body = self._read(length + TRAILER_BYTES)
        payload, crc = body[:length], int.from_bytes(body[length:], "little")
        if self.verify and crc16(header + payload) != crc:
            return self._damaged(header + body, f"a record of type 0x{kind:02x} with a bad CRC")
        self.stats.records += 1
        if msg.name == "nak":
            self.stats.naks += 1
            self.stats.naks_since_clear += 1
        if self.verify and self._record_seq is not None:
            self.stats.records_lost += (seq - self._record_seq - 1) & 0xFF
        self._record_seq = seq
        values = bytes_to_items(msg.fields, payload)[0]
        log.debug("chip -> host: %s %s", msg.name, values)
        if msg.name == "logit":
            if values["sample"] == self._sample:          # not a late copy of an earlier sample's
                self.logits[values["output"]] = values["value"]
        elif msg.name == "spike":
            self.spikes.append(values)
        elif msg.name in ("counters", "info"):      # may come before the ACK of the frame that asked
            self._answers[msg.name] = values
        return msg.name, values

    def _damaged(self, after_sync: bytes, what: str) -> tuple[str, dict]:
        self.stats.records_damaged += 1
        self._unread[:0] = after_sync
        log.debug("chip -> host: %s", what)
        return "damaged", {"what": what}

    def expect_nak(self) -> dict:
        """Reads records until a NAK (returned); an ACK first raises."""
        while True:
            got, values = self.read_record()
            if got == "nak":
                return values
            if got == "ack":
                raise LinkError(f"the chip acknowledged a frame of type 0x{values['type']:02x} that it should have "
                                "rejected.")

    # -- frames ------------------------------------------------------------------------------------
    @property
    def last_seq(self) -> int:
        """The number of the last frame sent."""
        return (self._seq - 1) & 0xFF

    def await_ack(self, seq: int) -> dict | str:
        """Records until the ACK of frame ``seq`` (returned); a NAK naming ``seq`` or silence: why."""
        while True:
            try:
                got, values = self.read_record()
            except _Silence as e:
                return str(e).rstrip(".")
            if got in ("ack", "nak") and values["seq"] == seq:
                if got == "ack":
                    self.stats.acks += 1
                    return values
                return "the chip rejected it: " + ERRORS.get(values["error"], f"error {values['error']}")

    def _transact(self, name: str, chunk: list) -> dict:
        """One frame of command ``name``, sent until it is acknowledged; its ACK."""
        msg = self.p.commands[name]
        seq, self._seq = self._seq, (self._seq + 1) & 0xFF
        data = self.p.command_frame(name, chunk, seq)
        self.stats.frames += 1
        why: list[str] = []
        for attempt in range(self.tries):
            if attempt:
                self.stats.retransmissions += 1
                log.debug("host -> chip: %s again (%s)", name, why[-1])
            log.debug("host -> chip: %s #%d, %d items, %d bytes", name, seq, len(chunk), len(data))
            self.t.write(data)
            self.bytes_sent += len(data)
            ack = self.await_ack(seq)
            if isinstance(ack, str):
                why.append(ack)
                continue
            if ack["type"] != msg.code:
                raise LinkError(f"the chip acknowledged type 0x{ack['type']:02x}, not {name} (0x{msg.code:02x}).")
            return ack
        raise LinkError(f"the chip did not acknowledge {name} (0x{msg.code:02x}) in {self.tries} tries: "
                        + "; ".join(dict.fromkeys(why)) + ".")

    def send(self, name: str, items=()) -> None:
        """Sends command ``name`` with ``items`` (packed ints or field dicts), in as many frames as the
        chip's buffer needs, each acknowledged before the next."""
        items = list(items)
        msg = self.p.commands[name]
        per = self.p.max_items(name) if msg.fields else 1
        for chunk in [items[i:i + per] for i in range(0, len(items), per)] or [[]]:
            self._transact(name, chunk)

    def _request(self, name: str) -> dict:
        """Request ``name`` (counters or info) and its answer, asked again when a record is damaged
        or lost, or none comes. A counters record names the request it answers."""
        for _ in range(self.tries):
            self._answers.pop(name, None)
            damage = self.stats.damage
            seq = self._transact(name, [])["seq"]
            while True:
                answer = self._answers.get(name)
                if answer is not None and answer.get("seq", seq) == seq:
                    return self._answers.pop(name)
                if self.stats.damage != damage:
                    break
                try:
                    self.read_record()
                except _Silence:
                    break
        raise LinkError(f"the chip did not answer {name} in {self.tries} tries.")

    def raw(self, data: bytes) -> None:
        """Writes bytes as they are (for tests of malformed frames)."""
        log.debug("host -> chip: %d raw bytes", len(data))
        self.t.write(data)
        self.bytes_sent += len(data)

    # -- commands ----------------------------------------------------------------------------------
    def info(self, check: bool = True) -> dict:
        info = self._request("info")
        if check and info["identity"] != self.p.identity:
            raise LinkError(f"the chip's config identity is 0x{info['identity']:08x}, this host's is "
                            f"0x{self.p.identity:08x}: the bitstream was built from another config.")
        return info

    def counters(self) -> dict:
        return self._request("counters")

    def clear(self) -> None:
        self.send("clear")
        self._sample = 0
        self.stats.naks_since_clear = 0

    def report(self, spikes: bool) -> None:
        self.send("report", [{"spikes": int(spikes)}])

    def set_rate(self, m: int, q: int) -> None:
        self.send("rate", [{"m": m, "q": q}])

    def load_core(self, w_core) -> None:
        """The core's ``[neurons, channels + neurons]`` weights (every tile's rows on a Mosaic)."""
        p = self.p
        words = p.chip.core_load_words(w_core) if p.kind == "mosaic" else p.network.core.weight_load_words(w_core)
        self.send("core_weights", words)

    def load_tables(self, w_rec=None) -> None:
        """A Mosaic's routing tables compiled from the recurrent weights (None: every source to every tile)."""
        self.send("table", table_writes(mosaic_tables(self.p.chip, w_rec)))

    def load_readout(self, w_out) -> None:
        w = torch.as_tensor(w_out).tolist()
        self.send("weights", [{"output": k, "neuron": j, "value": w[k][j]}
                              for k in range(len(w)) for j in range(len(w[0]))])

    def sample(self, raster: torch.Tensor, label: int = 0, learn: bool = False) -> tuple[list[int], list[dict]]:
        """One sample (event counts [T, channels]): its logits and (when reported) its hidden spike records."""
        logits, spikes, _ = self.sample_records(raster, label, learn)
        return logits, spikes

    def sample_records(self, raster: torch.Tensor, label: int = 0,
                       learn: bool = False) -> tuple[list[int], list[dict], bool]:
        """:meth:`sample`, and whether every record of it came whole (else some hidden spike records
        may be missing; the logits are asked for again until all are in)."""
        outputs = self.p.network.outputs
        self.logits, self.spikes = {}, []
        self._sample = (self._sample + 1) % (1 << SAMPLE_FIELD.bits)   # the chip's, once this OP_END is in
        damage = self.stats.damage
        self.send("events", input_tokens(self.p.network, raster))   # each step's events, then a TICK
        self.send("command", [{"op": OP_END, "label": label, "learn": int(learn)}])
        seen = damage
        for _ in range(self.tries):
            while len(self.logits) < outputs and self.stats.damage == seen:
                try:
                    self.read_record()
                except _Silence:
                    break
            if len(self.logits) == outputs:
                break
            seen = self.stats.damage
            self.stats.logits_asked_again += 1
            self.send("logits")          # answered once every logit of the sample is out
        else:
            raise LinkError(f"the chip reported logits for outputs {sorted(self.logits)} of {outputs} in "
                            f"{self.tries} tries.")
        if sorted(self.logits) != list(range(outputs)):
            raise LinkError(f"the chip reported logits for outputs {sorted(self.logits)}.")
        return [self.logits[k] for k in range(outputs)], list(self.spikes), self.stats.damage == damage

    def update(self) -> dict:
        """One inner step (``OP_UPDATE``): returns the counters once all of its weight writes are done."""
        before = self.counters()["weight_writes"]
        self.send("command", [{"op": OP_UPDATE, "label": 0, "learn": 0}])
        writes = self.p.network.outputs * self.p.network.neurons
        for _ in range(100):
            now = self.counters()
            if (now["weight_writes"] - before) % (1 << 16) >= writes % (1 << 16):
                return now
        raise LinkError(f"the update's {writes} weight writes did not finish.")

    def episode(self, w_core, w_out, support_x, labels, query_x, rate, steps: int = 1,
                spikes: bool = True, tables: bool = True) -> EpisodeResult:
        """A few-shot episode: load the network, ``steps`` x (support set with learning, update), then
        the query set. ``support_x``/``query_x``: event counts [T, n, channels]. ``rate``: the float
        inner rate, or a schedule (one per step, its last for the steps beyond), programmed before
        each step where it changes."""
        p, c = self.p, self.p.network
        self.info()
        self.clear()
        self.report(spikes)
        if p.kind == "mosaic" and tables:
            self.load_tables(torch.as_tensor(w_core)[:, c.channels:])
        self.load_core(w_core)
        self.load_readout(w_out)
        rates = list(rate) if isinstance(rate, (list, tuple)) else [rate]
        programmed = None
        result = EpisodeResult()
        for step in range(steps):
            m_q = quantise_rate(rates[min(step, len(rates) - 1)], support_x.shape[1], c.logit_shift, p.cfg)
            if m_q != programmed:
                self.set_rate(*m_q)
                programmed = m_q
            for i in range(support_x.shape[1]):
                logits, sp, whole = self.sample_records(support_x[:, i], labels[i], True)
                result.support_logits.append(logits)
                result.spikes.append(sp)
                result.spikes_complete.append(whole)
            self.update()
        for i in range(query_x.shape[1]):
            logits, sp, whole = self.sample_records(query_x[:, i], 0, False)
            result.query_logits.append(logits)
            result.spikes.append(sp)
            result.spikes_complete.append(whole)
            result.predictions.append(max(range(len(logits)), key=lambda k: logits[k]))
        result.counters = self.counters()
        result.bytes_sent, result.bytes_received = self.bytes_sent, self.bytes_received
        return result
