"""Pooling layers, channels-last (NWC, NHWC): max and average over windows, the global average.

Windows are placed as Conv's (fnn.layers.window) with dilation 1: k taps,
stride s (by default s = k, windows side by side, as in PyTorch and Keras;
Flax's pools default to s = 1), padding (p_lo, p_hi), each pad < k so that
every window holds at least one input. In 1-D (2-D: the same on each axis,
j running over the window's offsets):

MaxPool   y[n, i, c] = max_j x[n, s·i + j − p_lo, c]                 (padding counts as −inf)
    dx[n, t, c] = Σ_i dy[n, i, c] · [t = s·i + j*(n, i, c) − p_lo]
    j* is the FIRST offset of window i, in window order (row-major over the
    offsets in 2-D: along the width first, then the next row), whose input
    equals the maximum: a window's whole dy goes to one input, and of tied
    maxima the earliest takes it all. Inputs of overlapping windows (s < k)
    add the shares of every window they are the arg-max of. A window holding
    a NaN outputs NaN and passes no gradient (NaN equals no maximum).
AvgPool   y[n, i, c] = (1 / m[i]) Σ_j x[n, s·i + j − p_lo, c]          (padding counts as 0)
    m[i] = the number of inputs (not padding) in window i, so a border
    window averages the inputs it holds (count_include_pad=False, the
    default; TensorFlow's SAME, Flax's count_include_pad=False), or
    m[i] = k (prod(k) in 2-D) with count_include_pad=True (PyTorch's and
    Flax's default: padding zeros pull border averages towards 0).
    dx[n, t, c] = Σ_{i, j : s·i + j − p_lo = t} dy[n, i, c] / m[i]
GlobalAvgPool   y[n, c] = (1/P) Σ_p x[n, p, c] over the P spatial positions;  dx[n, p, c] = dy[n, c] / P

Both window backwards walk the k (prod(k)) offsets j: the inputs at offset j
of every window are the strided slice j :: s of the padded input, and a
window-shaped gradient goes back to them by lax.pad with s − 1 zeros between
entries; the sum over offsets is cropped to the unpadded input.
"""
import math
from typing import Optional

import jax.numpy as jnp
import numpy as np
from jax import lax

from fnn.errors import InputError
from fnn.layers.core import Layer
from fnn.layers.window import Padding, Sizes, check_padding, check_sizes, geometry, spatial_letters
from fnn.validate import check_bool

__all__ = ["MaxPool", "AvgPool", "GlobalAvgPool"]


def _name(kind, window, stride, padding, count_include_pad=False):
    extras = [f"{key}={value!r}" for key, value, default in (
        ("stride", stride, None), ("padding", padding, "VALID"),
        ("count_include_pad", count_include_pad, False)) if value != default]
    return f"{kind}({', '.join([repr(window)] + extras)})"


def _window_settings(kind, window, stride, padding):
    window = check_sizes(f"{kind}: window", window)
    stride = window if stride is None else check_sizes(f"{kind}: stride", stride)
    return window, stride, check_padding(f"{kind}: padding", padding)


def _pool_geometry(name, shape, window, stride, padding):
    """The Geometry of the window on (N, spatial..., C) inputs of `shape`; InputError for a pad ≥ k."""
    spatial_letters(f"{name}: input shape {tuple(shape)}", len(shape) - 2)
    g = geometry(name, tuple(shape[1:-1]), window, stride, 1, padding)
    for axis, (k, pad) in enumerate(zip(g.window, g.pads)):
        if max(pad) >= k:
            raise InputError(f"{name}: padding {pad} on spatial axis {axis} is as wide as the window "
                             f"({k}): a window could hold only padding; expected pads < {k}")
    return g


def _full(g):
    """Window config of the whole (N, spatial..., C) array: 1 on the batch and channel axes."""
    return (1,) + g.window + (1,), (1,) + g.stride + (1,), ((0, 0),) + g.pads + ((0, 0),)


def _offset_slice(g, offset):
    """Index of the inputs at `offset` in every window: the slice j : j + s(O − 1) + 1 : s per axis."""
    return (slice(None),) + tuple(slice(j, j + s * (O - 1) + 1, s)
                                  for j, s, O in zip(offset, g.stride, g.out_sizes)) + (slice(None),)


def _place(v, g, offset):
    """v (N, O..., C) moved to the inputs at `offset` of every window, in the padded input's frame."""
    padded = [L + lo + hi for L, (lo, hi) in zip(g.in_sizes, g.pads)]
    config = [(j, P - j - s * (O - 1) - 1, s - 1)
              for j, P, s, O in zip(offset, padded, g.stride, g.out_sizes)]
    return lax.pad(v, jnp.zeros((), v.dtype), [(0, 0, 0)] + config + [(0, 0, 0)])


def _unpad(dx_padded, g):
    return dx_padded[(slice(None),) + tuple(slice(lo, lo + L) for L, (lo, _) in zip(g.in_sizes, g.pads))]


def _shape_init(name, window, stride, padding):
    def init(key, input_shape, dtype=jnp.float32):
        del key, dtype
        shape = tuple(input_shape)
        g = _pool_geometry(name, shape, window, stride, padding)
        return (shape[0],) + g.out_sizes + (shape[-1],), ()
    return init


def _window_sums(x, g):
    """Σ over each window of x (N, L..., C), padding counting 0: one strided slice of the padded x
    per window offset, added. Not lax.reduce_window: XLA's CPU backend (jaxlib 0.10) sums a length-1
    axis padded to a window of 2 wrongly once there are ~1,000 windows, with reduce_window's own
    padding or a jnp.pad that jit folds into it
    (tests/test_pooling.py::test_pools_of_a_padded_length_one_axis_in_a_large_batch)."""
    padded = jnp.pad(x, _full(g)[2])
    return sum(padded[_offset_slice(g, offset)] for offset in np.ndindex(*g.window))


def MaxPool(window: Sizes, *, stride: Optional[Sizes] = None, padding: Padding = "VALID") -> Layer:
    """Max over each window,  y[n, i, c] = max_j x[n, s·i + j − p_lo, c]; padding counts as −inf.

    Backward (module docstring): each window's dy goes to its first maximal
    input in window order (row-major over the offsets), ties to the earliest;
    overlapping windows add up.

    Args:
      window: k, an int or a tuple per spatial axis.
      stride: s, an int or tuple; None (default) for s = k.
      padding: as for Conv ("VALID", "SAME", ints, (lo, hi) pairs); each pad < k.

    Returns:
      A Layer of kind "pool" with no params, for 1-D (N, L, C) or 2-D (N, H, W, C) inputs.

    Raises:
      InputError / InputTypeError: for a window, stride or padding out of range (named).
    """
    window, stride_, padding = _window_settings("MaxPool", window, stride, padding)
    name = _name("MaxPool", window, stride, padding)

    def forward(params, x, *, key=None, train=False):
        del params, key, train
        g = _pool_geometry(name, x.shape, window, stride_, padding)
        dims, strides, pads = _full(g)
        y = lax.reduce_window(x, -np.inf, lax.max, dims, strides, pads)         # lax.reduce_window_max
        return y, (x, y)                                                  # y: (N, O..., C)

    def backward(params, saved, dy):
        del params
        x, y = saved
        g = _pool_geometry(name, x.shape, window, stride_, padding)
        x_padded = jnp.pad(x, _full(g)[2], constant_values=-jnp.inf)
        taken = jnp.zeros(y.shape, bool)               # the window's maximum already has its dy
        dx = jnp.zeros(x_padded.shape, dy.dtype)
        for offset in np.ndindex(*g.window):           # window order: row-major over the offsets
            first = (x_padded[_offset_slice(g, offset)] == y) & ~taken    # (N, O..., C)
            taken = taken | first
            dx = dx + _place(jnp.where(first, dy, jnp.zeros_like(dy)), g, offset)
        return (), _unpad(dx, g)

    return Layer(name, _shape_init(name, window, stride_, padding), forward, backward, kind="pool")


def _window_counts(g, count_include_pad):
    """m (1, O..., 1): the inputs in each window, or prod(k) with count_include_pad."""
    if count_include_pad:
        return np.full((1,) + g.out_sizes + (1,), math.prod(g.window))
    counts = np.ones(())
    for L, k, s, (lo, _), O in zip(g.in_sizes, g.window, g.stride, g.pads, g.out_sizes):
        start = s * np.arange(O) - lo                                     # first position of window i
        counts = np.multiply.outer(counts, np.minimum(start + k, L) - np.maximum(start, 0))
    return counts.reshape((1,) + g.out_sizes + (1,))


def AvgPool(window: Sizes, *, stride: Optional[Sizes] = None, padding: Padding = "VALID",
            count_include_pad: bool = False) -> Layer:
    """Mean over each window,  y[n, i, c] = (1 / m[i]) Σ_j x[n, s·i + j − p_lo, c].

    m[i] is the number of real inputs in window i (padding is not counted), or
    the window size prod(k) with count_include_pad=True. Backward:
    dx[n, t, c] = Σ_{i, j : s·i + j − p_lo = t} dy[n, i, c] / m[i].

    Args:
      window: k, an int or a tuple per spatial axis.
      stride: s, an int or tuple; None (default) for s = k.
      padding: as for Conv ("VALID", "SAME", ints, (lo, hi) pairs); each pad < k.
      count_include_pad: divide by prod(k) (True) or by the real inputs (False, default).

    Returns:
      A Layer of kind "pool" with no params, for 1-D (N, L, C) or 2-D (N, H, W, C) inputs.

    Raises:
      InputError / InputTypeError: for a window, stride or padding out of range (named).
    """
    window, stride_, padding = _window_settings("AvgPool", window, stride, padding)
    count_include_pad = check_bool("AvgPool: count_include_pad", count_include_pad)
    name = _name("AvgPool", window, stride, padding, count_include_pad)

    def forward(params, x, *, key=None, train=False):
        del params, key, train
        g = _pool_geometry(name, x.shape, window, stride_, padding)
        total = _window_sums(x, g)
        return total / jnp.asarray(_window_counts(g, count_include_pad), x.dtype), x   # x: for its shape

    def backward(params, saved, dy):
        del params
        g = _pool_geometry(name, saved.shape, window, stride_, padding)
        share = dy / jnp.asarray(_window_counts(g, count_include_pad), dy.dtype)   # (N, O..., C)
        dx = sum(_place(share, g, offset) for offset in np.ndindex(*g.window))
        return (), _unpad(dx, g)

    return Layer(name, _shape_init(name, window, stride_, padding), forward, backward, kind="pool")


def GlobalAvgPool() -> Layer:
    """Mean over the spatial axes, (N, spatial..., C) -> (N, C):  y[n, c] = (1/P) Σ_p x[n, p, c].

    Backward: dx[n, p, c] = dy[n, c] / P at each of the P spatial positions.

    Returns:
      A Layer of kind "pool" with no params.
    """
    name = "GlobalAvgPool"

    def init(key, input_shape, dtype=jnp.float32):
        del key, dtype
        shape = tuple(input_shape)
        if len(shape) < 3 or any(d < 1 for d in shape[1:]):
            raise InputError(f"{name}: input shape {shape}; expected (batch, spatial..., channels) "
                             "with one or more spatial axes of positive sizes")
        return (shape[0], shape[-1]), ()

    def forward(params, x, *, key=None, train=False):
        del params, key, train
        if not hasattr(x, "ndim") or x.ndim < 3:
            raise InputError(f"{name}: input of shape {getattr(x, 'shape', None)}; expected "
                             "(batch, spatial..., channels)")
        return jnp.mean(x, axis=tuple(range(1, x.ndim - 1))), x          # (N, C); x: for its shape

    def backward(params, saved, dy):
        del params
        shape = saved.shape                                               # (N, spatial..., C)
        spread = dy.reshape(dy.shape[:1] + (1,) * (len(shape) - 2) + dy.shape[1:]) / math.prod(shape[1:-1])
        return (), jnp.broadcast_to(spread, shape)

    return Layer(name, init, forward, backward, kind="pool")
