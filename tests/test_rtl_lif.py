"""The LIF core in Amaranth's simulator against the golden model (fast; no Verilog)."""

import pytest

from neuromosaic.cosim.amaranth_sim import simulate_lif
from neuromosaic.cosim.scoreboard import FAULTS, Mismatch
from neuromosaic.cosim.stimulus import corner_scenarios, random_scenario, required_coverage, scenarios
from neuromosaic.model.config import LIFConfig

CONFIGS = {
    "lanes2": LIFConfig(neurons=8, inputs=10, lanes=2),
    "lanes1-odd": LIFConfig(neurons=3, inputs=5, lanes=1),
    # one block: back-to-back events hit the same state word (pipeline bypass)
    "one-block": LIFConfig(neurons=4, inputs=3, lanes=4),
    "odd-widths": LIFConfig(neurons=6, inputs=7, lanes=3, weight_bits=5, current_bits=9, membrane_bits=11,
                            refractory_bits=6, current_decay_shift=1, membrane_decay_shift=3,
                            refractory_decay_shift=2, threshold=300, refractory_jump=50),
}


@pytest.mark.parametrize("name", CONFIGS)
def test_core_matches_model(name):
    c = CONFIGS[name]
    r = simulate_lif(c, scenarios(c, seeds=2, steps=25))
    assert r["checked"]["state_writes"] > 0 and r["checked"]["output_events"] > 0
    missing = [k for k in required_coverage(c) if not r["coverage"].get(k)]
    assert not missing, f"corner cases never hit: {missing}"


def test_core_matches_model_without_idle_or_backpressure():
    c = CONFIGS["one-block"]
    simulate_lif(c, scenarios(c, seeds=2, steps=20, corners=False), idle=0.0, backpressure=0.0)


def test_core_matches_model_under_heavy_backpressure():
    c = CONFIGS["lanes2"]
    r = simulate_lif(c, [random_scenario(c, 5, 20)], idle=0.6, backpressure=0.8)
    assert r["output_stall_cycles"] > 50


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_scoreboard_catches_a_wrong_model(fault):
    c = CONFIGS["lanes2"]
    with pytest.raises(Mismatch):
        simulate_lif(c, [random_scenario(c, 0, 10)] + corner_scenarios(c), fault=fault)


def test_full_throughput_one_event_per_block_cycle():
    """Saturated input: one weight word read (lanes synaptic operations) per cycle, no bubbles."""
    from neuromosaic.cosim.stimulus import saturated_scenario
    for c in (CONFIGS["lanes2"], CONFIGS["one-block"]):
        r = simulate_lif(c, [saturated_scenario(c, 3, 20)], idle=0.0, backpressure=0.0)
        assert r["throughput"]["sop_per_cycle"] == c.lanes
