"""Weight initializers: (key, shape, dtype) -> array, for a (fan_in, fan_out) weight.

    glorot_uniform   U(−a, a),  a = √(6 / (fan_in + fan_out))     Glorot & Bengio 2010
    glorot_normal    N(0, σ²),  σ = √(2 / (fan_in + fan_out))
    he_uniform       U(−a, a),  a = √(6 / fan_in)                  He et al. 2015
    he_normal        N(0, σ²),  σ = √(2 / fan_in)
    lecun_uniform    U(−a, a),  a = √(3 / fan_in)                  LeCun et al. 1998 (variance 1/fan_in)
    lecun_normal     N(0, σ²),  σ = √(1 / fan_in)
    pytorch_uniform  U(−a, a),  a = √(1 / fan_in)                  PyTorch's Linear/Conv default weight
    zeros            0
    uniform(a)       U(−a, a) for a given a: PyTorch's bias is uniform(1/√fan_in), the weight's fan_in

A weight of shape (fan_in, fan_out) is a Dense one; a convolution kernel
(k..., C_in/groups, C_out) has fan_in = prod(k)·C_in/groups and
fan_out = prod(k)·C_out (each output sees prod(k)·C_in/groups inputs), as in
PyTorch, Flax and Keras. A vector of length n has fan_in = fan_out = n.
"""
import math
from typing import Sequence, Union

import jax
import jax.numpy as jnp

from fnn.errors import InputError
from fnn.typing import DTypeLike, Initializer, PRNGKey
from fnn.validate import check_number

__all__ = [
    "glorot_uniform", "glorot_normal", "xavier_uniform", "xavier_normal",
    "he_uniform", "he_normal", "kaiming_uniform", "kaiming_normal",
    "lecun_uniform", "lecun_normal", "pytorch_uniform", "uniform", "zeros", "get_initializer",
    "INITIALIZERS",
]


def _fans(shape):
    """(fan_in, fan_out) of a weight (..., fan_in, fan_out): leading (kernel) axes multiply both.

    A vector has fan_in = fan_out = its length; a scalar 1 and 1.
    """
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def _uniform(key, shape, dtype, limit):
    return jax.random.uniform(key, shape, dtype, minval=-limit, maxval=limit)


def _normal(key, shape, dtype, std):
    return std * jax.random.normal(key, shape, dtype)


def glorot_uniform(key: PRNGKey, shape: Sequence[int], dtype: DTypeLike = jnp.float32) -> jax.Array:
    """Glorot (Xavier) uniform: U(−a, a),  a = √(6 / (fan_in + fan_out)).

    Args:
      key: a PRNG key.
      shape: the weight's shape, (fan_in, fan_out) or a kernel (k..., C_in/groups, C_out).
      dtype: a floating-point dtype.

    Returns:
      An array of `shape` and `dtype`.
    """
    fan_in, fan_out = _fans(shape)
    return _uniform(key, shape, dtype, math.sqrt(6 / (fan_in + fan_out)))


def glorot_normal(key: PRNGKey, shape: Sequence[int], dtype: DTypeLike = jnp.float32) -> jax.Array:
    """Glorot (Xavier) normal: N(0, σ²),  σ = √(2 / (fan_in + fan_out)).

    Args:
      key: a PRNG key.
      shape: the weight's shape, (fan_in, fan_out) or a kernel (k..., C_in/groups, C_out).
      dtype: a floating-point dtype.

    Returns:
      An array of `shape` and `dtype`.
    """
    fan_in, fan_out = _fans(shape)
    return _normal(key, shape, dtype, math.sqrt(2 / (fan_in + fan_out)))


def he_uniform(key: PRNGKey, shape: Sequence[int], dtype: DTypeLike = jnp.float32) -> jax.Array:
    """He (Kaiming) uniform: U(−a, a),  a = √(6 / fan_in); for relu-like activations.

    Args:
      key: a PRNG key.
      shape: the weight's shape, (fan_in, fan_out) or a kernel (k..., C_in/groups, C_out).
      dtype: a floating-point dtype.

    Returns:
      An array of `shape` and `dtype`.
    """
    fan_in, _ = _fans(shape)
    return _uniform(key, shape, dtype, math.sqrt(6 / fan_in))


def he_normal(key: PRNGKey, shape: Sequence[int], dtype: DTypeLike = jnp.float32) -> jax.Array:
    """He (Kaiming) normal: N(0, σ²),  σ = √(2 / fan_in); for relu-like activations.

    Args:
      key: a PRNG key.
      shape: the weight's shape, (fan_in, fan_out) or a kernel (k..., C_in/groups, C_out).
      dtype: a floating-point dtype.

    Returns:
      An array of `shape` and `dtype`.
    """
    fan_in, _ = _fans(shape)
    return _normal(key, shape, dtype, math.sqrt(2 / fan_in))


def lecun_uniform(key: PRNGKey, shape: Sequence[int], dtype: DTypeLike = jnp.float32) -> jax.Array:
    """LeCun uniform: U(−a, a),  a = √(3 / fan_in), variance 1/fan_in.

    Args:
      key: a PRNG key.
      shape: the weight's shape, (fan_in, fan_out) or a kernel (k..., C_in/groups, C_out).
      dtype: a floating-point dtype.

    Returns:
      An array of `shape` and `dtype`.
    """
    fan_in, _ = _fans(shape)
    return _uniform(key, shape, dtype, math.sqrt(3 / fan_in))


def lecun_normal(key: PRNGKey, shape: Sequence[int], dtype: DTypeLike = jnp.float32) -> jax.Array:
    """LeCun normal: N(0, σ²),  σ = √(1 / fan_in).

    Args:
      key: a PRNG key.
      shape: the weight's shape, (fan_in, fan_out) or a kernel (k..., C_in/groups, C_out).
      dtype: a floating-point dtype.

    Returns:
      An array of `shape` and `dtype`.
    """
    fan_in, _ = _fans(shape)
    return _normal(key, shape, dtype, math.sqrt(1 / fan_in))


def pytorch_uniform(key: PRNGKey, shape: Sequence[int], dtype: DTypeLike = jnp.float32) -> jax.Array:
    """PyTorch's Linear/Conv default weight: U(−a, a),  a = √(1 / fan_in).

    Args:
      key: a PRNG key.
      shape: the weight's shape, (fan_in, fan_out) or a kernel (k..., C_in/groups, C_out).
      dtype: a floating-point dtype.

    Returns:
      An array of `shape` and `dtype`.
    """
    fan_in, _ = _fans(shape)
    return _uniform(key, shape, dtype, math.sqrt(1 / fan_in))


def uniform(limit: float) -> Initializer:
    """The initializer U(−limit, limit) for any shape, e.g. uniform(1 / math.sqrt(fan_in)) for a bias.

    Args:
      limit: the bound a, a number > 0.

    Returns:
      init(key, shape, dtype=float32) -> array, named "uniform(a)".

    Raises:
      InputError / InputTypeError: for a limit that is not a finite number > 0.
    """
    limit = check_number("uniform(limit): limit", limit, 0, low_open=True)

    def init(key, shape, dtype=jnp.float32):
        return _uniform(key, shape, dtype, limit)
    init.__name__ = f"uniform({limit:g})"
    return init


def zeros(key: PRNGKey, shape: Sequence[int], dtype: DTypeLike = jnp.float32) -> jax.Array:
    """All zeros, the default bias.

    Args:
      key: a PRNG key (unused: the signature is every initializer's).
      shape: the array's shape.
      dtype: a floating-point dtype.

    Returns:
      jnp.zeros(shape, dtype).
    """
    del key
    return jnp.zeros(shape, dtype)


xavier_uniform = glorot_uniform
xavier_normal = glorot_normal
kaiming_uniform = he_uniform
kaiming_normal = he_normal

INITIALIZERS = {
    "glorot_uniform": glorot_uniform,
    "glorot_normal": glorot_normal,
    "xavier_uniform": glorot_uniform,
    "xavier_normal": glorot_normal,
    "he_uniform": he_uniform,
    "he_normal": he_normal,
    "kaiming_uniform": he_uniform,
    "kaiming_normal": he_normal,
    "lecun_uniform": lecun_uniform,
    "lecun_normal": lecun_normal,
    "pytorch_uniform": pytorch_uniform,
    "zeros": zeros,
}


def get_initializer(init: Union[str, Initializer]) -> Initializer:
    """An initializer from a name in INITIALIZERS or a callable (key, shape, dtype).

    Args:
      init: a name in INITIALIZERS ("glorot_uniform", "he_normal", ...) or a callable
        (key, shape, dtype) -> array, returned as it is.

    Returns:
      The initializer.

    Raises:
      InputError: for a name not in INITIALIZERS (or anything else not callable).
    """
    if callable(init):
        return init
    if isinstance(init, str) and init in INITIALIZERS:
        return INITIALIZERS[init]
    raise InputError(
        f"unknown initializer {init!r}; expected one of {', '.join(sorted(INITIALIZERS))} "
        "or a callable (key, shape, dtype) -> array")
