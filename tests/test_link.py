"""The host link: frame layout and CRC (shared by gateware and driver), link config refusals, and
the board top driven through its UART pins by the host driver in cocotb (episodes bit-exact,
malformed frames refused and never executed, a wrong model caught)."""

import random

import pytest
from neuromosaic.cosim.board import run_board_cosim
from neuromosaic.cosim.options import RunOptions
from neuromosaic.cosim.runner import CosimError
from neuromosaic.fpga.host import Chip, LinkError
from neuromosaic.fpga.protocol import (
    CRC16_INIT,
    SYNC,
    LinkConfig,
    Protocol,
    bytes_to_items,
    crc16,
    frame,
    items_to_bytes,
    write_digest,
)
from neuromosaic.model.config import ConfigError, Field
from neuromosaic.model.snn import SRNNConfig
from neuromosaic.model.tiles import MosaicConfig

SMALL = SRNNConfig.make(channels=8, neurons=8, outputs=3, lanes=2)
SIM_LINK = LinkConfig(clock_hz=4_000_000, baud=1_000_000, buffer_bytes=64)


def crc_update(crc: int, data: int, data_bits: int, poly: int = 0x1021) -> int:
    """The bit-serial CRC-16 register after ``data_bits`` bits of ``data``, most significant bit first."""
    for i in reversed(range(data_bits)):
        top = (crc >> 15) & 1
        crc = (crc << 1) & 0xFFFF
        if top ^ ((data >> i) & 1):
            crc ^= poly
    return crc


def test_crc16_is_ccitt_false():
    assert crc16(b"123456789") == 0x29B1          # the catalogued check value of CRC-16/CCITT-FALSE
    assert crc16(b"") == CRC16_INIT == 0xFFFF


@pytest.mark.parametrize("bits", [1, 5, 8, 27])
def test_link_crc_is_the_bit_serial_crc(bits):
    """The frames' and the digest's CRC (amaranth.lib.crc, as the gateware computes it) is the
    bit-serial CRC-16/CCITT-FALSE over words of any width."""
    rng = random.Random(bits)
    for _ in range(50):
        words = [rng.getrandbits(bits) for _ in range(rng.randrange(0, 6))]
        want = CRC16_INIT
        for w in words:
            want = crc_update(want, w, bits)
        assert write_digest(words, bits) == want
        if bits == 8:
            assert crc16(bytes(words)) == want


def test_frame_layout():
    f = frame(0x05, b"\x01\x02\x03")
    assert f[0] == SYNC and f[1] == 0x05 and f[2:4] == b"\x03\x00" and f[4:7] == b"\x01\x02\x03"
    assert int.from_bytes(f[7:], "little") == crc16(f[1:7])
    fields = (Field("a", 3), Field("b", 9, signed=True))
    payload = items_to_bytes(fields, [{"a": 5, "b": -200}, {"a": 0, "b": 255}])
    assert len(payload) == 4 and bytes_to_items(fields, payload) == [{"a": 5, "b": -200}, {"a": 0, "b": 255}]


def test_weight_write_digest():
    assert write_digest([], 8) == CRC16_INIT
    assert write_digest([-1, 2], 8) == crc_update(crc_update(CRC16_INIT, 0xFF, 8), 2, 8)


def test_link_config_refusals():
    with pytest.raises(ConfigError,
                       match=r"baud=4000000 at clock_hz=12000000 gives 3 cycles per bit; allowed: at least 4"):
        LinkConfig(baud=4_000_000)
    # the rate a whole divisor makes must be within 2 % of the one asked for; zero is not a rate
    with pytest.raises(ConfigError, match=r"baud=2800000 at clock_hz=12000000: 4 cycles per bit give 3,000,000 "
                                          r"baud, 7.1 % off; allowed: a rate within 2 % of clock_hz / n"):
        LinkConfig(baud=2_800_000)
    assert LinkConfig(baud=115_200).actual_baud == 12_000_000 / 104      # 0.2 % off: what UARTs take
    for bad in (0, -9600, 1.5e6):
        with pytest.raises(ConfigError, match=f"baud={bad!r} is not allowed; allowed: a positive integer"):
            LinkConfig(baud=bad)
    with pytest.raises(ConfigError, match=r"buffer_bytes=8 is out of range; allowed: 16..65535"):
        LinkConfig(buffer_bytes=8)
    p = Protocol(SMALL, link=SIM_LINK)
    with pytest.raises(ValueError, match=r"do not fit one frame; allowed: up to 64"):
        p.command_frame("events", [0] * 65)


def test_protocol_identity_tells_configs_apart():
    a = Protocol(SMALL, link=SIM_LINK)
    b = Protocol(SRNNConfig.make(channels=8, neurons=8, outputs=4, lanes=2), link=SIM_LINK)
    assert a.identity != b.identity and a.identity == Protocol(SMALL, link=SIM_LINK).identity
    mosaic = Protocol(MosaicConfig.make(SMALL, 2, 2), link=SIM_LINK)
    assert "table" in mosaic.commands and "table" not in a.commands and mosaic.info()["tiles"] == 4


class _Loopback:
    """A transport that answers with canned bytes."""

    def __init__(self, replies: bytes):
        self.replies, self.sent = bytearray(replies), bytearray()

    def write(self, data):
        self.sent += data

    def read(self, count, timeout):
        out = bytes(self.replies[:count])
        del self.replies[:count]
        return out


def test_driver_refuses_bad_records_and_wrong_identity():
    p = Protocol(SMALL, link=SIM_LINK)
    ack = frame(0x81, (0x09).to_bytes(1, "little") + (1).to_bytes(2, "little"))
    info = frame(0x86, items_to_bytes(p.records["info"].fields, [{**p.info(), "identity": p.identity ^ 1}]))
    with pytest.raises(LinkError, match="built from another config"):
        Chip(p, _Loopback(ack + info)).info()
    bad = bytearray(ack)
    bad[-1] ^= 1
    with pytest.raises(LinkError, match="bad CRC"):
        Chip(p, _Loopback(bytes(bad))).info()
    nak = frame(0x82, bytes([1, 0x09, 1, 0]))
    with pytest.raises(LinkError, match="rejected a frame of type 0x09: bad CRC"):
        Chip(p, _Loopback(nak)).info()
    with pytest.raises(LinkError, match="sent 0 of 1 expected bytes"):
        Chip(p, _Loopback(b"")).info()


@pytest.mark.cosim
def test_board_top_episode_through_the_uart_is_bit_exact():
    """The host driver runs a few-shot episode through the UART pins; every logit, hidden spike and
    the weight-write digest match the model; then six malformed frames are each refused with the
    right reason and none is executed."""
    r = run_board_cosim("icarus", Protocol(SMALL, link=SIM_LINK), episodes=1, malformed=True, name="pytest")
    ck = r.checked
    assert ck["logits"] > 0 and ck["hidden_events"] > 0
    assert ck["weight_writes"] > 0 and ck["weight_writes"] % (3 * 8) == 0      # whole updates of 3 x 8 weights
    assert len(r.details["malformed"]["rejected"]) == 6 and r.details["info"]["neurons"] == 8


@pytest.mark.cosim
def test_board_scoreboard_catches_a_wrong_model():
    """The same top on Verilator, checked against a model whose rounding draw is wrong: must fail."""
    with pytest.raises(CosimError, match="mismatch|digest"):
        run_board_cosim("verilator", Protocol(SMALL, link=SIM_LINK), episodes=1,
                        name="pytest-fault", options=RunOptions(fault="rounding-bit"))
