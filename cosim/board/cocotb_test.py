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
from neuromosaic.cosim.cocotb_loop import cocotb_port, run_job
from neuromosaic.cosim.harness import INPUT_LATENCY, PERIOD_NS
from neuromosaic.cosim.options import RunOptions


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
    ``read``'s timeout is in seconds of the chip's clock."""

    def __init__(self, dut, layout: dict, divisor: int, clock_hz: int):
        self.dut, self.layout, self.clock_hz = dut, layout, clock_hz
        self.byte_cycles = 10 * divisor
        self.received = deque()
        self.source = SequenceSource({"host_tx": stream_ports(lambda n: cocotb_port(dut, n), "host_tx")})
        monitor = FieldMonitor(Port("host_rx__valid", None), [], self._byte)
        self.recorders = Recorders(dut, layout, [self.source, monitor])
        self.player = Player(dut, layout, 0, self.source)
        self.h_cycle = Wire(dut.h_cycle)
        self.write = resume(self._write)
        self.read = resume(self._read)
        self.bytes_written = self.bytes_read = 0

    def _byte(self, cycle, byte, framing):
        if framing:
            raise AssertionError(f"cycle {cycle}: the chip sent a byte without a stop bit")
        self.received.append(byte)

    async def start(self) -> None:
        await start_harness(self.dut, [self.player], self.layout, RunOptions(idle=0.0, backpressure=0.0))
        self.dut.rst.value = 0
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


@cocotb.test()
async def board_episodes(dut):
    """Few-shot episodes through the UART with the host driver; malformed frames must be refused."""
    from neuromosaic.cosim.board import host_session, job_protocol

    async def body(job, clock):
        protocol = job_protocol(job)
        if job.get("layout"):
            line = HarnessTransport(dut, job["layout"], protocol.link.divisor, protocol.link.clock_hz)
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
        clock["cycle"] = int(cocotb.simtime.get_sim_time("ns") // PERIOD_NS)
        return result

    await run_job(body)
