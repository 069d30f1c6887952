"""Layers as bundles of pure functions over parameter pytrees, backward beside forward.

Every layer is a `Layer` of three functions:

    init(key, input_shape, dtype=float32) -> (output_shape, params)
    forward(params, x, *, key=None, train=False) -> (y, saved)
    backward(params, saved, dy) -> (dparams, dx)

`saved` is whatever the backward needs from the forward (the layer's input,
a dropout mask, ...); `dparams` has the structure of `params`. Shapes use -1
for the batch dimension, as in `init(key, (-1, 784))`.
"""
from typing import Callable, NamedTuple, Tuple

import jax
import jax.numpy as jnp
from jax import lax
import numpy as np

from fnn.activations import get_activation
from fnn.initializers import get_initializer

__all__ = ["Layer", "Dense", "Activation", "Dropout", "serial", "mlp", "MISSING_KEY"]

MISSING_KEY = (
    "{layer} is stochastic in training and needs a PRNG key: call "
    "forward(params, x, key=jax.random.key(0), train=True), "
    "or pass train=False for inference")


class Layer(NamedTuple):
    """A layer: init, forward and its hand-written backward, plus its sub-layers."""
    name: str
    init: Callable
    forward: Callable
    backward: Callable
    layers: Tuple["Layer", ...] = ()

    def apply(self, params, x, *, key=None, train=False):
        """The forward output alone: y = f(params, x)."""
        return self.forward(params, x, key=key, train=train)[0]


def Dense(out_features, W_init="glorot_uniform", b_init="zeros", in_features=None):
    """Fully connected layer  Z = X W + b  on inputs of shape (..., in).

    Backward, summing over every leading (batch) axis of X and dZ:
        dW = Xᵀ dZ        (in, out)
        db = Σ_rows dZ     (out,)
        dX = dZ Wᵀ        (..., in)
    Both products are dot_general contractions over the shared axes, the
    same ones jax.grad emits for  X W, with no explicit transpose (x.T, W.T)
    left for XLA to fold: the optimized programs of the two backwards can be
    compared op for op (benchmarks/grads.py).

    Args:
      out_features: the number of output units.
      W_init, b_init: initializer names or callables (key, shape, dtype).
      in_features: if given, init checks the input width against it.
    """
    if isinstance(out_features, bool) or not isinstance(out_features, (int, np.integer)) or out_features < 1:
        raise ValueError(f"Dense needs a positive integer number of output units, got {out_features!r}")
    W_init, b_init = get_initializer(W_init), get_initializer(b_init)
    name = f"Dense({out_features})"

    def init(key, input_shape, dtype=jnp.float32):
        fan_in = input_shape[-1] if len(input_shape) else None
        if isinstance(fan_in, bool) or not isinstance(fan_in, (int, np.integer)) or fan_in < 1:
            raise ValueError(f"{name}: input shape {tuple(input_shape)} has width {fan_in!r}; "
                             "expected a positive last dimension, e.g. (-1, 784)")
        if in_features is not None and fan_in != in_features:
            raise ValueError(
                f"{name}: input shape {tuple(input_shape)} has width {fan_in}, "
                f"expected {in_features}")
        k_W, k_b = jax.random.split(key)
        params = {"W": W_init(k_W, (fan_in, out_features), dtype),
                  "b": b_init(k_b, (out_features,), dtype)}
        return tuple(input_shape[:-1]) + (out_features,), params

    def forward(params, x, *, key=None, train=False):
        del key, train
        W, b = params["W"], params["b"]
        if x.ndim < 1 or x.shape[-1] != W.shape[0]:
            raise ValueError(
                f"{name}: input of shape {x.shape} has width "
                f"{x.shape[-1] if x.ndim else None}, expected {W.shape[0]}")
        z = x @ W + b.reshape((1,) * (x.ndim - 1) + b.shape)  # (..., out)
        return z, x

    def backward(params, saved, dz):
        x, W = saved, params["W"]
        rows = tuple(range(x.ndim - 1))                      # the batch axes
        dW = lax.dot_general(x, dz, ((rows, rows), ((), ())))                # (in, out)
        db = jnp.sum(dz, axis=rows)                                          # (out,)
        dx = lax.dot_general(dz, W, (((dz.ndim - 1,), (1,)), ((), ())))      # (..., in)
        return {"W": dW.astype(W.dtype), "b": db.astype(params["b"].dtype)}, dx

    return Layer(name, init, forward, backward)


def Activation(activation):
    """Elementwise (or softmax) activation layer  y = f(z);  dz = vjp(z, y, dy)."""
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

    return Layer(act.name, init, forward, backward)


def Dropout(rate):
    """Inverted dropout: zero each unit with probability `rate`, scale the rest by 1/(1 − rate).

    Identity when train=False. In training it needs an explicit PRNG key.
        y = m ⊙ x / (1 − rate),   m ~ Bernoulli(1 − rate)
        dx = m ⊙ dy / (1 − rate)
    """
    if isinstance(rate, bool) or not (isinstance(rate, (int, float, np.integer, np.floating)) and 0 <= rate < 1):
        raise ValueError(f"Dropout rate is the drop probability and must be in [0, 1), got {rate!r}")
    rate = float(rate)
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
            raise ValueError(MISSING_KEY.format(layer=name))
        keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
        return jnp.where(keep, x * scale, jnp.zeros_like(x)), keep

    def backward(params, saved, dy):
        del params
        if saved is None:
            return (), dy
        return (), jnp.where(saved, dy * scale, jnp.zeros_like(dy))

    return Layer(name, init, forward, backward)


def serial(*layers):
    """Compose layers in sequence; params and saved values are tuples, one entry a layer.

    Forward runs the layers in order, each with its own key split from `key`.
    Backward runs them in reverse, feeding each layer's dx to the one before:
        dx_{i−1} = backward_i(params_i, saved_i, dx_i)
    """
    if not layers or not all(isinstance(l, Layer) for l in layers):
        raise TypeError(f"serial expects one or more fnn Layers, got {layers!r}")
    name = "serial(" + ", ".join(l.name for l in layers) + ")"
    n = len(layers)

    def init(key, input_shape, dtype=jnp.float32):
        params = []
        shape = tuple(input_shape)
        for layer, k in zip(layers, jax.random.split(key, n)):
            shape, p = layer.init(k, shape, dtype)
            params.append(p)
        return shape, tuple(params)

    def _check(params):
        if not isinstance(params, (tuple, list)) or len(params) != n:
            got = len(params) if isinstance(params, (tuple, list)) else type(params).__name__
            raise ValueError(
                f"{name}: params must be a tuple with one entry per layer ({n}), got {got}")

    def forward(params, x, *, key=None, train=False):
        _check(params)
        keys = [None] * n if key is None else list(jax.random.split(key, n))
        saved = []
        for layer, p, k in zip(layers, params, keys):
            x, s = layer.forward(p, x, key=k, train=train)
            saved.append(s)
        return x, tuple(saved)

    def backward(params, saved, dy):
        _check(params)
        dparams = [None] * n
        for i in reversed(range(n)):
            dparams[i], dy = layers[i].backward(params[i], saved[i], dy)
        return tuple(dparams), dy

    return Layer(name, init, forward, backward, tuple(layers))


_RELU_LIKE = ("relu", "leaky_relu", "gelu", "gelu_tanh", "swish", "silu", "softplus")


def mlp(sizes, activation="relu", output="identity", W_init=None, b_init="zeros", dropout=0.0):
    """A multilayer perceptron, e.g. mlp([40, 100, 100, 10]) for 40-100-100-10.

    Dense → activation (→ Dropout) for each hidden layer, then Dense → `output`.
    The output defaults to the identity, i.e. logits for the cross-entropy losses.

    Args:
      sizes: widths from input to output, at least two.
      activation: hidden activation name or fnn.ActivationFn.
      output: output activation name or fnn.ActivationFn.
      W_init: weight initializer; by default He-uniform for ReLU-like hidden
        activations and Glorot-uniform otherwise.
      b_init: bias initializer.
      dropout: drop probability after each hidden activation (0 for none).
    """
    sizes = tuple(sizes)
    if len(sizes) < 2 or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool)
                                 and s > 0 for s in sizes):
        raise ValueError(f"mlp sizes must be two or more positive ints (input to output), got {sizes!r}")
    act = get_activation(activation)
    if W_init is None:
        W_init = "he_uniform" if act.name.split("(")[0] in _RELU_LIKE else "glorot_uniform"
    layers = []
    for i, width in enumerate(sizes[1:]):
        layers.append(Dense(width, W_init, b_init, in_features=sizes[i]))
        if i < len(sizes) - 2:
            layers.append(Activation(act))
            if dropout:
                layers.append(Dropout(dropout))
    out = get_activation(output)
    if out.name != "identity":
        layers.append(Activation(out))
    return serial(*layers)
