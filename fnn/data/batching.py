"""Shuffled minibatches: one random permutation per epoch, cut into equal batches for a lax.scan.

The permutation has the distribution of jax.random.permutation but is computed
by sorting plain uint32 integers (random bits above, position below) instead
of (random key, index) pairs, which XLA sorts much more slowly on a CPU; fit
draws one per epoch (benchmarks/RESULTS.md, finding 7).
"""
import functools
import math
from typing import Tuple

import jax
import jax.numpy as jnp

from fnn.errors import InputError
from fnn.typing import Array, ArrayLike, PRNGKey
from fnn.validate import check_key, check_positive_int

__all__ = ["permutation", "batch_indices", "batches"]


def _permutation(key, n):
    """A uniformly random permutation of range(n), int32, by sorting one uint32 array per round.

    Each round packs random bits (high) and the position (low) into one uint32
    and sorts those plain integers, faster on a CPU than the (key, index) pairs
    jax.random.permutation sorts (benchmarks/RESULTS.md, finding 7). The packed
    values are distinct, so the order is that of the random bits, ties broken
    by position. Rounds compose like the passes of a radix sort: R rounds of b
    random bits order the elements as one sort by R·b random bits would.
    Rounds are added until R·b ≥ 3·log2(n), jax.random.permutation's own
    criterion, so that ties are rare enough not to bias the result.
    """
    shift = max(1, (n - 1).bit_length())                   # bits that hold a position
    free = 32 - shift                                      # random bits per key
    if free < 8:                                           # n > 2**24: jax's own pairs sort
        return jax.random.permutation(key, n).astype(jnp.int32)
    rounds = max(1, math.ceil(3 * math.log2(max(n, 2)) / free))
    bits = jax.random.bits(key, (rounds, n), jnp.uint32)   # (rounds, n)
    position = jax.lax.iota(jnp.uint32, n)                 # (n,)
    low = jnp.uint32((1 << shift) - 1)
    perm = jax.lax.iota(jnp.int32, n)                      # (n,)
    for r in range(rounds):
        packed = (bits[r] & ~low) | position               # random high bits, position low
        perm = perm[(jax.lax.sort(packed) & low).astype(jnp.int32)]
    return perm


_permutation_jit = jax.jit(_permutation, static_argnames=("n",))


def permutation(key: PRNGKey, n: int) -> Array:
    """A uniformly random permutation of range(n) (int32), drawn from a PRNG key.

    The distribution of jax.random.permutation(key, n), computed by sorting
    plain integers rather than key-index pairs (see _permutation). Deterministic
    for the same key.

    Args:
      key: PRNG key, e.g. jax.random.key(0).
      n: the number of elements, >= 1.

    Returns:
      (n,) int32.

    Raises:
      InputError / InputTypeError: for a key that is not a PRNG key or n < 1.
    """
    key = check_key("permutation: key", key)
    n = check_positive_int("permutation: n", n)
    return _permutation_jit(key, n)


@functools.partial(jax.jit, static_argnames=("n", "batch_size", "drop_remainder"))
def _batch_indices(key, n, batch_size, drop_remainder):
    perm = _permutation(key, n)                            # (n,)
    n_batches = n // batch_size if drop_remainder else math.ceil(n / batch_size)
    short = n_batches * batch_size - n
    if short > 0:                                          # refill from the start of the permutation
        perm = jnp.concatenate([perm, perm[:short]])
    return perm[:n_batches * batch_size].reshape(n_batches, batch_size).astype(jnp.int32)


def batch_indices(key: PRNGKey, n: int, batch_size: int, drop_remainder: bool = True) -> Array:
    """Shuffled minibatch indices of shape (n_batches, batch_size), int32.

    One permutation of range(n), cut into batches of equal size so that a
    jitted epoch can lax.scan over the rows. drop_remainder=True drops the last
    n mod batch_size examples of the permutation (different ones each epoch);
    False fills the last batch with the first examples of the permutation, so
    every example is seen once and a few twice.

    Args:
      key: PRNG key, e.g. jax.random.key(0).
      n: the number of examples.
      batch_size: examples per batch, 1 to n.
      drop_remainder: drop the examples that do not fill a batch (True) or refill the
        last batch from the start of the permutation (False).

    Returns:
      (n // batch_size or ceil(n / batch_size), batch_size) int32.

    Raises:
      InputError / InputTypeError: for a bad key, n or batch_size, or batch_size > n.
    """
    key = check_key("batch_indices: key", key)
    n = check_positive_int("batch_indices: n", n)
    batch_size = check_positive_int("batch_indices: batch_size", batch_size)
    if batch_size > n:
        raise InputError(f"batch_size {batch_size} is larger than the {n} examples; expected <= {n}")
    return _batch_indices(key, n, batch_size, bool(drop_remainder))


def batches(key: PRNGKey, x: ArrayLike, y: ArrayLike, batch_size: int,
            drop_remainder: bool = True) -> Tuple[Array, Array]:
    """(x_batches, y_batches) of shapes (n_batches, batch_size, ...) from one shuffle; see batch_indices.

        xb, yb = batches(key, x_train, y_train, 64)
        params, losses = jax.lax.scan(step, params, (xb, yb))

    Args:
      key: PRNG key, e.g. jax.random.key(0).
      x, y: the examples, with the same number of rows.
      batch_size: examples per batch, 1 to len(x).
      drop_remainder: as in batch_indices.

    Returns:
      (x_batches, y_batches), jax arrays.

    Raises:
      InputError / InputTypeError: for x and y of different lengths, or as batch_indices.
    """
    if len(x) != len(y):
        raise InputError(f"batches: x has {len(x)} rows but y has {len(y)}")
    idx = batch_indices(key, len(x), batch_size, drop_remainder)   # (n_batches, batch_size)
    return jnp.asarray(x)[idx], jnp.asarray(y)[idx]
