"""Numerically stable logsumexp, softmax and log_softmax (the log-sum-exp trick).

    log Σ_i exp(x_i) = a + log Σ_i exp(x_i − a),   a = max_i x_i

Shifting by the row maximum keeps every exponent ≤ 0, so nothing overflows
for logits of ±1e4. Masked classes (x_i = −inf) contribute exp(−inf) = 0.
A row that is entirely −inf has no probability mass at all; fnn defines

    logsumexp(row) = −inf,   softmax(row) = 0,   log_softmax(row) = −inf

and every gradient of such a row is finite (zero mass → zero sensitivity).
float16 and bfloat16 inputs are computed in float32 and cast back, so the sum
of exponentials does not lose its low bits.

The derivatives are written by hand as custom JVP rules, so jax.grad of these
functions follows the same formulas the hand-written backward uses:

    d logsumexp   = Σ_i s_i t_i                  s = softmax(x)
    d softmax     = s ⊙ (t − Σ_i s_i t_i)
    d log_softmax = t − Σ_i s_i t_i
"""
from functools import partial
from typing import List, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from fnn.typing import Array, ArrayLike, PyTree

__all__ = ["logsumexp", "softmax", "log_softmax", "sigmoid", "sigmoid_from_exp", "all_finite",
           "nonfinite_leaves"]


def sigmoid(z: ArrayLike) -> Array:
    """σ(z) = 1 / (1 + e^−z), as XLA's logistic primitive (jax.nn.sigmoid).

    Stable everywhere (no NaN or overflow at ±inf) and within 2 ulps of the
    exact value in float32, tails included (tested against float64). One
    primitive whose derivative rule is σ(1 − σ): jax.grad of it keeps σ alone
    (benchmarks/RESULTS.md, finding 10).

    Args:
      z: an array of any float dtype.

    Returns:
      σ(z), elementwise, in z's dtype.
    """
    return jax.nn.sigmoid(z)


def sigmoid_from_exp(z: Array) -> Array:
    """σ(z) written from e = e^−|z|: 1/(1 + e) for z ≥ 0, e/(1 + e) below.

    As stable as `sigmoid`; the form for a function that also computes
    softplus(z) = max(z, 0) + log1p(e^−|z|), which XLA then shares e with
    (the binary cross-entropy gradient; benchmarks/RESULTS.md, finding 10).

    Args:
      z: an array of any float dtype.

    Returns:
      σ(z), elementwise, in z's dtype.
    """
    e = jnp.exp(-jnp.abs(z))
    return jnp.where(z >= 0, 1 / (1 + e), e / (1 + e))


def _compute_dtype(x):
    """float32 for half precision inputs, the input dtype otherwise."""
    return jnp.promote_types(x.dtype, jnp.float32)


def _shifted(x, axis):
    """(x − a, Σ exp(x − a), a) with a the finite row maximum (0 for a masked row)."""
    x = x.astype(_compute_dtype(x))
    a = jnp.max(x, axis=axis, keepdims=True)
    a = jnp.where(jnp.isfinite(a), a, jnp.zeros_like(a))
    shifted = x - a
    total = jnp.sum(jnp.exp(shifted), axis=axis, keepdims=True)
    return shifted, total, a


def _softmax_from(shifted, total):
    safe_total = jnp.where(total > 0, total, jnp.ones_like(total))
    return jnp.exp(shifted) / safe_total


@partial(jax.custom_jvp, nondiff_argnums=(1,))
def logsumexp(x: Array, axis: int = -1) -> Array:
    """log Σ exp(x) along `axis` (kept as a size-1 dim is dropped), stable for ±1e4 and −inf.

    Args:
      x: array of logits, any float dtype.
      axis: the axis to reduce (an int).

    Returns:
      x.dtype array with `axis` removed; −inf for an all −inf row.
    """
    _, total, a = _shifted(x, axis)
    out = jnp.log(total) + a
    return jnp.squeeze(out, axis=axis).astype(x.dtype)


@logsumexp.defjvp
def _logsumexp_jvp(axis, primals, tangents):
    (x,), (t,) = primals, tangents
    shifted, total, _ = _shifted(x, axis)
    s = _softmax_from(shifted, total)
    dt = jnp.sum(s * t.astype(s.dtype), axis=axis)
    return logsumexp(x, axis), dt.astype(x.dtype)


@partial(jax.custom_jvp, nondiff_argnums=(1,))
def softmax(x: Array, axis: int = -1) -> Array:
    """exp(x − logsumexp(x)) along `axis`; zeros for an all −inf row.

    Backward (vector-Jacobian product, no Jacobian is formed):
      dx = s ⊙ (dy − Σ_i dy_i s_i)

    Args:
      x: array of logits, any float dtype.
      axis: the axis to normalize over (an int).

    Returns:
      The probabilities s, x's shape and dtype, summing to 1 along axis.
    """
    shifted, total, _ = _shifted(x, axis)
    return _softmax_from(shifted, total).astype(x.dtype)


@softmax.defjvp
def _softmax_jvp(axis, primals, tangents):
    (x,), (t,) = primals, tangents
    shifted, total, _ = _shifted(x, axis)
    s = _softmax_from(shifted, total)
    t = t.astype(s.dtype)
    dt = s * (t - jnp.sum(s * t, axis=axis, keepdims=True))
    return s.astype(x.dtype), dt.astype(x.dtype)


@partial(jax.custom_jvp, nondiff_argnums=(1,))
def log_softmax(x: Array, axis: int = -1) -> Array:
    """x − logsumexp(x) along `axis`; −inf for masked entries and all −inf rows.

    Args:
      x: array of logits, any float dtype.
      axis: the axis to normalize over (an int).

    Returns:
      log s, x's shape and dtype.
    """
    shifted, total, _ = _shifted(x, axis)
    safe_log = jnp.log(jnp.where(total > 0, total, jnp.ones_like(total)))
    out = jnp.where(total > 0, shifted - safe_log, -jnp.inf)
    return out.astype(x.dtype)


@log_softmax.defjvp
def _log_softmax_jvp(axis, primals, tangents):
    (x,), (t,) = primals, tangents
    shifted, total, _ = _shifted(x, axis)
    s = _softmax_from(shifted, total)
    t = t.astype(s.dtype)
    dt = t - jnp.sum(s * t, axis=axis, keepdims=True)
    return log_softmax(x, axis), dt.astype(x.dtype)


def all_finite(tree: PyTree) -> Array:
    """Whether every floating-point entry of a pytree is finite, as one boolean scalar.

    Integer leaves (step counts) are skipped. The flags of all leaves are
    reduced together, one reduction instead of one per leaf.

    Args:
      tree: a pytree of arrays (traced under jit, or concrete).

    Returns:
      A bool scalar array; True for a tree without floating-point leaves.
    """
    flags = [jnp.ravel(jnp.isfinite(a)) for a in jax.tree.leaves(tree)
             if jnp.issubdtype(jnp.result_type(a), jnp.inexact)]
    return jnp.all(jnp.concatenate(flags)) if flags else jnp.ones((), bool)


def nonfinite_leaves(tree: PyTree) -> List[Tuple[str, int]]:
    """[(path, count), ...] of the floating-point leaves of a concrete pytree that hold NaN/inf.

    For messages at an entry (fit, checkpoints); inside jit use all_finite.

    Args:
      tree: a pytree of concrete arrays (not traced).

    Returns:
      (path, count) per offending leaf, path as jax.tree_util.keystr writes it, e.g.
      "[0]['W']"; an empty list when all is finite.
    """
    found = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if jnp.issubdtype(jnp.result_type(leaf), jnp.inexact):
            bad = int(np.count_nonzero(~np.isfinite(np.asarray(leaf))))
            if bad:
                found.append((jax.tree_util.keystr(path), bad))
    return found
