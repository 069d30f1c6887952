"""The Dataset type every loader returns, the tasks, and numpy generators drawn from a PRNG key.

    x_train, x_test   float32 features, (n, features)
    y_train, y_test   int32 labels (n,) for task "classification";
                      float32 targets (n, outputs) for "regression" and "binary",
                      the shape of the network's output, as the losses expect
"""
from typing import List, NamedTuple, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from fnn.typing import ArrayLike, PRNGKey
from fnn.validate import check_key

__all__ = ["Dataset", "TASKS", "TASK_LOSS", "numpy_rngs"]

TASKS = ("classification", "binary", "regression")

# The loss each task is trained with by default (names in fnn.LOSSES).
TASK_LOSS = {
    "classification": "softmax_cross_entropy",
    "binary": "binary_cross_entropy",
    "regression": "mse",
}


class Dataset(NamedTuple):
    """A train/test split with its task; labels int32 (n,), targets float32 (n, outputs)."""
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: Optional[int]
    name: str
    task: str
    class_names: Optional[Tuple[str, ...]] = None   # label i is class_names[i], where the data named them

    @classmethod
    def from_arrays(cls, name: str, task: str, n_classes: Optional[int], x_train: ArrayLike, y_train: ArrayLike,
                    x_test: ArrayLike, y_test: ArrayLike,
                    class_names: Optional[Sequence[str]] = None) -> "Dataset":
        """A Dataset with the dtypes and shapes of its task: float32 x; int32 (n,) labels or float32 (n, k).

        Args:
          name: the data set's name, as it prints.
          task: "classification", "binary" or "regression" (TASKS).
          n_classes: the number of classes; None for regression.
          x_train, y_train, x_test, y_test: the splits; 1-D regression or binary targets
            become (n, 1).
          class_names: the name of each label, or None.

        Returns:
          The Dataset, as numpy arrays.
        """
        def targets(y):
            if task == "classification":
                return np.asarray(y, np.int32).reshape(-1)          # (n,)
            y = np.asarray(y, np.float32)
            return y.reshape(-1, 1) if y.ndim == 1 else y          # (n, outputs)
        return cls(np.asarray(x_train, np.float32), targets(y_train),
                   np.asarray(x_test, np.float32), targets(y_test), n_classes, name, task,
                   None if class_names is None else tuple(class_names))

    @property
    def in_features(self) -> int:
        """Input width of a network for this data: x_train.shape[1]."""
        return self.x_train.shape[1]

    @property
    def out_features(self) -> int:
        """Output width: n_classes logits, 1 logit for binary, the target width for regression."""
        if self.task == "classification":
            return self.n_classes
        return self.y_train.shape[1]

    def __repr__(self):
        classes = f", {self.n_classes} classes" if self.n_classes else ""
        return (f"Dataset({self.name}: {self.task}{classes}, train x{self.x_train.shape} "
                f"y{self.y_train.shape}, test x{self.x_test.shape} y{self.y_test.shape})")


def numpy_rngs(name: str, key: PRNGKey, count: int) -> List[np.random.Generator]:
    """`count` independent numpy Generators seeded by the bits of a jax PRNG key.

    Small data sets are drawn with numpy: no jax compilation per array shape,
    and the same key gives the same data with or without float64 enabled.

    Args:
      name: what the key is for, in the error message, e.g. "spirals: key".
      key: a PRNG key, jax.random.key(0) (int seeds are refused: TypeError).
      count: how many generators.

    Returns:
      A list of `count` numpy Generators.

    Raises:
      InputTypeError: if key is not a PRNG key.
    """
    key = check_key(name, key)
    bits = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
    seed = np.random.SeedSequence(np.asarray(bits, np.uint32).ravel().tolist())
    return [np.random.default_rng(s) for s in seed.spawn(count)]
