"""Checks of a user's inputs at fnn's public entries, with messages that name the value.

Shape and structure checks read only static shapes, so inside jit they run
once at trace time and cost nothing per step. Value checks (finite data,
labels in range) run only on concrete arrays — at fit()/evaluate() entry,
or in eager calls — and are skipped for traced values.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["check_params", "check_data", "check_targets", "check_positive_int", "is_concrete"]

PARAMS_MISMATCH = ("params do not match the model {model} for inputs of shape {shape}:\n"
                   "  expected {expected}\n  got      {got}")


def is_concrete(x):
    """True for an array whose values are known now (not a jit/vmap/grad tracer)."""
    return not isinstance(x, jax.core.Tracer)


def _describe(tree):
    """A one-line structure with shapes: ({'W': (2, 4), 'b': (4,)}, (), ...)."""
    return str(jax.tree.map(lambda leaf: tuple(np.shape(leaf)), tree))


@functools.lru_cache(maxsize=256)
def _expected_params(model, input_shape):
    shapes = jax.eval_shape(lambda k: model.init(k, input_shape)[1], jax.random.key(0))
    return jax.tree.structure(shapes), [tuple(s.shape) for s in jax.tree.leaves(shapes)], _describe(shapes)


def check_params(model, params, x_shape):
    """ValueError unless `params` has the tree and shapes model.init gives for inputs of x_shape."""
    shape = (-1,) + tuple(x_shape[1:]) if len(x_shape) > 1 else tuple(x_shape)
    try:
        structure, shapes, expected = _expected_params(model, shape)
    except (ValueError, TypeError):
        return                                  # the forward pass will name the input problem
    if (jax.tree.structure(params) != structure
            or [tuple(np.shape(p)) for p in jax.tree.leaves(params)] != shapes):
        raise ValueError(PARAMS_MISMATCH.format(model=model.name, shape=tuple(x_shape),
                                                expected=expected, got=_describe(params)))


def check_positive_int(name, value):
    """ValueError unless value is an int ≥ 1 (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def check_data(x, y, where="data"):
    """x and y as arrays of the same, non-zero length, with finite values (when concrete)."""
    x, y = jnp.asarray(x), jnp.asarray(y)
    if x.ndim < 1 or x.shape[0] == 0:
        raise ValueError(f"{where}: x is empty (shape {x.shape}); expected at least one example")
    if y.ndim < 1 or y.shape[0] != x.shape[0]:
        raise ValueError(f"{where}: x has {x.shape[0]} examples (shape {x.shape}) but y has "
                         f"{y.shape[0] if y.ndim else 'no'} (shape {y.shape}); expected one target per example")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{where}: x has dtype {x.dtype}; expected floating-point features")
    for name, a in (("x", x), ("y", y)):
        if is_concrete(a) and jnp.issubdtype(a.dtype, jnp.floating):
            bad = np.flatnonzero(~np.isfinite(np.asarray(a).reshape(a.shape[0], -1)).all(axis=1))
            if len(bad):
                raise ValueError(f"{where}: {name} has NaN or inf in {len(bad)} example(s), the first "
                                 f"at index {bad[0]}; expected finite values")
    return x, y


def check_targets(loss_name, out_shape, y):
    """Targets fit for the loss: integer labels in [0, classes) or float targets; 0/1 for BCE."""
    y = jnp.asarray(y)
    if loss_name == "softmax_cross_entropy":
        classes = out_shape[-1]
        if jnp.issubdtype(y.dtype, jnp.integer):
            if is_concrete(y) and y.size:
                values = np.asarray(y)
                lo, hi = int(values.min()), int(values.max())
                if lo < 0 or hi >= classes:
                    bad = lo if lo < 0 else hi
                    raise ValueError(f"{loss_name}: label {bad} is out of range for {classes} classes; "
                                     f"expected integers in [0, {classes - 1}]")
        elif y.shape != tuple(out_shape):
            raise TypeError(f"{loss_name}: targets of dtype {y.dtype} and shape {y.shape}; expected "
                            f"integer class labels of shape {tuple(out_shape[:-1])} or float "
                            f"(one-hot/soft) targets of shape {tuple(out_shape)}")
    if loss_name == "binary_cross_entropy" and is_concrete(y) and y.size:
        values = np.asarray(y, np.float64)
        if values.min() < 0 or values.max() > 1:
            raise ValueError(f"{loss_name}: target {values.min() if values.min() < 0 else values.max():g} "
                             "is outside [0, 1]; expected probabilities (0/1 labels)")
