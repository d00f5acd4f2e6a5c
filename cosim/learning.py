"""Cosimulation of the learning engine: generated Verilog under Verilator or Icarus through cocotb,
whole few-shot episodes checked against the golden model (``cosim/learning_bench.py``)."""

from __future__ import annotations

import dataclasses

import torch

from ..model.learning import LearningConfig
from ..model.snn import SRNNConfig
from ..rtl.learning import LearningEngine
from .runner import CocotbRun, CosimError, generate_verilog

__all__ = ["learning_run", "run_learning_cosim"]

TEST_MODULE = "neuromosaic.cosim.learning_tb"


def learning_run(sim: str, config: SRNNConfig, cfg: LearningConfig, *, waves: bool = False) -> CocotbRun:
    """Builds (or reuses) the simulator model of a learning engine for these configs."""
    return CocotbRun(sim, generate_verilog(LearningEngine(config, cfg), "learning_engine"), "learning_engine",
                     waves=waves)


def run_learning_cosim(sim: str, config: SRNNConfig, cfg: LearningConfig = LearningConfig(), *, episodes: int = 20,
                       first_seed: int = 0, fault: str | None = None, idle: float = 0.2, backpressure: float = 0.3,
                       rng_seed: int = 0, waves: bool = False, episode_list=None, name: str = "run") -> dict:
    """Runs ``episodes`` random episodes (seeds ``first_seed..``), or the given ``episode_list``, and
    returns the summary. Raises :class:`CosimError` on any mismatch or hang."""
    if episode_list is None and episodes < 1:
        raise CosimError(f"episodes={episodes}: at least 1 is needed.")
    run = learning_run(sim, config, cfg, waves=waves)
    job = {"config": config.to_dict(), "learning": dataclasses.asdict(cfg), "episodes": episodes,
           "first_seed": first_seed, "fault": fault, "idle": idle, "backpressure": backpressure,
           "rng_seed": rng_seed}
    if episode_list is not None:
        path = run.build_dir / name / "episodes.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save([dataclasses.asdict(e) for e in episode_list], path)
        job["episodes_file"] = str(path)
    result = run.test(TEST_MODULE, "learning_episodes", job, name)
    result.update(sim=sim, build_dir=str(run.build_dir))
    return result
