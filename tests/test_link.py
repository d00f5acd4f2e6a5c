"""The host link: frame layout and CRC (shared by gateware and driver), link config refusals, and
the board top driven through its UART pins by the host driver in cocotb (episodes bit-exact,
malformed frames refused and never executed, a wrong model caught)."""

import dataclasses
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
    f = frame(0x05, b"\x01\x02\x03", seq=0x7F)
    assert f[0] == SYNC and f[1] == 0x05 and f[2] == 0x7F and f[3:5] == b"\x03\x00" and f[5:8] == b"\x01\x02\x03"
    assert int.from_bytes(f[8:], "little") == crc16(f[1:8])
    with pytest.raises(ValueError, match="sequence number 256 is out of range; allowed: 0..255"):
        frame(0x05, seq=256)
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


def _record(p, name, values, seq):
    return frame(p.records[name].code, items_to_bytes(p.records[name].fields, [values]), seq)


def test_driver_refuses_a_wrong_identity_and_gives_up_on_a_silent_or_refusing_chip():
    p = Protocol(SMALL, link=SIM_LINK)
    ack = _record(p, "ack", {"type": 0x09, "seq": 0, "frames_ok": 1}, 0)
    info = _record(p, "info", {**p.info(), "identity": p.identity ^ 1}, 1)
    with pytest.raises(LinkError, match="built from another config"):
        Chip(p, _Loopback(ack + info)).info()
    # a damaged ACK is detected and the frame sent again, as often as the driver tries
    bad = bytearray(ack)
    bad[-1] ^= 1
    line = _Loopback(bytes(bad))
    chip = Chip(p, line, tries=3)
    with pytest.raises(LinkError, match=r"did not acknowledge info \(0x09\) in 3 tries: the chip sent 0 of 1 "):
        chip.info()
    assert chip.stats.records_damaged == 1 and chip.stats.retransmissions == 2
    assert line.sent == p.command_frame("info", seq=0) * 3
    nak = _record(p, "nak", {"error": 1, "type": 0x09, "seq": 0}, 0)
    with pytest.raises(LinkError, match="in 8 tries: the chip rejected it: bad CRC; the chip sent 0 of 1 expected"):
        Chip(p, _Loopback(nak)).info()


def test_driver_skips_stale_answers_and_counts_records_lost():
    """An ACK of another frame and a counters record answering another request are not taken; a gap
    in the records' numbers counts the records lost, and the driver asks again."""
    p = Protocol(SMALL, link=SIM_LINK)
    counters = {"frames_ok": 3, "frames_rejected": 0, "hidden_spikes": 0, "weight_writes": 7, "write_digest": 0}
    replies = (_record(p, "ack", {"type": 0x08, "seq": 9, "frames_ok": 1}, 0)           # a late ACK of frame 9
               + _record(p, "counters", {**counters, "seq": 9}, 1)                        # answers frame 9
               + _record(p, "ack", {"type": 0x08, "seq": 0, "frames_ok": 2}, 2)
               + _record(p, "counters", {**counters, "seq": 0, "weight_writes": 8}, 5))   # records 3, 4 lost
    chip = Chip(p, _Loopback(replies))
    assert chip.counters()["weight_writes"] == 8
    assert chip.stats.records_lost == 2 and chip.stats.records == 4 and chip.stats.retransmissions == 0


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
    assert r.details["malformed"]["repeats_not_executed"] == 1
    assert r.details["link"]["retransmissions"] == r.details["link"]["records_lost"] == 0


@pytest.mark.cosim
def test_a_rate_schedule_is_programmed_before_each_update():
    """An episode whose inner rate changes every step (a meta-learned schedule): the host programs
    each step's rate before its update, and every weight write is the model's at that step's rate.
    The learning testbench, which holds one rate per episode, refuses it up front."""
    from neuromosaic.cosim.learning import run_learning_cosim
    from neuromosaic.model.episode import random_network_episode
    p = Protocol(SMALL, link=SIM_LINK)
    base = random_network_episode(SMALL, p.cfg, 4)
    episode = dataclasses.replace(base, rate=[2.0 ** 12, 2.0 ** 20, 2.0 ** 16], steps=3)
    assert episode.scheduled and episode.quantised_rate(SMALL, p.cfg, 1) != episode.quantised_rate(SMALL, p.cfg, 0)
    r = run_board_cosim("icarus", p, episode_list=[episode], name="pytest-schedule")
    assert r.checked["weight_writes"] == 3 * 3 * 8
    with pytest.raises(CosimError, match="changes its inner rate between steps"):
        run_learning_cosim("icarus", SMALL, p.cfg, episode_list=[episode])


@pytest.mark.cosim
def test_board_scoreboard_catches_a_wrong_model():
    """The same top on Verilator, checked against a model whose rounding draw is wrong: must fail."""
    with pytest.raises(CosimError, match="mismatch|digest"):
        run_board_cosim("verilator", Protocol(SMALL, link=SIM_LINK), episodes=1,
                        name="pytest-fault", options=RunOptions(fault="rounding-bit"))


NOISY = {"ber": 3e-4, "noise_seed": 3, "timeout": 0.005}


@pytest.mark.cosim
def test_board_episodes_survive_a_noisy_line():
    """Bit errors both ways at 3e-4 per bit: the driver detects the damaged and lost records, sends
    frames again and asks again for logits; two episodes (the rounding PRNG running on from the
    first into the second) are still the model's bit for bit."""
    r = run_board_cosim("verilator", Protocol(SMALL, link=SIM_LINK), episodes=2, name="pytest-noisy", **NOISY)
    link, errors = r.details["link"], r.details["noise"]["bit_errors"]
    # the line's test equipment flips bits at the rate asked for (4 cycles a bit)
    expected = r.cycles * NOISY["ber"] / SIM_LINK.divisor
    assert 0.7 * expected < errors["rx"] < 1.3 * expected and 0.7 * expected < errors["tx"] < 1.3 * expected
    # every way of recovering was needed, and the episodes were checked whole
    assert link["retransmissions"] and link["records_damaged"] and link["records_lost"] and link["logits_asked_again"]
    assert r.checked["logits"] > 0 and r.checked["weight_writes"] > 0


@pytest.mark.cosim
def test_a_noisy_line_fails_the_episodes_without_the_drivers_record_checks():
    """The same line with the driver's CRC and numbering checks off: damage goes through undetected."""
    with pytest.raises(CosimError, match="mismatch|unknown record|did not|digest|counted"):
        run_board_cosim("verilator", Protocol(SMALL, link=SIM_LINK), episodes=2, name="pytest-noisy-unchecked",
                        verify=False, **NOISY)



def test_line_noise_follows_its_seed_and_threshold():
    """The line's error generator, loaded with a seed in reset, starts an error exactly when its
    xorshift32 state is below the threshold (and no error is under way), and inverts the line for
    one bit time."""
    from amaranth.sim import Simulator
    from neuromosaic.cosim.board.line import LineNoise, noise_seed_state

    def xorshift(x):
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        return x ^ ((x << 5) & 0xFFFFFFFF)

    divisor, threshold = 4, 1 << 30               # an error starts in about one free cycle in four
    dut = LineNoise(divisor)
    hits = {}

    async def bench(ctx):
        ctx.set(dut.threshold, threshold)
        for seed in (0, 1):
            ctx.set(dut.seed, noise_seed_state(seed))
            ctx.set(dut.load, 1)
            await ctx.tick()
            ctx.set(dut.load, 0)
            state, left, hits[seed] = noise_seed_state(seed), 0, []
            for cycle in range(300):
                hit = left == 0 and state < threshold
                assert ctx.get(dut.hit) == hit, (seed, cycle)
                assert ctx.get(dut.out) == (0 if hit or left else 1), (seed, cycle)    # the idle line inverted
                left = divisor - 1 if hit else max(0, left - 1)
                hits[seed].append(hit)
                state = xorshift(state)
                await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert hits[0] != hits[1] and 20 < sum(hits[0]) < 120


def test_driver_gives_up_on_a_chip_that_babbles():
    """Bytes that never hold a SYNC count as silence: the frame is sent again, then the driver stops."""
    p = Protocol(SMALL, link=SIM_LINK)
    chip = Chip(p, _Loopback(b"\x00" * 100_000), tries=2)
    with pytest.raises(LinkError, match=r"in 2 tries: the chip sent \d+ bytes without a record's SYNC"):
        chip.info()


def test_clean_line_check_catches_counters_that_disagree_with_the_driver():
    """The chip's frame counters must be the ACKs and NAKs the driver received: one ACK more than
    the chip counted is caught, and so is a retransmission on a clean line."""
    from neuromosaic.cosim.board import check_clean_line
    from neuromosaic.model.golden import Mismatch
    p = Protocol(SMALL, link=SIM_LINK)
    counters = {"frames_ok": 4, "frames_rejected": 0, "hidden_spikes": 0, "weight_writes": 0, "write_digest": 0}
    replies = (_record(p, "ack", {"type": 0x08, "seq": 0, "frames_ok": 4}, 0)
               + _record(p, "counters", {**counters, "seq": 0}, 1))
    chip = Chip(p, _Loopback(replies))
    chip.stats.acks = 4                           # three frames before, and the counters request's own
    with pytest.raises(Mismatch, match="the chip counted 4 frames acknowledged and 0 rejected, the driver received "
                                       "5 ACKs and 0 NAKs"):
        check_clean_line(chip)
    chip = Chip(p, _Loopback(replies))
    chip.stats.acks, chip.stats.retransmissions = 3, 1
    with pytest.raises(Mismatch, match="on a clean line the driver had to recover"):
        check_clean_line(chip)
    chip = Chip(p, _Loopback(replies))
    chip.stats.acks = 3
    check_clean_line(chip)
