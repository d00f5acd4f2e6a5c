"""The integer operations of the model (``model.lif.saturate``, ``model.lif.decay``) as Amaranth
expressions, shared by the cores."""

from amaranth.hdl import Mux

__all__ = ["saturate", "decay"]


def saturate(value, lo: int, hi: int):
    return Mux(value > hi, hi, Mux(value < lo, lo, value))


def decay(value, shift: int):
    """``value - (value >> shift)``: the shift-and-subtract leak with an arithmetic (floor) shift."""
    return value - (value >> shift)
