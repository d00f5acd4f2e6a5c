"""``neuromosaic bench cosim``: how fast the cosimulations check their designs, measured side by side
in one run on the same stimulus. For each design and simulator:

* ``checked_cycles_per_s``: through the design's batch harness, every transaction checked (the
  default mode; its wall time includes the golden model's predictions);
* ``per_cycle_cycles_per_s``: the per-cycle cocotb agents (Python at every clock edge), checked;
  the Verilator model built as the harness's is (-O2);
* ``bare_cycles_per_s``: the same harness and stimulus with checking off (each item run for the
  cycles the checked run took; the stimulus's preparation left out): the simulator's own speed;
* ``speedup_vs_per_cycle`` (checked / per-cycle) and ``overhead_vs_bare`` (bare / checked).

Designs: the default LIF core, the seed-size learning core (256 channels, 256 neurons) and the 2x2
and 4x4 Mosaics of the FSDD network. Figures are printed, never asserted.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from tqdm import tqdm

from ..cosim.learning import run_learning_cosim
from ..cosim.lif import run_lif_cosim
from ..cosim.mosaic import run_mosaic_cosim
from ..cosim.options import RunOptions
from ..model.config import LIFConfig
from ..model.episode import ChipEpisode
from ..model.learning import LearningConfig
from ..model.mosaic import hop_matrix, tile_of
from ..model.snn import NETWORKS, IntegerSRNN, SRNNConfig
from ..model.tiles import MosaicConfig

__all__ = ["bench_cosim", "bench_episode", "small_world"]

SIMS = ("verilator", "icarus")
# Steps of each sample of the learning core's episode: the seed's samples have 100; 30 keeps the loading
# of the core's 65,536 weight words from dominating a short episode, and the per-cycle run on Icarus
# (the slowest of all) within about 20 minutes.
LEARNING_STEPS = 30


def bench_episode(config: SRNNConfig, cfg: LearningConfig, *, steps: int, support: int = 2, queries: int = 1,
                  rate: float = 0.06, seed: int = 0, recurrent_mask: torch.Tensor | None = None) -> ChipEpisode:
    """A short episode through the whole network: zero-mean random core weights with a small
    excitatory bias (recurrent ones only where ``recurrent_mask`` [post, pre] is set, if given),
    ``support`` samples with learning on (one per class), one update, ``queries`` samples; each
    channel sends an event with probability ``rate`` per step."""
    g = torch.Generator().manual_seed(seed)
    lo, hi = config.core.weight_range
    w_core = (torch.randint(lo // 2, hi // 2 + 1, (config.neurons, config.core.inputs), generator=g) + hi // 8)
    if recurrent_mask is not None:
        w_core[:, config.channels:] *= recurrent_mask.to(w_core.dtype)
    olo, ohi = config.readout_weight_range
    w_out = torch.randint(olo // 4, ohi // 4 + 1, (config.outputs, config.neurons), generator=g)
    net = IntegerSRNN(config, w_core[:, :config.channels], w_core[:, config.channels:], w_out)

    def inputs(n):
        return (torch.rand(steps, n, config.channels, generator=g) < rate).to(torch.int64)

    sx, qx = inputs(support), inputs(queries)
    labels = [i % config.outputs for i in range(support)]
    return ChipEpisode("bench", w_out, net.hidden(sx).to(torch.int64), labels, net.hidden(qx).to(torch.int64),
                       2.0 ** 16, 1, labels[:queries], w_core, sx, qx)


def small_world(config: SRNNConfig, rows: int, cols: int) -> torch.Tensor:
    """A routable recurrent layout [post, pre] for a ``rows`` x ``cols`` Mosaic: every synapse inside a
    tile, and from the first neuron of each tile to the tiles one hop away."""
    tiles = tile_of(config.neurons, rows * cols)
    hops = hop_matrix(rows, cols)[tiles][:, tiles]
    first = torch.zeros(config.neurons, dtype=torch.bool)
    first[::config.neurons // (rows * cols)] = True
    return (hops == 0) | ((hops == 1) & first.view(1, -1))


def _compare(run) -> dict:
    """Runs ``run(options, scoreboard, item_cycles)`` checked in the harness, per cycle, and bare."""
    checked = run(RunOptions(optimise=True), True, None)
    per_cycle = run(RunOptions(per_cycle=True, optimise=True), True, None)
    bare = run(RunOptions(optimise=True), False, checked.details["item_cycles"])
    bare_speed = bare.cycles / max(1e-9, bare.wall_s - bare.details.get("setup_s", 0.0))
    return {
        "cycles": checked.cycles, "checked": checked.checked,
        "checked_cycles_per_s": round(checked.cycles_per_s),
        "per_cycle_cycles_per_s": round(per_cycle.cycles_per_s),
        "bare_cycles_per_s": round(bare_speed),
        "speedup_vs_per_cycle": round(checked.cycles_per_s / per_cycle.cycles_per_s, 2),
        "overhead_vs_bare": round(bare_speed / checked.cycles_per_s, 2),
    }


def _designs(quick: bool) -> dict:
    """name -> (description, run(sim, options, scoreboard, item_cycles))."""
    cfg = LearningConfig()
    lif = LIFConfig()
    seeds, steps = (1, 10) if quick else (2, 30)
    learning_net = NETWORKS["small" if quick else "seed"]
    episode = bench_episode(learning_net, cfg, steps=4 if quick else LEARNING_STEPS)
    fsdd = SRNNConfig.make(channels=8, neurons=16, outputs=5, lanes=1) if quick else NETWORKS["fsdd"]

    def lif_run(sim, options, scoreboard, item_cycles):
        return run_lif_cosim(sim, lif, seeds=seeds, steps=steps, corners=False, options=options, scoreboard=scoreboard,
                             item_cycles=item_cycles, name="bench-cosim")

    def learning_run(sim, options, scoreboard, item_cycles):
        return run_learning_cosim(sim, learning_net, cfg, episode_list=[episode], options=options,
                                  scoreboard=scoreboard, item_cycles=item_cycles, name="bench-cosim")

    def mosaic(rows, cols):
        mc = MosaicConfig.make(fsdd, rows, cols)
        episode = bench_episode(fsdd, cfg, steps=3 if quick else 4, rate=0.1,
                                recurrent_mask=small_world(fsdd, rows, cols))
        w_rec = episode.w_core[:, fsdd.channels:]

        def run(sim, options, scoreboard, item_cycles):
            return run_mosaic_cosim(sim, mc, cfg, episode_list=[episode], w_rec=w_rec, options=options,
                                    scoreboard=scoreboard, item_cycles=item_cycles, name="bench-cosim")
        return run

    return {
        "lif": ({"config": lif.to_dict(), "seeds": seeds, "steps": steps}, lif_run),
        "learning": ({"network": learning_net.to_dict(), "episode_steps": episode.support.shape[0]}, learning_run),
        "mosaic-2x2": ({"network": fsdd.to_dict(), "grid": "2x2"}, mosaic(2, 2)),
        "mosaic-4x4": ({"network": fsdd.to_dict(), "grid": "4x4"}, mosaic(4, 4)),
    }


def bench_cosim(quick: bool = False, out: str | Path = "build/bench") -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    designs = _designs(quick)
    result: dict = {name: {"design": description} for name, (description, _) in designs.items()}
    with tqdm(total=len(designs) * len(SIMS), desc="bench cosim", unit="run") as bar:
        for sim in SIMS:                        # every design on the faster simulator first
            for name, (_, run) in designs.items():
                bar.set_postfix_str(f"{name} on {sim}")
                start = time.perf_counter()
                result[name][sim] = _compare(lambda options, scoreboard, item_cycles:
                                             run(sim, options, scoreboard, item_cycles))
                result[name][sim]["wall_s"] = round(time.perf_counter() - start, 1)
                _write(out / "cosim.partial.json", result)   # after every run: an interrupted bench keeps what it has
                bar.update()
    _write(out / "cosim.json", result)
    (out / "cosim.partial.json").unlink(missing_ok=True)
    return result


def _write(path: Path, result: dict) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2))
    tmp.replace(path)
