"""Cycle-driven verification agents, independent of the simulator.

An agent reads and writes the DUT through plain accessor functions (``get() -> int``,
``set(int)``), so the same driver, sink and monitors run under cocotb (Verilator, Icarus) and under
Amaranth's simulator. A simulator-specific loop calls, once per clock cycle::

    for a in agents: a.drive()          # after the clock edge: set this cycle's inputs
    (let combinational logic settle)
    for a in agents: a.sample(cycle)    # read the cycle's settled values; a transfer happens
                                        # at the next edge when valid and ready are both high

One loop and one pair of simulator waits per cycle, whatever the number of agents: that keeps the
scoreboarded cosim close to the speed of a bare clock loop.
"""

from __future__ import annotations

import random
from collections import deque
from typing import Callable

__all__ = ["Port", "SequenceSource", "StreamSink", "ValidMonitor", "FieldMonitor", "Watch", "stream_ports"]


class Port:
    """Accessors for one DUT signal."""
    __slots__ = ("get", "set", "name")

    def __init__(self, name: str, get: Callable[[], int], set: Callable[[int], None] | None = None):
        self.name, self.get, self.set = name, get, set


class SequenceSource:
    """Drives one or more valid/ready streams (``streams``: name -> (valid, ready, payload) ports)
    from one queue of ``(stream, payload)`` in order: one word offered at a time, after random idle
    cycles, held until it is taken (valid never depends on ready). A word of one stream therefore
    never overtakes an earlier word of another. ``on_transfer``: name -> ``f(cycle, word)``;
    ``on_offer``: ``f(cycle)`` in the first cycle of each offer. ``after``: another source whose
    words all go first (a table load before the traffic): this one offers nothing until that one
    is done.

    The batch harness (``cosim.harness.StreamPlayer``) plays the same queue in the same way; its
    records come back through :meth:`taken` (and :meth:`offered`)."""

    def __init__(self, streams: dict, *, rng: random.Random | None = None, idle: float = 0.0,
                 on_transfer: dict | None = None, on_offer=None, after: "SequenceSource | None" = None):
        self.streams = dict(streams)
        self.names = list(self.streams)
        self.rng, self.idle = rng or random.Random(0), idle
        self.on_transfer = dict(on_transfer or {})
        self.on_offer, self.after = on_offer, after
        self.queue: deque[tuple[str, int]] = deque()
        self._offering: str | None = None      # the stream whose word is offered, until it is taken
        self._raised: str | None = None        # the stream whose valid is high
        self._fresh = False                    # the offer began in this cycle
        self.transfers = 0

    def send(self, stream: str, words) -> None:
        if stream not in self.streams:
            raise ValueError(f"stream {stream!r} is not one of this source's: {', '.join(self.names)}.")
        self.queue.extend((stream, w) for w in words)

    @property
    def done(self) -> bool:
        return not self.queue

    @property
    def held(self) -> bool:
        """Waiting for the source it comes after."""
        return self.after is not None and not self.after.done

    def drive(self) -> None:
        if self._offering is None and self.queue and not self.held and \
                not (self.idle and self.rng.random() < self.idle):
            stream, word = self.queue[0]
            if self._raised not in (None, stream):
                self.streams[self._raised][0].set(0)
            valid, _, payload = self.streams[stream]
            payload.set(word)
            valid.set(1)
            self._offering = self._raised = stream
            self._fresh = True
        elif self._offering is None and self._raised is not None:
            self.streams[self._raised][0].set(0)
            self._raised = None

    def sample(self, cycle: int) -> None:
        if self._fresh:
            self._fresh = False
            self.offered(cycle)
        if self._offering is not None and self.streams[self._offering][1].get():
            self._offering = None
            self.taken(cycle)

    def offered(self, cycle: int) -> None:
        """The head of the queue was first offered in ``cycle``."""
        if self.on_offer is not None:
            self.on_offer(cycle)

    def taken(self, cycle: int, stream: str | None = None) -> None:
        """The head of the queue was taken in ``cycle`` (``stream``: the stream the harness says
        it went to, checked against the queue)."""
        name, word = self.queue.popleft()
        if stream is not None and stream != name:
            raise AssertionError(f"the harness played {stream} where the queue has {name}.")
        self.transfers += 1
        handler = self.on_transfer.get(name)
        if handler is not None:
            handler(cycle, word)


class StreamSink:
    """Takes a stream with a random ready pattern (backpressure) and reports each transfer."""

    def __init__(self, valid: Port, ready: Port, payload: Port, *, rng: random.Random | None = None,
                 backpressure: float = 0.0, on_transfer: Callable[[int, int], None] | None = None):
        self.valid, self.ready, self.payload = valid, ready, payload
        self.rng, self.backpressure, self.on_transfer = rng or random.Random(0), backpressure, on_transfer
        self._ready = 0
        self.stall_cycles = 0
        self.transfers = 0
        self.last_word = None

    def drive(self) -> None:
        self._ready = 0 if (self.backpressure and self.rng.random() < self.backpressure) else 1
        self.ready.set(self._ready)

    def sample(self, cycle: int) -> None:
        if self.valid.get():
            if self._ready:
                self.take(cycle, self.payload.get())
            else:
                self.stall_cycles += 1

    def take(self, cycle: int, word: int) -> None:
        """``word`` was taken in ``cycle``."""
        self.transfers += 1
        self.last_word = word
        if self.on_transfer is not None:
            self.on_transfer(cycle, word)


class ValidMonitor:
    """Reports every cycle in which ``valid`` is high with the value of ``payload``."""

    def __init__(self, valid: Port, payload: Port, on_valid: Callable[[int, int], None]):
        self.valid, self.payload, self.on_valid = valid, payload, on_valid

    def drive(self) -> None:
        pass

    def sample(self, cycle: int) -> None:
        if self.valid.get():
            self.observe(cycle, self.payload.get())

    def observe(self, cycle: int, word: int) -> None:
        """``word`` was on the port in ``cycle``."""
        self.on_valid(cycle, word)


class FieldMonitor:
    """Reports every cycle in which ``valid`` is high with the values of ``fields`` (ports, in the
    order the harness records them, LSB first): ``on_valid(cycle, *values)``."""

    def __init__(self, valid: Port, fields: list[Port], on_valid: Callable[..., None]):
        self.valid, self.fields, self.on_valid = valid, list(fields), on_valid
        self.widths: list[int] | None = None      # the fields' bits, given by the batch loop

    def drive(self) -> None:
        pass

    def sample(self, cycle: int) -> None:
        if self.valid.get():
            self.on_valid(cycle, *(f.get() for f in self.fields))

    def observe(self, cycle: int, word: int) -> None:
        """The fields packed in ``word`` (``widths``) were on the port in ``cycle``."""
        values = []
        for bits in self.widths:
            values.append(word & ((1 << bits) - 1))
            word >>= bits
        self.on_valid(cycle, *values)


def stream_ports(port, name: str) -> tuple[Port, Port, Port]:
    """The (valid, ready, payload) ports of the stream ``name`` (``port``: a testbench's accessor)."""
    return port(f"{name}__valid"), port(f"{name}__ready"), port(f"{name}__payload")


class Watch:
    """Reports the value of a plain output ``port`` (a word of link handshakes): every cycle per
    cycle, or in the cycles a batch harness's strobe of it was high."""

    def __init__(self, port: Port, on_value: Callable[[int, int], None]):
        self.port, self.on_value = port, on_value

    def drive(self) -> None:
        pass

    def sample(self, cycle: int) -> None:
        self.on_value(cycle, self.port.get())

    def observe(self, cycle: int, word: int) -> None:
        self.on_value(cycle, word)
