"""Learning-rate schedules: functions  count -> learning rate  that work under jit.

`count` is the number of updates already made: 0 for the first update. It may
be a Python int or a traced int32 array (the optimizer passes its state's step
count), so a schedule uses jnp operations only, never Python control flow on
`count`. The value is a float array of the default float dtype.

    lr = schedules.linear_warmup(1e-3, 100, then=schedules.cosine_decay(1e-3, 900))
    lr(0), lr(50), lr(100), lr(1000)   # 0, 5e-4, 1e-3, 0

Any of them can be passed as the learning rate of an fnn.optim optimizer; the
optimizer state then records the current value (fnn.optim.current_lr), and
the optimizer lists it in its `schedules`, so that fit and train_many can
refuse a run whose schedule gives a rate that is NaN, inf (in float32) or
negative at any of its steps, before the run starts (check_learning_rates).
"""
import functools
import math
from typing import Any, Dict, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp

from fnn.errors import InputError, InputTypeError
from fnn.typing import ArrayLike, Schedule
from fnn.validate import check_number, check_positive_int

__all__ = ["constant", "step_decay", "exponential_decay", "cosine_decay",
           "linear_warmup", "join", "check_learning_rates", "RATE_BLOCK"]

# check_learning_rates evaluates a schedule at this many counts at a time.
RATE_BLOCK = 2 ** 16


def _as_float(x):
    """x as an array of the default float dtype (float32, or float64 under x64)."""
    return jnp.asarray(x).astype(jnp.result_type(float))


def _check_schedule(fn, name, value):
    if not callable(value):
        raise InputTypeError(
            f"{fn}: {name} must be a schedule (a function count -> value), got {value!r}")


def constant(value: float) -> Schedule:
    """lr(t) = value.

    Args:
      value: the rate, a number > 0.

    Returns:
      schedule(count) -> rate, a float array of the default float dtype.

    Raises:
      InputError / InputTypeError: for an argument out of range or of the wrong type.
    """
    check_number("constant: value", value, 0, low_open=True)

    def schedule(count):
        del count
        return _as_float(value)

    return schedule


def step_decay(init: float, decay_rate: float, step_size: int) -> Schedule:
    """Staircase decay: lr(t) = init · decay_rate^⌊t / step_size⌋.

    E.g. step_decay(0.1, 0.5, 100) halves the rate every 100 updates.

    Args:
      init: the rate at t = 0 (> 0).
      decay_rate: the factor per stair, in (0, 1].
      step_size: updates per stair, a positive int.

    Returns:
      schedule(count) -> rate, a float array of the default float dtype.

    Raises:
      InputError / InputTypeError: for an argument out of range or of the wrong type.
    """
    check_number("step_decay: init", init, 0, low_open=True)
    check_number("step_decay: decay_rate", decay_rate, 0, 1, low_open=True)
    check_positive_int("step_decay: step_size", step_size)

    def schedule(count):
        return _as_float(init) * _as_float(decay_rate) ** _as_float(jnp.asarray(count) // step_size)

    return schedule


def exponential_decay(init: float, decay_rate: float, decay_steps: float) -> Schedule:
    """Smooth exponential decay: lr(t) = init · decay_rate^(t / decay_steps).

    The rate is multiplied by `decay_rate` every `decay_steps` updates. (Note the
    argument order: jax.example_libraries.optimizers.exponential_decay takes
    (step_size, decay_steps, decay_rate).)

    Args:
      init: the rate at t = 0 (> 0).
      decay_rate: the factor per decay_steps updates, in (0, 1].
      decay_steps: updates over which the rate is multiplied by decay_rate (> 0).

    Returns:
      schedule(count) -> rate, a float array of the default float dtype.

    Raises:
      InputError / InputTypeError: for an argument out of range or of the wrong type.
    """
    check_number("exponential_decay: init", init, 0, low_open=True)
    check_number("exponential_decay: decay_rate", decay_rate, 0, 1, low_open=True)
    check_number("exponential_decay: decay_steps", decay_steps, 0, low_open=True)

    def schedule(count):
        return _as_float(init) * _as_float(decay_rate) ** (_as_float(count) / decay_steps)

    return schedule


def cosine_decay(init: float, decay_steps: int, alpha: float = 0.0) -> Schedule:
    """Cosine decay from init to alpha · init over decay_steps, constant after.

    lr(t) = init · ((1 − α) · ½ (1 + cos(π · min(t, T) / T)) + α),   T = decay_steps

    Args:
      init: the rate at t = 0 (> 0).
      decay_steps: T, a positive int.
      alpha: α, the final rate as a fraction of init, in [0, 1].

    Returns:
      schedule(count) -> rate, a float array of the default float dtype.

    Raises:
      InputError / InputTypeError: for an argument out of range or of the wrong type.
    """
    check_number("cosine_decay: init", init, 0, low_open=True)
    check_positive_int("cosine_decay: decay_steps", decay_steps)
    check_number("cosine_decay: alpha", alpha, 0, 1)

    def schedule(count):
        t = jnp.minimum(_as_float(count), decay_steps)
        cosine = 0.5 * (1 + jnp.cos(math.pi * t / decay_steps))
        return _as_float(init) * ((1 - alpha) * cosine + alpha)

    return schedule


def join(schedules: Sequence[Schedule], boundaries: Sequence[int]) -> Schedule:
    """Run schedules one after another, switching at the given update counts.

    With boundaries b_1 < b_2 < ..., lr(t) = schedules[0](t) for t < b_1,
    schedules[i](t − b_i) for b_i ≤ t < b_{i+1}: each schedule restarts its
    count at 0 when it takes over.

    Args:
      schedules: one or more schedules count -> rate.
      boundaries: len(schedules) − 1 strictly increasing positive ints.

    Returns:
      schedule(count) -> rate, a float array of the default float dtype.

    Raises:
      InputError / InputTypeError: for an argument out of range or of the wrong type.
    """
    schedules, boundaries = tuple(schedules), tuple(boundaries)
    for i, s in enumerate(schedules):
        _check_schedule("join", f"schedules[{i}]", s)
    if len(boundaries) != len(schedules) - 1 or not schedules:
        raise InputError(
            f"join: expected {max(len(schedules) - 1, 0)} boundaries for {len(schedules)} "
            f"schedules, got {boundaries!r}")
    for b in boundaries:
        check_positive_int("join: each boundary", b)
    if any(b >= c for b, c in zip(boundaries, boundaries[1:])):
        raise InputError(f"join: boundaries must be strictly increasing, got {boundaries!r}")

    def schedule(count):
        count = jnp.asarray(count)
        value = _as_float(schedules[0](count))
        for b, s in zip(boundaries, schedules[1:]):
            value = jnp.where(count >= b, _as_float(s(jnp.maximum(count - b, 0))), value)
        return value

    return schedule


def linear_warmup(peak: float, warmup_steps: int, then: Optional[Schedule] = None,
                  start: float = 0.0) -> Schedule:
    """Linear warm-up from `start` to `peak` over warmup_steps, then `then` (or peak).

    lr(t) = start + (peak − start) · t / W      for t < W = warmup_steps
    lr(t) = then(t − W)   (peak if then is None) for t ≥ W

    With the default start = 0 the first update has learning rate 0; `then`
    usually begins at peak, e.g. then=cosine_decay(peak, total_steps − W).

    Args:
      peak: the rate at t = W (> 0).
      warmup_steps: W, a positive int.
      then: the schedule after the warm-up, its count restarted at 0; None for constant(peak).
      start: the rate at t = 0 (≥ 0).

    Returns:
      schedule(count) -> rate, a float array of the default float dtype.

    Raises:
      InputError / InputTypeError: for an argument out of range or of the wrong type.
    """
    check_number("linear_warmup: peak", peak, 0, low_open=True)
    check_positive_int("linear_warmup: warmup_steps", warmup_steps)
    check_number("linear_warmup: start", start, 0)
    if then is None:
        then = constant(peak)
    _check_schedule("linear_warmup", "then", then)

    def warmup(count):
        return _as_float(start) + _as_float(peak - start) * _as_float(count) / warmup_steps

    return join([warmup, then], [warmup_steps])


class _Schedules(NamedTuple):
    """hyper -> the schedules of an optimizer, or of optimizer(**hyper) (static, hashable)."""
    optimizer: Any

    def __call__(self, hyper):
        from fnn.optim.base import declared_schedules, is_optimizer
        opt = self.optimizer if is_optimizer(self.optimizer) else self.optimizer(**hyper)
        return declared_schedules(opt)


@functools.partial(jax.jit, static_argnums=0)
def _first_bad_rate(schedules_of, hyper, steps):
    """(found, flat index into (models?, schedules, RATE_BLOCK), block start, value) of the first bad rate."""
    arange = jnp.arange(RATE_BLOCK, dtype=jnp.int32)

    def rates(h, base):                                    # (schedules, RATE_BLOCK) float32
        counts = base + jnp.minimum(arange, steps - 1 - base)   # never past steps - 1: no int32 wrap
        return jnp.stack([jnp.broadcast_to(jax.vmap(s)(counts).astype(jnp.float32), counts.shape)
                          for s in schedules_of(h)])

    def body(carry):
        base, _, _, _ = carry
        r = jax.vmap(rates, in_axes=(0, None))(hyper, base) if hyper else rates(hyper, base)
        bad = (~jnp.isfinite(r) | (r < 0)) & jnp.broadcast_to(arange < steps - base, r.shape)
        flat = jnp.argmax(bad.reshape(-1))
        return base + RATE_BLOCK, jnp.any(bad), flat.astype(jnp.int32), r.reshape(-1)[flat]

    def more(carry):
        base, found, _, _ = carry
        return ~found & (base < steps)

    start = (jnp.zeros((), jnp.int32), jnp.zeros((), bool), jnp.zeros((), jnp.int32),
             jnp.zeros((), jnp.float32))
    base, found, flat, value = jax.lax.while_loop(more, body, start)
    return found, flat, base - RATE_BLOCK, value


def check_learning_rates(optimizer: Any, steps: int, *,
                         hyperparams: Optional[Dict[str, ArrayLike]] = None) -> None:
    """ValueError if a learning-rate schedule of `optimizer` is NaN, inf or negative at a count < steps.

    Rates are read in float32, the dtype they are cast to for float32 parameters, so
    1e39 counts as inf. Constant rates are checked when the optimizer is built; an
    optimizer without schedules costs nothing.

    Args:
      optimizer: a GradientTransformation (its `schedules`), or, with hyperparams, a
        function of them returning one: then each of the N optimizers is checked.
      steps: the run's number of updates, a positive int: counts 0 … steps − 1 are checked.
      hyperparams: a dict of (N,) arrays, as fnn.train.ensemble.train_many takes, or None.

    Raises:
      InputError: naming the schedule, the update and the rate that is bad.
    """
    from fnn.errors import InputError
    from fnn.validate import check_positive_int
    steps = check_positive_int("steps", steps)
    hyper = {k: jnp.asarray(v) for k, v in (hyperparams or {}).items()}
    schedules_of = _Schedules(optimizer)
    counted = []          # how many schedules one model's optimizer has, read while tracing it
    jax.eval_shape(lambda h: counted.append(len(schedules_of(h))), {k: v[0] for k, v in hyper.items()})
    n_schedules = counted[0]
    if n_schedules == 0:
        return
    found, flat, base, value = jax.device_get(_first_bad_rate(schedules_of, hyper, jnp.int32(steps)))
    if not found:
        return
    model, rest = divmod(int(flat), n_schedules * RATE_BLOCK)
    schedule, j = divmod(rest, RATE_BLOCK)
    which = f"model {model}'s " if hyper else ""
    raise InputError(f"{which}learning-rate schedule {schedule} gives {float(value):.6g} at update "
                     f"{int(base) + j}; expected a finite rate >= 0 (in float32) at every one of "
                     f"the run's {steps} updates")
