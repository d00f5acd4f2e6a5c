"""The host driver: runs a chip (``fpga.top``) through its UART link (``fpga.protocol``).

:class:`Chip` is the same code on a real board (:class:`SerialTransport`, pyserial) and in the
full-board cosimulation (``cosim.board.cocotb_test``'s transport, which drives the top's UART pins in
cocotb). A transport has ``write(data)`` and ``read(count, timeout)`` (seconds; returns what arrived,
possibly fewer bytes).

The driver sends one frame at a time and waits for its ACK (stop-and-wait: the chip's buffer holds
one frame). Records that arrive meanwhile (logits, hidden spikes) are collected in order. A NAK, a
record with a bad CRC or a chip that goes quiet raises :class:`LinkError` with the reason. Every
frame sent and every record received is logged at DEBUG on the ``neuromosaic.fpga.host`` logger.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch

from ..model.episode import input_tokens
from ..model.learning import OP_END, OP_UPDATE, quantise_rate
from ..model.router import table_writes
from ..model.tiles import mosaic_tables
from .protocol import ERRORS, HEADER_BYTES, SYNC, TRAILER_BYTES, Protocol, bytes_to_items, crc16

__all__ = ["LinkError", "Chip", "SerialTransport", "EpisodeResult"]

log = logging.getLogger(__name__)


class LinkError(RuntimeError):
    pass


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
    counters: dict = field(default_factory=dict)
    predictions: list = field(default_factory=list)        # argmax of each query sample's logits
    bytes_sent: int = 0
    bytes_received: int = 0


class Chip:
    """The driver of one chip over ``transport``; ``timeout`` in seconds per reply."""

    def __init__(self, protocol: Protocol, transport, timeout: float = 2.0):
        self.p, self.t, self.timeout = protocol, transport, timeout
        self.logits: list[dict] = []
        self.spikes: list[dict] = []
        self.bytes_sent = self.bytes_received = 0
        self._answers: dict[str, dict] = {}

    # -- frames ------------------------------------------------------------------------------------
    def _read(self, count: int) -> bytes:
        data = self.t.read(count, self.timeout)
        self.bytes_received += len(data)
        if len(data) < count:
            raise LinkError(f"the chip sent {len(data)} of {count} expected bytes within {self.timeout} s.")
        return data

    def read_record(self) -> tuple[str, dict]:
        """The next record from the chip (bytes before a SYNC are skipped)."""
        while self._read(1)[0] != SYNC:
            pass
        header = self._read(HEADER_BYTES - 1)
        kind, length = header[0], int.from_bytes(header[1:3], "little")
        body = self._read(length + TRAILER_BYTES)
        payload, crc = body[:length], int.from_bytes(body[length:], "little")
        if crc16(header + payload) != crc:
            raise LinkError(f"a record of type 0x{kind:02x} arrived with a bad CRC.")
        msg = self.p.by_code.get(kind)
        if msg is None or length != msg.item_bytes:
            raise LinkError(f"the chip sent an unknown record (type 0x{kind:02x}, {length} bytes).")
        values = bytes_to_items(msg.fields, payload)[0]
        log.debug("chip -> host: %s %s", msg.name, values)
        if msg.name == "logit":
            self.logits.append(values)
        elif msg.name == "spike":
            self.spikes.append(values)
        elif msg.name in ("counters", "info"):      # may come before the ACK of the frame that asked
            self._answers[msg.name] = values
        return msg.name, values

    def _wait(self, name: str) -> dict:
        """Reads records until one named ``name`` (a NAK raises)."""
        if name in self._answers:
            return self._answers.pop(name)
        while True:
            got, values = self.read_record()
            if got == "nak":
                reason = ERRORS.get(values["error"], f"error {values['error']}")
                raise LinkError(f"the chip rejected a frame of type 0x{values['type']:02x}: {reason}.")
            if got == name:
                self._answers.pop(name, None)
                return values

    def expect_nak(self) -> dict:
        """Reads records until a NAK (returned); an ACK first raises."""
        while True:
            got, values = self.read_record()
            if got == "nak":
                return values
            if got == "ack":
                raise LinkError(f"the chip acknowledged a frame of type 0x{values['type']:02x} that it should have "
                                "rejected.")

    def send(self, name: str, items=()) -> None:
        """Sends command ``name`` with ``items`` (packed ints or field dicts), in as many frames as the
        chip's buffer needs, each acknowledged before the next."""
        items = list(items)
        msg = self.p.commands[name]
        per = self.p.max_items(name) if msg.fields else 1
        chunks = [items[i:i + per] for i in range(0, len(items), per)] or [[]]
        for chunk in chunks:
            data = self.p.command_frame(name, chunk)
            log.debug("host -> chip: %s, %d items, %d bytes", name, len(chunk), len(data))
            self.t.write(data)
            self.bytes_sent += len(data)
            ack = self._wait("ack")
            if ack["type"] != msg.code:
                raise LinkError(f"the chip acknowledged type 0x{ack['type']:02x}, not {name} (0x{msg.code:02x}).")

    def raw(self, data: bytes) -> None:
        """Writes bytes as they are (for tests of malformed frames)."""
        log.debug("host -> chip: %d raw bytes", len(data))
        self.t.write(data)
        self.bytes_sent += len(data)

    # -- commands ----------------------------------------------------------------------------------
    def info(self, check: bool = True) -> dict:
        self._answers.pop("info", None)
        self.send("info")
        info = self._wait("info")
        if check and info["identity"] != self.p.identity:
            raise LinkError(f"the chip's config identity is 0x{info['identity']:08x}, this host's is "
                            f"0x{self.p.identity:08x}: the bitstream was built from another config.")
        return info

    def counters(self) -> dict:
        self._answers.pop("counters", None)
        self.send("counters")
        return self._wait("counters")

    def clear(self) -> None:
        self.send("clear")

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
        outputs = self.p.network.outputs
        self.logits, self.spikes = [], []
        self.send("events", input_tokens(self.p.network, raster))   # each step's events, then a TICK
        self.send("command", [{"op": OP_END, "label": label, "learn": int(learn)}])
        while len(self.logits) < outputs:
            self.read_record()
        got = sorted(self.logits, key=lambda v: v["output"])
        if [v["output"] for v in got] != list(range(outputs)):
            raise LinkError(f"the chip reported logits for outputs {[v['output'] for v in self.logits]}.")
        return [v["value"] for v in got], list(self.spikes)

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

    def episode(self, w_core, w_out, support_x, labels, query_x, rate: float, steps: int = 1,
                spikes: bool = True, tables: bool = True) -> EpisodeResult:
        """A few-shot episode: load the network, ``steps`` x (support set with learning, update), then
        the query set. ``support_x``/``query_x``: event counts [T, n, channels]."""
        p, c = self.p, self.p.network
        self.info()
        self.clear()
        self.report(spikes)
        if p.kind == "mosaic" and tables:
            self.load_tables(torch.as_tensor(w_core)[:, c.channels:])
        self.load_core(w_core)
        self.load_readout(w_out)
        m, q = quantise_rate(rate, support_x.shape[1], c.logit_shift, p.cfg)
        self.set_rate(m, q)
        result = EpisodeResult()
        for _ in range(steps):
            for i in range(support_x.shape[1]):
                logits, sp = self.sample(support_x[:, i], labels[i], True)
                result.support_logits.append(logits)
                result.spikes.append(sp)
            self.update()
        for i in range(query_x.shape[1]):
            logits, sp = self.sample(query_x[:, i], 0, False)
            result.query_logits.append(logits)
            result.spikes.append(sp)
            result.predictions.append(max(range(len(logits)), key=lambda k: logits[k]))
        result.counters = self.counters()
        result.bytes_sent, result.bytes_received = self.bytes_sent, self.bytes_received
        return result
