"""Learning-rate schedules: functions  count -> learning rate  that work under jit.

`count` is the number of updates already made: 0 for the first update. It may
be a Python int or a traced int32 array (the optimizer passes its state's step
count), so a schedule uses jnp operations only, never Python control flow on
`count`. The value is a float array of the default float dtype.

    lr = schedules.linear_warmup(1e-3, 100, then=schedules.cosine_decay(1e-3, 900))
    lr(0), lr(50), lr(100), lr(1000)   # 0, 5e-4, 1e-3, 0

Any of them can be passed as the learning rate of an fnn.optim optimizer; the
optimizer state then records the current value (fnn.optim.current_lr).
"""
import math

import jax.numpy as jnp

from fnn.errors import InputError, InputTypeError
from fnn.validate import check_number, check_positive_int

__all__ = ["constant", "step_decay", "exponential_decay", "cosine_decay",
           "linear_warmup", "join"]


def _as_float(x):
    """x as an array of the default float dtype (float32, or float64 under x64)."""
    return jnp.asarray(x).astype(jnp.result_type(float))


def _check_schedule(fn, name, value):
    if not callable(value):
        raise InputTypeError(
            f"{fn}: {name} must be a schedule (a function count -> value), got {value!r}")


def constant(value):
    """lr(t) = value."""
    check_number("constant: value", value, 0, low_open=True)

    def schedule(count):
        del count
        return _as_float(value)

    return schedule


def step_decay(init, decay_rate, step_size):
    """Staircase decay: lr(t) = init · decay_rate^⌊t / step_size⌋.

    E.g. step_decay(0.1, 0.5, 100) halves the rate every 100 updates.
    """
    check_number("step_decay: init", init, 0, low_open=True)
    check_number("step_decay: decay_rate", decay_rate, 0, 1, low_open=True)
    check_positive_int("step_decay: step_size", step_size)

    def schedule(count):
        return _as_float(init) * _as_float(decay_rate) ** _as_float(jnp.asarray(count) // step_size)

    return schedule


def exponential_decay(init, decay_rate, decay_steps):
    """Smooth exponential decay: lr(t) = init · decay_rate^(t / decay_steps).

    The rate is multiplied by `decay_rate` every `decay_steps` updates. (Note the
    argument order: jax.example_libraries.optimizers.exponential_decay takes
    (step_size, decay_steps, decay_rate).)
    """
    check_number("exponential_decay: init", init, 0, low_open=True)
    check_number("exponential_decay: decay_rate", decay_rate, 0, 1, low_open=True)
    check_number("exponential_decay: decay_steps", decay_steps, 0, low_open=True)

    def schedule(count):
        return _as_float(init) * _as_float(decay_rate) ** (_as_float(count) / decay_steps)

    return schedule


def cosine_decay(init, decay_steps, alpha=0.0):
    """Cosine decay from init to alpha · init over decay_steps, constant after.

    lr(t) = init · ((1 − α) · ½ (1 + cos(π · min(t, T) / T)) + α),   T = decay_steps
    """
    check_number("cosine_decay: init", init, 0, low_open=True)
    check_positive_int("cosine_decay: decay_steps", decay_steps)
    check_number("cosine_decay: alpha", alpha, 0, 1)

    def schedule(count):
        t = jnp.minimum(_as_float(count), decay_steps)
        cosine = 0.5 * (1 + jnp.cos(math.pi * t / decay_steps))
        return _as_float(init) * ((1 - alpha) * cosine + alpha)

    return schedule


def join(schedules, boundaries):
    """Run schedules one after another, switching at the given update counts.

    With boundaries b_1 < b_2 < ..., lr(t) = schedules[0](t) for t < b_1,
    schedules[i](t − b_i) for b_i ≤ t < b_{i+1}: each schedule restarts its
    count at 0 when it takes over.
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


def linear_warmup(peak, warmup_steps, then=None, start=0.0):
    """Linear warm-up from `start` to `peak` over warmup_steps, then `then` (or peak).

    lr(t) = start + (peak − start) · t / W      for t < W = warmup_steps
    lr(t) = then(t − W)   (peak if then is None) for t ≥ W

    With the default start = 0 the first update has learning rate 0; `then`
    usually begins at peak, e.g. then=cosine_decay(peak, total_steps − W).
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
