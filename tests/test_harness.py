"""The batch harness's parts in Amaranth's simulator: the pattern LFSR's rate and seeding, the player's
order and hold, the recorder's cycle stamps, the run-length coding of the player's takes."""

from amaranth.hdl import Module
from amaranth.sim import Simulator
from neuromosaic.cosim.batch_loop import threshold
from neuromosaic.cosim.harness import (
    CYCLE_BITS,
    RUN_BITS,
    PatternLFSR,
    ReadyPattern,
    StreamPlayer,
    TakeRuns,
    TransferRecorder,
    lfsr_states,
)


def _run(top, bench):
    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def _pattern(seed_state: int, probability: float, cycles: int) -> list[int]:
    lfsr = PatternLFSR()
    hits = []

    async def bench(ctx):
        ctx.set(lfsr.seed, seed_state)
        ctx.set(lfsr.threshold, threshold(probability))
        ctx.set(lfsr.load, 1)
        await ctx.tick()
        ctx.set(lfsr.load, 0)
        for _ in range(cycles):
            hits.append(ctx.get(lfsr.hit))
            await ctx.tick()

    _run(lfsr, bench)
    return hits


def test_pattern_lfsr_hits_at_its_probability_and_follows_its_seed():
    a, b = lfsr_states(0, 2)
    hits = _pattern(a, 0.3, 4000)
    assert 0.27 < sum(hits) / len(hits) < 0.33
    assert _pattern(a, 0.3, 200) == hits[:200]            # a seed gives the same pattern every run
    assert _pattern(b, 0.3, 200) != hits[:200]            # another seed another one
    assert sum(_pattern(a, 0.0, 500)) == 0


def test_ready_pattern_predicts_the_lfsr_in_every_cycle():
    """Python's prediction of a sink's ready (the replaying testbenches use it) is the LFSR's own."""
    state = lfsr_states(5, 1)[0]
    hits = _pattern(state, 0.4, 3000)
    predicted = ReadyPattern(state, 10, threshold(0.4))
    assert [not predicted.ready(10 + c) for c in range(3000)] == hits
    assert 800 < sum(hits) < 1600


def test_player_offers_entries_in_order_and_holds_each_until_taken():
    player = StreamPlayer({"a": 4, "b": 6}, depth=8)
    entries = [(0, 3), (1, 40), (1, 41), (0, 9)]               # (tag, payload)
    seen = []

    async def bench(ctx):
        for i, (tag, payload) in enumerate(entries):
            ctx.set(player.entries.data[i], payload << player.tag_bits | tag)
        await ctx.tick()                                        # entries written a cycle before they count
        ctx.set(player.wptr, len(entries))
        held = None
        for cycle in range(40):
            ready = cycle % 3 == 0                              # not ready two cycles in three
            ctx.set(player.ready["a"], ready)
            ctx.set(player.ready["b"], ready)
            valid = [n for n in ("a", "b") if ctx.get(player.valid[n])]
            assert len(valid) <= 1
            assert ctx.get(player.offered) == bool(valid and held is None)   # an offer's first cycle
            if valid:
                word = (valid[0], ctx.get(player.payload))
                assert held in (None, word)                     # an offer is held until taken
                held = word
                if ready:
                    seen.append(word)
                    held = None
            await ctx.tick()
        assert ctx.get(player.rptr) == len(entries)

    _run(player, bench)
    assert seen == [("a", 3), ("b", 40), ("b", 41), ("a", 9)]


def test_recorder_stamps_each_transfer_with_its_cycle():
    rec = TransferRecorder(8, depth=16)
    m = Module()
    m.submodules.rec = rec
    strobes = {2: 7, 3: 8, 9: 200}

    async def bench(ctx):
        for cycle in range(12):
            ctx.set(rec.cycle, cycle)
            ctx.set(rec.strobe, cycle in strobes)
            ctx.set(rec.data, strobes.get(cycle, 0))
            await ctx.tick()
        assert ctx.get(rec.wptr) == 3
        words = [ctx.get(rec.entries.data[i]) for i in range(3)]
        got = [(w & ((1 << CYCLE_BITS) - 1), w >> CYCLE_BITS) for w in words]
        assert got == sorted(strobes.items())

    _run(m, bench)


def test_take_runs_give_every_take_its_cycle():
    """Runs of takes (consecutive cycles, one stream) come out as (first cycle, tag, length - 1), split
    at a gap, at a change of stream and at the longest run; expanding them gives every take back."""
    longest = 1 << RUN_BITS
    takes = {c: 0 for c in range(3, 8)}                      # one run
    takes.update({c: 1 for c in range(8, 10)})               # another stream right after it
    takes.update({c: 1 for c in range(12, 13 + longest)})    # after a gap, longer than the longest run
    takes.update({c: 0 for c in (14 + longest, 16 + longest)})
    runs = TakeRuns(tag_bits=1)
    records = []

    async def bench(ctx):
        for cycle in range(20 + longest):
            ctx.set(runs.cycle, cycle)
            ctx.set(runs.strobe, cycle in takes)
            ctx.set(runs.tag, takes.get(cycle, 0))
            if ctx.get(runs.done):
                records.append((ctx.get(runs.start), ctx.get(runs.run_tag), ctx.get(runs.last)))
            await ctx.tick()

    _run(runs, bench)
    assert len(records) == 6
    assert {start + k: tag for start, tag, last in records for k in range(last + 1)} == takes


def test_line_driver_and_monitor_carry_bytes_and_flag_a_low_stop_bit():
    """The board harness's line equipment: bytes sent back to back come back in order, each bit
    ``divisor`` cycles long; a byte whose stop bit is low is flagged."""
    from neuromosaic.cosim.board.line import LineDriver, LineMonitor
    divisor, sent = 5, [0x00, 0xFF, 0xA5, 0x3C]
    m = Module()
    m.submodules.driver = driver = LineDriver(divisor)
    m.submodules.monitor = monitor = LineMonitor(divisor)
    m.d.comb += monitor.line.eq(driver.line)
    got, lows = [], []

    async def bench(ctx):
        queue = list(sent)
        for _ in range(60 * divisor):
            ctx.set(driver.send.valid, bool(queue))
            ctx.set(driver.send.payload, queue[0] if queue else 0)
            lows.append(not ctx.get(driver.line))
            if ctx.get(monitor.received.valid):
                got.append((ctx.get(monitor.received.payload), ctx.get(monitor.received.framing)))
            if queue and ctx.get(driver.send.ready):
                queue.pop(0)
            await ctx.tick()

    _run(m, bench)
    assert got == [(b, 0) for b in sent]
    assert sum(lows) == divisor * (9 + 1 + 5 + 5)      # each byte's start bit and zero bits

    bad = LineMonitor(divisor)
    frames = []

    async def broken(ctx):                              # 0x81 with its stop bit low, then the line idle
        bits = [1, 1, 0] + [1, 0, 0, 0, 0, 0, 0, 1] + [0] + [1] * 4
        for bit in bits:
            for _ in range(divisor):
                ctx.set(bad.line, bit)
                if ctx.get(bad.received.valid):
                    frames.append((ctx.get(bad.received.payload), ctx.get(bad.received.framing)))
                await ctx.tick()

    _run(bad, broken)
    assert frames == [(0x81, 1)]
