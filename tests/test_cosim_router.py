"""The router and the mesh fabric in Verilog under Verilator and Icarus through cocotb, in the batch
harness: every take, transfer and link handshake (with its cycle) against the model, the cycles of
backpressure, spike conservation at the end; the per-cycle agents check the same runs."""

import pytest
from neuromosaic.cosim.options import RunOptions
from neuromosaic.cosim.router import run_mesh_cosim, run_router_cosim
from neuromosaic.cosim.router.testbench import LATE_FAULT, ROUTER_OPTIONS
from neuromosaic.cosim.runner import CosimError

pytestmark = pytest.mark.cosim


@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_router_cosim_passes(sim):
    r = run_router_cosim(sim, seed=3, events=80, name="pytest-pass")
    assert r.details["checked_cycles"] > 200 and r.details["events_out"] > r.details["events_in"] == 320


@pytest.mark.parametrize("sim, idle, backpressure, load", [("icarus", 0.3, 0.3, True), ("verilator", 0.0, 0.6, False)])
def test_mesh_cosim_passes_under_backpressure_and_saturation(sim, idle, backpressure, load):
    r = run_mesh_cosim(sim, seed=3, spikes_per_tile=30, load_tables=load,
                       name=f"pytest-{idle}-{backpressure}", options=RunOptions(idle=idle, backpressure=backpressure))
    d = r.details
    assert d["spikes"] == 120 and d["deliveries"] > 120 and d["link_events"] > d["deliveries"]
    assert (d["table_loads"] > 0) == load


def test_router_per_cycle_agents_check_the_same_traffic():
    """The per-cycle agents (debugging) see the same events; only the idle and ready draws differ."""
    batch = run_router_cosim("verilator", seed=3, events=40, name="pytest-batch")
    per_cycle = run_router_cosim("verilator", seed=3, events=40, name="pytest-per-cycle",
                                 options=ROUTER_OPTIONS.replace(per_cycle=True))
    for key in ("events_in", "events_out"):
        assert batch.details[key] == per_cycle.details[key]


@pytest.mark.parametrize("sim, runner, fault", [("verilator", run_router_cosim, "fixed-priority"),
                                                ("icarus", run_mesh_cosim, "fixed-priority"),
                                                ("verilator", run_router_cosim, "deeper-fifo"),
                                                ("icarus", run_router_cosim, LATE_FAULT),
                                                ("verilator", run_mesh_cosim, LATE_FAULT)])
def test_router_cosim_fails_on_a_wrong_model(sim, runner, fault):
    """Wrong rules, and the design right with the model one cycle off on one transfer."""
    with pytest.raises(CosimError, match=r"cycle \d+: .*(the model says|differ from the model)"):
        runner(sim, seed=3, name=f"pytest-{fault}", options=ROUTER_OPTIONS.replace(fault=fault))
