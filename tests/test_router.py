"""The Mosaic mesh model (routes, compiler, cycle-level routers) and the router RTL in Amaranth's
simulator, every port of every cycle against the model."""

import json

import pytest
import torch
from neuromosaic.cosim.options import RunOptions
from neuromosaic.cosim.router.amaranth_sim import simulate_mesh, simulate_router
from neuromosaic.cosim.router.testbench import FAULTS, ROUTER_OPTIONS, mesh_scenario, router_scenario
from neuromosaic.model.checkpoint import Checkpoint, save_checkpoint
from neuromosaic.model.config import ConfigError
from neuromosaic.model.golden import Mismatch
from neuromosaic.model.mosaic import hop_matrix
from neuromosaic.model.router import (
    MeshConfig,
    RoutingError,
    compile_routes,
    destination_tiles,
    mesh_links,
    node_order,
    route_path,
    route_tree,
    routing_energy,
    routing_report,
    run_traffic,
    table_writes,
)
from neuromosaic.model.snn import SRNNConfig

from neuromosaic.cli import main

UNLIMITED = dict(tile_capacity=10 ** 6, between_capacity=10 ** 6, corner_capacity=10 ** 6)


@pytest.mark.parametrize("rows, cols", [(1, 2), (2, 2), (1, 4), (3, 4), (5, 5)])
def test_every_path_crosses_as_many_routers_as_the_hop_matrix_says(rows, cols):
    mesh = MeshConfig(rows, cols, 2)
    h = hop_matrix(rows, cols)
    for a in range(mesh.tiles):
        for b in range(mesh.tiles):
            if a == b:
                continue
            side, hops = route_path(mesh, a, b)
            assert len(hops) == h[a, b]
            cells = [c for c, _ in hops]
            assert all(mesh.cell_tile(c) is None for c in cells)            # never through a tile
            assert cells[0] == mesh.neighbour(mesh.tile_cell(a), side)
            last, d = hops[-1]
            assert mesh.cell_tile(mesh.neighbour(last, d)) == b
            turns = sum(1 for (_, d0), (_, d1) in zip(hops[:-2], hops[1:-1]) if d0 != d1)
            assert turns <= 1                                                  # one-turn routing


def test_multicast_trees_enter_every_router_once_and_reach_exactly_their_tiles():
    mesh = MeshConfig(3, 3, 2, **UNLIMITED)
    everyone = [[t for t in range(mesh.tiles) if t != s // 2] for s in range(mesh.sources)]
    tables = compile_routes(mesh, everyone)          # asserts internally that no tree merges
    for s in range(mesh.sources):
        exits, cells = route_tree(mesh, s, everyone[s])
        reached = {mesh.cell_tile(mesh.neighbour(c, d)) for c, outs in cells.items() for d in outs} - {None}
        assert reached == set(everyone[s])
    merged = {t: {src for per in tables.mergers[t].values() for src in per} for t in range(mesh.tiles)}
    assert all(merged[t] == {s for s in range(mesh.sources) if s // 2 != t} for t in range(mesh.tiles))


def test_compiler_refuses_connectivity_beyond_a_port_capacity_in_one_sentence():
    mesh = MeshConfig(2, 2, 8, corner_capacity=2)
    everyone = [[t for t in range(4) if t != s // 8] for s in range(mesh.sources)]
    with pytest.raises(RoutingError, match=r"port \w+_[NESW] of the corner router at cell \(\d, \d\) would carry \d+ "
                                           r"distinct sources; allowed: at most 2"):
        compile_routes(mesh, everyone)
    with pytest.raises(ConfigError, match="names tile 7; allowed: 0..3"):
        compile_routes(MeshConfig(2, 2, 1), [[7], [], [], []])
    with pytest.raises(ConfigError, match="does not fit a 2x2 mesh"):
        destination_tiles(torch.ones(5, 5), MeshConfig(2, 2, 1))


def test_report_counts_destinations_per_hop_and_table_memory():
    mesh = MeshConfig(2, 2, 1, **UNLIMITED)
    w = torch.zeros(4, 4)
    w[1, 0] = w[3, 0] = w[2, 3] = 1               # [post, pre]: 0 -> 1 (1 hop), 0 -> 3 (3 hops), 3 -> 2 (1 hop)
    r = routing_report(compile_routes(mesh, destination_tiles(w, mesh)))
    assert r["tile_destinations_per_hop"] == {"1": 2, "3": 1}
    assert r["routed_sources"] == 2 and r["routers"] == 21
    # source 0: (1,2) east into tile 1 and on south (2,2), (3,2) into tile 3; source 3: (3,2) west into tile 2
    assert r["router_memory"]["table_entries_used"] == 3 + 1


def test_table_writes_name_every_entry_once():
    s = mesh_scenario(seed=4)
    writes = table_writes(s.tables)
    nodes = node_order(s.tables.mesh)
    n_router_entries = sum(len(e) for per in s.tables.routers.values() for e in per.values())
    n_inject = sum(len(e) for e in s.tables.injectors.values())
    assert len(writes) == n_router_entries + n_inject            # mergers have no table
    assert len({(w["node"], w["port"], w["source"]) for w in writes}) == len(writes)
    assert all(0 <= w["node"] < len(nodes) and w["mask"] for w in writes)


def test_mesh_model_conserves_spikes_under_backpressure():
    s = mesh_scenario(rows=2, cols=3, neurons_per_tile=3, seed=2, density=0.6)
    spikes = [[(i, a) for i, a in enumerate(tile)] for tile in s.spikes]
    r = run_traffic(s.tables, spikes, seed=1, backpressure=0.5)
    assert r["deliveries"] == sum(len(s.tables.destinations[a]) for tile in s.spikes for a in tile)
    assert min(r["latencies"]) >= 9                 # injector, one router, merger: three cycles each
    assert len(r["link_counts"]) <= len(mesh_links(s.tables.mesh))
    # offered all at cycle i, a spike may wait at its tile: never less than its network latency
    assert all(q >= n for q, n in zip(r["offered_latencies"], r["latencies"]))


def test_routing_energy_counts_every_node_an_event_crosses():
    mesh = MeshConfig(1, 3, 1, **UNLIMITED)           # tiles 0, 1, 2 in a row
    near = compile_routes(mesh, [[1], [], []])        # 0 -> 1: injector, one router, merger
    far = compile_routes(mesh, [[2], [], []])         # 0 -> 2: two tiles away, 2*2+1 = 5 routers
    both = compile_routes(mesh, [[1, 2], [], []])
    e_near, e_far, e_both = (routing_energy(t, [10, 7, 0]) for t in (near, far, both))
    assert e_near["events"] == 10 and e_near["node_traversals"] == 10 * 3 and e_far["node_traversals"] == 10 * 7
    assert 0 < e_near["pj"] < e_far["pj"] < e_both["pj"] < e_near["pj"] + e_far["pj"]   # the tree shares routers
    assert routing_energy(near, [0, 7, 0])["pj"] == 0.0                                 # silent sources cost nothing


def test_router_rtl_matches_the_model_every_cycle():
    r = simulate_router(router_scenario(seed=1, events=50), options=ROUTER_OPTIONS.replace(seed=3))
    assert r.details["checked_cycles"] > 100 and r.details["events_out"] > r.details["events_in"]     # multicast
    r = simulate_router(router_scenario("L", "NESW", seed=2, events=60),
                        options=RunOptions(seed=1, idle=0.0, backpressure=0.5))
    assert r.details["events_out"] > 60


@pytest.mark.parametrize("fault", FAULTS)
def test_router_scoreboard_catches_each_wrong_rule(fault):
    with pytest.raises(Mismatch, match="the model says"):
        simulate_router(router_scenario(seed=1, events=50), options=ROUTER_OPTIONS.replace(seed=3, fault=fault))


def test_mesh_rtl_matches_the_model_on_every_link_and_conserves_spikes():
    r = simulate_mesh(mesh_scenario(seed=1, spikes_per_tile=12), options=RunOptions(seed=2, idle=0.0, backpressure=0.4))
    d = r.details
    assert d["deliveries"] > 40 and d["link_events"] > d["deliveries"] and d["table_loads"] == 0


def test_mesh_tables_load_through_the_table_port():
    s = mesh_scenario(rows=1, cols=3, seed=5, spikes_per_tile=10)
    r = simulate_mesh(s, load_tables=True, options=ROUTER_OPTIONS.replace(seed=1))
    assert r.details["table_loads"] == len(table_writes(s.tables)) > 10 and r.details["deliveries"] > 10


def test_mesh_scoreboard_catches_a_wrong_router():
    with pytest.raises(Mismatch, match="the model says|differ from the model"):
        simulate_mesh(mesh_scenario(seed=1, spikes_per_tile=12),
                      options=ROUTER_OPTIONS.replace(seed=2, fault="fixed-priority"))


def test_route_cli_reports_a_checkpoint_and_refuses_what_does_not_fit(tmp_path, capsys):
    c = SRNNConfig.make(4, 16, 3)
    g = torch.Generator().manual_seed(0)
    w_rec = torch.randint(-3, 4, (16, 16), generator=g) * (torch.rand(16, 16, generator=g) < 0.3)
    save_checkpoint(tmp_path, Checkpoint(c, torch.ones(16, 4, dtype=torch.int64), w_rec,
                                         torch.ones(3, 16, dtype=torch.int64)))
    assert main(["route", "--checkpoint", str(tmp_path), "--grid", "2x2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["grid"] == [2, 2] and report["sources"] == 16
    mesh = MeshConfig(2, 2, 4)
    assert report == routing_report(compile_routes(mesh, destination_tiles(w_rec, mesh)))
    assert main(["route", "--checkpoint", str(tmp_path), "--grid", "2x2", "--corner-capacity", "0"]) == 2
    assert "allowed: at most 0" in capsys.readouterr().err
    assert main(["route", "--checkpoint", str(tmp_path), "--grid", "3x3"]) == 2
    assert "do not divide" in capsys.readouterr().err
