"""Bounded formal proofs of the router (``rtl.router.Router``) with SymbiYosys.

The proof harness wraps one router. Its inputs are free (the solver picks any value every cycle)
within these assumptions: the reset stays low (the registers start at their reset values), a source
holds valid and the address until the router takes it, the tables are written only before the first
event, never in a cycle that offers one, and ``watch`` (the address followed) never changes and is
offered once, at a time of the solver's choosing, and taken when offered; every other address flows
freely, any number of times.

Asserted every cycle up to the bound:

* valid/ready: an out-port whose event is not taken shows the same event (valid, address) next cycle;
* no FIFO overflow: no in-port FIFO ever holds more than ``fifo_depth`` entries;
* nothing duplicated: no out-port sends the watched event more often than its in-port's table mask
  (a shadow of the tables written) names that out-port: at most once, and never when unnamed;
* nothing lost: while an out-port is still owed the watched event, the event is inside the router in
  a place from which that out-port will get it (the ingress register, a FIFO entry whose mask names
  the out-port and that has not been served to it, or that out-port's output register).

Because ``watch`` is free, this holds for every address. The cover mode shows the assumptions admit
traffic (the watched event leaves through every out-port), so the proof is not vacuous.

Unbounded: the valid/ready rule and the FIFO bound are proved in every reachable state by
k-induction (mode "prove", 12 cycles). Conservation holds to the bound only: it is not 12-inductive
(the induction step starts from states no run reaches, where the harness's counts of the watched
event disagree with what the FIFOs hold), and the invariants that would close it are not written.

SymbiYosys runs through ``cosim.formal.run_sby``.
"""

from __future__ import annotations

from pathlib import Path

from amaranth.hdl import Assert, Assume, Cover, Module, Mux, ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from ...model.config import bits_for
from ...rtl.router import Router
from ..formal import FormalError, run_sby

__all__ = ["RouterProof", "prove_router", "FormalError"]


class RouterProof(wiring.Component):
    """The harness: a :class:`Router` and its properties. ``fault``: a deliberately wrong property
    ("overflow": claims the FIFOs hold one entry fewer; "forget-output": leaves the output register
    out of the places that hold an owed event) that the proof must refute, to show the properties have
    teeth."""

    def __init__(self, in_ports, out_ports, sources: int, fifo_depth: int, fault: str | None = None,
                 checks=("handshake", "overflow", "conservation")):
        self.checks = checks
        self.router = Router(in_ports, out_ports, sources, fifo_depth)
        self.fault = fault
        r = self.router
        a = r.address_bits
        members = {}
        for p in r.in_ports:
            members[f"in_{p}_valid"] = In(1)
            members[f"in_{p}_addr"] = In(a)
        for q in r.out_ports:
            members[f"out_{q}_ready"] = In(1)
        members["table_valid"] = In(1)
        members["table_port"] = In(bits_for(len(r.in_ports)))
        members["table_source"] = In(a)
        members["table_mask"] = In(len(r.out_ports))
        members["watch"] = In(a)
        super().__init__(members)

    @property
    def fill(self) -> int:
        """Cycles to fill every FIFO and ingress register and start emptying them."""
        r = self.router
        return len(r.in_ports) * (r.fifo_depth + 1) + 3

    def elaborate(self, platform):
        m = Module()
        m.submodules.router = r = self.router
        n_in, n_out = len(r.in_ports), len(r.out_ports)
        ins = [getattr(r, f"in_{p}") for p in r.in_ports]
        outs = [getattr(r, f"out_{q}") for q in r.out_ports]

        m.d.comb += Assume(~ResetSignal())
        first = Signal(init=1)
        m.d.sync += first.eq(0)
        watch_prev = Signal.like(self.watch)
        m.d.sync += watch_prev.eq(self.watch)
        with m.If(~first):
            m.d.comb += Assume(self.watch == watch_prev)

        # Tables: written through the port before any traffic; a shadow copy for the counts.
        started = Signal()
        any_valid = Signal()
        m.d.comb += any_valid.eq(sum(getattr(self, f"in_{p}_valid") for p in r.in_ports) != 0)
        m.d.comb += [r.table.valid.eq(self.table_valid), r.table.payload.port.eq(self.table_port),
                     r.table.payload.source.eq(self.table_source), r.table.payload.mask.eq(self.table_mask)]
        m.d.comb += Assume(~self.table_valid | (~started & ~any_valid))
        m.d.comb += Assume(self.table_port < n_in)
        with m.If(any_valid):
            m.d.sync += started.eq(1)
        shadow = [Signal(n_out, name=f"shadow_{p}") for p in range(n_in)]   # the watched source's masks
        for p in range(n_in):
            with m.If(self.table_valid & (self.table_port == p) & (self.table_source == self.watch)):
                m.d.sync += shadow[p].eq(self.table_mask)

        # Sources hold an event until it is taken.
        for p, port in enumerate(ins):
            valid, addr = getattr(self, f"in_{r.in_ports[p]}_valid"), getattr(self, f"in_{r.in_ports[p]}_addr")
            m.d.comb += [port.valid.eq(valid), port.payload.eq(addr)]
            held_v, held_a = Signal(name=f"held_valid_{p}"), Signal.like(addr, name=f"held_addr_{p}")
            m.d.sync += [held_v.eq(valid & ~port.ready), held_a.eq(addr)]
            with m.If(held_v):
                m.d.comb += Assume(valid & (addr == held_a))

        # Valid/ready rule on the out-ports.
        for q, port in enumerate(outs):
            m.d.comb += port.ready.eq(getattr(self, f"out_{r.out_ports[q]}_ready"))
            stalled, stalled_a = Signal(name=f"stalled_{q}"), Signal.like(port.payload, name=f"stalled_addr_{q}")
            m.d.sync += [stalled.eq(port.valid & ~port.ready), stalled_a.eq(port.payload)]
            if "handshake" in self.checks:
                with m.If(stalled):
                    m.d.comb += Assert(port.valid & (port.payload == stalled_a))

        # No FIFO overflow.
        limit = r.fifo_depth - (1 if self.fault == "overflow" else 0)
        if "overflow" in self.checks:
            m.d.comb += [Assert(r.fifo_level[p] <= limit) for p in range(n_in)]

        # Conservation of the watched address: the sources offer it once (any address, at any time),
        # so one event is followed through the router while every other address flows freely.
        taken = Signal()
        offered_watch = sum((ins[p].valid & (ins[p].payload == self.watch)).as_unsigned() for p in range(n_in))
        m.d.comb += Assume(offered_watch <= Mux(taken, 0, 1))
        with m.If(offered_watch != 0):
            m.d.comb += Assume(sum((ins[p].valid & (ins[p].payload == self.watch) & ins[p].ready).as_unsigned()
                                   for p in range(n_in)) != 0)
        expected = [Signal(name=f"expected_{q}") for q in range(n_out)]
        sent = [Signal(2, name=f"sent_{q}") for q in range(n_out)]
        for p in range(n_in):
            with m.If(ins[p].valid & ins[p].ready & (ins[p].payload == self.watch)):
                m.d.sync += taken.eq(1)
                m.d.sync += [expected[q].eq(shadow[p][q]) for q in range(n_out)]
        for q, port in enumerate(outs):
            with m.If(port.valid & port.ready & (port.payload == self.watch) & (sent[q] != 3)):
                m.d.sync += sent[q].eq(sent[q] + 1)
            if "conservation" in self.checks:
                m.d.comb += Assert(sent[q] <= expected[q])
        # Nothing lost: while an out-port is still owed the watched event, the event is in the router
        # in a place from which that out-port will get it: the ingress register (its mask still being
        # read), a FIFO entry whose mask names the out-port and that has not yet been served to it,
        # or that out-port's output register.
        slots = []                        # per in-port, every FIFO entry through a read port of its own
        for st in r.state:
            ports = [st["fifo"].read_port(domain="comb") for _ in range(r.fifo_depth)]
            m.d.comb += [port.addr.eq(i) for i, port in enumerate(ports)]
            slots.append([port.data for port in ports])
        in_ingress = sum((st["ing_valid"] & (st["ing_addr"] == self.watch)).as_unsigned() for st in r.state) != 0
        for q, port in enumerate(outs):
            places = [in_ingress, port.valid & (port.payload == self.watch)]
            for p, st in enumerate(r.state):
                depth, head, count = r.fifo_depth, st["head"], r.fifo_level[p]
                for i, slot in enumerate(slots[p]):
                    offset = Mux(head <= i, i - head, i + depth - head)
                    served = Mux(head == i, st["done"][q], 0)
                    places.append((offset < count) & (slot.addr == self.watch) & slot.mask[q] & ~served)
            owed = taken & (sent[q] < expected[q])
            if self.fault == "forget-output":
                places = places[:1] + places[2:]
            if "conservation" in self.checks:
                m.d.comb += Assert(~owed | (sum(v.as_unsigned() for v in places) != 0))
        m.d.comb += Cover(sum(s.as_unsigned() for s in sent) == n_out)
        return m


def prove_router(in_ports="NESW", out_ports="NESW", sources: int = 4, fifo_depth: int = 2, depth: int | None = None,
                 workdir: Path | str = "build/formal", fault: str | None = None, mode: str = "bmc",
                 checks=("handshake", "overflow", "conservation")) -> dict:
    """Runs the bounded proof (``mode`` "bmc"), the k-induction ("prove") or the cover check
    ("cover") of one router configuration for ``depth`` cycles (default: long enough to fill every
    FIFO and empty it). Returns {"passed", "mode", "depth", "log"}; the counterexample trace is in
    ``workdir``."""
    harness = RouterProof(in_ports, out_ports, sources, fifo_depth, fault=fault, checks=checks)
    depth = depth or 2 * harness.fill
    name = (f"router_{''.join(in_ports)}_{''.join(out_ports)}_s{sources}_d{fifo_depth}_{mode}"
            f"{'_' + fault if fault else ''}")
    return run_sby(harness, "router_proof", name, mode=mode, depth=depth, workdir=workdir)
