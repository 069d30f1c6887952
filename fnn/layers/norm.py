"""Normalization layers: LayerNorm over the features, BatchNorm over the batch (and space).

Both standardize x over some axes and then scale and shift each feature:

    μ = mean(x),  σ² = mean((x − μ)²)  (biased),  σ = √(σ² + eps)
    x̂ = (x − μ) / σ,   y = γ ⊙ x̂ + β          γ: "scale", β: "offset", shape (features,)

and share one closed-form backward. With g = γ ⊙ dy and every mean over the
normalized axes (the n values that share a μ and σ):

    dx = (1/σ) (g − mean(g) − x̂ ⊙ mean(g ⊙ x̂))
    dγ = Σ dy ⊙ x̂,   dβ = Σ dy                  (sums over every axis but the features)

It follows from ∂x̂ᵢ/∂xⱼ = (δᵢⱼ − 1/n − x̂ᵢ x̂ⱼ / n) / σ: the −1/n is μ's share,
the −x̂ᵢx̂ⱼ/n is σ's.
"""
import jax
import jax.numpy as jnp

from fnn.errors import InputError
from fnn.layers.core import Layer
from fnn.validate import check_bool, check_number, check_positive_int

__all__ = ["LayerNorm", "BatchNorm", "normalize_backward"]


def _affine_params(scale, offset, features, dtype):
    """{"scale": γ = 1, "offset": β = 0}, each (features,), for the ones switched on."""
    params = {}
    if scale:
        params["scale"] = jnp.ones((features,), dtype)
    if offset:
        params["offset"] = jnp.zeros((features,), dtype)
    return params


def _per_feature(v, ndim):
    """A (features,) vector shaped (1, ..., 1, features) to meet an input of rank ndim."""
    return v.reshape((1,) * (ndim - 1) + v.shape)


def _scale_shift(params, xhat):
    """y = γ ⊙ x̂ + β, each term only if the layer has it."""
    y = xhat
    if "scale" in params:
        y = y * _per_feature(params["scale"], xhat.ndim)
    if "offset" in params:
        y = y + _per_feature(params["offset"], xhat.ndim)
    return y


def _affine_grads(params, xhat, dy, rows):
    """dγ = Σ_rows dy ⊙ x̂, dβ = Σ_rows dy, for the parameters the layer has."""
    grads = {}
    if "scale" in params:
        grads["scale"] = jnp.sum(dy * xhat, axis=rows).astype(params["scale"].dtype)
    if "offset" in params:
        grads["offset"] = jnp.sum(dy, axis=rows).astype(params["offset"].dtype)
    return grads


def _standardize(x, axes, eps):
    """(x̂, 1/σ, μ, σ²) of x over `axes`; μ, σ² and 1/σ keep those axes as size 1."""
    mean = jnp.mean(x, axis=axes, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=axes, keepdims=True)      # biased
    inv = jax.lax.rsqrt(var + eps)
    return (x - mean) * inv, inv, mean, var


def normalize_backward(g, xhat, inv, axes):
    """dx = (1/σ) (g − mean(g) − x̂ ⊙ mean(g ⊙ x̂)), the means over `axes` (g = γ ⊙ dy).

    Computed as (1/(nσ)) (n g − Σ g − x̂ ⊙ Σ g ⊙ x̂): two sums and one scale per row,
    which XLA's CPU backend runs about 20% faster than the two means (benchmarks/RESULTS.md).
    """
    axes = (axes,) if isinstance(axes, int) else tuple(axes)
    n = 1
    for a in axes:
        n *= g.shape[a]
    sum_g = jnp.sum(g, axis=axes, keepdims=True)
    sum_gx = jnp.sum(g * xhat, axis=axes, keepdims=True)
    return (inv * (1.0 / n)) * (n * g - sum_g - xhat * sum_gx)


def _times_scale(params, dy):
    """g = γ ⊙ dy (dy itself without a scale)."""
    return dy * _per_feature(params["scale"], dy.ndim) if "scale" in params else dy


def _check_width(name, x, params, min_ndim):
    """InputError unless x has at least min_ndim axes and the parameters' feature count."""
    if x.ndim < min_ndim:
        raise InputError(f"{name}: input of shape {x.shape} has {x.ndim} axes, expected at least {min_ndim}"
                         + (" (batch, ..., features)" if min_ndim > 1 else " (..., features)"))
    for v in params.values():
        if x.shape[-1] != v.shape[0]:
            raise InputError(f"{name}: input of shape {x.shape} has {x.shape[-1]} features, "
                             f"expected {v.shape[0]}")


def _check_state(name, x, state):
    """InputError unless state is BatchNorm's {"mean", "var"} with x's channel count."""
    if not (isinstance(state, dict) and set(state) == {"mean", "var"}):
        raise InputError(f"{name}: state must be {{'mean': (channels,), 'var': (channels,)}} from "
                         f"fnn.init_state(model, input_shape), got {_describe(state)}")
    _check_width(name, x, state, 2)


def _describe(tree):
    text = repr(jax.tree.map(lambda a: getattr(a, "shape", a), tree))
    return text if len(text) <= 80 else text[:80] + "..."


def _init(name, scale, offset, min_ndim):
    def init(key, input_shape, dtype=jnp.float32):
        del key
        shape = tuple(input_shape)
        if len(shape) < min_ndim:
            raise InputError(f"{name}: input shape {shape} has {len(shape)} axes, expected at least {min_ndim}"
                             + (" (batch, ..., features)" if min_ndim > 1 else " (..., features)"))
        features = check_positive_int(f"{name}: the features (last dimension) of input shape {shape}",
                                      shape[-1])
        return shape, _affine_params(scale, offset, features, dtype)
    return init


def LayerNorm(*, eps: float = 1e-5, scale: bool = True, offset: bool = True) -> Layer:
    """Layer normalization over the last (feature) axis of each example.

        μ = mean_f(x),  σ = √(mean_f((x − μ)²) + eps),  x̂ = (x − μ)/σ,  y = γ ⊙ x̂ + β

    Backward (g = γ ⊙ dy; means over the features f of one example; sums over every
    leading axis):
        dx = (1/σ) (g − mean_f(g) − x̂ ⊙ mean_f(g ⊙ x̂))
        dγ = Σ dy ⊙ x̂,   dβ = Σ dy

    Args:
      eps: added to the variance before the square root, > 0.
      scale, offset: whether to learn γ (params "scale", ones at init) and β ("offset", zeros).

    Returns:
      A Layer of kind "norm".

    Raises:
      InputError / InputTypeError: for eps ≤ 0 or scale/offset that are not bools.
    """
    eps = check_number("LayerNorm: eps", eps, 0, low_open=True)
    scale, offset = check_bool("LayerNorm: scale", scale), check_bool("LayerNorm: offset", offset)
    name = "LayerNorm"

    def forward(params, x, *, key=None, train=False):
        del key, train
        _check_width(name, x, params, 1)
        xhat, inv, _, _ = _standardize(x, -1, eps)
        return _scale_shift(params, xhat), (xhat, inv)

    def backward(params, saved, dy):
        xhat, inv = saved                                          # (..., f), (..., 1)
        rows = tuple(range(dy.ndim - 1))
        dx = normalize_backward(_times_scale(params, dy), xhat, inv, -1)
        return _affine_grads(params, xhat, dy, rows), dx

    return Layer(name, _init(name, scale, offset, 1), forward, backward, kind="norm")


def BatchNorm(*, momentum: float = 0.9, eps: float = 1e-5, scale: bool = True, offset: bool = True) -> Layer:
    """Batch normalization over every axis but the last: batch (and spatial) axes, channels last.

    Training (batch statistics, means over the n = batch × spatial values of a channel):
        μ = mean(x),  σ² = mean((x − μ)²)  (biased),  x̂ = (x − μ)/√(σ² + eps),  y = γ ⊙ x̂ + β
      backward, with g = γ ⊙ dy and the same means:
        dx = (1/σ) (g − mean(g) − x̂ ⊙ mean(g ⊙ x̂))
        dγ = Σ dy ⊙ x̂,   dβ = Σ dy
      and the running statistics, in update_state, after each training forward:
        mean ← momentum · mean + (1 − momentum) · μ
        var  ← momentum · var  + (1 − momentum) · σ²      (the biased σ², as flax and Keras keep it)
    Inference (train=False: the running statistics, constants):
        y = γ ⊙ (x − mean)/√(var + eps) + β,   dx = γ ⊙ dy / √(var + eps)

    momentum 0.9 (PyTorch's momentum=0.1 in its convention; flax and Keras use 0.99):
    the running averages forget a batch after about 1/(1 − momentum) = 10 steps, so
    short runs end with statistics of the trained network, not of its start.

    State (fnn.init_state): {"mean": zeros, "var": ones}, each (channels,).

    A bias added just before BatchNorm (Dense's b) is cancelled by the − μ: its gradient
    is 0 in exact arithmetic, round-off in practice, so a relative-error gradient check
    on it compares round-off with round-off, and Adam, which divides by √v, turns that
    round-off into full-size steps that differ between the two gradient methods.

    Args:
      momentum: in [0, 1): the weight of the old running statistics.
      eps: added to the variance before the square root, > 0.
      scale, offset: whether to learn γ (params "scale") and β ("offset").

    Returns:
      A stateful Layer of kind "norm"; its state {"mean", "var"} comes from fnn.init_state.

    Raises:
      InputError / InputTypeError: for momentum outside [0, 1), eps ≤ 0, or scale/offset
      that are not bools.
    """
    momentum = check_number("BatchNorm: momentum", momentum, 0, 1, high_open=True)
    eps = check_number("BatchNorm: eps", eps, 0, low_open=True)
    scale, offset = check_bool("BatchNorm: scale", scale), check_bool("BatchNorm: offset", offset)
    name = "BatchNorm"

    def init_state(input_shape, dtype=jnp.float32):
        channels = input_shape[-1]
        return {"mean": jnp.zeros((channels,), dtype), "var": jnp.ones((channels,), dtype)}

    def forward(params, x, *, key=None, train=False, state=None):
        del key
        _check_width(name, x, params, 2)
        axes = tuple(range(x.ndim - 1))                            # batch and spatial
        if train:
            xhat, inv, mean, var = _standardize(x, axes, eps)
            return _scale_shift(params, xhat), (xhat, inv, mean, var)
        _check_state(name, x, state)
        mean, var = _per_feature(state["mean"], x.ndim), _per_feature(state["var"], x.ndim)
        inv = 1.0 / jnp.sqrt(var + eps)                            # (1, ..., c)
        xhat = (x - mean) * inv
        return _scale_shift(params, xhat), (xhat, inv)

    def backward(params, saved, dy):
        xhat, inv = saved[:2]
        axes = tuple(range(dy.ndim - 1))
        g = _times_scale(params, dy)
        dx = normalize_backward(g, xhat, inv, axes) if len(saved) == 4 else g * inv
        return _affine_grads(params, xhat, dy, axes), dx

    def update_state(state, saved):
        if len(saved) != 4:
            raise InputError(f"{name}: update_state needs what a training forward (train=True) saved; "
                             "an inference forward uses the running statistics and leaves them as they are")
        _, _, mean, var = saved
        new = lambda old, batch: (momentum * old + (1 - momentum) * batch.reshape(old.shape)).astype(old.dtype)
        return {"mean": new(state["mean"], mean), "var": new(state["var"], var)}

    return Layer(name, _init(name, scale, offset, 2), forward, backward, kind="norm",
                 init_state=init_state, update_state=update_state)
