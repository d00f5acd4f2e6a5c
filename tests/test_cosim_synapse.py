"""The synapse memory's Verilog, every organisation, under Verilator and Icarus through cocotb: every
access (memory, read or write, address, data), every result and the final counters against the model."""

import pytest
from neuromosaic.cosim.options import RunOptions
from neuromosaic.cosim.runner import CosimError
from neuromosaic.cosim.synapse import run_synapse_cosim
from neuromosaic.cosim.synapse.testbench import restore_commands, synapse_scenario
from neuromosaic.model import synapse as model
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
                                                 ("icarus", "counter", "counter reads"),
                                                 ("verilator", "busy", "busy low in cycle")])
def test_synapse_cosim_fails_on_wrong_model(sim, fault, message):
    with pytest.raises(CosimError, match=message):
        run_synapse_cosim(sim, "csr", seed=5, density=0.3, name="pytest-fault",
                          options=RunOptions(idle=0.3, fault=fault))


def test_synapse_cosim_per_cycle_agents_check_the_same_transactions():
    kw = dict(seed=2, density=0.5, name="pytest-modes")
    batch = run_synapse_cosim("verilator", "bitmap", **kw)
    per_cycle = run_synapse_cosim("verilator", "bitmap", options=RunOptions(per_cycle=True), **kw)
    assert batch.checked == per_cycle.checked and batch.details["counts"] == per_cycle.details["counts"]


@pytest.mark.parametrize("organisation", list(ORGANISATIONS))
def test_restore_commands_write_back_every_stored_weight(organisation):
    """After any updates, the restore commands leave every physical memory as it was built, with
    one write per weight word."""
    memory = synapse_scenario(organisation, seed=3).memory
    built = memory.contents()
    updated = synapse_scenario(organisation, seed=3, command_seed=9).memory
    restore = restore_commands(memory)
    for kind, post, pre, value in synapse_scenario(organisation, seed=3, command_seed=9).commands:
        if kind == model.CMD_UPDATE:
            updated.update(post, pre, -value - 1 if value >= 0 else value + 1)
    assert updated.contents() != built
    trace = updated.start_trace()
    for _, post, pre, value in restore:
        updated.update(post, pre, value)
    assert updated.contents() == built
    assert len(restore) == sum(a.write for a in trace) == len({a.address for a in trace if a.write})
    restored = synapse_scenario(organisation, seed=3, command_seed=9, restore=True).commands
    assert restored[:len(restore)] == restore and restored[len(restore):] == \
        synapse_scenario(organisation, seed=3, command_seed=9).commands
