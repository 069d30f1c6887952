"""Using a model after (or during) training: evaluate, predict, accuracy; the input checks fit shares.

All three run the model in inference mode (train=False: dropout off, BatchNorm on its
running statistics), so a stateful model needs its model_state (FitResult.model_state,
TrainState.model_state, or fnn.init_state before any training).
"""
from typing import Dict, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np

from fnn.errors import InputError, InputTypeError
from fnn.layers.core import Layer
from fnn.losses import Loss, get_loss
from fnn.typing import Array, ArrayLike, ModelState, Params
from fnn.train.step import metrics
from fnn.validate import as_array, check_data, check_model, check_model_state, check_params, check_targets

__all__ = ["evaluate", "predict", "accuracy", "evaluate_batch", "check_inputs", "check_model_state_given"]


def accuracy(loss: Union[str, Loss], out: Array, y: ArrayLike) -> Optional[Array]:
    """Fraction correct for classification losses; None for regression losses (Loss.accuracy).

    Args:
      loss: a Loss or its name in fnn.LOSSES; its task says how out is scored.
      out: the model's output (logits for the cross-entropies).
      y: the targets: integer labels or soft targets, 0/1 for a binary loss.

    Returns:
      The fraction of correct predictions, a float scalar array; None for a regression loss.

    Raises:
      InputError: for a loss name that is not in fnn.LOSSES.
    """
    return get_loss(loss).accuracy(out, y)


def evaluate_batch(model, loss, params, x, y, model_state=()):
    """(loss, accuracy) of the model in inference mode on (x, y), float32; accuracy NaN for regression."""
    out = model.apply(params, x, state=model_state)
    return metrics(loss, loss.fn(out, y), out, y)


_evaluate_program = jax.jit(evaluate_batch, static_argnums=(0, 1))
_predict_program = jax.jit(lambda model, params, x, model_state: model.apply(params, x, state=model_state),
                           static_argnums=0)


MISSING_MODEL_STATE = (
    "{where}: {model} has non-trainable state (running statistics) that inference reads: pass "
    "model_state=, the state training returned (FitResult.model_state, TrainState.model_state), "
    "or fnn.init_state(model, input_shape) for an untrained model")


def check_model_state_given(model, model_state, where):
    """model_state, () for a stateless model given none; InputError if a stateful model lacks it."""
    check_model(model)
    if model_state is None:
        if model.stateful:
            raise InputError(MISSING_MODEL_STATE.format(where=where, model=model.name))
        return ()
    return model_state


def check_inputs(model, loss, params, x, y, where, model_state=None):
    """Arrays (x, y) after the checks every public entry makes: lengths, finiteness, params, targets.

    model_state None: the targets are checked against the training forward's output
    shape (a stateful model's state is not needed for it).
    """
    x, y = check_data(x, y, where, token_ids=check_model(model, where).integer_input)
    check_params(model, params, x.shape)
    check_model_state(model, model_state, x.shape, where)
    train = model_state is None and model.stateful            # shapes only: no state needed
    key = jax.random.key(0) if train and model.stochastic else None
    check_targets(loss, jax.eval_shape(
        lambda: model.apply(params, x, key=key, train=train, state=model_state)).shape, y)
    return x, y


def evaluate(model: Layer, loss: Union[str, Loss], params: Params, x: ArrayLike, y: ArrayLike, *,
             model_state: Optional[ModelState] = None) -> Dict[str, Optional[float]]:
    """{"loss": L, "accuracy": a or None} on (x, y), in inference mode (dropout off, running statistics).

    The whole of (x, y) is one batch of a compiled program, keyed on (model, loss).

    Args:
      model: an fnn Layer.
      loss: a Loss or its name in fnn.LOSSES.
      params: the model's parameters, e.g. FitResult.params.
      x, y: inputs and targets, with the same number of examples.
      model_state: the model's non-trainable state; required for a stateful model (BatchNorm).

    Returns:
      {"loss": the mean loss as a float, "accuracy": the fraction correct, or None for
      a regression loss}.

    Raises:
      InputError / InputTypeError: for inputs, targets or params that do not fit the model
      (naming the offending shape or value), or a stateful model without model_state.
    """
    loss = get_loss(loss)
    model_state = check_model_state_given(model, model_state, "evaluate")
    x, y = check_inputs(model, loss, params, x, y, "evaluate", model_state)
    value, acc = _evaluate_program(model, loss, params, x, y, model_state)
    return {"loss": float(value), "accuracy": None if np.isnan(acc) else float(acc)}


def predict(model: Layer, params: Params, x: ArrayLike, *,
            model_state: Optional[ModelState] = None) -> Array:
    """The model's output on x in inference mode (dropout off, BatchNorm's running statistics).

    Args:
      model: an fnn Layer.
      params: the model's parameters, e.g. FitResult.params.
      x: the inputs, (batch, ...) as the model takes them (token ids for an Embedding first).
      model_state: the model's non-trainable state; required for a stateful model.

    Returns:
      The raw output of the last layer, (batch, ...): logits for a classifier (apply
      fnn.softmax for probabilities), predictions for a regression model.

    Raises:
      InputError / InputTypeError: for x or params that do not fit the model, complex x,
      or a stateful model without model_state.
    """
    x = as_array("predict: x", x)
    if jnp.issubdtype(x.dtype, jnp.complexfloating):
        raise InputTypeError(f"predict: x has complex dtype {x.dtype}; expected real features")
    model_state = check_model_state_given(model, model_state, "predict")
    check_params(model, params, x.shape)
    check_model_state(model, model_state, x.shape, "predict")
    return _predict_program(model, params, x, model_state)
