"""Bounded formal proof of the host link's frame engine (``fpga.link.FrameReceiver``) with SymbiYosys.

The harness wraps one frame receiver. Its inputs are free: the solver picks every cycle's byte, its
valid and a framing error, every command port's ready, the response's ready, the requests' ready and
the frame counter; the reset stays low (the registers start at their reset values). A frame monitor
of the harness parses the bytes itself: a frame starts at a SYNC the receiver takes while it hunts
(its ``hunting`` output, the one thing the monitor reads of the receiver's state), then type,
sequence number, length, payload and CRC, counted from the length it received; a framing error
makes the frame bad. The CRC over the frame is the receiver's own processor's (``crc_unit``, the
library's ``fpga.protocol.CRC16``): the proof is about what the receiver does with the bytes, the
CRC it computed and the CRC it received, not about the CRC's algebra (two CRC circuits compared over
a whole frame are a hard problem for the solver; the simulations compare the CRC with the host's).

Asserted every cycle up to the bound:

* nothing bad executes: a command port's transfer, a change of the rate or report register, a request
  raised or a clear happens only for a frame the monitor saw whole, with the right CRC, a known type,
  a length its type allows (a whole number of items of a port command, none among them; one item of
  a register; none of a request) and a sequence number other than that of the last frame executed
  (a repeat is ACKed, never executed again);
* one ACK or NAK per frame: the responses other than an overrun NAK never outnumber the frames begun,
  and equal them whenever the receiver hunts again; an overrun NAK follows an ACK;
* every ACK is for a frame the monitor saw whole and good, and every NAK of a whole frame names its
  reason: a bad CRC, else an unknown type, else a bad length.

The cover mode shows the assumptions admit the frames that matter (an executed port item, a repeat
ACKed, a NAK for a bad CRC), so the proof is not vacuous.
"""

from __future__ import annotations

from pathlib import Path

from amaranth.hdl import Assert, Assume, Cat, Const, Cover, Module, Mux, ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from ...fpga.link import FrameReceiver
from ...fpga.protocol import ERR_CRC, ERR_LENGTH, ERR_OVERRUN, ERR_TYPE, SYNC, LinkConfig, Protocol
from ...model.learning import LearningConfig
from ...model.snn import SRNNConfig
from ..formal import run_sby

__all__ = ["FAULTS", "LinkProof", "PROOF_PROTOCOL", "prove_link"]

# A small chip's protocol with the smallest frame buffer the link allows.
PROOF_PROTOCOL = Protocol(SRNNConfig.make(channels=4, neurons=4, outputs=2, lanes=2), LearningConfig(),
                          LinkConfig(clock_hz=4_000_000, baud=1_000_000, buffer_bytes=16, timeout_bytes=2))
FAULTS = ("every-frame-acked", "crc-reason")     # wrong properties the proof must refute


class LinkProof(wiring.Component):
    """The harness: a :class:`FrameReceiver` of ``protocol``, its frame monitor and the properties.
    ``fault``: a deliberately wrong property that the proof must refute, to show the properties have
    teeth ("every-frame-acked": claims no frame is ever NAKed; "crc-reason": claims a bad CRC is NAKed
    as an unknown type)."""

    def __init__(self, protocol: Protocol = PROOF_PROTOCOL, fault: str | None = None):
        if fault is not None and fault not in FAULTS:
            raise ValueError(f"fault {fault!r} is unknown; allowed: {', '.join(FAULTS)}.")
        self.protocol, self.fault = protocol, fault
        self.receiver = FrameReceiver(protocol)
        self.ports = [m for m in protocol.commands.values() if m.role == "port"]
        members = {"byte": In(8), "got": In(1), "framing": In(1), "response_ready": In(1), "frames_ok": In(16),
                   **{f"{m.name}_ready": In(1) for m in self.ports},
                   **{f"{r}_ready": In(1) for r in ("counters", "info", "logits")}}
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.receiver = rx = self.receiver
        m.d.comb += Assume(~ResetSignal())
        m.d.comb += [rx.byte.eq(self.byte), rx.got.eq(self.got), rx.framing.eq(self.framing),
                     rx.response.ready.eq(self.response_ready), rx.frames_ok.eq(self.frames_ok)]
        for msg in self.ports:
            m.d.comb += getattr(rx, msg.name).ready.eq(getattr(self, f"{msg.name}_ready"))
        requests = {r: getattr(rx, f"{r}_request") for r in ("counters", "info", "logits")}
        for r, request in requests.items():
            m.d.comb += request.ready.eq(getattr(self, f"{r}_ready"))

        frame = self._monitor(m, rx)
        executed = self._executions(m, rx, requests)
        self._responses(m, rx, frame)
        # Nothing bad executes.
        m.d.comb += Assert(~executed | (frame["whole"] & frame["good"] & ~frame["repeat"]))
        port_transfer = Const(0)
        for msg in self.ports:
            port = getattr(rx, msg.name)
            port_transfer = port_transfer | (port.valid & port.ready)
        m.d.comb += Cover(port_transfer)
        return m

    def _monitor(self, m: Module, rx) -> dict:
        """The monitor's view of the current frame: its fields, whole (every byte to the CRC's
        second), good (CRC, type and length right, no framing error), a repeat (a good frame with the
        number of the last good one, which was executed)."""
        p, buffer_bytes = self.protocol, self.protocol.link.buffer_bytes
        header = Signal(range(6))                     # header bytes received (type, seq, len lo, len hi)
        kind, seq, length = Signal(8), Signal(8), Signal(16)
        payload = Signal(range(buffer_bytes + 2))     # payload bytes received
        crc_bytes, crc_rx = Signal(range(3)), Signal(16)
        self.frame_begins = begins = Signal()
        m.d.comb += begins.eq(rx.hunting & self.got & (self.byte == SYNC))
        crc = Signal(16)
        m.d.comb += crc.eq(rx.crc_unit.crc)
        active, bad = Signal(), Signal()
        last_seq, any_executed, repeat = Signal(8), Signal(), Signal()
        whole = active & (crc_bytes == 2)
        codes = {msg.code: msg for msg in p.commands.values()}
        # The byte within the current item, counted over the payload with the type's item size.
        item_bytes = Signal(8)
        with m.Switch(kind):
            for code, msg in codes.items():
                with m.Case(code):
                    m.d.comb += item_bytes.eq(max(1, msg.item_bytes))
        within = Signal(8)
        known = Const(0)
        length_ok = Const(0)
        for code, msg in codes.items():
            is_type = kind == code
            known = known | is_type
            if msg.role == "port":
                fits = (length <= buffer_bytes) & (within == 0)
            elif msg.role == "register":
                fits = length == msg.item_bytes
            else:
                fits = length == 0
            length_ok = length_ok | (is_type & fits)
        crc_ok = crc == crc_rx
        good = ~bad & crc_ok & known & length_ok
        with m.If(rx.hunting & ~begins & ~whole):
            m.d.sync += active.eq(0)                  # the receiver dropped the frame (timed out)
        with m.If(begins):
            m.d.sync += [active.eq(1), bad.eq(0), header.eq(0), payload.eq(0), crc_bytes.eq(0),
                         length.eq(0), within.eq(0)]
        with m.Elif(active & ~whole):
            with m.If(self.framing):
                m.d.sync += bad.eq(1), active.eq(0)
            with m.Elif(self.got):
                with m.If(header < 4):
                    m.d.sync += header.eq(header + 1)
                    with m.Switch(header):
                        with m.Case(0):
                            m.d.sync += kind.eq(self.byte)
                        with m.Case(1):
                            m.d.sync += seq.eq(self.byte)
                        with m.Case(2):
                            m.d.sync += length[:8].eq(self.byte)
                        with m.Case(3):
                            m.d.sync += length[8:].eq(self.byte)
                            with m.If(Cat(length[:8], self.byte) > buffer_bytes):
                                m.d.sync += bad.eq(1), active.eq(0)       # drained by the receiver
                with m.Elif(payload < length):
                    m.d.sync += [payload.eq(payload + 1), within.eq(Mux(within + 1 == item_bytes, 0, within + 1))]
                with m.Else():
                    m.d.sync += [crc_bytes.eq(crc_bytes + 1),
                                 crc_rx.eq(Mux(crc_bytes == 0, Cat(self.byte, crc_rx[8:]),
                                               Cat(crc_rx[:8], self.byte)))]
        # The last frame executed: the monitor's own record of it, set as a whole good frame ends.
        ended = Signal()
        m.d.sync += ended.eq(whole)
        with m.If(whole & ~ended):
            m.d.sync += repeat.eq(good & any_executed & (seq == last_seq))
            with m.If(good & ~(any_executed & (seq == last_seq))):
                m.d.sync += [last_seq.eq(seq), any_executed.eq(1)]
        with m.If(begins):
            m.d.sync += repeat.eq(0)
        return {"whole": whole & ended, "good": good, "repeat": repeat, "crc_ok": crc_ok, "known": known,
                "length_ok": length_ok, "bad": bad}

    def _executions(self, m: Module, rx, requests) -> Signal:
        """Anything the frame engine does to the chip in this cycle."""
        executed = Signal()
        events = [rx.clear]
        for msg in self.ports:
            port = getattr(rx, msg.name)
            events.append(port.valid & port.ready)
        for register in (rx.rate, rx.report_spikes):
            value = register.as_value() if hasattr(register, "as_value") else register
            before = Signal.like(value, name=f"before_{len(events)}")
            m.d.sync += before.eq(value)
            events.append(value != before)
        for request in requests.values():
            before = Signal(name=f"before_{len(events)}")
            m.d.sync += before.eq(request.valid)
            events.append(request.valid & ~before)
        m.d.comb += executed.eq(Cat(*events).any())
        return executed

    def _responses(self, m: Module, rx, frame: dict) -> None:
        """One ACK or NAK per frame, each for the right reason."""
        p = self.protocol
        valid = rx.response.valid
        before = Signal()
        m.d.sync += before.eq(valid)
        rise = valid & ~before
        code, word = rx.response.payload.code, rx.response.payload.word
        is_ack = rise & (code == p.records["ack"].code)
        is_nak = rise & (code == p.records["nak"].code)
        error = word[:8]
        overrun = is_nak & (error == ERR_OVERRUN)
        frames, answered, acks, overruns = Signal(6), Signal(6), Signal(6), Signal(6)
        with m.If(self.frame_begins & (frames != 63)):
            m.d.sync += frames.eq(frames + 1)
        with m.If((is_ack | (is_nak & ~overrun)) & (answered != 63)):
            m.d.sync += answered.eq(answered + 1)
        with m.If(is_ack & (acks != 63)):
            m.d.sync += acks.eq(acks + 1)
        with m.If(overrun & (overruns != 63)):
            m.d.sync += overruns.eq(overruns + 1)
        now = answered + (is_ack | (is_nak & ~overrun))
        m.d.comb += Assert(now <= frames)
        m.d.comb += Assert(overruns + overrun <= acks)
        with m.If(rx.hunting & (frames != 63)):
            m.d.comb += Assert(now == frames)
        with m.If(is_ack):
            m.d.comb += Assert(frame["whole"] & frame["good"])
        if self.fault == "every-frame-acked":
            m.d.comb += Assert(~is_nak)
        whole = frame["whole"] & ~frame["bad"]
        with m.If(is_nak & ~overrun & whole):
            m.d.comb += Assert(~frame["good"])
            with m.If(~frame["crc_ok"]):
                m.d.comb += Assert(error == (ERR_TYPE if self.fault == "crc-reason" else ERR_CRC))
            with m.Elif(~frame["known"]):
                m.d.comb += Assert(error == ERR_TYPE)
            with m.Else():
                m.d.comb += Assert(error == ERR_LENGTH)
        m.d.comb += Cover(is_ack & frame["repeat"])
        m.d.comb += Cover(is_nak & (error == ERR_CRC))


def prove_link(depth: int = 20, workdir: Path | str = "build/formal", fault: str | None = None,
               mode: str = "bmc") -> dict:
    """Runs the bounded proof (``mode`` "bmc") or the cover check ("cover") of the frame engine of
    ``PROOF_PROTOCOL`` for ``depth`` cycles (20: a frame with a payload, its ACK and the next frame
    begun, in about a minute; each cycle more costs more). Returns ``cosim.formal.run_sby``'s result."""
    harness = LinkProof(fault=fault)
    name = f"link_{mode}_d{depth}{'_' + fault if fault else ''}"
    return run_sby(harness, "link_proof", name, mode=mode, depth=depth, workdir=workdir)
