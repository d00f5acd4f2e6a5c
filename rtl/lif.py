"""The quantised LIF core: time-multiplexed neurons with state in memory, event-driven accumulation.

The arithmetic is ``model.lif`` bit for bit; the widths come from ``model.config.LIFConfig``.

Datapath. Neuron state lives in one memory word per ``lanes`` neurons (a block). Every cycle the
control issues at most one read of a block (its state word and, for an input event, its weight
word); one cycle later the write stage computes the new state of the block and writes it back. An
input spike event therefore takes ``blocks`` cycles and performs ``lanes`` synaptic operations
(one weight read, one add) per cycle, with no bubble between events. A TICK sweeps all blocks the
same way with the timestep update, storing each neuron's spike bit in a spike-mask memory; once the
pipeline has drained, a scan emits the spiking neurons in ascending order followed by a TICK on the output stream.

With a synapse memory (``synapses=``, any organisation of ``model.synapse``) the weights
live in a :class:`~.synapse.SynapseMemory` instead: an input spike event becomes a forward access,
and each of its results (target neuron, weight) is one synaptic operation: the issue stage reads the
target's block and the weight goes to its lane (zero in the others), one result a cycle, with no
bubble between events. Sparse organisations deliver only the stored synapses, so zero weights cost
no cycle. A TICK is taken once the memory has delivered its last result.

Pipeline: issue (memory addresses) -> register stage (memory outputs) -> compute and write.
Cycle contract (checked by the cosim scoreboard): if an input token is accepted in cycle ``c``,
the write of block ``b`` for it is reported on ``state_write`` in cycle ``c + WRITE_LATENCY + b``
(with a synapse memory, a spike event's writes, one per result, follow its results by
``WRITE_LATENCY`` cycles). After a reset the core clears the state memory, one block per cycle,
before it accepts input.
"""

from amaranth.hdl import Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..model import synapse as synapse_model
from ..model.config import ConfigError, LIFConfig
from . import layouts
from .arith import decay, saturate
from .checked import CheckedComponent
from .layouts import EventKind, Phase
from .memory import SinglePortRAM
from .synapse import SynapseMemory

__all__ = ["NeuronUpdate", "StateWriteSignature", "LIFCore"]


def _check_synapses(config: LIFConfig, memory) -> None:
    if not isinstance(memory, synapse_model.SynapseMemory):
        raise TypeError(f"synapses must be a model.synapse memory, not {memory!r}")
    if (memory.pre, memory.post, memory.weight_bits) != (config.inputs, config.neurons, config.weight_bits):
        raise ConfigError(f"a {memory.name} synapse memory of {memory.pre} inputs, {memory.post} neurons and "
                          f"{memory.weight_bits}-bit weights does not fit the core; allowed: {config.inputs} "
                          f"inputs, {config.neurons} neurons, {config.weight_bits}-bit weights.")


class StateWriteSignature(wiring.Signature):
    """Verification port: one word of neuron state written in this cycle.

    Members
    -------
    valid : Out(1)
    payload : Out(state_write)   -- phase, block (neurons ``block*lanes ..``), the ``lanes`` records
    """

    def __init__(self, config: LIFConfig):
        super().__init__({"valid": Out(1), "payload": Out(layouts.state_write(config))})


class NeuronUpdate(wiring.Component):
    """The LIF core's compute stage (combinational): the new state of one block of ``lanes`` neurons,
    ``model.lif`` bit for bit.

    Members
    -------
    phase : In(Phase)            -- STEP: the timestep update; otherwise one weight per lane accumulated
    state : In(block of neuron_state)     -- the block's state as read
    weights : In(weight_word_bits)        -- the block's weights, one per lane (accumulation)
    new_state : Out(block of neuron_state)
    spikes : Out(lanes)          -- the lanes that fire (STEP only)
    """

    def __init__(self, config: LIFConfig):
        self._config = config
        block = data.ArrayLayout(layouts.neuron_state(config), config.lanes)
        super().__init__({"phase": In(Phase), "state": In(block), "weights": In(config.weight_word_bits),
                          "new_state": Out(block), "spikes": Out(config.lanes)})

    def elaborate(self, platform):
        c = self._config
        m = Module()
        v_lo, v_hi = c.membrane_range
        for lane in range(c.lanes):
            old = self.state[lane]
            new = self.new_state[lane]
            weight = self.weights[lane * c.weight_bits:(lane + 1) * c.weight_bits].as_signed()
            # V + I before saturation, and the spike test on it computed in parallel:
            # sat(v_sum) - R >= theta  <=>  v_sum > v_hi ? R <= v_hi - theta : v_sum - (R + theta) >= 0
            # (below v_lo it cannot fire: v_lo < 0 < theta and R >= 0).
            decayed = decay(old.membrane, c.membrane_decay_shift)
            v_decayed = Signal(decayed.shape(), name=f"v_decayed_{lane}")
            # Amaranth widens every operation, so these exact widths can never overflow.
            v_sum = Signal((v_decayed + old.current).shape(), name=f"v_sum_{lane}")
            margin_expr = v_decayed + (old.current - (old.refractory + c.threshold))
            margin = Signal(margin_expr.shape(), name=f"margin_{lane}")
            fire = Signal(name=f"fire_{lane}")
            r_decayed = Signal(c.refractory_bits, name=f"r_decayed_{lane}")
            m.d.comb += [
                v_decayed.eq(decayed),
                v_sum.eq(v_decayed + old.current),
                margin.eq(margin_expr),
                fire.eq(Mux(v_sum > v_hi, old.refractory <= v_hi - c.threshold, ~margin[-1])),
                r_decayed.eq(decay(old.refractory, c.refractory_decay_shift)),
            ]
            with m.If(self.phase == Phase.STEP):
                m.d.comb += [
                    new.current.eq(decay(old.current, c.current_decay_shift)),
                    new.membrane.eq(saturate(v_sum, v_lo, v_hi)),
                    new.refractory.eq(Mux(fire, saturate(r_decayed + c.refractory_jump, *c.refractory_range),
                                          r_decayed)),
                    self.spikes[lane].eq(fire),
                ]
            with m.Else():
                m.d.comb += [
                    new.current.eq(saturate(old.current + weight, *c.current_range)),
                    new.membrane.eq(old.membrane),
                    new.refractory.eq(old.refractory),
                ]
        return m


class LIFCore(CheckedComponent):
    """Quantised LIF core generated from a :class:`LIFConfig`.

    Parameters
    ----------
    config : LIFConfig
    weights : [neurons][inputs] integers or None
        Initial contents of the weight memory (zeros if None; load through ``weights`` then).
    synapses : model.synapse.SynapseMemory or None
        Keep the weights in this organisation instead (its ``pre`` are the core's inputs, its
        ``post`` its neurons, its weight bits the core's); ``weights`` must then be None.

    Members
    -------
    events : In(stream.Signature(input_event))
        Input spike addresses and TICKs (end of timestep), in order.
    spikes : Out(stream.Signature(output_event))
        Output spike addresses of each timestep in ascending order, then a TICK.
    weights : In(stream.Signature(weight_load))
        Writes one weight word (``lanes`` weights); taken only while no event is pending. With a
        synapse memory: a new value for one stored synapse (``model.synapse.load_fields``: post,
        pre, value), an update command of the memory.
    state_write : Out(StateWriteSignature)
        Every write of the neuron state memory, for verification.
    synapse_counters : Out(the synapse memory's ``counters``)
        Only with a synapse memory: its reads and writes per physical memory since the reset.
    """

    @classmethod
    def check(cls, config: LIFConfig, weights=None, synapses: synapse_model.SynapseMemory | None = None) -> None:
        if not isinstance(config, LIFConfig):
            raise TypeError(f"config must be a LIFConfig, not {config!r}")
        if weights is not None:
            config.check_weights(weights)
        if synapses is not None:
            if weights is not None:
                raise ConfigError("give the initial weights either as weights= or in the synapse memory, not both.")
            _check_synapses(config, synapses)
            SynapseMemory.check(synapses)

    def __init__(self, config: LIFConfig, weights=None, synapses: synapse_model.SynapseMemory | None = None):
        self._config = config
        self._weight_words = config.weight_words(weights) if weights is not None else []
        self._synapses = None
        members = {
            "events": In(stream.Signature(layouts.input_event(config))),
            "spikes": Out(stream.Signature(layouts.output_event(config))),
            "weights": In(stream.Signature(layouts.weight_load(config))),
            "state_write": Out(StateWriteSignature(config)),
        }
        if synapses is not None:
            self._synapses = SynapseMemory(synapses)
            members["weights"] = In(stream.Signature(layouts.struct(synapse_model.load_fields(synapses))))
            members["synapse_counters"] = Out(self._synapses.counters.signature)
        super().__init__(members)

    @property
    def config(self) -> LIFConfig:
        return self._config

    def elaborate(self, platform):
        c = self._config
        B, L = c.blocks, c.lanes
        m = Module()

        sm = self._synapses
        if sm is None:
            # Weight reads and loads share one port (a single-port RAM: SPRAM on the iCE40 UltraPlus).
            m.submodules.weight_memory = wmem = SinglePortRAM(c.weight_word_bits, c.weight_depth, self._weight_words)
        else:
            m.submodules.synapses = sm
            wiring.connect(m, sm.counters, wiring.flipped(self.synapse_counters))
        m.submodules.state_memory = smem = Memory(
            shape=data.ArrayLayout(layouts.neuron_state(c), L), depth=B, init=[])
        m.submodules.spike_mask = kmem = Memory(shape=unsigned(L), depth=B, init=[])

        s_wr = smem.write_port()
        # Transparent: a block read in the cycle it is written (back-to-back events, blocks == 2)
        # returns the new word. The register stage's bypass covers blocks == 1.
        s_rd = smem.read_port(transparent_for=(s_wr,))
        k_wr = kmem.write_port()
        k_rd = kmem.read_port()             # read only after DRAIN: every mask write is done

        # -- issue stage: which block is read this cycle ------------------------------------------
        issue = Signal()
        issue_phase = Signal(Phase)
        rd_block = Signal(range(B))
        rd_pre = Signal(range(c.inputs))
        counter = Signal(range(B))      # next block to issue
        pre = Signal(range(c.inputs))   # input address of the event being processed
        m.d.comb += s_rd.addr.eq(rd_block)
        # The weights of the issued block, one lane each: the weight memory's word one cycle after the
        # read, or the synapse memory's result carried along (``p_weights``) in its lane.
        if sm is None:
            m.d.comb += [
                wmem.addr.eq(Mux(wmem.write_enable, self.weights.payload.address,
                                 c.weight_word_address(rd_pre, rd_block))),
                wmem.write_data.eq(self.weights.payload.data),
            ]
        else:
            lane_word = Signal(c.weight_word_bits)
            p_weights = Signal(c.weight_word_bits)
            m.d.sync += p_weights.eq(lane_word)
            self._synapse_results(m, sm, issue, issue_phase, rd_block, lane_word)

        # -- register stage: the memory outputs, one cycle after the read --------------------------
        p_valid = Signal()
        p_phase = Signal(Phase)
        p_block = Signal(range(B))
        m.d.sync += [p_valid.eq(issue), p_phase.eq(issue_phase), p_block.eq(rd_block)]
        q_valid = Signal()
        q_phase = Signal(Phase)
        q_block = Signal(range(B))
        q_state = Signal.like(s_rd.data)
        q_weights = Signal(c.weight_word_bits)
        m.d.sync += [q_valid.eq(p_valid), q_phase.eq(p_phase), q_block.eq(p_block),
                     q_weights.eq(wmem.read_data if sm is None else p_weights)]

        # -- compute and write stage ---------------------------------------------------------------
        m.submodules.update = update = NeuronUpdate(c)
        m.d.comb += [update.phase.eq(q_phase), update.state.eq(q_state), update.weights.eq(q_weights)]
        new_state, spike_bits = update.new_state, update.spikes

        # The register stage takes the word being written instead of the memory's (stale) output when
        # it holds the same block: back-to-back events on one block (blocks <= 2) see the newest state.
        with m.If(q_valid & p_valid & (q_block == p_block)):
            m.d.sync += q_state.eq(new_state)
        with m.Else():
            m.d.sync += q_state.eq(s_rd.data)

        clearing = Signal()
        m.d.comb += [
            s_wr.en.eq(q_valid | clearing),
            s_wr.addr.eq(Mux(clearing, counter, q_block)),
            s_wr.data.eq(Mux(clearing, 0, new_state.as_value())),
            k_wr.en.eq((q_valid & (q_phase == Phase.STEP)) | clearing),
            k_wr.addr.eq(s_wr.addr),
            k_wr.data.eq(Mux(clearing, 0, spike_bits)),
            self.state_write.valid.eq(s_wr.en),
            self.state_write.payload.phase.eq(Mux(clearing, Phase.CLEAR, q_phase)),
            self.state_write.payload.block.eq(s_wr.addr),
            self.state_write.payload.data.eq(s_wr.data),
        ]

        # -- spike emission ------------------------------------------------------------------------
        scan = Signal(range(B + 1))         # next spike-mask word to read
        m.d.comb += k_rd.addr.eq(scan)

        with m.FSM(init="CLEAR"):
            with m.State("CLEAR"):
                m.d.comb += clearing.eq(1)
                m.d.sync += counter.eq(counter + 1)
                with m.If(counter == B - 1):
                    m.d.sync += counter.eq(0)
                    m.next = "IDLE"

            def take_tick():
                m.d.comb += [issue.eq(1), issue_phase.eq(Phase.STEP), rd_block.eq(0)]
                if B > 1:
                    m.d.sync += counter.eq(1)
                    m.next = "SWEEP"
                else:
                    m.next = "DRAIN"

            with m.State("IDLE"):
                if sm is not None:
                    self._synapse_idle(m, sm, take_tick)
                else:
                    m.d.comb += [self.events.ready.eq(1), self.weights.ready.eq(~self.events.valid)]
                    with m.If(self.events.valid):
                        with m.If(self.events.payload.kind == EventKind.SPIKE):
                            m.d.comb += [issue.eq(1), issue_phase.eq(Phase.ACCUMULATE), rd_block.eq(0),
                                         rd_pre.eq(self.events.payload.address)]
                            m.d.sync += pre.eq(self.events.payload.address)
                            if B > 1:
                                m.d.sync += counter.eq(1)
                                m.next = "ACCUMULATE"
                        with m.Else():
                            take_tick()
                    with m.Elif(self.weights.valid):
                        m.d.comb += wmem.write_enable.eq(1)

            with m.State("ACCUMULATE"):
                m.d.comb += [issue.eq(1), issue_phase.eq(Phase.ACCUMULATE), rd_block.eq(counter),
                             rd_pre.eq(pre)]
                m.d.sync += counter.eq(counter + 1)
                with m.If(counter == B - 1):
                    m.d.sync += counter.eq(0)
                    m.next = "IDLE"

            with m.State("SWEEP"):
                m.d.comb += [issue.eq(1), issue_phase.eq(Phase.STEP), rd_block.eq(counter)]
                m.d.sync += counter.eq(counter + 1)
                with m.If(counter == B - 1):
                    m.d.sync += counter.eq(0)
                    m.next = "DRAIN"

            # Wait for the sweep's writes to leave the pipeline before the spike mask is read.
            with m.State("DRAIN"):
                with m.If(~p_valid & ~q_valid):
                    m.next = "SCAN_FETCH"

            self._emission_states(m, k_rd, scan)

        return m

    def _emission_states(self, m, k_rd, scan):
        """The FSM's states after a TICK's sweep: the spike-mask words are read in turn (``scan``: the
        next one) and the spiking neurons of each sent in ascending order, then a TICK."""
        B, L = self._config.blocks, self._config.lanes
        pending = Signal(L)                 # spikes of word ``pending_block`` not yet sent
        pending_block = Signal(range(B))
        lowest = Const(0, range(L))         # the lowest lane in ``pending``
        for lane in reversed(range(L)):
            lowest = Mux(pending[lane], lane, lowest)
        remaining = pending & (pending - 1)

        with m.State("SCAN_FETCH"):
            m.d.sync += scan.eq(scan + 1)
            m.next = "SCAN_CHECK"

        with m.State("SCAN_CHECK"):      # k_rd.data holds word scan - 1
            with m.If(k_rd.data == 0):
                with m.If(scan == B):
                    m.next = "TICK_OUT"
                with m.Else():
                    m.d.sync += scan.eq(scan + 1)
            with m.Else():
                m.d.sync += [pending.eq(k_rd.data), pending_block.eq(scan - 1)]
                m.next = "EMIT"

        with m.State("EMIT"):
            m.d.comb += [
                self.spikes.valid.eq(1),
                self.spikes.payload.kind.eq(EventKind.SPIKE),
                self.spikes.payload.address.eq(pending_block * L + lowest),
            ]
            with m.If(self.spikes.ready):
                m.d.sync += pending.eq(remaining)
                with m.If(remaining == 0):
                    with m.If(scan == B):
                        m.next = "TICK_OUT"
                    with m.Else():
                        m.next = "SCAN_FETCH"

        with m.State("TICK_OUT"):
            m.d.comb += [self.spikes.valid.eq(1), self.spikes.payload.kind.eq(EventKind.TICK)]
            with m.If(self.spikes.ready):
                m.d.sync += scan.eq(0)
                m.next = "IDLE"

    # -- with a synapse memory ---------------------------------------------------------------------
    def _synapse_results(self, m, sm, issue, issue_phase, rd_block, lane_word):
        """Each result of the memory (target neuron, weight) is issued as one synaptic operation: the
        target's block is read and the weight goes to its lane, zero to the others."""
        c, res = self._config, sm.results
        fields = [f.name for f in synapse_model.result_fields(sm.memory)[:-1]]
        neuron = Signal(range(c.neurons))
        m.d.comb += neuron.eq(synapse_model.neuron_index(
            sm.memory, "neuron", {name: getattr(res.payload, name) for name in fields}))
        lane = neuron % c.lanes
        with m.If(res.valid):
            m.d.comb += [issue.eq(1), issue_phase.eq(Phase.ACCUMULATE), rd_block.eq(neuron // c.lanes)]
            for l in range(c.lanes):
                m.d.comb += lane_word.word_select(l, c.weight_bits).eq(Mux(lane == l, res.payload.weight, 0))

    def _synapse_idle(self, m, sm, take_tick):
        """IDLE with a synapse memory: a spike event becomes a forward access, a weight load an update;
        a TICK waits until the memory has delivered its last result."""
        ev, load, cmd = self.events, self.weights, sm.commands
        with m.If(ev.valid & (ev.payload.kind == EventKind.SPIKE)):
            m.d.comb += [cmd.valid.eq(1), cmd.payload.kind.eq(synapse_model.CMD_FORWARD), ev.ready.eq(cmd.ready)]
            for name, value in synapse_model.neuron_values(sm.memory, "pre", ev.payload.address).items():
                m.d.comb += getattr(cmd.payload, name).eq(value)
        with m.Elif(ev.valid):
            with m.If(~sm.busy):
                m.d.comb += ev.ready.eq(1)
                take_tick()
        with m.Elif(load.valid):
            m.d.comb += [cmd.valid.eq(1), cmd.payload.kind.eq(synapse_model.CMD_UPDATE), load.ready.eq(cmd.ready)]
            for f in synapse_model.load_fields(sm.memory):
                m.d.comb += getattr(cmd.payload, f.name).eq(getattr(load.payload, f.name))
