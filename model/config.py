"""The one configuration object read by the golden model, the RTL generator, the testbenches and
the host driver.

Every width, decay, threshold and packed-word layout of the quantised LIF core is defined here and
nowhere else: the Amaranth layouts (``rtl``), the cocotb packing (``cosim``) and the integer model
(``model.lif``) are all derived from a :class:`LIFConfig`.

Integer formulation (seed 001, "Memory Organization for Energy-Efficient Learning and Inference in
Digital Neuromorphic Accelerators"; see ``model/lif.py`` for the order of operations)::

    decay_s(x)   = x - (x >> s)            # alpha = 1 - 2**-s, arithmetic shift (floor)
    I_i[n]       = sat_I(decay_a(I_i[n-1]) + sum_{events j of step n, in stream order} W_ij)
    V_i[n]       = sat_V(decay_b(V_i[n-1]) + I_i[n])
    U_i[n]       = V_i[n] - R_i[n-1]
    S_i[n]       = U_i[n] >= theta
    R_i[n]       = sat_R(decay_g(R_i[n-1]) + delta * S_i[n])

I_i = sum_j W_ij Q_j and V_i = sum_j W_ij P_j are the seed's input and membrane traces summed
through the weights, which is what makes the core event-driven (one weight read and one add per
synaptic event); R_i is the seed's refractory trace already scaled by delta.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from dataclasses import dataclass

__all__ = ["ConfigError", "LIFConfig", "Field", "pack_fields", "unpack_fields", "signed_range",
           "unsigned_range", "bits_for"]


class ConfigError(ValueError):
    """An impossible configuration or a value that does not fit it. The message is one sentence
    naming the bad value and what is allowed."""


def bits_for(count: int) -> int:
    """Bits of an unsigned index that takes ``count`` distinct values (at least 1)."""
    return max(1, math.ceil(math.log2(count))) if count > 1 else 1


def signed_range(bits: int) -> tuple[int, int]:
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def unsigned_range(bits: int) -> tuple[int, int]:
    return 0, (1 << bits) - 1


@dataclass(frozen=True)
class Field:
    """One field of a packed word, least significant field first."""
    name: str
    bits: int
    signed: bool = False


def pack_fields(fields: tuple[Field, ...], values: dict) -> int:
    """Packs ``values`` into one unsigned integer, first field at the LSB (the Amaranth
    ``StructLayout`` order)."""
    word, offset = 0, 0
    for f in fields:
        v = int(values[f.name])
        lo, hi = signed_range(f.bits) if f.signed else unsigned_range(f.bits)
        if not lo <= v <= hi:
            raise ConfigError(f"{f.name}={v} does not fit the {f.bits}-bit "
                              f"{'signed' if f.signed else 'unsigned'} field (allowed {lo}..{hi}).")
        word |= (v & ((1 << f.bits) - 1)) << offset
        offset += f.bits
    return word


def unpack_fields(fields: tuple[Field, ...], word: int) -> dict:
    out, offset = {}, 0
    for f in fields:
        v = (word >> offset) & ((1 << f.bits) - 1)
        if f.signed and v >> (f.bits - 1):
            v -= 1 << f.bits
        out[f.name] = v
        offset += f.bits
    return out


# Event kinds on the core's input and output streams. The order is the encoding.
EVENT_SPIKE = 0
EVENT_TICK = 1          # end of the current timestep

# What a state write of the core was for (its verification port reports it). The order is the encoding.
PHASE_CLEAR = 0         # zeroing the state memory after reset
PHASE_ACCUMULATE = 1    # an input event added its weights to the currents
PHASE_STEP = 2          # the timestep update of a word of neurons

# Cycle contract of the LIF core: an input token accepted in cycle c has the state word of block b
# written in cycle c + WRITE_LATENCY + b (memory read, pipeline register, compute and write).
WRITE_LATENCY = 2

MAX_STATE_BITS = 32     # keeps every intermediate exact in int64 and in the float twin (float64)


def _check_int(name, value, lo, hi, why=""):
    try:
        value = operator.index(value)
    except TypeError:
        raise ConfigError(f"{name}={value!r} is not an integer; allowed: integers {lo}..{hi}.") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name}={value} is out of range; allowed: {lo}..{hi}{why}.")
    return value


@dataclass(frozen=True)
class LIFConfig:
    """A quantised LIF core: ``neurons`` postsynaptic LIF neurons fed by ``inputs`` presynaptic
    channels through a dense signed weight matrix, updated ``lanes`` neurons per clock cycle.

    Widths are two's complement for ``weight``, ``current`` and ``membrane``, unsigned for
    ``refractory``. Every state update saturates to its width; no value ever wraps.
    """
    neurons: int = 32
    inputs: int = 64
    lanes: int = 2
    weight_bits: int = 8
    current_bits: int = 16
    membrane_bits: int = 16
    refractory_bits: int = 14
    current_decay_shift: int = 2       # alpha = 1 - 2**-2
    membrane_decay_shift: int = 2      # beta  = 1 - 2**-2
    refractory_decay_shift: int = 3    # gamma = 1 - 2**-3
    threshold: int = 2048
    refractory_jump: int = 4096        # delta: added to R on each output spike

    def __post_init__(self):
        _check_int("neurons", self.neurons, 1, 1 << 16)
        _check_int("inputs", self.inputs, 1, 1 << 16)
        _check_int("lanes", self.lanes, 1, 64)
        if self.neurons % self.lanes:
            raise ConfigError(f"lanes={self.lanes} does not divide neurons={self.neurons}; "
                              f"allowed: a divisor of the neuron count.")
        _check_int("weight_bits", self.weight_bits, 2, MAX_STATE_BITS)
        _check_int("current_bits", self.current_bits, 2, MAX_STATE_BITS)
        _check_int("membrane_bits", self.membrane_bits, 2, MAX_STATE_BITS)
        _check_int("refractory_bits", self.refractory_bits, 1, MAX_STATE_BITS)
        if self.weight_bits > self.current_bits:
            raise ConfigError(f"current_bits={self.current_bits} is too small for weight_bits="
                              f"{self.weight_bits}; allowed: current_bits >= weight_bits.")
        for name, width in (("current_decay_shift", self.current_bits),
                            ("membrane_decay_shift", self.membrane_bits),
                            ("refractory_decay_shift", self.refractory_bits)):
            _check_int(name, getattr(self, name), 0, width - 1,
                       f" (a shift must be narrower than the {width}-bit state it decays)")
        v_max = signed_range(self.membrane_bits)[1]
        if isinstance(self.threshold, int) and self.threshold > v_max:
            raise ConfigError(f"membrane_bits={self.membrane_bits} is too small for threshold="
                              f"{self.threshold}; the largest threshold it holds is {v_max}.")
        _check_int("threshold", self.threshold, 1, v_max)
        r_max = unsigned_range(self.refractory_bits)[1]
        if isinstance(self.refractory_jump, int) and self.refractory_jump > r_max:
            raise ConfigError(f"refractory_bits={self.refractory_bits} is too small for refractory_jump="
                              f"{self.refractory_jump}; the largest jump it holds is {r_max}.")
        _check_int("refractory_jump", self.refractory_jump, 0, r_max)

    # -- derived sizes ---------------------------------------------------------------------------
    @property
    def blocks(self) -> int:
        """Words of neuron state: each holds ``lanes`` neurons updated in the same cycle."""
        return self.neurons // self.lanes

    @property
    def weight_depth(self) -> int:
        return self.inputs * self.blocks

    @property
    def input_address_bits(self) -> int:
        return bits_for(self.inputs)

    @property
    def neuron_address_bits(self) -> int:
        return bits_for(self.neurons)

    @property
    def block_address_bits(self) -> int:
        return bits_for(self.blocks)

    @property
    def weight_address_bits(self) -> int:
        return bits_for(self.weight_depth)

    @property
    def weight_range(self) -> tuple[int, int]:
        return signed_range(self.weight_bits)

    @property
    def current_range(self) -> tuple[int, int]:
        return signed_range(self.current_bits)

    @property
    def membrane_range(self) -> tuple[int, int]:
        return signed_range(self.membrane_bits)

    @property
    def refractory_range(self) -> tuple[int, int]:
        return unsigned_range(self.refractory_bits)

    # -- packed words (least significant field first; the Amaranth layouts are built from these) --
    @property
    def input_event_fields(self) -> tuple[Field, ...]:
        return (Field("address", self.input_address_bits), Field("kind", 1))

    @property
    def output_event_fields(self) -> tuple[Field, ...]:
        return (Field("address", self.neuron_address_bits), Field("kind", 1))

    @property
    def neuron_state_fields(self) -> tuple[Field, ...]:
        return (Field("current", self.current_bits, True),
                Field("membrane", self.membrane_bits, True),
                Field("refractory", self.refractory_bits, False))

    @property
    def neuron_state_bits(self) -> int:
        return sum(f.bits for f in self.neuron_state_fields)

    @property
    def state_write_fields(self) -> tuple[Field, ...]:
        """The core's verification port: what a state write was for (a PHASE_*), the block, and the
        ``lanes`` records of ``neuron_state_fields`` (lane 0 at the LSB)."""
        return (Field("phase", 2), Field("block", self.block_address_bits),
                Field("data", self.lanes * self.neuron_state_bits))

    @property
    def weight_word_bits(self) -> int:
        return self.lanes * self.weight_bits

    @property
    def weight_load_fields(self) -> tuple[Field, ...]:
        return (Field("address", self.weight_address_bits), Field("data", self.weight_word_bits))

    # -- weight memory organisation (dense): word address and lane of synapse (post, pre) ------
    def weight_word_address(self, pre: int, block: int) -> int:
        """Address of the word holding the weights from input ``pre`` to neurons
        ``block*lanes .. block*lanes+lanes-1`` (lane l = neuron block*lanes+l); ints or the RTL's
        signals."""
        return pre * self.blocks + block

    def pack_weight_word(self, weights_of_block) -> int:
        """Packs ``lanes`` signed weights, lane 0 at the LSB."""
        fields = tuple(Field(f"w{l}", self.weight_bits, True) for l in range(self.lanes))
        return pack_fields(fields, {f"w{l}": int(w) for l, w in enumerate(weights_of_block)})

    def weight_words(self, weights) -> list[int]:
        """The weight memory's initial contents for a ``[neurons, inputs]`` integer matrix."""
        w = [[int(x) for x in row] for row in _as_rows(weights)]
        self.check_weights(w)
        mask = (1 << self.weight_bits) - 1
        words = []
        for pre in range(self.inputs):      # pack_weight_word of every block, the checked weights masked
            column = [row[pre] & mask for row in w]
            for block in range(self.blocks):
                word = 0
                for lane, x in enumerate(column[block * self.lanes:(block + 1) * self.lanes]):
                    word |= x << (lane * self.weight_bits)
                words.append(word)
        return words

    def weight_load_words(self, weights) -> list[int]:
        """The packed ``weight_load_fields`` loads that write ``weights`` into the weight memory
        (the address at the LSB; every address and word fits its field by construction)."""
        shift = self.weight_address_bits
        return [a | (d << shift) for a, d in enumerate(self.weight_words(weights))]

    def check_weights(self, weights) -> None:
        rows = _as_rows(weights)
        if len(rows) != self.neurons or any(len(r) != self.inputs for r in rows):
            shape = (len(rows), len(rows[0]) if rows else 0)
            raise ConfigError(f"weights of shape {shape} do not match the core; allowed: "
                              f"[neurons={self.neurons}, inputs={self.inputs}].")
        lo, hi = self.weight_range
        for i, r in enumerate(rows):
            for j, x in enumerate(r):
                if not lo <= int(x) <= hi:
                    raise ConfigError(f"weight[{i}][{j}]={int(x)} does not fit weight_bits="
                                      f"{self.weight_bits}; allowed: {lo}..{hi}.")

    # -- (de)serialisation, for checkpoints, testbenches and the CLI ------------------------------
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "LIFConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown LIF config field {unknown[0]!r}; allowed: {', '.join(sorted(known))}.")
        return cls(**d)

    def replace(self, **changes) -> "LIFConfig":
        return dataclasses.replace(self, **changes)


def _as_rows(weights):
    if hasattr(weights, "tolist"):
        weights = weights.tolist()
    return weights


# The seed network's recurrent layer size (seed 000: 256 LIF neurons) with 256 input channels.
SEED_LIF = LIFConfig(neurons=256, inputs=256, lanes=2)
