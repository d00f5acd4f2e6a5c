"""The synapse memory's testbench, independent of the simulator: stimulus, agents and scoreboard.

Checked, every cycle: each access the trace reports (memory, read or write, address, data) is the next
access of that memory in the golden model's order (``model.synapse``, traced), each result (neuron,
weight) is the model's next, ``busy`` is high from the cycle after a command is taken until the cycle
before its last access or result is reported (it is being served), and at the end the access
counters equal the model's counts and nothing the model predicted is missing. Faults (``FAULTS``)
make the prediction wrong on purpose, to prove the scoreboard catches it ("busy": ``busy`` owed one
cycle longer).
"""

from __future__ import annotations

import copy
import functools
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import torch

from ...model import synapse as model
from ...model.config import ConfigError, pack_fields, signed_range, unpack_fields
from ...model.golden import Mismatch
from ...rtl.synapse import trace_ports
from ..agents import FieldMonitor, Port, SequenceSource, ValidMonitor, Watch, stream_ports
from ..options import RunOptions

__all__ = ["FAULTS", "SynapseScenario", "synapse_scenario", "SynapseTestbench", "STALL_LIMIT", "check_counters",
           "harness_ports", "restore_commands"]

STALL_LIMIT = 2_000       # cycles without a command, access or result before the test calls it a hang
FAULTS = ("data", "counter", "busy")
MATRIX_SHAPE = (20, 12)   # [post, pre] of the random matrices
CONV_KERNEL = (3, 2, 3, 3)
CONV_IMAGE = (5, 4)


@dataclass
class SynapseScenario:
    memory: model.SynapseMemory
    commands: list[tuple[int, int, int, int]] = field(default_factory=list)    # (kind, post, pre, value)


def _random_weights(shape, density: float, bits: int, gen: torch.Generator) -> torch.Tensor:
    lo, hi = signed_range(bits)
    w = torch.randint(lo, hi, shape, generator=gen)
    w[w >= 0] += 1                                           # non-zero, -2^(b-1) .. 2^(b-1) - 1
    return w * (torch.rand(shape, generator=gen) < density)


def synapse_scenario(organisation: str, seed: int = 0, *, density: float = 0.4, weight_bits: int = 8,
                     bitmap_word: int = 8, updates: int = 12, shape=MATRIX_SHAPE, kernel=CONV_KERNEL,
                     image=CONV_IMAGE, command_seed: int | None = None, restore: bool = False) -> SynapseScenario:
    """A random memory of ``organisation`` (a ``[post, pre]`` matrix of ``shape``, or for the
    functional organisations a ``kernel``-shaped kernel on ``image``) and its commands: a forward
    access of every presynaptic neuron and a transposed access of every postsynaptic one,
    interleaved with ``updates`` updates of stored synapses (random values, zero among them: a stored
    zero stays in the structure), then every forward access again. A matrix has an empty row, an empty
    column and a full row; a kernel an empty slice and a full one. The memory comes from ``seed``, the
    commands from ``command_seed`` (default ``seed``): other commands on the same memory. ``restore``:
    the commands begin by writing every stored weight the value it was built with
    (:func:`restore_commands`), so they run the same on a memory that an earlier run updated."""
    org = model.organisation_name(organisation)
    gen = torch.Generator().manual_seed(seed)
    rng = random.Random(seed if command_seed is None else command_seed)
    if org in model.FUNCTIONAL_ORGANISATIONS:
        k = _random_weights(tuple(kernel), density, weight_bits, gen)
        k[0, 1] = 0
        k[1, 0] = _random_weights(k.shape[2:], 1.0, weight_bits, gen)
        mem = model.make_memory(org, k, weight_bits, image=tuple(image))
    else:
        w = _random_weights(tuple(shape), density, weight_bits, gen)
        w[:, 3] = 0
        w[5, :] = 0
        w[:, 7] = _random_weights(tuple(shape)[:1], 1.0, weight_bits, gen)
        mem = model.make_memory(org, w, weight_bits, **({"bitmap_word": bitmap_word} if org == "bitmap" else {}))
    reads = [(model.CMD_FORWARD, 0, pre, 0) for pre in range(mem.pre)] + \
        [(model.CMD_TRANSPOSED, post, 0, 0) for post in range(mem.post)]
    rng.shuffle(reads)
    pairs = torch.nonzero(mem.structure()).tolist()
    lo, hi = signed_range(weight_bits)
    for _ in range(updates if pairs else 0):
        post, pre = rng.choice(pairs)
        value = rng.choice((lo, hi, 0, rng.randint(lo, hi)))
        reads.insert(rng.randrange(len(reads) + 1), (model.CMD_UPDATE, post, pre, value))
    reads += [(model.CMD_FORWARD, 0, pre, 0) for pre in range(mem.pre)]
    return SynapseScenario(mem, (restore_commands(mem) if restore else []) + reads)


def restore_commands(memory: model.SynapseMemory) -> list[tuple[int, int, int, int]]:
    """Updates that write every stored weight word of ``memory`` the value it holds now: one stored
    synapse per word (a functional organisation's synapses share their kernel's words)."""
    scratch = copy.deepcopy(memory)
    trace = scratch.start_trace()
    matrix, written, commands = memory.matrix(), set(), []
    for post, pre in torch.nonzero(memory.structure()).tolist():
        scratch.update(post, pre, int(matrix[post, pre]))
        words = {(a.memory, a.address) for a in trace if a.write}
        trace.clear()
        if not words <= written:
            written |= words
            commands.append((model.CMD_UPDATE, post, pre, int(matrix[post, pre])))
    return commands


def harness_ports(memory: model.SynapseMemory) -> dict:
    """What the batch harness plays and records around the memory: its commands, every trace port
    and the results (in the testbench's agent order)."""
    return {"streams": ("commands",), "sinks": (),
            "monitors": tuple(f"trace__{p}" for p, _, _ in trace_ports(memory)) + ("results",),
            "watches": {"busy": _busy_cycles}}


def _busy_cycles(busy):
    """The batch harness records ``busy`` in every cycle it is high."""
    return busy


def check_counters(port: Callable[[str], Port], prefix: str, counts: dict, who: str) -> int:
    """Compares a synapse memory's access counters (the DUT ports ``<prefix><memory>_reads`` and
    ``_writes``) with the model's ``counts``; returns how many were checked."""
    checked = 0
    for name, want in counts.items():
        for kind in ("reads", "writes"):
            got = port(f"{prefix}{name}_{kind}").get()
            if got != want[kind]:
                raise Mismatch(f"{who}: the {name} memory's {kind} counter reads {got}, the model counts "
                               f"{want[kind]}.")
            checked += 1
    return checked


class SynapseTestbench:
    """Drives the commands of a scenario with random idle cycles and checks every access and result."""

    def __init__(self, memory: model.SynapseMemory, port: Callable[[str], Port], options: RunOptions):
        fault, seed, idle = options.fault, options.seed, options.idle
        if fault is not None and fault not in FAULTS:
            raise ConfigError(f"fault {fault!r} is unknown; allowed: {', '.join(FAULTS)}.")
        self.fault, self.port = fault, port
        self.model = copy.deepcopy(memory)          # the prediction; the DUT holds the original's contents
        self.model.reset_counts()
        self._trace = self.model.start_trace()
        if fault == "data":                          # the model believes every stored weight one LSB off
            name = "kernel" if self.model.name == "func-pure" else "weights"
            self.model._mem[name] = [word ^ 1 for word in self.model._mem[name]]
        self._ports = trace_ports(memory)
        self._result_fields = model.result_fields(memory)
        self._command_fields = model.command_fields(memory)
        rng = random.Random(seed)
        self.commands = SequenceSource({"commands": stream_ports(port, "commands")}, rng=rng, idle=idle,
                                       on_transfer={"commands": self._on_command})
        self.agents = [self.commands]
        self._expected = {name: deque() for _, name, _ in self._ports}
        self._results: deque = deque()
        self.checked = {"accesses": 0, "results": 0, "commands": 0}
        for p, _, _ in self._ports:
            self.agents.append(FieldMonitor(port(f"trace__{p}__valid"), [port(f"trace__{p}__{f}") for f in
                                                                         ("address", "data")],
                                            functools.partial(self._on_access_of, p)))
        self.agents.append(ValidMonitor(port("results__valid"), port("results__payload"), self._on_result))
        self.busy_cycles: set[int] = set()
        self.agents.append(Watch(port("busy"), self._on_busy))
        self._seen_to = 0       # every record of the cycles before this one has been seen
        self._served: list[list[int]] = []      # per command with accesses or results: [cycle taken, still to come]
        self._spans: list[tuple[int, int]] = []  # the cycles busy must be high: (first, last) per command
        self._write_port = {p: w for p, _, w in self._ports}
        self._memory_of = {p: name for p, name, _ in self._ports}
        self._progress = 0
        self.stall_limit = STALL_LIMIT
        self.first_command = self.last_result = None

    # -- stimulus -----------------------------------------------------------------------------------
    def start(self, scenario: SynapseScenario, cycle: int) -> None:
        mem = self.model
        words = []
        for kind, post, pre, value in scenario.commands:
            fields = {"kind": kind, "value": value, **model.neuron_values(mem, "post", post),
                      **model.neuron_values(mem, "pre", pre)}
            words.append(pack_fields(self._command_fields, fields))
        self.commands.send("commands", words)
        self._progress = cycle

    def _on_command(self, cycle: int, word: int) -> None:
        f = unpack_fields(self._command_fields, word)
        post, pre = model.neuron_index(self.model, "post", f), model.neuron_index(self.model, "pre", f)
        if self.first_command is None:
            self.first_command = cycle
        before = len(self._results)
        if f["kind"] == model.CMD_FORWARD:
            self._results.extend(self.model.forward(pre))
        elif f["kind"] == model.CMD_TRANSPOSED:
            self._results.extend(self.model.transposed(post))
        else:
            self.model.update(post, pre, f["value"])
        results = len(self._results) - before
        owed = results + len(self._trace)
        if owed:
            index = len(self._served)
            self._served.append([cycle, owed])
            for k in range(len(self._results) - results, len(self._results)):
                self._results[k] = (index, self._results[k])
            for access in self._trace:
                self._expected[access.memory].append((index, access))
        self._trace.clear()
        self.checked["commands"] += 1
        self._progress = cycle

    # -- checking -----------------------------------------------------------------------------------
    def _on_access_of(self, port: str, cycle: int, address: int, data: int) -> None:
        name, write = self._memory_of[port], self._write_port[port]
        got = (name, "write" if write else "read", address, data)
        queue = self._expected[name]
        if not queue:
            raise Mismatch(f"synapse memory: unexpected {got[1]} of {name}[{address}] = {data} in cycle {cycle}: "
                           "the model predicted no more accesses of it.")
        index, want = queue.popleft()
        want = (want.memory, "write" if want.write else "read", want.address, want.data)
        if got != want:
            raise Mismatch(f"synapse memory: access mismatch in cycle {cycle} on port {port}: DUT (memory, kind, "
                           f"address, data)={got}, model predicts {want}.")
        self.checked["accesses"] += 1
        self._progress = cycle
        self._delivered(index, cycle)

    def _on_result(self, cycle: int, word: int) -> None:
        f = unpack_fields(self._result_fields, word)
        got = (model.neuron_index(self.model, "neuron", f), f["weight"])
        if not self._results:
            raise Mismatch(f"synapse memory: unexpected result (neuron, weight)={got} in cycle {cycle}.")
        index, want = self._results.popleft()
        if got != tuple(want):
            raise Mismatch(f"synapse memory: result mismatch in cycle {cycle}: DUT (neuron, weight)={got}, model "
                           f"predicts {tuple(want)}.")
        self.checked["results"] += 1
        self.last_result = cycle
        self._progress = cycle
        self._delivered(index, cycle)

    def _delivered(self, index: int, cycle: int) -> None:
        """One of command ``index``'s accesses or results was reported in ``cycle``; after its last,
        the cycles from its take to the one before are owed ``busy`` high."""
        served = self._served[index]
        served[1] -= 1
        if not served[1]:
            last = cycle if self.fault == "busy" else cycle - 1       # the fault: owed one cycle too many
            self._spans.append((served[0] + 1, last))

    def _on_busy(self, cycle: int, value: int) -> None:
        if value:
            self.busy_cycles.add(cycle)

    def drive(self) -> None:
        for a in self.agents:
            a.drive()

    def sample(self, cycle: int) -> None:
        for a in self.agents:
            a.sample(cycle)
        self._seen_to = cycle + 1
        if cycle - self._progress > STALL_LIMIT:
            raise Mismatch(f"synapse memory: nothing happened for {STALL_LIMIT} cycles (cycle {cycle}); "
                           f"{len(self.commands.queue)} commands not taken, {self._pending()} predicted "
                           "accesses and results missing.")

    def _pending(self) -> int:
        return len(self._results) + sum(len(q) for q in self._expected.values())

    def settle(self, cycle: int) -> None:
        """(Batch harness.) Every record of the cycles before ``cycle`` has been dispatched."""
        self._seen_to = cycle

    @property
    def done(self) -> bool:
        """Every command taken, everything predicted seen, and ``busy`` low in the last cycle seen."""
        return self.commands.done and not self._pending() and (self._seen_to - 1) not in self.busy_cycles

    def finish(self) -> dict:
        if self._pending():
            raise Mismatch(f"synapse memory: {self._pending()} predicted accesses and results never happened.")
        counts = self.model.counts()
        if self.fault == "counter":
            first = next(iter(counts))
            counts[first] = {**counts[first], "reads": counts[first]["reads"] + 1}
        check_counters(self.port, "counters__", counts, "synapse memory")
        for first, last in self._spans:
            low = next((c for c in range(first, last + 1) if c not in self.busy_cycles), None)
            if low is not None:
                raise Mismatch(f"synapse memory: busy low in cycle {low} while the command taken in cycle "
                               f"{first - 1} was being served (its last access or result came in cycle {last + 1}).")
        self.checked["busy_cycles"] = sum(last - first + 1 for first, last in self._spans)
        return {"checked": dict(self.checked), "counts": counts, "results": self.checked["results"],
                "first_command": self.first_command, "last_result": self.last_result}

