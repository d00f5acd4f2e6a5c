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
