"""Generated Verilog under Verilator and Icarus through cocotb, checked against the golden model."""

import pytest
from neuromosaic.cosim.lif import run_lif_cosim
from neuromosaic.cosim.options import RunOptions
from neuromosaic.cosim.runner import CosimError
from neuromosaic.model.config import LIFConfig

pytestmark = pytest.mark.cosim

SIMS = ["verilator", "icarus"]
ODD = LIFConfig(neurons=6, inputs=7, lanes=3, weight_bits=5, current_bits=9, membrane_bits=11, refractory_bits=6,
                current_decay_shift=1, membrane_decay_shift=3, refractory_decay_shift=2, threshold=300,
                refractory_jump=50)


@pytest.mark.parametrize("sim", SIMS)
def test_lif_cosim_passes(sim):
    r = run_lif_cosim(sim, LIFConfig(), seeds=3, steps=40, name="pytest-pass")
    assert r.details["scenarios"] == 3 + 4
    assert r.checked["state_writes"] > 10_000 and r.checked["output_events"] > 100


@pytest.mark.parametrize("sim", SIMS)
def test_lif_cosim_odd_widths_one_lane_per_block(sim):
    run_lif_cosim(sim, ODD, seeds=2, steps=30, name="pytest-odd",
                  options=RunOptions(idle=0.5, backpressure=0.5, seed=3))


@pytest.mark.parametrize("sim", SIMS)
def test_lif_cosim_fails_on_wrong_model(sim):
    with pytest.raises(CosimError, match="state write mismatch"):
        run_lif_cosim(sim, LIFConfig(), seeds=1, steps=10, name="pytest-fault",
                      options=RunOptions(fault="membrane-lsb"))


@pytest.mark.parametrize("sim", SIMS)
def test_lif_cosim_fails_when_the_model_is_one_cycle_off(sim):
    """The design right, the model's first state write one cycle late: the batch records keep cycles."""
    with pytest.raises(CosimError, match="state write mismatch in cycle"):
        run_lif_cosim(sim, LIFConfig(), seeds=1, steps=10, corners=False, name="pytest-late",
                      options=RunOptions(fault="write-cycle"))


def test_lif_cosim_per_cycle_agents_check_the_same_transactions():
    """The per-cycle agents (debugging) and the batch harness check every transaction of the same stimulus."""
    kw = dict(seeds=2, steps=20, corners=False, name="pytest-modes")
    batch = run_lif_cosim("verilator", LIFConfig(), **kw)
    per_cycle = run_lif_cosim("verilator", LIFConfig(), options=RunOptions(per_cycle=True), **kw)
    assert batch.checked == per_cycle.checked and batch.checked["state_writes"] > 1000


def test_lif_cosim_threshold_fault_caught_by_corner_case():
    """Firing at U > theta instead of U >= theta differs only when U == theta exactly, which the
    directed threshold scenario produces."""
    small = LIFConfig(neurons=4, inputs=6, lanes=2)
    with pytest.raises(CosimError, match="mismatch"):
        run_lif_cosim("verilator", small, seeds=1, steps=5, name="pytest-threshold",
                      options=RunOptions(fault="threshold"))


# A core whose weights live in a synapse memory: each organisation on one simulator (the
# memory alone runs every organisation on both, tests/test_cosim_synapse.py).
SYNAPSE_RUNS = [("verilator", "csr"), ("verilator", "bitmap"), ("verilator", "func-bmp"),
                ("icarus", "dense"), ("icarus", "func-pure"), ("icarus", "func-rowcol")]
MATRIX_CORE = LIFConfig(neurons=8, inputs=10, lanes=2, threshold=300)
CONV_CORE = LIFConfig(neurons=32, inputs=16, lanes=2, threshold=300)


def _synapse_job(org):
    if org.startswith("func"):
        return CONV_CORE, {"organisation": org, "density": 0.5, "image": [4, 4]}
    return MATRIX_CORE, {"organisation": org, "density": 0.4}


@pytest.mark.parametrize("sim,org", SYNAPSE_RUNS)
def test_lif_cosim_with_synapse_memory(sim, org):
    config, synapses = _synapse_job(org)
    r = run_lif_cosim(sim, config, seeds=2, steps=20, synapses=synapses, name=f"pytest-{org}")
    assert r.details["scenarios"] == 2 and r.coverage["spikes"] > 0
    assert r.checked["synapse_counters"] > 0


def test_lif_cosim_with_synapse_memory_catches_a_wrong_weight():
    config, synapses = _synapse_job("csr")
    with pytest.raises(CosimError, match="state write mismatch"):
        run_lif_cosim("verilator", config, seeds=1, steps=30, synapses={**synapses, "density": 0.8},
                      name="pytest-synapse-fault", options=RunOptions(fault="synapse-weight"))
