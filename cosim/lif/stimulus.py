"""Stimulus for the LIF core: random scenarios over seeds and directed corner cases.

A scenario is a weight matrix and a token stream ``[(kind, address), ...]``: input spike events of a
timestep in any order (repeats allowed), each step closed by a TICK.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch

from ...model import synapse as synapse_model
from ...model.config import EVENT_SPIKE, EVENT_TICK, ConfigError, LIFConfig, signed_range

__all__ = ["Scenario", "random_scenario", "corner_scenarios", "scenarios", "saturated_scenario", "required_coverage",
           "synapse_memory", "synapse_scenarios", "synapse_pass_scenario"]


@dataclass
class Scenario:
    name: str
    weights: torch.Tensor            # [neurons, inputs] int64
    tokens: list[tuple[int, int]]
    # A core whose weights live in a synapse memory: the memory as the scenario starts
    # (before ``loads``), and the weight loads it begins with, ``(post, pre, value)``, through which
    # the memory comes to hold ``weights``.
    memory: object = None
    loads: list = field(default_factory=list)

    @property
    def steps(self) -> int:
        return sum(1 for k, _ in self.tokens if k == EVENT_TICK)

    @property
    def events(self) -> int:
        return sum(1 for k, _ in self.tokens if k == EVENT_SPIKE)


def _step_tokens(events) -> list[tuple[int, int]]:
    return [(EVENT_SPIKE, int(j)) for j in events] + [(EVENT_TICK, 0)]


def random_scenario(config: LIFConfig, seed: int, steps: int) -> Scenario:
    """Random weights with a random excitatory bias and a random input rate, events of each step
    shuffled, occasional repeated events: the distributions vary with the seed so that a regression
    over seeds sees quiet, busy and saturating networks."""
    g = torch.Generator().manual_seed(seed)
    lo, hi = config.weight_range
    bias = int(torch.randint(0, hi // 2 + 1, (1,), generator=g))
    weights = (torch.randint(lo, hi + 1, (config.neurons, config.inputs), generator=g) + bias).clamp(lo, hi)
    rate = float(torch.empty(1).uniform_(0.02, 0.35, generator=g))
    tokens = []
    for _ in range(steps):
        active = torch.nonzero(torch.rand(config.inputs, generator=g) < rate).flatten()
        repeats = active[torch.rand(len(active), generator=g) < 0.1]
        events = torch.cat([active, repeats])
        tokens += _step_tokens(events[torch.randperm(len(events), generator=g)].tolist())
    return Scenario(f"random-seed{seed}", weights, tokens)


def corner_scenarios(config: LIFConfig) -> list[Scenario]:
    c = config
    lo, hi = c.weight_range
    shape = (c.neurons, c.inputs)
    every = list(range(c.inputs))
    # Enough repeats of every input that one step's events overflow the current on their own.
    repeats = c.current_range[1] // (c.inputs * hi) + 2
    out = [
        # Every input, repeatedly, with the largest weights: current, membrane and refractory all
        # reach their upper bounds; then the same with the most negative weights.
        Scenario("saturate-high", torch.full(shape, hi), _step_tokens(every * repeats) * 12),
        Scenario("saturate-low", torch.full(shape, lo), _step_tokens(every * repeats) * 12),
        # Some activity, then steps with no input at all: pure decay.
        Scenario("silent", torch.full(shape, hi), _step_tokens(every) * 2 + _step_tokens([]) * 10),
    ]
    # From rest, q events of input 0 (weight hi) and one of input 1 (weight r + d) give the potential
    # threshold + d in the first step: neurons with d = -1, 0, +1 sit just below, at and above it.
    q, r = divmod(c.threshold, hi)
    if c.inputs >= 2 and c.threshold + 1 <= c.current_range[1]:
        w = torch.zeros(shape, dtype=torch.int64)
        w[:, 0] = hi
        w[:, 1] = torch.tensor([r + (n % 3) - 1 for n in range(c.neurons)]).clamp(lo, hi)
        out.append(Scenario("threshold", w, _step_tokens([0] * q + [1]) + _step_tokens([]) * 2))
    return out


def saturated_scenario(config: LIFConfig, steps: int, events_per_step: int, seed: int = 0) -> Scenario:
    """A continuous stream of spike events (random inputs) with a TICK every ``events_per_step``:
    the load under which the core's synaptic-operation throughput is measured."""
    base = random_scenario(config, seed, 0)
    g = torch.Generator().manual_seed(seed)
    tokens = []
    for _ in range(steps):
        tokens += _step_tokens(torch.randint(0, config.inputs, (events_per_step,), generator=g).tolist())
    return Scenario(f"saturated-{events_per_step}", base.weights, tokens)


def scenarios(config: LIFConfig, seeds: int, steps: int, corners: bool = True, first_seed: int = 0) -> list[Scenario]:
    """``seeds`` random scenarios (seeds ``first_seed``..) of ``steps`` steps, then the corner cases."""
    out = [random_scenario(config, s, steps) for s in range(first_seed, first_seed + seeds)]
    return out + (corner_scenarios(config) if corners else [])


def required_coverage(config: LIFConfig) -> list[str]:
    """The corner cases a run of :func:`scenarios` with corners must have hit."""
    need = ["silent_step", "every_input_step", "spikes", "current_saturated_high", "current_saturated_low",
            "membrane_saturated_high", "membrane_saturated_low", "refractory_saturated_high"]
    if config.inputs >= 2 and config.threshold + 1 <= config.current_range[1]:
        need.append("threshold_exact")
    return need


# -- cores whose weights live in a synapse memory ------------------------------------------
def synapse_memory(config: LIFConfig, organisation: str, *, density: float = 0.5, seed: int = 0,
                   image=None, kernel: int = 3, bitmap_word: int = 4):
    """A random memory of ``organisation`` for the core ``config``: a ``[neurons, inputs]`` matrix
    (the weights of :func:`random_scenario`, biased excitatory so that sparse layers still fire) of
    which a fraction ``density`` is kept, or for the
    functional organisations a ``kernel`` x ``kernel`` convolution on ``image=(H, W)`` (the core's
    inputs and neurons are then ``Cin*H*W`` and ``Cout*H*W``) with a fraction ``density`` of
    non-zero kernel weights."""
    org = synapse_model.organisation_name(organisation)
    g = torch.Generator().manual_seed(1000 + seed)
    weights = random_scenario(config, seed, 0).weights
    if org in synapse_model.FUNCTIONAL_ORGANISATIONS:
        if image is None:
            raise ConfigError(f"the {org} organisation is a convolution: give its image=(H, W).")
        h, w = image
        if config.inputs % (h * w) or config.neurons % (h * w):
            raise ConfigError(f"image {h}x{w} does not tile the core's {config.inputs} inputs and {config.neurons} "
                              f"neurons; allowed: an image whose pixel count divides both.")
        lo, hi = config.weight_range
        shape = (config.neurons // (h * w), config.inputs // (h * w), kernel, kernel)
        k = torch.randint(lo, hi + 1, shape, generator=g) + hi // 3
        k = k.clamp(lo, hi) * (torch.rand(shape, generator=g) < density)
        return synapse_model.make_memory(org, k, config.weight_bits, image=tuple(image))
    lo, hi = config.weight_range
    weights = (weights + hi // 3).clamp(lo, hi) * (torch.rand(weights.shape, generator=g) < density)
    options = {"bitmap_word": bitmap_word} if org == "bitmap" else {}
    return synapse_model.make_memory(org, weights, config.weight_bits, **options)


def _reload(memory, seed: int) -> list[tuple[int, int, int]]:
    """New random values (``(post, pre, value)``, zeros possible) for every stored synapse of
    ``memory``: every stored kernel word of a convolution (through one pair it connects), every
    synapse of a matrix's structure."""
    g = torch.Generator().manual_seed(2000 + seed)
    lo, hi = signed_range(memory.weight_bits)

    def value():
        return int(torch.randint(lo, hi + 1, (1,), generator=g))

    if not hasattr(memory, "kernel_shape"):
        return [(post, pre, value()) for post, pre in torch.nonzero(memory.structure()).tolist()]
    h, w = memory.image
    _, _, kh, kw = memory.kernel_shape
    entries = torch.nonzero(memory.kernel_structure()).tolist()
    loads = []
    for co, ci, ky, kx in entries:
        y, x = max(0, ky - kh // 2), max(0, kx - kw // 2)       # a pixel whose target is in the image
        loads.append(((co * h + y - ky + kh // 2) * w + x - kx + kw // 2, (ci * h + y) * w + x, value()))
    return loads


def synapse_scenarios(config: LIFConfig, organisation: str, seeds: int, steps: int, **memory_args) -> list[Scenario]:
    """Random scenarios for a core built with ``synapse_memory(config, organisation, **memory_args)``:
    the first runs on the memory as built; each later one first loads new values into every stored
    synapse through the core's weight port (the memory keeps them across the reset)."""
    memory = synapse_memory(config, organisation, **memory_args)
    out = []
    for s in range(seeds):
        start = copy.deepcopy(memory)
        loads = _reload(memory, s) if s else []
        for post, pre, value in loads:
            memory.update(post, pre, value)
        memory.reset_counts()
        out.append(Scenario(f"{memory.name}-seed{s}", memory.matrix(), random_scenario(config, s, steps).tokens,
                            start, loads))
    return out


def synapse_pass_scenario(config: LIFConfig, organisation: str, **memory_args) -> Scenario:
    """One forward pass through a synapse memory: every input sends one event, in order, then a TICK
    (the load under which ``bench memory`` measures the core)."""
    memory = synapse_memory(config, organisation, **memory_args)
    return Scenario(f"{memory.name}-pass", memory.matrix(), _step_tokens(range(config.inputs)), memory)
