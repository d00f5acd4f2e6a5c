"""The host link's frame layout: defined here once, read by the gateware (``fpga.link``) and by the
host driver (``fpga.host``).

Every frame, either way, is::

    SYNC (0xA5) | type (8) | sequence (8) | length (16, little-endian) | payload (length bytes) | CRC-16 (little-endian)

The CRC is CRC-16/CCITT-FALSE (polynomial 0x1021, initial 0xFFFF, most significant bit first, no
reflection, no final XOR) over the type, the sequence number, the two length bytes and the payload;
the SYNC byte is not covered. A payload is a sequence of items; an item is one packed word of its
type's fields (the config's ``Field`` lists, first field at the LSB, as ``pack_fields``), sent in
``ceil(bits / 8)`` bytes, least significant byte first.

Host -> chip (*commands*): each loads a chip port (core weights, readout weights, the learning rate,
input events, engine commands, routing tables), sets the report mask, or asks for the counters, the
chip's identity or the last sample's logits again. The chip receives the whole frame into its
buffer, checks it, and only then executes it, then answers ``ACK``; a frame that fails a check is
dropped whole and answered ``NAK`` with the reason (``ERRORS``). Chip -> host (*records*): ``ACK``,
``NAK``, every ``LOGIT``, every hidden ``SPIKE`` (when the report mask asks), ``COUNTERS`` and ``INFO``.

Sequence numbers make the link survive a noisy line. The host numbers its frames, one more (mod 256)
for each new frame, and sends a frame again, with the same number, when its ACK does not come: a
frame with the number of the last frame executed is a *repeat*, acknowledged again (the ACK names
the number) but not executed again. The chip numbers its records, one more for each record sent, so
that a record lost whole (its SYNC damaged) shows as a gap. ``LOGITS`` asks for the last sample's
logit records again; the chip answers once every logit of the sample in progress has been sent.
"""

from __future__ import annotations

import dataclasses
import json
import zlib
from dataclasses import dataclass

from amaranth.lib.crc import catalog as crc_catalog

from ..model.config import ConfigError, Field, pack_fields, unpack_fields
from ..model.learning import LearningConfig, command_fields, logit_fields, rate_fields, readout_load_fields
from ..model.router import mesh_table_fields
from ..model.snn import SRNNConfig
from ..model.tiles import MosaicConfig

__all__ = ["SYNC", "HEADER_BYTES", "TRAILER_BYTES", "CRC16", "CRC16_INIT", "ERRORS", "LinkConfig", "Message",
           "Protocol", "crc16", "write_digest", "frame", "item_bytes", "items_to_bytes", "bytes_to_items",
           "config_identity", "COUNTER_FIELDS", "ASKED_FIELD", "SAMPLE_FIELD"]

SYNC = 0xA5
HEADER_BYTES = 5                 # SYNC, type, sequence, length (2)
TRAILER_BYTES = 2                # CRC-16
# The frames' CRC, computed by the gateware (``CRC16(data_width=...).create()``) and the host (``compute``).
CRC16 = crc_catalog.CRC16_CCITT_FALSE
CRC16_INIT = CRC16.initial_crc
_CRC16_BYTES = CRC16(data_width=8)

# NAK reasons: the frame was dropped, nothing of it executed.
ERRORS = {
    1: "bad CRC",
    2: "unknown frame type",
    3: "bad length (not a whole number of items, or longer than the buffer)",
    4: "truncated (the line went idle inside the frame)",
    5: "overrun (a byte arrived while a frame was executing)",
    6: "UART framing error (no stop bit)",
}
ERR_CRC, ERR_TYPE, ERR_LENGTH, ERR_TRUNCATED, ERR_OVERRUN, ERR_FRAMING = range(1, 7)


def write_digest(news, bits: int) -> int:
    """The link's weight-write digest: CRC-16 (the frames' algorithm) of the ``bits``-bit new values
    of the readout weight writes, in write order."""
    return CRC16(data_width=bits).compute(v & ((1 << bits) - 1) for v in news)


def crc16(data: bytes) -> int:
    """The CRC-16 of a frame's bytes (the host's side of the gateware's ``CRC16`` processors)."""
    return _CRC16_BYTES.compute(data)


def item_bytes(fields: tuple[Field, ...]) -> int:
    return max(1, -(-sum(f.bits for f in fields) // 8))


def items_to_bytes(fields: tuple[Field, ...], items) -> bytes:
    """Packs items (dicts of field values, or already packed ints) into a payload."""
    n = item_bytes(fields)
    out = bytearray()
    for item in items:
        word = item if isinstance(item, int) else pack_fields(fields, item)
        out += word.to_bytes(n, "little")
    return bytes(out)


def bytes_to_items(fields: tuple[Field, ...], payload: bytes) -> list[dict]:
    n = item_bytes(fields)
    if len(payload) % n:
        raise ValueError(f"a payload of {len(payload)} bytes is not a whole number of {n}-byte items.")
    return [unpack_fields(fields, int.from_bytes(payload[i:i + n], "little")) for i in range(0, len(payload), n)]


def frame(kind: int, payload: bytes = b"", seq: int = 0) -> bytes:
    """One frame: SYNC, type, sequence number, length, payload, CRC-16."""
    for name, value in (("frame type", kind), ("sequence number", seq)):
        if not 0 <= value <= 0xFF:
            raise ValueError(f"{name} {value} is out of range; allowed: 0..255.")
    if len(payload) > 0xFFFF:
        raise ValueError(f"a payload of {len(payload)} bytes is too long; allowed: up to 65535.")
    body = bytes([kind, seq]) + len(payload).to_bytes(2, "little") + payload
    return bytes([SYNC]) + body + crc16(body).to_bytes(2, "little")


def config_identity(config: dict) -> int:
    """A 32-bit identity of a chip's config (CRC-32 of its canonical JSON): the chip reports it in
    ``INFO`` so that the host refuses to drive a chip built from another config."""
    return zlib.crc32(json.dumps(config, sort_keys=True).encode())


BAUD_TOLERANCE = 0.02     # the rate the divisor makes may differ this much from the one asked for


@dataclass(frozen=True)
class LinkConfig:
    """The UART: ``clock_hz / baud`` clock cycles per bit, rounded (at least 4, and the rate it gives within
    ``BAUD_TOLERANCE`` of ``baud``, what a UART receiver tolerates); a frame buffer of ``buffer_bytes``
    (the longest payload a command frame may carry); a frame is dropped as truncated when the line
    stays idle for ``timeout_bytes`` byte times inside it."""
    clock_hz: int = 12_000_000
    baud: int = 1_000_000
    buffer_bytes: int = 512
    timeout_bytes: int = 8

    def __post_init__(self):
        for name in ("clock_hz", "baud"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"{name}={v!r} is not allowed; allowed: a positive integer (Hz, baud).")
        if self.divisor < 4:
            raise ConfigError(f"baud={self.baud} at clock_hz={self.clock_hz} gives {self.divisor} cycles per bit; "
                              "allowed: at least 4 (baud <= clock_hz / 4).")
        off = abs(self.actual_baud - self.baud) / self.baud
        if off > BAUD_TOLERANCE:
            raise ConfigError(f"baud={self.baud} at clock_hz={self.clock_hz}: {self.divisor} cycles per bit give "
                              f"{self.actual_baud:,.0f} baud, {100 * off:.1f} % off; allowed: a rate within "
                              f"{100 * BAUD_TOLERANCE:.0f} % of clock_hz / n for a whole n >= 4.")
        if not 16 <= self.buffer_bytes <= 0xFFFF:
            raise ConfigError(f"buffer_bytes={self.buffer_bytes} is out of range; allowed: 16..65535.")
        if not 2 <= self.timeout_bytes <= 1024:
            raise ConfigError(f"timeout_bytes={self.timeout_bytes} is out of range; allowed: 2..1024.")

    @property
    def divisor(self) -> int:
        return round(self.clock_hz / self.baud)

    @property
    def actual_baud(self) -> float:
        """The rate the divisor makes: what the line runs at."""
        return self.clock_hz / self.divisor

    @property
    def timeout_cycles(self) -> int:
        return self.timeout_bytes * 10 * self.divisor

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Message:
    """A command (host -> chip) or record (chip -> host) type: its code, name, and item fields.
    ``port``: a command that loads the chip port of that name (``stream``: a stream with ready; else
    written once per item); ``register``: a command that sets a register of the link; ``request``:
    a command without payload that asks for a record."""
    code: int
    name: str
    fields: tuple[Field, ...] = ()
    role: str = "port"            # "port", "register", "request" or "record"

    @property
    def item_bytes(self) -> int:
        return item_bytes(self.fields) if self.fields else 0


# Counters since the last ``clear`` (frames_ok: since reset); 16 bits each, wrapping. write_digest is
# the CRC-16 (the frames' polynomial, initial 0xFFFF) of the ``new`` values of the readout weight
# writes, in order: the readout after the updates, bit for bit, in two bytes.
COUNTER_FIELDS = (Field("frames_ok", 16), Field("frames_rejected", 16), Field("hidden_spikes", 16),
                  Field("weight_writes", 16), Field("write_digest", 16))
# Fields the link adds to a record: the sequence number of the request a counters record answers,
# and the samples ended since the last ``clear`` (mod 256) up to the one a logit belongs to.
ASKED_FIELD, SAMPLE_FIELD = Field("seq", 8), Field("sample", 8)
INFO_FIELDS = (Field("identity", 32), Field("kind", 8), Field("channels", 16), Field("neurons", 16),
               Field("outputs", 8), Field("tiles", 8), Field("buffer_bytes", 16), Field("divisor", 16))
REPORT_FIELDS = (Field("spikes", 1),)
# ACK: the type and sequence number of the frame acknowledged; NAK: those received (possibly damaged).
ACK_FIELDS = (Field("type", 8), Field("seq", 8), Field("frames_ok", 16))
NAK_FIELDS = (Field("error", 8), Field("type", 8), Field("seq", 8))
KINDS = {"core": 0, "mosaic": 1}


class Protocol:
    """The messages of one chip: a ``LearningCore`` (``SRNNConfig``) or a ``Mosaic`` (``MosaicConfig``),
    with its learning config and link config."""

    def __init__(self, chip: SRNNConfig | MosaicConfig, cfg: LearningConfig = LearningConfig(),
                 link: LinkConfig = LinkConfig()):
        self.chip, self.cfg, self.link = chip, cfg, link
        mosaic = isinstance(chip, MosaicConfig)
        self.kind = "mosaic" if mosaic else "core"
        c = self.network = chip.network if mosaic else chip
        commands = [
            Message(0x01, "core_weights", chip.core_load_fields if mosaic else c.core.weight_load_fields),
            Message(0x02, "weights", readout_load_fields(c)),
            Message(0x03, "rate", rate_fields(cfg), "register"),
            Message(0x04, "events", c.core.input_event_fields),
            Message(0x05, "command", command_fields(c)),
            Message(0x07, "report", REPORT_FIELDS, "register"),
            Message(0x08, "counters", (), "request"),
            Message(0x09, "info", (), "request"),
            Message(0x0A, "clear", (), "request"),
            Message(0x0B, "logits", (), "request"),
        ]
        if mosaic:
            commands.append(Message(0x06, "table", mesh_table_fields(chip.mesh)))
        self.commands = {m.name: m for m in commands}
        self.records = {m.name: m for m in [
            Message(0x81, "ack", ACK_FIELDS, "record"), Message(0x82, "nak", NAK_FIELDS, "record"),
            Message(0x83, "logit", (*logit_fields(c), SAMPLE_FIELD), "record"),
            Message(0x84, "spike", c.core.output_event_fields, "record"),
            Message(0x85, "counters", (*COUNTER_FIELDS, ASKED_FIELD), "record"),
            Message(0x86, "info", INFO_FIELDS, "record")]}
        self.by_code = {m.code: m for m in self.records.values()}
        longest = max(m.item_bytes for m in commands)
        if link.buffer_bytes < longest:
            raise ConfigError(f"buffer_bytes={link.buffer_bytes} cannot hold one {longest}-byte item; allowed: "
                              f"at least {longest}.")

    def config_dict(self) -> dict:
        return {"kind": self.kind, "chip": self.chip.to_dict(), "learning": dataclasses.asdict(self.cfg)}

    @property
    def identity(self) -> int:
        return config_identity(self.config_dict())

    def info(self) -> dict:
        """The INFO record this chip sends."""
        c = self.network
        return {"identity": self.identity, "kind": KINDS[self.kind], "channels": c.channels, "neurons": c.neurons,
                "outputs": c.outputs, "tiles": self.chip.tiles if self.kind == "mosaic" else 1,
                "buffer_bytes": self.link.buffer_bytes, "divisor": self.link.divisor}

    def max_items(self, name: str) -> int:
        """How many items of command ``name`` one frame carries."""
        return self.link.buffer_bytes // self.commands[name].item_bytes

    def command_frame(self, name: str, items=(), seq: int = 0) -> bytes:
        m = self.commands[name]
        payload = items_to_bytes(m.fields, items) if m.fields else b""
        if len(payload) > self.link.buffer_bytes:
            raise ValueError(f"{len(payload)} bytes of {name} do not fit one frame; allowed: up to "
                             f"{self.link.buffer_bytes} ({self.max_items(name)} items).")
        return frame(m.code, payload, seq)
