"""One training step: forward → loss → backward (hand-written or jax.grad) → optimizer update.

    state' = step(state, x, y)
           = TrainState(apply_updates(params, u), opt_state', key, step + 1, nonfinite_step, model_state')
      where  (L, out, g, model_state') = forward_backward(params, x, y, key=fold_in(key, step),
                                                          state=model_state)
             (u, opt_state') = optimizer.update(g, opt_state, params)

model_state is the model's non-trainable state (BatchNorm's running statistics;
() for a stateless model), updated by the training forward, not by the optimizer.
The checked step also looks at everything the step computed: the loss L, the
gradients g, the updates u, the new parameters, optimizer state and model state.
If any of them is not finite, none of the step is kept and its number is
recorded in nonfinite_step (with on_nonfinite="stop" every later step is then
skipped too, so the state keeps the last finite parameters and model state). So a state that
came out of checked steps from a finite start is finite, whatever the
learning rate or the data did. (float16: gradients that overflow are the loss
scale's business — it skips them and backs off — so there only L, u and the
new state are checked.) The unchecked step applies every update; where
everything is finite the two give the same state (fit and train_many run the
unchecked one first, and the checked one only to replay what went wrong).
"""
from typing import Any, Callable, NamedTuple, Tuple, Union

import jax
import jax.numpy as jnp

from fnn.errors import InputTypeError
from fnn.grads import METHODS, forward_backward
from fnn.layers.core import Layer
from fnn.losses import Loss, get_loss
from fnn.numerics import all_finite
from fnn.optim.base import apply_updates
from fnn.precision import dynamic_loss_scale, get_policy, loss_scale
from fnn.typing import ModelState, Optimizer, Params, PRNGKey
from fnn.validate import check_choice, check_key

__all__ = ["ON_NONFINITE", "StepConfig", "TrainState", "StepMetrics", "init_state", "make_step",
           "training_optimizer"]

ON_NONFINITE = ("stop", "skip")


class StepConfig(NamedTuple):
    """How a train step computes its gradients; hashable, so compiled programs are keyed on it.

    method:       "manual" (hand-written backward) or "autodiff" (jax.grad).
    on_nonfinite: "stop" (keep the last finite state, skip every later step) or
                  "skip" (drop each step whose loss, gradients, updates or new state
                  are not finite).
    precision:    None (float32) or "bf16"/"fp16"/a fnn.precision.Policy: float32 params,
                  forward and backward in 16 bits; "fp16" with dynamic loss scaling.
    mesh:         None, or a Mesh from fnn.train.parallel.make_mesh: each batch split over
                  its devices, the gradients all-reduced.
    """
    method: str = "manual"
    on_nonfinite: str = "stop"
    precision: Any = None
    mesh: Any = None

    def checked(self) -> "StepConfig":
        """self, or ValueError naming the setting that is not one fnn knows.

        Returns:
          This StepConfig, unchanged.

        Raises:
          InputTypeError: if self is not a StepConfig.
          InputError: for a method, on_nonfinite or precision fnn does not know.
        """
        if not isinstance(self, StepConfig):
            raise InputTypeError(f"config must be a fnn.StepConfig, e.g. config=fnn.StepConfig(method='autodiff'), "
                            f"got {self!r}")
        check_choice("gradient method", self.method, METHODS)
        check_choice("on_nonfinite", self.on_nonfinite, ON_NONFINITE)
        if self.precision is not None:
            get_policy(self.precision)
        return self


class TrainState(NamedTuple):
    """Everything a run needs to continue: params, optimizer state, PRNG key, step count, model state.

    nonfinite_step is the first step whose loss, gradients, updates, new params, new
    optimizer state or new model state held a NaN/inf (-1 if none): a checked step does
    not keep such a step. model_state is the model's non-trainable state (fnn.init_state;
    BatchNorm's running statistics), () for a stateless model; it is last and defaults to
    (), so a TrainState built from the first five fields (or restored from a checkpoint
    written before it existed) is a stateless model's.
    """
    params: Any
    opt_state: Any
    key: jax.Array
    step: jax.Array
    nonfinite_step: jax.Array
    model_state: Any = ()


class StepMetrics(NamedTuple):
    """A step's minibatch loss and accuracy (float32 scalars; accuracy NaN for regression)."""
    loss: jax.Array
    accuracy: jax.Array


def init_state(params: Params, optimizer: Optimizer, key: PRNGKey,
               model_state: ModelState = ()) -> TrainState:
    """A fresh TrainState at step 0, with the optimizer state optimizer.init(params).

    Args:
      params: the initial parameters.
      optimizer: the optimizer (init, update) the run trains with; for precision "fp16",
        fnn.precision.dynamic_loss_scale(optimizer).
      key: the PRNG key of the run (shuffling, dropout).
      model_state: the model's non-trainable state, fnn.init_state(model, input_shape)
        for a stateful model (BatchNorm), () for a stateless one (None reads as ()).

    Returns:
      TrainState(params, opt_state, key, step=0, nonfinite_step=-1, model_state).

    Raises:
      InputTypeError: if key is not a PRNG key (None, an int seed).
    """
    check_key("init_state: key", key)
    return TrainState(params, optimizer.init(params), key,
                      jnp.zeros((), jnp.int32), jnp.full((), -1, jnp.int32),
                      () if model_state is None else model_state)


def training_optimizer(optimizer, config):
    """The optimizer a step with this config updates with: wrapped in a dynamic loss scale for float16."""
    if config.precision is not None and get_policy(config.precision).loss_scaling:
        return dynamic_loss_scale(optimizer)          # idempotent: a wrapped optimizer stays as it is
    return optimizer


def metrics(loss, value, out, y):
    """StepMetrics of a batch; accuracy NaN where the loss has none (regression)."""
    acc = loss.accuracy(out, y)
    acc = jnp.full((), jnp.nan, jnp.float32) if acc is None else acc.astype(jnp.float32)
    return StepMetrics(value.astype(jnp.float32), acc)


def _gradients(model, loss, config):
    """fn(params, x, y, key, scale, model_state) -> Backprop, data-parallel over config.mesh if given."""
    def fn(params, x, y, key, scale, model_state):
        return forward_backward(model, loss, params, x, y, key=key, state=model_state,
                                method=config.method, precision=config.precision, loss_scale=scale)

    if config.mesh is None:
        return fn
    from fnn.train.parallel import data_parallel
    return data_parallel(fn, config.mesh)


def make_step(model: Layer, loss: Union[str, Loss], optimizer: Optimizer, config: StepConfig = StepConfig(), *,
              checked: bool = True) -> Callable[..., Tuple[TrainState, StepMetrics]]:
    """step(state, x, y) -> (state, StepMetrics): one minibatch update, pure and jittable.

    Args:
      model, loss, optimizer: an fnn Layer, a Loss (or its name), a GradientTransformation.
        For precision "fp16" the optimizer state must come from
        fnn.precision.dynamic_loss_scale(optimizer) (fit does this); the step reads
        its loss scale there and skips steps whose gradients overflow.
      config: a StepConfig (method, on_nonfinite, precision, mesh).
      checked: False for the step without the non-finite check (see the module docstring).

    Returns:
      step(state, x, y) -> (TrainState, StepMetrics), to jit or scan. Stochastic layers
      (dropout) draw from jax.random.fold_in(state.key, state.step); the step leaves
      state.key as it is (each epoch splits it for its permutation).

    Raises:
      InputError / InputTypeError: for a config or loss fnn does not know.
    """
    config = StepConfig.checked(config)
    loss = get_loss(loss)
    optimizer = training_optimizer(optimizer, config)
    gradients = _gradients(model, loss, config)
    scaled = config.precision is not None and get_policy(config.precision).loss_scaling

    def step(state, x, y):
        key = jax.random.fold_in(state.key, state.step)   # costs nothing unless a layer draws from it
        scale = loss_scale(state.opt_state) if scaled else 1.0
        r = gradients(state.params, x, y, key, scale, state.model_state)
        updates, opt_state = optimizer.update(r.grads, state.opt_state, state.params)
        params = apply_updates(state.params, updates)
        model_state = r.state                             # () for a stateless model
        m = metrics(loss, r.value, r.output, y)
        if not checked:
            return TrainState(params, opt_state, state.key, state.step + 1, state.nonfinite_step,
                              model_state), m
        # float16: overflowing gradients are skipped by the loss scale, not counted as non-finite
        computed = ((updates, params, opt_state, model_state) if scaled
                    else (r.grads, updates, params, opt_state, model_state))
        finite = jnp.isfinite(r.value) & all_finite(computed)
        ok = finite if config.on_nonfinite == "skip" else finite & (state.nonfinite_step < 0)
        keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)
        bad = jnp.where((state.nonfinite_step < 0) & ~finite, state.step, state.nonfinite_step)
        return TrainState(keep(params, state.params), keep(opt_state, state.opt_state),
                          state.key, state.step + 1, bad, keep(model_state, state.model_state)), m

    return step
