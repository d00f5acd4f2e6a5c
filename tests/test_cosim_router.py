"""The router and the mesh fabric in Verilog under Verilator and Icarus through cocotb: every port
(router) and every link (mesh) of every cycle against the model, spike conservation at the end."""

import pytest
from neuromosaic.cosim.options import RunOptions
from neuromosaic.cosim.router import run_mesh_cosim, run_router_cosim
from neuromosaic.cosim.router.testbench import ROUTER_OPTIONS
from neuromosaic.cosim.runner import CosimError

pytestmark = pytest.mark.cosim


@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_router_cosim_passes(sim):
    r = run_router_cosim(sim, seed=3, events=80, name="pytest-pass")
    assert r.details["checked_cycles"] > 200 and r.details["events_out"] > r.details["events_in"] == 320


@pytest.mark.parametrize("sim, idle, backpressure, load", [("icarus", 0.3, 0.3, True), ("icarus", 0.0, 0.6, False)])
def test_mesh_cosim_passes_under_backpressure_and_saturation(sim, idle, backpressure, load):
    r = run_mesh_cosim(sim, seed=3, spikes_per_tile=30, load_tables=load,
                       name=f"pytest-{idle}-{backpressure}", options=RunOptions(idle=idle, backpressure=backpressure))
    d = r.details
    assert d["spikes"] == 120 and d["deliveries"] > 120 and d["link_events"] > d["deliveries"]
    assert (d["table_loads"] > 0) == load


@pytest.mark.parametrize("sim, runner", [("verilator", run_router_cosim), ("icarus", run_mesh_cosim)])
def test_router_cosim_fails_on_a_wrong_model(sim, runner):
    with pytest.raises(CosimError, match="the model says|differ from the model"):
        runner(sim, seed=3, name="pytest-fault", options=ROUTER_OPTIONS.replace(fault="fixed-priority"))
