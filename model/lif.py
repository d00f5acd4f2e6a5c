"""The quantised LIF neuron of seed 001: integer golden model and its differentiable float twin.

Order of operations (the specification the RTL implements bit for bit; widths in ``LIFConfig``):

1. Event phase of step n. Each input spike event ``pre`` (in stream order, repeats allowed) adds its
   weight column to the input current with saturation::

       I_i <- sat_I(I_i + W[i, pre])             one synaptic operation per neuron

2. Timestep boundary (a TICK event). For every neuron, in this order::

       V_i <- sat_V(decay_b(V_i) + I_i)          membrane trace takes this step's current
       U_i  = V_i - R_i                          R_i from the previous step (refractory inhibition)
       S_i  = U_i >= threshold
       R_i <- sat_R(decay_g(R_i) + delta * S_i)
       I_i <- decay_a(I_i)                       ready for the next step's events

   with ``decay_s(x) = x - (x >> s)`` (arithmetic shift, so the rounding is floor; alpha =
   1 - 2**-s) and ``sat`` clamping to the two's complement (I, V) or unsigned (R) range of the
   field. U is one bit wider than V and never stored, so it needs no saturation.

This is seed 001's Q/P/R recursion summed through the weights (I = sum_j W_ij Q_j, V = sum_j W_ij P_j),
with the input of step n entering Q and P in step n. Floor rounding leaves a positive residue below
2**s undecayed; that is the documented behaviour, and the RTL does the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .config import EVENT_SPIKE, EVENT_TICK, ConfigError, LIFConfig

__all__ = ["LIFState", "IntegerLIF", "FloatLIF", "decay", "saturate", "spike_surrogate"]


def decay(x: torch.Tensor, shift: int) -> torch.Tensor:
    """x * (1 - 2**-shift), rounded as hardware does it: subtract the arithmetic shift."""
    return x - (x >> shift)


def saturate(x: torch.Tensor, bounds: tuple[int, int]) -> torch.Tensor:
    return x.clamp(bounds[0], bounds[1])


@dataclass
class LIFState:
    current: torch.Tensor      # I, int64 [..., neurons]
    membrane: torch.Tensor     # V
    refractory: torch.Tensor   # R (already scaled by delta)



class IntegerLIF:
    """Bit-exact integer model of a :class:`LIFConfig` core with a fixed weight matrix."""

    def __init__(self, config: LIFConfig, weights):
        self.config = config
        w = torch.as_tensor(weights)
        if w.is_floating_point() and not torch.equal(w, w.round()):
            raise ConfigError("weights must be integers; convert a float network with the quantiser first.")
        config.check_weights(w)
        self.weights = w.to(torch.int64)          # [neurons, inputs]

    def initial_state(self, batch_shape: tuple[int, ...] = ()) -> LIFState:
        z = torch.zeros(*batch_shape, self.config.neurons, dtype=torch.int64)
        return LIFState(z, z.clone(), z.clone())

    # -- single events (the transaction-level view the cosim scoreboard uses) -----------------------
    def accumulate(self, state: LIFState, pre: int) -> LIFState:
        if not 0 <= pre < self.config.inputs:
            raise ConfigError(f"input address {pre} is out of range; allowed: 0..{self.config.inputs - 1}.")
        current = saturate(state.current + self.weights[:, pre], self.config.current_range)
        return LIFState(current, state.membrane, state.refractory)

    def accumulate_synapse(self, state: LIFState, post: int, weight: int) -> LIFState:
        """One synaptic operation of a core whose weights come from a synapse memory
        (``model.synapse``): ``I_post <- sat_I(I_post + weight)``. The results of a forward access,
        taken in order, give :meth:`accumulate` of the column (each target appears once)."""
        if not 0 <= post < self.config.neurons:
            raise ConfigError(f"neuron {post} is out of range; allowed: 0..{self.config.neurons - 1}.")
        current = state.current.clone()
        current[post] = saturate(current[post] + int(weight), self.config.current_range)
        return LIFState(current, state.membrane, state.refractory)

    def step(self, state: LIFState) -> tuple[LIFState, torch.Tensor]:
        c = self.config
        membrane = saturate(decay(state.membrane, c.membrane_decay_shift) + state.current, c.membrane_range)
        spikes = (membrane - state.refractory) >= c.threshold
        refractory = saturate(decay(state.refractory, c.refractory_decay_shift)
                              + c.refractory_jump * spikes.to(torch.int64), c.refractory_range)
        current = decay(state.current, c.current_decay_shift)
        return LIFState(current, membrane, refractory), spikes

    def trace(self, tokens, state: LIFState | None = None):
        """Runs a token stream ``[(kind, address), ...]`` and yields, per token, what the core must
        do: ``("spike", pre, state_after)`` or ``("tick", None, state_after, spiking_neuron_ids)``."""
        state = self.initial_state() if state is None else state
        for kind, address in tokens:
            if kind == EVENT_SPIKE:
                state = self.accumulate(state, address)
                yield ("spike", address, state)
            elif kind == EVENT_TICK:
                state, spikes = self.step(state)
                yield ("tick", None, state, torch.nonzero(spikes).flatten().tolist())
            else:
                raise ConfigError(f"event kind {kind} is unknown; allowed: {EVENT_SPIKE} (spike), {EVENT_TICK} (tick).")

    # -- whole rasters (batched; the view training and evaluation use) -----------------------------
    def run(self, raster: torch.Tensor, state: LIFState | None = None):
        """``raster``: integer event counts ``[T, ..., inputs]``; the events of a step are taken in
        ascending input order (the order the host driver sends them). Returns spikes ``[T, ...,
        neurons]`` (bool) and the final state."""
        raster = torch.as_tensor(raster)
        if raster.shape[-1] != self.config.inputs:
            raise ConfigError(f"raster has {raster.shape[-1]} input channels; allowed: {self.config.inputs}.")
        if raster.is_floating_point() or (raster < 0).any():
            raise ConfigError("raster must hold non-negative integer event counts.")
        raster = raster.to(torch.int64)
        state = self.initial_state(tuple(raster.shape[1:-1])) if state is None else state
        out = []
        for t in range(raster.shape[0]):
            state, spikes = self.advance(state, raster[t])
            out.append(spikes)
        return torch.stack(out), state

    def advance(self, state: LIFState, counts: torch.Tensor) -> tuple[LIFState, torch.Tensor]:
        """One timestep: the events ``counts[..., inputs]`` in ascending input order, then the TICK."""
        state = LIFState(self._accumulate_counts(state.current, counts.to(torch.int64)), state.membrane,
                         state.refractory)
        return self.step(state)

    def _accumulate_counts(self, current: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """Saturating accumulation of ``counts[..., j]`` events of each input j, in ascending j.
        Repeats of one input add the same sign, so saturating them one by one equals one clamp of
        their sum; across inputs the order matters only where a partial sum leaves the range, and
        only those rows take the sequential path."""
        lo, hi = self.config.current_range
        # No partial sum can leave the range when |I| + sum_j |W_ij| c_j fits: then one matrix
        # product is exact. Only the other rows pay for the ordered partial sums.
        total = current + counts @ self.weights.t()
        bound = current.abs() + counts @ self.weights.abs().t()
        safe = bound <= min(hi, -lo)
        if bool(safe.all()):
            return total
        contrib = counts.unsqueeze(-2) * self.weights                 # [..., N, M]
        partial = current.unsqueeze(-1) + contrib.cumsum(-1)
        exact = (partial.amin(-1) >= lo) & (partial.amax(-1) <= hi)
        result = torch.where(exact, partial[..., -1], current)
        if not bool(exact.all()):
            slow = current.clone()
            for j in range(self.config.inputs):
                slow = saturate(slow + contrib[..., j], (lo, hi))
            result = torch.where(exact, result, slow)
        return torch.where(safe, total, result)


class _SpikeFn(torch.autograd.Function):
    """Heaviside forward; SuperSpike fast-sigmoid derivative 1/(scale*|x|+1)**2 backward (seed 000's
    code uses scale 10)."""

    @staticmethod
    def forward(ctx, x, scale):
        ctx.save_for_backward(x)
        ctx.scale = scale
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad / (ctx.scale * x.abs() + 1.0) ** 2, None


def spike_surrogate(x: torch.Tensor, scale: float = 10.0) -> torch.Tensor:
    return _SpikeFn.apply(x, scale)


def _floor_ste(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.floor(x) - x).detach()


class FloatLIF(torch.nn.Module):
    """Float twin of :class:`IntegerLIF`: the same equations, differentiable.

    ``exact=True`` rounds and saturates exactly as the integer model does (floor decays and clamps
    in the forward pass, straight-through gradients), so on integer weights and inputs it returns
    the integer model's spikes whenever no partial sum of a step's events saturates the current
    (the matrix product sums a step's events at once). ``exact=False`` is the ideal, unrounded
    neuron. The surrogate gradient is taken on (U - threshold) / threshold.
    """

    def __init__(self, config: LIFConfig, exact: bool = True, surrogate_scale: float = 10.0):
        super().__init__()
        self.config = config
        self.exact = exact
        self.surrogate_scale = surrogate_scale

    def decay(self, x, shift):
        """x * (1 - 2**-shift): floored as in hardware when exact (straight-through gradient)."""
        if self.exact:
            return x - _floor_ste(x / (1 << shift))
        return x * (1.0 - 2.0 ** -shift)

    def saturate(self, x, bounds):
        """Clamp to the field range when exact; the ideal neuron does not saturate."""
        return x.clamp(bounds[0], bounds[1]) if self.exact else x

    def initial_state(self, like: torch.Tensor, batch_shape: tuple[int, ...]):
        z = like.new_zeros(batch_shape + (self.config.neurons,))
        return (z, z, z)

    def advance(self, state, drive: torch.Tensor):
        """One timestep with the step's summed weighted input ``drive`` [..., neurons]. Returns the
        new (current, membrane, refractory) and the spikes."""
        c = self.config
        current, membrane, refractory = state
        current = self.saturate(current + drive, c.current_range)
        membrane = self.saturate(self.decay(membrane, c.membrane_decay_shift) + current, c.membrane_range)
        spikes = spike_surrogate((membrane - refractory - c.threshold) / c.threshold, self.surrogate_scale)
        refractory = self.saturate(self.decay(refractory, c.refractory_decay_shift)
                               + c.refractory_jump * spikes, c.refractory_range)
        current = self.decay(current, c.current_decay_shift)
        return (current, membrane, refractory), spikes

    def forward(self, raster: torch.Tensor, weights: torch.Tensor, state=None):
        """``raster`` [T, ..., inputs] (float 0/1 or counts), ``weights`` [neurons, inputs].
        Returns spikes [T, ..., neurons] and the final (current, membrane, refractory)."""
        if state is None:
            state = self.initial_state(raster, raster.shape[1:-1])
        out = []
        for t in range(raster.shape[0]):
            state, spikes = self.advance(state, raster[t] @ weights.t())
            out.append(spikes)
        return torch.stack(out), state
