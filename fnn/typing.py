"""Type aliases of fnn's public API, for its annotations and for code that calls it.

fnn's values are plain pytrees of jax arrays, so most of these name what a
value is rather than constrain it, as optax's Params and OptState do:

    Params      a pytree of arrays (tuples, lists, dicts of jax.Array): a model's weights
    Grads       a pytree with the structure of Params
    ModelState  a model's non-trainable state (BatchNorm's running statistics); () when stateless
    OptState    an optimizer's state, a pytree of NamedTuples
    PRNGKey     a key from jax.random.key (or jax.random.PRNGKey)
    Shape       a shape with -1 for the batch dimension, e.g. (-1, 784)
    Scalar      a hyper-parameter: a Python number or a 0-d array (traced under vmap: fnn.ensemble)
    Schedule    count -> learning rate (fnn.optim.schedules)
    Optimizer   anything with callable init and update: an fnn GradientTransformation or optax's
"""
from typing import Any, Callable, Protocol, Tuple, Union

import jax
from jax.typing import ArrayLike, DTypeLike

__all__ = ["Array", "ArrayLike", "DTypeLike", "PyTree", "Params", "Grads", "ModelState", "OptState",
           "PRNGKey", "Shape", "Scalar", "Initializer", "Schedule", "LearningRate", "Optimizer"]

Array = jax.Array
PyTree = Any
Params = Any
Grads = Any
ModelState = Any
OptState = Any
PRNGKey = jax.Array
Shape = Tuple[int, ...]
Initializer = Callable[..., jax.Array]          # (key, shape, dtype=float32) -> array
Scalar = Union[float, jax.Array]
Schedule = Callable[[jax.Array], Union[float, jax.Array]]     # count -> learning rate
LearningRate = Union[float, jax.Array, Schedule]              # a rate > 0 or a schedule


class Optimizer(Protocol):
    """What fnn trains with: init(params) -> state and update(grads, state, params=None) -> (updates, state)."""

    @property
    def init(self) -> Callable[..., Any]:
        """init(params) -> state."""

    @property
    def update(self) -> Callable[..., Any]:
        """update(grads, state, params=None) -> (updates, new_state)."""
