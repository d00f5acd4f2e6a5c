"""cocotb test module of a whole board top (``fpga.top.ChipTop``): the host driver (``fpga.host.Chip``)
runs few-shot episodes through the top's UART pins, bit by bit, and the answers are checked against
the golden model (see ``cosim.board``). The job comes as JSON from the file named by
``NEUROMOSAIC_JOB``; the result goes back as JSON to the path the job names.
"""

from collections import deque

import cocotb
from cocotb.clock import Clock
from cocotb.task import bridge, resume
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge, Timer
from neuromosaic.cosim.cocotb_loop import run_job


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


@cocotb.test()
async def board_episodes(dut):
    """Few-shot episodes through the UART with the host driver; malformed frames must be refused."""
    from neuromosaic.cosim.board import host_session, job_protocol

    async def body(job, clock):
        protocol = job_protocol(job)
        dut.rst.value = 1
        dut.rx.value = 1
        Clock(dut.clk, 10, unit="ns").start()
        await ClockCycles(dut.clk, 2)
        await RisingEdge(dut.clk)
        dut.rst.value = 0
        pins = PinTransport(dut, protocol.link.divisor, protocol.link.clock_hz)
        pins.start()
        await pins.idle(2)
        result = await bridge(host_session)(job, protocol, pins)
        clock["cycle"] = int(cocotb.simtime.get_sim_time("ns") // 10)
        return result

    await run_job(body)
