"""Activation functions, each beside its hand-written derivative.

An `ActivationFn` bundles

    fn(z)            -> y = f(z)
    derivative(z, y) -> f'(z), elementwise (None for softmax, which is not)
    vjp(z, y, dy)    -> dz = dy ⊙ f'(z), or softmax's s ⊙ (dy − Σ dy⊙s)

The derivative may use the input z, the output y, or both; inside jit XLA
drops whichever the formula does not read.
"""
import math
from typing import Callable, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp
from jax.scipy.special import erf

from fnn import numerics
from fnn.errors import InputError

__all__ = [
    "ActivationFn", "identity", "sigmoid", "tanh", "relu", "leaky_relu", "gelu",
    "swish", "silu", "softplus", "softmax", "get_activation", "ACTIVATIONS",
]


class ActivationFn(NamedTuple):
    """A named activation f with its hand-written derivative.

    relu_like: f is ≈ 0 for z < 0 and ≈ z for z > 0, so half of its inputs pass on
      average: Dense layers before it default to He initialization (Var = 2/fan_in).
    kinked: f' jumps at z = 0 (relu, leaky_relu): a finite difference across 0
      measures a one-sided slope, so gradient checks draw inputs away from it.
    """
    name: str
    fn: Callable
    vjp: Callable
    derivative: Optional[Callable] = None
    relu_like: bool = False
    kinked: bool = False


def _elementwise(name, fn, derivative, *, relu_like=False, kinked=False):
    """An ActivationFn whose vjp is dy ⊙ f'(z)."""
    def vjp(z, y, dy):
        return dy * derivative(z, y)
    return ActivationFn(name, fn, vjp, derivative, relu_like, kinked)


_sigmoid = numerics.sigmoid


# f(z) = z;  f'(z) = 1
identity = _elementwise(
    "identity", lambda z: z, lambda z, y: jnp.ones_like(z))

# σ(z);  σ'(z) = σ(z)(1 − σ(z)) = y(1 − y)
sigmoid = _elementwise("sigmoid", _sigmoid, lambda z, y: y * (1 - y))

# tanh(z);  tanh'(z) = 1 − tanh²(z) = 1 − y²
tanh = _elementwise("tanh", jnp.tanh, lambda z, y: 1 - y * y)

# max(0, z);  f'(z) = 1 if z > 0 else 0  (0 at the kink, as jax.nn.relu)
# Read from the output: y > 0 exactly where z > 0. The backward then needs y,
# which the next layer reads anyway, and not z: one activation fewer kept per layer.
relu = _elementwise(
    "relu",
    lambda z: jnp.where(z > 0, z, jnp.zeros_like(z)),
    lambda z, y: (y > 0).astype(y.dtype),
    relu_like=True, kinked=True)


def _is_negative(z):
    """z < 0, read from the bits: true for negative subnormals, false for −0.0.

    XLA's CPU backend treats subnormal inputs as 0 in comparisons, so z < 0 is
    false for z = −1e-45 in float32; the sign bit and a non-zero magnitude are not.
    """
    bits = jax.lax.bitcast_convert_type(z, jnp.dtype(f"int{8 * z.dtype.itemsize}"))
    return (bits < 0) & (bits != jnp.iinfo(bits.dtype).min)          # sign set, magnitude ≠ 0


def _sign_set(y):
    """The sign bit of y (set for −0.0 too), read from the bits."""
    return jax.lax.bitcast_convert_type(y, jnp.dtype(f"int{8 * y.dtype.itemsize}")) < 0


def leaky_relu(slope: float = 0.1) -> ActivationFn:
    """max(slope·z, z) for 0 ≤ slope < 1;  f'(z) = 1 if z ≥ 0 else slope (1 at ±0).

        y = slope·z   where z < 0,     |z|   where z ≥ 0

    Seed 004 draws it with slope 0.1, the default here. z < 0 is read from
    z's bits (`_is_negative`), so a negative subnormal z takes the slope.
    For slope > 0 the derivative is read from the output's sign bit, so the
    backward keeps y (the next layer's input) and not z (benchmarks/RESULTS.md,
    finding 2). The sign bit and not y ≥ 0: slope·z can underflow to −0.0
    (z = −1e-37 in float32), which still carries the sign; and |z| in the
    forward turns z = −0.0 into +0.0, whose derivative is 1 as at +0.
    Slope 0 needs z, since y is ±0 on both sides of the kink.

    Args:
      slope: the slope for z < 0, in [0, 1).

    Returns:
      An ActivationFn, named "leaky_relu" for slope 0.1 and "leaky_relu(slope)" otherwise.

    Raises:
      InputError: for a slope outside [0, 1).
    """
    if not 0 <= slope < 1:
        raise InputError(f"leaky_relu slope must be in [0, 1), got {slope!r}")

    def fn(z):
        return jnp.where(_is_negative(z), slope * z, jnp.abs(z))

    if slope > 0:
        def derivative(z, y):
            return jnp.where(_sign_set(y), jnp.full_like(y, slope), jnp.ones_like(y))
    else:
        def derivative(z, y):
            return jnp.where(_is_negative(z), jnp.full_like(z, slope), jnp.ones_like(z))
    return _elementwise(
        "leaky_relu" if slope == 0.1 else f"leaky_relu({slope})",
        fn, derivative, relu_like=True, kinked=True)


_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)


def _gelu_exact(z):
    """z·Φ(z) = ½ z (1 + erf(z/√2))."""
    return 0.5 * z * (1 + erf(z / math.sqrt(2)))


def _gelu_exact_derivative(z, y):
    """Φ(z) + z·φ(z),  φ(z) = e^{−z²/2} / √(2π)."""
    del y
    return 0.5 * (1 + erf(z / math.sqrt(2))) + z * _INV_SQRT_2PI * jnp.exp(-0.5 * z * z)


def _gelu_tanh(z):
    """½ z (1 + tanh(u)),  u = √(2/π)(z + 0.044715 z³)."""
    return 0.5 * z * (1 + jnp.tanh(_SQRT_2_OVER_PI * (z + 0.044715 * z ** 3)))


def _gelu_tanh_derivative(z, y):
    """½(1 + t) + ½ z (1 − t²) √(2/π)(1 + 3·0.044715 z²),  t = tanh(u)."""
    del y
    t = jnp.tanh(_SQRT_2_OVER_PI * (z + 0.044715 * z ** 3))
    du = _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * z * z)
    return 0.5 * (1 + t) + 0.5 * z * (1 - t * t) * du


def gelu(approximate: bool = False) -> ActivationFn:
    """GELU: the exact erf form (default) or the tanh approximation.

    exact:  z·Φ(z) = ½ z (1 + erf(z/√2));       f'(z) = Φ(z) + z·φ(z)
    tanh:   ½ z (1 + tanh(√(2/π)(z + 0.044715 z³)))

    Args:
      approximate: False for the erf form ("gelu"), True for the tanh form ("gelu_tanh").

    Returns:
      An ActivationFn.
    """
    if approximate:
        return _elementwise("gelu_tanh", _gelu_tanh, _gelu_tanh_derivative, relu_like=True)
    return _elementwise("gelu", _gelu_exact, _gelu_exact_derivative, relu_like=True)


def _swish_derivative(z, y):
    """d/dz z·σ(z) = σ(z)(1 + z(1 − σ(z)))."""
    del y
    s = _sigmoid(z)
    return s * (1 + z * (1 - s))


# z·σ(z), also called SiLU
swish = _elementwise("swish", lambda z: z * _sigmoid(z), _swish_derivative, relu_like=True)
silu = swish

# log(1 + e^z) = max(z, 0) + log1p(e^−|z|);  f'(z) = σ(z) = 1 − e^−y = −expm1(−y)
# jnp.logaddexp(z, 0) computes exactly that; written out with maximum and abs,
# jax.grad at z = 0 would give ½ − ½ = 0 instead of σ(0) = ½.
# The derivative is read from the output y (e^−y = 1 / (1 + e^z) = 1 − σ(z)):
# the backward keeps y, the next layer's input, instead of z and e^−|z| as well;
# expm1 keeps σ(z) ≈ y accurate in the far left tail.
softplus = _elementwise(
    "softplus",
    lambda z: jnp.logaddexp(z, 0),
    lambda z, y: -jnp.expm1(-y),
    relu_like=True)


def _softmax_vjp(z, y, dy):
    """dz = s ⊙ (dy − Σ_j dy_j s_j) along the last axis; the Jacobian is never formed."""
    del z
    return y * (dy - jnp.sum(dy * y, axis=-1, keepdims=True))


softmax = ActivationFn("softmax", numerics.softmax, _softmax_vjp, None)


ACTIVATIONS = {
    "identity": identity,
    "linear": identity,
    "sigmoid": sigmoid,
    "tanh": tanh,
    "relu": relu,
    "leaky_relu": leaky_relu(0.1),
    "gelu": gelu(approximate=False),
    "gelu_tanh": gelu(approximate=True),
    "swish": swish,
    "silu": silu,
    "softplus": softplus,
    "softmax": softmax,
}


def get_activation(activation: Union[str, ActivationFn]) -> ActivationFn:
    """An ActivationFn from a name in ACTIVATIONS or an ActivationFn itself.

    Args:
      activation: a name in ACTIVATIONS ("relu", "tanh", "gelu", ...) or an ActivationFn,
        returned as it is.

    Returns:
      The ActivationFn.

    Raises:
      InputError: for anything else, naming the activations there are.
    """
    if isinstance(activation, ActivationFn):
        return activation
    if isinstance(activation, str) and activation in ACTIVATIONS:
        return ACTIVATIONS[activation]
    raise InputError(
        f"unknown activation {activation!r}; expected one of "
        f"{', '.join(sorted(ACTIVATIONS))} or an fnn.ActivationFn")
