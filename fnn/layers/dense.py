"""Fully connected layers and the multilayer perceptron built from them."""
from typing import Optional, Sequence, Union

import jax
import jax.numpy as jnp
from jax import lax

from fnn.activations import ActivationFn, get_activation, identity
from fnn.errors import InputError
from fnn.initializers import get_initializer
from fnn.layers.core import Layer, serial
from fnn.layers.elementwise import Activation, Dropout
from fnn.typing import Initializer
from fnn.validate import check_positive_int

__all__ = ["Dense", "mlp"]


def Dense(out_features: int, W_init: Union[str, Initializer] = "glorot_uniform",
          b_init: Union[str, Initializer] = "zeros", in_features: Optional[int] = None) -> Layer:
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

    Returns:
      A Layer of kind "dense" with params {"W": (in, out), "b": (out,)}.

    Raises:
      InputError / InputTypeError: for out_features that is not a positive int, or an
      unknown initializer.
    """
    out_features = check_positive_int("Dense: out_features (the number of output units)", out_features)
    W_init, b_init = get_initializer(W_init), get_initializer(b_init)
    name = f"Dense({out_features})"

    def init(key, input_shape, dtype=jnp.float32):
        fan_in = input_shape[-1] if len(input_shape) else None
        check_positive_int(f"{name}: the width (last dimension) of input shape {tuple(input_shape)}", fan_in)
        if in_features is not None and fan_in != in_features:
            raise InputError(
                f"{name}: input shape {tuple(input_shape)} has width {fan_in}, "
                f"expected {in_features}")
        k_W, k_b = jax.random.split(key)
        params = {"W": W_init(k_W, (fan_in, out_features), dtype),       # (in, out)
                  "b": b_init(k_b, (out_features,), dtype)}              # (out,)
        return tuple(input_shape[:-1]) + (out_features,), params

    def forward(params, x, *, key=None, train=False):
        del key, train
        W, b = params["W"], params["b"]
        if x.ndim < 1 or x.shape[-1] != W.shape[0]:
            raise InputError(
                f"{name}: input of shape {x.shape} has width "
                f"{x.shape[-1] if x.ndim else None}, expected {W.shape[0]}")
        z = x @ W + b.reshape((1,) * (x.ndim - 1) + b.shape)  # (..., out)
        return z, x

    def backward(params, saved, dz):
        x, W = saved, params["W"]                            # x: (..., in), dz: (..., out)
        rows = tuple(range(x.ndim - 1))                      # the batch axes
        dW = lax.dot_general(x, dz, ((rows, rows), ((), ())))                # (in, out)
        db = jnp.sum(dz, axis=rows)                                          # (out,)
        dx = lax.dot_general(dz, W, (((dz.ndim - 1,), (1,)), ((), ())))      # (..., in)
        return {"W": dW.astype(W.dtype), "b": db.astype(params["b"].dtype)}, dx

    return Layer(name, init, forward, backward, kind="dense")


def mlp(sizes: Sequence[int], activation: Union[str, ActivationFn] = "relu",
        output: Union[str, ActivationFn] = "identity", W_init: Union[None, str, Initializer] = None,
        b_init: Union[str, Initializer] = "zeros", dropout: float = 0.0) -> Layer:
    """A multilayer perceptron, e.g. mlp([40, 100, 100, 10]) for 40-100-100-10.

    Dense → activation (→ Dropout) for each hidden layer, then Dense → `output`.
    The output defaults to the identity, i.e. logits for the cross-entropy losses.

    Args:
      sizes: widths from input to output, at least two.
      activation: hidden activation name or fnn.ActivationFn.
      output: output activation name or fnn.ActivationFn.
      W_init: weight initializer; by default He-uniform for ReLU-like hidden
        activations (ActivationFn.relu_like) and Glorot-uniform otherwise.
      b_init: bias initializer.
      dropout: drop probability after each hidden activation (0 for none).

    Returns:
      A serial Layer; its params are one entry per layer (() for an activation or dropout).

    Raises:
      InputError / InputTypeError: for fewer than two sizes, a size that is not a positive
      int, or an unknown activation or initializer.
    """
    sizes = tuple(sizes)
    if len(sizes) < 2:
        raise InputError(f"mlp sizes must be two or more positive ints (input to output), got {sizes!r}")
    for s in sizes:
        check_positive_int(f"mlp sizes {sizes!r}: each width", s)
    act = get_activation(activation)
    if W_init is None:
        W_init = "he_uniform" if act.relu_like else "glorot_uniform"
    layers = []
    for i, width in enumerate(sizes[1:]):
        layers.append(Dense(width, W_init, b_init, in_features=sizes[i]))
        if i < len(sizes) - 2:
            layers.append(Activation(act))
            if dropout:
                layers.append(Dropout(dropout))
    out = get_activation(output)
    if out is not identity:                     # "identity" and "linear" both name this one
        layers.append(Activation(out))
    return serial(*layers)
