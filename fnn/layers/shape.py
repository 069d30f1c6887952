"""Layers that only rearrange each example's values: Flatten and Reshape (the batch axis kept).

    y = reshape(x, (N,) + shape),   dx = reshape(dy, x.shape)

Row-major (C) order, as numpy and jnp.reshape: Flatten of an NHWC batch
lists each example's channels fastest, then width, then height.
"""
import math
from typing import Sequence

import jax.numpy as jnp

from fnn.errors import InputError
from fnn.layers.core import Layer
from fnn.validate import check_positive_int

__all__ = ["Flatten", "Reshape"]


def _reshaping_layer(name, kind, out_shape_of):
    """A Layer y = reshape(x, (N,) + out_shape_of(x's per-example shape)); dx = reshape(dy, x.shape)."""
    def init(key, input_shape, dtype=jnp.float32):
        del key, dtype
        shape = tuple(input_shape)
        if len(shape) < 2:
            raise InputError(f"{name}: input shape {shape}; expected (batch, ...) with one or more "
                             "axes after the batch")
        for size in shape[1:]:
            check_positive_int(f"{name}: each size after the batch in input shape {shape}", size)
        return (shape[0],) + out_shape_of(shape[1:]), ()

    def forward(params, x, *, key=None, train=False):
        del params, key, train
        if not hasattr(x, "ndim") or x.ndim < 2:
            raise InputError(f"{name}: input of shape {getattr(x, 'shape', None)}; expected "
                             "(batch, ...) with one or more axes after the batch")
        return x.reshape(x.shape[:1] + out_shape_of(x.shape[1:])), x      # x: for its shape

    def backward(params, saved, dy):
        del params
        return (), dy.reshape(saved.shape)

    return Layer(name, init, forward, backward, kind=kind)


def Flatten() -> Layer:
    """(N, d₁, …, d_m) -> (N, d₁·…·d_m): each example as one row, e.g. before a Dense layer.

    Returns:
      A Layer of kind "flatten" with no params.
    """
    return _reshaping_layer("Flatten", "flatten", lambda shape: (math.prod(shape),))


def Reshape(shape: Sequence[int]) -> Layer:
    """(N, d₁, …) -> (N,) + shape, the same values per example in row-major order.

    Args:
      shape: the per-example shape, positive ints; one entry may be -1, worked
        out from the input size (as numpy's). The input's per-example size must
        equal prod(shape).

    Returns:
      A Layer of kind "reshape" with no params.

    Raises:
      InputError: for a shape that is not positive ints with at most one -1.
    """
    if not (isinstance(shape, (tuple, list)) and len(shape) > 0
            and all(isinstance(d, int) and not isinstance(d, bool) and (d >= 1 or d == -1) for d in shape)
            and list(shape).count(-1) <= 1):
        raise InputError(f"Reshape: shape must be a tuple of positive integers (the shape of one "
                         f"example, at most one -1 to be inferred), got {shape!r}")
    shape = tuple(shape)
    name = f"Reshape({shape!r})"
    known = math.prod(d for d in shape if d != -1)

    def out_shape_of(in_shape):
        size = math.prod(in_shape)
        if (-1 in shape and size % known) or (-1 not in shape and size != known):
            raise InputError(f"{name}: an example of shape {tuple(in_shape)} has {size} values; "
                             f"expected {'a multiple of ' if -1 in shape else ''}{known}")
        return tuple(size // known if d == -1 else d for d in shape)

    return _reshaping_layer(name, "reshape", out_shape_of)
