"""The learning designs' testbench, independent of the simulator: the sequencing of an episode's
transactions (``model.episode``) into a ``LearningCore``, a ``Mosaic`` or a ``LearningEngine``, checked by
the scoreboard (``scoreboard.LearningScoreboard``).

Through the whole network (an episode with ``w_core`` and input rasters) a sample is its input
events, and the scoreboard also checks every hidden spike of the LIF core; into the engine alone a
sample is the hidden spike raster itself.

With the readout in a synapse memory (``synapses``: ``stimulus.readout_memory``), the writes are
checked in order without fixed cycles, and a sparse organisation's structure restricts the episode:
its readout is zero outside the structure, only stored synapses are loaded, and the model updates only
those (``adapt_readout_integer(structure=)``), as the engine's transposed accesses do. With the
core's weights in a synapse memory (``core_synapses``: ``stimulus.core_memory``), the episode's core
weights are restricted to its structure too (the hidden rasters recomputed by
``model.snn.IntegerSRNN``) and loaded as updates of the stored synapses.

``port(name)`` returns a :class:`~..agents.Port` for a flattened DUT port name (``spikes__valid``);
``cocotb_test`` (cocotb) and ``amaranth_sim`` (Amaranth) call :meth:`drive` and :meth:`sample` once a
cycle.
"""

from __future__ import annotations

import dataclasses
import random
from collections import deque
from typing import Callable

import torch

from ...model import synapse as synapse_model
from ...model.config import pack_fields, unpack_fields
from ...model.episode import ChipEpisode, input_tokens, spike_tokens
from ...model.golden import Mismatch
from ...model.learning import OP_END, OP_UPDATE, LearningConfig, command_fields, rate_fields, readout_load_fields
from ...model.snn import IntegerSRNN, SRNNConfig
from ..agents import Port, SequenceSource, StreamSink, ValidMonitor, stream_ports
from ..options import RunOptions
from .scoreboard import LearningScoreboard
from .stimulus import core_memory, readout_memory

__all__ = ["LearningTestbench", "stream_inputs", "harness_ports"]


def stream_inputs(core: bool) -> tuple[str, ...]:
    """The DUT's input streams: of a ``LearningCore`` (``core``) or of a ``LearningEngine``."""
    return ("events", "command", "weights", "core_weights") if core else ("spikes", "command", "weights")


def _plan_streams(core: bool) -> dict[str, str]:
    """The input stream of each kind of segment of an episode's plan."""
    streams = {"core_load": "core_weights", "load": "weights", "spikes": "events" if core else "spikes",
               "command": "command"}
    return streams if core else {k: v for k, v in streams.items() if k != "core_load"}


def harness_ports(core: bool) -> dict:
    """What the batch harness (``cosim.harness.Harness``) plays and records around the DUT."""
    return {"streams": tuple(_plan_streams(core).values()), "sinks": ("logits",),
            "monitors": ("weight_write", "hidden") if core else ("weight_write",)}


class LearningTestbench:
    """Drives episodes into a ``LearningCore`` (``core=True``: input events, the core's weights,
    hidden spikes checked) or a ``LearningEngine`` (hidden spikes driven) and checks everything."""

    def __init__(self, config: SRNNConfig, cfg: LearningConfig, port: Callable[[str], Port], options: RunOptions, *,
                 core: bool = False, synapses=None, core_synapses=None, core_loads: Callable | None = None,
                 scoreboard: bool = True):
        """``synapses``: the engine keeps its readout in that synapse memory (``readout_memory``; its
        update writes then have no fixed cycles, only their order; a sparse one restricts the
        episodes to its structure). ``core_synapses``: the LIF core of a ``LearningCore`` keeps its
        weights in that one (``core_memory``). ``core_loads``: the packed ``core_weights`` loads of an
        episode's ``w_core`` for a DUT that loads them its own way (a ``Mosaic``:
        ``MosaicConfig.core_load_words``); by default the LIF core's weight words. Without the
        ``scoreboard`` nothing is checked (the predictions still give the episode's transactions)."""
        self.config, self.cfg, self.fault, self.core = config, cfg, options.fault, core
        self.scoreboard = scoreboard
        self.core_loads = core_loads
        idle, backpressure = options.idle, options.backpressure
        rng = random.Random(options.seed)
        self.sb = LearningScoreboard(config, cfg)
        memory = readout_memory(config, synapses)
        self.sb.exact_timing = memory is None
        self.sb.structure = None if memory is None or memory.name == "dense" else memory.structure()
        self.core_memory = core_memory(config, core_synapses)
        if self.core_memory is not None and not core:
            raise ValueError("core_synapses applies to a LearningCore (core=True), not to the engine alone.")

        self.rate = port("rate")
        self._streams = _plan_streams(core)
        # One source for every input stream: one segment of the plan after the other, in order (the next
        # sample's events must not overtake this sample's END).
        self.source = SequenceSource({s: stream_ports(port, s) for s in self._streams.values()}, rng=rng, idle=idle,
                                     on_transfer={s: self._on_input for s in self._streams.values()})
        self.logits = StreamSink(*stream_ports(port, "logits"), rng=rng, backpressure=backpressure,
                                 on_transfer=self._on_logit)
        self.agents = [self.source, self.logits,
                       ValidMonitor(port("weight_write__valid"), port("weight_write__payload"), self._on_write)]
        if core:
            self.agents.append(ValidMonitor(port("hidden__valid"), port("hidden__payload"), self.sb.on_hidden))
        self._last_progress = 0
        # The longest quiet stretch: the update pass, or a TICK whose every neuron fired (each spike comes
        # back as a recurrent event of the core's blocks cycles, with nothing at the ports meanwhile).
        self.stall_limit = 4 * config.outputs * config.neurons + 2 * config.neurons * config.core.blocks + 20_000
        # Timing, for the benchmark: the cycle of each segment's first transfer, of every OP_UPDATE,
        # OP_END, logit and weight write.
        self.segments: list[tuple[str, int]] = []
        self._segment_lengths: deque = deque()    # (kind, words) of the plan's segments not yet begun
        self._segment, self._segment_left = None, 0   # the segment being taken, and its words left
        self.update_cycles: list[int] = []
        self.end_cycles: list[int] = []
        self.logit_cycles: list[int] = []
        self.write_cycles: list[int] = []

    def _on_logit(self, cycle: int, word: int) -> None:
        self.sb.on_logit(cycle, word)
        self.logit_cycles.append(cycle)

    def _on_write(self, cycle: int, word: int) -> None:
        self.sb.on_weight_write(cycle, word)
        self.write_cycles.append(cycle)

    def _on_input(self, cycle: int, word: int) -> None:
        """A word of the plan was taken: the segments' timing, and the commands' effect."""
        if not self._segment_left:
            self._segment, self._segment_left = self._segment_lengths.popleft()
            self.segments.append((self._segment, cycle))
        self._segment_left -= 1
        if self._segment == "command":
            self._on_command(cycle, word)

    def _on_command(self, cycle: int, word: int) -> None:
        if unpack_fields(command_fields(self.config), word)["op"] == OP_UPDATE:
            self.update_cycles.append(cycle)
            self.sb.on_update(cycle)
        else:
            self.end_cycles.append(cycle)

    def start(self, episode: ChipEpisode, first_cycle: int) -> None:
        """Begins ``episode`` right after a reset whose first free cycle is ``first_cycle``."""
        if self.scoreboard:
            self.sb.finish()            # nothing of the previous episode may be left
        else:
            self.sb.discard()
        c = self.config
        if self.core and not episode.through_core:
            raise ValueError(f"episode {episode.name} has no core weights and input rasters; the LearningCore "
                             "needs them (random_network_episode).")
        structure = self.sb.structure
        if structure is not None:       # a sparse readout: the episode's weights on its structure
            episode = dataclasses.replace(episode, w_out=episode.w_out * structure)
        cm = self.core_memory
        if cm is not None:              # the core's weights on its memory's structure, the hidden spikes anew
            w_core = episode.w_core * cm.structure()
            net = IntegerSRNN(c, w_core[:, :c.channels], w_core[:, c.channels:], episode.w_out)
            episode = dataclasses.replace(episode, w_core=w_core, support=net.hidden(episode.support_x).long(),
                                          query=net.hidden(episode.query_x).long())
        if episode.scheduled:
            raise ValueError(f"episode {episode.name} changes its inner rate between steps; the learning "
                             "testbench holds one rate per episode (the board's host programs a schedule).")
        m, q = episode.quantised_rate(c, self.cfg)
        self.rate.set(pack_fields(rate_fields(self.cfg), {"m": m, "q": q}))
        plan = self.sb.predict(episode, self.fault) if self.core else \
            self.sb.predict(dataclasses.replace(episode, support_x=None, query_x=None), self.fault)
        segments = []
        if self.core and cm is not None:
            fields, w = synapse_model.load_fields(cm), episode.w_core.tolist()
            segments.append(("core_load", [
                pack_fields(fields, {**synapse_model.neuron_values(cm, "post", post),
                                     **synapse_model.neuron_values(cm, "pre", pre), "value": w[post][pre]})
                for post, pre in torch.nonzero(cm.structure()).tolist()]))
        elif self.core and self.core_loads is not None:
            segments.append(("core_load", list(self.core_loads(episode.w_core))))
        elif self.core:
            segments.append(("core_load", c.core.weight_load_words(episode.w_core)))
        lf = readout_load_fields(c)
        w = episode.w_out.tolist()
        segments.append(("load", [pack_fields(lf, {"output": k, "neuron": j, "value": w[k][j]})
                                    for k in range(c.outputs) for j in range(c.neurons)
                                    if structure is None or structure[k, j]]))
        cf = command_fields(c)
        for item in plan:
            if item[0] == "sample":
                _, raster, x, label, learn = item
                segments.append(("spikes", input_tokens(c, x) if self.core else spike_tokens(c, raster)))
                segments.append(("command", [pack_fields(cf, {"op": OP_END, "label": label, "learn": learn})]))
            else:
                segments.append(("command", [pack_fields(cf, {"op": OP_UPDATE, "label": 0, "learn": 0})]))
        for kind, words in segments:
            words = list(words)
            if words:
                self.source.send(self._streams[kind], words)
                self._segment_lengths.append((kind, len(words)))
        self._last_progress = first_cycle

    @property
    def done(self) -> bool:
        return self.source.done and self.sb.idle

    def drive(self) -> None:
        for a in self.agents:
            a.drive()

    def sample(self, cycle: int) -> None:
        before = self._progress()
        for a in self.agents:
            a.sample(cycle)
        if self._progress() != before:
            self._last_progress = cycle
        if cycle - self._last_progress > self.stall_limit:
            raise Mismatch(f"the learning {'core' if self.core else 'engine'} made no progress for "
                           f"{self.stall_limit} cycles (cycle {cycle}).")

    def _progress(self) -> tuple:
        return (self.source.transfers, self.logits.transfers, self.sb.checked["weight_writes"],
                self.sb.checked["hidden_events"])

    def finish(self) -> dict:
        self.sb.finish()
        return {"checked": dict(self.sb.checked), "coverage": dict(self.sb.coverage),
                "accuracy": dict(self.sb.accuracy), "logit_stall_cycles": self.logits.stall_cycles,
                "timing": self.timing()}

    def timing(self) -> dict:
        return {"segments": self.segments, "update_cycles": self.update_cycles, "end_cycles": self.end_cycles,
                "logit_cycles": self.logit_cycles, "write_cycles": self.write_cycles}
