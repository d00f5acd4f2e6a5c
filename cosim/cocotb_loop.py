"""Accessors for DUT signals and the clocked run loop under cocotb (imported only inside a simulator)."""

import json
import os
import time
import traceback

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from .agents import Port
from .options import RunOptions, report_progress

__all__ = ["cocotb_port", "job_variants", "run_back_to_back", "run_job", "run_mutants", "select_mutant"]


def cocotb_port(dut, name: str) -> Port:
    """A :class:`~.agents.Port` for the flattened signal ``name`` of ``dut``, looked up on first use
    (a batch harness leaves the streams its player drives unreachable); reading an X or Z fails
    with the signal's name."""
    port = Port(name, None, None)

    def bind():
        handle = getattr(dut, name)
        if len(handle) == 1:
            def get():
                v = handle.value
                try:
                    return int(v)          # a scalar reads as Logic
                except ValueError:
                    when = cocotb.sim_time() if hasattr(cocotb, "sim_time") else "?"
                    raise AssertionError(f"{name} is {v!r} at {when}") from None
        else:
            def get():
                return handle.value.to_unsigned()

        def set(v):
            handle.value = v

        port.get, port.set = get, set

    def first_get():
        bind()
        return port.get()

    def first_set(v):
        bind()
        port.set(v)

    port.get, port.set = first_get, first_set
    return port


async def run_back_to_back(dut, tb, items, start, inputs, outputs, clock: dict) -> list[int]:
    """Starts the clock and runs ``items`` one after the other, each after two cycles of synchronous
    reset: ``start(tb, index, item, cycle)`` begins one, then ``tb.drive()`` after each rising edge
    and ``tb.sample(cycle)`` once the signals settle, until ``tb.done``. ``inputs``/``outputs``: the
    stream ports whose ``valid``/``ready`` start at 0 (``valid`` also during every reset).
    ``clock["cycle"]`` counts the cycles as they pass (it is there when a mismatch raises),
    ``clock["setup_s"]`` the seconds spent in ``start``. Returns the cycles each item took."""
    dut.rst.value = 1           # before the first edge: Icarus starts undriven inputs at X
    Clock(dut.clk, 10, unit="ns").start()
    for name in inputs:
        getattr(dut, f"{name}__valid").value = 0
    for name in outputs:
        getattr(dut, f"{name}__ready").value = 0
    edge, settle = RisingEdge(dut.clk), ReadOnly()
    clock.setdefault("cycle", 0)
    spans = []
    for index, item in enumerate(items):
        # Two cycles of synchronous reset; the cycle count is then the first cycle after it.
        await edge
        dut.rst.value = 1
        for name in inputs:
            getattr(dut, f"{name}__valid").value = 0
        await edge
        clock["cycle"] += 2
        first_cycle = clock["cycle"]
        began = time.perf_counter()
        start(tb, index, item, first_cycle)
        clock["setup_s"] = clock.get("setup_s", 0.0) + time.perf_counter() - began
        first = True
        while not tb.done:
            await edge
            if first:
                dut.rst.value = 0
                first = False
            tb.drive()
            await settle
            tb.sample(clock["cycle"])
            clock["cycle"] += 1
        spans.append(clock["cycle"] - first_cycle)
        report_progress(clock, index + 1)
    return spans


def _write_result(path: str, result: dict) -> None:
    """Writes ``result`` as JSON to ``path`` atomically: a reader sees the old result or the new."""
    with open(f"{path}.partial", "w") as f:
        json.dump(result, f)
    os.replace(f"{path}.partial", path)


def _read_job() -> dict:
    with open(os.environ["NEUROMOSAIC_JOB"]) as f:
        return json.load(f)


async def _attempt(body, job: dict) -> dict:
    """``await body(job, clock)`` as a result: passed, or the mismatch as ``error``; cycles and speed."""
    result = {"passed": False}
    clock = {"cycle": 0, "progress": job.get("progress")}
    start = time.perf_counter()
    try:
        result.update(await body(job, clock), passed=True)
    except Exception as e:  # the mismatch is the result
        result["error"] = str(e) if isinstance(e, AssertionError) else traceback.format_exc()
    wall = time.perf_counter() - start
    cycle = clock["cycle"]
    result.update(cycles=cycle, wall_s=wall, cycles_per_s=cycle / wall if wall else 0.0,
                  setup_s=clock.get("setup_s", 0.0))
    return result


async def run_job(body) -> None:
    """One cocotb test of a job: reads the job (JSON, from the file named by ``NEUROMOSAIC_JOB``),
    runs ``await body(job, clock)`` (a dict of results; ``clock`` as in :func:`run_back_to_back`),
    writes the result (passed, or the mismatch as ``error``; cycles and speed) as JSON to the path the
    job names, and fails the test on a mismatch."""
    job = _read_job()
    result = await _attempt(body, job)
    _write_result(job["result"], result)
    assert result["passed"], result.get("error")


async def run_mutants(body) -> None:
    """One cocotb test of a mutant sweep (``cosim.mutation``): the job's ``mutants`` (``mutsel``
    values, the first 0: the unmutated design) run one after the other in this one simulation, each
    as ``await body(job, clock)`` with the job's ``mutant`` set and ``resumed`` true after the first
    (the design starts from its reset, on a harness and memories an earlier run has used). After
    each, the result so far is written atomically, so a simulator that dies keeps the outcomes
    before it: ``passed`` (the unmutated design passed), ``outcomes`` (per mutant, as
    :func:`run_job`'s result) and ``complete``. The test fails when the unmutated design does."""
    job = _read_job()
    result = {"passed": False, "complete": False, "outcomes": {}}
    for k, mutant in enumerate(job["mutants"]):
        outcome = await _attempt(body, {**job, "mutant": mutant, "resumed": k > 0, "progress": None})
        result["outcomes"][str(mutant)] = outcome
        if k == 0:
            result["passed"] = mutant == 0 and outcome["passed"]
            if not result["passed"]:
                result["error"] = f"the unmutated design (first of the sweep) failed: {outcome.get('error')}"
                break
        _write_result(job["result"], result)
    result["complete"] = result["passed"]
    _write_result(job["result"], result)
    assert result["passed"], result.get("error")


def select_mutant(dut, job: dict) -> None:
    """With a mutant netlist (``cosim.mutation``): activates the job's ``mutant`` (0: none)."""
    if job.get("mutant") is not None:
        dut.mutsel.value = job["mutant"]


def job_variants(job: dict) -> list[tuple[dict, RunOptions]]:
    """A job's runs: (scenario arguments, options) of each of its ``variants`` (changes to the job's
    ``scenario`` and ``options``, run one after the other from the design's reset), or of the job
    alone. Variants run in the batch harness only."""
    variants = job.get("variants") or [{}]
    if len(variants) > 1 and not job.get("layout"):
        raise ValueError("variants run in the batch harness only; this job has no harness layout.")
    return [({**job["scenario"], **v.get("scenario", {})}, RunOptions(**{**job["options"], **v.get("options", {})}))
            for v in variants]
