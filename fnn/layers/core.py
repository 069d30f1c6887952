"""The Layer type, sequential composition, and the model's non-trainable state.

Every layer is a `Layer` of three functions:

    init(key, input_shape, dtype=float32) -> (output_shape, params)
    forward(params, x, *, key=None, train=False) -> (y, saved)
    backward(params, saved, dy) -> (dparams, dx)

`saved` is whatever the backward needs from the forward (the layer's input,
a dropout mask, ...); `dparams` has the structure of `params`. Shapes use -1
for the batch dimension, as in `init(key, (-1, 784))`.

A stateful layer (BatchNorm) also has non-trainable state, a pytree kept
apart from params, so that params stay what the optimizer updates:

    init_state(input_shape, dtype=float32) -> state
    forward(params, x, *, key=None, train=False, state=None) -> (y, saved)
    update_state(state, saved) -> state'       after a training forward

Inference (train=False) reads the state; training need not (BatchNorm uses
the batch's statistics) and update_state folds what the forward saved into
it. Only stateful layers are given `state`: a stateless layer keeps the
four-argument forward. fnn.init_state(model, input_shape) and
fnn.update_state(model, state, saved) walk a whole model; serial keeps one
entry per layer, () for a stateless one.

A Layer holds no arrays: it is a pytree with no leaves (jax.tree_util.register_static),
so a model can be an argument of a jitted function, `jax.jit(f)(model, params, x)`;
jit treats it as static and compiles once per model object.
"""
import dataclasses
import functools
from typing import Any, Callable, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from fnn.errors import InputError, InputTypeError
from fnn.typing import Array, DTypeLike, ModelState, Params, PRNGKey, Shape
from fnn.validate import check_key

__all__ = ["Layer", "serial", "MISSING_KEY", "MISSING_STATE", "init_state", "update_state", "output_shape"]

MISSING_KEY = (
    "{layer} is stochastic in training and needs a PRNG key: call "
    "forward(params, x, key=jax.random.key(0), train=True), "
    "or pass train=False for inference")
MISSING_STATE = (
    "{layer} has non-trainable state (running statistics) that inference reads: call "
    "forward(params, x, state=state) with the state training returned (FitResult.model_state, "
    "TrainState.model_state) or, before any training, state=fnn.init_state(model, input_shape); "
    "or pass train=True")


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Layer:
    """A layer: init, forward and its hand-written backward, plus what it is made of.

    name: how the layer prints, e.g. "Dense(100)" or "serial(Dense(4), relu, Dense(1))".
    kind: the family: "dense", "activation", "dropout", "conv", "pool", "flatten", "reshape", "serial"...
    layers: the sub-layers of a combinator (serial), () for a leaf layer.
    stochastic: whether training draws from the forward's key (dropout), here or in a sub-layer.
    activation: the ActivationFn of an activation layer, None otherwise.
    init_state: (input_shape, dtype) -> state for a layer with non-trainable state
      (BatchNorm's running mean and variance), here or in a sub-layer; None otherwise.
    update_state: (state, saved) -> the state after a training forward that saved `saved`;
      None keeps the state as it is.
    integer_input: forward takes integer arrays as x (token ids: Embedding; a serial whose first
      layer does). fnn's entries (fit, evaluate, value_and_grad) then accept integer x, and only then.
      Such a layer's dx is a float0 array of x's shape, what jax.vjp gives for an integer input.
    stateful (a property): whether init_state is given; only then does forward get `state`.
    Compared and hashed by identity, as jit does for a static argument.
    """
    name: str
    init: Callable
    forward: Callable
    backward: Callable
    layers: Tuple["Layer", ...] = ()
    kind: str = "layer"
    stochastic: bool = False
    activation: Optional[Any] = None
    init_state: Optional[Callable] = None
    update_state: Optional[Callable] = None
    integer_input: bool = False

    def __post_init__(self):
        # Every init takes a PRNG key first, and a key given to forward must be one:
        # check them here, once for every layer, so a None or an int seed is named.
        # The forward's wrapper also hands `state` to stateful layers only.
        for field in ("init_state", "update_state"):
            if getattr(self, field) is not None and not callable(getattr(self, field)):
                raise InputTypeError(f"Layer {self.name}: {field} must be a function or None, "
                                     f"got {getattr(self, field)!r}")
        if self.update_state is not None and self.init_state is None:
            raise InputTypeError(f"Layer {self.name}: update_state is given without init_state; "
                                 "a stateful layer needs init_state(input_shape, dtype) -> state")
        if not getattr(self.init, "checks_key", False):
            object.__setattr__(self, "init", _init_checking_key(self.name, self.init))
        if getattr(self.forward, "checks_key", None) != ("stateful" if self.stateful else "stateless"):
            forward = getattr(self.forward, "unchecked", self.forward)
            object.__setattr__(self, "forward", _forward_checking_key(self.name, forward, self.stateful))

    @property
    def stateful(self) -> bool:
        """Whether the layer (or a sub-layer) has non-trainable state: init_state is given."""
        return self.init_state is not None

    def apply(self, params: Params, x: Any, *, key: Optional[PRNGKey] = None, train: bool = False,
              state: Optional[ModelState] = None) -> Any:
        """The forward output alone: y = f(params, x).

        Args:
          params: the layer's parameters (from init).
          x: the input batch (an array; a masked sequence (x, key_mask) for the layers
            that take one).
          key: PRNG key for a stochastic layer in training (dropout); None otherwise.
          train: training mode (dropout on, BatchNorm's batch statistics) or inference.
          state: a stateful layer's non-trainable state; needed in inference.

        Returns:
          y, the forward's output (an array for all but the masked-sequence layers).

        Raises:
          InputError / InputTypeError: for a key that is not a PRNG key, a stochastic layer in
          training without one, or a stateful layer in inference without its state.
        """
        return self.forward(params, x, key=key, train=train, state=state)[0]

    def replace(self, **changes: Any) -> "Layer":
        """A new Layer with some fields changed, e.g. layer.replace(backward=other_backward).

        Args:
          **changes: field names and their new values.

        Returns:
          The new Layer (this one is unchanged).
        """
        return dataclasses.replace(self, **changes)

    def __repr__(self):
        return f"Layer({self.name})"


def _init_checking_key(name, init):
    """init, refusing a key that is not a PRNG key (None, an int seed) with a message naming the layer."""
    @functools.wraps(init)
    def checked(key, input_shape, *args, **kwargs):
        check_key(f"{name}: init(key, input_shape): key", key)
        _check_input_shape(f"{name}: init(key, input_shape)", input_shape)
        dtype = args[0] if args else kwargs.get("dtype", jnp.float32)
        if not _is_float_dtype(dtype):
            raise InputTypeError(f"{name}: init dtype must be a floating-point dtype such as "
                                 f"jnp.float32, got {dtype!r}")
        return init(key, input_shape, *args, **kwargs)
    checked.checks_key = True
    return checked


def _check_input_shape(where, input_shape):
    """InputTypeError unless input_shape is a tuple (or list) of integers."""
    is_dim = lambda d: isinstance(d, (int, np.integer)) and not isinstance(d, bool)
    if not (isinstance(input_shape, (tuple, list)) and all(map(is_dim, input_shape))):
        raise InputTypeError(f"{where}: input_shape must be a tuple of integers such as (-1, 784) "
                             f"(-1: the batch), got {input_shape!r}")


def _is_float_dtype(dtype):
    try:
        return jnp.issubdtype(dtype, jnp.floating)
    except TypeError:
        return False


def _forward_checking_key(name, forward, stateful):
    """forward, refusing a key that is given but is not a PRNG key (None: no key, fine in inference).

    It takes `state` and passes it on to a stateful layer only; a stateless layer's own
    forward keeps the signature (params, x, *, key, train) and is refused a state with leaves.
    A stateful layer in inference (train=False) needs its state: InputError without it.
    """
    @functools.wraps(forward)
    def checked(params, x, *, key=None, train=False, state=None):
        if key is not None:
            check_key(f"{name}: forward key", key)
        if not stateful:
            if jax.tree.leaves(state):
                raise InputError(f"{name} has no state, but forward was given a state with "
                                 f"{len(jax.tree.leaves(state))} array(s); pass state=None or ()")
            return forward(params, x, key=key, train=train)
        if state is None and not train:
            raise InputError(MISSING_STATE.format(layer=name))
        return forward(params, x, key=key, train=train, state=state)
    checked.checks_key = "stateful" if stateful else "stateless"
    checked.unchecked = forward
    return checked


def output_shape(layer, input_shape, dtype=jnp.float32):
    """The output shape layer.init gives for input_shape, from jax.eval_shape alone (no arrays)."""
    shapes = []

    def init(key):                         # the output shape is a Python tuple: kept, not traced
        out, params = layer.init(key, tuple(input_shape), dtype)
        shapes.append(tuple(out))
        return params

    jax.eval_shape(init, jax.random.key(0))
    return shapes[0]


def init_state(model: Layer, input_shape: Shape, dtype: DTypeLike = jnp.float32) -> ModelState:
    """The model's initial non-trainable state for inputs of input_shape; () for a stateless model.

    A serial model's state is a tuple with one entry per layer (() for a stateless
    one); each sub-layer's input shape comes from jax.eval_shape of the inits before it,
    as in summary(). BatchNorm's entry is {"mean": 0, "var": 1} per channel.

        state = fnn.init_state(model, (-1, 784))
        y = model.apply(params, x, state=state)            # inference: the running statistics

    Args:
      model: an fnn Layer.
      input_shape: the model's input shape, -1 for the batch, e.g. (-1, 784).
      dtype: the floating-point dtype of the state (that of the params).

    Returns:
      The state pytree; () for a stateless model.

    Raises:
      InputTypeError: for a model that is not a Layer, a shape that is not a tuple of
        ints, or a dtype that is not floating-point.
    """
    if not isinstance(model, Layer):
        raise InputTypeError(f"init_state expects an fnn Layer, got {type(model).__name__}")
    _check_input_shape(f"init_state({model.name}, input_shape)", input_shape)
    if not _is_float_dtype(dtype):
        raise InputTypeError(f"init_state({model.name}): dtype must be a floating-point dtype such as "
                             f"jnp.float32, got {dtype!r}")
    return model.init_state(tuple(input_shape), dtype) if model.stateful else ()


def update_state(model: Layer, state: ModelState, saved: Any) -> ModelState:
    """The model's state after a training forward: model.update_state(state, saved); () if stateless.

    A stateful layer without update_state keeps its state as it is.

    Args:
      model: an fnn Layer.
      state: the state that forward was given.
      saved: what forward(params, x, train=True, state=state) returned beside y.

    Returns:
      The new state; () for a stateless model.

    Raises:
      InputTypeError: for a model that is not a Layer.
      InputError: for a stateful model given state None.
    """
    if not isinstance(model, Layer):
        raise InputTypeError(f"update_state expects an fnn Layer, got {type(model).__name__}")
    if not model.stateful:
        return ()
    if state is None:
        raise InputError(f"update_state({model.name}): state is None; start from "
                         "fnn.init_state(model, input_shape)")
    return state if model.update_state is None else model.update_state(state, saved)


def _states(name, n, state):
    """A combinator's state as one entry per part: (None,) * n when no state is given."""
    if state is None:
        return (None,) * n
    if not isinstance(state, (tuple, list)) or len(state) != n:
        got = len(state) if isinstance(state, (tuple, list)) else type(state).__name__
        raise InputError(f"{name}: state must be a tuple with one entry per layer ({n}), got {got}; "
                         "build it with fnn.init_state(model, input_shape)")
    return tuple(state)


def serial(*layers: Layer) -> Layer:
    """Compose layers in sequence; params and saved values are tuples, one entry a layer.

    Forward runs the layers in order, each with its own key split from `key` and,
    for a stateful model, its own entry state[i] of the state (() for a stateless layer).
    Backward runs them in reverse, feeding each layer's dx to the one before:
        dx_{i−1} = backward_i(params_i, saved_i, dx_i)
    update_state maps each layer's update_state over (state[i], saved[i]).

    Args:
      *layers: one or more fnn Layers, in the order the forward runs them.

    Returns:
      A Layer of kind "serial", stochastic or stateful if any of its layers is.

    Raises:
      InputTypeError: for no layers, or an argument that is not a Layer.
    """
    if not layers or not all(isinstance(l, Layer) for l in layers):
        raise InputTypeError(f"serial expects one or more fnn Layers, got {layers!r}")
    name = "serial(" + ", ".join(l.name for l in layers) + ")"
    n = len(layers)

    def init(key, input_shape, dtype=jnp.float32):
        params = []
        shape = tuple(input_shape)
        for layer, k in zip(layers, jax.random.split(key, n)):
            shape, p = layer.init(k, shape, dtype)
            params.append(p)
        return shape, tuple(params)

    def _check(params):
        if not isinstance(params, (tuple, list)) or len(params) != n:
            got = len(params) if isinstance(params, (tuple, list)) else type(params).__name__
            raise InputError(
                f"{name}: params must be a tuple with one entry per layer ({n}), got {got}")

    def forward(params, x, *, key=None, train=False, state=None):
        _check(params)
        keys = [None] * n if key is None else list(jax.random.split(key, n))
        saved = []
        for layer, p, k, st in zip(layers, params, keys, _states(name, n, state)):
            x, s = layer.forward(p, x, key=k, train=train, state=st)        # (batch, ...) per layer
            saved.append(s)
        return x, tuple(saved)

    def backward(params, saved, dy):
        _check(params)
        dparams = [None] * n
        for i in reversed(range(n)):
            dparams[i], dy = layers[i].backward(params[i], saved[i], dy)     # dy: (batch, ...) of layer i's input
        return tuple(dparams), dy

    def init_state_(input_shape, dtype=jnp.float32):
        states, shape = [], tuple(input_shape)
        for layer in layers:
            states.append(init_state(layer, shape, dtype))
            shape = output_shape(layer, shape, dtype)
        return tuple(states)

    def update_state_(state, saved):
        return tuple(update_state(l, s, sv) for l, s, sv in zip(layers, _states(name, n, state), saved))

    return combination(name, init, forward, backward, layers, "serial", init_state_, update_state_,
                       integer_input=layers[0].integer_input)


def combination(name, init, forward, backward, parts, kind, init_state_, update_state_, *,
                integer_input=False):
    """The Layer of a combinator made of `parts`: stochastic if any part is; stateful, with the
    given init_state_/update_state_ (which walk the parts), if any part is."""
    stateful = any(p.stateful for p in parts)
    return Layer(name, init, forward, backward, tuple(parts), kind=kind,
                 stochastic=any(p.stochastic for p in parts),
                 init_state=init_state_ if stateful else None,
                 update_state=update_state_ if stateful else None,
                 integer_input=integer_input)
