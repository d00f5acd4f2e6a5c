"""The Mosaic top: the network cut into tiles, whole few-shot episodes on the tiled RTL against
the whole network's golden model (Amaranth simulator and Icarus), a trained network's inference and
on-chip update bit-exact with its compiled routes, wrong routes caught, the CLI, the benchmark and the
ECP5 cell counts."""

import json

import pytest
import torch
from neuromosaic.cosim.mosaic import episode_tables, run_mosaic_cosim
from neuromosaic.cosim.mosaic.amaranth_sim import simulate_mosaic
from neuromosaic.cosim.options import RunOptions
from neuromosaic.cosim.runner import CosimError
from neuromosaic.model.checkpoint import load_checkpoint
from neuromosaic.model.config import ConfigError, unpack_fields
from neuromosaic.model.episode import checkpoint_episodes, random_network_episode
from neuromosaic.model.golden import Mismatch
from neuromosaic.model.learning import LearningConfig
from neuromosaic.model.router import MeshConfig, RoutingError
from neuromosaic.model.snn import NETWORKS, SRNNConfig
from neuromosaic.model.tiles import MosaicConfig, mosaic_tables
from neuromosaic.rtl.mosaic import Mosaic, NeuronTile

from neuromosaic.cli import main

CFG = LearningConfig()
SMALL = MosaicConfig.make(NETWORKS["small"], 2, 2)      # 4 channels, 16 neurons: 4 per tile


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A network meta-trained on the built-in data with the 2x2 layout penalty and pruning (seconds)."""
    from neuromosaic.model.train import TrainConfig, train
    out = tmp_path_factory.mktemp("mosaic") / "net"
    train(TrainConfig(neurons=16, channels=32, steps=30, layout="2x2", iterations=20, eval_every=10 ** 6,
                      eval_tasks=2, meta_batch=4), out, progress=False)
    return out


def test_partition_and_weight_loads():
    mc = SMALL
    assert mc.tile_core.neurons == 4 and mc.tile_core.inputs == 4 + 16 and mc.tile_core.lanes == 4
    g = torch.Generator().manual_seed(1)
    lo, hi = mc.network.core.weight_range
    w = torch.randint(lo, hi + 1, (16, 20), generator=g)
    words = mc.core_load_words(w)
    assert len(words) == mc.tiles * mc.tile_core.weight_depth
    per_tile = {t: {} for t in range(mc.tiles)}
    for word in words:
        f = unpack_fields(mc.core_load_fields, word)
        per_tile[f["tile"]][f["address"]] = f["data"]
    for t in range(mc.tiles):      # each tile holds exactly its rows, in its core's word order
        want = mc.tile_core.weight_words(w[4 * t:4 * t + 4])
        assert [per_tile[t][a] for a in range(len(want))] == want
    every = mosaic_tables(mc).destinations
    assert every[0] == [1, 2, 3] and every[15] == [0, 1, 2]


def test_impossible_mosaics_are_refused():
    net = NETWORKS["small"]
    with pytest.raises(ConfigError, match="holds 12 neurons, the network has 16"):
        MosaicConfig(net, MeshConfig(2, 2, 3))
    with pytest.raises(ConfigError, match="1 neurons per tile do not split into the core's lanes=4"):
        MosaicConfig.make(net, 4, 4)
    with pytest.raises(ConfigError, match="a 3x3 grid does not split 16 neurons"):
        MosaicConfig.make(net, 3, 3)
    with pytest.raises(ConfigError, match="tile 4 does not exist; allowed: 0..3"):
        NeuronTile(SMALL, 4)
    other = MosaicConfig.make(SRNNConfig.make(channels=4, neurons=16, outputs=5, lanes=2), 1, 4)
    with pytest.raises(ConfigError, match="do not fit this Mosaic's mesh"):
        Mosaic(SMALL, CFG, tables=mosaic_tables(other))
    # every neuron of 64 to every other tile does not fit Mosaic's corner routers
    with pytest.raises(RoutingError, match="corner router at cell .* allowed: at most 8"):
        Mosaic(MosaicConfig.make(NETWORKS["fsdd"], 2, 2), CFG)


def test_random_episode_on_the_mosaic_in_the_amaranth_simulator():
    episode = random_network_episode(SMALL.network, CFG, 2)
    r = simulate_mosaic(SMALL, CFG, [episode])
    assert r.checked["hidden_events"] > int(episode.support.sum()) > 0
    assert r.checked["weight_writes"] == episode.steps * 5 * 16
    # without any route into the last tile, its neurons miss the other tiles' spikes: caught
    with pytest.raises(Mismatch, match="hidden spike event mismatch"):
        simulate_mosaic(SMALL, CFG, [episode], tables=episode_tables(SMALL, None, "deaf-tile"))


def test_trained_network_on_a_2x2_mosaic_is_bit_exact_on_icarus(trained):
    ck = load_checkpoint(trained)
    mc = MosaicConfig.make(ck.config, 2, 2)
    episodes = checkpoint_episodes(ck, 1, shots=3, queries=2)
    spikes = int(episodes[0].support.sum() + episodes[0].query.sum())
    assert spikes > 0, "the trained network must spike for the test to mean anything"
    r = run_mosaic_cosim("icarus", mc, CFG, episode_list=episodes, w_rec=ck.w_rec, name="trained")
    assert r.checked["hidden_events"] == spikes + 5 * episodes[0].support.shape[0]
    assert r.checked["logits"] == 5 * 5 and r.checked["weight_writes"] == 5 * 16
    assert 0 < r.details["routes"] < 16 * 3                  # the compiled, sparse connectivity, not every route
    with pytest.raises(CosimError, match="hidden spike event mismatch"):
        run_mosaic_cosim("icarus", mc, CFG, episode_list=episodes, w_rec=ck.w_rec, name="deaf",
                         options=RunOptions(fault="deaf-tile"))
    with pytest.raises(CosimError, match="recurrent synapses that w_rec lacks"):
        run_mosaic_cosim("icarus", mc, CFG, episode_list=episodes, w_rec=torch.zeros_like(ck.w_rec))


def test_cli_verilog_and_cosim_mosaic(trained, tmp_path, capsys):
    v = tmp_path / "mosaic.v"
    assert main(["verilog", "mosaic", "--checkpoint", str(trained), "-o", str(v)]) == 0
    out = capsys.readouterr().out
    assert "2x2 tiles of 4 neurons and 21 routers" in out and "neurons send to other tiles" in out
    text = v.read_text()
    assert "module mosaic(" in text and "core_weights__payload" in text and "table__valid" in text
    assert main(["verilog", "mosaic", "-o", str(v), "--grid", "3x3"]) == 2
    assert "--grid 3x3: 9 tiles do not divide the 16 neurons" in capsys.readouterr().err
    assert main(["cosim", "mosaic", "--sim", "icarus", "--fault", "floor"]) == 2
    assert "is not a mosaic fault; allowed: deaf-tile" in capsys.readouterr().err
    assert main(["cosim", "mosaic", "--sim", "icarus", "--checkpoint", str(trained), "--shots", "0"]) == 2
    assert main(["cosim", "mosaic", "--sim", "icarus", "--engine"]) == 2
    assert "unrecognized arguments: --engine" in capsys.readouterr().err


def test_bench_router_quick(trained, tmp_path):
    from neuromosaic.bench.router import bench_router
    r = bench_router(quick=True, out=tmp_path, checkpoint=trained)
    assert r["network"]["grid"] == [2, 2] and r["traffic"]["spikes"] > 0
    for kind in ("trained", "uniform"):
        tp = r["throughput"][kind]
        assert tp["events"] > 0 and 0 < tp["busiest_delivery_port_per_cycle"] <= 1
        assert [p["offered_per_tile_per_cycle"] for p in r["latency_vs_load"][kind]] == [0.05, 0.2]
    e = r["routing_energy"]
    assert e["fully_connected"]["pj"] >= e["trained_small_world"]["pj"] > 0
    assert json.loads((tmp_path / "router.json").read_text())["routing_energy"]["saving"] == e["saving"]


def test_ecp5_cells_of_a_router(tmp_path):
    from neuromosaic.fpga.estimate import part_cells
    from neuromosaic.rtl.router import Router
    small = part_cells(Router("NS", "NS", 8, 1), "ulx3s-85f", tmp_path)
    large = part_cells(Router("NESW", "NESW", 64, 4), "ulx3s-85f", tmp_path)
    assert 0 < small["logic_cells"] < large["logic_cells"] and large["flip_flops"] > small["flip_flops"]
    # a router whose in-ports take fewer turns and hold fewer tiles' sources is smaller
    pruned = part_cells(Router("NESW", "NESW", 64, 4, turns=[(1, 2)] * 4, source_tiles=[(0,)] * 4,
                               neurons_per_tile=16), "ulx3s-85f", tmp_path)
    assert pruned["logic_cells"] < 0.7 * large["logic_cells"]
    assert part_cells(Router("NS", "NS", 8, 1), "ulx3s-85f", tmp_path) == small      # from the cache
    for entry in tmp_path.rglob("*.json"):                                             # damaged: made again
        entry.write_text(entry.read_text()[:5])
    assert part_cells(Router("NS", "NS", 8, 1), "ulx3s-85f", tmp_path) == small
