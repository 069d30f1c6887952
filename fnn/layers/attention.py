"""Scaled dot-product attention in query blocks, with a backward that recomputes the probabilities.

For one head, queries Q, keys K, values V (T, d) and the allowed pairs A (the
causal mask j ≤ i and the key mask), with masked pairs given exactly zero weight:

    S = Q Kᵀ / √d,   lse_i = log Σ_{j∈A_i} exp(S_ij),   P_ij = exp(S_ij − lse_i) [j ∈ A_i],   O = P V

(the log-sum-exp trick: exp(S − max) before the sum, so nothing overflows).
A row with no allowed key has no probability mass: P_i = 0, O_i = 0, lse_i = −inf,
and every gradient of that row is 0. The backward keeps only lse (T,) per head
and recomputes P from it (FlashAttention's recomputation, Dao et al. 2022):

    P = exp(S − lse),  dV = Pᵀ dO,  dP = dO Vᵀ,  D = rowsum(dO ⊙ O),
    dS = P ⊙ (dP − D),  dQ = dS K / √d,  dK = dSᵀ Q / √d

D_i = Σ_j P_ij dP_ij is the softmax's row term (O = P V gives Σ_j P_ij (dO_i · V_j) = dO_i · O_i).
Both passes take the queries `block_size` at a time (a lax.map / lax.scan over
blocks, the queries zero-padded to a whole number of blocks): a block's scores
are (batch, heads, block, T), never (batch, heads, T, T), and the backward adds
each block's share into dK and dV. jax.grad of the same forward has to keep every
block's probabilities for its backward, the (T × T) matrix per head after all.
"""
import math
from typing import Optional, Tuple, Union

import jax
import jax.numpy as jnp
from jax import lax

from fnn.errors import InputError
from fnn.initializers import get_initializer
from fnn.layers.core import Layer
from fnn.layers.masking import key_mask as get_key_mask, no_gradient, values, with_values
from fnn.typing import Array, Initializer
from fnn.validate import check_bool, check_optional_positive_int, check_positive_int

__all__ = ["DEFAULT_BLOCK_SIZE", "attention_forward", "attention_backward", "MultiHeadAttention"]

DEFAULT_BLOCK_SIZE = 128       # queries per block; T ≤ 128 runs as one block


def _blocks(T, block_size):
    """(queries per block, number of blocks) for T queries."""
    bq = min(T, block_size)
    return bq, -(-T // bq)


def _split(a, bq, nb):
    """(B, H, T, ...) zero-padded to nb·bq queries, as (nb, B, H, bq, ...)."""
    T = a.shape[2]
    pad = [(0, 0)] * a.ndim
    pad[2] = (0, nb * bq - T)
    a = jnp.pad(a, pad)
    a = a.reshape(a.shape[:2] + (nb, bq) + a.shape[3:])
    return jnp.moveaxis(a, 2, 0)


def _join(a, T):
    """(nb, B, H, bq, ...) back to (B, H, T, ...), the padded queries dropped."""
    a = jnp.moveaxis(a, 0, 2)
    a = a.reshape(a.shape[:2] + (a.shape[2] * a.shape[3],) + a.shape[4:])
    return a[:, :, :T]


def _allowed(start, bq, T, causal, key_mask):
    """(B or 1, 1, bq, T) bool: which keys each query of the block at `start` may attend to."""
    keys = jnp.arange(T)
    allowed = jnp.ones((1, 1, bq, T), bool)
    if causal:
        queries = start + jnp.arange(bq)
        allowed = allowed & (keys[None, :] <= queries[:, None])[None, None]
    if key_mask is not None:
        allowed = allowed & key_mask[:, None, None, :]
    return allowed


def _scores(q, k, scale):
    """S = Q Kᵀ · scale: (B, H, bq, d), (B, H, T, d) → (B, H, bq, T)."""
    return jnp.einsum("bhqd,bhkd->bhqk", q, k) * scale


def _check(q, k, v, key_mask):
    if not (q.ndim == k.ndim == v.ndim == 4 and q.shape == k.shape and v.shape[:3] == k.shape[:3]):
        raise InputError(f"attention: q, k, v of shapes {q.shape}, {k.shape}, {v.shape}; expected "
                         "q and k (batch, heads, T, d) and v (batch, heads, T, d_v)")
    if key_mask is not None and (key_mask.shape != (q.shape[0], q.shape[2]) or key_mask.dtype != bool):
        raise InputError(f"attention: key_mask of shape {key_mask.shape} and dtype {key_mask.dtype}; "
                         f"expected bool (batch, T) = {(q.shape[0], q.shape[2])}, True = attend")


def attention_forward(q: Array, k: Array, v: Array, *, causal: bool = False, key_mask: Optional[Array] = None,
                      block_size: int = DEFAULT_BLOCK_SIZE) -> Tuple[Array, Array]:
    """O = softmax(Q Kᵀ/√d over the allowed keys) V and the per-row lse, block_size queries at a time.

    Args:
      q, k: (batch, heads, T, d).
      v: (batch, heads, T, d_v).
      causal: query i attends to keys j ≤ i only.
      key_mask: None, or bool (batch, T): False = a padding key no query attends to.
      block_size: queries per block (the scores held at once are (batch, heads, block_size, T)).

    Returns:
      (o, lse): o (batch, heads, T, d_v), 0 for a row with no allowed key; lse (batch, heads, T),
      log Σ_j exp(S_ij) over the allowed keys, −inf for such a row.

    Raises:
      InputError / InputTypeError: for shapes that do not fit, a key_mask that is not bool
      (batch, T), or a block_size that is not a positive int.
    """
    _check(q, k, v, key_mask)
    block_size = check_positive_int("attention: block_size", block_size)
    T, scale = q.shape[2], 1.0 / math.sqrt(q.shape[3])
    bq, nb = _blocks(T, block_size)

    def block(args):
        q_blk, start = args                                          # (B, H, bq, d)
        s = _scores(q_blk, k, scale)                                 # (B, H, bq, T)
        allowed = _allowed(start, bq, T, causal, key_mask)
        m = lax.stop_gradient(jnp.max(jnp.where(allowed, s, -jnp.inf), axis=-1, keepdims=True))
        m = jnp.where(jnp.isfinite(m), m, 0.0)                       # a row with no allowed key
        e = jnp.where(allowed, jnp.exp(jnp.where(allowed, s - m, 0.0)), 0.0)   # exactly 0 where masked
        total = jnp.sum(e, axis=-1, keepdims=True)                   # (B, H, bq, 1)
        safe = jnp.where(total > 0, total, 1.0)
        o = jnp.einsum("bhqk,bhkd->bhqd", e, v) / safe               # (B, H, bq, d_v)
        lse = jnp.where(total > 0, m + jnp.log(safe), -jnp.inf)[..., 0]
        return o, lse

    if nb == 1:
        return block((q, 0))
    starts = jnp.arange(nb) * bq
    o, lse = lax.map(block, (_split(q, bq, nb), starts))             # (nb, B, H, bq, ...)
    return _join(o, T), _join(lse, T)


def attention_backward(q: Array, k: Array, v: Array, o: Array, lse: Array, do: Array, *, causal: bool = False,
                       key_mask: Optional[Array] = None,
                       block_size: int = DEFAULT_BLOCK_SIZE) -> Tuple[Array, Array, Array]:
    """(dQ, dK, dV) of attention_forward from its saved (o, lse), recomputing P block by block.

        P = exp(S − lse) on the allowed pairs (0 elsewhere),  D = rowsum(dO ⊙ O)
        dV = Σ_blocks Pᵀ dO,   dS = P ⊙ (dO Vᵀ − D),   dQ = dS K/√d,   dK = Σ_blocks dSᵀ Q/√d

    Args:
      q, k, v, causal, key_mask, block_size: as given to attention_forward.
      o, lse: what attention_forward returned.
      do: (batch, heads, T, d_v), the cotangent of o.

    Returns:
      (dq, dk, dv), shaped as q, k, v.

    Raises:
      InputError / InputTypeError: as attention_forward.
    """
    _check(q, k, v, key_mask)
    block_size = check_positive_int("attention: block_size", block_size)
    T, scale = q.shape[2], 1.0 / math.sqrt(q.shape[3])
    bq, nb = _blocks(T, block_size)
    D = jnp.sum(do * o, axis=-1)                                     # (B, H, T)
    lse = jnp.where(jnp.isfinite(lse), lse, 0.0)                     # rows without keys: P = 0 anyway

    def block(carry, args):
        dk, dv = carry
        q_blk, do_blk, lse_blk, D_blk, start = args                  # (B, H, bq, ...)
        s = _scores(q_blk, k, scale)                                 # (B, H, bq, T)
        allowed = _allowed(start, bq, T, causal, key_mask)
        p = jnp.where(allowed, jnp.exp(jnp.where(allowed, s - lse_blk[..., None], 0.0)), 0.0)
        dv = dv + jnp.einsum("bhqk,bhqd->bhkd", p, do_blk)           # Pᵀ dO
        dp = jnp.einsum("bhqd,bhkd->bhqk", do_blk, v)                # dO Vᵀ
        ds = p * (dp - D_blk[..., None])                             # P ⊙ (dP − D)
        dq_blk = jnp.einsum("bhqk,bhkd->bhqd", ds, k) * scale        # dS K/√d
        dk = dk + jnp.einsum("bhqk,bhqd->bhkd", ds, q_blk) * scale   # dSᵀ Q/√d
        return (dk, dv), dq_blk

    zeros = (jnp.zeros_like(k), jnp.zeros_like(v))
    if nb == 1:
        (dk, dv), dq = block(zeros, (q, do, lse, D, 0))
        return dq, dk, dv
    blocks = tuple(_split(a, bq, nb) for a in (q, do, lse, D)) + (jnp.arange(nb) * bq,)
    (dk, dv), dq = lax.scan(block, zeros, blocks)                    # padded queries: dO = 0, no share
    return _join(dq, T), dk, dv


def _heads(a, heads):
    """(B, T, H·d) → (B, H, T, d)."""
    B, T, _ = a.shape
    return a.reshape(B, T, heads, -1).transpose(0, 2, 1, 3)


def _merge(a):
    """(B, H, T, d) → (B, T, H·d)."""
    B, H, T, d = a.shape
    return a.transpose(0, 2, 1, 3).reshape(B, T, H * d)


def _project(x, params, name):
    """x W + b for the projection `name` (q, k, v or o); no b without a bias."""
    y = jnp.einsum("btd,de->bte", x, params["W_" + name])
    return y + params["b_" + name].reshape(1, 1, -1) if "b_" + name in params else y


def _project_backward(x, dy, params, name, grads):
    """dW = Σ xᵀ dy, db = Σ dy into grads; returns dx = dy Wᵀ."""
    W = params["W_" + name]
    grads["W_" + name] = jnp.einsum("btd,bte->de", x, dy).astype(W.dtype)
    if "b_" + name in params:
        grads["b_" + name] = jnp.sum(dy, axis=(0, 1)).astype(W.dtype)
    return jnp.einsum("bte,de->btd", dy, W)


def MultiHeadAttention(heads: int, *, head_dim: Optional[int] = None, causal: bool = False,
                       block_size: int = DEFAULT_BLOCK_SIZE, use_bias: bool = True,
                       W_init: Union[str, Initializer] = "glorot_uniform") -> Layer:
    """Multi-head self-attention on x (batch, T, d_model), or on a masked sequence (x, key_mask).

        Q = x W_q + b_q,  K = x W_k,  V = x W_v + b_v      (batch, T, heads·head_dim), split by head
        O_h = attention(Q_h, K_h, V_h)  (attention_forward: causal and key masks, blocks of queries)
        y = concat_h(O_h) W_o + b_o                                (batch, T, d_model)

    Backward: dW_o = Σ Oᵀ dy, db_o = Σ dy, dO = dy W_oᵀ; (dQ, dK, dV) = attention_backward
    (recomputing P from the saved lse, see the module docstring); dW_q = Σ xᵀ dQ, db_q = Σ dQ
    (likewise k, v), dx = dQ W_qᵀ + dK W_kᵀ + dV W_vᵀ. What is saved is x, Q, K, V, O and lse:
    O(batch · T · d_model), no (T × T) array.

    There is no key bias: b_k would add q_i · b_k to every score of row i, which the softmax
    cancels; its gradient Σ_i (Σ_j dS_ij) q_i is 0 because each row of dS sums to 0
    (Σ_j P_ij (dP_ij − D_i) = D_i − D_i), so it could only ever learn round-off.

    Padding: given (x, key_mask), key_mask bool (batch, T) with True = a real token, the layer
    returns (y, key_mask); no query attends to a padding key (exactly zero weight), and a
    query whose every key is masked gets O = 0 (y = b_o). fnn.layers.masking has the rest.

    Args:
      heads: the number of heads.
      head_dim: the width of each head; None for d_model // heads (d_model must divide).
      causal: position i attends to positions j ≤ i only (a decoder).
      block_size: queries per block in forward and backward.
      use_bias: whether the projections have biases b_q, b_v, b_o (zeros at init).
      W_init: the projections' initializer.

    Returns:
      A Layer of kind "attention" with params W_q, W_k, W_v, W_o (and b_q, b_v, b_o).

    Raises:
      InputError / InputTypeError: for a setting that is not a positive int or bool, or an
      unknown initializer.
    """
    heads = check_positive_int("MultiHeadAttention: heads", heads)
    head_dim = check_optional_positive_int("MultiHeadAttention: head_dim", head_dim)
    causal = check_bool("MultiHeadAttention: causal", causal)
    block_size = check_positive_int("MultiHeadAttention: block_size", block_size)
    use_bias = check_bool("MultiHeadAttention: use_bias", use_bias)
    W_init = get_initializer(W_init)
    name = f"MultiHeadAttention({heads}{', causal' if causal else ''})"

    def init(key, input_shape, dtype=jnp.float32):
        shape = tuple(input_shape)
        if len(shape) != 3:
            raise InputError(f"{name}: input shape {shape} has {len(shape)} axes; expected 3, "
                             "(batch, T, d_model)")
        d_model = check_positive_int(f"{name}: d_model (the last dimension of input shape {shape})", shape[-1])
        if head_dim is None and d_model % heads:
            raise InputError(f"{name}: d_model {d_model} is not divisible by heads {heads}; "
                             "choose heads that divide it or give head_dim")
        inner = heads * (head_dim or d_model // heads)
        keys = jax.random.split(key, 4)
        params = {}
        for k, n in zip(keys, "qkvo"):
            params["W_" + n] = W_init(k, (inner, d_model) if n == "o" else (d_model, inner), dtype)
            if use_bias and n != "k":
                params["b_" + n] = jnp.zeros((d_model if n == "o" else inner,), dtype)
        return shape, params

    def forward(params, x, *, key=None, train=False):
        del key, train
        mask, h = get_key_mask(name, x), values(x)
        if h.ndim != 3 or h.shape[-1] != params["W_q"].shape[0]:
            raise InputError(f"{name}: input of shape {h.shape}; expected (batch, T, d_model) with "
                             f"d_model = {params['W_q'].shape[0]}")
        q, k, v = (_heads(_project(h, params, n), heads) for n in "qkv")      # (B, H, T, d)
        o, lse = attention_forward(q, k, v, causal=causal, key_mask=mask, block_size=block_size)
        y = _project(_merge(o), params, "o")                                  # (B, T, d_model)
        return with_values(x, y), (h, q, k, v, o, lse, mask)

    def backward(params, saved, dy):
        h, q, k, v, o, lse, mask = saved
        grads = {}
        do = _heads(_project_backward(_merge(o), values(dy), params, "o", grads), heads)
        dq, dk, dv = attention_backward(q, k, v, o, lse, do, causal=causal, key_mask=mask,
                                        block_size=block_size)
        dx = sum(_project_backward(h, _merge(d), params, n, grads) for n, d in zip("qkv", (dq, dk, dv)))
        grads = {n: grads[n] for n in params}                                 # params' key order
        return grads, dx if mask is None else (dx, no_gradient(mask))

    return Layer(name, init, forward, backward, kind="attention")
