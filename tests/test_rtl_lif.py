"""The LIF core in Amaranth's simulator against the golden model (fast; no Verilog)."""

import pytest
import torch
from neuromosaic.cosim.lif.amaranth_sim import simulate_lif
from neuromosaic.cosim.lif.scoreboard import FAULTS
from neuromosaic.cosim.lif.stimulus import corner_scenarios, random_scenario, required_coverage, scenarios
from neuromosaic.model.config import LIFConfig
from neuromosaic.model.golden import Mismatch

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
    assert r.checked["state_writes"] > 0 and r.checked["output_events"] > 0
    missing = [k for k in required_coverage(c) if not r.coverage.get(k)]
    assert not missing, f"corner cases never hit: {missing}"


def test_core_matches_model_without_idle_or_backpressure():
    c = CONFIGS["one-block"]
    simulate_lif(c, scenarios(c, seeds=2, steps=20, corners=False), options=FULL_RATE)


def test_core_matches_model_under_heavy_backpressure():
    c = CONFIGS["lanes2"]
    r = simulate_lif(c, [random_scenario(c, 5, 20)], options=RunOptions(idle=0.6, backpressure=0.8))
    assert r.details["output_stall_cycles"] > 50


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_scoreboard_catches_a_wrong_model(fault):
    c = CONFIGS["lanes2"]
    with pytest.raises(Mismatch):
        simulate_lif(c, [random_scenario(c, 0, 10)] + corner_scenarios(c), options=RunOptions(fault=fault))


def test_full_throughput_one_event_per_block_cycle():
    """Saturated input: one weight word read (lanes synaptic operations) per cycle, no bubbles."""
    from neuromosaic.cosim.lif.stimulus import saturated_scenario
    for c in (CONFIGS["lanes2"], CONFIGS["one-block"]):
        r = simulate_lif(c, [saturated_scenario(c, 3, 20)], options=FULL_RATE)
        assert r.details["throughput"]["sop_per_cycle"] == c.lanes


# -- a core whose weights live in a synapse memory -------------------------------------------
from neuromosaic.cosim.lif.stimulus import synapse_memory, synapse_scenarios  # noqa: E402
from neuromosaic.cosim.lif.testbench import SYNAPSE_FAULT  # noqa: E402
from neuromosaic.cosim.options import FULL_RATE, RunOptions  # noqa: E402
from neuromosaic.model import synapse as synapse_model  # noqa: E402
from neuromosaic.model.config import ConfigError  # noqa: E402
from neuromosaic.rtl.lif import LIFCore  # noqa: E402

MATRIX_CORE = LIFConfig(neurons=8, inputs=10, lanes=2, threshold=300)
CONV_CORE = LIFConfig(neurons=32, inputs=16, lanes=2, threshold=300)     # 2 -> 2 channels on 4x4


def synapse_args(org, density=0.5):
    if org in synapse_model.FUNCTIONAL_ORGANISATIONS:
        return CONV_CORE, {"organisation": org, "density": density, "image": (4, 4)}
    return MATRIX_CORE, {"organisation": org, "density": density}


@pytest.mark.parametrize("org", list(synapse_model.ORGANISATIONS))
def test_core_with_synapse_memory_matches_model(org):
    """Every result of the memory is one state write, in the model memory's order; the second
    scenario first loads new values into every stored synapse through the core's weight port; the
    memory's counters equal the model memory's at the end of each scenario."""
    c, args = synapse_args(org)
    scns = synapse_scenarios(c, seeds=2, steps=20, **args)
    assert scns[1].loads and not torch.equal(scns[0].weights, scns[1].weights)
    r = simulate_lif(c, scns)
    assert r.coverage["spikes"] > 0 and r.checked["output_events"] > 2 * 20
    assert r.checked["synapse_counters"] == 2 * 2 * len(scns[0].memory.memories())
    sops = r.details["throughput"]["synaptic_operations"]
    assert sops == r.checked["state_writes"] - 2 * 20 * c.blocks - 2 * c.blocks   # less the sweeps and clears


def test_sparse_memory_skips_zero_weights():
    """The accumulation of a sparse organisation takes a cycle per stored synapse, not per neuron."""
    c, args = synapse_args("csr", density=0.25)
    dense = simulate_lif(c, synapse_scenarios(c, seeds=1, steps=20, **{**args, "organisation": "dense"}),
                         options=FULL_RATE).details["throughput"]
    sparse = simulate_lif(c, synapse_scenarios(c, seeds=1, steps=20, **args), options=FULL_RATE).details["throughput"]
    assert dense["sop_per_cycle"] == 1.0 and sparse["sop_per_cycle"] >= 0.9
    assert sparse["event_phase_cycles"] < 0.5 * dense["event_phase_cycles"]


@pytest.mark.parametrize("fault", ["saturation", "membrane-lsb", SYNAPSE_FAULT])
def test_synapse_core_scoreboard_catches_a_wrong_model(fault):
    _, args = synapse_args("bitmap", density=0.6)
    c = MATRIX_CORE.replace(current_bits=9)          # the current saturates within a step
    with pytest.raises(Mismatch):
        simulate_lif(c, synapse_scenarios(c, seeds=1, steps=30, **args), options=RunOptions(fault=fault))


def test_synapse_memory_must_fit_the_core():
    c = MATRIX_CORE
    wrong = synapse_model.make_memory("csr", torch.ones(c.neurons, c.inputs + 1, dtype=torch.int64), c.weight_bits)
    with pytest.raises(ConfigError, match="does not fit the core"):
        LIFCore(c, synapses=wrong)
    right = synapse_memory(c, "csr")
    with pytest.raises(ConfigError, match="either"):
        LIFCore(c, torch.zeros(c.neurons, c.inputs, dtype=torch.int64), synapses=right)
    with pytest.raises(ConfigError, match="image"):
        synapse_memory(c, "func-pure")
