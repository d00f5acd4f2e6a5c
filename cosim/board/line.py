"""The host's end of the UART line as test equipment in the batch harness: the board top's pins
turned into a byte stream in and a byte monitor out, so that the harness's player and recorder
(``cosim.harness``) carry the host's bytes and the chip's answers in bulk, each byte with its cycle.

The driver and the monitor are the testbench's own (8 data bits, least significant first, one start
and one stop bit, ``divisor`` cycles a bit), written apart from the chip's ``fpga.link`` UART so that
a fault of that UART is not mirrored here. :class:`LineNoise` puts random bit errors on a line.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["LineDriver", "LineMonitor", "LineNoise", "BoardPins", "received_signature", "noise_signature",
           "noise_threshold", "noise_seed_state"]


def received_signature() -> wiring.Signature:
    """A byte seen on the line: ``payload``, and ``framing`` when its stop bit was low."""
    return wiring.Signature({"valid": Out(1), "payload": Out(8), "framing": Out(1)})


class LineDriver(wiring.Component):
    """Sends each byte of ``send`` on ``line`` (idle high): a start bit, the data bits, a stop bit,
    each ``divisor`` cycles, from the cycle after the byte is taken; bytes follow back to back."""

    send: In(stream.Signature(8))
    line: Out(1, init=1)

    def __init__(self, divisor: int):
        self.divisor = divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        shift = Signal(10, init=0x3FF)          # the bits still to send, the next one lowest
        left = Signal(range(11))                # bits still to send
        count = Signal(range(self.divisor))     # cycles left in the current bit
        m.d.comb += [self.line.eq(shift[0]), self.send.ready.eq(left == 0)]
        with m.If(self.send.valid & self.send.ready):
            m.d.sync += [shift.eq((1 << 9) | (self.send.payload << 1)), left.eq(10), count.eq(self.divisor - 1)]
        with m.Elif(left != 0):
            with m.If(count == 0):
                m.d.sync += [shift.eq((1 << 9) | (shift >> 1)), left.eq(left - 1), count.eq(self.divisor - 1)]
            with m.Else():
                m.d.sync += count.eq(count - 1)
        return m


class LineMonitor(wiring.Component):
    """Decodes ``line``: a low level while idle starts a byte; each bit is sampled in the middle of
    its ``divisor`` cycles (a start bit that is high again there was a glitch); ``received`` is
    valid for one cycle at the middle of the stop bit, with the byte and whether the stop bit was low."""

    line: In(1, init=1)
    received: Out(received_signature())

    def __init__(self, divisor: int):
        self.divisor = divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        half, full = self.divisor // 2, self.divisor
        count = Signal(range(full + 1))
        bit = Signal(range(10))                 # 0: the start bit, 1-8: data, 9: the stop bit
        data = Signal(8)
        with m.FSM():
            with m.State("idle"):
                with m.If(~self.line):
                    m.d.sync += [count.eq(half - 1), bit.eq(0)]
                    m.next = "bit"
            with m.State("bit"):
                with m.If(count != 0):
                    m.d.sync += count.eq(count - 1)
                with m.Elif(bit == 0):
                    with m.If(self.line):
                        m.next = "idle"             # a glitch, not a start bit
                    with m.Else():
                        m.d.sync += [bit.eq(1), count.eq(full - 1)]
                with m.Elif(bit == 9):
                    m.d.comb += [self.received.valid.eq(1), self.received.payload.eq(data),
                                 self.received.framing.eq(~self.line)]
                    m.next = "idle"
                with m.Else():
                    m.d.sync += [data.eq((self.line << 7) | (data >> 1)), bit.eq(bit + 1), count.eq(full - 1)]
        return m


def noise_threshold(ber: float, divisor: int) -> int:
    """The per-cycle threshold of :class:`LineNoise` for ``ber`` errors per bit (0: none)."""
    if not 0 <= ber < 1:
        raise ValueError(f"ber={ber!r} is out of range; allowed: 0 <= ber < 1.")
    return min((1 << 32) - 1, round(ber / divisor * (1 << 32)))


def noise_seed_state(seed: int) -> int:
    """A xorshift32 state (never 0) for ``seed``: MurmurHash3's finaliser of it, so that nearby
    seeds give unrelated error patterns (xorshift is linear: states a shift apart stay related)."""
    h = (seed * 0x9E3779B9 + 0x7F4A7C15) & 0xFFFFFFFF
    for shift, multiplier in ((16, 0x85EBCA6B), (13, 0xC2B2AE35)):
        h = ((h ^ (h >> shift)) * multiplier) & 0xFFFFFFFF
    return (h ^ (h >> 16)) or 1


class LineNoise(wiring.Component):
    """Bit errors on a UART line: in each cycle an error starts with probability ``threshold / 2**32``
    (a xorshift32 generator against ``threshold``; ``noise_threshold``: ``ber / divisor``) and
    inverts ``out`` for ``divisor`` cycles, one bit time, so it flips exactly one of the receiver's
    mid-bit samples: ``ber`` errors per bit sent (and on the idle line, where a flip is a false start
    bit). ``hit`` is high in the cycle an error starts; ``seed`` loads the generator's state."""

    line: In(1, init=1)
    threshold: In(32)
    seed: In(32)
    load: In(1)
    out: Out(1, init=1)
    hit: Out(1)

    def __init__(self, divisor: int):
        self.divisor = divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        state = Signal(32, init=1, reset_less=True)     # loaded while the design is in reset
        x1 = state ^ (state << 13)[:32]
        x2 = x1 ^ (x1 >> 17)
        with m.If(self.load):
            m.d.sync += state.eq(self.seed)
        with m.Else():
            m.d.sync += state.eq(x2 ^ (x2 << 5)[:32])
        left = Signal(range(self.divisor + 1))          # cycles of the error still to come
        m.d.comb += self.hit.eq((left == 0) & (state < self.threshold) & ~self.load)
        with m.If(self.hit):
            m.d.sync += left.eq(self.divisor - 1)
        with m.Elif(left != 0):
            m.d.sync += left.eq(left - 1)
        m.d.comb += self.out.eq(self.line ^ (self.hit | (left != 0)))
        return m


def noise_signature() -> wiring.Signature:
    """A bit error put on the line to the chip (``rx``) or from it (``tx``)."""
    return wiring.Signature({"valid": Out(1), "rx": Out(1), "tx": Out(1)})


class BoardPins(wiring.Component):
    """A board top (``fpga.top.ChipTop``) with the host's end of its line: ``host_tx`` (bytes to the
    chip), ``host_rx`` (bytes from it); the LEDs pass through. Both directions of the line go through
    a :class:`LineNoise` (``noise_threshold``: 0, a clean line; ``noise_rx_seed``/``noise_tx_seed``
    loaded while ``noise_load`` is high), each error reported on ``noise``."""

    def __init__(self, top, divisor: int):
        self.top, self.divisor = top, divisor
        super().__init__({"host_tx": In(stream.Signature(8)), "host_rx": Out(received_signature()),
                          "noise": Out(noise_signature()), "noise_threshold": In(32), "noise_rx_seed": In(32),
                          "noise_tx_seed": In(32), "noise_load": In(1), "spike_led": Out(1), "logit_led": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.top = top = self.top
        m.submodules.driver = driver = LineDriver(self.divisor)
        m.submodules.monitor = monitor = LineMonitor(self.divisor)
        wiring.connect(m, wiring.flipped(self.host_tx), driver.send)
        wiring.connect(m, monitor.received, wiring.flipped(self.host_rx))
        m.submodules.rx_noise = rx_noise = LineNoise(self.divisor)
        m.submodules.tx_noise = tx_noise = LineNoise(self.divisor)
        for noise, line, seed in ((rx_noise, driver.line, self.noise_rx_seed), (tx_noise, top.tx, self.noise_tx_seed)):
            m.d.comb += [noise.line.eq(line), noise.threshold.eq(self.noise_threshold), noise.seed.eq(seed),
                         noise.load.eq(self.noise_load)]
        m.d.comb += [self.noise.valid.eq(rx_noise.hit | tx_noise.hit),
                     self.noise.rx.eq(rx_noise.hit), self.noise.tx.eq(tx_noise.hit)]
        m.d.comb += [top.rx.eq(rx_noise.out), monitor.line.eq(tx_noise.out),
                     self.spike_led.eq(top.spike_led), self.logit_led.eq(top.logit_led)]
        return m
