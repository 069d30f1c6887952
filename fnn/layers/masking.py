"""Masked sequences: a pair (x, key_mask) that attention reads and every other layer passes on.

A padding mask is data, like x, so it travels with x through the model:

    x          an array (batch, T, features): every position is a real token
    (x, mask)  a masked sequence: mask is bool (batch, T), True = a real token
               (attend to it), False = padding (no query gives it any weight)

MultiHeadAttention reads the mask and returns (y, mask); residual adds the
values and keeps the mask; `pass_mask(*layers)` runs layers that know nothing
of masks (LayerNorm, Dense, an activation) on the values; `DropMask()` ends a
masked sequence, (x, mask) → x, before a loss. Embedding(..., pad_id=p) starts
one from token ids, mask = (ids != p). A plain array flows through all of
them unchanged, so a model without padding never builds a pair.

The mask is not differentiable: its cotangent is a float0 array of its shape,
what jax.vjp gives for a bool input. Shapes in init are the values' shapes.
"""
import jax
import jax.numpy as jnp
import numpy as np

from fnn.errors import InputError, InputTypeError
from fnn.layers.core import Layer, serial

__all__ = ["is_masked", "values", "key_mask", "with_values", "no_gradient", "pass_mask", "DropMask"]


def is_masked(x):
    """Whether x is a masked sequence (x, key_mask) rather than an array."""
    return isinstance(x, tuple)


def values(x):
    """The array of x: x itself, or the first element of a masked sequence."""
    return x[0] if is_masked(x) else x


def key_mask(where, x):
    """The key mask of a masked sequence, checked: bool (batch, T) to match its values; None for an array."""
    if not is_masked(x):
        return None
    if len(x) != 2:
        raise InputTypeError(f"{where}: a masked sequence is a pair (x, key_mask), got a tuple of {len(x)}")
    v, mask = x
    if not jnp.issubdtype(jnp.result_type(mask), jnp.bool_):
        raise InputTypeError(f"{where}: key_mask has dtype {jnp.result_type(mask)}; expected bool "
                             "(True = attend to the token, False = padding)")
    if np.ndim(v) < 2 or tuple(np.shape(mask)) != tuple(np.shape(v)[:2]):
        raise InputError(f"{where}: key_mask of shape {tuple(np.shape(mask))} does not fit x of shape "
                         f"{tuple(np.shape(v))}; expected (batch, T) = {tuple(np.shape(v)[:2])}")
    return mask


def with_values(x, v):
    """v in the place of x's values: v itself for an array, (v, key_mask) for a masked sequence."""
    return (v, x[1]) if is_masked(x) else v


def no_gradient(a):
    """The cotangent of a non-differentiable input (token ids, a mask): float0 zeros of its shape."""
    return np.zeros(np.shape(a), jax.dtypes.float0)


def pass_mask(*layers: Layer) -> Layer:
    """serial(*layers) on the values of a masked sequence, the mask passed on as it is.

        (x, mask) → (f(x), mask),   x → f(x)
    Backward: dx = f.backward(dy's values); the mask's cotangent is float0.
    For layers that act on each position alone (LayerNorm, Dense, an activation):
    a padded position is computed like any other and simply not attended to.

    Args:
      *layers: the fnn Layers of f, in order.

    Returns:
      A Layer of kind "pass_mask" with f's params and state.

    Raises:
      InputTypeError: for no layers, or an argument that is not a Layer.
    """
    f = serial(*layers)
    name = "pass_mask(" + ", ".join(l.name for l in layers) + ")"

    def forward(params, x, *, key=None, train=False, state=None):
        y, saved = f.forward(params, values(x), key=key, train=train, state=state)
        return with_values(x, y), (saved, x[1] if is_masked(x) else None)

    def backward(params, saved, dy):
        saved, mask = saved
        dparams, dx = f.backward(params, saved, values(dy))
        return dparams, dx if mask is None else (dx, no_gradient(mask))

    return Layer(name, f.init, forward, backward, tuple(layers), kind="pass_mask",
                 stochastic=f.stochastic, init_state=f.init_state, update_state=f.update_state)


def DropMask() -> Layer:
    """The end of a masked sequence: (x, mask) → x (an array passes as it is); dx = dy, float0 for the mask.

    Returns:
      A Layer of kind "mask" with no params.
    """
    def init(key, input_shape, dtype=jnp.float32):
        del key, dtype
        return tuple(input_shape), ()

    def forward(params, x, *, key=None, train=False):
        del params, key, train
        return values(x), x[1] if is_masked(x) else None

    def backward(params, saved, dy):
        del params
        return (), dy if saved is None else (dy, no_gradient(saved))

    return Layer("DropMask", init, forward, backward, kind="mask")
