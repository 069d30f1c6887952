"""Convolution layers, channels-last (NWC in 1-D, NHWC in 2-D), with the backward written out.

In 1-D, for an input x (N, L, C_in), a kernel W (k, C_in/g, C_out) and a
bias b (C_out,), with stride s, dilation d, padding (p_lo, p_hi) and x = 0
outside [0, L) (2-D is the same on each spatial axis):

    z[n, i, o] = Σ_{j, c} x[n, s·i + d·j − p_lo, c] W[j, c, o] + b[o]          (N, O, C_out)
    O = ⌊(L + p_lo + p_hi − d(k − 1) − 1) / s⌋ + 1      (SAME: O = ⌈L / s⌉)

With groups g, output channel o belongs to group γ = ⌊o / (C_out/g)⌋ and
c runs over that group's C_in/g input channels only (g = C_in: depthwise).

Backward, with K = d(k − 1) + 1 the kernel's span and r = (L + p_lo + p_hi − K) mod s
the padded positions after the last window:

    dx[n, t, c] = Σ_{i, j : s·i + d·j − p_lo = t} Σ_o dz[n, i, o] W[j, c, o]
       the transposed convolution: dz dilated by s (s − 1 zeros between
       entries, lhs_dilation = s), padded by (K − 1 − p_lo, K − 1 − p_hi + r),
       correlated (rhs_dilation = d) with the kernel flipped in space and its
       in/out axes swapped within each group,
       W̃[k − 1 − j, o', γ·C_in/g + c'] = W[j, c', γ·C_out/g + o'].
       The + r gives the r trailing inputs no window read their zero gradient;
       a pad below 0 crops (p_lo > K − 1: inputs no window reads at the start).
    dW[j, c, o] = Σ_{n, i} x[n, s·i + d·j − p_lo, c] dz[n, i, o]
       the padded input correlated with dz dilated by s (rhs_dilation = s),
       sampled every d (window_strides = d), x's channels taking the place of
       the batch (batch_group_count = g). That correlation has k + ⌊r/d⌋ rows:
       the ⌊r/d⌋ past k pair dz with the leftover inputs and are cropped.
    db[o] = Σ_{n, i} dz[n, i, o]

lax.conv_general_dilated is the primitive for all three, as matmul is for Dense.
"""
from typing import Union

import jax
import jax.numpy as jnp
from jax import lax

from fnn.errors import InputError
from fnn.initializers import get_initializer
from fnn.layers.core import Layer
from fnn.layers.window import Padding, Sizes, check_padding, check_sizes, geometry, spatial_letters
from fnn.typing import Initializer
from fnn.validate import check_bool, check_positive_int

__all__ = ["Conv"]


def _name(features, kernel_size, stride, padding, dilation, groups, use_bias):
    extras = [f"{key}={value!r}" for key, value, default in (
        ("stride", stride, 1), ("padding", padding, "VALID"), ("dilation", dilation, 1),
        ("groups", groups, 1), ("use_bias", use_bias, True)) if value != default]
    return f"Conv({', '.join([str(features), repr(kernel_size)] + extras)})"


def Conv(features: int, kernel_size: Sizes, *, stride: Sizes = 1, padding: Padding = "VALID",
         dilation: Sizes = 1, groups: int = 1, use_bias: bool = True,
         W_init: Union[str, Initializer] = "he_uniform", b_init: Union[str, Initializer] = "zeros") -> Layer:
    """Convolution  z = x ⋆ W + b  over 1-D (N, L, C) or 2-D (N, H, W, C) inputs, channels last.

    Forward and backward as in the module docstring: z[n, i, o] =
    Σ_{j,c} x[n, s·i + d·j − p_lo, c] W[j, c, o] + b[o]; dx is the transposed
    convolution of dz (stride → lhs dilation, kernel flipped, in/out swapped
    per group), dW the correlation of the padded input with dz dilated by the
    stride, db = Σ dz over the batch and spatial axes. The spatial rank comes
    from init's input_shape (and from the kernel in forward). Output length per
    axis: ⌊(L + p_lo + p_hi − d(k − 1) − 1) / s⌋ + 1, ⌈L / s⌉ for SAME.

    Defaults: W_init "he_uniform", U(±√(6 / fan_in)) with fan_in = prod(k)·C_in/g,
    suited to the ReLU networks convolutions usually feed (fnn.mlp's choice for
    ReLU too); b_init "zeros", as Flax and Keras. PyTorch's default is
    W_init="pytorch_uniform", U(±1/√fan_in), with
    b_init=fnn.initializers.uniform(1/√fan_in) for the same fan_in.

    Args:
      features: the number of output channels C_out.
      kernel_size: k, an int or a tuple with one entry per spatial axis.
      stride, dilation: s and d, ints ≥ 1 or tuples per axis.
      padding: "VALID", "SAME", an int (both sides of every axis), a tuple of
        ints per axis, or a tuple of (lo, hi) pairs per axis (fnn.layers.window).
      groups: g, dividing both C_in and features (g = C_in: depthwise).
      use_bias: whether there is a bias b (params {"W", "b"}, else {"W"}).
      W_init, b_init: initializer names or callables (key, shape, dtype).
    Params:
      W (k..., C_in/g, C_out) (WIO / HWIO), b (C_out,).

    Returns:
      A Layer of kind "conv".

    Raises:
      InputError / InputTypeError: for a setting out of range (named), features not
      divisible by groups, or an unknown initializer.
    """
    features = check_positive_int("Conv: features (the number of output channels)", features)
    kernel_size = check_sizes("Conv: kernel_size", kernel_size)
    stride = check_sizes("Conv: stride", stride)
    dilation = check_sizes("Conv: dilation", dilation)
    padding = check_padding("Conv: padding", padding)
    groups = check_positive_int("Conv: groups", groups)
    use_bias = check_bool("Conv: use_bias", use_bias)
    if features % groups:
        raise InputError(f"Conv: features {features} is not divisible by groups {groups}; "
                         "expected a multiple of groups")
    W_init, b_init = get_initializer(W_init), get_initializer(b_init)
    name = _name(features, kernel_size, stride, padding, dilation, groups, use_bias)

    def _geometry(in_sizes):
        return geometry(name, in_sizes, kernel_size, stride, dilation, padding, "kernel_size")

    def init(key, input_shape, dtype=jnp.float32):
        shape = tuple(input_shape)
        spatial_letters(f"{name}: input shape {shape}", len(shape) - 2)
        for size in shape[1:]:
            check_positive_int(f"{name}: each spatial size and the channels of input shape {shape}", size)
        if shape[-1] % groups:
            raise InputError(f"{name}: input shape {shape} has {shape[-1]} channels (last axis), not "
                             f"divisible by groups {groups}; expected a multiple of {groups}")
        g = _geometry(shape[1:-1])
        k_W, k_b = jax.random.split(key)
        kernel_shape = g.window + (shape[-1] // groups, features)                        # (k..., C_in/g, C_out)
        params = {"W": W_init(k_W, kernel_shape, dtype)}
        if use_bias:
            params["b"] = b_init(k_b, (features,), dtype)                                 # (C_out,)
        return (shape[0],) + g.out_sizes + (features,), params

    def _check_input(x, W):
        """The Geometry for x; InputError unless x is (N, spatial..., C_in) for the kernel W."""
        rank = W.ndim - 2
        if x.ndim != W.ndim or x.shape[-1] != W.shape[-2] * groups:
            raise InputError(
                f"{name}: input of shape {x.shape}; expected {rank + 2} axes (batch, {rank} spatial, "
                f"channels) with {W.shape[-2] * groups} channels, as the kernel {W.shape} was made for")
        g = _geometry(x.shape[1:-1])
        if W.shape[:rank] != g.window:
            raise InputError(f"{name}: params['W'] has shape {W.shape}; expected a kernel of "
                             f"kernel_size {g.window}, shape {g.window + W.shape[rank:]}")
        return g

    def forward(params, x, *, key=None, train=False):
        del key, train
        W = params["W"]
        g = _check_input(x, W)
        dtype = jnp.result_type(x, W)
        z = lax.conv_general_dilated(x.astype(dtype), W.astype(dtype), g.stride, g.pads,
                                     rhs_dilation=g.dilation, feature_group_count=groups,
                                     dimension_numbers=_dimension_numbers(W.ndim - 2))   # (N, O..., C_out)
        if use_bias:
            b = params["b"]
            z = z + b.reshape((1,) * (z.ndim - 1) + b.shape)
        return z, x

    def backward(params, saved, dz):
        x, W = saved, params["W"]                                         # x: (N, L..., C_in)
        g = _geometry(x.shape[1:-1])
        dtype = jnp.result_type(x, W, dz)
        x, W, dz = x.astype(dtype), W.astype(dtype), dz.astype(dtype)
        grads = {"W": _kernel_grad(x, dz, g, groups).astype(params["W"].dtype)}
        if use_bias:
            grads["b"] = jnp.sum(dz, axis=tuple(range(dz.ndim - 1))).astype(params["b"].dtype)
        return grads, _input_grad(dz, W, g, groups).astype(saved.dtype)

    return Layer(name, init, forward, backward, kind="conv")


def _dimension_numbers(rank):
    """x (N, L..., C), kernel (k..., C_in/g, C_out), z (N, O..., C_out): NWC, WIO, NWC in 1-D."""
    sp = spatial_letters("Conv", rank)
    return ("N" + sp + "C", sp + "IO", "N" + sp + "C")


def _transposed_kernel(W, groups):
    """W̃ (k..., C_out/g, C_in): W (k..., C_in/g, C_out) flipped in space, in/out swapped per group.

    W̃[k − 1 − j, o', γ·C_in/g + c'] = W[j, c', γ·C_out/g + o'].
    """
    rank = W.ndim - 2
    k, c_in_g, c_out = W.shape[:rank], W.shape[-2], W.shape[-1]
    W = W.reshape(k + (c_in_g, groups, c_out // groups))                 # (k..., C_in/g, g, C_out/g)
    W = W.transpose(tuple(range(rank)) + (rank + 2, rank + 1, rank))     # (k..., C_out/g, g, C_in/g)
    W = W.reshape(k + (c_out // groups, groups * c_in_g))                # (k..., C_out/g, C_in)
    return jnp.flip(W, axis=tuple(range(rank)))


def _input_grad(dz, W, g, groups):
    """dx (N, L..., C_in): dz dilated by s, padded (K − 1 − p_lo, K − 1 − p_hi + r), ⋆ W̃ (dilation d)."""
    rank = W.ndim - 2
    pads = tuple((K - 1 - lo, K - 1 - hi + r) for K, (lo, hi), r in zip(g.span, g.pads, g.leftover))
    return lax.conv_general_dilated(dz, _transposed_kernel(W, groups), (1,) * rank, pads,
                                    lhs_dilation=g.stride, rhs_dilation=g.dilation,
                                    dimension_numbers=_dimension_numbers(rank), feature_group_count=groups)


def _kernel_grad(x, dz, g, groups):
    """dW (k..., C_in/g, C_out): the padded x ⋆ dz dilated by s, window stride d, cropped to k."""
    sp = spatial_letters("Conv", x.ndim - 2)
    dW = lax.conv_general_dilated(x, dz, g.dilation, g.pads, rhs_dilation=g.stride,
                                  dimension_numbers=("C" + sp + "N", "I" + sp + "O", sp + "NC"),
                                  batch_group_count=groups)              # (k + ⌊r/d⌋ ..., C_in/g, C_out)
    assert all(n == k + r // d for n, k, r, d in zip(dW.shape, g.window, g.leftover, g.dilation))
    return dW[tuple(slice(0, k) for k in g.window)]

