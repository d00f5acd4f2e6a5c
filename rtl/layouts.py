"""Amaranth layouts built from the config's field lists, so that a packed word is defined once
(``model.config``) and read the same way by the RTL, the testbench and the host driver."""

from amaranth.hdl import signed, unsigned
from amaranth.lib import data, enum

from ..model.config import EVENT_SPIKE, EVENT_TICK, PHASE_ACCUMULATE, PHASE_CLEAR, PHASE_STEP, Field, LIFConfig

__all__ = ["EventKind", "Phase", "struct", "input_event", "output_event", "neuron_state", "weight_load",
           "state_write"]


class EventKind(enum.Enum, shape=1):
    SPIKE = EVENT_SPIKE
    TICK = EVENT_TICK


class Phase(enum.Enum, shape=2):
    CLEAR = PHASE_CLEAR
    ACCUMULATE = PHASE_ACCUMULATE
    STEP = PHASE_STEP


# Fields whose values are enumerations rather than plain integers.
_ENUM_FIELDS = {"kind": EventKind, "phase": Phase}


def struct(fields: tuple[Field, ...], shapes: dict | None = None) -> data.StructLayout:
    """A ``StructLayout`` with the fields in order, the first at the LSB (as ``pack_fields``).
    ``shapes`` gives a richer shape of the same width for some fields (an array of records)."""
    members = {}
    for f in fields:
        shape = (shapes or {}).get(f.name) or _ENUM_FIELDS.get(f.name) or \
            (signed(f.bits) if f.signed else unsigned(f.bits))
        members[f.name] = shape
    layout = data.StructLayout(members)
    assert layout.size == sum(f.bits for f in fields)
    return layout


def input_event(config: LIFConfig) -> data.StructLayout:
    return struct(config.input_event_fields)


def output_event(config: LIFConfig) -> data.StructLayout:
    return struct(config.output_event_fields)


def neuron_state(config: LIFConfig) -> data.StructLayout:
    return struct(config.neuron_state_fields)


def weight_load(config: LIFConfig) -> data.StructLayout:
    return struct(config.weight_load_fields)


def state_write(config: LIFConfig) -> data.StructLayout:
    return struct(config.state_write_fields,
                  {"data": data.ArrayLayout(neuron_state(config), config.lanes)})
