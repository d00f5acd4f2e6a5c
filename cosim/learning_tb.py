"""cocotb test module of the learning core or engine (runs inside Verilator or Icarus; see ``cosim/learning.py``).

The job (configs, DUT, episodes, fault, idle and backpressure rates) comes as JSON from the file named by
``NEUROMOSAIC_JOB``; the result (pass/fail, the mismatch, counts, coverage, cycles) goes back as JSON
to the path the job names.
"""

import json
import os
import time
import traceback

import cocotb
import torch
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from neuromosaic.cosim.cocotb_ports import cocotb_port
from neuromosaic.cosim.learning_bench import Episode, LearningTestbench, random_episode, random_network_episode
from neuromosaic.model.learning import LearningConfig
from neuromosaic.model.snn import SRNNConfig


@cocotb.test()
async def learning_episodes(dut):
    """Whole few-shot episodes: every logit and every weight write (with its cycle) against the model."""
    job = json.loads(open(os.environ["NEUROMOSAIC_JOB"]).read())
    config = SRNNConfig.from_dict(job["config"])
    cfg = LearningConfig(**job["learning"])
    result = {"passed": False}
    start = time.perf_counter()
    cycle = 0
    try:
        core = job.get("core", True)
        inputs = ("events", "command", "weights", "core_weights") if core else ("spikes", "command", "weights")
        if job.get("episodes_file"):
            episodes = [Episode(**e) for e in torch.load(job["episodes_file"])]
        else:
            make = random_network_episode if core else random_episode
            episodes = [make(config, cfg, job["first_seed"] + i) for i in range(job["episodes"])]
        tb = LearningTestbench(config, cfg, lambda n: cocotb_port(dut, n), seed=job.get("rng_seed", 0),
                               idle=job.get("idle", 0.2), backpressure=job.get("backpressure", 0.3),
                               fault=job.get("fault"), core=core)
        dut.rst.value = 1           # before the first edge: Icarus starts undriven inputs at X
        Clock(dut.clk, 10, unit="ns").start()
        for name in inputs:
            getattr(dut, f"{name}__valid").value = 0
        dut.logits__ready.value = 0
        edge, settle = RisingEdge(dut.clk), ReadOnly()
        per_episode = []
        for episode in episodes:
            # Two cycles of synchronous reset; ``cycle`` is then the first cycle after it.
            await edge
            dut.rst.value = 1
            for name in inputs:
                getattr(dut, f"{name}__valid").value = 0
            await edge
            cycle += 2
            first_cycle = cycle
            tb.start(episode, cycle)
            first = True
            while not tb.done:
                await edge
                if first:
                    dut.rst.value = 0
                    first = False
                tb.drive()
                await settle
                tb.sample(cycle)
                cycle += 1
            per_episode.append({"name": episode.name, "cycles": cycle - first_cycle,
                                "final_w": tb.sb.final_w.tolist()})
        result.update(tb.finish(), passed=True, episodes=len(episodes), per_episode=per_episode)
    except Exception as e:  # the mismatch is the result; the test still fails below
        result["error"] = str(e) if isinstance(e, AssertionError) else traceback.format_exc()
    wall = time.perf_counter() - start
    result.update(cycles=cycle, wall_s=wall, cycles_per_s=cycle / wall if wall else 0.0)
    with open(job["result"], "w") as f:
        json.dump(result, f)
    assert result["passed"], result.get("error")
