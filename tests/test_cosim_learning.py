"""On-chip learning under Verilator and Icarus through cocotb: whole few-shot episodes through the
LearningCore (input events -> recurrent LIF core -> learning engine), every hidden spike, logit and
weight write (with its cycle) checked against the golden model."""

import pytest
from neuromosaic.cosim.learning import run_learning_cosim
from neuromosaic.cosim.options import RunOptions
from neuromosaic.cosim.runner import CosimError
from neuromosaic.model.learning import LearningConfig
from neuromosaic.model.snn import SRNNConfig

pytestmark = pytest.mark.cosim

SIMS = ["verilator", "icarus"]
CONFIG = SRNNConfig.make(channels=4, neurons=16, outputs=5, lanes=4)


@pytest.mark.parametrize("sim", SIMS)
def test_learning_cosim_20_random_episodes(sim):
    """Twenty episodes in two shares at once, each in its own simulator process and folder."""
    r = run_learning_cosim(sim, CONFIG, episodes=20, name="pytest-pass", workers=2)
    assert r.details["episodes"] == 20 and r.details["shares"] == 2
    checked, cov = r.checked, r.coverage
    assert checked["weight_writes"] > 1000 and checked["logits"] > 500 and checked["hidden_events"] > 10_000
    assert cov["weights_changed"] > 0 and cov["weights_saturated"] > 0


@pytest.mark.parametrize("sim", SIMS)
def test_learning_cosim_fails_on_one_wrong_rounding_bit(sim):
    """The model's rounding draw with its top bit inverted: the scoreboard must see a weight differ."""
    with pytest.raises(CosimError, match="weight write mismatch"):
        run_learning_cosim(sim, CONFIG, episodes=3, name="pytest-fault", options=RunOptions(fault="rounding-bit"))


@pytest.mark.parametrize("sim", SIMS)
def test_learning_cosim_fails_when_the_model_is_one_cycle_off(sim):
    """The design right, the model's first weight write one cycle late: caught with its cycle."""
    with pytest.raises(CosimError, match=r"weight write mismatch in cycle \d+ .*DUT sent \(cycle"):
        run_learning_cosim(sim, CONFIG, episodes=2, name="pytest-late", options=RunOptions(fault="write-cycle"))


def test_learning_cosim_per_cycle_agents_check_the_same_transactions():
    batch = run_learning_cosim("verilator", CONFIG, episodes=3, name="pytest-modes")
    per_cycle = run_learning_cosim("verilator", CONFIG, episodes=3, name="pytest-modes",
                                   options=RunOptions(per_cycle=True))
    assert batch.checked == per_cycle.checked and batch.checked["weight_writes"] > 0


def test_learning_cosim_engine_odd_widths():
    """The engine alone with narrow widths: logits, eligibilities, accumulators and weights at their rails."""
    config = SRNNConfig.make(channels=3, neurons=7, outputs=4, lanes=1, readout_bits=12, logit_bits=13,
                             readout_weight_bits=6, readout_decay_shift=4, logit_shift=8)
    cfg = LearningConfig(elig_bits=10, acc_bits=18, prob_bits=9, exp_frac_bits=3, exp_table_bits=11, rate_bits=5,
                         trace_frac_bits=5)
    r = run_learning_cosim("verilator", config, cfg, episodes=8, core=False, name="pytest-odd",
                           options=RunOptions(idle=0.4, backpressure=0.5, seed=5))
    for what in ("logits_saturated", "eligibility_saturated", "accumulator_saturated", "weights_saturated"):
        assert r.coverage[what] > 0, what


def test_learning_cosim_rram_emulation():
    """Conductance levels 4 apart and write noise drawn from the same LFSR, through the whole network."""
    cfg = LearningConfig(level_shift=2, write_noise_bits=3)
    r = run_learning_cosim("verilator", CONFIG, cfg, episodes=4, first_seed=100, name="pytest-rram")
    assert r.checked["weight_writes"] > 100 and r.coverage["weights_changed"] > 0


@pytest.mark.parametrize("sim, organisation", [("verilator", "bitmap"), ("verilator", "dense"), ("icarus", "csr")])
def test_learning_cosim_engine_with_synapse_memory(sim, organisation):
    """The engine with its readout in a SynapseMemory ( a sparse one stores 60 % of the
    synapses and learns on them alone), whole episodes bit-exact."""
    config = SRNNConfig.make(channels=4, neurons=8, outputs=5)
    spec = {"organisation": organisation, "density": 0.6, "seed": 1}
    r = run_learning_cosim(sim, config, episodes=4, core=False, synapses=spec, name=f"pytest-{organisation}")
    assert r.checked["weight_writes"] > 0 and r.coverage["weights_changed"] > 0


@pytest.mark.parametrize("sim, core_org, readout_org", [("verilator", "csr", "bitmap"), ("icarus", "bitmap", "csr")])
def test_learning_cosim_core_with_synapse_memories(sim, core_org, readout_org):
    """The whole network with the core's weights and the readout in sparse synapse memories."""
    config = SRNNConfig.make(channels=4, neurons=8, outputs=5)
    r = run_learning_cosim(sim, config, episodes=2, synapses={"organisation": readout_org, "density": 0.6},
                           core_synapses={"organisation": core_org, "density": 0.5}, name="pytest-core-synapses")
    assert r.checked["hidden_events"] > 0 and r.checked["weight_writes"] > 0
