"""Using a model after (or during) training: evaluate, predict, accuracy; the input checks fit shares."""
import jax
import jax.numpy as jnp
import numpy as np

from fnn.losses import get_loss
from fnn.train.step import metrics
from fnn.errors import InputTypeError
from fnn.validate import as_array, check_data, check_params, check_targets

__all__ = ["evaluate", "predict", "accuracy", "evaluate_batch", "check_inputs"]


def accuracy(loss, out, y):
    """Fraction correct for classification losses; None for regression losses (Loss.accuracy)."""
    return get_loss(loss).accuracy(out, y)


def evaluate_batch(model, loss, params, x, y):
    """(loss, accuracy) of the model in inference mode on (x, y), float32; accuracy NaN for regression."""
    out = model.apply(params, x)
    return metrics(loss, loss.fn(out, y), out, y)


_evaluate_program = jax.jit(evaluate_batch, static_argnums=(0, 1))
_predict_program = jax.jit(lambda model, params, x: model.apply(params, x), static_argnums=0)


def check_inputs(model, loss, params, x, y, where):
    """Arrays (x, y) after the checks every public entry makes: lengths, finiteness, params, targets."""
    x, y = check_data(x, y, where)
    check_params(model, params, x.shape)
    check_targets(loss, jax.eval_shape(lambda: model.apply(params, x)).shape, y)
    return x, y


def evaluate(model, loss, params, x, y):
    """{"loss": L, "accuracy": a or None} on (x, y), in inference mode (dropout off)."""
    loss = get_loss(loss)
    x, y = check_inputs(model, loss, params, x, y, "evaluate")
    value, acc = _evaluate_program(model, loss, params, x, y)
    return {"loss": float(value), "accuracy": None if np.isnan(acc) else float(acc)}


def predict(model, params, x):
    """The model's output on x in inference mode (dropout off)."""
    x = as_array("predict: x", x)
    if jnp.issubdtype(x.dtype, jnp.complexfloating):
        raise InputTypeError(f"predict: x has complex dtype {x.dtype}; expected real features")
    check_params(model, params, x.shape)
    return _predict_program(model, params, x)
