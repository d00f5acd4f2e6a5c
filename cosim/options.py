"""How a cosimulation drives its design, and what it reports: defined once for every design.

:class:`RunOptions` travels into the simulator as the job's ``options`` (a dict only there);
:class:`CosimResult` comes back from it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field

from ..model.config import ConfigError

__all__ = ["RunOptions", "FULL_RATE", "CosimResult", "merge_job_results", "report_progress"]


@dataclass(frozen=True)
class RunOptions:
    """The stimulus pattern and checks of one run: the probability of an idle cycle on each input
    stream and of a not-ready cycle on each output stream, the seed of that pattern, a deliberately
    wrong model (``fault``: the run must then fail), waveforms (``waves``, cocotb runs) and
    ``per_cycle``: cocotb drives and samples every clock cycle from Python (the agents of
    ``cosim.agents``, for debugging) instead of through the design's batch harness
    (``cosim.harness``, Python woken once per batch; the default). The pattern of a seed differs
    between the two (Python's ``random`` there, the harness's LFSRs here); the checks are the same.
    ``optimise``: compile the Verilator model for speed (-O2: slower to build, faster to
    run; for long runs: ``--fast-model``) instead of for size (Verilator's -Os: short runs, the tests)."""
    idle: float = 0.2
    backpressure: float = 0.3
    seed: int = 0
    fault: str | None = None
    waves: bool = False
    per_cycle: bool = False
    optimise: bool = False

    def __post_init__(self):
        for name in ("idle", "backpressure"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and 0.0 <= v < 1.0):
                raise ConfigError(f"{name}={v} is not allowed; use a probability in [0, 1).")

    def replace(self, **changes) -> "RunOptions":
        return dataclasses.replace(self, **changes)

    def to_job(self) -> dict:
        return dataclasses.asdict(self)


FULL_RATE = RunOptions(idle=0.0, backpressure=0.0)     # every stream at full rate: throughput runs


@dataclass
class CosimResult:
    """What a run checked: its simulator, the cycles it ran and their speed, the transactions checked
    and the coverage bins hit (name -> count), where it was built, and the design's own figures
    (``details``: scenarios, episodes, timing, ...)."""
    sim: str
    cycles: int
    wall_s: float
    cycles_per_s: float
    checked: dict = field(default_factory=dict)
    coverage: dict = field(default_factory=dict)
    build_dir: str = ""
    details: dict = field(default_factory=dict)

    @classmethod
    def from_job_result(cls, sim: str, result: dict, build_dir) -> "CosimResult":
        """The result the cocotb test wrote (JSON) as a :class:`CosimResult`."""
        own = {f.name for f in dataclasses.fields(cls)} - {"sim", "build_dir", "details"}
        details = {k: v for k, v in result.items() if k not in own and k != "passed"}
        return cls(sim, result["cycles"], result["wall_s"], result["cycles_per_s"], result.get("checked", {}),
                   result.get("coverage", {}), str(build_dir), details)


def merge_job_results(results: list[dict]) -> dict:
    """The results of one run's shares (run at once, in order) as one: counts added, lists joined, the
    wall time the longest share's, the speed all cycles over it."""
    if len(results) == 1:
        return results[0]
    merged: dict = {}
    for r in results:
        for key, value in r.items():
            if key not in merged:
                merged[key] = value if not isinstance(value, dict) else dict(value)
            elif isinstance(value, bool) or key in ("wall_s", "cycles_per_s"):
                continue
            elif isinstance(value, (int, float)):
                merged[key] += value
            elif isinstance(value, list):
                merged[key] = merged[key] + value
            elif isinstance(value, dict):
                for k, v in value.items():
                    if isinstance(v, (int, float)) and not isinstance(v, bool):
                        merged[key][k] = merged[key].get(k, 0) + v
                    elif isinstance(v, list):
                        merged[key][k] = merged[key].get(k, []) + v
    merged["wall_s"] = max(r["wall_s"] for r in results)
    merged["cycles_per_s"] = merged["cycles"] / merged["wall_s"] if merged["wall_s"] else 0.0
    merged["shares"] = len(results)
    return merged


def report_progress(clock: dict, items: int) -> None:
    """Inside a simulator: ``items`` of the job are done by cycle ``clock["cycle"]``; written (atomically)
    to the job's ``progress`` file, which the launcher shows."""
    path = clock.get("progress")
    if path:
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump({"items": items, "cycles": clock.get("cycle", 0)}, f)
        os.replace(tmp, path)
