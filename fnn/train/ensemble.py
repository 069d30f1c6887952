"""Many independent networks trained in one compiled program: jax.vmap over params and optimizer state.

N networks that differ only in their PRNG keys (initialization, minibatches,
dropout) or in their hyper-parameters (e.g. the learning rate) are one
network with a leading axis of size N on every parameter and optimizer-state
leaf. The train step is fnn.train.make_step (hand-written backward
included), vmapped over that axis; the training loop is fnn.train.epoch's,
of the vmapped step:

    train(key, hyper, x, y) = scan(step, init(key, hyper), length=steps)
    train_many = jit(vmap(train))      # = scan(vmap(step), vmap(init)(keys, hyperparams))

JAX batches a scan by batching its body, so vmap of the one-model loop is
the loop of the vmapped step: every parameter and optimizer-state leaf gets
a leading axis N, and the metrics come out (N, steps).

On a CPU, a tiny network's step is a few microseconds of dispatch and loop
overhead around a few hundred FLOPs; N of them in one step share that
overhead, which is where benchmarks/many_models.py measures its speedup.

Hyper-parameters: pass `optimizer` as a function of keyword arguments that
returns a GradientTransformation, and `hyperparams` as a dict of arrays of
shape (N,):

    train_many(model, loss, lambda learning_rate: optim.sgd(learning_rate), x, y, keys=keys,
               steps=1000, hyperparams={"learning_rate": jnp.array([0.1, 0.3, 1.0])})

The optimizers of fnn.optim accept traced hyper-parameters, so each model
gets its own rate inside the one program.
"""
from typing import Any, Callable, Dict, NamedTuple, Optional, Tuple, Union

import jax
import jax.numpy as jnp
import numpy as np

from fnn.errors import InputError, InputTypeError
from fnn.layers.core import Layer
from fnn.layers.core import init_state as init_model_state
from fnn.losses import Loss, get_loss
from fnn.numerics import all_finite
from fnn.optim.base import is_optimizer
from fnn.optim.schedules import check_learning_rates
from fnn.train.epoch import StepRecord, epoch_batches, epoch_indices, epoch_keys, run_epoch
from fnn.train.step import StepConfig, TrainState, init_state, make_step, training_optimizer
from fnn.typing import ArrayLike, DTypeLike, ModelState, Optimizer, Params, PRNGKey, Shape
from fnn.validate import MAX_STEPS, check_positive_int

__all__ = ["ManyResult", "init_many", "make_train", "train_many", "converged"]

BAD_HYPERPARAMS = ("hyperparams must be a dict of name -> array of shape (N,) = ({n},) "
                   "(one value per key), got {got}")


class ManyResult(NamedTuple):
    """N trained networks: every leaf of params and state has a leading axis N
    (state.model_state too: each network's own running statistics, for a stateful model).

    losses and accuracies are (N, steps): each model's minibatch loss and
    accuracy at every step (accuracy NaN for regression losses).
    """
    params: Any
    state: Any
    losses: jax.Array
    accuracies: jax.Array


def _optimizer(optimizer, hyper):
    """The GradientTransformation for one model: optimizer itself, or optimizer(**hyper)."""
    if is_optimizer(optimizer):
        if hyper:
            raise InputTypeError(f"hyperparams {sorted(hyper)} given with an already built optimizer; "
                            "pass a function of them instead, e.g. lambda learning_rate: optim.sgd(learning_rate)")
        return optimizer
    if not callable(optimizer):
        raise InputTypeError(f"optimizer must be a GradientTransformation or a function of the "
                        f"hyperparams that returns one, got {optimizer!r}")
    opt = optimizer(**hyper)
    if not is_optimizer(opt):
        raise InputTypeError(f"optimizer(**hyperparams) must return a GradientTransformation, got {opt!r}")
    return opt


def _check_keys(keys):
    keys = jnp.asarray(keys) if isinstance(keys, (jax.Array, np.ndarray, list, tuple)) else keys
    if not hasattr(keys, "dtype") or not jnp.issubdtype(keys.dtype, jax.dtypes.prng_key) or keys.ndim != 1:
        raise InputTypeError(f"keys must be a 1-D array of PRNG keys, e.g. jax.random.split(jax.random.key(0), N), "
                        f"got {getattr(keys, 'dtype', type(keys))} of shape {getattr(keys, 'shape', None)}")
    return keys


def _check_hyperparams(hyperparams, n):
    if hyperparams is None:
        return {}
    if not isinstance(hyperparams, dict):
        raise InputTypeError(BAD_HYPERPARAMS.format(n=n, got=type(hyperparams).__name__))
    hyperparams = {k: jnp.asarray(v) for k, v in hyperparams.items()}
    for name, v in hyperparams.items():
        if v.shape != (n,):
            raise InputError(BAD_HYPERPARAMS.format(n=n, got=f"{name!r} of shape {v.shape}"))
    return hyperparams


# An optimizer shared by all models, or a function of one model's hyper-parameters returning one.
OptimizerOrFactory = Union[Optimizer, Callable[..., Optimizer]]


def make_train(model: Layer, loss: Union[str, Loss], optimizer: OptimizerOrFactory, *, steps: int,
               input_shape: Shape, batch_size: Optional[int] = None, config: StepConfig = StepConfig(),
               dtype: DTypeLike = jnp.float32,
               checked: bool = True) -> Callable[..., Tuple[TrainState, StepRecord]]:
    """The training of ONE network as a pure function train(key, hyper, x, y), ready for vmap.

    train(key, hyper, x, y) -> (state, StepRecord of (steps,)): params from
    model.init with the first half of `key`, the second half as the
    TrainState's key, the model state from fnn.init_state (stateful models:
    BatchNorm), then `steps` updates of fnn.train.make_step:

      batch_size None:  full-batch gradient descent, every step on all of (x, y);
      batch_size B:     epochs as fnn.train.make_epoch runs them (fnn.train.epoch.run_epoch):
                        one permutation per epoch from the state's key, minibatches of B
                        (the last partial batch dropped), gathered step by step (a
                        permuted copy of the data per model would cost N copies);
                        the last epoch stops after `steps` in all.

    `hyper` is a dict of scalars handed to optimizer(**hyper) (an empty dict
    when optimizer is a GradientTransformation). vmap(train) over keys and
    hyper is the loop of the vmapped step: JAX batches a loop by batching its body.

    Args:
      model, loss: an fnn Layer and a Loss (or its name).
      optimizer: an optimizer (init, update), or a function hyper -> optimizer.
      steps: optimizer steps, a positive int.
      input_shape: the model's input shape, (-1, features) for example.
      batch_size: minibatch size; None for full-batch gradient descent.
      config: a StepConfig, as in make_step ("fp16" wraps the optimizer in dynamic_loss_scale).
      dtype: the floating-point dtype of the parameters.
      checked: False for the step without the non-finite check (make_step's `checked`).

    Returns:
      train(key, hyper, x, y) -> (TrainState, StepRecord of (steps,)), pure and unjitted.

    Raises:
      InputError / InputTypeError: for steps or batch_size that are not positive ints, or a
      loss fnn does not know.
    """
    loss = get_loss(loss)
    steps = check_positive_int("steps", steps)
    if batch_size is not None:
        batch_size = check_positive_int("batch_size (None for full batch)", batch_size)
    build = lambda hyper: training_optimizer(_optimizer(optimizer, hyper), config)   # one model's
    init = _init_fn(model, build, tuple(input_shape), dtype)

    def train(key, hyper, x, y):
        update = make_step(model, loss, build(hyper), config, checked=checked)
        state = init(key, hyper)
        if batch_size is None:
            return run_epoch(update, state, lambda j: (x, y), steps, StepRecord.empty(steps))
        per_epoch = x.shape[0] // batch_size
        if per_epoch < 1:
            raise InputError(f"batch_size={batch_size} is larger than the {x.shape[0]} training examples")

        def epoch(state, n_steps):
            keys, perm_keys = epoch_keys(state.key, 1)
            idx = epoch_indices(perm_keys, x.shape[0], batch_size)[0]          # (per_epoch, B)
            return run_epoch(update, state._replace(key=keys[0]), epoch_batches(x, y, idx, False),
                             n_steps, StepRecord.empty(n_steps))

        full, rest = divmod(steps, per_epoch)
        records = []
        if full:
            state, r = jax.lax.scan(lambda s, _: epoch(s, per_epoch), state, None, length=full)
            records.append(jax.tree.map(lambda a: a.reshape(-1), r))          # (full * per_epoch,)
        if rest:
            state, r = epoch(state, rest)
            records.append(r)
        return state, jax.tree.map(lambda *a: jnp.concatenate(a), *records)

    return train


def _init_fn(model, build_optimizer, input_shape, dtype):
    """init(key, hyper) -> TrainState: params from the first half of key, training key the second."""
    def init(key, hyper):
        init_key, train_key = jax.random.split(key)
        _, params = model.init(init_key, input_shape, dtype)
        return init_state(params, build_optimizer(hyper), train_key, init_model_state(model, input_shape, dtype))
    return init


def init_many(model: Layer, optimizer: OptimizerOrFactory, input_shape: Shape, *, keys: PRNGKey,
              hyperparams: Optional[Dict[str, ArrayLike]] = None,
              dtype: DTypeLike = jnp.float32) -> TrainState:
    """N TrainStates stacked on a leading axis: vmap of make_train's init over keys and hyperparams.

    Args:
      model: an fnn Layer.
      optimizer: an optimizer shared by all models, or a function hyperparams -> optimizer.
      input_shape: the model's input shape, (-1, features) for example.
      keys: (N,) PRNG keys; model i's params come from the first half of keys[i].
      hyperparams: dict name -> (N,) array, or None.
      dtype: the floating-point dtype of the parameters.

    Returns:
      A TrainState whose every leaf has a leading axis N.

    Raises:
      InputError / InputTypeError: for keys that are not a 1-D array of PRNG keys, or
      hyperparams that are not a dict of (N,) arrays.
    """
    keys = _check_keys(keys)
    hyper = _check_hyperparams(hyperparams, keys.shape[0])
    build = lambda h: _optimizer(optimizer, h)
    return jax.vmap(_init_fn(model, build, tuple(input_shape), dtype))(keys, hyper)


def _train_many(keys, hyper, x, y, *, model, loss, optimizer, steps, input_shape, batch_size, config,
                dtype, checked):
    """(state, StepRecord, clean): clean is whether every model's losses and final state are finite."""
    train = make_train(model, loss, optimizer, steps=steps, input_shape=input_shape,
                       batch_size=batch_size, config=config, dtype=dtype, checked=checked)
    state, record = jax.vmap(train, in_axes=(0, 0, None, None))(keys, hyper, x, y)  # x, y shared by all
    clean = jnp.all(jnp.isfinite(record.losses)) & all_finite((state.params, state.opt_state, state.model_state))
    return state, record, clean


_train_many_program = jax.jit(_train_many, static_argnames=(
    "model", "loss", "optimizer", "steps", "input_shape", "batch_size", "config", "dtype", "checked"))


def train_many(model: Layer, loss: Union[str, Loss], optimizer: OptimizerOrFactory, x: ArrayLike, y: ArrayLike,
               *, keys: PRNGKey, steps: int, hyperparams: Optional[Dict[str, ArrayLike]] = None,
               batch_size: Optional[int] = None, config: StepConfig = StepConfig(),
               input_shape: Optional[Shape] = None, dtype: DTypeLike = jnp.float32) -> ManyResult:
    """Train N = len(keys) independent networks on (x, y) in one compiled program.

    The program is the training loop of the vmapped train step: each model's
    forward, hand-written (or jax.grad) backward and optimizer update run side
    by side on arrays with a leading axis N.

    Args:
      model, loss: an fnn Layer and Loss (or its name).
      optimizer: a GradientTransformation shared by all models, or a function
        hyperparams -> GradientTransformation, called with one model's values.
      x, y: the training data, shared by all models.
      keys: (N,) PRNG keys; model i is initialized and trained from keys[i].
      steps: optimizer steps per model.
      hyperparams: dict name -> (N,) array, or None.
      batch_size: minibatch size; None for full-batch gradient descent.
      config: a StepConfig (method, on_nonfinite per model, precision) for every model.
      input_shape: defaults to (-1, x.shape[-1]).
      dtype: the floating-point dtype of the parameters.

    Returns:
      ManyResult with params and state stacked over N, losses and accuracies (N, steps);
      a stateful model's running statistics are in state.model_state, (N, ...) each.

    Raises:
      InputError / InputTypeError: for keys, hyperparams, steps, batch_size, config or
      optimizer that do not fit (named in the message), before any training.
    """
    keys = _check_keys(keys)
    hyper = _check_hyperparams(hyperparams, keys.shape[0])
    x, y = jnp.asarray(x), jnp.asarray(y)
    input_shape = (-1, x.shape[-1]) if input_shape is None else tuple(input_shape)
    if batch_size is not None and batch_size > x.shape[0]:
        raise InputError(f"batch_size={batch_size!r} is larger than the {x.shape[0]} training examples")
    if StepConfig.checked(config).mesh is not None:
        raise InputError("train_many runs its models on one device; a StepConfig with a mesh is for fit")
    steps = check_positive_int("steps", steps, maximum=MAX_STEPS)
    check_learning_rates(optimizer, steps, hyperparams=hyper)
    settings = dict(model=model, loss=get_loss(loss), optimizer=optimizer, steps=steps,
                    input_shape=input_shape, batch_size=batch_size, config=StepConfig.checked(config),
                    dtype=jnp.dtype(dtype))
    # As fit does: the unchecked steps first; where anything came out non-finite, the whole run
    # again with the checked step, whose result it then is (vmap would run both branches of a cond).
    state, record, clean = _train_many_program(keys, hyper, x, y, checked=False, **settings)
    if not bool(clean):
        state, record, _ = _train_many_program(keys, hyper, x, y, checked=True, **settings)
    return ManyResult(state.params, state, record.losses, record.accuracies)     # losses (N, steps)


def converged(model: Layer, params: Params, x: ArrayLike, y: ArrayLike, threshold: float = 0.0, *,
              model_state: Optional[ModelState] = None) -> jax.Array:
    """(N,) bool: model i classifies every example of (x, y) correctly.

    Args:
      model: an fnn Layer.
      params: N models' params stacked on a leading axis (ManyResult.params).
      x, y: the examples. Binary targets (n, 1) in {0, 1}: the logit must be > threshold
        exactly where y > 0.5. Integer labels (n,): the argmax of the logits must equal
        the label.
      threshold: the logit above which a binary prediction is 1.
      model_state: for a stateful model, the stacked ManyResult.state.model_state.

    Returns:
      A (N,) bool array.
    """
    out = jax.vmap(lambda p, s: model.apply(p, jnp.asarray(x), state=s))(params, model_state)   # (N, n, out)
    y = jnp.asarray(y)
    if jnp.issubdtype(y.dtype, jnp.integer):
        correct = jnp.argmax(out, axis=-1) == y.reshape(1, -1)
    else:
        correct = (out > threshold) == (y > 0.5).reshape((1,) + y.shape)
    return jnp.all(correct.reshape(correct.shape[0], -1), axis=1)
