"""The synapse memory: one component per organisation of ``model.synapse``, generated from a
model memory (its physical memories, their words, the command and result words), serving forward
accesses, transposed accesses and updates, with an access trace and access counters for the testbench.

Ports
-----
commands : In(stream of ``command_fields``)
    ``CMD_FORWARD`` (pre), ``CMD_TRANSPOSED`` (post), ``CMD_UPDATE`` (post, pre, value).
results : Out(valid, payload of ``result_fields``)
    One per synapse an access delivers, in the model's order: the neuron (target or source) and the
    weight. No backpressure: the consumer (the LIF core's accumulate stage, the learning engine)
    takes one every cycle.
busy : Out(1)
    A command is being served or results are still to come.
trace : Out(one port per physical memory port, see :func:`trace_ports`)
    ``valid``, ``address``, ``data`` of each access, reported the cycle after it is issued (with the
    data a read returned, or the data a write stored).
counters : Out(``<memory>_reads``, ``<memory>_writes``)
    Accesses per physical memory since the reset (what ``model.synapse`` counts).

Every physical memory serves one access per cycle on each port: one read port each, a second read
port on the pointer memory of ``csr`` and ``func-rowcol`` (the two pointers of a row are read
together), one write port on the weight memory. An access's reads go in the model's order.

Schedules (``bench memory`` measures them). Forward accesses are pipelined so that commands follow
each other with no bubble: a command is taken in the cycle the previous one issues its last read.
``dense`` and ``func-pure`` read one word a cycle; ``csr`` reads a row's pointers, then an index (and
its weight) a cycle; ``func-rowcol`` reads a slice's pointers a cycle ahead into a small FIFO,
dropping empty slices, while its indices are read one a cycle; ``bitmap`` and ``func-bmp`` read bitmap
words (and pointers) ahead into a small FIFO, dropping empty words, while the weights are read one a
cycle.
``dense``, ``func-pure``, ``func-bmp`` and ``func-rowcol`` serve transposed accesses the same way;
the other transposed accesses and all updates run one at a time once the forward pipeline is
empty. An update of a synapse that has no storage writes nothing (the model refuses it).
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..model import synapse as model
from ..model.config import ConfigError, bits_for
from .checked import CheckedComponent
from .layouts import struct

__all__ = ["COUNTER_BITS", "trace_ports", "SynapseMemory"]

COUNTER_BITS = 32
FIFO_DEPTH = 8


def _written(organisation: str) -> str:
    return "kernel" if organisation == "func-pure" else "weights"


def trace_ports(memory: model.SynapseMemory) -> list[tuple[str, str, bool]]:
    """``(port, memory, write)`` of the trace, in the order a cycle's accesses of one memory are taken."""
    out = []
    for pm in memory.memories():
        out.append((f"{pm.name}_r0", pm.name, False))
        if pm.name == "pointer" and memory.name in ("csr", "func-rowcol"):
            out.append((f"{pm.name}_r1", pm.name, False))
        if pm.name == _written(memory.name):
            out.append((f"{pm.name}_w", pm.name, True))
    return out


def _popcount(value):
    return sum((value[i] for i in range(len(value))), Const(0, bits_for(len(value) + 1)))


def _lowest(m, bits, name):
    """The index of the lowest set bit of ``bits`` (0 if none)."""
    pos = Signal(range(max(2, len(bits))), name=name)
    for i in reversed(range(len(bits))):
        with m.If(bits[i]):
            m.d.comb += pos.eq(i)
    return pos


def _highest(m, bits, name):
    pos = Signal(range(max(2, len(bits))), name=name)
    for i in range(len(bits)):
        with m.If(bits[i]):
            m.d.comb += pos.eq(i)
    return pos


class SynapseMemory(CheckedComponent):
    """The RTL of one organisation holding ``memory``'s contents (a ``model.synapse`` memory of one
    of the six organisations; a convolution in a matrix organisation is model-only)."""

    @classmethod
    def check(cls, memory: model.SynapseMemory) -> None:
        if type(memory) not in model.ORGANISATIONS.values():
            raise ConfigError(f"{type(memory).__name__} has no RTL; allowed: a memory of one of the organisations "
                              f"{', '.join(model.ORGANISATIONS)} (make_memory without image= for the matrix ones).")
        if memory.name == "bitmap" and memory.bitmap_word & (memory.bitmap_word - 1):
            raise ConfigError(f"bitmap_word={memory.bitmap_word} has no RTL; allowed: a power of two.")

    def __init__(self, memory: model.SynapseMemory):
        self._memory = memory
        self._contents = memory.contents()
        self._physical = {pm.name: pm for pm in memory.memories()}
        self._ports = trace_ports(memory)
        access = {port: Out(wiring.Signature({
            "valid": Out(1), "address": Out(bits_for(self._physical[name].depth)),
            "data": Out(self._physical[name].width)})) for port, name, _ in self._ports}
        counters = {}
        for name in self._physical:
            counters[f"{name}_reads"] = Out(COUNTER_BITS)
            counters[f"{name}_writes"] = Out(COUNTER_BITS)
        self.command_layout = struct(model.command_fields(memory), {"kind": unsigned(2)})
        self.result_layout = struct(model.result_fields(memory))
        super().__init__({
            "commands": In(stream.Signature(self.command_layout)),
            "results": Out(wiring.Signature({"valid": Out(1), "payload": Out(self.result_layout)})),
            "busy": Out(1),
            "trace": Out(wiring.Signature(access)),
            "counters": Out(wiring.Signature(counters)),
        })

    @property
    def memory(self) -> model.SynapseMemory:
        return self._memory

    # -- shared structure ---------------------------------------------------------------------------
    def elaborate(self, platform):
        m = Module()
        mem = self._memory
        # Per port: enable, address (and data for the write port), driven by the organisation's logic.
        self._en, self._addr, self._wdata, self._rdata = {}, {}, {}, {}
        for name, pm in self._physical.items():
            storage = Memory(shape=unsigned(pm.width), depth=pm.depth, init=self._contents[name])
            m.submodules[f"{name}_memory"] = storage
            reads = writes = 0
            for port, mname, write in self._ports:
                if mname != name:
                    continue
                en, addr = Signal(name=f"{port}_en"), Signal(range(pm.depth), name=f"{port}_addr")
                self._en[port], self._addr[port] = en, addr
                trace = getattr(self.trace, port)
                m.d.sync += [trace.valid.eq(en), trace.address.eq(addr)]
                if write:
                    wr = storage.write_port()
                    wdata = Signal(pm.width, name=f"{port}_data")
                    self._wdata[port] = wdata
                    m.d.comb += [wr.en.eq(en), wr.addr.eq(addr), wr.data.eq(wdata)]
                    m.d.sync += trace.data.eq(wdata)
                    writes = en
                else:
                    rd = storage.read_port()
                    m.d.comb += [rd.en.eq(en), rd.addr.eq(addr), trace.data.eq(rd.data)]
                    self._rdata[port] = rd.data
                    reads = reads + en
            counter = self.counters
            m.d.sync += [getattr(counter, f"{name}_reads").eq(getattr(counter, f"{name}_reads") + reads),
                         getattr(counter, f"{name}_writes").eq(getattr(counter, f"{name}_writes") + writes)]

        # Results: the weight read in the previous cycle, with the neuron registered at its issue.
        self._res_valid = Signal()
        self._res_neuron = Signal(data.StructLayout({f.name: unsigned(f.bits) for f in model.result_fields(mem)[:-1]}))
        m.d.sync += self._res_valid.eq(0)
        weight = self._rdata[f"{_written(mem.name)}_r0"]
        m.d.comb += [self.results.valid.eq(self._res_valid),
                     self.results.payload.weight.eq(weight)]
        for f in model.result_fields(mem)[:-1]:
            m.d.comb += getattr(self.results.payload, f.name).eq(getattr(self._res_neuron, f.name))
        self._cmd = self.commands.payload
        getattr(self, "_" + mem.name.replace("-", "_"))(m)
        return m

    def _read(self, m, port, address):
        m.d.comb += [self._en[port].eq(1), self._addr[port].eq(address)]

    def _write(self, m, port, address, value):
        m.d.comb += [self._en[port].eq(1), self._addr[port].eq(address), self._wdata[port].eq(value)]

    def _result(self, m, **neuron):
        m.d.sync += self._res_valid.eq(1)
        for name, value in neuron.items():
            m.d.sync += getattr(self._res_neuron, name).eq(value)

    # -- dense (Crossbar) ---------------------------------------------------------------------------
    def _dense(self, m):
        mem, cmd = self._memory, self._cmd
        run = Signal()
        transposed = Signal()
        addr = Signal(range(max(2, mem.pre * mem.post)))
        neuron = Signal(range(max(2, mem.pre, mem.post)))
        limit = Mux(transposed, mem.pre - 1, mem.post - 1)
        last = run & (neuron == limit)
        update = Signal()
        ready = ~update & (~run | last)
        m.d.comb += [self.commands.ready.eq(ready), self.busy.eq(run | update | self._res_valid)]
        with m.If(run):
            self._read(m, "weights_r0", addr)
            self._result(m, neuron=neuron)
            m.d.sync += [addr.eq(addr + Mux(transposed, mem.post, 1)), neuron.eq(neuron + 1)]
            with m.If(last):
                m.d.sync += run.eq(0)
        value = Signal(mem.weight_bits)
        with m.If(update):      # the update's one write, the cycle after it was taken
            self._write(m, "weights_w", addr, value)
            m.d.sync += update.eq(0)
        with m.If(self.commands.valid & ready):
            m.d.sync += neuron.eq(0)
            with m.Switch(cmd.kind):
                with m.Case(model.CMD_FORWARD):
                    m.d.sync += [run.eq(1), transposed.eq(0), addr.eq(cmd.pre * mem.post)]
                with m.Case(model.CMD_TRANSPOSED):
                    m.d.sync += [run.eq(1), transposed.eq(1), addr.eq(cmd.post)]
                with m.Case(model.CMD_UPDATE):
                    m.d.sync += [update.eq(1), addr.eq(cmd.pre * mem.post + cmd.post), value.eq(cmd.value)]

    # -- shared control of the sequential accesses ----------------------------------------------------
    def _modes(self, m, stream_ready, stream_busy, streamed, start_stream, locate):
        """The command FSM: in STREAM, commands of the kinds ``streamed`` start the forward pipeline
        (``start_stream()``, in the cycle they are taken) whenever ``stream_ready``; any other command
        is registered (``self._l``), waits for the pipeline to drain (``stream_busy`` low) and runs the
        states ``locate(first_state)`` adds, which end by going back to "STREAM"."""
        cmd = self._cmd
        self._l = l = Signal.like(cmd)
        with m.FSM(name="mode") as fsm:
            with m.State("STREAM"):
                m.d.comb += self.commands.ready.eq(stream_ready)
                with m.If(self.commands.valid & stream_ready):
                    kinds = [k for k in (model.CMD_FORWARD, model.CMD_TRANSPOSED, model.CMD_UPDATE) if k in streamed]
                    with m.If(sum((cmd.kind == k for k in kinds), Const(0, 2)) != 0 if kinds else Const(0)):
                        start_stream()
                    with m.Else():
                        m.d.sync += l.eq(cmd)
                        m.next = "DRAIN"
            with m.State("DRAIN"):
                with m.If(~stream_busy):
                    m.next = "LOCATE"
            locate("LOCATE")
        m.d.comb += self.busy.eq(stream_busy | ~fsm.ongoing("STREAM") | self._res_valid)

    def _next_row(self, m, row, last_row, again):
        """After one row of a sequential access: the next row (state ``again``) or back to STREAM."""
        with m.If((self._l.kind == model.CMD_UPDATE) | (row == last_row)):
            m.next = "STREAM"
        with m.Else():
            m.d.sync += row.eq(row + 1)
            m.next = again

    # -- csr (PB-CSR) ---------------------------------------------------------------------------------
    def _csr(self, m):
        mem, cmd = self._memory, self._cmd
        pw = self._physical["pointer"].width
        p0, p1 = self._rdata["pointer_r0"], self._rdata["pointer_r1"]
        index = self._rdata["index_r0"]
        st_ptr, run = Signal(), Signal()
        k, end = Signal(pw), Signal(pw)
        cur_k, cur_end = Mux(st_ptr, p0, k), Mux(st_ptr, p1, end)
        issuing = (st_ptr | run) & (cur_k < cur_end)
        last = ~issuing | (cur_k + 1 == cur_end)
        from_index = Signal()
        m.d.sync += [st_ptr.eq(0), from_index.eq(issuing), run.eq(issuing & (cur_k + 1 != cur_end))]
        with m.If(issuing):
            self._read(m, "index_r0", cur_k)
            self._read(m, "weights_r0", cur_k)
            m.d.sync += [self._res_valid.eq(1), k.eq(cur_k + 1), end.eq(cur_end)]
        m.d.comb += self.results.payload.neuron.eq(Mux(from_index, index, self._res_neuron.neuron))

        def start():
            self._read(m, "pointer_r0", cmd.pre)
            self._read(m, "pointer_r1", cmd.pre + 1)
            m.d.sync += st_ptr.eq(1)

        def locate(first):
            l = self._l
            row = Signal(range(max(2, mem.pre)))
            with m.State(first):
                m.d.sync += row.eq(Mux(l.kind == model.CMD_UPDATE, l.pre, 0))
                m.next = "PTR"
            with m.State("PTR"):
                self._read(m, "pointer_r0", row)
                self._read(m, "pointer_r1", row + 1)
                m.next = "START"

            def found(k):
                with m.If(index == l.post):
                    self._weight_access(m, k, neuron=row)

            # the row's indices ascend: the scan stops at the first >= post
            self._index_scan(m, index >= l.post, found, lambda: self._next_row(m, row, mem.pre - 1, "PTR"))

        self._modes(m, last, st_ptr | run, {model.CMD_FORWARD}, start, locate)

    def _weight_access(self, m, address, **neuron):
        """The located synapse: written by an update, read (a result) by a transposed access."""
        with m.If(self._l.kind == model.CMD_UPDATE):
            self._write(m, "weights_w", address, self._l.value)
        with m.Else():
            self._read(m, "weights_r0", address)
            self._result(m, **neuron)

    # -- read-ahead FIFOs (bitmap, func-bmp, func-rowcol) ----------------------------------------------
    def _ahead_fifo(self, m, name, entry_layout):
        """A FIFO of ``FIFO_DEPTH`` entries between a reader that runs ahead and its consumer; returns
        it and a view of its head."""
        m.submodules[name] = queue = fifo.SyncFIFO(width=entry_layout.size, depth=FIFO_DEPTH)
        return queue, data.View(entry_layout, queue.r_data)

    # -- index scans of an update or a transposed access (csr, func-rowcol) ---------------------------
    def _index_scan(self, m, stop, on_stop, leave):
        """States START (a range's two pointers arrive: its first index read, or ``leave()`` if it is
        empty) and SCAN (``index[k]`` arrives: ``on_stop(k)`` and ``leave()`` where ``stop``, else the
        next index, or ``leave()`` after the range's last)."""
        pw = self._physical["pointer"].width
        p0, p1 = self._rdata["pointer_r0"], self._rdata["pointer_r1"]
        k, end = Signal(pw, name="scan_k"), Signal(pw, name="scan_end")
        with m.State("START"):
            m.d.sync += [k.eq(p0), end.eq(p1)]
            with m.If(p0 < p1):
                self._read(m, "index_r0", p0)
                m.next = "SCAN"
            with m.Else():
                leave()
        with m.State("SCAN"):
            with m.If(stop):
                on_stop(k)
                leave()
            with m.Elif(k + 1 < end):
                self._read(m, "index_r0", k + 1)
                m.d.sync += k.eq(k + 1)
            with m.Else():
                leave()

    def _below(self, m, word, pos, name):
        """``popcount(word & ((1 << pos) - 1))``: the stored weights before bit ``pos``."""
        mask = Signal(len(word), name=f"{name}_mask")
        m.d.comb += mask.eq((Const(1, len(word) + 1) << pos) - 1)
        return _popcount(word & mask)

    # -- bitmap (PB-BMP) ------------------------------------------------------------------------------
    def _bitmap(self, m):
        mem, cmd = self._memory, self._cmd
        R, bw = mem.row_words, mem.bitmap_word
        lg = bw.bit_length() - 1
        pw = self._physical["pointer"].width
        word_data, pointer_data = self._rdata["bitmap_r0"], self._rdata["pointer_r0"]
        entry = data.StructLayout({"bits": unsigned(bw), "base": unsigned(pw), "k": unsigned(bits_for(R))})
        words, head = self._ahead_fifo(m, "words", entry)

        # reader: the row's words one a cycle (and its pointer with the first), ahead into the FIFO
        r_run, r_first = Signal(), Signal()
        r_addr = Signal(range(max(2, mem.pre * R)))
        r_left = Signal(range(R + 1))
        r_k = Signal(bits_for(R))
        f_valid, f_first = Signal(), Signal()
        f_k = Signal(bits_for(R))
        f_base = Signal(pw)
        room = words.level + f_valid < FIFO_DEPTH
        r_issue = r_run & room
        m.d.sync += f_valid.eq(0)
        with m.If(r_issue):
            self._read(m, "bitmap_r0", r_addr)
            with m.If(r_first):
                self._read(m, "pointer_r0", r_addr)
            m.d.sync += [f_valid.eq(1), f_first.eq(r_first), f_k.eq(r_k), r_addr.eq(r_addr + 1), r_k.eq(r_k + 1),
                         r_left.eq(r_left - 1), r_first.eq(0)]
            with m.If(r_left == 1):
                m.d.sync += r_run.eq(0)
        base = Mux(f_first, pointer_data, f_base)
        with m.If(f_valid):
            m.d.sync += f_base.eq(base + _popcount(word_data))
            with m.If(word_data != 0):
                m.d.comb += [words.w_en.eq(1), words.w_data.eq(Cat(word_data, base, f_k))]

        # consumer: one weight a cycle, the word's bits in ascending order (addresses are consecutive)
        c_bits = Signal(bw)
        c_addr = Signal(pw)
        c_k = Signal(bits_for(R))
        pos = _lowest(m, c_bits, "bit")
        with m.If(c_bits != 0):
            self._read(m, "weights_r0", c_addr)
            self._result(m, neuron=Cat(pos[:lg], c_k))
            m.d.sync += [c_addr.eq(c_addr + 1), c_bits.eq(c_bits & (c_bits - 1))]
        with m.If(((c_bits & (c_bits - 1)) == 0) & words.r_rdy):
            m.d.comb += words.r_en.eq(1)
            m.d.sync += [c_bits.eq(head.bits), c_addr.eq(head.base), c_k.eq(head.k)]

        def start():
            m.d.sync += [r_run.eq(1), r_first.eq(1), r_addr.eq(cmd.pre * R), r_left.eq(R), r_k.eq(0)]

        def locate(first):
            l = self._l
            row = Signal(range(max(2, mem.pre)))
            address = Signal.like(r_addr)
            word = Signal(bw)
            bit = l.post[:lg] if lg else Const(0, 1)
            with m.State(first):
                m.d.sync += row.eq(Mux(l.kind == model.CMD_UPDATE, l.pre, 0))
                m.next = "WORD"
            with m.State("WORD"):
                m.d.comb += address.eq(row * R + (l.post >> lg))
                self._read(m, "bitmap_r0", address)
                m.d.sync += r_addr.eq(address)          # the reader is idle: its register holds it
                m.next = "CHECK"
            with m.State("CHECK"):
                m.d.sync += word.eq(word_data)
                with m.If(word_data.bit_select(bit, 1)):
                    self._read(m, "pointer_r0", r_addr)
                    m.next = "POINTER"
                with m.Else():
                    self._next_row(m, row, mem.pre - 1, "WORD")
            with m.State("POINTER"):
                self._weight_access(m, pointer_data + self._below(m, word, bit, "locate"), neuron=row)
                self._next_row(m, row, mem.pre - 1, "WORD")

        busy = r_run | f_valid | words.r_rdy | (c_bits != 0)
        self._modes(m, ~r_run | (r_issue & (r_left == 1)), busy, {model.CMD_FORWARD}, start, locate)

    # -- convolutions: the address arithmetic shared by the functional organisations -----------------
    def _conv_geometry(self):
        cout, cin, kh, kw = self._memory.kernel_shape
        h, w = self._memory.image
        return cout, cin, kh, kw, h, w

    def _context_layout(self):
        cout, cin, kh, kw, h, w = self._conv_geometry()
        return data.StructLayout({"transposed": unsigned(1), "fixed": unsigned(bits_for(max(cout, cin))),
                                  "y": unsigned(bits_for(h)), "x": unsigned(bits_for(w)), "mask": unsigned(kh * kw)})

    def _context(self, m, cmd):
        """From a forward (pre) or transposed (post) command: the direction, the channel that stays
        fixed, the neuron's row and column, and the kernel positions that are in range."""
        cout, cin, kh, kw, h, w = self._conv_geometry()
        ctx = Signal(self._context_layout(), name="context")
        t = cmd.kind == model.CMD_TRANSPOSED
        m.d.comb += [ctx.transposed.eq(t), ctx.fixed.eq(Mux(t, cmd.post_c, cmd.pre_c)),
                     ctx.y.eq(Mux(t, cmd.post_y, cmd.pre_y)), ctx.x.eq(Mux(t, cmd.post_x, cmd.pre_x))]

        def inside(v, lo, hi):       # lo <= v <= hi for constants lo, hi (v unsigned)
            return (v >= max(lo, 0)) & (v <= hi) if hi >= 0 else Const(0)

        for p in range(kh * kw):
            dy, dx = p // kw - kh // 2, p % kw - kw // 2
            # forward: the target y - dy, x - dx; transposed: the source y + dy, x + dx, in the image
            ok = Mux(t, inside(ctx.y, -dy, h - 1 - dy) & inside(ctx.x, -dx, w - 1 - dx),
                     inside(ctx.y, dy, h - 1 + dy) & inside(ctx.x, dx, w - 1 + dx))
            m.d.comb += ctx.mask[p].eq(ok)
        return ctx

    def _slice(self, ctx, channel):
        """The slice ``co * Cin + ci``: ``channel`` is ``co`` forward and ``ci`` transposed."""
        cin = self._conv_geometry()[1]
        return Mux(ctx.transposed, ctx.fixed * cin + channel, channel * cin + ctx.fixed)

    def _last_channel(self, ctx, channel):
        """Whether ``channel`` is the last a forward (``Cout``) or transposed (``Cin``) access visits."""
        cout, cin = self._conv_geometry()[:2]
        return channel == Mux(ctx.transposed, cin - 1, cout - 1)

    def _conv_neuron(self, ctx, channel, ky, kx):
        """The result's neuron fields: the target (forward) or source (transposed) of kernel position
        ``(ky, kx)``."""
        _, _, kh, kw, _, _ = self._conv_geometry()
        ph, pw = kh // 2, kw // 2
        return {"neuron_c": channel,
                "neuron_y": Mux(ctx.transposed, ctx.y + ky - ph, ctx.y + ph - ky),
                "neuron_x": Mux(ctx.transposed, ctx.x + kx - pw, ctx.x + pw - kx)}

    def _position_tables(self):
        kh, kw = self._conv_geometry()[2:4]
        return (Array(Const(p // kw, bits_for(kh)) for p in range(kh * kw)),
                Array(Const(p % kw, bits_for(kw)) for p in range(kh * kw)))

    def _update_position(self, m):
        """The kernel word an update addresses: slice, position, and whether the pair is connected."""
        cout, cin, kh, kw, h, w = self._conv_geometry()
        l = self._l
        dy, dx = Signal(range(-h, h + kh)), Signal(range(-w, w + kw))
        m.d.comb += [dy.eq(l.pre_y - l.post_y + kh // 2), dx.eq(l.pre_x - l.post_x + kw // 2)]
        connected = (dy >= 0) & (dy < kh) & (dx >= 0) & (dx < kw)
        pos = Signal(range(kh * kw))
        m.d.comb += pos.eq(dy[:bits_for(kh)] * kw + dx[:bits_for(kw)])
        return l.post_c * cin + l.pre_c, pos, connected

    # -- func-pure (Func-Pure) ------------------------------------------------------------------------
    def _func_pure(self, m):
        cout, cin, kh, kw, h, w = self._conv_geometry()
        cmd = self._cmd
        ctx = Signal(self._context_layout())
        run = Signal()
        ch = Signal(range(max(cout, cin)))
        ky, ky_lo, ky_hi = Signal(range(kh)), Signal(range(kh)), Signal(range(kh))
        kx, kx_lo, kx_hi = Signal(range(kw)), Signal(range(kw)), Signal(range(kw))
        t = ctx.transposed
        ky_end, kx_end = Mux(t, ky_hi, ky_lo), Mux(t, kx_hi, kx_lo)
        last = run & (kx == kx_end) & (ky == ky_end) & self._last_channel(ctx, ch)
        with m.If(run):
            slice_ = self._slice(ctx, ch)
            self._read(m, "kernel_r0", (slice_ * kh + ky) * kw + kx)
            self._result(m, **self._conv_neuron(ctx, ch, ky, kx))
            with m.If(kx != kx_end):
                m.d.sync += kx.eq(Mux(t, kx + 1, kx - 1))
            with m.Else():
                m.d.sync += kx.eq(Mux(t, kx_lo, kx_hi))
                with m.If(ky != ky_end):
                    m.d.sync += ky.eq(Mux(t, ky + 1, ky - 1))
                with m.Else():
                    m.d.sync += [ky.eq(Mux(t, ky_lo, ky_hi)), ch.eq(ch + 1)]
            with m.If(last):
                m.d.sync += run.eq(0)

        def span(v, size, k, transposed):
            """The in-range kernel positions ``lo..hi`` along one axis (never empty)."""
            u = Mux(transposed, size - 1 - v + k // 2, v + k // 2)
            return Mux(u > size - 1, u - (size - 1), 0), Mux(u > k - 1, k - 1, u)

        def start():
            new = self._context(m, cmd)
            (ylo, yhi), (xlo, xhi) = span(new.y, h, kh, new.transposed), span(new.x, w, kw, new.transposed)
            m.d.sync += [run.eq(1), ctx.eq(new), ch.eq(0), ky_lo.eq(ylo), ky_hi.eq(yhi), kx_lo.eq(xlo),
                         kx_hi.eq(xhi), ky.eq(Mux(new.transposed, ylo, yhi)), kx.eq(Mux(new.transposed, xlo, xhi))]

        def locate(first):
            with m.State(first):
                slice_, pos, connected = self._update_position(m)
                with m.If(connected):
                    self._write(m, "kernel_w", slice_ * (kh * kw) + pos, self._l.value)
                m.next = "STREAM"

        self._modes(m, ~run | last, run, {model.CMD_FORWARD, model.CMD_TRANSPOSED}, start, locate)

    # -- func-bmp (Func-BMP) --------------------------------------------------------------------------
    def _func_bmp(self, m):
        cout, cin, kh, kw, h, w = self._conv_geometry()
        n = kh * kw
        cmd = self._cmd
        pw = self._physical["pointer"].width
        word_data, pointer_data = self._rdata["bitmap_r0"], self._rdata["pointer_r0"]
        cl = self._context_layout()
        channel = unsigned(bits_for(max(cout, cin)))
        entry = data.StructLayout({"hits": unsigned(n), "word": unsigned(n), "base": unsigned(pw),
                                   "channel": channel, "context": cl})
        words, head = self._ahead_fifo(m, "words", entry)

        # reader: a slice's bitmap word a cycle; where it has hits in range, its pointer the cycle after
        ctx = Signal(cl)
        r_run = Signal()
        r_ch = Signal(channel)
        s1 = Signal(data.StructLayout({"valid": unsigned(1), "slice": unsigned(bits_for(cout * cin)),
                                       "channel": channel, "context": cl}))
        s2 = Signal(data.StructLayout({"valid": unsigned(1), "hits": unsigned(n), "word": unsigned(n),
                                       "channel": channel, "context": cl}))
        room = words.level + s1.valid + s2.valid < FIFO_DEPTH
        r_issue = r_run & room
        r_last = r_issue & self._last_channel(ctx, r_ch)
        m.d.sync += [s1.valid.eq(0), s2.valid.eq(0)]
        with m.If(r_issue):
            slice_ = self._slice(ctx, r_ch)
            self._read(m, "bitmap_r0", slice_)
            m.d.sync += [s1.valid.eq(1), s1.slice.eq(slice_), s1.channel.eq(r_ch), s1.context.eq(ctx),
                         r_ch.eq(r_ch + 1)]
            with m.If(r_last):
                m.d.sync += r_run.eq(0)
        hits = word_data & s1.context.mask
        with m.If(s1.valid & (hits != 0)):
            self._read(m, "pointer_r0", s1.slice)
            m.d.sync += [s2.valid.eq(1), s2.hits.eq(hits), s2.word.eq(word_data), s2.channel.eq(s1.channel),
                         s2.context.eq(s1.context)]
        with m.If(s2.valid):
            m.d.comb += [words.w_en.eq(1),
                         words.w_data.eq(Cat(s2.hits, s2.word, pointer_data, s2.channel, s2.context))]

        # consumer: one weight a cycle, the hits in descending (forward) or ascending (transposed) order
        c = Signal(entry)
        lowest, highest = _lowest(m, c.hits, "lowest"), _highest(m, c.hits, "highest")
        pos = Mux(c.context.transposed, lowest, highest)
        remaining = Signal(n)
        m.d.comb += remaining.eq(c.hits & ~(Const(1, n) << pos))
        ky_of, kx_of = self._position_tables()
        with m.If(c.hits != 0):
            self._read(m, "weights_r0", c.base + self._below(m, c.word, pos, "consumer"))
            self._result(m, **self._conv_neuron(c.context, c.channel, ky_of[pos], kx_of[pos]))
            m.d.sync += c.hits.eq(remaining)
        with m.If((remaining == 0) & words.r_rdy):
            m.d.comb += words.r_en.eq(1)
            m.d.sync += c.eq(head)

        def start():
            m.d.sync += [r_run.eq(1), ctx.eq(self._context(m, cmd)), r_ch.eq(0)]

        def locate(first):
            slice_, pos_u, connected = self._update_position(m)
            word = Signal(n)
            with m.State(first):
                self._read(m, "bitmap_r0", slice_)
                m.next = "CHECK"
            with m.State("CHECK"):
                m.d.sync += word.eq(word_data)
                with m.If(connected & word_data.bit_select(pos_u, 1)):
                    self._read(m, "pointer_r0", slice_)
                    m.next = "POINTER"
                with m.Else():
                    m.next = "STREAM"
            with m.State("POINTER"):
                self._write(m, "weights_w", pointer_data + self._below(m, word, pos_u, "locate"), self._l.value)
                m.next = "STREAM"

        busy = r_run | s1.valid | s2.valid | words.r_rdy | (c.hits != 0)
        self._modes(m, ~r_run | r_last, busy, {model.CMD_FORWARD, model.CMD_TRANSPOSED}, start, locate)

    # -- func-rowcol (Func-RowCol) --------------------------------------------------------------------
    def _func_rowcol(self, m):
        cout, cin, kh, kw, h, w = self._conv_geometry()
        n = kh * kw
        cmd = self._cmd
        pw = self._physical["pointer"].width
        p0, p1 = self._rdata["pointer_r0"], self._rdata["pointer_r1"]
        index = self._rdata["index_r0"]
        cl = self._context_layout()
        channel = unsigned(bits_for(max(cout, cin)))
        entry = data.StructLayout({"k": unsigned(pw), "count": unsigned(pw), "channel": channel, "context": cl})
        slices, head = self._ahead_fifo(m, "slices", entry)
        tail = data.View(entry, slices.w_data)

        # reader: a slice's two pointers a cycle, ahead into the FIFO as (first index, count), empty
        # slices dropped (the first index is the last one for a forward access: it runs backwards)
        ctx = Signal(cl)
        ch = Signal(channel)
        r_run = Signal()
        f_valid = Signal()
        f_ch = Signal(channel)
        f_ctx = Signal(cl)
        last_channel = self._last_channel(ctx, ch)
        r_issue = r_run & (slices.level + f_valid < FIFO_DEPTH)
        m.d.sync += f_valid.eq(0)
        with m.If(r_issue):
            slice_ = self._slice(ctx, ch)
            self._read(m, "pointer_r0", slice_)
            self._read(m, "pointer_r1", slice_ + 1)
            m.d.sync += [f_valid.eq(1), f_ch.eq(ch), f_ctx.eq(ctx), ch.eq(ch + 1)]
            with m.If(last_channel):
                m.d.sync += r_run.eq(0)
        with m.If(f_valid & (p1 != p0)):
            m.d.comb += [slices.w_en.eq(1), tail.k.eq(Mux(f_ctx.transposed, p0, p1 - 1)), tail.count.eq(p1 - p0),
                         tail.channel.eq(f_ch), tail.context.eq(f_ctx)]

        # walker: an index a cycle, slice after slice from the FIFO with no bubble between them
        scan = Signal()
        k, left = Signal(pw), Signal(pw)
        s_ch = Signal(channel)
        s_ctx = Signal(cl)
        cur_ctx = Signal(cl)
        m.d.comb += cur_ctx.eq(Mux(scan, s_ctx, head.context))
        cur_k, cur_left, cur_ch = Mux(scan, k, head.k), Mux(scan, left, head.count), Mux(scan, s_ch, head.channel)
        issuing = scan | slices.r_rdy
        m.d.comb += slices.r_en.eq(~scan)
        # check stage: the index read in the previous cycle, with its slice's context
        c = Signal(data.StructLayout({"valid": unsigned(1), "k": unsigned(pw), "channel": channel, "context": cl}))
        m.d.sync += [c.valid.eq(issuing), scan.eq(issuing & (cur_left != 1))]
        with m.If(issuing):
            self._read(m, "index_r0", cur_k)
            m.d.sync += [c.k.eq(cur_k), c.channel.eq(cur_ch), c.context.eq(cur_ctx), left.eq(cur_left - 1),
                         k.eq(Mux(cur_ctx.transposed, cur_k + 1, cur_k - 1)), s_ch.eq(cur_ch), s_ctx.eq(cur_ctx)]
        ky_of, kx_of = self._position_tables()
        pos = index[:bits_for(n)]
        with m.If(c.valid & c.context.mask.bit_select(pos, 1)):
            self._read(m, "weights_r0", c.k)
            self._result(m, **self._conv_neuron(c.context, c.channel, ky_of[pos], kx_of[pos]))

        def start():
            m.d.sync += [r_run.eq(1), ctx.eq(self._context(m, cmd)), ch.eq(0)]

        def locate(first):
            slice_, pos_u, connected = self._update_position(m)
            with m.State(first):
                self._read(m, "pointer_r0", slice_)
                self._read(m, "pointer_r1", slice_ + 1)
                m.next = "START"

            def leave():
                m.next = "STREAM"

            self._index_scan(m, connected & (index == pos_u), lambda k: self._write(m, "weights_w", k, self._l.value),
                             leave)

        busy = r_run | f_valid | slices.r_rdy | scan | c.valid
        self._modes(m, ~r_run | (r_issue & last_channel), busy, {model.CMD_FORWARD, model.CMD_TRANSPOSED}, start,
                    locate)
