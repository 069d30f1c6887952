"""Checks of a user's inputs at fnn's public entries, with messages that name the value.

Scalar settings (counts, rates, fractions, names, PRNG keys) are checked
by the check_* functions at the top: every module uses these, so the same
mistake reads the same everywhere, e.g. "steps must be a positive integer,
got 0". Each returns the value normalised (a Python int or float).

Shape and structure checks read only static shapes, so inside jit they run
once at trace time and cost nothing per step. Value checks (finite data,
labels in range) run only on concrete arrays — at fit()/evaluate() entry,
or in eager calls — and are skipped for traced values.
"""
import math
import numbers

import jax
import jax.numpy as jnp
import numpy as np

from fnn.errors import InputError, InputTypeError

__all__ = ["MAX_STEPS", "check_positive_int", "check_non_negative_int", "check_int_at_least", "check_number",
           "check_optional_positive_int", "check_bool", "check_choice", "check_key", "check_callable",
           "check_model", "as_array", "parse_int_list", "parse_float_list", "check_params", "check_model_state", "check_data", "check_targets",
           "is_concrete"]


# The most steps a run can count: TrainState.step and fit's steps-left counter are int32.
MAX_STEPS = 2**31 - 1


def _is_int(value):
    return (isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)))


def check_positive_int(name, value, maximum=None):
    """value as an int, or ValueError unless it is an integer ≥ 1 (and ≤ maximum if given; bools refused).

    numpy integers are accepted (and returned as int).
    """
    if not _is_int(value) or value < 1:
        raise InputError(f"{name} must be a positive integer, got {value!r}")
    if maximum is not None and value > maximum:
        raise InputError(f"{name} must be a positive integer at most {maximum}, got {value!r}")
    return int(value)


def check_optional_positive_int(name, value):
    """None, or value as an int ≥ 1: ValueError for anything else (0, -1, 2.5, True)."""
    if value is None:
        return None
    if not _is_int(value) or value < 1:
        raise InputError(f"{name} must be a positive integer or None, got {value!r}")
    return int(value)


def check_bool(name, value):
    """value as a bool, or TypeError unless it is True or False (numpy bools accepted)."""
    if not isinstance(value, (bool, np.bool_)):
        raise InputTypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_callable(name, value, optional=True):
    """value, or TypeError unless it is callable (or None when optional)."""
    if not (callable(value) or (optional and value is None)):
        raise InputTypeError(f"{name} must be a function{' or None' if optional else ''}, got {value!r}")
    return value


def check_non_negative_int(name, value):
    """value as an int, or ValueError unless it is an integer ≥ 0 (bools refused)."""
    if not _is_int(value) or value < 0:
        raise InputError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def check_int_at_least(name, value, minimum):
    """value as an int, or ValueError unless it is an integer ≥ minimum (bools refused)."""
    if not _is_int(value) or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_number(name, value, low=None, high=None, *, low_open=False, high_open=False):
    """value as a float, or ValueError unless it is a finite real number in the given range.

    low/high bound it (None: unbounded); low_open/high_open exclude the bound
    itself, e.g. check_number("rate", r, 0, 1, high_open=True) for [0, 1).
    """
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        lo = "" if low is None else ("(" if low_open else "[") + f"{low:g}"
        hi = "" if high is None else f"{high:g}" + (")" if high_open else "]")
        where = (f" in {lo or '(-inf'}, {hi or 'inf)'}" if low is not None or high is not None else "")
        raise InputError(f"{name} must be a finite number{where}, got {value!r}")
    return float(value)


def check_choice(name, value, choices):
    """value, or ValueError unless it is one of `choices` (listed in the message)."""
    if not isinstance(value, str) or value not in choices:
        raise InputError(f"unknown {name} {value!r}; expected one of {', '.join(map(str, choices))}")
    return value


def check_key(name, key):
    """key, or TypeError unless it is a single PRNG key (jax.random.key(...) or a raw uint32[2] key)."""
    if isinstance(key, jax.Array) or isinstance(key, jax.core.Tracer):
        dtype, shape = key.dtype, key.shape
        if jnp.issubdtype(dtype, jax.dtypes.prng_key) and shape == ():
            return key
        if dtype == jnp.uint32 and shape == (2,):
            return key
    raise InputTypeError(f"{name} must be a PRNG key such as jax.random.key(0), got "
                    f"{_describe_value(key)}")


def _describe_value(value, limit=80):
    if isinstance(value, (jax.Array, np.ndarray)):
        return f"an array of dtype {value.dtype} and shape {value.shape}"
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... (a {type(value).__name__})"


def parse_int_list(name, text, *, at_least=0):
    """'100,100' -> [100, 100]; ValueError unless every comma-separated entry is a positive integer.

    at_least: the fewest entries accepted ('' is [] when 0).
    """
    try:
        values = [int(s) for s in str(text).split(",") if s.strip()]
    except ValueError:
        values = None
    if values is None or any(v < 1 for v in values) or len(values) < at_least:
        raise InputError(f"{name} must be comma-separated positive integers such as 100,100, got {text!r}")
    return values


def parse_float_list(name, text):
    """'0.3,1' -> [0.3, 1.0]; ValueError unless there is one or more finite positive numbers."""
    try:
        values = [float(s) for s in str(text).split(",") if s.strip()]
    except ValueError:
        values = []
    if not values or not all(math.isfinite(v) and v > 0 for v in values):
        raise InputError(f"{name} must be comma-separated positive numbers such as 0.3,1.0, got {text!r}")
    return values


PARAMS_MISMATCH = ("params do not match the model {model} for inputs of shape {shape}:\n"
                   "  expected {expected}\n  got      {got}")


def is_concrete(x):
    """True for an array whose values are known now (not a jit/vmap/grad tracer)."""
    return not isinstance(x, jax.core.Tracer)


def _describe(tree):
    """A one-line structure with shapes: ({'W': (2, 4), 'b': (4,)}, (), ...)."""
    return str(jax.tree.map(lambda leaf: tuple(np.shape(leaf)), tree))


def _expected_params(model, input_shape):
    """(tree structure, leaf shapes, description) of model.init's params, from shapes alone (no arrays)."""
    shapes = jax.eval_shape(lambda k: model.init(k, input_shape)[1], jax.random.key(0))
    return jax.tree.structure(shapes), [tuple(s.shape) for s in jax.tree.leaves(shapes)], _describe(shapes)


def check_model(model, where=None):
    """model, or TypeError unless it is an fnn Layer; `where` (e.g. "fit") prefixes the message."""
    from fnn.layers.core import Layer            # fnn.layers imports this module
    if not isinstance(model, Layer):
        raise InputTypeError(f"{where + ': ' if where else ''}model must be an fnn Layer such as fnn.mlp([784, 100, 10]), "
                             f"got {_describe_value(model)}")
    return model


def check_params(model, params, x_shape):
    """ValueError unless `params` has the tree and shapes model.init gives for inputs of x_shape."""
    check_model(model)
    shape = (-1,) + tuple(x_shape[1:]) if len(x_shape) > 1 else tuple(x_shape)
    try:
        structure, shapes, expected = _expected_params(model, shape)
    except (ValueError, TypeError):
        return                                  # the forward pass will name the input problem
    if (jax.tree.structure(params) != structure
            or [tuple(np.shape(p)) for p in jax.tree.leaves(params)] != shapes):
        raise InputError(PARAMS_MISMATCH.format(model=model.name, shape=tuple(x_shape),
                                                expected=expected, got=_describe(params)))


STATE_MISMATCH = ("{where}model_state does not match the model {model} for inputs of shape {shape}:\n"
                  "  expected {expected} (fnn.init_state(model, {init_shape}))\n  got      {got}")


def check_model_state(model, state, x_shape, where=None):
    """ValueError unless `state` has the tree and shapes fnn.init_state gives for inputs of x_shape.

    None passes (no state given: the forward decides whether it needs one).
    """
    check_model(model)
    if state is None:
        return
    from fnn.layers.core import init_state       # fnn.layers imports this module
    shape = (-1,) + tuple(x_shape[1:]) if len(x_shape) > 1 else tuple(x_shape)
    try:
        expected = jax.eval_shape(lambda: init_state(model, shape))
    except (ValueError, TypeError):
        return                                  # the forward pass will name the input problem
    if (jax.tree.structure(state) != jax.tree.structure(expected)
            or [tuple(np.shape(s)) for s in jax.tree.leaves(state)]
            != [tuple(s.shape) for s in jax.tree.leaves(expected)]):
        raise InputError(STATE_MISMATCH.format(where=f"{where}: " if where else "", model=model.name,
                                               shape=tuple(x_shape), expected=_describe(expected),
                                               init_shape=shape, got=_describe(state)))


def check_data(x, y, where="data", *, token_ids=False):
    """x and y as arrays of the same, non-zero length, with finite values (when concrete).

    x holds floating-point features, or, with token_ids=True (a model whose first layer
    takes integer ids: Layer.integer_input), integers and only integers.
    """
    x, y = as_array(f"{where}: x", x), as_array(f"{where}: y", y)
    if x.ndim < 1 or x.shape[0] == 0:
        raise InputError(f"{where}: x is empty (shape {x.shape}); expected at least one example")
    if y.ndim < 1 or y.shape[0] != x.shape[0]:
        raise InputError(f"{where}: x has {x.shape[0]} examples (shape {x.shape}) but y has "
                         f"{y.shape[0] if y.ndim else 'no'} (shape {y.shape}); expected one target per example")
    for name, a in (("x", x), ("y", y)):
        if jnp.issubdtype(a.dtype, jnp.complexfloating):
            raise InputTypeError(f"{where}: {name} has complex dtype {a.dtype}; complex numbers are not "
                                 f"supported: expected real floating-point values")
    if token_ids and not jnp.issubdtype(x.dtype, jnp.integer):
        raise InputTypeError(f"{where}: x has dtype {x.dtype}; the model's first layer takes integer "
                             "token ids (Embedding): expected an integer array such as int32")
    if not token_ids and not jnp.issubdtype(x.dtype, jnp.floating):
        raise InputTypeError(f"{where}: x has dtype {x.dtype}; expected floating-point features "
                             "(integer x is for a model whose first layer takes token ids, such as Embedding)")
    for name, a in (("x", x), ("y", y)):
        if is_concrete(a) and jnp.issubdtype(a.dtype, jnp.floating):
            bad = np.flatnonzero(~np.isfinite(np.asarray(a).reshape(a.shape[0], -1)).all(axis=1))
            if len(bad):
                raise InputError(f"{where}: {name} has NaN or inf in {len(bad)} example(s), the first "
                                 f"at index {bad[0]}; expected finite values")
    return x, y


def as_array(name, value):
    """jnp.asarray(value), or TypeError naming `name` for what is not an array of numbers (None, a str)."""
    try:
        return jnp.asarray(value)
    except (TypeError, ValueError):
        raise InputTypeError(f"{name} must be an array of numbers, got {_describe_value(value)}") from None


def _check_soft_targets(name, y):
    """ValueError at the first negative soft target (concrete targets only): weights must be ≥ 0."""
    if not (is_concrete(y) and y.size):
        return
    values = np.asarray(y, np.float64)
    negative = np.flatnonzero(values.reshape(-1) < 0)
    if len(negative):
        where = np.unravel_index(negative[0], values.shape)
        raise InputError(f"{name}: soft target {values[where]:g} at index {tuple(map(int, where))} is "
                         "negative; expected weights ≥ 0 per class (one-hot or a probability "
                         "distribution per example)")


def check_targets(loss, out_shape, y):
    """Targets fit for the loss's task: integer labels in [0, classes) or soft targets ≥ 0; [0, 1] for binary."""
    y = jnp.asarray(y)
    if loss.task == "classification":
        classes = out_shape[-1]
        if jnp.issubdtype(y.dtype, jnp.integer):
            if is_concrete(y) and y.size:
                values = np.asarray(y)
                lo, hi = int(values.min()), int(values.max())
                if lo < 0 or hi >= classes:
                    bad = lo if lo < 0 else hi
                    raise InputError(f"{loss.name}: label {bad} is out of range for {classes} classes; "
                                     f"expected integers in [0, {classes - 1}]")
        elif y.shape != tuple(out_shape):
            raise InputTypeError(f"{loss.name}: targets of dtype {y.dtype} and shape {y.shape}; expected "
                            f"integer class labels of shape {tuple(out_shape[:-1])} or float "
                            f"(one-hot/soft) targets of shape {tuple(out_shape)}")
        else:
            _check_soft_targets(loss.name, y)
    if loss.task == "binary" and is_concrete(y) and y.size:
        values = np.asarray(y, np.float64)
        if values.min() < 0 or values.max() > 1:
            raise InputError(f"{loss.name}: target {values.min() if values.min() < 0 else values.max():g} "
                             "is outside [0, 1]; expected probabilities (0/1 labels)")
