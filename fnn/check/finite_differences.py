"""Central finite differences of a scalar function of a parameter pytree, in float64.

    ∂L/∂pᵢ ≈ (L(p + h eᵢ) − L(p − h eᵢ)) / 2h

A central difference errs by O(h²·|∂³L|) (truncation) plus O(ε·|L| / h)
(round-off, ε = 2.2e-16); the default h = FD_EPS = 1e-5 sits near the
optimum ε^(1/3) ≈ 6e-6. With h = 1e-6 the round-off term alone reaches 8e-7
on the gradient-check grid's deep softmax networks (examples/gradcheck_grid.py),
whose first-layer gradients are ~1e-4·|L|.
"""
import jax
import numpy as np

__all__ = ["FD_EPS", "sample_indices", "central_differences"]

FD_EPS = 1e-5                  # central-difference step h (≈ ε^(1/3) for float64)

_CHUNK = 256                   # parameter elements per vmapped batch (× 2 signs)
_CHUNK_ELEMENTS = 1 << 22      # at most this many elements (chunk × params) at once


def sample_indices(sizes, max_per_leaf, key):
    """Per leaf, the element indices (within the leaf) to difference: all, or a sorted sample.

    Args:
      sizes: the number of elements of each leaf.
      max_per_leaf: None for every element; else at most this many per leaf,
        drawn without replacement from key folded with the leaf's index.
      key: a PRNG key (unused when max_per_leaf is None or no leaf is larger).
    Returns:
      a list of int arrays, one per leaf.
    """
    picks = []
    for i, n in enumerate(sizes):
        if max_per_leaf is None or n <= max_per_leaf:
            picks.append(np.arange(n))
        else:
            idx = jax.random.choice(jax.random.fold_in(key, i), n, (max_per_leaf,), replace=False)
            picks.append(np.sort(np.asarray(idx)))
    return picks


def central_differences(f, leaves, treedef, picks, eps):
    """(f(p + h eᵢ) − f(p − h eᵢ)) / (pᵢ⁺ − pᵢ⁻) for the picked elements of each leaf.

    The divisor is the step actually taken in floating point, not 2h. The
    perturbed parameter vectors are built on the host, a chunk at a time with
    both signs, and f is vmapped over them; chunks have one fixed length (the
    last is padded), so models of different sizes share compiled code.

    Args:
      f: params pytree -> scalar loss (vmappable), called under float64.
      leaves, treedef: the flattened parameters (jax.tree_util.tree_flatten).
      picks: per leaf, the element indices to difference (sample_indices).
      eps: the step h > 0.
    Returns:
      a float64 array: the differences of every picked element, leaf after leaf.
    """
    leaves = [np.asarray(leaf, np.float64) for leaf in leaves]
    sizes = [leaf.size for leaf in leaves]
    offsets = np.cumsum([0] + sizes)
    indices = np.concatenate([o + p for o, p in zip(offsets, picks)] + [np.zeros(0, np.int64)])
    n = len(indices)
    if n == 0:
        return np.zeros(0)
    flat = np.concatenate([leaf.ravel() for leaf in leaves])     # (n_params,)
    chunk = _CHUNK
    while chunk > 1 and 2 * chunk * flat.size > _CHUNK_ELEMENTS:
        chunk //= 2
    padded = np.zeros(-(-n // chunk) * chunk, dtype=np.int64)
    padded[:n] = indices
    rows = np.arange(chunk)
    parts = []
    for s in range(0, len(padded), chunk):
        i = padded[s:s + chunk]                                     # (chunk,)
        plus, minus = flat[i] + eps, flat[i] - eps
        batch = np.tile(flat, (2 * chunk, 1))                       # (2·chunk, n_params)
        batch[rows, i] = plus
        batch[chunk + rows, i] = minus
        columns = np.split(batch, offsets[1:-1], axis=1)
        batched = jax.tree_util.tree_unflatten(
            treedef, [c.reshape((2 * chunk,) + leaf.shape) for c, leaf in zip(columns, leaves)])
        values = np.asarray(jax.vmap(f)(batched))                   # (2·chunk,)
        parts.append((values[:chunk] - values[chunk:]) / (plus - minus))
    return np.concatenate(parts)[:n]
