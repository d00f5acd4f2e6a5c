"""The router's and the mesh fabric's testbenches in Amaranth's simulator."""

from __future__ import annotations

from ...rtl.router import MeshFabric, Router
from ..amaranth_loop import back_to_back
from ..options import CosimResult, RunOptions
from .testbench import ROUTER_OPTIONS, MeshTestbench, RouterTestbench

__all__ = ["simulate_router", "simulate_mesh"]


def simulate_router(scenario, *, options: RunOptions = ROUTER_OPTIONS, vcd=None) -> CosimResult:
    """Runs a router scenario (``testbench.router_scenario``) on ``rtl.router.Router``, every
    output of every cycle checked against ``model.router.RouterModel``."""
    s = scenario
    return back_to_back(
        Router(s.in_ports, s.out_ports, s.sources, s.fifo_depth, s.tables),
        lambda port: RouterTestbench(s, port, options),
        [s], lambda tb, index, item, cycle: tb.start(item, cycle), [f"in_{p}" for p in s.in_ports], vcd)


def simulate_mesh(scenario, *, options: RunOptions = ROUTER_OPTIONS, load_tables=False, vcd=None) -> CosimResult:
    """Runs a mesh scenario (``testbench.mesh_scenario``) on ``rtl.router.MeshFabric``, every link
    of every cycle checked against ``model.router.MeshModel``, then spike conservation.
    ``load_tables``: the fabric starts empty and the tables are written through its table port."""
    return back_to_back(
        MeshFabric(scenario.tables.mesh, None if load_tables else scenario.tables),
        lambda port: MeshTestbench(scenario, port, options, load_tables=load_tables),
        [scenario], lambda tb, index, item, cycle: tb.start(item, cycle), ("table",), vcd)
