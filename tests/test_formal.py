"""Bounded proofs with SymbiYosys (yowasp-sby, yices): the router's valid/ready rules, no FIFO
overflow, no event lost or duplicated; the host link's frame engine executes no bad frame and
answers each frame once; wrong properties are refuted and the covers are reached."""

import pytest
from neuromosaic.cosim.board.formal import FAULTS, prove_link
from neuromosaic.cosim.router.formal import prove_router

pytestmark = pytest.mark.formal

# (in-ports, out-ports, sources, FIFO depth, bound): a mesh router, a tile's injector and merger, and a
# two-port router with two-entry FIFOs (the FIFO wrap and a multicast head served over several cycles).
ROUTER_INDUCTION = 12   # cycles of the k-induction
LINK_BOUND = 20     # cycles: a frame with a payload, its ACK, and the next frame begun
CONFIGS = [("NESW", "NESW", 2, 1, 12), ("L", "NESW", 2, 2, 12), ("NESW", "L", 2, 2, 12), ("NE", "NS", 2, 2, 16)]


@pytest.mark.parametrize("ins, outs, sources, fifo, bound", CONFIGS)
def test_router_properties_hold_to_the_bound(ins, outs, sources, fifo, bound, tmp_path):
    r = prove_router(ins, outs, sources=sources, fifo_depth=fifo, depth=bound, workdir=tmp_path)
    assert r["passed"], r["log"][-2000:]
    assert "DONE (PASS" in r["log"]


@pytest.mark.parametrize("fault, where", [("overflow", "no FIFO overflow"), ("forget-output", "nothing lost")])
def test_wrong_properties_are_refuted_with_a_counterexample(fault, where, tmp_path):
    r = prove_router("NE", "NS", sources=2, fifo_depth=2, depth=16, workdir=tmp_path, fault=fault)
    assert not r["passed"], where
    assert "counterexample trace" in r["log"] and "DONE (FAIL" in r["log"]


def test_cover_shows_the_assumptions_admit_traffic(tmp_path):
    r = prove_router("NE", "NS", sources=2, fifo_depth=2, depth=16, workdir=tmp_path, mode="cover")
    assert r["passed"] and "reached cover statement" in r["log"]


def test_link_frame_engine_properties_hold_to_the_bound(tmp_path):
    """No frame with a bad CRC, type or length (or a repeat) executes; one ACK or NAK per frame, each
    NAK naming its reason."""
    r = prove_link(depth=LINK_BOUND, workdir=tmp_path)
    assert r["passed"] and "DONE (PASS" in r["log"], r["log"][-2000:]


@pytest.mark.parametrize("fault", FAULTS)
def test_wrong_link_properties_are_refuted(fault, tmp_path):
    r = prove_link(depth=LINK_BOUND, workdir=tmp_path, fault=fault)
    assert not r["passed"] and "counterexample trace" in r["log"], fault


def test_link_cover_reaches_an_executed_item_a_repeat_and_a_crc_nak(tmp_path):
    r = prove_link(depth=24, workdir=tmp_path, mode="cover")
    assert r["passed"] and r["log"].count("reached cover statement") == 3


@pytest.mark.parametrize("ins, outs, sources, fifo", [c[:4] for c in CONFIGS])
def test_router_handshake_and_fifo_bounds_are_proved_unbounded(ins, outs, sources, fifo, tmp_path):
    """k-induction: the valid/ready rule and the FIFO bound hold in every reachable state."""
    r = prove_router(ins, outs, sources=sources, fifo_depth=fifo, depth=ROUTER_INDUCTION, workdir=tmp_path,
                     mode="prove", checks=("handshake", "overflow"))
    assert r["status"] == "pass", r["log"][-2000:]


def test_router_conservation_is_bounded_only(tmp_path):
    """Conservation is not ROUTER_INDUCTION-inductive: the induction step starts from a state no run
    reaches (the harness's counts out of step with the FIFOs); it is proved to the bound only."""
    r = prove_router("NE", "NS", sources=2, fifo_depth=2, depth=ROUTER_INDUCTION, workdir=tmp_path, mode="prove",
                     checks=("conservation",))
    assert r["status"] == "unproved"
