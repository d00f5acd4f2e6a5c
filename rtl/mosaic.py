"""The neuron tile and the Mosaic top: the SRNN of a :class:`~..model.tiles.MosaicConfig`
spread over ``rows x cols`` tiles that exchange their spikes through the mesh fabric of
``rtl.router``, with one readout and learning engine for the chip. ``model.tiles`` states the partition
and why the spikes are ``model.snn.IntegerSRNN``'s bit for bit.

:class:`Mosaic` has the ports of a :class:`~.learning.LearningCore` (the host cannot tell them apart
except by the weight loads, which name a tile, and the routing-table port), so the learning testbench
runs whole few-shot episodes on it unchanged.
"""

from __future__ import annotations

import torch
from amaranth.hdl import Cat, Const, Module, Mux, ResetInserter, Signal
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..model.config import ConfigError
from ..model.learning import OP_END, LearningConfig, command_fields, logit_fields, rate_fields, readout_load_fields
from ..model.router import RoutingTables, mesh_table_fields
from ..model.tiles import MosaicConfig, mosaic_tables
from . import layouts
from .checked import CheckedComponent
from .layouts import EventKind
from .learning import LearningEngine, SpikeMonitorSignature, WeightWriteSignature, connect_engine
from .lif import LIFCore
from .router import MeshFabric, table_write

__all__ = ["NeuronTile", "Mosaic", "REPLAY_WORD"]

REPLAY_WORD = 16        # bits of the arrival map scanned per cycle when a step's spikes are replayed


class NeuronTile(CheckedComponent):
    """Tile ``tile`` of a :class:`MosaicConfig`: its LIF core (the tile's neurons, every input of the
    network; ``weights`` its ``[neurons_per_tile, channels + neurons]`` rows) and its router port.

    The tile keeps the spikes of the current step that reached it (*pending*) and those of the last step
    (*replay*) as maps of one bit per hidden neuron of the network. The mesh's deliveries (always taken,
    one per cycle) go into a map in distributed RAM, a word of ``REPLAY_WORD`` bits per address
    (two banks, pending and replay, that swap roles at a TICK); the core's own spikes go into a register
    of the tile's own neurons, so both can arrive in one cycle. Each bank's words carry a valid flag
    (registers, cleared at reset), so a reset empties the maps without writing the RAM.

    External events go straight to the core. A TICK is taken when the tile is idle (its core's previous
    output TICK has left): the banks swap, the own register moves to its replay copy, and replay is
    scanned a word a cycle: a word with a set bit sends its lowest one, ``j``, to the core as the event
    ``channels + j`` and clears it; an empty word moves the scan on (so the replay is ascending), then
    the TICK. The core's spikes leave with their global address, to ``spikes`` (with its TICKs) and into
    the mesh (``inject``) in the same cycle.

    Members
    -------
    events : In(stream of input_event)      external spikes and TICKs
    core_weights : In(stream of weight_load(tile_core))   loads one word of the core's weights (when idle)
    arrive : In(stream of mesh addresses)   spikes the mesh delivers
    inject : Out(stream of mesh addresses)  the core's spikes, into the mesh
    spikes : Out(stream of output_event(network core))    the core's spikes (global address) and TICKs
    busy : Out(1)                           from taking a TICK until the core's output TICK has left
    """

    @classmethod
    def check(cls, mc: MosaicConfig, tile: int, weights=None) -> None:
        if not isinstance(mc, MosaicConfig):
            raise TypeError(f"mc must be a MosaicConfig, not {mc!r}")
        if not 0 <= tile < mc.tiles:
            raise ConfigError(f"tile {tile} does not exist; allowed: 0..{mc.tiles - 1}.")
        LIFCore.check(mc.tile_core, weights)

    def __init__(self, mc: MosaicConfig, tile: int, weights=None):
        self.mc, self.tile = mc, tile
        self.core = LIFCore(mc.tile_core, weights)
        a = mc.mesh.address_bits
        super().__init__({
            "events": In(stream.Signature(layouts.input_event(mc.tile_core))),
            "core_weights": In(stream.Signature(layouts.weight_load(mc.tile_core))),
            "arrive": In(stream.Signature(a)),
            "inject": Out(stream.Signature(a)),
            "spikes": Out(stream.Signature(layouts.output_event(mc.network.core))),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        mc = self.mc
        n, channels, npt = mc.network.neurons, mc.network.channels, mc.neurons_per_tile
        word = min(REPLAY_WORD, max(2, 1 << (n - 1).bit_length()))      # a power of two
        words = -(-n // word)
        base = self.tile * npt                                            # the own neurons' first address
        m = Module()
        m.submodules.core = core = self.core
        wiring.connect(m, wiring.flipped(self.core_weights), core.weights)

        # -- the core's output: spikes (global addresses) to the readout and the mesh, TICKs to the readout
        out = core.spikes
        out_tick = out.payload.kind == EventKind.TICK
        address = Signal.like(self.spikes.payload.address)
        m.d.comb += address.eq(out.payload.address + base)
        m.d.comb += [
            self.spikes.payload.kind.eq(out.payload.kind),
            self.spikes.payload.address.eq(Mux(out_tick, 0, address)),
            self.inject.payload.eq(address),
            self.spikes.valid.eq(out.valid & (out_tick | self.inject.ready)),
            self.inject.valid.eq(out.valid & ~out_tick & self.spikes.ready),
            out.ready.eq(self.spikes.ready & (out_tick | self.inject.ready)),
        ]
        own_spike = Signal(npt)             # the core's spike taken this cycle, one-hot over its neurons
        with m.If(out.valid & out.ready & ~out_tick):
            m.d.comb += own_spike.eq(Const(1, npt) << out.payload.address)
        own_pending, own_replay = Signal(npt), Signal(npt)

        # -- the delivered spikes' map: two RAM banks, bank ``sel`` pending, the other replaying ------
        sel = Signal()
        take_tick = Signal()
        scan = Signal(range(words + 1))
        low = Signal(range(word))
        emit = Signal()                     # the replay's spike at (scan, low) taken by the core
        m.d.comb += self.arrive.ready.eq(1)
        bit_bits = (word - 1).bit_length()  # an address: its word, then its bit in the word
        arrive_word = self.arrive.payload[bit_bits:]
        arrive_bit = Const(1, word) << self.arrive.payload[:bit_bits]
        replay_word = Signal(word)          # the replay bank's word at ``scan``
        for b in range(2):
            bank = memory.Memory(shape=word, depth=max(2, words), init=[])
            m.submodules[f"map_{b}"] = bank
            wr, rd = bank.write_port(), bank.read_port(domain="comb")
            filled = Signal(words, name=f"filled_{b}")        # words written since reset
            stored = Signal(word, name=f"stored_{b}")
            m.d.comb += stored.eq(Mux(filled.bit_select(rd.addr, 1), rd.data, 0))
            with m.If(sel == b):                              # pending: set the delivered bit
                m.d.comb += [rd.addr.eq(arrive_word), wr.addr.eq(arrive_word), wr.data.eq(stored | arrive_bit),
                             wr.en.eq(self.arrive.valid)]
                with m.If(self.arrive.valid):
                    m.d.sync += filled.bit_select(arrive_word, 1).eq(1)
            with m.Else():                                    # replay: clear the bit sent to the core
                m.d.comb += [rd.addr.eq(scan), wr.addr.eq(scan), wr.data.eq(stored & ~(Const(1, word) << low)),
                             wr.en.eq(emit), replay_word.eq(stored)]

        # the own neurons' replay bits at their global position in the word at ``scan``
        own_word = Signal(word)
        with m.Switch(scan):
            for w in range(base // word, (base + npt - 1) // word + 1):
                with m.Case(w):
                    lo, hi = max(base, w * word), min(base + npt, (w + 1) * word)
                    m.d.comb += own_word.eq(Cat(Const(0, lo - w * word), own_replay[lo - base:hi - base],
                                                Const(0, (w + 1) * word - hi)))     # every bit driven
        current = Signal(word)
        m.d.comb += current.eq(replay_word | own_word)
        for i in reversed(range(word)):
            with m.If(current[i]):
                m.d.comb += low.eq(i)

        # -- the core's input: external events; at a TICK, the replay of the last step's spikes ------
        ev = self.events
        host_tick = ev.payload.kind == EventKind.TICK
        with m.FSM():
            with m.State("IDLE"):
                with m.If(~host_tick):
                    m.d.comb += [core.events.valid.eq(ev.valid), core.events.payload.eq(ev.payload),
                                 ev.ready.eq(core.events.ready)]
                with m.Else():
                    m.d.comb += [ev.ready.eq(~self.busy), take_tick.eq(ev.valid & ~self.busy)]
                    with m.If(take_tick):
                        m.d.sync += scan.eq(0)
                        m.next = "REPLAY"
            with m.State("REPLAY"):
                with m.If(scan == words):
                    m.d.comb += [core.events.valid.eq(1), core.events.payload.kind.eq(EventKind.TICK)]
                    with m.If(core.events.ready):
                        m.next = "IDLE"
                with m.Elif(current == 0):
                    m.d.sync += scan.eq(scan + 1)
                with m.Else():
                    m.d.comb += [core.events.valid.eq(1), core.events.payload.kind.eq(EventKind.SPIKE),
                                 core.events.payload.address.eq(channels + Cat(low, scan)),
                                 emit.eq(core.events.ready)]
        with m.If(emit):                    # clear the own bit just sent, if it is one
            for i in range(npt):
                w, pos = divmod(base + i, word)
                with m.If((scan == w) & (low == pos)):
                    m.d.sync += own_replay[i].eq(0)

        with m.If(take_tick):
            m.d.sync += [sel.eq(~sel), own_replay.eq(own_pending | own_spike), own_pending.eq(0), self.busy.eq(1)]
        with m.Else():
            m.d.sync += own_pending.eq(own_pending | own_spike)
        with m.If(out.valid & out.ready & out_tick):
            m.d.sync += self.busy.eq(0)
        return m


class Mosaic(CheckedComponent):
    """The chip: the tiles of ``mc``, the mesh fabric between them, and the readout with its learning
    engine (``cfg``), all from one :class:`MosaicConfig`.

    ``core_weights``: the network's ``[neurons, channels + neurons]`` weights as the tiles' reset
    content (zeros if None; load them through ``core_weights`` then). ``tables``: the routing tables'
    reset content, a ``RoutingTables`` of ``mc.mesh``; by default compiled from ``core_weights``'
    recurrent part, or every source to every other tile without weights (``model.tiles.mosaic_tables``).
    ``w_out`` and ``readout_synapses`` are the engine's (:class:`~.learning.LearningEngine`).

    The host's events go to every tile; a TICK only once every tile is idle and the mesh is empty
    (then to all of them; "busy" is registered, so a TICK or a command waits a cycle past the last
    work). The tiles' outputs reach the engine tile by tile: tile 0's spikes up to its
    TICK, then tile 1's, ..., and the last tile's TICK as the step's one TICK. A command goes to the
    engine once the tiles are idle and the mesh empty; an ``OP_END`` resets the tiles (neuron state,
    spike maps; not the weights) in the cycle it is taken, as in ``LearningCore``.

    Members
    -------
    events, command, weights, rate, logits, weight_write, hidden : as :class:`~.learning.LearningCore`
    core_weights : In(stream of ``mc.core_load_fields``)   loads one word of one tile's weights
    table : In(valid, payload of ``mesh_table_fields``)   writes one routing-table entry (between samples)
    """

    @staticmethod
    def _tables(mc: MosaicConfig, core_weights, tables: RoutingTables | None) -> RoutingTables:
        """The routing tables given, checked against the mesh, or those of the core's recurrent weights."""
        if tables is None:
            w = None if core_weights is None else torch.as_tensor(core_weights)
            return mosaic_tables(mc, None if w is None else w[:, mc.network.channels:])
        if tables.mesh != mc.mesh:
            raise ConfigError(f"routing tables compiled for {tables.mesh} do not fit this Mosaic's mesh {mc.mesh}.")
        return tables

    @classmethod
    def check(cls, mc: MosaicConfig, cfg: LearningConfig = LearningConfig(), core_weights=None, w_out=None,
              tables: RoutingTables | None = None, readout_synapses=None, hidden_ready: bool = False) -> None:
        if not isinstance(mc, MosaicConfig):
            raise TypeError(f"mc must be a MosaicConfig, not {mc!r}")
        LearningEngine.check(mc.network, cfg, w_out, synapses=readout_synapses)
        if core_weights is not None:
            mc.network.core.check_weights(torch.as_tensor(core_weights))        # once; each tile takes its rows
        cls._tables(mc, core_weights, tables)

    def __init__(self, mc: MosaicConfig, cfg: LearningConfig = LearningConfig(), core_weights=None, w_out=None,
                 tables: RoutingTables | None = None, readout_synapses=None, hidden_ready: bool = False):
        self.mc, self.cfg = mc, cfg
        w = None if core_weights is None else torch.as_tensor(core_weights)
        self.tables = self._tables(mc, w, tables)
        made = [NeuronTile(mc, t, None if w is None else w[mc.tile_rows(t)]) for t in range(mc.tiles)]
        self.engine = LearningEngine(mc.network, cfg, w_out, synapses=readout_synapses)
        self.tile_units = made
        c = mc.network
        super().__init__({
            "events": In(stream.Signature(layouts.input_event(c.core))),
            "command": In(stream.Signature(layouts.struct(command_fields(c)))),
            "core_weights": In(stream.Signature(layouts.struct(mc.core_load_fields))),
            "weights": In(stream.Signature(layouts.struct(readout_load_fields(c)))),
            "rate": In(layouts.struct(rate_fields(cfg))),
            "logits": Out(stream.Signature(layouts.struct(logit_fields(c)))),
            "weight_write": Out(WeightWriteSignature(c)),
            "hidden": Out(SpikeMonitorSignature(c, hidden_ready)),
            "table": In(table_write(mesh_table_fields(mc.mesh))),
        })
        self._hidden_ready = hidden_ready

    def elaborate(self, platform):
        mc = self.mc
        T = mc.tiles
        m = Module()
        clear = Signal()                    # an OP_END taken: the tiles to rest
        m.submodules.fabric = fabric = MeshFabric(mc.mesh, self.tables)
        m.submodules.engine = engine = self.engine
        wiring.connect(m, wiring.flipped(self.table), fabric.table)
        connect_engine(m, self, engine)
        tiles = self.tile_units
        for t, tile in enumerate(tiles):
            m.submodules[f"tile_{t}"] = ResetInserter(clear)(tile)
            wiring.connect(m, tile.inject, fabric.inject[t])
            wiring.connect(m, fabric.deliver[t], tile.arrive)

        # -- weight loads: to the tile they name (a load to no tile is dropped) ----------------------
        cw = self.core_weights
        m.d.comb += cw.ready.eq(1)
        for t, tile in enumerate(tiles):
            ours = cw.payload.tile == t
            m.d.comb += [tile.core_weights.valid.eq(cw.valid & ours),
                         tile.core_weights.payload.address.eq(cw.payload.address),
                         tile.core_weights.payload.data.eq(cw.payload.data)]
            with m.If(ours):
                m.d.comb += cw.ready.eq(tile.core_weights.ready)

        # -- the host's events to every tile; a TICK once the tiles are idle and the mesh is empty ---
        # ``busy`` is registered (the OR of some 600 state bits is a long path): last cycle's state, or
        # a TICK taken last cycle (the tiles turn busy at that edge), so it is never low too early.
        busy = Signal()
        ev = self.events
        tick_taken = ev.valid & ev.ready & (ev.payload.kind == EventKind.TICK)
        m.d.sync += busy.eq(Cat(tile.busy for tile in tiles).any() | fabric.busy | tick_taken)
        taken = Signal(T)                   # the tiles that have taken the current event
        allow = Signal()
        m.d.comb += allow.eq((ev.payload.kind == EventKind.SPIKE) | ~busy | taken.any())
        done = []
        for t, tile in enumerate(tiles):
            m.d.comb += [tile.events.valid.eq(ev.valid & allow & ~taken[t]), tile.events.payload.eq(ev.payload)]
            done.append(taken[t] | (tile.events.valid & tile.events.ready))
        m.d.comb += ev.ready.eq(allow & Cat(done).all())
        with m.If(ev.valid & ev.ready):
            m.d.sync += taken.eq(0)
        with m.Else():
            m.d.sync += taken.eq(taken | Cat(tile.events.valid & tile.events.ready for tile in tiles))

        # -- the tiles' outputs to the engine, tile by tile; the last tile's TICK ends the step -------
        turn = Signal(range(T))
        last = turn == T - 1
        valid = Signal()
        payload = Signal(layouts.output_event(mc.network.core))
        go = self.hidden.ready if self._hidden_ready else 1     # with hidden_ready: the hidden port takes it too
        with m.Switch(turn):
            for t, tile in enumerate(tiles):
                with m.Case(t):
                    m.d.comb += [valid.eq(tile.spikes.valid), payload.eq(tile.spikes.payload),
                                 tile.spikes.ready.eq((engine.spikes.ready & go) |
                                                      ((payload.kind == EventKind.TICK) & ~last))]
        is_tick = payload.kind == EventKind.TICK
        to_engine = valid & (~is_tick | last)
        m.d.comb += [engine.spikes.valid.eq(to_engine & go), engine.spikes.payload.eq(payload),
                     self.hidden.valid.eq(to_engine & engine.spikes.ready),
                     self.hidden.payload.eq(payload)]
        with m.If(valid & is_tick & ((engine.spikes.ready & go) | ~last)):
            m.d.sync += turn.eq(Mux(last, 0, turn + 1))

        # -- commands: once the step's last TICK is in the engine and the mesh is empty --------------
        m.d.comb += [engine.command.payload.eq(self.command.payload),
                     engine.command.valid.eq(self.command.valid & ~busy & ~taken.any()),
                     self.command.ready.eq(engine.command.ready & ~busy & ~taken.any())]
        with m.If(engine.command.valid & engine.command.ready & (self.command.payload.op == OP_END)):
            m.d.comb += clear.eq(1)
        return m
