"""The synapse memory's Verilog, every organisation, under Verilator and Icarus through cocotb: every
access (memory, read or write, address, data), every result and the final counters against the model."""

import pytest
from neuromosaic.cosim.options import RunOptions
from neuromosaic.cosim.runner import CosimError
from neuromosaic.cosim.synapse import run_synapse_cosim
from neuromosaic.model.synapse import ORGANISATIONS

pytestmark = pytest.mark.cosim

SIMS = ["verilator", "icarus"]


@pytest.mark.parametrize("sim", SIMS)
@pytest.mark.parametrize("organisation", list(ORGANISATIONS))
def test_synapse_cosim_passes(sim, organisation):
    r = run_synapse_cosim(sim, organisation, seed=5, density=0.3, name="pytest-pass", options=RunOptions(idle=0.3))
    assert r.details["organisation"] == organisation
    assert r.checked["commands"] > 50 and r.checked["results"] > 100 and r.checked["accesses"] > 300
    written = "kernel" if organisation == "func-pure" else "weights"
    assert r.details["counts"][written]["writes"] == 12          # every update reached the memory


@pytest.mark.parametrize("sim, fault, message", [("verilator", "data", "access mismatch"),
                                                 ("icarus", "counter", "counter reads")])
def test_synapse_cosim_fails_on_wrong_model(sim, fault, message):
    with pytest.raises(CosimError, match=message):
        run_synapse_cosim(sim, "csr", seed=5, density=0.3, name="pytest-fault",
                          options=RunOptions(idle=0.3, fault=fault))


def test_synapse_cosim_per_cycle_agents_check_the_same_transactions():
    kw = dict(seed=2, density=0.5, name="pytest-modes")
    batch = run_synapse_cosim("verilator", "bitmap", **kw)
    per_cycle = run_synapse_cosim("verilator", "bitmap", options=RunOptions(per_cycle=True), **kw)
    assert batch.checked == per_cycle.checked and batch.details["counts"] == per_cycle.details["counts"]
