"""The host link's gateware: a UART (8N1) and the frame engine of ``fpga.protocol``.

:class:`HostLink` joins four parts. The :class:`FrameReceiver` takes a frame into its buffer while
checking it (SYNC, type, length, CRC-16), and only a frame that passes every check is executed: its
items are pushed, one at a time, into the chip port its type names (or set a register, or ask for a
record), then it is acknowledged. A frame that fails is dropped whole and answered with a NAK naming
the reason; after an error found inside a frame (too long, a framing error) the rest of it is
discarded until the line is idle. A frame that passes with the sequence number of the last frame
executed is a repeat (the host sent it again when its ACK was lost): acknowledged, not executed.
The :class:`RecordTransmitter` sends the records to the host (ACK/NAK, the chip's logits and hidden
spikes, counters, identity), numbered, one at a time; a chip stream's record is taken into its
register, so the chip waits (its stream's ready) while the line is busy. It keeps the last sample's
logits and sends them again when asked.
:class:`LinkCounters` counts frames, hidden spikes and weight writes. The CRCs are
``amaranth.lib.crc``'s, the algorithm the host computes in software (``protocol.CRC16``).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..model.config import pack_fields
from ..model.learning import OP_END, logit_fields
from ..rtl import layouts
from ..rtl.layouts import EventKind
from .protocol import (
    ASKED_FIELD,
    COUNTER_FIELDS,
    CRC16,
    ERR_CRC,
    ERR_FRAMING,
    ERR_LENGTH,
    ERR_OVERRUN,
    ERR_TRUNCATED,
    ERR_TYPE,
    HEADER_BYTES,
    SAMPLE_FIELD,
    SYNC,
    TRAILER_BYTES,
    Protocol,
)

__all__ = ["UartRx", "UartTx", "LinkCounters", "FrameReceiver", "RecordTransmitter", "HostLink"]


class UartRx(wiring.Component):
    """8N1 receiver, ``divisor`` clock cycles per bit; ``data`` is valid for one cycle per byte
    (no backpressure), ``framing`` pulses when a byte's stop bit is 0 (the byte is dropped)."""

    def __init__(self, divisor: int):
        self._divisor = divisor
        super().__init__({"rx": In(1, init=1), "data": Out(8), "valid": Out(1), "framing": Out(1)})

    def elaborate(self, platform):
        m = Module()
        d = self._divisor
        sync = Signal(2, init=0b11)                 # two flip-flops against metastability
        m.d.sync += sync.eq(Cat(self.rx, sync[0]))
        line = sync[1]
        timer = Signal(range(max(d * 3 // 2, 2) + 1))
        bit = Signal(range(10))
        shift = Signal(8)
        m.d.sync += [self.valid.eq(0), self.framing.eq(0)]
        with m.FSM():
            with m.State("IDLE"):
                with m.If(~line):                   # start bit: sample the data bits in their middles
                    m.d.sync += [timer.eq(d + d // 2 - 1), bit.eq(0)]
                    m.next = "BITS"
            with m.State("BITS"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(bit == 8):              # the stop bit
                    with m.If(line):
                        m.d.sync += [self.valid.eq(1), self.data.eq(shift)]
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += self.framing.eq(1)
                        m.next = "BREAK"
                with m.Else():
                    m.d.sync += [shift.eq(Cat(shift[1:], line)), bit.eq(bit + 1), timer.eq(d - 1)]
            with m.State("BREAK"):                  # wait for the line to return high
                with m.If(line):
                    m.next = "IDLE"
        return m


class UartTx(wiring.Component):
    """8N1 transmitter, ``divisor`` clock cycles per bit."""

    def __init__(self, divisor: int):
        self._divisor = divisor
        super().__init__({"data": In(stream.Signature(8)), "tx": Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        d = self._divisor
        timer = Signal(range(d))
        bits = Signal(range(11))
        shift = Signal(10, init=0x3FF)
        m.d.comb += [self.tx.eq(shift[0]), self.data.ready.eq(bits == 0)]
        with m.If(self.data.valid & self.data.ready):
            m.d.sync += [shift.eq(Cat(Const(0, 1), self.data.payload, Const(1, 1))), bits.eq(10), timer.eq(d - 1)]
        with m.Elif(bits != 0):
            with m.If(timer == 0):
                m.d.sync += [shift.eq(Cat(shift[1:], Const(1, 1))), bits.eq(bits - 1), timer.eq(d - 1)]
            with m.Else():
                m.d.sync += timer.eq(timer - 1)
        return m


def _bytes(value, count: int) -> list:
    return [value[8 * i:8 * i + 8] for i in range(count)]


def _response_layout(protocol: Protocol) -> data.StructLayout:
    """An ACK or NAK for the transmitter: its record type, payload bytes and packed payload."""
    word = 8 * max(protocol.records[n].item_bytes for n in ("ack", "nak"))
    return data.StructLayout({"code": 8, "size": 8, "word": word})


def _crc(m: Module, name: str, bits: int):
    """A CRC-16 processor of ``bits``-bit words (``start`` restarts it, ``valid`` adds ``data``)."""
    m.submodules[name] = processor = CRC16(data_width=bits).create()
    return processor


class RequestSignature(wiring.Signature):
    """A one-bit request held until taken: ``valid`` (held), ``ready`` (taken in this cycle)."""

    def __init__(self):
        super().__init__({"valid": Out(1), "ready": In(1)})


class LinkCounters(wiring.Component):
    """The ``counters`` record of the protocol: frames acknowledged (since reset), frames rejected,
    hidden spikes and weight writes (since the last ``clear``; 16 bits each, wrapping), and the
    digest of the weight writes (CRC-16 of their ``new`` values in order, restarted by ``clear``).

    Members
    -------
    spike : In(1)                  -- a hidden spike was sent to the host in this cycle
    weight_write : In(valid, new)  -- the chip's weight writes
    frame_ok, frame_rejected, clear : In(1)    -- strobes of the frame receiver
    record : Out(counters record)
    """

    def __init__(self, protocol: Protocol):
        self._fields = COUNTER_FIELDS
        wbits = protocol.network.readout_weight_bits
        super().__init__({"spike": In(1), "weight_write": In(wiring.Signature({"valid": Out(1), "new": Out(wbits)})),
                          "frame_ok": In(1), "frame_rejected": In(1), "clear": In(1),
                          "record": Out(layouts.struct(self._fields))})

    def elaborate(self, platform):
        m = Module()
        count = {name: Signal(16, name=name) for name in ("frames_ok", "frames_rejected", "hidden_spikes",
                                                          "weight_writes")}
        for name, strobe in (("frames_ok", self.frame_ok), ("frames_rejected", self.frame_rejected),
                             ("hidden_spikes", self.spike), ("weight_writes", self.weight_write.valid)):
            with m.If(strobe):
                m.d.sync += count[name].eq(count[name] + 1)
        with m.If(self.clear):
            m.d.sync += [count[name].eq(0) for name in ("frames_rejected", "hidden_spikes", "weight_writes")]
        digest = _crc(m, "digest", len(self.weight_write.new))
        m.d.comb += [digest.start.eq(self.clear), digest.valid.eq(self.weight_write.valid & ~self.clear),
                     digest.data.eq(self.weight_write.new)]
        values = {**count, "write_digest": digest.crc}
        m.d.comb += [getattr(self.record, f.name).eq(values[f.name]) for f in self._fields]
        return m


class FrameReceiver(wiring.Component):
    """Receives, checks and executes the command frames of ``protocol`` from the UART's bytes.

    Members
    -------
    byte : In(8), got : In(1), framing : In(1)   -- the UART receiver's byte, its valid, a framing error
    <command> : Out(stream of its fields)  -- one per port command of ``protocol``
    rate : Out(rate fields)               -- the learning-rate register
    report_spikes : Out(1)                -- the report mask (hidden spike records on)
    response : Out(stream of code, size, word)  -- the ACK or NAK of each frame
    counters_request, info_request, logits_request : Out(RequestSignature)  -- records asked for
    last_seq : Out(8)                     -- the sequence number of the last frame executed
    frames_ok : In(16)                    -- the counter (for the ACK's word)
    frame_ok, frame_rejected, clear : Out(1)   -- strobes for the counters
    hunting : Out(1)                      -- waiting for the SYNC of the next frame (for observers)

    ``crc_unit``: the CRC-16 processor of the frame being received (observers may read its ``crc``).
    """

    def __init__(self, protocol: Protocol):
        self.protocol = p = protocol
        self._ports = [m for m in p.commands.values() if m.role == "port"]
        self._item_width = 8 * max(msg.item_bytes for msg in p.commands.values())
        members = {"byte": In(8), "got": In(1), "framing": In(1)}
        for msg in self._ports:
            members[msg.name] = Out(stream.Signature(layouts.struct(msg.fields)))
        members.update({
            "rate": Out(layouts.struct(p.commands["rate"].fields)), "report_spikes": Out(1),
            "response": Out(stream.Signature(_response_layout(p))),
            "counters_request": Out(RequestSignature()), "info_request": Out(RequestSignature()),
            "logits_request": Out(RequestSignature()), "last_seq": Out(8), "frames_ok": In(16),
            "frame_ok": Out(1), "frame_rejected": Out(1), "clear": Out(1), "hunting": Out(1),
        })
        super().__init__(members)
        link = p.link
        # The frame being received or executed.
        self._kind = Signal(8)
        self._seq = Signal(8)
        self._executed = Signal()                             # a frame was executed since reset
        self._length = Signal(range(link.buffer_bytes + 1))   # checked against the buffer as it arrives
        self._high = Signal(8)                                # the length's first byte
        self._count = Signal(range(link.buffer_bytes + 1))    # payload bytes received, then executed
        self._crc_rx = Signal(16)
        self._error = Signal(8)
        self._isize = Signal(range(self._item_width // 8 + 1))   # the type's item bytes (0: no such type)
        self._role = Signal(2)                                # 0 port, 1 register, 2 request
        self._ib = Signal(range(self._item_width // 8 + 1))      # byte within the item
        self._item = Signal(self._item_width)
        self._overrun = Signal()
        self.crc_unit = CRC16(data_width=8).create()

    def elaborate(self, platform):
        link = self.protocol.link
        m = Module()
        m.submodules.buffer = buf = Memory(shape=8, depth=link.buffer_bytes, init=[])
        wr, rd = buf.write_port(), buf.read_port()
        m.submodules.crc = crc = self.crc_unit
        m.d.comb += [wr.data.eq(self.byte), wr.addr.eq(self._count), rd.addr.eq(self._count), crc.data.eq(self.byte)]
        idle = Signal(range(link.timeout_cycles + 1))
        with m.If(self.got):
            m.d.sync += idle.eq(0)
        with m.Elif(idle != link.timeout_cycles):
            m.d.sync += idle.eq(idle + 1)
        # The items: shifted in from the top, so an item of n bytes is the top n bytes of ``item``.
        for msg in self._ports:
            port = getattr(self, msg.name)
            top = self._item[self._item_width - 8 * msg.item_bytes:]
            m.d.comb += port.payload.eq(top[:len(port.payload.as_value())])
        with m.If(self.response.valid & self.response.ready):
            m.d.sync += self.response.valid.eq(0)
        with m.FSM(name="rx") as rx_fsm:
            self._receive_states(m, crc, wr, idle == link.timeout_cycles)
            self._execute_states(m, rd)
        m.d.comb += self.hunting.eq(rx_fsm.ongoing("HUNT"))
        # A byte that arrives while a frame executes is lost: reported once the frame is done.
        executing = Cat(rx_fsm.ongoing(s) for s in ("READ", "BYTE", "PUSH", "DONE", "ACK")).any()
        with m.If(self.got & executing):
            m.d.sync += self._overrun.eq(1)
        for request in (self.counters_request, self.info_request, self.logits_request):
            with m.If(request.ready):
                m.d.sync += request.valid.eq(0)
        return m

    def _respond(self, m, record: str, word) -> None:
        r = self.protocol.records[record]
        m.d.sync += [self.response.valid.eq(1), self.response.payload.code.eq(r.code),
                     self.response.payload.size.eq(r.item_bytes), self.response.payload.word.eq(word)]

    def _header_state(self, m, state: str, nxt: str, crc, timed_out) -> None:
        """TYPE, SEQ, LEN0 or LEN1: one header byte, into the CRC."""
        byte, buffer_bytes = self.byte, self.protocol.link.buffer_bytes
        with m.State(state):
            with m.If(self.framing):
                m.d.sync += self._error.eq(ERR_FRAMING)
                m.next = "DRAIN"
            with m.Elif(self.got):
                m.d.comb += crc.valid.eq(1)
                if state == "TYPE":
                    m.d.sync += [self._kind.eq(byte), self._isize.eq(0), self._role.eq(0)]
                    with m.Switch(byte):
                        for msg in self.protocol.commands.values():
                            with m.Case(msg.code):
                                m.d.sync += [self._isize.eq(max(msg.item_bytes, 1)),
                                             self._role.eq({"port": 0, "register": 1, "request": 2}[msg.role])]
                    m.next = nxt
                elif state == "SEQ":
                    m.d.sync += self._seq.eq(byte)
                    m.next = nxt
                elif state == "LEN0":
                    m.d.sync += self._high.eq(byte)
                    m.next = nxt
                else:
                    full = Cat(self._high, byte)
                    m.d.sync += self._length.eq(full)
                    with m.If(full > buffer_bytes):
                        m.d.sync += self._error.eq(ERR_LENGTH)
                        m.next = "DRAIN"
                    with m.Elif(full == 0):
                        m.next = "CRC0"
                    with m.Else():
                        m.next = "PAYLOAD"
            with m.Elif(timed_out):
                m.d.sync += self._error.eq(ERR_TRUNCATED)
                m.next = "NAK"

    def _receive_states(self, m, crc, wr, timed_out) -> None:
        """From SYNC to the CRC check; a bad frame is drained and NAKed."""
        def reject(code):
            m.d.sync += self._error.eq(code)
            m.next = "NAK"

        with m.State("HUNT"):
            m.d.comb += crc.start.eq(1)
            m.d.sync += [self._count.eq(0), self._ib.eq(0)]
            with m.If(self.got & (self.byte == SYNC)):
                m.next = "TYPE"
        for state, nxt in (("TYPE", "SEQ"), ("SEQ", "LEN0"), ("LEN0", "LEN1"), ("LEN1", "PAYLOAD")):
            self._header_state(m, state, nxt, crc, timed_out)
        with m.State("PAYLOAD"):
            m.d.comb += wr.en.eq(self.got & ~self.framing)
            with m.If(self.framing):
                m.d.sync += self._error.eq(ERR_FRAMING)
                m.next = "DRAIN"
            with m.Elif(self.got):
                m.d.comb += crc.valid.eq(1)
                m.d.sync += [self._count.eq(self._count + 1),
                             self._ib.eq(Mux(self._ib + 1 >= self._isize, 0, self._ib + 1))]
                with m.If(self._count + 1 == self._length):
                    m.next = "CRC0"
            with m.Elif(timed_out):
                reject(ERR_TRUNCATED)
        for state, nxt, half in (("CRC0", "CRC1", self._crc_rx[:8]), ("CRC1", "CHECK", self._crc_rx[8:])):
            with m.State(state):
                with m.If(self.framing):
                    m.d.sync += self._error.eq(ERR_FRAMING)
                    m.next = "DRAIN"
                with m.Elif(self.got):
                    m.d.sync += half.eq(self.byte)
                    m.next = nxt
                with m.Elif(timed_out):
                    reject(ERR_TRUNCATED)
        with m.State("CHECK"):
            m.d.sync += [self._count.eq(0), self._ib.eq(0), self._overrun.eq(0)]
            role, length, isize = self._role, self._length, self._isize
            ok_length = Mux(role == 0, self._ib == 0, Mux(role == 1, length == isize, length == 0))
            with m.If(self._crc_rx != crc.crc):
                reject(ERR_CRC)
            with m.Elif(isize == 0):
                reject(ERR_TYPE)
            with m.Elif(~ok_length):
                reject(ERR_LENGTH)
            with m.Elif(self._executed & (self._seq == self.last_seq)):
                m.next = "ACK"                      # a repeat: acknowledged again, not executed again
            with m.Else():
                m.d.sync += [self.last_seq.eq(self._seq), self._executed.eq(1)]
                with m.If(length == 0):
                    m.next = "DONE"
                with m.Else():
                    m.next = "READ"
        with m.State("DRAIN"):                      # discard the rest of a bad frame
            with m.If(timed_out):
                m.next = "NAK"
        with m.State("NAK"):
            with m.If(~self.response.valid):
                self._respond(m, "nak", Cat(self._error, self._kind, self._seq))
                m.d.comb += self.frame_rejected.eq(1)
                m.next = "HUNT"

    def _execute_states(self, m, rd) -> None:
        """A checked frame, item by item from the buffer, then its ACK (or a NAK for an overrun)."""
        p, item, item_width = self.protocol, self._item, self._item_width
        codes = {msg.name: msg.code for msg in p.commands.values()}
        with m.State("READ"):                       # the buffer's read port has the address
            m.next = "BYTE"
        with m.State("BYTE"):
            m.d.sync += [item.eq(Cat(item[8:], rd.data)), self._count.eq(self._count + 1)]   # LSB first
            with m.If(self._ib + 1 == self._isize):
                m.d.sync += self._ib.eq(0)
                m.next = "PUSH"
            with m.Else():
                m.d.sync += self._ib.eq(self._ib + 1)
                m.next = "READ"
        with m.State("PUSH"):
            done = self._count == self._length
            with m.Switch(self._kind):
                for msg in self._ports:
                    port = getattr(self, msg.name)
                    with m.Case(msg.code):
                        m.d.comb += port.valid.eq(1)
                        with m.If(port.ready):
                            with m.If(done):
                                m.next = "DONE"
                            with m.Else():
                                m.next = "READ"
                with m.Case(codes["rate"]):
                    top = item[item_width - 8 * p.commands["rate"].item_bytes:]
                    m.d.sync += self.rate.eq(top[:len(self.rate.as_value())])
                    m.next = "DONE"
                with m.Case(codes["report"]):
                    m.d.sync += self.report_spikes.eq(item[item_width - 8])
                    m.next = "DONE"
        with m.State("DONE"):
            with m.Switch(self._kind):
                with m.Case(codes["counters"]):
                    m.d.sync += self.counters_request.valid.eq(1)
                with m.Case(codes["info"]):
                    m.d.sync += self.info_request.valid.eq(1)
                with m.Case(codes["clear"]):
                    m.d.comb += self.clear.eq(1)
                with m.Case(codes["logits"]):
                    m.d.sync += self.logits_request.valid.eq(1)
            m.next = "ACK"
        with m.State("ACK"):
            with m.If(~self.response.valid):
                self._respond(m, "ack", Cat(self._kind, self._seq, self.frames_ok + 1))
                m.d.comb += self.frame_ok.eq(1)
                with m.If(self._overrun):
                    m.d.sync += [self._error.eq(ERR_OVERRUN), self._overrun.eq(0)]
                    m.next = "NAK"
                with m.Else():
                    m.next = "HUNT"


class RecordTransmitter(wiring.Component):
    """Sends the records to the host one at a time, each with the next sequence number (mod 256):
    the sources are offered in turn (response, logit, spike, counters, info, logits again), so no
    source's ready depends on any valid. Every logit sent is kept (one per output); a
    ``logits_request`` sends them all again, in output order, once the logits of every sample begun
    (``sample_end``) have been sent.

    Members
    -------
    response : In(stream of code, size, word)   -- the ACK or NAK of a frame
    logit : In(stream of logit fields), spike : In(stream of output events)  -- the chip's records
    report_spikes : In(1)        -- spike records on (otherwise the chip's spikes are taken and dropped)
    counters_request, info_request, logits_request : In(RequestSignature)
    counters : In(the counters)  -- sent with ``request_seq``, the number of the frame that asked
    sample_end : In(1)           -- the chip took a command that ends a sample (its logits will follow)
    clear : In(1)                -- the samples are counted again from 0 (each logit record names its sample)
    data : Out(stream of bytes)  -- to the UART transmitter
    """

    def __init__(self, protocol: Protocol):
        self.protocol = p = protocol
        super().__init__({
            "response": In(stream.Signature(_response_layout(p))),
            "logit": In(stream.Signature(layouts.struct(logit_fields(p.network)))),
            "spike": In(stream.Signature(layouts.output_event(p.network.core))),
            "report_spikes": In(1),
            "counters_request": In(RequestSignature()), "info_request": In(RequestSignature()),
            "logits_request": In(RequestSignature()), "counters": In(layouts.struct(COUNTER_FIELDS)),
            "request_seq": In(8), "sample_end": In(1), "clear": In(1), "data": Out(stream.Signature(8)),
        })

    def elaborate(self, platform):
        p, rec = self.protocol, self.protocol.records
        m = Module()
        shift = Signal(8 * max(rec[n].item_bytes for n in ("ack", "nak", "logit", "spike")))
        busy = Signal()
        code = Signal(8)
        size = Signal(8)                                # payload bytes of the record being sent
        live = Signal(2)                                # 0: the shift register, 1: counters, 2: info
        index = Signal(8)                               # byte of the frame being sent
        slot = Signal(range(6))
        number = Signal(8)                              # the sequence number of the record being sent
        crc = _crc(m, "crc", 8)
        info = Const(pack_fields(rec["info"].fields, p.info()), 8 * rec["info"].item_bytes)

        outputs = p.network.outputs
        # The values of the logits sent, by output; read a cycle after the address (a block RAM's
        # registered read), which stays put from one resent record to the next.
        m.submodules.kept = kept = Memory(shape=len(self.logit.payload.value), depth=outputs, init=[])
        keep, again = kept.write_port(), kept.read_port()
        pending = Signal(range(2 * outputs + 1))        # logits of the samples begun, not yet sent
        resent = Signal(range(outputs))                 # the output whose logit is sent again next
        taken = self.logit.valid & self.logit.ready
        m.d.comb += [keep.en.eq(taken), keep.addr.eq(self.logit.payload.output), keep.data.eq(self.logit.payload.value),
                     again.addr.eq(resent)]
        again_word = Signal.like(self.logit.payload)
        m.d.comb += [again_word.output.eq(resent), again_word.value.eq(again.data)]
        m.d.sync += pending.eq(pending + Mux(self.sample_end, outputs, 0) - taken)
        sample = Signal(SAMPLE_FIELD.bits)              # samples ended since the last clear
        with m.If(self.clear):
            m.d.sync += sample.eq(0)
        with m.Elif(self.sample_end):
            m.d.sync += sample.eq(sample + 1)
        asked = Signal(ASKED_FIELD.bits)                # the request a counters record answers
        resend = ~busy & (slot == 5) & self.logits_request.valid & (pending == 0)

        with m.If(~busy):
            m.d.sync += slot.eq(Mux(slot == 5, 0, slot + 1))
        m.d.comb += [self.response.ready.eq(~busy & (slot == 0)),
                     self.logit.ready.eq(~busy & (slot == 1)),
                     self.spike.ready.eq(~self.report_spikes | (~busy & (slot == 2))),
                     self.counters_request.ready.eq(~busy & (slot == 3) & self.counters_request.valid),
                     self.info_request.ready.eq(~busy & (slot == 4) & self.info_request.valid),
                     self.logits_request.ready.eq(resend & (resent == outputs - 1))]

        def start(record, word=None, source=0):
            m.d.comb += crc.start.eq(1)
            m.d.sync += [busy.eq(1), code.eq(rec[record].code), size.eq(rec[record].item_bytes), index.eq(0),
                         live.eq(source)]
            if word is not None:
                m.d.sync += shift.eq(word)

        with m.If(~busy):
            with m.Switch(slot):
                with m.Case(0):
                    with m.If(self.response.valid):
                        start("ack", self.response.payload.word)
                        m.d.sync += [code.eq(self.response.payload.code), size.eq(self.response.payload.size)]
                with m.Case(1):
                    with m.If(self.logit.valid):
                        start("logit", Cat(self.logit.payload.as_value(), sample))
                with m.Case(2):
                    with m.If(self.spike.valid & self.report_spikes):
                        start("spike", self.spike.payload.as_value())
                with m.Case(3):
                    with m.If(self.counters_request.valid):
                        start("counters", source=1)
                        m.d.sync += asked.eq(self.request_seq)
                with m.Case(4):
                    with m.If(self.info_request.valid):
                        start("info", source=2)
                with m.Case(5):
                    with m.If(resend):
                        start("logit", Cat(again_word.as_value(), sample))
                        m.d.sync += resent.eq(Mux(resent == outputs - 1, 0, resent + 1))

        payload_byte = Signal(8)
        k = index - HEADER_BYTES
        with m.Switch(live):
            with m.Case(0):
                m.d.comb += payload_byte.eq(shift[:8])
            for source, word, record in ((1, Cat(self.counters.as_value(), asked), "counters"), (2, info, "info")):
                with m.Case(source):
                    with m.Switch(k):
                        for i, b in enumerate(_bytes(word, rec[record].item_bytes)):
                            with m.Case(i):
                                m.d.comb += payload_byte.eq(b)
        out = Signal(8)
        end = HEADER_BYTES + size
        with m.If(index == 0):
            m.d.comb += out.eq(SYNC)
        with m.Elif(index == 1):
            m.d.comb += out.eq(code)
        with m.Elif(index == 2):
            m.d.comb += out.eq(number)
        with m.Elif(index == 3):
            m.d.comb += out.eq(size)
        with m.Elif(index == 4):
            m.d.comb += out.eq(0)
        with m.Elif(index < end):
            m.d.comb += out.eq(payload_byte)
        with m.Elif(index == end):
            m.d.comb += out.eq(crc.crc[:8])
        with m.Else():
            m.d.comb += out.eq(crc.crc[8:])
        m.d.comb += [self.data.valid.eq(busy), self.data.payload.eq(out), crc.data.eq(out)]
        with m.If(self.data.valid & self.data.ready):
            m.d.sync += index.eq(index + 1)
            with m.If((index != 0) & (index < end)):
                m.d.comb += crc.valid.eq(1)
            with m.If((index >= HEADER_BYTES) & (index < end)):
                m.d.sync += shift.eq(shift >> 8)
            with m.If(index == end + TRAILER_BYTES - 1):
                m.d.sync += [busy.eq(0), number.eq(number + 1)]
        return m


class HostLink(wiring.Component):
    """The link of one chip (``protocol``): the UART, the frame receiver, the record transmitter and
    the counters.

    Members
    -------
    rx : In(1), tx : Out(1)           -- the UART pins (idle high)
    <command> : Out(stream of its fields)  -- one per port command of ``protocol``: the items of a frame
    rate : Out(rate fields)           -- the learning-rate register
    logit : In(stream of logit fields), spike : In(stream of output events)  -- the chip's records
    weight_write : In(valid, new)     -- the chip's weight writes, counted and digested (CRC-16 of the
                                         ``new`` values in order)
    """

    def __init__(self, protocol: Protocol):
        self.protocol = protocol
        p = protocol
        self._ports = [m for m in p.commands.values() if m.role == "port"]
        members = {"rx": In(1, init=1), "tx": Out(1, init=1)}
        for msg in self._ports:
            members[msg.name] = Out(stream.Signature(layouts.struct(msg.fields)))
        members["rate"] = Out(layouts.struct(p.commands["rate"].fields))
        members["logit"] = In(stream.Signature(layouts.struct(logit_fields(p.network))))
        members["spike"] = In(stream.Signature(layouts.output_event(p.network.core)))
        members["weight_write"] = In(wiring.Signature({"valid": Out(1),
                                                       "new": Out(p.network.readout_weight_bits)}))
        super().__init__(members)

    def elaborate(self, platform):
        p = self.protocol
        m = Module()
        m.submodules.uart_rx = urx = UartRx(p.link.divisor)
        m.submodules.uart_tx = utx = UartTx(p.link.divisor)
        m.submodules.receiver = rx = FrameReceiver(p)
        m.submodules.transmitter = tx = RecordTransmitter(p)
        m.submodules.counters = counters = LinkCounters(p)
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx),
                     rx.byte.eq(urx.data), rx.got.eq(urx.valid), rx.framing.eq(urx.framing)]
        for msg in self._ports:
            wiring.connect(m, getattr(rx, msg.name), wiring.flipped(getattr(self, msg.name)))
        m.d.comb += self.rate.eq(rx.rate)
        wiring.connect(m, rx.response, tx.response)
        wiring.connect(m, rx.counters_request, tx.counters_request)
        wiring.connect(m, rx.info_request, tx.info_request)
        wiring.connect(m, rx.logits_request, tx.logits_request)
        m.d.comb += [tx.request_seq.eq(rx.last_seq), tx.clear.eq(rx.clear)]
        wiring.connect(m, wiring.flipped(self.logit), tx.logit)
        wiring.connect(m, wiring.flipped(self.spike), tx.spike)
        wiring.connect(m, tx.data, utx.data)
        command = self.command
        m.d.comb += [tx.report_spikes.eq(rx.report_spikes), tx.counters.eq(counters.record),
                     tx.sample_end.eq(command.valid & command.ready & (command.payload.op == OP_END)),
                     rx.frames_ok.eq(counters.record.frames_ok),
                     counters.frame_ok.eq(rx.frame_ok), counters.frame_rejected.eq(rx.frame_rejected),
                     counters.clear.eq(rx.clear),
                     counters.spike.eq(self.spike.valid & self.spike.ready &
                                       (self.spike.payload.kind == EventKind.SPIKE))]
        wiring.connect(m, wiring.flipped(self.weight_write), counters.weight_write)
        return m
