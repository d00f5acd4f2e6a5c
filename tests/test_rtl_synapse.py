"""The synapse memory's RTL in Amaranth's simulator (fast): every organisation on sparse and dense
random contents against the traced model; faults caught; bad parameters refused."""

import pytest
import torch
from neuromosaic.cosim.options import RunOptions
from neuromosaic.cosim.synapse.amaranth_sim import simulate_synapse
from neuromosaic.cosim.synapse.testbench import synapse_scenario
from neuromosaic.model.config import ConfigError
from neuromosaic.model.golden import Mismatch
from neuromosaic.model.synapse import ORGANISATIONS, make_memory
from neuromosaic.rtl.synapse import SynapseMemory


@pytest.mark.parametrize("density", [0.1, 0.9])
@pytest.mark.parametrize("organisation", list(ORGANISATIONS))
def test_every_access_matches_the_model(organisation, density):
    r = simulate_synapse(synapse_scenario(organisation, seed=int(density * 10), density=density),
                         options=RunOptions(idle=0.4, seed=1))
    assert r.checked["results"] > 0 and r.checked["accesses"] > r.checked["results"]


@pytest.mark.parametrize("organisation", list(ORGANISATIONS))
@pytest.mark.parametrize("fault, message", [("data", "access mismatch"), ("counter", "counter reads")])
def test_faults_are_caught(organisation, fault, message):
    with pytest.raises(Mismatch, match=message):
        simulate_synapse(synapse_scenario(organisation, seed=2), options=RunOptions(fault=fault))


def test_forward_accesses_follow_each_other_without_bubbles():
    """Crossbar and Func-Pure read one word a cycle, command after command: the first read the cycle
    after the first command is taken, its result one cycle later, then one result every cycle."""
    for organisation in ("dense", "func-pure"):
        scenario = synapse_scenario(organisation, seed=3, updates=0)
        scenario.commands = [c for c in scenario.commands if c[0] == 0]
        r = simulate_synapse(scenario, options=RunOptions(idle=0.0))
        assert r.details["last_result"] - r.details["first_command"] == 2 + r.details["results"] - 1


def test_bad_parameters_are_refused():
    with pytest.raises(ConfigError, match="has no RTL"):
        SynapseMemory(make_memory("csr", torch.ones(2, 3, 3, 3, dtype=torch.int64), 8, image=(4, 4)))
    with pytest.raises(ConfigError, match="bitmap_word=12 has no RTL; allowed: a power of two"):
        SynapseMemory(make_memory("bitmap", torch.eye(4, dtype=torch.int64), 8, bitmap_word=12))
