"""The quantised LIF core: time-multiplexed neurons with state in memory, event-driven accumulation.

The arithmetic is ``model.lif`` bit for bit; the widths come from ``model.config.LIFConfig``.

Datapath. Neuron state lives in one memory word per ``lanes`` neurons (a block). Every cycle the
control issues at most one read of a block (its state word and, for an input event, its weight
word); one cycle later the write stage computes the new state of the block and writes it back. An
input spike event therefore takes ``blocks`` cycles and performs ``lanes`` synaptic operations
(one weight read, one add) per cycle, with no bubble between events. A TICK sweeps all blocks the
same way with the timestep update, storing each neuron's spike bit in a spike-mask memory; once the
pipeline has drained, a scan emits the spiking neurons in ascending order followed by a TICK on the output stream.

Pipeline: issue (memory addresses) -> register stage (memory outputs) -> compute and write.
Cycle contract (checked by the cosim scoreboard): if an input token is accepted in cycle ``c``,
the write of block ``b`` for it is reported on ``state_write`` in cycle ``c + WRITE_LATENCY + b``. After a
reset the core clears the state memory, one block per cycle, before it accepts input.
"""

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..model.config import LIFConfig
from . import layouts
from .arith import decay, saturate
from .layouts import EventKind, Phase
from .memory import SinglePortRAM

__all__ = ["StateWriteSignature", "LIFCore"]


class StateWriteSignature(wiring.Signature):
    """Verification port: one word of neuron state written in this cycle.

    Members
    -------
    valid : Out(1)
    payload : Out(state_write)   -- phase, block (neurons ``block*lanes ..``), the ``lanes`` records
    """

    def __init__(self, config: LIFConfig):
        super().__init__({"valid": Out(1), "payload": Out(layouts.state_write(config))})


class LIFCore(wiring.Component):
    """Quantised LIF core generated from a :class:`LIFConfig`.

    Parameters
    ----------
    config : LIFConfig
    weights : [neurons][inputs] integers or None
        Initial contents of the weight memory (zeros if None; load through ``weights`` then).

    Members
    -------
    events : In(stream.Signature(input_event))
        Input spike addresses and TICKs (end of timestep), in order.
    spikes : Out(stream.Signature(output_event))
        Output spike addresses of each timestep in ascending order, then a TICK.
    weights : In(stream.Signature(weight_load))
        Writes one weight word (``lanes`` weights); taken only while no event is pending.
    state_write : Out(StateWriteSignature)
        Every write of the neuron state memory, for verification.
    """

    def __init__(self, config: LIFConfig, weights=None):
        if not isinstance(config, LIFConfig):
            raise TypeError(f"config must be a LIFConfig, not {config!r}")
        self._config = config
        self._weight_words = config.weight_words(weights) if weights is not None else []
        super().__init__({
            "events": In(stream.Signature(layouts.input_event(config))),
            "spikes": Out(stream.Signature(layouts.output_event(config))),
            "weights": In(stream.Signature(layouts.weight_load(config))),
            "state_write": Out(StateWriteSignature(config)),
        })

    @property
    def config(self) -> LIFConfig:
        return self._config

    def elaborate(self, platform):
        c = self._config
        B, L = c.blocks, c.lanes
        m = Module()

        # Weight reads and loads share one port (a single-port RAM: SPRAM on the iCE40 UltraPlus).
        m.submodules.weight_memory = wmem = SinglePortRAM(c.weight_word_bits, c.weight_depth, self._weight_words)
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
        m.d.comb += [
            wmem.addr.eq(Mux(wmem.write_enable, self.weights.payload.address, rd_pre * B + rd_block)),
            wmem.write_data.eq(self.weights.payload.data),
            s_rd.addr.eq(rd_block),
        ]

        # -- register stage: the memory outputs, one cycle after the read --------------------------
        p_valid = Signal()
        p_phase = Signal(Phase)
        p_block = Signal(range(B))
        m.d.sync += [p_valid.eq(issue), p_phase.eq(issue_phase), p_block.eq(rd_block)]
        q_valid = Signal()
        q_phase = Signal(Phase)
        q_block = Signal(range(B))
        q_state = Signal.like(s_rd.data)
        q_weights = Signal.like(wmem.read_data)
        m.d.sync += [q_valid.eq(p_valid), q_phase.eq(p_phase), q_block.eq(p_block), q_weights.eq(wmem.read_data)]

        # -- compute and write stage ---------------------------------------------------------------
        new_state = Signal.like(s_wr.data)
        spike_bits = Signal(L)
        v_lo, v_hi = c.membrane_range
        for lane in range(L):
            old = q_state[lane]
            new = new_state[lane]
            weight = q_weights[lane * c.weight_bits:(lane + 1) * c.weight_bits].as_signed()
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
            with m.If(q_phase == Phase.STEP):
                m.d.comb += [
                    new.current.eq(decay(old.current, c.current_decay_shift)),
                    new.membrane.eq(saturate(v_sum, v_lo, v_hi)),
                    new.refractory.eq(Mux(fire, saturate(r_decayed + c.refractory_jump, *c.refractory_range),
                                          r_decayed)),
                    spike_bits[lane].eq(fire),
                ]
            with m.Else():
                m.d.comb += [
                    new.current.eq(saturate(old.current + weight, *c.current_range)),
                    new.membrane.eq(old.membrane),
                    new.refractory.eq(old.refractory),
                ]

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
        pending = Signal(L)                 # spikes of word ``pending_block`` not yet sent
        pending_block = Signal(range(B))
        lowest = Signal(range(L))
        for lane in reversed(range(L)):
            with m.If(pending[lane]):
                m.d.comb += lowest.eq(lane)
        remaining = pending & (pending - 1)
        m.d.comb += k_rd.addr.eq(scan)

        with m.FSM(init="CLEAR"):
            with m.State("CLEAR"):
                m.d.comb += clearing.eq(1)
                m.d.sync += counter.eq(counter + 1)
                with m.If(counter == B - 1):
                    m.d.sync += counter.eq(0)
                    m.next = "IDLE"

            with m.State("IDLE"):
                m.d.comb += [
                    self.events.ready.eq(1),
                    self.weights.ready.eq(~self.events.valid),
                ]
                with m.If(self.events.valid):
                    m.d.comb += [issue.eq(1), rd_block.eq(0)]
                    with m.If(self.events.payload.kind == EventKind.SPIKE):
                        m.d.comb += [issue_phase.eq(Phase.ACCUMULATE), rd_pre.eq(self.events.payload.address)]
                        m.d.sync += pre.eq(self.events.payload.address)
                        if B > 1:
                            m.d.sync += counter.eq(1)
                            m.next = "ACCUMULATE"
                    with m.Else():
                        m.d.comb += issue_phase.eq(Phase.STEP)
                        if B > 1:
                            m.d.sync += counter.eq(1)
                            m.next = "SWEEP"
                        else:
                            m.next = "DRAIN"
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

        return m
