"""``neuromosaic bench router``: the Mosaic mesh under load, the routing energy of trained small-world
connectivity against the same network fully connected, and the parts' size on the ECP5-85F. Figures are
printed, never asserted.

The network is a checkpoint (``--checkpoint``) or one meta-trained here on the built-in data with the
layout penalty (64 neurons on 4x4 tiles). Its traffic is the integer network's hidden spikes on
meta-test samples. The mesh is ``model.router.MeshModel``, which the RTL matches cycle for cycle
(``cosim/router_bench.py``), so the figures are the RTL's.

* Throughput: every tile offers its spikes back to back (the recorded spike trains, in step order) until
  all are delivered; events per cycle per tile at the injection port and at the delivery port, and
  the mean use of the mesh's links (events per cycle per link).
* Latency against offered load: each tile offers a spike of one of its routed neurons with probability
  ``load`` per cycle for a window; mean cycles from the offer to each delivery (queueing included).
* Both for the trained tables and for *uniform* traffic: the same sources, each with as many
  destination tiles as trained, drawn uniformly from the other tiles (compiled without capacities:
  uniform placement does not fit Mosaic's).
* Energy: ``model.router.routing_energy`` of the recorded spikes, trained tables against every neuron
  routed to every other tile.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import torch
from tqdm import tqdm

from ..model.router import compile_routes, mesh_links, routing_energy, routing_report, run_traffic
from ..model.tiles import MosaicConfig, mosaic_tables

__all__ = ["bench_router"]


def _network(checkpoint, quick: bool, out: Path):
    from ..model.checkpoint import load_checkpoint
    from ..model.train import TrainConfig, train
    if checkpoint:
        return load_checkpoint(checkpoint)
    path = out / "router-network"
    cfg = TrainConfig(neurons=64, channels=64, steps=50, layout="4x4", iterations=16 if quick else 60,
                      eval_every=10 ** 6, eval_tasks=2)
    train(cfg, path, progress=False)
    return load_checkpoint(path)


def _uniform(tables, seed: int = 0):
    """The same fan-out per source, destinations drawn uniformly from the other tiles."""
    mesh = tables.mesh
    rng = random.Random(seed)
    dest = []
    for s, d in enumerate(tables.destinations):
        others = [t for t in range(mesh.tiles) if t != s // mesh.neurons_per_tile]
        dest.append(sorted(rng.sample(others, len(d))))
    return dest


def _saturated(tables, trains) -> dict:
    mesh = tables.mesh
    spikes = [[(0, s) for s in train if tables.destinations[s]] for train in trains]
    r = run_traffic(tables, spikes)
    injected = sum(len(s) for s in spikes)
    per_tile = [0] * mesh.tiles                 # deliveries into each tile (at most one a cycle)
    for train in spikes:
        for _, s in train:
            for t in tables.destinations[s]:
                per_tile[t] += 1
    cycles = r["cycles"]
    return {"cycles": cycles, "events": injected, "deliveries": r["deliveries"],
            "injected_per_tile_per_cycle": round(injected / mesh.tiles / cycles, 4),
            "delivered_per_tile_per_cycle": round(r["deliveries"] / mesh.tiles / cycles, 4),
            "busiest_delivery_port_per_cycle": round(max(per_tile) / cycles, 4),
            "link_events_per_cycle_per_link": round(sum(r["link_counts"].values()) / len(mesh_links(mesh)) / cycles, 4)}


def _latency(tables, load: float, window: int, seed: int = 0) -> dict:
    mesh = tables.mesh
    rng = random.Random(seed)
    routed = [[s for s in range(t * mesh.neurons_per_tile, (t + 1) * mesh.neurons_per_tile) if tables.destinations[s]]
              for t in range(mesh.tiles)]
    spikes = [[(c, rng.choice(r)) for c in range(window) if r and rng.random() < load] for r in routed]
    res = run_traffic(tables, spikes)
    lat = res["offered_latencies"]
    return {"offered_per_tile_per_cycle": load, "events": sum(len(s) for s in spikes),
            "mean_latency_cycles": round(sum(lat) / len(lat), 2) if lat else None,
            "max_latency_cycles": max(lat) if lat else None,
            "mean_network_latency_cycles": round(sum(res["latencies"]) / len(lat), 2) if lat else None}


def bench_router(quick: bool = False, out: str | Path = "build/bench", checkpoint=None,
                 synthesis: bool | None = None) -> dict:
    """Runs the benchmark; ``synthesis`` (default: not ``quick``) adds the ECP5-85F cell counts."""
    from ..model.episode import checkpoint_episodes

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    synthesis = (not quick) if synthesis is None else synthesis
    loads = (0.05, 0.2) if quick else (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8)
    window = 100 if quick else 400
    stages = ["network", "traffic", "throughput", "latency", "energy"] + (["ECP5-85F synthesis"] if synthesis else [])
    result: dict = {}
    with tqdm(total=len(stages), desc="bench router", unit="stage") as bar:
        bar.set_postfix_str(stages[0])
        ck = _network(checkpoint, quick, out)
        layout = ck.metadata.get("train", {}).get("layout") or "4x4"
        rows, cols = (int(v) for v in layout.lower().split("x"))
        mc = MosaicConfig.make(ck.config, rows, cols)
        tables = mosaic_tables(mc, ck.w_rec)
        unlimited = {"tile_capacity": mc.network.neurons, "between_capacity": mc.network.neurons,
                     "corner_capacity": mc.network.neurons}
        free = MosaicConfig.make(ck.config, rows, cols, **unlimited).mesh
        uniform = compile_routes(free, _uniform(tables))
        full = mosaic_tables(MosaicConfig.make(ck.config, rows, cols, **unlimited))
        report = routing_report(tables)
        result["network"] = {"checkpoint": str(checkpoint) if checkpoint else "trained here on the built-in data",
                             "neurons": mc.network.neurons, "grid": [rows, cols],
                             "neurons_per_tile": mc.neurons_per_tile,
                             "recurrent_synapses": int((ck.w_rec != 0).sum()),
                             "tile_destinations_per_hop": report["tile_destinations_per_hop"],
                             "mean_hops": round(report["mean_hops"], 3),
                             "max_port_sources": report["max_port_sources"]}
        bar.update()

        bar.set_postfix_str(stages[1])
        episodes = checkpoint_episodes(ck, 2 if quick else 4, shots=5, queries=5)
        hidden = torch.cat([torch.cat([e.support, e.query], 1) for e in episodes], 1)   # the model's spikes
        samples = hidden.shape[1]
        counts = hidden.sum((0, 1)).tolist()                       # spikes per source
        n = mc.neurons_per_tile
        trains = [[] for _ in range(mc.tiles)]                     # per tile, its spikes in step order
        for t_step in range(hidden.shape[0]):
            for b in range(samples):
                for s in torch.nonzero(hidden[t_step, b]).flatten().tolist():
                    trains[s // n].append(s)
        result["traffic"] = {"samples": samples, "steps": hidden.shape[0], "spikes": int(sum(counts)),
                             "spikes_per_neuron_per_step":
                                 round(sum(counts) / samples / hidden.shape[0] / mc.network.neurons, 4)}
        bar.update()

        bar.set_postfix_str(stages[2])
        start = time.perf_counter()
        result["throughput"] = {"trained": _saturated(tables, trains), "uniform": _saturated(uniform, trains)}
        result["throughput"]["model_s"] = round(time.perf_counter() - start, 1)
        bar.update()

        bar.set_postfix_str(stages[3])
        result["latency_vs_load"] = {name: [_latency(t, load, window) for load in loads]
                                     for name, t in (("trained", tables), ("uniform", uniform))}
        bar.update()

        bar.set_postfix_str(stages[4])
        trained_e = routing_energy(tables, counts)
        full_e = routing_energy(full, counts)
        result["routing_energy"] = {
            "trained_small_world": {k: round(v, 3) if isinstance(v, float) else v for k, v in trained_e.items()},
            "fully_connected": {k: round(v, 3) if isinstance(v, float) else v for k, v in full_e.items()},
            "saving": round(1 - trained_e["pj"] / full_e["pj"], 4) if full_e["pj"] else None,
            "mosaic_claim": "more than 66 % saving",
            "model": "per event: injector, every router of its multicast tree, every destination's merger; each a "
                     "table read, a FIFO write and read, an output-register write per out-port (EnergyModel SRAM "
                     "fit); no wires"}
        bar.update()

        if synthesis:
            bar.set_postfix_str(stages[5])
            from ..fpga.mosaic import mosaic_resources
            start = time.perf_counter()
            result["ecp5_85f"] = mosaic_resources(mc, out_dir=out / "ecp5-parts")
            result["ecp5_85f"]["synthesis_s"] = round(time.perf_counter() - start, 1)
            bar.update()
    (out / "router.json").write_text(json.dumps(result, indent=2))
    return result
