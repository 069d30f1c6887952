"""Small gradient transformations, each an (init, update) pair, to chain into optimizers.

    chain(t1, t2, ...)          updates = t_n(... t_2(t_1(grads)))
    scale_by_learning_rate(α)   u = −α_t g  (the descent step, sign included; comes last)
    trace(β)                    momentum  v ← β v + g
    ema(β)                      m ← β m + (1 − β) g
    scale_by_adagrad, scale_by_rms, scale_by_adam
    clip_by_global_norm(c)      g · min(1, c / ‖g‖)
    add_decayed_weights, add_l2_penalty, add_l1_penalty

Each state is a NamedTuple with the step count `count` (an int32 array).
"""
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from fnn.errors import InputError, InputTypeError
from fnn.optim.base import (GradientTransformation, ScaleByLearningRateState, _as_schedule, _cast, _check_tree,
                            _check_hyper, _increment, _needs_params, _non_negative,
                            _unit_interval, _zero_count, declared_schedules, global_norm, is_optimizer)
from fnn.typing import LearningRate, Optimizer, Scalar

__all__ = ["chain", "scale_by_learning_rate", "trace", "ema", "scale_by_adagrad", "scale_by_rms",
           "scale_by_adam", "clip_by_global_norm", "add_decayed_weights", "add_l2_penalty",
           "add_l1_penalty", "CountState", "TraceState", "EmaState", "ScaleByAdagradState",
           "ScaleByRmsState", "ScaleByAdamState"]

class CountState(NamedTuple):
    """State of a transform that keeps nothing but the step count."""
    count: jax.Array

class TraceState(NamedTuple):
    """State of trace: the step count and the velocity v."""
    count: jax.Array
    trace: Any          # velocity v, same tree as params


class EmaState(NamedTuple):
    """State of ema: the step count and the moving average m."""
    count: jax.Array
    ema: Any            # moving average, same tree as params


class ScaleByAdagradState(NamedTuple):
    """State of scale_by_adagrad: the step count and the running sum s of g²."""
    count: jax.Array
    sum_of_squares: Any     # same tree as params


class ScaleByRmsState(NamedTuple):
    """State of scale_by_rms: the step count and the moving average ν of g²."""
    count: jax.Array
    nu: Any             # moving average of g²


class ScaleByAdamState(NamedTuple):
    """State of scale_by_adam: the step count and the two moments m (mu) and v (nu), before bias correction."""
    count: jax.Array
    mu: Any             # first moment, moving average of g
    nu: Any             # second moment, moving average of g²

def chain(*transforms: Optimizer) -> GradientTransformation:
    """Apply transforms in sequence; the state is the tuple of their states.

    updates = t_n(... t_2(t_1(grads)))

    Args:
      *transforms: optimizers (init, update), fnn's or another library's, applied in order.

    Returns:
      A GradientTransformation whose schedules are those of its transforms, in order.

    Raises:
      InputTypeError: for an argument that is not an (init, update) pair.
    """
    for i, t in enumerate(transforms):
        if not is_optimizer(t):
            raise InputTypeError(
                f"chain: argument {i} must be a GradientTransformation (an init, update pair), got {t!r}")

    def init(params):
        return tuple(t.init(params) for t in transforms)

    def update(grads, state, params=None):
        if not isinstance(state, tuple) or len(state) != len(transforms):
            raise InputError(
                f"chain of {len(transforms)} transforms: expected a tuple of "
                f"{len(transforms)} states (from its init), got {type(state).__name__}")
        new_state = []
        for t, s in zip(transforms, state):
            grads, s = t.update(grads, s, params)
            new_state.append(s)
        return grads, tuple(new_state)

    return GradientTransformation(init, update, sum((declared_schedules(t) for t in transforms), ()))


def scale_by_learning_rate(learning_rate: LearningRate) -> GradientTransformation:
    """u = −α_t · g,  α_t = schedule(count): the descent step, sign included.

    The state records the rate just applied, for current_lr(state).

    Args:
      learning_rate: a float > 0 or a schedule count -> rate (fnn.optim.schedules).

    Returns:
      A GradientTransformation with state ScaleByLearningRateState; its schedules hold
      the schedule, () for a constant rate.

    Raises:
      InputError / InputTypeError: for a constant rate that is not a finite real scalar > 0.
    """
    schedule = _as_schedule(learning_rate)

    def init(params):
        del params
        count = _zero_count()
        lr = jnp.asarray(schedule(count)).astype(jnp.result_type(float))
        return ScaleByLearningRateState(count, lr)

    def update(grads, state, params=None):
        del params
        lr = schedule(state.count)
        updates = jax.tree.map(lambda g: -_cast(lr, g) * g, grads)
        return updates, ScaleByLearningRateState(
            _increment(state.count), _cast(lr, state.learning_rate))

    return GradientTransformation(init, update, (schedule,) if callable(learning_rate) else ())


def trace(decay: Scalar = 0.9, nesterov: bool = False) -> GradientTransformation:
    """Heavy-ball momentum:  v ← β v + g;  u = v,  or  u = β v + g  with Nesterov.

    Followed by scale_by_learning_rate(α) this is  w ← w − α v  (momentum) or
    w ← w − α (β v + g)  (Nesterov, in the form of Sutskever et al. 2013 and
    jax.example_libraries.optimizers.nesterov).

    Args:
      decay: β, in [0, 1).
      nesterov: whether the update is β v + g (Nesterov) rather than v.

    Returns:
      A GradientTransformation (init, update). Its state is a TraceState.

    Raises:
      InputError / InputTypeError: for a hyper-parameter out of range or not a real scalar.
    """
    _unit_interval("trace", "decay", decay)

    def init(params):
        return TraceState(_zero_count(), jax.tree.map(jnp.zeros_like, params))

    def update(grads, state, params=None):
        del params
        _check_tree("trace", "parameter", grads, state.trace)
        v = jax.tree.map(lambda g, v: _cast(decay, v) * v + g, grads, state.trace)
        if nesterov:
            updates = jax.tree.map(lambda g, v: _cast(decay, v) * v + g, grads, v)
        else:
            updates = v
        return updates, TraceState(_increment(state.count), v)

    return GradientTransformation(init, update)


def ema(decay: Scalar) -> GradientTransformation:
    """Exponential moving average of the updates, without bias correction.

    m ← β m + (1 − β) u;  u ← m.  (Adagrad's optional momentum.)

    Args:
      decay: β, in [0, 1).

    Returns:
      A GradientTransformation (init, update). Its state is an EmaState.

    Raises:
      InputError / InputTypeError: for a hyper-parameter out of range or not a real scalar.
    """
    _unit_interval("ema", "decay", decay)

    def init(params):
        return EmaState(_zero_count(), jax.tree.map(jnp.zeros_like, params))

    def update(grads, state, params=None):
        del params
        _check_tree("ema", "parameter", grads, state.ema)
        m = jax.tree.map(lambda g, m: (1 - _cast(decay, m)) * g + _cast(decay, m) * m,
                         grads, state.ema)
        return m, EmaState(_increment(state.count), m)

    return GradientTransformation(init, update)


def scale_by_adagrad(initial_accumulator: Scalar = 0.1, eps: Scalar = 1e-7) -> GradientTransformation:
    """Adagrad (Duchi et al. 2011):  s ← s + g²;  u = g / sqrt(s + ε)  (0 where s = 0).

    Args:
      initial_accumulator: starting value of s (≥ 0); 0.1 as in Keras.
        With 0 and eps=0 this is jax.example_libraries.optimizers.adagrad.
      eps: added to s under the square root (≥ 0).

    Returns:
      A GradientTransformation (init, update). Its state is a ScaleByAdagradState.

    Raises:
      InputError / InputTypeError: for a hyper-parameter out of range or not a real scalar.
    """
    _non_negative("scale_by_adagrad", "initial_accumulator", initial_accumulator)
    _non_negative("scale_by_adagrad", "eps", eps)

    def init(params):
        return ScaleByAdagradState(
            _zero_count(), jax.tree.map(lambda p: jnp.full_like(p, initial_accumulator), params))

    def update(grads, state, params=None):
        del params
        _check_tree("scale_by_adagrad", "parameter", grads, state.sum_of_squares)
        s = jax.tree.map(lambda g, s: s + jnp.square(g), grads, state.sum_of_squares)
        updates = jax.tree.map(
            lambda g, s: jnp.where(s > 0, g / jnp.sqrt(s + _cast(eps, s)), jnp.zeros_like(g)),
            grads, s)
        return updates, ScaleByAdagradState(_increment(state.count), s)

    return GradientTransformation(init, update)


def scale_by_rms(decay: Scalar = 0.9, eps: Scalar = 1e-8) -> GradientTransformation:
    """RMSprop (Tieleman & Hinton 2012):  ν ← ρ ν + (1 − ρ) g²;  u = g / sqrt(ν + ε).

    ε sits under the square root, as in jax.example_libraries.optimizers.rmsprop
    (Adam's sits outside); ν starts at 0.

    Args:
      decay: ρ, in [0, 1).
      eps: ε (≥ 0).

    Returns:
      A GradientTransformation (init, update). Its state is a ScaleByRmsState.

    Raises:
      InputError / InputTypeError: for a hyper-parameter out of range or not a real scalar.
    """
    _unit_interval("scale_by_rms", "decay", decay)
    _non_negative("scale_by_rms", "eps", eps)

    def init(params):
        return ScaleByRmsState(_zero_count(), jax.tree.map(jnp.zeros_like, params))

    def update(grads, state, params=None):
        del params
        _check_tree("scale_by_rms", "parameter", grads, state.nu)
        nu = jax.tree.map(lambda g, n: n * _cast(decay, n) + jnp.square(g) * (1 - _cast(decay, n)),
                          grads, state.nu)
        updates = jax.tree.map(lambda g, n: g / jnp.sqrt(n + _cast(eps, n)), grads, nu)
        return updates, ScaleByRmsState(_increment(state.count), nu)

    return GradientTransformation(init, update)


def scale_by_adam(b1: Scalar = 0.9, b2: Scalar = 0.999, eps: Scalar = 1e-8) -> GradientTransformation:
    """Adam's preconditioned step (Kingma & Ba 2015), t = count + 1:

    m ← β₁ m + (1 − β₁) g,   v ← β₂ v + (1 − β₂) g²
    m̂ = m / (1 − β₁ᵗ),       v̂ = v / (1 − β₂ᵗ)
    u = m̂ / (sqrt(v̂) + ε)

    Args:
      b1: β₁, in [0, 1).
      b2: β₂, in [0, 1).
      eps: ε (≥ 0).

    Returns:
      A GradientTransformation (init, update). Its state is a ScaleByAdamState.

    Raises:
      InputError / InputTypeError: for a hyper-parameter out of range or not a real scalar.
    """
    _unit_interval("scale_by_adam", "b1", b1)
    _unit_interval("scale_by_adam", "b2", b2)
    _non_negative("scale_by_adam", "eps", eps)

    def init(params):
        zeros = jax.tree.map(jnp.zeros_like, params)
        return ScaleByAdamState(_zero_count(), zeros, jax.tree.map(jnp.zeros_like, params))

    def update(grads, state, params=None):
        del params
        _check_tree("scale_by_adam", "parameter", grads, state.mu)
        t = _increment(state.count)
        mu = jax.tree.map(lambda g, m: (1 - _cast(b1, m)) * g + _cast(b1, m) * m, grads, state.mu)
        nu = jax.tree.map(lambda g, v: (1 - _cast(b2, v)) * jnp.square(g) + _cast(b2, v) * v,
                          grads, state.nu)

        def step(m, v):
            m_hat = m / (1 - _cast(b1, m) ** _cast(t, m))
            v_hat = v / (1 - _cast(b2, v) ** _cast(t, v))
            return m_hat / (jnp.sqrt(v_hat) + _cast(eps, v))

        return jax.tree.map(step, mu, nu), ScaleByAdamState(t, mu, nu)

    return GradientTransformation(init, update)


def clip_by_global_norm(max_norm: Scalar) -> GradientTransformation:
    """Rescale the whole gradient tree so that its global norm is at most max_norm.

    u = g                        if ‖g‖ < max_norm
    u = g · max_norm / ‖g‖       otherwise       (‖·‖: global_norm over all leaves)

    Args:
      max_norm: the largest global norm let through (> 0).

    Returns:
      A GradientTransformation (init, update). Its state is a CountState.

    Raises:
      InputError / InputTypeError: for a hyper-parameter out of range or not a real scalar.
    """
    _check_hyper("clip_by_global_norm", "max_norm", max_norm, lambda v: v > 0, "> 0")

    def init(params):
        del params
        return CountState(_zero_count())

    def update(grads, state, params=None):
        del params
        norm = global_norm(grads)
        clip = lambda g: jnp.where(norm < max_norm, g, g * _cast(max_norm / norm, g))
        return jax.tree.map(clip, grads), CountState(_increment(state.count))

    return GradientTransformation(init, update)


def _add_scaled(transform, coefficient, term):
    """u = g + coefficient · term(w): the shared body of weight decay and the penalties."""
    _non_negative(transform, "coefficient", coefficient)

    def init(params):
        del params
        return CountState(_zero_count())

    def update(grads, state, params=None):
        _needs_params(transform, grads, params)
        updates = jax.tree.map(lambda g, w: g + _cast(coefficient, g) * term(w).astype(g.dtype),
                               grads, params)
        return updates, CountState(_increment(state.count))

    return GradientTransformation(init, update)


def add_decayed_weights(weight_decay: Scalar) -> GradientTransformation:
    """Decoupled weight decay (Loshchilov & Hutter 2019):  u = u + λ w.

    Put it after the preconditioner (scale_by_adam, ...) and before the
    learning rate, so the decay step is −α λ w whatever Adam's scaling: that is
    AdamW. (Placed before the preconditioner it would be add_l2_penalty.)

    Args:
      weight_decay: λ (≥ 0).

    Returns:
      A GradientTransformation (init, update). It reads the parameters: update(grads, state, params).

    Raises:
      InputError / InputTypeError: for a hyper-parameter out of range or not a real scalar.
    """
    return _add_scaled("add_decayed_weights", weight_decay, lambda w: w)


def add_l2_penalty(l2: Scalar) -> GradientTransformation:
    """L2 penalty as a gradient term:  g ← g + λ w,  the gradient of (λ/2) ‖w‖².

    Convention: `l2` is λ in the loss term (λ/2) Σ w², so the gradient gains
    λ w (for the penalty λ Σ w², pass 2λ). Put it first in the chain so the
    preconditioner sees it, as if it were part of the loss. With plain SGD it is
    the same as add_decayed_weights; with Adam it is not (see adamw).

    Args:
      l2: λ in the loss term (λ/2) Σ w² (≥ 0).

    Returns:
      A GradientTransformation (init, update). It reads the parameters: update(grads, state, params).

    Raises:
      InputError / InputTypeError: for a hyper-parameter out of range or not a real scalar.
    """
    return _add_scaled("add_l2_penalty", l2, lambda w: w)


def add_l1_penalty(l1: Scalar) -> GradientTransformation:
    """L1 penalty as a gradient term:  g ← g + λ sign(w),  a subgradient of λ ‖w‖₁.

    sign(0) = 0: a weight at exactly zero gets no push.

    Args:
      l1: λ in the loss term λ Σ |w| (≥ 0).

    Returns:
      A GradientTransformation (init, update). It reads the parameters: update(grads, state, params).

    Raises:
      InputError / InputTypeError: for a hyper-parameter out of range or not a real scalar.
    """
    return _add_scaled("add_l1_penalty", l1, jnp.sign)
