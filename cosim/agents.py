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

__all__ = ["Port", "StreamSource", "StreamSink", "ValidMonitor"]


class Port:
    """Accessors for one DUT signal."""
    __slots__ = ("get", "set", "name")

    def __init__(self, name: str, get: Callable[[], int], set: Callable[[int], None] | None = None):
        self.name, self.get, self.set = name, get, set


class StreamSource:
    """Drives a valid/ready stream from a queue of packed payloads, with random idle cycles.
    Valid never depends on ready; the payload is held until it is taken."""

    def __init__(self, valid: Port, ready: Port, payload: Port, *, rng: random.Random | None = None,
                 idle: float = 0.0, on_transfer: Callable[[int, int], None] | None = None):
        self.valid, self.ready, self.payload = valid, ready, payload
        self.rng, self.idle, self.on_transfer = rng or random.Random(0), idle, on_transfer
        self.queue: deque[int] = deque()
        self._offering = False
        self.transfers = 0

    def send(self, words) -> None:
        self.queue.extend(words)

    @property
    def done(self) -> bool:
        return not self.queue and not self._offering

    def drive(self) -> None:
        if not self._offering and self.queue and not (self.idle and self.rng.random() < self.idle):
            self._offering = True
            self.payload.set(self.queue[0])
            self.valid.set(1)
        elif not self._offering:
            self.valid.set(0)

    def sample(self, cycle: int) -> None:
        if self._offering and self.ready.get():
            word = self.queue.popleft()
            self._offering = False
            self.transfers += 1
            if self.on_transfer is not None:
                self.on_transfer(cycle, word)


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
                self.transfers += 1
                self.last_word = word = self.payload.get()
                if self.on_transfer is not None:
                    self.on_transfer(cycle, word)
            else:
                self.stall_cycles += 1


class ValidMonitor:
    """Reports every cycle in which ``valid`` is high with the value of ``payload``."""

    def __init__(self, valid: Port, payload: Port, on_valid: Callable[[int, int], None]):
        self.valid, self.payload, self.on_valid = valid, payload, on_valid

    def drive(self) -> None:
        pass

    def sample(self, cycle: int) -> None:
        if self.valid.get():
            self.on_valid(cycle, self.payload.get())
