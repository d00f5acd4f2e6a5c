"""Single-port RAM with a synchronous read: the weight store of a core.

Generic (``amaranth.lib.memory``) in simulation and in exported Verilog. Elaborated for an iCE40
UltraPlus with no initial contents, it is built from the device's SB_SPRAM256KA blocks (16K x 16 each,
no initialisation possible), which Yosys does not infer from a memory that Amaranth gives zero
initial contents.
"""

from amaranth.hdl import ClockSignal, Instance, Module, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["SinglePortRAM"]

SPRAM_DEPTH, SPRAM_WIDTH, SPRAM_BLOCKS = 16384, 16, 4


class SinglePortRAM(wiring.Component):
    """Members
    -------
    addr : In(range(depth))
    write_enable : In(1)       -- writes ``write_data`` at ``addr`` (read data then undefined)
    write_data : In(width)
    read_data : Out(width)     -- the word at the ``addr`` of the previous cycle
    """

    def __init__(self, width: int, depth: int, init=()):
        self._width, self._depth, self._init = width, depth, list(init)
        super().__init__({"addr": In(range(depth)), "write_enable": In(1),
                          "write_data": In(width), "read_data": Out(width)})

    def spram_tiles(self) -> tuple[int, int]:
        """(tiles across the width, tiles across the depth) on iCE40 SPRAM."""
        return -(-self._width // SPRAM_WIDTH), -(-self._depth // SPRAM_DEPTH)

    def _use_spram(self, platform) -> bool:
        if platform is None or self._init or not str(getattr(platform, "device", "")).startswith("iCE40UP"):
            return False
        across, down = self.spram_tiles()
        return across * down <= SPRAM_BLOCKS

    def elaborate(self, platform):
        m = Module()
        if not self._use_spram(platform):
            m.submodules.memory = mem = Memory(shape=unsigned(self._width), depth=self._depth, init=self._init)
            wr, rd = mem.write_port(), mem.read_port()
            m.d.comb += [wr.addr.eq(self.addr), rd.addr.eq(self.addr), wr.en.eq(self.write_enable),
                         wr.data.eq(self.write_data), self.read_data.eq(rd.data)]
            return m

        across, down = self.spram_tiles()
        low = Signal(14)                        # the SPRAM address port is 14 bits wide
        m.d.comb += low.eq(self.addr[:14])
        high = self.addr[14:] if len(self.addr) > 14 else 0
        high_q = Signal(max(1, len(self.addr) - 14))
        m.d.sync += high_q.eq(high)
        data = Signal(across * SPRAM_WIDTH)
        write_data = Signal(across * SPRAM_WIDTH)
        m.d.comb += write_data.eq(self.write_data)
        outputs = []
        for d in range(down):
            out_d = Signal(across * SPRAM_WIDTH, name=f"spram_out_{d}")
            select = high == d
            for a in range(across):
                m.submodules[f"spram_{d}_{a}"] = Instance(
                    "SB_SPRAM256KA",
                    i_ADDRESS=low, i_DATAIN=write_data[a * 16:(a + 1) * 16],
                    i_MASKWREN=0b1111, i_WREN=self.write_enable & select, i_CHIPSELECT=select,
                    i_CLOCK=ClockSignal("sync"), i_STANDBY=0, i_SLEEP=0, i_POWEROFF=1,
                    o_DATAOUT=out_d[a * 16:(a + 1) * 16])
            outputs.append(out_d)
        with m.Switch(high_q):
            for d, out_d in enumerate(outputs):
                with m.Case(d):
                    m.d.comb += data.eq(out_d)
        m.d.comb += self.read_data.eq(data[:self._width])
        return m

