"""Mixed precision: float32 master parameters, forward and hand-written backward in bfloat16 or float16.

A `Policy` names three dtypes:

    param_dtype    float32: the parameters the optimizer updates (the "master" copy)
    compute_dtype  bfloat16 / float16: the forward and backward matmuls and activations
    output_dtype   float32: the loss and its gradient with respect to the output

One mixed-precision gradient is

    p_c = cast(p, compute),  x_c = cast(x, compute)
    out, saved = model.forward(p_c, x_c)                    # compute dtype
    L = loss(cast(out, float32), y)                         # float32
    δ = cast(s · dL/dout, compute)                          # s: the loss scale (1 for bfloat16)
    g_c = model.backward(p_c, saved, δ)                     # compute dtype
    g = cast(g_c, float32) / s                              # float32, for the optimizer

float16 has 5 exponent bits: gradients below ~6e-8 flush to zero, above
65504 overflow. Dynamic loss scaling multiplies dL/dout by s (initially 2¹⁵)
so small gradients survive, and adapts s: a step whose gradients are not
finite is skipped (no update, optimizer state unchanged) and halves s; after
`growth_interval` finite steps in a row s doubles. bfloat16 has float32's
exponent range and needs no scaling.

Gradients in a compute dtype are only as exact as that dtype. fnn.check.precision_check
compares the hand-written backward with jax.grad in the same precision
(GRAD_TOLERANCE: a few units of round-off) and with float32 jax.grad
(FLOAT32_TOLERANCE: what the precision costs).
"""
from typing import Any, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp

from fnn.errors import InputError, InputTypeError
from fnn.numerics import all_finite
from fnn.optim.base import GradientTransformation, declared_schedules, is_optimizer
from fnn.typing import DTypeLike, Optimizer, OptState, PyTree

__all__ = ["Policy", "POLICIES", "PRECISIONS", "GRAD_TOLERANCE", "get_policy", "cast_floating",
           "LossScaleState", "LossScaledOptimizer",
           "dynamic_loss_scale", "loss_scale", "FLOAT32_TOLERANCE"]


class Policy(NamedTuple):
    """The dtypes of one precision: parameters, computation, loss; and whether the loss is scaled."""
    name: str
    param_dtype: Any
    compute_dtype: Any
    output_dtype: Any
    loss_scaling: bool

    @property
    def mixed(self) -> bool:
        """Whether the computation runs in another dtype than the parameters (bf16, fp16; not fp32)."""
        return self.compute_dtype != self.param_dtype


POLICIES = {
    "fp32": Policy("fp32", jnp.dtype(jnp.float32), jnp.dtype(jnp.float32), jnp.dtype(jnp.float32), False),
    "bf16": Policy("bf16", jnp.dtype(jnp.float32), jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float32), False),
    "fp16": Policy("fp16", jnp.dtype(jnp.float32), jnp.dtype(jnp.float16), jnp.dtype(jnp.float32), True),
}
PRECISIONS = tuple(POLICIES)

# Relative errors ‖a − b‖∞ / max(‖a‖∞, ‖b‖∞) over all gradients (see fnn.check.precision_check).
# Hand-written backward vs jax.grad, both in the policy's precision: a few units of round-off
# (u = 2⁻⁸ ≈ 3.9e-3 for bfloat16, 2⁻¹¹ ≈ 4.9e-4 for float16); measured up to 6.7e-3 and 9.6e-4.
GRAD_TOLERANCE = {"fp32": 1e-5, "bf16": 2e-2, "fp16": 3e-3}
# Hand-written backward in the policy's precision vs float32 jax.grad: the cost of the precision
# itself (rounded inputs and activations, ReLU units whose pre-activation changes sign);
# measured up to 4.4e-2 (bfloat16) and 1.6e-2 (float16) on a 40-100-100-10 ReLU MLP.
FLOAT32_TOLERANCE = {"fp32": 1e-5, "bf16": 1e-1, "fp16": 3e-2}


# What a `precision=` argument takes: None (the dtype of params and x), a name in POLICIES, or a Policy.
Precision = Optional[Union[str, Policy]]


def get_policy(precision: Union[str, Policy]) -> Policy:
    """A Policy from its name in POLICIES ("fp32", "bf16", "fp16") or a Policy.

    Args:
      precision: a name in POLICIES, or a Policy, returned as it is.

    Returns:
      The Policy.

    Raises:
      InputError: for anything else, naming the precisions there are.
    """
    if isinstance(precision, Policy):
        return precision
    if isinstance(precision, str) and precision in POLICIES:
        return POLICIES[precision]
    raise InputError(f"unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}")


def cast_floating(tree: PyTree, dtype: DTypeLike) -> PyTree:
    """Every floating-point leaf of `tree` cast to `dtype`; integer leaves (labels) unchanged.

    Args:
      tree: a pytree of arrays (or array-likes: each leaf goes through jnp.asarray).
      dtype: the floating-point dtype to cast to.

    Returns:
      The tree with jax array leaves.
    """
    def cast(a):
        a = jnp.asarray(a)
        return a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a
    return jax.tree.map(cast, tree)


# ---------------------------------------------------------------- dynamic loss scaling

class LossScaleState(NamedTuple):
    """The loss scale s, the finite steps since it last changed, and the wrapped optimizer's state."""
    scale: jax.Array        # float32 scalar
    good_steps: jax.Array   # int32 scalar
    inner: Any


class LossScaledOptimizer(GradientTransformation):
    """An optimizer wrapped by dynamic_loss_scale; its state is a LossScaleState."""


def dynamic_loss_scale(optimizer: Optimizer, initial_scale: float = 2.0 ** 15, growth_interval: int = 2000,
                       growth_factor: float = 2.0, backoff_factor: float = 0.5,
                       min_scale: float = 1.0) -> "LossScaledOptimizer":
    """Wrap `optimizer` so its state carries a dynamic loss scale s for float16 training.

    update(grads, state, params), grads already divided by s:
      all finite:  the inner update; after growth_interval such steps in a row, s ← s · growth_factor
      otherwise:   zero updates, inner state unchanged, s ← max(s · backoff_factor, min_scale)

    Wrapping twice returns the already wrapped optimizer.

    Args:
      optimizer: the optimizer (init, update) to wrap.
      initial_scale: s at the start (≥ 1).
      growth_interval: finite steps in a row before s grows, an int ≥ 1.
      growth_factor: s's factor after growth_interval finite steps (> 1).
      backoff_factor: s's factor after a non-finite step, in (0, 1).
      min_scale: the smallest s, in (0, initial_scale].

    Returns:
      A LossScaledOptimizer, with the schedules of `optimizer`; its state is a LossScaleState.

    Raises:
      InputTypeError: if optimizer is not an (init, update) pair.
      InputError: for a setting out of range.
    """
    if isinstance(optimizer, LossScaledOptimizer):
        return optimizer
    if not is_optimizer(optimizer):
        raise InputTypeError(f"dynamic_loss_scale wraps a GradientTransformation (an init, update pair), "
                             f"got {optimizer!r}")
    for name, value, ok in (("initial_scale", initial_scale, initial_scale >= 1),
                            ("growth_interval", growth_interval, isinstance(growth_interval, int) and growth_interval >= 1),
                            ("growth_factor", growth_factor, growth_factor > 1),
                            ("backoff_factor", backoff_factor, 0 < backoff_factor < 1),
                            ("min_scale", min_scale, 0 < min_scale <= initial_scale)):
        if not ok:
            raise InputError(f"dynamic_loss_scale: {name}={value!r} is out of range (initial_scale >= 1, "
                             "growth_interval an int >= 1, growth_factor > 1, 0 < backoff_factor < 1, "
                             "0 < min_scale <= initial_scale)")

    def init(params):
        return LossScaleState(jnp.asarray(initial_scale, jnp.float32), jnp.zeros((), jnp.int32),
                              optimizer.init(params))

    def update(grads, state, params=None):
        if not isinstance(state, LossScaleState):
            raise InputTypeError(f"a loss-scaled optimizer needs the state from its own init, got {type(state).__name__}")
        finite = all_finite(grads)
        safe = jax.tree.map(lambda g: jnp.where(finite, g, jnp.zeros_like(g)), grads)
        updates, inner = optimizer.update(safe, state.inner, params)
        updates = jax.tree.map(lambda u: jnp.where(finite, u, jnp.zeros_like(u)), updates)
        inner = jax.tree.map(lambda new, old: jnp.where(finite, new, old), inner, state.inner)
        grow = finite & (state.good_steps + 1 >= growth_interval)
        scale = jnp.where(finite, jnp.where(grow, state.scale * growth_factor, state.scale),
                          jnp.maximum(state.scale * backoff_factor, min_scale))
        good = jnp.where(finite & ~grow, state.good_steps + 1, 0)
        return updates, LossScaleState(scale.astype(jnp.float32), good.astype(jnp.int32), inner)

    return LossScaledOptimizer(init, update, declared_schedules(optimizer))


def loss_scale(opt_state: OptState) -> jax.Array:
    """The current loss scale s of a loss-scaled optimizer's state.

    Args:
      opt_state: the state of a dynamic_loss_scale optimizer (a LossScaleState).

    Returns:
      s, a float32 scalar.

    Raises:
      InputTypeError: for any other state (the message says how to make one).
    """
    if not isinstance(opt_state, LossScaleState):
        raise InputTypeError(
            "float16 training keeps its loss scale in the optimizer state: initialize it with "
            "fnn.precision.dynamic_loss_scale(optimizer).init(params) (fit does this for precision='fp16'), "
            f"got {type(opt_state).__name__}")
    return opt_state.scale


# ---------------------------------------------------------------- gradient check
