"""Feature standardization by training-split statistics:  z = (x − mean) / std.

Fit on the training split only, apply the same statistics to every split, so
test data never leaks into the scaling.
"""
from typing import Any, Dict, NamedTuple, Optional, Tuple

import numpy as np

from fnn.data.dataset import Dataset
from fnn.errors import InputError
from fnn.typing import ArrayLike

__all__ = ["Standardizer", "fit_standardizer", "standardize", "standardize_dataset"]


class Standardizer(NamedTuple):
    """Per-feature statistics of a training split:  z = (x − mean) / std.

    Plain arrays, so `np.savez(path, **s._asdict())` stores them with a checkpoint
    and `Standardizer(**np.load(path))` restores them.
    """
    mean: np.ndarray   # (features,)
    std: np.ndarray    # (features,), 1 where the training feature is constant

    def __call__(self, x):
        """z = (x − mean) / std, for numpy or jax arrays of shape (n, features)."""
        shape = (1,) + self.mean.shape
        return (x - self.mean.reshape(shape)) / self.std.reshape(shape)

    def inverse(self, z: Any) -> Any:
        """x = z·std + mean, e.g. predictions back in the original units.

        Args:
          z: standardized values, a numpy or jax array of shape (n, features).

        Returns:
          x in the original units, an array of z's kind.
        """
        shape = (1,) + self.mean.shape
        return z * self.std.reshape(shape) + self.mean.reshape(shape)


def fit_standardizer(x_train: ArrayLike) -> Standardizer:
    """Mean and std of each feature over the training rows (axis 0).

    A feature whose std is 0 (to float32 precision) gets std = 1, so it maps to 0
    instead of dividing by zero.

    Args:
      x_train: the training features, (n, features), n ≥ 1.

    Returns:
      A Standardizer of float32 (features,) arrays, computed in float64.

    Raises:
      InputError: for no training rows.
    """
    x = np.asarray(x_train, np.float64)
    if x.ndim < 1 or x.shape[0] == 0:
        raise InputError(f"fit_standardizer needs at least one training row, got shape {x.shape}")
    mean, std = x.mean(axis=0), x.std(axis=0)
    constant = std <= np.finfo(np.float32).eps * np.abs(mean)
    std = np.where(constant, 1.0, std)
    return Standardizer(mean.astype(np.float32), std.astype(np.float32))


def standardize(train: ArrayLike, *others: ArrayLike) -> Tuple[Any, ...]:
    """Fit on `train` alone, apply to it and to `others`: (stats, train_z, *others_z).

        stats, x_train, x_test = standardize(x_train, x_test)

    Args:
      train: the training split, (n, features).
      *others: more splits with the same features (validation, test).

    Returns:
      (Standardizer, train_z, *others_z), the arrays float32 numpy.

    Raises:
      InputError: for no training rows.
    """
    stats = fit_standardizer(train)
    return (stats,) + tuple(np.asarray(stats(np.asarray(a, np.float32)), np.float32)
                            for a in (train,) + others)


def standardize_dataset(ds: Dataset, targets: bool = False) -> Tuple[Dataset, Dict[str, Optional[Standardizer]]]:
    """Standardize a Dataset's features (and, for regression, optionally its targets) by train stats.

    Args:
      ds: a Dataset.
      targets: also standardize y (regression only), e.g. house prices in dollars.

    Returns:
      (dataset, {"x": Standardizer, "y": Standardizer or None}).

    Raises:
      InputError: for targets=True on a data set that is not regression.
    """
    x_stats, x_train, x_test = standardize(ds.x_train, ds.x_test)
    y_stats, y_train, y_test = None, ds.y_train, ds.y_test
    if targets:
        if ds.task != "regression":
            raise InputError(f"standardize_dataset: targets=True is for regression, {ds.name} is {ds.task}")
        y_stats, y_train, y_test = standardize(ds.y_train, ds.y_test)
    scaled = ds._replace(x_train=x_train, x_test=x_test, y_train=y_train, y_test=y_test)
    return scaled, {"x": x_stats, "y": y_stats}
