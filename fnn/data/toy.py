"""Small data sets for the seeds and for decision boundaries: two fixed, five drawn from a PRNG key.

The fixed ones (xor, house_prices) take no key. The drawn ones take the key
first, as jax.random's functions do (`spirals(jax.random.key(0), n=200)`),
and give the same points for the same key: numpy generators seeded by the
key's bits draw them (dataset.numpy_rngs). Train and test come from
independent streams.
"""
import functools
from typing import Optional, Tuple, Union

import numpy as np

from fnn.data.dataset import Dataset, numpy_rngs
from fnn.errors import InputError
from fnn.typing import ArrayLike, PRNGKey
from fnn.validate import check_int_at_least, check_number, check_positive_int

__all__ = ["xor", "house_prices", "spirals", "moons", "circles", "blobs", "sine",
           "as_binary", "as_classification"]


# ---------------------------------------------------------------- fixed sets

def xor() -> Dataset:
    """The four XOR points; labels 0, 1, 1, 0 as binary targets (4, 1). Train = test.

    Not linearly separable: a network needs a hidden layer (seed 003).

    Returns:
      A binary Dataset: x (4, 2), y (4, 1).
    """
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)   # (4, 2)
    y = np.array([[0], [1], [1], [0]], np.float32)               # (4, 1)
    return Dataset.from_arrays("xor", "binary", 2, x, y, x, y)


def house_prices() -> Dataset:
    """Seed 000's house prices: 1000/1500/2000 sq ft -> $200k/300k/400k; test: 2500 -> $500k.

    Raw units (square feet, dollars). Gradient descent needs them rescaled:
    `standardize_dataset(house_prices(), targets=True)`.

    Returns:
      A regression Dataset: x (3, 1), y (3, 1); test x (1, 1), y (1, 1).
    """
    x = np.array([[1000], [1500], [2000]], np.float32)
    y = np.array([[200_000], [300_000], [400_000]], np.float32)
    return Dataset.from_arrays("house_prices", "regression", None, x, y,
                               np.array([[2500]], np.float32), np.array([[500_000]], np.float32))


# ---------------------------------------------------------------- shared by the drawn sets

def _class_counts(n, n_classes):
    """n points over n_classes as evenly as possible: [n//K + 1]*(n % K) + [n//K]*rest."""
    return [n // n_classes + (k < n % n_classes) for k in range(n_classes)]


def _balanced_labels(m, n_classes):
    """(m,) labels 0..K-1 in blocks of n // K or n // K + 1."""
    return np.repeat(np.arange(n_classes), _class_counts(m, n_classes))


def _shuffled(rng, x, y):
    perm = rng.permutation(len(y))
    return x[perm], y[perm]


def _draw_split(name, rng_train, rng_test, n, n_test, draw):
    """(x, y, x_test, y_test): draw(rng, m) -> (x, y) for n train and n_test test points."""
    n = check_positive_int(f"{name}: n", n)
    n_test = n if n_test is None else check_positive_int(f"{name}: n_test", n_test)
    return draw(rng_train, n) + draw(rng_test, n_test)


def _on_circle(r, theta):
    """(m, 2) points r (cos θ, sin θ)."""
    return r[:, None] * np.stack([np.cos(theta), np.sin(theta)], 1)


# ---------------------------------------------------------------- 2-D toy sets

def _spiral_points(rng, m, *, noise, n_classes, turns):
    y = _balanced_labels(m, n_classes)                              # (m,)
    t = rng.uniform(size=m)                                         # (m,)
    theta = 2 * np.pi * (turns * t + y / n_classes)
    x = _on_circle(t, theta) + noise * rng.normal(size=(m, 2))      # (m, 2)
    return _shuffled(rng, x, y)


def spirals(key: PRNGKey, n: int = 400, noise: float = 0.05, n_classes: int = 2, turns: float = 1.5,
            n_test: Optional[int] = None) -> Dataset:
    """Interleaved spiral arms in 2-D, one class per arm.

    Arm k: r = t,  θ = 2π·turns·t + 2πk/K,  x = r (cos θ, sin θ) + noise·N(0, I),
    t ~ U(0, 1). Classes hold n // K or n // K + 1 points.

    Args:
      key: PRNG key, e.g. jax.random.key(0).
      n, n_test: train and test points (n_test defaults to n).
      noise: standard deviation of the Gaussian added to each coordinate.
      n_classes: number of arms (K >= 2).
      turns: revolutions of each arm.

    Returns:
      A classification Dataset: float32 x (n, 2), int32 labels (n,).

    Raises:
      InputError / InputTypeError: for a key that is not a PRNG key or a setting out of range.
    """
    rngs = numpy_rngs("spirals: key", key, 2)
    n_classes = check_int_at_least("spirals: n_classes", n_classes, 2)
    draw = functools.partial(_spiral_points, noise=check_number("spirals: noise", noise, 0),
                             n_classes=n_classes, turns=check_number("spirals: turns", turns, 0))
    return Dataset.from_arrays("spirals", "classification", n_classes,
                               *_draw_split("spirals", *rngs, n, n_test, draw))


def _moon_points(rng, m, *, noise):
    y = _balanced_labels(m, 2)                                      # (m,)
    theta = np.pi * rng.uniform(size=m)
    upper = np.stack([np.cos(theta), np.sin(theta)], 1)             # (m, 2)
    lower = np.stack([1 - np.cos(theta), 0.5 - np.sin(theta)], 1)   # (m, 2)
    x = np.where((y == 0)[:, None], upper, lower) + noise * rng.normal(size=(m, 2))
    return _shuffled(rng, x, y)


def moons(key: PRNGKey, n: int = 400, noise: float = 0.1, n_test: Optional[int] = None) -> Dataset:
    """Two interleaving half circles (scikit-learn's make_moons), labels 0 (upper) and 1 (lower).

    Upper: (cos θ, sin θ);  lower: (1 − cos θ, ½ − sin θ);  θ ~ U(0, π);  + noise·N(0, I).

    Args:
      key: PRNG key, e.g. jax.random.key(0).
      n, n_test: train and test points (n_test defaults to n).
      noise: standard deviation of the Gaussian added to each coordinate.

    Returns:
      A classification Dataset: float32 x (n, 2), int32 labels (n,).

    Raises:
      InputError / InputTypeError: for a key that is not a PRNG key or a setting out of range.
    """
    rngs = numpy_rngs("moons: key", key, 2)
    draw = functools.partial(_moon_points, noise=check_number("moons: noise", noise, 0))
    return Dataset.from_arrays("moons", "classification", 2,
                               *_draw_split("moons", *rngs, n, n_test, draw))


def _circle_points(rng, m, *, noise, factor):
    y = _balanced_labels(m, 2)                                      # (m,)
    theta = 2 * np.pi * rng.uniform(size=m)
    x = _on_circle(np.where(y == 0, 1.0, factor), theta) + noise * rng.normal(size=(m, 2))
    return _shuffled(rng, x, y)


def circles(key: PRNGKey, n: int = 400, noise: float = 0.05, factor: float = 0.5,
            n_test: Optional[int] = None) -> Dataset:
    """Two concentric circles (scikit-learn's make_circles): label 0 radius 1, label 1 radius `factor`.

    x = r (cos θ, sin θ) + noise·N(0, I),  θ ~ U(0, 2π).

    Args:
      key: PRNG key, e.g. jax.random.key(0).
      n, n_test: train and test points (n_test defaults to n).
      noise: standard deviation of the Gaussian added to each coordinate.
      factor: the inner circle's radius, in (0, 1).

    Returns:
      A classification Dataset: float32 x (n, 2), int32 labels (n,).

    Raises:
      InputError / InputTypeError: for a key that is not a PRNG key or a setting out of range.
    """
    rngs = numpy_rngs("circles: key", key, 2)
    draw = functools.partial(
        _circle_points, noise=check_number("circles: noise", noise, 0),
        factor=check_number("circles: factor (the inner radius)", factor, 0, 1,
                            low_open=True, high_open=True))
    return Dataset.from_arrays("circles", "classification", 2,
                               *_draw_split("circles", *rngs, n, n_test, draw))


def _blob_centers(rng, centers, box):
    """(K, 2) centers: `centers` of them uniform in box², or the given array."""
    if isinstance(centers, (int, np.integer)) and not isinstance(centers, bool):
        k = check_int_at_least("blobs: centers", centers, 2)
        low = check_number("blobs: box[0]", box[0])
        high = check_number("blobs: box[1]", box[1], low, low_open=True)
        return rng.uniform(low, high, size=(k, 2))
    c = np.asarray(centers, np.float64)
    if c.ndim != 2 or c.shape[1] != 2 or c.shape[0] < 2 or not np.all(np.isfinite(c)):
        raise InputError(
            f"blobs: centers must be an int >= 2 or a finite (K >= 2, 2) array, got {centers!r}")
    return c


def _blob_points(rng, m, *, centers, std):
    y = _balanced_labels(m, len(centers))                           # (m,)
    x = centers[y] + std * rng.normal(size=(m, 2))                  # (m, 2)
    return _shuffled(rng, x, y)


def blobs(key: PRNGKey, n: int = 400, centers: Union[int, ArrayLike] = 3, std: float = 1.0,
          box: Tuple[float, float] = (-10.0, 10.0), n_test: Optional[int] = None) -> Dataset:
    """Isotropic Gaussian clusters in 2-D (scikit-learn's make_blobs), one class per center.

    x = c_k + std·N(0, I). Train and test share the centers.

    Args:
      key: PRNG key, e.g. jax.random.key(0).
      n, n_test: train and test points (n_test defaults to n).
      centers: the number of centers, drawn uniformly from `box` in each
        coordinate, or a (K, 2) array of centers.
      std: standard deviation of each cluster.
      box: (low, high) for random centers.

    Returns:
      A classification Dataset with K classes: float32 x (n, 2), int32 labels (n,).

    Raises:
      InputError / InputTypeError: for a key that is not a PRNG key or a setting out of range.
    """
    rng_centers, rng_train, rng_test = numpy_rngs("blobs: key", key, 3)
    c = _blob_centers(rng_centers, centers, box)                    # (K, 2)
    draw = functools.partial(_blob_points, centers=c, std=check_number("blobs: std", std, 0))
    return Dataset.from_arrays("blobs", "classification", len(c),
                               *_draw_split("blobs", rng_train, rng_test, n, n_test, draw))


# ---------------------------------------------------------------- 1-D function

def sine(key: PRNGKey, n: int = 256, noise: float = 0.0, n_test: int = 200) -> Dataset:
    """y = sin(x) on [−π, π], for universal approximation.

    Train: x ~ U(−π, π), y = sin x + noise·N(0, 1). Test: a grid of n_test points
    from −π to π (ends included) with the exact y = sin x, ready to plot.
    Shapes (n, 1).

    Args:
      key: PRNG key, e.g. jax.random.key(0).
      n: training points.
      noise: standard deviation of the Gaussian added to each training target.
      n_test: grid points (>= 2).

    Returns:
      A regression Dataset: x and y (n, 1); test x and y (n_test, 1).

    Raises:
      InputError / InputTypeError: for a key that is not a PRNG key or a setting out of range.
    """
    rng, = numpy_rngs("sine: key", key, 1)
    n = check_positive_int("sine: n", n)
    n_test = check_int_at_least("sine: n_test", n_test, 2)
    noise = check_number("sine: noise", noise, 0)
    x = rng.uniform(-np.pi, np.pi, size=(n, 1))                     # (n, 1)
    y = np.sin(x) + noise * rng.normal(size=(n, 1))
    grid = np.linspace(-np.pi, np.pi, n_test).reshape(-1, 1)        # (n_test, 1)
    return Dataset.from_arrays("sine", "regression", None, x, y, grid, np.sin(grid))


# ---------------------------------------------------------------- task views

def as_binary(ds: Dataset) -> Dataset:
    """A 2-class classification Dataset as binary targets (n, 1) in {0., 1.}.

    Args:
      ds: a 2-class classification Dataset (a binary one is returned as it is).

    Returns:
      The binary Dataset.

    Raises:
      InputError: for any other data set.
    """
    if ds.task == "binary":
        return ds
    if ds.task != "classification" or ds.n_classes != 2:
        raise InputError(f"as_binary needs a 2-class classification dataset, got {ds!r}")
    return Dataset.from_arrays(ds.name, "binary", 2, ds.x_train, ds.y_train, ds.x_test, ds.y_test)


def as_classification(ds: Dataset) -> Dataset:
    """A binary Dataset as int32 labels (n,) with n_classes = 2.

    Args:
      ds: a binary Dataset (a classification one is returned as it is).

    Returns:
      The classification Dataset.

    Raises:
      InputError: for a regression data set.
    """
    if ds.task == "classification":
        return ds
    if ds.task != "binary":
        raise InputError(f"as_classification needs a binary or classification dataset, got {ds!r}")
    return Dataset.from_arrays(ds.name, "classification", 2, ds.x_train, ds.y_train, ds.x_test, ds.y_test)
