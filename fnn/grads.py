"""Gradients of a loss through a model: hand-written backprop or jax.grad, one signature.

    method="manual"    forward, loss.grad, then model.backward layer by layer
    method="autodiff"  jax.value_and_grad of the same forward and loss

`differentiable(model)` and `differentiable_loss(loss)` wrap the hand-written
backward in jax.custom_vjp, so jax.grad (and jit, vmap, grad of any larger
function) uses fnn's own backpropagation.
"""
import jax

from fnn.losses import get_loss
from fnn.validate import check_params, check_targets

__all__ = ["METHODS", "loss_value", "value_and_grad", "grad", "make_value_and_grad",
           "differentiable", "differentiable_loss"]

METHODS = ("manual", "autodiff")


def _check_method(method):
    if method not in METHODS:
        raise ValueError(f"unknown gradient method {method!r}; expected one of {', '.join(METHODS)}")


def loss_value(model, loss, params, x, y, *, key=None, train=True):
    """L(params) = loss(model(params, x), y)."""
    out, _ = model.forward(params, x, key=key, train=train)
    return get_loss(loss).fn(out, y)


def _manual(model, loss, params, x, y, key):
    """Backpropagation: dL/dout from the loss, then each layer's backward in reverse."""
    out, saved = model.forward(params, x, key=key, train=True)
    value = loss.fn(out, y)
    dout = loss.grad(out, y)
    grads, _ = model.backward(params, saved, dout)
    return (value, out), grads


def _autodiff(model, loss, params, x, y, key):
    """jax.value_and_grad of the same forward and loss."""
    def f(p):
        out, _ = model.forward(p, x, key=key, train=True)
        return loss.fn(out, y), out
    return jax.value_and_grad(f, has_aux=True)(params)


def value_and_grad(model, loss, params, x, y, *, key=None, method="manual", with_output=False):
    """(L, dL/dparams) for one batch, by hand-written backprop or by jax.grad.

    Args:
      model: an fnn Layer.
      loss: an fnn Loss or its name.
      params: the model's parameter pytree.
      x, y: inputs and targets.
      key: PRNG key for stochastic layers (dropout); None if there are none.
      method: "manual" (hand-written backward) or "autodiff" (jax.grad).
      with_output: also return the model's output, as ((L, out), grads).
    Returns:
      (loss value, grads with the structure of params).
    """
    _check_method(method)
    loss = get_loss(loss)
    x = jax.numpy.asarray(x)
    check_params(model, params, x.shape)
    check_targets(loss, jax.eval_shape(lambda: model.apply(params, x)).shape, y)
    (value, out), grads = (_manual if method == "manual" else _autodiff)(model, loss, params, x, y, key)
    return ((value, out), grads) if with_output else (value, grads)


def grad(model, loss, params, x, y, *, key=None, method="manual"):
    """dL/dparams alone; see value_and_grad."""
    return value_and_grad(model, loss, params, x, y, key=key, method=method)[1]


def make_value_and_grad(model, loss, method="manual", with_output=False):
    """A function (params, x, y, key=None) -> (L, grads), ready for jax.jit."""
    _check_method(method)
    loss = get_loss(loss)

    def fn(params, x, y, key=None):
        return value_and_grad(model, loss, params, x, y, key=key, method=method,
                              with_output=with_output)

    return fn


def differentiable(model, *, train=False):
    """The model as f(params, x, key=None) whose VJP is the hand-written backward.

    jax.grad, jax.vjp, jit and vmap of any function that calls it use
    model.backward instead of differentiating the forward:

        f = fnn.differentiable(model)
        jax.grad(lambda p: jnp.sum(f(p, x) ** 2))(params)

    Arrays (params, x, key) are ordinary arguments; `train` is fixed here.
    """
    @jax.custom_vjp
    def f(params, x, key=None):
        return model.forward(params, x, key=key, train=train)[0]

    def f_fwd(params, x, key=None):
        out, saved = model.forward(params, x, key=key, train=train)
        return out, (params, saved)

    def f_bwd(residuals, dout):
        params, saved = residuals
        dparams, dx = model.backward(params, saved, dout)
        return dparams, dx, None

    f.defvjp(f_fwd, f_bwd)
    return f


def differentiable_loss(loss):
    """The loss as L(out, target) whose VJP is the hand-written loss.grad."""
    loss = get_loss(loss)

    @jax.custom_vjp
    def f(out, target):
        return loss.fn(out, target)

    def f_fwd(out, target):
        return loss.fn(out, target), (out, target)

    def f_bwd(residuals, dL):
        out, target = residuals
        return dL * loss.grad(out, target), None

    f.defvjp(f_fwd, f_bwd)
    return f
