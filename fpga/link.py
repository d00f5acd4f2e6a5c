"""The host link's gateware: a UART (8N1) and the frame engine of ``fpga/protocol.py``.

:class:`HostLink` receives a frame into its buffer while checking it (SYNC, type, length, CRC-16),
and only a frame that passes every check is executed: its items are pushed, one at a time, into the
chip port its type names (or set a register, or ask for a record), then it is acknowledged. A
frame that fails is dropped whole and answered with a NAK naming the reason; after an error found
inside a frame (too long, a framing error) the rest of it is discarded until the line is idle. The
records to the host (ACK/NAK, the chip's logits and hidden spikes, counters, identity) share the
transmitter; a chip stream's record is taken into the transmitter's register, so the chip waits
(its stream's ready) while the line is busy.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..model.config import pack_fields
from ..rtl import layouts
from ..rtl.layouts import EventKind
from .protocol import (
    CRC16_INIT,
    CRC16_POLY,
    ERR_CRC,
    ERR_FRAMING,
    ERR_LENGTH,
    ERR_OVERRUN,
    ERR_TRUNCATED,
    ERR_TYPE,
    HEADER_BYTES,
    SYNC,
    TRAILER_BYTES,
    Protocol,
    crc_terms,
)

__all__ = ["UartRx", "UartTx", "HostLink", "crc_next"]


def crc_next(state, value, bits: int, poly: int = CRC16_POLY, width: int = 16):
    """The CRC register after ``bits`` bits of ``value`` (``protocol.crc_update``), in one cycle."""
    return Cat(*[(state & sm).xor() ^ (value & dm).xor() if dm else (state & sm).xor()
                 for sm, dm in crc_terms(bits, poly, width)])


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


class HostLink(wiring.Component):
    """The link of one chip (``protocol``).

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
        members["logit"] = In(stream.Signature(layouts.struct(p.records["logit"].fields)))
        members["spike"] = In(stream.Signature(layouts.output_event(p.network.core)))
        members["weight_write"] = In(wiring.Signature({"valid": Out(1),
                                                       "new": Out(p.network.readout_weight_bits)}))
        super().__init__(members)

    def elaborate(self, platform):
        p = self.protocol
        link = p.link
        m = Module()
        m.submodules.uart_rx = urx = UartRx(link.divisor)
        m.submodules.uart_tx = utx = UartTx(link.divisor)
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx)]
        m.submodules.buffer = buf = Memory(shape=8, depth=link.buffer_bytes, init=[])
        wr, rd = buf.write_port(), buf.read_port()

        commands = list(p.commands.values())
        item_width = 8 * max(msg.item_bytes for msg in commands)
        codes = {msg.name: msg.code for msg in commands}

        # -- counters --------------------------------------------------------------------------------
        frames_ok, frames_rejected = Signal(16), Signal(16)
        hidden_spikes, weight_writes = Signal(16), Signal(16)
        digest = Signal(16, init=CRC16_INIT)
        clear = Signal()
        with m.If(self.spike.valid & self.spike.ready & (self.spike.payload.kind == EventKind.SPIKE)):
            m.d.sync += hidden_spikes.eq(hidden_spikes + 1)
        with m.If(self.weight_write.valid):
            m.d.sync += [weight_writes.eq(weight_writes + 1),
                         digest.eq(crc_next(digest, self.weight_write.new, len(self.weight_write.new)))]

        # -- receiver ----------------------------------------------------------------------------------
        byte, got = urx.data, urx.valid
        kind = Signal(8)
        length = Signal(range(link.buffer_bytes + 1))   # checked against the buffer as it arrives
        high = Signal(8)                                # the length's first byte
        count = Signal(range(link.buffer_bytes + 1))    # payload bytes received, then executed
        crc = Signal(16, init=CRC16_INIT)
        crc_rx = Signal(16)
        idle = Signal(range(link.timeout_cycles + 1))
        error = Signal(8)
        isize = Signal(range(item_width // 8 + 1))      # the type's item bytes (0: no such type)
        role = Signal(2)                                # 0 port, 1 register, 2 request
        ib = Signal(range(item_width // 8 + 1))         # byte within the item
        item = Signal(item_width)
        overrun = Signal()
        report_spikes = Signal()

        # The response slot (ACK / NAK) the transmitter takes; counters and info requests.
        resp_valid, resp_code, resp_size, resp_word = Signal(), Signal(8), Signal(8), Signal(32)
        want_counters, want_info = Signal(), Signal()

        m.d.comb += [wr.data.eq(byte), wr.addr.eq(count), rd.addr.eq(count)]
        with m.If(got):
            m.d.sync += idle.eq(0)
        with m.Elif(idle != link.timeout_cycles):
            m.d.sync += idle.eq(idle + 1)
        timed_out = idle == link.timeout_cycles

        def reject(code):
            m.d.sync += [error.eq(code)]
            m.next = "NAK"

        # The items: shifted in from the top, so an item of n bytes is the top n bytes of ``item``.
        for msg in self._ports:
            port = getattr(self, msg.name)
            top = item[item_width - 8 * msg.item_bytes:]
            m.d.comb += port.payload.eq(top[:len(port.payload.as_value())])

        with m.FSM(name="rx") as rx_fsm:
            with m.State("HUNT"):
                m.d.sync += [crc.eq(CRC16_INIT), count.eq(0), ib.eq(0)]
                with m.If(got & (byte == SYNC)):
                    m.next = "TYPE"
            for state, nxt in (("TYPE", "LEN0"), ("LEN0", "LEN1"), ("LEN1", "PAYLOAD")):
                with m.State(state):
                    with m.If(urx.framing):
                        m.d.sync += error.eq(ERR_FRAMING)
                        m.next = "DRAIN"
                    with m.Elif(got):
                        m.d.sync += crc.eq(crc_next(crc, byte, 8))
                        if state == "TYPE":
                            m.d.sync += [kind.eq(byte), isize.eq(0), role.eq(0)]
                            with m.Switch(byte):
                                for msg in commands:
                                    with m.Case(msg.code):
                                        m.d.sync += [isize.eq(max(msg.item_bytes, 1)),
                                                     role.eq({"port": 0, "register": 1, "request": 2}[msg.role])]
                            m.next = nxt
                        elif state == "LEN0":
                            m.d.sync += high.eq(byte)
                            m.next = nxt
                        else:
                            full = Cat(high, byte)
                            m.d.sync += length.eq(full)
                            with m.If(full > link.buffer_bytes):
                                m.d.sync += error.eq(ERR_LENGTH)
                                m.next = "DRAIN"
                            with m.Elif(full == 0):
                                m.next = "CRC0"
                            with m.Else():
                                m.next = "PAYLOAD"
                    with m.Elif(timed_out):
                        reject(ERR_TRUNCATED)
            with m.State("PAYLOAD"):
                m.d.comb += wr.en.eq(got & ~urx.framing)
                with m.If(urx.framing):
                    m.d.sync += error.eq(ERR_FRAMING)
                    m.next = "DRAIN"
                with m.Elif(got):
                    m.d.sync += [crc.eq(crc_next(crc, byte, 8)), count.eq(count + 1),
                                 ib.eq(Mux(ib + 1 >= isize, 0, ib + 1))]
                    with m.If(count + 1 == length):
                        m.next = "CRC0"
                with m.Elif(timed_out):
                    reject(ERR_TRUNCATED)
            for state, nxt in (("CRC0", "CRC1"), ("CRC1", "CHECK")):
                with m.State(state):
                    with m.If(urx.framing):
                        m.d.sync += error.eq(ERR_FRAMING)
                        m.next = "DRAIN"
                    with m.Elif(got):
                        if state == "CRC0":
                            m.d.sync += crc_rx[:8].eq(byte)
                        else:
                            m.d.sync += crc_rx[8:].eq(byte)
                        m.next = nxt
                    with m.Elif(timed_out):
                        reject(ERR_TRUNCATED)
            with m.State("CHECK"):
                m.d.sync += [count.eq(0), ib.eq(0), overrun.eq(0)]
                ok_length = Mux(role == 0, ib == 0, Mux(role == 1, length == isize, length == 0))
                with m.If(crc_rx != crc):
                    reject(ERR_CRC)
                with m.Elif(isize == 0):
                    reject(ERR_TYPE)
                with m.Elif(~ok_length):
                    reject(ERR_LENGTH)
                with m.Elif(length == 0):
                    m.next = "DONE"
                with m.Else():
                    m.next = "READ"
            with m.State("DRAIN"):                      # discard the rest of a bad frame
                with m.If(timed_out):
                    m.next = "NAK"
            with m.State("NAK"):
                with m.If(~resp_valid):
                    m.d.sync += [resp_valid.eq(1), resp_code.eq(p.records["nak"].code),
                                 resp_size.eq(p.records["nak"].item_bytes),
                                 resp_word.eq(Cat(error, kind, frames_rejected + 1)),
                                 frames_rejected.eq(frames_rejected + 1)]
                    m.next = "HUNT"

            # -- execution: a checked frame, item by item --------------------------------------------
            with m.State("READ"):                       # the buffer's read port has the address
                m.next = "BYTE"
            with m.State("BYTE"):
                m.d.sync += [item.eq(Cat(item[8:], rd.data)), count.eq(count + 1)]   # LSB first
                with m.If(ib + 1 == isize):
                    m.d.sync += ib.eq(0)
                    m.next = "PUSH"
                with m.Else():
                    m.d.sync += ib.eq(ib + 1)
                    m.next = "READ"
            with m.State("PUSH"):
                done = count == length
                with m.Switch(kind):
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
                        m.d.sync += report_spikes.eq(item[item_width - 8])
                        m.next = "DONE"
            with m.State("DONE"):
                with m.Switch(kind):
                    with m.Case(codes["counters"]):
                        m.d.sync += want_counters.eq(1)
                    with m.Case(codes["info"]):
                        m.d.sync += want_info.eq(1)
                    with m.Case(codes["clear"]):
                        m.d.comb += clear.eq(1)
                m.next = "ACK"
            with m.State("ACK"):
                with m.If(~resp_valid):
                    m.d.sync += [resp_valid.eq(1), resp_code.eq(p.records["ack"].code),
                                 resp_size.eq(p.records["ack"].item_bytes), resp_word.eq(Cat(kind, frames_ok + 1)),
                                 frames_ok.eq(frames_ok + 1)]
                    with m.If(overrun):
                        m.d.sync += [error.eq(ERR_OVERRUN), overrun.eq(0)]
                        m.next = "NAK"
                    with m.Else():
                        m.next = "HUNT"
        # A byte that arrives while a frame executes is lost: reported once the frame is done.
        executing = Cat(rx_fsm.ongoing(s) for s in ("READ", "BYTE", "PUSH", "DONE", "ACK")).any()
        with m.If(got & executing):
            m.d.sync += overrun.eq(1)

        with m.If(clear):
            m.d.sync += [frames_rejected.eq(0), hidden_spikes.eq(0), weight_writes.eq(0), digest.eq(CRC16_INIT)]

        # -- transmitter: one record at a time -------------------------------------------------------
        # Sources are offered in turn (``slot``), so no source's ready depends on any valid.
        rec = p.records
        shift_width = 8 * max(rec[n].item_bytes for n in ("ack", "nak", "logit", "spike"))
        shift = Signal(shift_width)
        busy = Signal()
        code = Signal(8)
        size = Signal(8)                                # payload bytes of the record being sent
        live = Signal(2)                                # 0: the shift register, 1: counters, 2: info
        index = Signal(8)                               # byte of the frame being sent
        tx_crc = Signal(16, init=CRC16_INIT)
        slot = Signal(range(5))
        counters = Cat(frames_ok, frames_rejected, hidden_spikes, weight_writes, digest)
        assert len(counters) == sum(f.bits for f in rec["counters"].fields)
        info = Const(pack_fields(rec["info"].fields, p.info()), 8 * rec["info"].item_bytes)

        with m.If(~busy):
            m.d.sync += slot.eq(Mux(slot == 4, 0, slot + 1))
        m.d.comb += [self.logit.ready.eq(~busy & (slot == 1)),
                     self.spike.ready.eq(~report_spikes | (~busy & (slot == 2)))]

        def start(record, word=None, source=0):
            m.d.sync += [busy.eq(1), code.eq(rec[record].code), size.eq(rec[record].item_bytes), index.eq(0),
                         live.eq(source), tx_crc.eq(CRC16_INIT)]
            if word is not None:
                m.d.sync += shift.eq(word)

        with m.If(~busy):
            with m.Switch(slot):
                with m.Case(0):
                    with m.If(resp_valid):
                        start("ack", resp_word)
                        m.d.sync += [resp_valid.eq(0), code.eq(resp_code), size.eq(resp_size)]
                with m.Case(1):
                    with m.If(self.logit.valid):
                        start("logit", self.logit.payload.as_value())
                with m.Case(2):
                    with m.If(self.spike.valid & report_spikes):
                        start("spike", self.spike.payload.as_value())
                with m.Case(3):
                    with m.If(want_counters):
                        start("counters", source=1)
                        m.d.sync += want_counters.eq(0)
                with m.Case(4):
                    with m.If(want_info):
                        start("info", source=2)
                        m.d.sync += want_info.eq(0)

        payload_byte = Signal(8)
        k = index - HEADER_BYTES
        with m.Switch(live):
            with m.Case(0):
                m.d.comb += payload_byte.eq(shift[:8])
            with m.Case(1):
                with m.Switch(k):
                    for i, b in enumerate(_bytes(counters, rec["counters"].item_bytes)):
                        with m.Case(i):
                            m.d.comb += payload_byte.eq(b)
            with m.Case(2):
                with m.Switch(k):
                    for i, b in enumerate(_bytes(info, rec["info"].item_bytes)):
                        with m.Case(i):
                            m.d.comb += payload_byte.eq(b)
        out = Signal(8)
        end = HEADER_BYTES + size
        with m.If(index == 0):
            m.d.comb += out.eq(SYNC)
        with m.Elif(index == 1):
            m.d.comb += out.eq(code)
        with m.Elif(index == 2):
            m.d.comb += out.eq(size)
        with m.Elif(index == 3):
            m.d.comb += out.eq(0)
        with m.Elif(index < end):
            m.d.comb += out.eq(payload_byte)
        with m.Elif(index == end):
            m.d.comb += out.eq(tx_crc[:8])
        with m.Else():
            m.d.comb += out.eq(tx_crc[8:])
        m.d.comb += [utx.data.valid.eq(busy), utx.data.payload.eq(out)]
        with m.If(utx.data.valid & utx.data.ready):
            m.d.sync += index.eq(index + 1)
            with m.If((index != 0) & (index < end)):
                m.d.sync += tx_crc.eq(crc_next(tx_crc, out, 8))
            with m.If((index >= HEADER_BYTES) & (index < end)):
                m.d.sync += shift.eq(shift >> 8)
            with m.If(index == end + TRAILER_BYTES - 1):
                m.d.sync += busy.eq(0)
        return m
