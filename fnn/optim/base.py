"""The optimizer type and what every transform shares: applying updates, norms, checks.

An optimizer is a `GradientTransformation(init, update)` of pure functions:

    init(params) -> state
    update(grads, state, params=None) -> (updates, new_state)
    params = apply_updates(params, updates)        # params + updates

fnn recognises an optimizer by that shape (`is_optimizer`): any object with
callable `init` and `update` of these signatures, e.g. an optax
GradientTransformation, trains in fnn.fit and composes with fnn.optim.chain,
and fnn's own work in optax.chain. `schedules` is fnn's addition: an
optimizer without it declares none (`declared_schedules`).

Hyper-parameters may be traced values (one per model under vmap, see
fnn.ensemble): `_check_hyper` checks them only where they are concrete.
"""
import math
import numbers
from typing import Any, Callable, NamedTuple, Tuple

import jax
import jax.numpy as jnp

from fnn.errors import InputError, InputTypeError
from fnn.typing import OptState, Params, PyTree

__all__ = ["GradientTransformation", "ScaleByLearningRateState", "apply_updates", "global_norm",
           "current_lr", "is_optimizer", "declared_schedules"]

TREE_MISMATCH = ("{transform}: the gradient tree does not match the {what} tree the optimizer "
                 "state was initialized with:\n  gradients: {got}\n  expected:  {expected}")
NEEDS_PARAMS = ("{transform} reads the parameters: call update(grads, state, params) "
                "with params, not update(grads, state)")

_INT32_MAX = jnp.iinfo(jnp.int32).max
FLOAT32_MAX = float(jnp.finfo(jnp.float32).max)


class GradientTransformation(NamedTuple):
    """A pair of pure functions, and the learning-rate schedules its updates apply.

    init(params) -> state
    update(grads, state, params=None) -> (updates, new_state)
    schedules: the schedules (count -> rate) that update calls, so that a run can
      check every rate it will use before it starts (fnn.optim.check_learning_rates);
      () for constant rates, which are checked when the optimizer is built.
    """
    init: Callable[[Any], Any]
    update: Callable[..., Any]
    schedules: Tuple[Callable, ...] = ()


class ScaleByLearningRateState(NamedTuple):
    """Step count and the learning rate of the latest update (before any: of the first)."""
    count: jax.Array
    learning_rate: jax.Array

def is_optimizer(x: Any) -> bool:
    """Whether `x` is an optimizer by its shape: callable `init` and `update` attributes.

    A GradientTransformation is one; so is any other library's pair of the same
    protocol (optax's GradientTransformation), which fnn uses as it is.

    Args:
      x: any object.

    Returns:
      True if x has callable init and update.
    """
    return callable(getattr(x, "init", None)) and callable(getattr(x, "update", None))


def declared_schedules(optimizer: Any) -> Tuple[Callable, ...]:
    """The learning-rate schedules `optimizer` declares: its `schedules`, () where it has none.

    Args:
      optimizer: an optimizer (init, update), fnn's or another library's.

    Returns:
      A tuple of schedules count -> rate.
    """
    return tuple(getattr(optimizer, "schedules", ()) or ())


def apply_updates(params: Params, updates: PyTree) -> Params:
    """params + updates, leaf by leaf, each result in its parameter's dtype.

    Args:
      params: the parameters.
      updates: the steps optimizer.update returned, a tree of the same structure.

    Returns:
      The new parameters.
    """
    return jax.tree.map(lambda p, u: (p + u).astype(p.dtype), params, updates)


def global_norm(tree: PyTree) -> jax.Array:
    """‖tree‖ = sqrt(Σ_leaves Σ x²), the L2 norm of all leaves as one vector.

    Args:
      tree: a pytree of arrays (gradients, updates, params).

    Returns:
      A scalar array; 0 for a tree without leaves.
    """
    leaves = jax.tree.leaves(tree)
    if not leaves:
        return jnp.zeros([], jnp.result_type(float))
    return jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in leaves))


def current_lr(state: OptState) -> jax.Array:
    """The learning rate of the latest update, read from an optimizer's state.

    Finds the first ScaleByLearningRateState in `state` (a chain's tuple of
    states, nested chains included). Before any update it is the rate the
    first update will apply. Under vmap it has one value per model.

    Args:
      state: an optimizer state, e.g. TrainState.opt_state.

    Returns:
      The rate, a float array (a scalar, or (N,) for N vmapped models).

    Raises:
      InputError: if the state holds no ScaleByLearningRateState.
    """
    found = [s for s in jax.tree.leaves(state, is_leaf=_is_lr_state) if _is_lr_state(s)]
    if not found:
        raise InputError(
            f"no learning rate in this optimizer state (no ScaleByLearningRateState): {state!r}")
    return found[0].learning_rate


def _is_lr_state(x):
    return isinstance(x, ScaleByLearningRateState)


def _zero_count():
    return jnp.zeros([], jnp.int32)


def _increment(count):
    """count + 1, saturating at the int32 maximum instead of wrapping around."""
    return jnp.where(count < _INT32_MAX, count + 1, count)


def _check_tree(transform, what, grads, reference):
    got, expected = jax.tree.structure(grads), jax.tree.structure(reference)
    if got != expected:
        raise InputError(TREE_MISMATCH.format(
            transform=transform, what=what, got=got, expected=expected))


def _needs_params(transform, grads, params):
    if params is None:
        raise InputError(NEEDS_PARAMS.format(transform=transform))
    _check_tree(transform, "parameter", grads, params)


def _concrete(value):
    """value as a Python float, or None when it is traced (e.g. vmapped over)."""
    try:
        return float(value)
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError):
        return None


def _check_hyper(transform, name, value, ok, expected):
    """TypeError unless value is a real scalar; ValueError unless finite in float32 and ok(value).

    Hyper-parameters are cast to the dtype of the leaves they multiply, float32 by
    default, so 1e39 (inf there) is refused with inf and NaN. Tracers pass.
    """
    is_scalar_array = hasattr(value, "dtype") and jnp.ndim(value) == 0
    if isinstance(value, bool) or not (isinstance(value, numbers.Real) or is_scalar_array):
        raise InputTypeError(f"{transform}: {name} must be a real scalar {expected}, got {value!r}")
    v = _concrete(value)
    if v is not None and not (math.isfinite(v) and abs(v) <= FLOAT32_MAX):
        raise InputError(f"{transform}: {name} must be a finite number {expected}, at most "
                         f"{FLOAT32_MAX:.4g} (the float32 maximum), got {value!r}")
    if v is not None and not ok(v):
        raise InputError(f"{transform}: {name} must be {expected}, got {value!r}")


def _unit_interval(transform, name, value):
    _check_hyper(transform, name, value, lambda v: 0 <= v < 1, "in [0, 1)")


def _non_negative(transform, name, value):
    _check_hyper(transform, name, value, lambda v: v >= 0, ">= 0")


def _as_schedule(learning_rate):
    """A schedule count -> rate from a positive float (or 0-d array) or a schedule."""
    if callable(learning_rate):
        return learning_rate
    _check_hyper("scale_by_learning_rate", "learning_rate", learning_rate, lambda v: v > 0,
                 "> 0 (or a schedule from fnn.optim.schedules)")
    return lambda count: learning_rate


def _cast(x, like):
    """A scalar hyper-parameter or coefficient in the dtype of the leaf it multiplies."""
    return jnp.asarray(x).astype(like.dtype)
