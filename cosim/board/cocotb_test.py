"""cocotb test module of a whole board top (``fpga.top.ChipTop``): the host driver (``fpga.host.Chip``)
runs few-shot episodes through the top's UART, and the answers are checked against the golden model
(see ``cosim.board``). In the batch harness (a job with a layout) the host's bytes go through the
harness's player into a line driver and the chip's bytes come back through a line monitor and its
recorder (``cosim.board.line``); per cycle, Python drives and decodes the pins bit by bit. The job
comes as JSON from the file named by ``NEUROMOSAIC_JOB``; the result goes back as JSON to the path
the job names.
"""

from collections import deque

import cocotb
from cocotb.clock import Clock
from cocotb.task import bridge, resume
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge, Timer
from neuromosaic.cosim.agents import FieldMonitor, Port, SequenceSource, stream_ports
from neuromosaic.cosim.batch_loop import Player, Recorders, Wire, sleep, start_harness
from neuromosaic.cosim.board.line import noise_seed_state, noise_threshold
from neuromosaic.cosim.cocotb_loop import cocotb_port, run_job, run_mutants, select_mutant
from neuromosaic.cosim.harness import INPUT_LATENCY, PERIOD_NS
from neuromosaic.cosim.options import RunOptions
from neuromosaic.fpga.host import LinkError


class PinTransport:
    """The host side of the UART on the top's pins: ``write`` drives ``rx`` bit by bit, a monitor
    decodes ``tx`` into a queue that ``read`` takes from. Both are blocking calls for the driver's
    thread (``cocotb.task.resume``); ``read``'s timeout is in seconds of the chip's clock."""

    def __init__(self, dut, divisor: int, clock_hz: int, period_ns: int = 10):
        self.dut, self.divisor, self.clock_hz = dut, divisor, clock_hz
        self.bit_ns = divisor * period_ns           # one Timer per bit: far cheaper than a callback per cycle
        self.received = deque()
        self.write = resume(self._write)
        self.read = resume(self._read)
        self.bytes_written = self.bytes_read = 0

    def start(self) -> None:
        cocotb.start_soon(self._monitor())

    async def _monitor(self):
        dut, bit = self.dut, self.bit_ns
        while True:
            await FallingEdge(dut.tx)
            await Timer(bit // 2, unit="ns")               # the middle of the start bit
            if int(dut.tx.value):
                continue                                    # a glitch, not a start bit
            byte = 0
            for i in range(8):
                await Timer(bit, unit="ns")
                byte |= int(dut.tx.value) << i
            await Timer(bit, unit="ns")
            assert int(dut.tx.value) == 1, "the chip sent a byte without a stop bit"
            self.received.append(byte)

    async def _write(self, data: bytes) -> None:
        dut, bit = self.dut, self.bit_ns
        for byte in data:
            for value in [0] + [(byte >> i) & 1 for i in range(8)] + [1]:
                dut.rx.value = value
                await Timer(bit, unit="ns")
        self.bytes_written += len(data)

    async def _read(self, count: int, timeout: float) -> bytes:
        waited, limit = 0, int(timeout * self.clock_hz) * self.bit_ns // self.divisor
        step = 10 * self.bit_ns
        while len(self.received) < count and waited < limit:
            await Timer(step, unit="ns")
            waited += step
        out = bytes(self.received.popleft() for _ in range(min(count, len(self.received))))
        self.bytes_read += len(out)
        return out

    async def idle(self, byte_times: int) -> None:
        await Timer(byte_times * 10 * self.bit_ns, unit="ns")


class HarnessTransport:
    """The host side of the line in the batch harness: ``write`` queues bytes for the harness's
    player (its line driver sends them back to back), ``read`` sleeps in spans of the bytes still
    expected and drains the line monitor's records. Both are blocking calls for the driver's thread;
    ``read``'s timeout is in seconds of the chip's clock. ``noise`` (``ber``, ``seed``): the bit errors
    the line's test equipment puts on both directions (counted in ``bit_errors``; a byte that comes
    without its stop bit is then dropped, as a UART does); past ``max_cycles`` of the session a read
    raises ``LinkError``."""

    def __init__(self, dut, layout: dict, divisor: int, clock_hz: int, noise: dict | None = None,
                 max_cycles: int | None = None):
        self.dut, self.layout, self.clock_hz, self.divisor = dut, layout, clock_hz, divisor
        self.max_cycles, self.first_cycle = max_cycles, 0
        self.noise = noise or {"ber": 0.0, "seed": 0}
        self.noisy = self.noise["ber"] > 0
        self.byte_cycles = 10 * divisor
        self.received = deque()
        self.source = SequenceSource({"host_tx": stream_ports(lambda n: cocotb_port(dut, n), "host_tx")})
        self.bit_errors = {"rx": 0, "tx": 0}            # put on the line to the chip and from it
        self.framing_errors = 0
        monitors = [FieldMonitor(Port("host_rx__valid", None), [], self._byte),
                    FieldMonitor(Port("noise__valid", None), [], self._bit_error)]
        self.recorders = Recorders(dut, layout, [self.source, *monitors])
        self.player = Player(dut, layout, 0, self.source)
        self.h_cycle = Wire(dut.h_cycle)
        self.write = resume(self._write)
        self.read = resume(self._read)
        self.bytes_written = self.bytes_read = 0

    def _byte(self, cycle, byte, framing):
        if framing:
            if not self.noisy:
                raise AssertionError(f"cycle {cycle}: the chip sent a byte without a stop bit")
            self.framing_errors += 1         # a UART drops such a byte
            return
        self.received.append(byte)

    def _bit_error(self, cycle, rx, tx):
        self.bit_errors["rx"] += rx
        self.bit_errors["tx"] += tx

    async def start(self) -> None:
        """The line from reset, its bit errors set; an earlier run's records (on a harness that ran
        before) skipped."""
        dut, seed = self.dut, self.noise["seed"]
        dut.noise_threshold.value = noise_threshold(self.noise["ber"], self.divisor)
        dut.noise_rx_seed.value, dut.noise_tx_seed.value = noise_seed_state(2 * seed), noise_seed_state(2 * seed + 1)
        dut.noise_load.value = 1
        await start_harness(dut, [self.player], self.layout, RunOptions(idle=0.0, backpressure=0.0))
        await Timer(2 * PERIOD_NS, unit="ns")          # an earlier run's last records are written by now
        self.recorders.resync()
        dut.noise_load.value = 0
        dut.rst.value = 0
        self.first_cycle = self.h_cycle.read()
        await Timer(INPUT_LATENCY * PERIOD_NS, unit="ns")

    async def _pass(self, cycles: int) -> None:
        """Lets ``cycles`` pass (fewer when the player runs low), then drains and refills."""
        self.player.set_low()
        await sleep(self.dut, max(1, cycles))
        self.recorders.drain()
        self.player.refill()

    async def _write(self, data: bytes) -> None:
        self.source.send("host_tx", data)
        self.player.refill()
        self.bytes_written += len(data)

    async def _read(self, count: int, timeout: float) -> bytes:
        if self.max_cycles is not None and self.h_cycle.read() - self.first_cycle > self.max_cycles:
            raise LinkError(f"the session ran past {self.max_cycles:,} cycles (a chip that never stops "
                            "sending, or a driver that never stops asking).")
        self.recorders.drain()
        # The timeout runs from the end of what is still queued (a blocking write would return then).
        queued = len(self.source.queue) * self.byte_cycles
        limit = self.h_cycle.read() + queued + int(timeout * self.clock_hz)
        while len(self.received) < count and self.h_cycle.read() < limit:
            # The bytes still queued go out first; the answer's bytes come at most one a byte time.
            due = (len(self.source.queue) + count - len(self.received)) * self.byte_cycles
            await self._pass(min(due, limit - self.h_cycle.read(), self.layout["depth"] * self.byte_cycles))
        out = bytes(self.received.popleft() for _ in range(min(count, len(self.received))))
        self.bytes_read += len(out)
        return out

    async def idle(self, byte_times: int) -> None:
        await self._pass(byte_times * self.byte_cycles)


def _board_body(dut):
    """The test body: the mutant selected (a mutant netlist), then for each of the job's ``variants``
    (changes to the job; default one, none) the line from reset and the host's session
    (``cosim.board.host_session``) in the driver's thread."""
    async def body(job, clock):
        select_mutant(dut, job)
        variants = job.get("variants") or [{}]
        if len(variants) > 1 and not job.get("layout"):
            raise ValueError("variants run in the batch harness only; this job has no harness layout.")
        results = [await _session(dut, {**job, **variant}, clock) for variant in variants]
        return results[0] if len(results) == 1 else {"variants": results}
    return body


async def _session(dut, job, clock):
    """One host session of ``job`` from the design's reset: its result."""
    from neuromosaic.cosim.board import host_session, job_protocol
    protocol = job_protocol(job)
    if job.get("layout"):
        line = HarnessTransport(dut, job["layout"], protocol.link.divisor, protocol.link.clock_hz,
                                job.get("noise"), job.get("max_cycles"))
        await line.start()
    else:
        dut.rst.value = 1
        dut.rx.value = 1
        Clock(dut.clk, 10, unit="ns").start()
        await ClockCycles(dut.clk, 2)
        await RisingEdge(dut.clk)
        dut.rst.value = 0
        line = PinTransport(dut, protocol.link.divisor, protocol.link.clock_hz)
        line.start()
    await line.idle(2)
    result = await bridge(host_session)(job, protocol, line)
    if job.get("layout"):
        line.recorders.drain()
        result["noise"] = {"bit_errors": line.bit_errors, "framing_errors": line.framing_errors}
    clock["cycle"] = int(cocotb.simtime.get_sim_time("ns") // PERIOD_NS)
    return result


@cocotb.test()
async def board_episodes(dut):
    """Few-shot episodes through the UART with the host driver; malformed frames must be refused."""
    await run_job(_board_body(dut))


@cocotb.test()
async def board_mutants(dut):
    """The board session once per mutant of a mutant netlist (the host link mutated), in one simulation."""
    await run_mutants(_board_body(dut))
