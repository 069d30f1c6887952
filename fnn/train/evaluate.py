"""Using a model after (or during) training: evaluate, predict, accuracy; the input checks fit shares.

All three run the model in inference mode (train=False: dropout off, BatchNorm on its
running statistics), so a stateful model needs its model_state (FitResult.model_state,
TrainState.model_state, or fnn.init_state before any training).
"""
import jax
import jax.numpy as jnp
import numpy as np

from fnn.errors import InputError, InputTypeError
from fnn.losses import get_loss
from fnn.train.step import metrics
from fnn.validate import as_array, check_data, check_model, check_model_state, check_params, check_targets

__all__ = ["evaluate", "predict", "accuracy", "evaluate_batch", "check_inputs", "check_model_state_given"]


def accuracy(loss, out, y):
    """Fraction correct for classification losses; None for regression losses (Loss.accuracy)."""
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


def evaluate(model, loss, params, x, y, *, model_state=None):
    """{"loss": L, "accuracy": a or None} on (x, y), in inference mode (dropout off, running statistics).

    model_state: the model's non-trainable state; required for a stateful model (BatchNorm).
    """
    loss = get_loss(loss)
    model_state = check_model_state_given(model, model_state, "evaluate")
    x, y = check_inputs(model, loss, params, x, y, "evaluate", model_state)
    value, acc = _evaluate_program(model, loss, params, x, y, model_state)
    return {"loss": float(value), "accuracy": None if np.isnan(acc) else float(acc)}


def predict(model, params, x, *, model_state=None):
    """The model's output on x in inference mode (dropout off, BatchNorm's running statistics).

    model_state: the model's non-trainable state; required for a stateful model.
    """
    x = as_array("predict: x", x)
    if jnp.issubdtype(x.dtype, jnp.complexfloating):
        raise InputTypeError(f"predict: x has complex dtype {x.dtype}; expected real features")
    model_state = check_model_state_given(model, model_state, "predict")
    check_params(model, params, x.shape)
    check_model_state(model, model_state, x.shape, "predict")
    return _predict_program(model, params, x, model_state)
