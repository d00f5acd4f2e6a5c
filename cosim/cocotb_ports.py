"""Accessors for DUT signals under cocotb (imported only inside a simulator)."""

import cocotb

from .harness import Port

__all__ = ["cocotb_port"]


def cocotb_port(dut, name: str) -> Port:
    """A :class:`~.harness.Port` for the flattened signal ``name`` of ``dut``; reading an X or Z
    fails with the signal's name."""
    handle = getattr(dut, name)
    if len(handle) == 1:
        def get():
            v = handle.value
            try:
                return int(v)          # a scalar reads as Logic
            except ValueError:
                raise AssertionError(f"{name} is {v!r} at {cocotb.sim_time() if hasattr(cocotb, 'sim_time') else '?'}") from None
    else:
        def get():
            return handle.value.to_unsigned()

    def set(v):
        handle.value = v

    return Port(name, get, set)
