# amaranth: UnusedElaboratable=no
"""Impossible configurations are refused with one sentence naming the value and what is allowed."""

import pytest
from neuromosaic.model.config import ConfigError, Field, LIFConfig, pack_fields, unpack_fields
from neuromosaic.rtl.lif import LIFCore


@pytest.mark.parametrize("changes, words", [
    ({"neurons": 0}, ["neurons=0", "1.."]),
    ({"threshold": 40000}, ["membrane_bits=16", "threshold=40000", "32767"]),
    ({"membrane_bits": 8, "threshold": 300}, ["membrane_bits=8", "threshold=300", "127"]),
    ({"membrane_decay_shift": 16}, ["membrane_decay_shift=16", "0..15", "narrower"]),
    ({"refractory_decay_shift": 14}, ["refractory_decay_shift=14", "0..13"]),
    ({"lanes": 3}, ["lanes=3", "neurons=32"]),
    ({"weight_bits": 20}, ["current_bits=16", "weight_bits=20"]),
    ({"refractory_jump": 1 << 14}, ["refractory_bits=14", "16383"]),
    ({"threshold": 0}, ["threshold=0"]),
    ({"inputs": 2.5}, ["inputs=2.5", "not an integer"]),
])
def test_impossible_configs(changes, words):
    with pytest.raises(ConfigError) as e:
        LIFConfig(**changes)
    msg = str(e.value)
    assert msg.count("\n") == 0
    for w in words:
        assert w in msg


def test_elaboration_refuses_before_building():
    # The core cannot even be constructed from a bad config or bad weights.
    with pytest.raises(ConfigError):
        LIFCore(LIFConfig(neurons=4, inputs=2, lanes=2, membrane_decay_shift=99))
    c = LIFConfig(neurons=2, inputs=2, lanes=1)
    with pytest.raises(ConfigError, match=r"weight\[1\]\[0\]=200 does not fit weight_bits=8; allowed: -128..127"):
        LIFCore(c, [[0, 0], [200, 0]])
    with pytest.raises(ConfigError, match=r"shape \(1, 2\)"):
        LIFCore(c, [[0, 0]])


def test_pack_unpack_round_trip_and_layout():
    fields = (Field("a", 3, True), Field("b", 5), Field("c", 4, True))
    for a in range(-4, 4):
        for c in (-8, -1, 0, 7):
            values = {"a": a, "b": 17, "c": c}
            word = pack_fields(fields, values)
            assert unpack_fields(fields, word) == values
    # First field at the LSB, as Amaranth's StructLayout.
    assert pack_fields(fields, {"a": -1, "b": 0, "c": 0}) == 0b111
    assert pack_fields(fields, {"a": 0, "b": 1, "c": 0}) == 0b1000
    with pytest.raises(ConfigError, match="b=32 does not fit the 5-bit unsigned field"):
        pack_fields(fields, {"a": 0, "b": 32, "c": 0})


def test_rtl_layouts_follow_config_fields():
    from neuromosaic.rtl import layouts
    c = LIFConfig(neurons=8, inputs=5, lanes=2, current_bits=11, membrane_bits=13, refractory_bits=6, threshold=100,
                  refractory_jump=40)
    state = layouts.neuron_state(c)
    assert state.size == c.neuron_state_bits == 11 + 13 + 6
    assert [name for name, _ in state] == [f.name for f in c.neuron_state_fields]
    assert layouts.input_event(c).size == c.input_address_bits + 1


def test_config_dict_round_trip_and_unknown_field():
    c = LIFConfig(neurons=8, inputs=4, lanes=4)
    assert LIFConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ConfigError, match="unknown LIF config field 'neuronz'"):
        LIFConfig.from_dict({"neuronz": 3})


def test_weight_words_pack_each_block_and_load_its_address():
    """The weight memory's words (every block's lanes, lane 0 at the LSB) and their loads, against
    the field packing they must equal, on weights that reach both ends of the range."""
    import random
    c = LIFConfig(inputs=6, neurons=8, lanes=4, weight_bits=5)
    lo, hi = c.weight_range
    rng = random.Random(3)
    w = [[rng.choice([lo, hi, 0, -1, rng.randint(lo, hi)]) for _ in range(c.inputs)] for _ in range(c.neurons)]
    words = c.weight_words(w)
    assert words == [c.pack_weight_word([w[b * c.lanes + lane][pre] for lane in range(c.lanes)])
                     for pre in range(c.inputs) for b in range(c.blocks)]
    assert c.weight_load_words(w) == [pack_fields(c.weight_load_fields, {"address": a, "data": d})
                                      for a, d in enumerate(words)]
    w[5][2] = hi + 1
    with pytest.raises(ConfigError):
        c.weight_words(w)
