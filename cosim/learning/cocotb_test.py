"""cocotb test module of the learning core or engine and of the Mosaic (runs inside Verilator or Icarus;
see ``cosim.learning`` and ``cosim.mosaic``).

The job (configs, DUT, episodes, fault, idle and backpressure rates) comes as JSON from the file named by
``NEUROMOSAIC_JOB``; the result (pass/fail, the mismatch, counts, coverage, cycles) goes back as JSON
to the path the job names.
"""

import cocotb
import torch
from neuromosaic.cosim.batch_loop import run_batched
from neuromosaic.cosim.cocotb_loop import cocotb_port, run_back_to_back, run_job, run_mutants, select_mutant
from neuromosaic.cosim.learning.testbench import LearningTestbench, stream_inputs
from neuromosaic.cosim.options import RunOptions
from neuromosaic.model.episode import ChipEpisode, random_episode, random_network_episode
from neuromosaic.model.learning import LearningConfig
from neuromosaic.model.snn import SRNNConfig
from neuromosaic.model.tiles import MosaicConfig


def _episodes_body(dut):
    """Whole few-shot episodes: every hidden spike, logit and weight write (with its cycle) against the
    model; a job with ``variants`` (other options and episode seeds) runs them one after the other."""
    async def body(job, clock):
        select_mutant(dut, job)
        variants = job.get("variants") or [{}]
        finished = [await _episodes(dut, {**job, **v, "options": {**job["options"], **v.get("options", {})}}, clock)
                    for v in variants]
        return finished[0] if len(finished) == 1 else {"variants": finished}
    return body


async def _episodes(dut, job, clock):
    mosaic = MosaicConfig.from_dict(job["mosaic"]) if job.get("mosaic") else None   # a Mosaic top
    config = mosaic.network if mosaic else SRNNConfig.from_dict(job["config"])
    cfg = LearningConfig(**job["learning"])
    core = job.get("core", True)
    if job.get("episodes_file"):
        episodes = [ChipEpisode.from_file(e) for e in torch.load(job["episodes_file"])]
    else:
        make = random_network_episode if core else random_episode
        episodes = [make(config, cfg, job["first_seed"] + i) for i in range(job["episodes"])]
    options = RunOptions(**job["options"])
    check = job.get("scoreboard", True)
    tb = LearningTestbench(config, cfg, lambda n: cocotb_port(dut, n), options,
                           core=core, synapses=job.get("synapses"),
                           core_synapses=job.get("core_synapses"),
                           core_loads=mosaic.core_load_words if mosaic else None, scoreboard=check)

    def start(tb, index, episode, cycle):
        tb.start(episode, cycle)

    if job.get("layout"):
        spans = await run_batched(dut, tb, episodes, start, job["layout"], options, clock,
                                  idle_inputs=("table",) if mosaic else (), check=check,
                                  item_cycles=job.get("item_cycles"))
    else:
        inputs = stream_inputs(core) + (("table",) if mosaic else ())
        spans = await run_back_to_back(dut, tb, episodes, start, inputs, ("logits",), clock)
    return {**(tb.finish() if check else {}), "episodes": len(episodes), "item_cycles": spans}


@cocotb.test()
async def learning_episodes(dut):
    """Whole few-shot episodes: every hidden spike, logit and weight write (with its cycle) against the model."""
    await run_job(_episodes_body(dut))


@cocotb.test()
async def learning_mutants(dut):
    """The episodes' scoreboard once per mutant of a mutant netlist, in one simulation."""
    await run_mutants(_episodes_body(dut))
