"""Token embeddings and positional encodings: integer ids → vectors, plus where each one stands.

    Embedding            y[b, t] = W[ids[b, t]]                       W (vocab, dim)
    PositionalEmbedding  y[b, t] = x[b, t] + P[t]                     P (max_len, dim), learned
    SinusoidalPositions  y[b, t] = x[b, t] + PE[t]                    fixed (Vaswani et al. 2017)

Token ids are not differentiable: Embedding's dx is a float0 array of the ids'
shape, what jax.vjp gives for an integer input. The positional layers also take
a masked sequence (x, key_mask) (fnn.layers.masking) and pass the mask on.
"""
import math
from typing import Optional, Union

import jax
import jax.numpy as jnp
import numpy as np

from fnn.errors import InputError, InputTypeError
from fnn.initializers import get_initializer
from fnn.layers.core import Layer
from fnn.layers.masking import is_masked, no_gradient, values, with_values
from fnn.typing import Initializer
from fnn.validate import check_positive_int, is_concrete

__all__ = ["Embedding", "PositionalEmbedding", "SinusoidalPositions", "normal_init"]


def normal_init(std):
    """The initializer N(0, std²) for any shape (GPT-2 draws its embeddings with std 0.02)."""
    def init(key, shape, dtype=jnp.float32):
        return std * jax.random.normal(key, shape, dtype)
    return init


def _check_ids(name, ids, vocab):
    """InputTypeError unless ids are integers; InputError for an id outside [0, vocab) (concrete ids)."""
    dtype = jnp.result_type(ids)
    if not jnp.issubdtype(dtype, jnp.integer):
        raise InputTypeError(f"{name}: input has dtype {dtype}; expected integer token ids in "
                             f"[0, {vocab - 1}] of shape (batch, T)")
    if is_concrete(ids) and np.size(ids):
        a = np.asarray(ids)
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi >= vocab:
            raise InputError(f"{name}: token id {lo if lo < 0 else hi} is out of range; "
                             f"expected ids in [0, {vocab - 1}] (vocab {vocab})")


def Embedding(vocab: int, dim: int, W_init: Union[str, Initializer] = normal_init(0.02),
              pad_id: Optional[int] = None) -> Layer:
    """A lookup table: integer token ids (batch, T) → vectors (batch, T, dim),  y = W[ids].

    Backward: each position adds its cotangent into its token's row, so a token that
    occurs twice gets both (a scatter-add):
        dW = zeros_like(W).at[ids].add(dy)         (vocab, dim)
        dids: float0 zeros (ids are not differentiable)
    Under jit, an id out of range (which cannot be checked there) gives a row of NaN,
    so a training run stops at it instead of reading another token's row.

    Args:
      vocab: the number of tokens; ids are in [0, vocab).
      dim: the width of each vector.
      W_init: the table's initializer; N(0, 0.02²) by default.
      pad_id: None, or the padding token: the output is then a masked sequence
        (y, ids != pad_id) that attention reads (fnn.layers.masking).

    Returns:
      A Layer of kind "embedding" with params {"W": (vocab, dim)}, integer_input True.

    Raises:
      InputError / InputTypeError: for vocab or dim that are not positive ints, a pad_id
      outside [0, vocab), or an unknown initializer.
    """
    vocab = check_positive_int("Embedding: vocab (the number of tokens)", vocab)
    dim = check_positive_int("Embedding: dim (the width of each vector)", dim)
    if pad_id is not None and not (isinstance(pad_id, int) and 0 <= pad_id < vocab):
        raise InputError(f"Embedding: pad_id must be None or a token id in [0, {vocab - 1}], got {pad_id!r}")
    W_init = get_initializer(W_init)
    name = f"Embedding({vocab}, {dim})"

    def init(key, input_shape, dtype=jnp.float32):
        return tuple(input_shape) + (dim,), {"W": W_init(key, (vocab, dim), dtype)}

    def forward(params, ids, *, key=None, train=False):
        del key, train
        _check_ids(name, ids, vocab)
        y = jnp.take(params["W"], ids, axis=0, mode="fill", fill_value=jnp.nan)   # (..., dim)
        return (y if pad_id is None else (y, ids != pad_id)), ids

    def backward(params, saved, dy):
        ids = saved
        dW = jnp.zeros_like(params["W"]).at[ids].add(values(dy))    # duplicate ids add
        return {"W": dW}, no_gradient(ids)

    return Layer(name, init, forward, backward, kind="embedding", integer_input=True)


def _check_positions(name, x, max_len):
    h = values(x)
    if h.ndim != 3:
        raise InputError(f"{name}: input of shape {h.shape}; expected (batch, T, dim)")
    if max_len is not None and h.shape[1] > max_len:
        raise InputError(f"{name}: sequence length T = {h.shape[1]} is more than max_len {max_len}; "
                         "build the layer with a larger max_len or give shorter sequences")
    return h


def _init_positions(name, max_len, make):
    def init(key, input_shape, dtype=jnp.float32):
        shape = tuple(input_shape)
        if len(shape) != 3:
            raise InputError(f"{name}: input shape {shape} has {len(shape)} axes; expected 3, (batch, T, dim)")
        if max_len is not None and shape[1] > max_len:
            raise InputError(f"{name}: input shape {shape} has T = {shape[1]} > max_len {max_len}")
        check_positive_int(f"{name}: dim (the last dimension of input shape {shape})", shape[-1])
        return shape, make(key, shape[-1], dtype)
    return init


def PositionalEmbedding(max_len: int, W_init: Union[str, Initializer] = normal_init(0.02)) -> Layer:
    """Learned positions: a trainable table P (max_len, dim), its first T rows added,  y = x + P[:T].

    Backward: dx = dy;  dP[:T] = Σ_batch dy,  dP[T:] = 0.
    InputError for T > max_len.

    Args:
      max_len: the longest sequence, a positive int.
      W_init: the table's initializer; N(0, 0.02²) by default.

    Returns:
      A Layer of kind "positional" with params {"W": (max_len, dim)}, for inputs
      (batch, T, dim) or masked sequences of them.

    Raises:
      InputError / InputTypeError: for max_len that is not a positive int, or an unknown
      initializer.
    """
    max_len = check_positive_int("PositionalEmbedding: max_len (the longest sequence)", max_len)
    W_init = get_initializer(W_init)
    name = f"PositionalEmbedding({max_len})"

    def forward(params, x, *, key=None, train=False):
        del key, train
        h = _check_positions(name, x, max_len)
        T = h.shape[1]
        return with_values(x, h + params["W"][None, :T]), x[1] if is_masked(x) else None

    def backward(params, saved, dy):
        mask, d = saved, values(dy)
        T = d.shape[1]
        dW = jnp.zeros_like(params["W"]).at[:T].set(jnp.sum(d, axis=0))
        return {"W": dW}, d if mask is None else (d, no_gradient(mask))

    init = _init_positions(name, max_len, lambda key, dim, dtype: {"W": W_init(key, (max_len, dim), dtype)})
    return Layer(name, init, forward, backward, kind="positional")


def sinusoids(T, dim, dtype=jnp.float32):
    """PE (T, dim): PE[t, 2i] = sin(t / 10000^(2i/dim)), PE[t, 2i+1] = cos(t / 10000^(2i/dim))."""
    t = np.arange(T, dtype=np.float64)[:, None]                       # (T, 1)
    i = np.arange(dim) // 2                                           # the pair of each column
    angle = t / np.power(10000.0, 2 * i / dim)[None, :]               # (T, dim)
    return jnp.asarray(np.where(np.arange(dim) % 2 == 0, np.sin(angle), np.cos(angle)), dtype)


def SinusoidalPositions() -> Layer:
    """Fixed sinusoidal positions (Vaswani et al. 2017, "Attention is all you need"), no params:

        PE[t, 2i]   = sin(t / 10000^(2i/dim))
        PE[t, 2i+1] = cos(t / 10000^(2i/dim)),      y = x + PE[:T]

    Backward: dx = dy.

    Returns:
      A Layer of kind "positional" with no params.
    """
    name = "SinusoidalPositions"

    def forward(params, x, *, key=None, train=False):
        del params, key, train
        h = _check_positions(name, x, None)
        pe = sinusoids(h.shape[1], h.shape[2], h.dtype)
        return with_values(x, h + pe[None]), x[1] if is_masked(x) else None

    def backward(params, saved, dy):
        del params
        return (), dy if saved is None else (values(dy), no_gradient(saved))

    return Layer(name, _init_positions(name, None, lambda key, dim, dtype: ()), forward, backward,
                 kind="positional")
