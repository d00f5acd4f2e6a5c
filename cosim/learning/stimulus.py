"""Stimulus of the learning designs beyond the episodes themselves (``model.episode``): the synapse
memories that a learning core's readout or LIF core keeps its weights in."""

from __future__ import annotations

import torch

from ...model import synapse as synapse_model
from ...model.config import ConfigError
from ...model.snn import SRNNConfig
from ..lif.stimulus import synapse_memory

__all__ = ["readout_memory", "core_memory"]


def readout_memory(config: SRNNConfig, synapses) -> synapse_model.SynapseMemory | None:
    """The model synapse memory a ``LearningEngine`` keeps its readout in, from a testbench job's
    ``synapses``: None (none), an organisation name, or ``{"organisation", "density" (of stored
    synapses, default 1), "seed", "bitmap_word"}``. Its structure is random at that density; its
    initial weights are random non-zero values (each episode loads its own)."""
    if synapses is None or isinstance(synapses, synapse_model.SynapseMemory):
        return synapses
    spec = {"organisation": synapses} if isinstance(synapses, str) else dict(synapses)
    org = synapse_model.organisation_name(spec.pop("organisation"))
    density, seed = float(spec.pop("density", 1.0)), int(spec.pop("seed", 0))
    bitmap_word = int(spec.pop("bitmap_word", 8))
    if spec:
        raise ConfigError(f"readout synapses {sorted(spec)} are unknown; allowed: organisation, density, seed, "
                          "bitmap_word.")
    if not 0.0 < density <= 1.0:
        raise ConfigError(f"readout density {density} is not allowed; allowed: 0 < density <= 1.")
    K, N = config.outputs, config.neurons
    g = torch.Generator().manual_seed(3000 + seed)
    lo, hi = config.readout_weight_range
    values = torch.randint(1, hi + 1, (K, N), generator=g) * (1 - 2 * torch.randint(0, 2, (K, N), generator=g))
    stored = torch.rand(K, N, generator=g) < density
    w = values.clamp(lo, hi) * (stored if org != "dense" else torch.ones_like(stored))
    return synapse_model.make_memory(org, w, config.readout_weight_bits,
                                     **({"bitmap_word": bitmap_word} if org == "bitmap" else {}))


def core_memory(config: SRNNConfig, synapses) -> synapse_model.SynapseMemory | None:
    """The model synapse memory a ``LearningCore``'s LIF core keeps its ``[neurons, channels +
    neurons]`` weights in, from a testbench job's ``core_synapses``: None (none), an organisation
    name, or the arguments of ``lif.stimulus.synapse_memory`` (``organisation``, ``density`` of stored
    synapses, ``seed``, ``bitmap_word``) for ``config.core``."""
    if synapses is None or isinstance(synapses, synapse_model.SynapseMemory):
        return synapses
    spec = {"organisation": synapses} if isinstance(synapses, str) else dict(synapses)
    return synapse_memory(config.core, **spec)
