"""Layers that act on each unit alone: an activation, dropout."""
from typing import Union

import jax
import jax.numpy as jnp

from fnn.activations import ActivationFn, get_activation
from fnn.errors import InputError
from fnn.layers.core import MISSING_KEY, Layer
from fnn.validate import check_number

__all__ = ["Activation", "Dropout"]


def Activation(activation: Union[str, ActivationFn]) -> Layer:
    """Elementwise (or softmax) activation layer  y = f(z);  dz = vjp(z, y, dy).

    Args:
      activation: a name in fnn.ACTIVATIONS or an fnn.ActivationFn.

    Returns:
      A Layer of kind "activation", named after the activation, with no params.

    Raises:
      InputError: for an unknown activation.
    """
    act = get_activation(activation)

    def init(key, input_shape, dtype=jnp.float32):
        del key, dtype
        return tuple(input_shape), ()

    def forward(params, z, *, key=None, train=False):
        del params, key, train
        y = act.fn(z)
        return y, (z, y)

    def backward(params, saved, dy):
        del params
        z, y = saved
        return (), act.vjp(z, y, dy)

    return Layer(act.name, init, forward, backward, kind="activation", activation=act)


def Dropout(rate: float) -> Layer:
    """Inverted dropout: zero each unit with probability `rate`, scale the rest by 1/(1 − rate).

    Identity when train=False. In training it needs an explicit PRNG key.
        y = m ⊙ x / (1 − rate),   m ~ Bernoulli(1 − rate)
        dx = m ⊙ dy / (1 − rate)

    Args:
      rate: the drop probability, in [0, 1).

    Returns:
      A Layer of kind "dropout" with no params, stochastic for rate > 0.

    Raises:
      InputError / InputTypeError: for a rate outside [0, 1).
    """
    rate = check_number("Dropout rate (the drop probability)", rate, 0, 1, high_open=True)
    name = f"Dropout({rate:g})"
    scale = 1.0 / (1.0 - rate)

    def init(key, input_shape, dtype=jnp.float32):
        del key, dtype
        return tuple(input_shape), ()

    def forward(params, x, *, key=None, train=False):
        del params
        if not train or rate == 0:
            return x, None
        if key is None:
            raise InputError(MISSING_KEY.format(layer=name))
        keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
        return jnp.where(keep, x * scale, jnp.zeros_like(x)), keep

    def backward(params, saved, dy):
        del params
        if saved is None:
            return (), dy
        return (), jnp.where(saved, dy * scale, jnp.zeros_like(dy))

    return Layer(name, init, forward, backward, kind="dropout", stochastic=rate > 0)
