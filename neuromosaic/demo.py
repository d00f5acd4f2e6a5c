"""``neuromosaic demo``: the whole flow end to end, on the built-in synthetic data by default.

1. meta-train a small SRNN with the hardware in the loop (integer forward pass, MAML);
2. the deployable integer network (the checkpoint) with the readout and learning widths the iCE40UP5K
   top carries (the iCEBreaker's record in ``fpga.boards``), and its
   seen / unseen few-shot accuracy with the chip's integer learning rule;
3. the Verilog of the board top (the chip behind its UART host link);
4. a few-shot episode (support set with learning, the on-chip update, the query set) on that Verilog
   in cocotb, driven only through the UART pins by the host driver, checked bit for bit against the
   golden model; then malformed frames, each refused and none executed;
5. the iCE40UP5K bitstream of the same top (Yosys, nextpnr);
6. one summary table, ``summary.json`` and two plots (``raster.png``: the episode's first query
   sample in and out of the chip; ``logits.png``: the chip's query logits beside the model's).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from tqdm import tqdm

__all__ = ["demo", "DEMO_TRAIN"]

# A small network that meta-trains in about a minute on 2 cores and fits the iCE40UP5K with its link.
DEMO_TRAIN = dict(channels=32, neurons=16, steps=30, iterations=150, meta_batch=4, eval_every=10 ** 6, eval_tasks=4,
                  layout=None)


def _energy_pj(config, support_x, support_h, query_x, query_h) -> dict:
    """An energy estimate of the episode's work from the memory-energy model (model/energy.py): a
    synaptic operation is one weight read from the core's weight memory and one accumulator add; the
    readout adds a weight per hidden spike and output; the update reads and writes every readout weight."""
    from .model.energy import EnergyModel
    from .model.synapse import PhysicalMemory
    em = EnergyModel()
    mem = PhysicalMemory("core weights", config.neurons * config.core.inputs, config.core.weight_bits)
    rmem = PhysicalMemory("readout weights", config.outputs * config.neurons, config.readout_weight_bits)
    sop = em.access_pj(mem) + em.add_pj(em.accumulator_bits)
    readout = em.access_pj(rmem) + em.add_pj(em.accumulator_bits)

    def sample_pj(x, h):
        events, spikes = float(x.sum()), float(h.sum())
        return (events + spikes) * config.neurons * sop + spikes * config.outputs * readout

    n_s, n_q = support_x.shape[1], query_x.shape[1]
    inference = sample_pj(query_x, query_h) / max(n_q, 1)
    update = config.outputs * config.neurons * (em.access_pj(rmem) + em.access_pj(rmem, write=True)
                                                + em.mult_pj(8, 8))
    return {"per_inference_nj": round(inference / 1e3, 2),
            "adaptation_nj": round((sample_pj(support_x, support_h) + update) / 1e3, 2),
            "support_samples": n_s, "model": "45 nm SRAM fit + 8-bit datapath (model/energy.py)"}


def _plots(out: Path, config, episode, result, predicted) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plots import raster_png
    x, h = episode.query_x[:, 0], episode.query[:, 0]
    raster_png([(x, "input events (query sample 0)", "input channel"),
                (h, "hidden spikes: reported by the chip through the UART = golden model", "neuron")],
               out / "raster.png")
    chip = result["query_logits"]
    fig, axes = plt.subplots(1, len(chip), figsize=(2.4 * len(chip), 2.6), squeeze=False)
    for i, (ax, got) in enumerate(zip(axes[0], chip)):
        k = list(range(len(got)))
        ax.bar([v - 0.2 for v in k], got, width=0.4, label="chip")
        ax.bar([v + 0.2 for v in k], predicted[i], width=0.4, label="model")
        ax.set_title(f"query {i} (label {episode.query_labels[i]})", fontsize=8)
        ax.set_xticks(k)
    axes[0][0].legend(fontsize=7)
    fig.suptitle("query logits after the on-chip update: chip (RTL through the host link) and golden model", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "logits.png", dpi=120)
    plt.close(fig)


def demo(out: str | Path = "build/demo", data: str = "synthetic", iterations: int | None = None,
         build: bool = True, sim: str = "icarus") -> int:
    from .cosim.board import run_board_cosim
    from .cosim.runner import CosimError, generate_verilog
    from .fpga.board import BuildError
    from .fpga.boards import BOARDS
    from .fpga.protocol import LinkConfig, Protocol
    from .fpga.top import ChipTop, board_protocol, build_board, describe
    from .model.checkpoint import load_checkpoint
    from .model.data import load_source
    from .model.episode import checkpoint_episodes
    from .model.golden import predict_episode
    from .model.snn import integer_readout
    from .model.train import TrainConfig, evaluate, train

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stages = ["meta-train", "integer network + accuracy", "Verilog", f"episode through the UART ({sim})",
              "iCE40UP5K bitstream"]
    summary: dict = {"data": data}
    ok = True
    t0 = time.perf_counter()
    with tqdm(total=len(stages), desc="demo", unit="stage", position=0) as bar:
        # 1. meta-training (its own progress bar below this one)
        bar.set_postfix_str(stages[0])
        tc = TrainConfig(data=data, **{**DEMO_TRAIN, **({"iterations": iterations} if iterations else {})})
        start = time.perf_counter()
        train(tc, out / "checkpoint", progress=True)
        summary["train"] = {"iterations": tc.iterations, "seconds": round(time.perf_counter() - start, 1)}
        bar.update()

        # 2. the deployable integer network, with the UP5K's widths, and its accuracy
        bar.set_postfix_str(stages[1])
        ck = load_checkpoint(out / "checkpoint")
        up5k = BOARDS["icebreaker"]
        config, cfg = up5k.fitted(ck.config), up5k.learning       # the widths the UP5K carries
        ck = dataclasses.replace(ck, config=config)
        ds = load_source(tc.data, split="test", channels=tc.channels, steps=tc.steps)
        acc = evaluate(ck, ds, tc, tasks=20, inner_steps=1, rule="integer")
        summary["accuracy"] = {"seen": round(100 * acc["seen_mean"], 1), "unseen": round(100 * acc["unseen_mean"], 1),
                               "tasks": 20, "protocol": f"{tc.n_way}-way {tc.k_shot}-shot, one on-chip update"}
        bar.update()

        # 3. Verilog of the board top (the simulated link runs 4 clock cycles per bit; the board's 12)
        bar.set_postfix_str(stages[2])
        sim_protocol = Protocol(config, cfg, LinkConfig(clock_hz=4_000_000, baud=1_000_000, buffer_bytes=128))
        verilog = out / "chip_top.v"
        verilog_text = generate_verilog(ChipTop(sim_protocol), "chip_top")
        verilog.write_text(verilog_text)
        summary["verilog"] = {"file": str(verilog), "bytes": verilog.stat().st_size, "chip": describe(sim_protocol)}
        bar.update()

        # 4. one meta-test task through the UART with the host driver, bit-exact, then malformed frames
        bar.set_postfix_str(stages[3])
        episode = checkpoint_episodes(ck, 1, shots=tc.n_way, queries=tc.n_way, dataset=ds)[0]
        start = time.perf_counter()
        try:
            r = run_board_cosim(sim, sim_protocol, episode_list=[episode], malformed=True, timeout=0.2, name="demo")
            e = r.details["episodes"][0]
            right = sum(p == q for p, q in zip(e["predictions"], e["query_labels"]))
            d = r.details
            summary["episode"] = {"passed": True, "checked": r.checked, "cycles": r.cycles,
                                  "bytes_to_chip": d["bytes_sent"], "bytes_from_chip": d["bytes_received"],
                                  "query_right": right, "queries": len(e["predictions"]),
                                  "malformed_refused": len(r.details["malformed"]["rejected"]),
                                  "seconds": round(time.perf_counter() - start, 1)}
            final_w = predict_episode(config, cfg, episode).final_w
            predicted = integer_readout(config, episode.query, final_w).tolist()
            _plots(out, config, episode, e, predicted)
        except CosimError as err:
            summary["episode"] = {"passed": False, "error": str(err)[:400]}
            ok = False
        summary["energy_estimate"] = _energy_pj(config, episode.support_x, episode.support, episode.query_x,
                                                episode.query)
        bar.update()

        # 5. the bitstream
        bar.set_postfix_str(stages[4])
        if build:
            start = time.perf_counter()
            try:
                b = build_board(board_protocol("icebreaker", config, cfg), "icebreaker", out / "fpga")
                summary["fpga"] = {k: v for k, v in b.report.items() if k not in ("config", "link")}
                summary["fpga"]["build_s"] = round(time.perf_counter() - start, 1)
            except BuildError as err:
                summary["fpga"] = {"error": str(err)}
                ok = False
        bar.update()

    summary["seconds"] = round(time.perf_counter() - t0, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    _table(summary, out)
    print("\nresult:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


def _table(s: dict, out: Path) -> None:
    a, e, en = s["accuracy"], s.get("episode", {}), s["energy_estimate"]
    f = s.get("fpga", {})
    rows = [("data", s["data"]),
            ("network", s["verilog"]["chip"]),
            ("accuracy (integer network)",
             f"seen {a['seen']} %, unseen {a['unseen']} % ({a['protocol']}, {a['tasks']} tasks)"),
            ("episode on the RTL", (f"PASS bit-exact through the UART: {e['checked'].get('logits', 0)} logits, "
                                    f"{e['checked'].get('hidden_events', 0)} hidden events, "
                                    f"{e['checked'].get('weight_writes', 0)} weight writes; query {e['query_right']}/"
                                    f"{e['queries']} right; {e['malformed_refused']} malformed frames refused")
             if e.get("passed") else f"FAIL: {e.get('error', 'not run')}"),
            ("cycles (simulated link)",
             f"{e.get('cycles', 0):,} cycles, {e.get('bytes_to_chip', 0):,} bytes to the chip, "
                                        f"{e.get('bytes_from_chip', 0):,} back" if e.get("passed") else "-"),
            ("energy estimate", f"{en['per_inference_nj']} nJ per inference, {en['adaptation_nj']} nJ per adaptation "
                                f"({en['support_samples']} support samples and the update)"),
            ("iCE40UP5K", (f"{f['logic_cells']:,}/{f['logic_cells_available']:,} LCs, {f['ram_blocks']} BRAM, "
                           f"{f['spram_blocks']} SPRAM, {f['dsps']} DSP; Fmax {f['fmax_mhz']} MHz (board clock "
                           f"{f['clock_constraint_mhz']} MHz)") if "fmax_mhz" in f else f.get("error", "skipped")),
            ("outputs", f"{out}/: summary.json, raster.png, logits.png, chip_top.v, checkpoint/"
                        + (", fpga/icebreaker/chip.bin and its reports" if "fmax_mhz" in f else "")),
            ("time", f"{s['seconds']:.0f} s")]
    width = max(len(k) for k, _ in rows)
    print()
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")
