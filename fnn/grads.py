"""Gradients of a loss through a model: hand-written backprop or jax.grad, one signature.

    method="manual"    forward, loss.grad, then model.backward layer by layer
    method="autodiff"  jax.vjp of the same forward and loss

`forward_backward` returns the loss, the model's output, the gradients and,
for a model with non-trainable state (BatchNorm), that state after the
training forward (both methods fold the same forward's saved values into it:
fnn.update_state); `value_and_grad` and `grad` the loss and gradients alone. With a precision
policy (fnn.precision: "bf16", "fp16") the forward and backward run in its
compute dtype and the loss in float32 (the formulas are in fnn.precision).

`differentiable(model)` and `differentiable_loss(loss)` wrap the hand-written
backward in jax.custom_vjp, so jax.grad (and jit, vmap, grad of any larger
function) uses fnn's own backpropagation.
"""
from typing import Any, Callable, NamedTuple, Optional, Tuple, Union

import jax
import jax.numpy as jnp
import numpy as np

from fnn.errors import InputTypeError
from fnn.layers.core import Layer, update_state
from fnn.losses import Loss, get_loss
from fnn.precision import Precision, cast_floating, get_policy
from fnn.typing import Array, ArrayLike, Grads, ModelState, Params, PRNGKey
from fnn.validate import check_choice, check_model_state, check_params, check_targets

__all__ = ["METHODS", "Backprop", "forward_backward", "loss_value", "value_and_grad", "grad",
           "make_value_and_grad", "differentiable", "differentiable_loss"]

METHODS = ("manual", "autodiff")


class Backprop(NamedTuple):
    """What one forward and backward pass gives: the loss L, the model output, dL/dparams, new state.

    state: the model's non-trainable state after this training forward
    (fnn.update_state(model, state, saved)); () for a stateless model, None for a
    stateful one given no state. Unpack all four: value, output, grads, state = ...
    """
    value: jax.Array
    output: jax.Array
    grads: Any
    state: Any = ()


def loss_value(model: Layer, loss: Union[str, Loss], params: Params, x: ArrayLike, y: ArrayLike, *,
               key: Optional[PRNGKey] = None, train: bool = True,
               state: Optional[ModelState] = None) -> Array:
    """L(params) = loss(model(params, x), y), the forward alone, to differentiate with jax.grad.

    Args:
      model: an fnn Layer.
      loss: an fnn Loss or its name.
      params: the model's parameter pytree.
      x, y: inputs and targets.
      key: PRNG key for stochastic layers (dropout); None if there are none.
      train: training mode (dropout on, BatchNorm's batch statistics) or inference.
      state: the model's non-trainable state; needed in inference by a stateful model.

    Returns:
      L, a scalar array.
    """
    out, _ = model.forward(params, x, key=key, train=train, state=state)
    return get_loss(loss).fn(out, y)


def _new_state(model, state, saved):
    """The state after a training forward: () if stateless, None if no state was given."""
    if not model.stateful:
        return ()
    return None if state is None else update_state(model, state, saved)


def _manual(model, loss, params, x, y, key, state):
    """Backpropagation: dL/dout from the loss, then each layer's backward in reverse."""
    out, saved = model.forward(params, x, key=key, train=True, state=state)   # (batch, out)
    value = loss.fn(out, y)
    grads, _ = model.backward(params, saved, loss.grad(out, y))     # the tree of params
    return Backprop(value, out, grads, _new_state(model, state, saved))


def _autodiff(model, loss, params, x, y, key, state):
    """jax.value_and_grad of the same forward and loss; the new state is an auxiliary output."""
    def f(p):
        out, saved = model.forward(p, x, key=key, train=True, state=state)
        return loss.fn(out, y), (out, _new_state(model, state, saved))
    (value, (out, new_state)), grads = jax.value_and_grad(f, has_aux=True)(params)
    return Backprop(value, out, grads, new_state)


def _manual_mixed(model, loss, policy, params, x, y, key, scale, state):
    """Hand-written backprop in the compute dtype; float32 loss, float32 unscaled gradients."""
    p_c, x_c = cast_floating(params, policy.compute_dtype), cast_floating(x, policy.compute_dtype)
    out, saved = model.forward(p_c, x_c, key=key, train=True,
                               state=cast_floating(state, policy.compute_dtype))   # compute dtype
    out = out.astype(policy.output_dtype)
    value = loss.fn(out, y)
    dout = (loss.grad(out, y) * scale).astype(policy.compute_dtype)            # s · dL/dout
    grads, _ = model.backward(p_c, saved, dout)
    return Backprop(value, out, _unscale(grads, scale, policy), _new_state(model, state, saved))


def _autodiff_mixed(model, loss, policy, params, x, y, key, scale, state):
    """jax.vjp of the same casts, forward and loss, with cotangent s; then unscaled."""
    x_c = cast_floating(x, policy.compute_dtype)

    def f(p):
        out, saved = model.forward(cast_floating(p, policy.compute_dtype), x_c, key=key, train=True,
                                   state=cast_floating(state, policy.compute_dtype))
        out = out.astype(policy.output_dtype)
        return loss.fn(out, y), (out, _new_state(model, state, saved))

    value, vjp, (out, new_state) = jax.vjp(f, params, has_aux=True)
    grads, = vjp(jnp.asarray(scale, value.dtype))
    return Backprop(value, out, _unscale(grads, scale, policy), new_state)


def _unscale(grads, scale, policy):
    """g = cast(g_c, float32) / s."""
    return jax.tree.map(lambda g: g.astype(policy.param_dtype) / jnp.asarray(scale, policy.param_dtype), grads)


def forward_backward(model: Layer, loss: Union[str, Loss], params: Params, x: ArrayLike, y: ArrayLike, *,
                     key: Optional[PRNGKey] = None, state: Optional[ModelState] = None, method: str = "manual",
                     precision: Precision = None, loss_scale: Union[float, Array] = 1.0) -> Backprop:
    """The loss, the model's output, dL/dparams and the new model state for one batch, as a Backprop.

    Args:
      model: an fnn Layer.
      loss: an fnn Loss or its name.
      params: the model's parameter pytree.
      x, y: inputs and targets.
      key: PRNG key for stochastic layers (dropout); None if there are none.
      state: the model's non-trainable state (fnn.init_state), or None. The forward
        runs in training mode (BatchNorm: batch statistics) and the state is updated
        from what it saved; without it Backprop.state is None for a stateful model.
      method: "manual" (hand-written backward) or "autodiff" (jax.grad).
      precision: None (everything in the dtype of params and x), or "bf16"/"fp16"/a
        fnn.precision.Policy: forward and backward in its compute dtype, the loss and
        the gradients returned in float32.
      loss_scale: with a precision, dL/dout is multiplied by it before the backward
        and the gradients divided by it after (float16 loss scaling).

    Returns:
      Backprop(value, output, grads, state), grads with the structure of params.

    Raises:
      InputError / InputTypeError: for a method or precision fnn does not know, or params,
      state or targets that do not fit the model (naming the leaf or shape).
    """
    check_choice("gradient method", method, METHODS)
    loss = get_loss(loss)
    x = jnp.asarray(x)
    check_params(model, params, x.shape)
    check_model_state(model, state, x.shape, "forward_backward")
    check_targets(loss, jax.eval_shape(lambda: model.apply(params, x, key=key, train=True, state=state)).shape, y)
    if precision is None:
        return (_manual if method == "manual" else _autodiff)(model, loss, params, x, y, key, state)
    impl = _manual_mixed if method == "manual" else _autodiff_mixed
    return impl(model, loss, get_policy(precision), params, x, y, key, loss_scale, state)


def value_and_grad(model: Layer, loss: Union[str, Loss], params: Params, x: ArrayLike, y: ArrayLike, *,
                   key: Optional[PRNGKey] = None, state: Optional[ModelState] = None, method: str = "manual",
                   precision: Precision = None) -> Tuple[Array, Grads]:
    """(L, dL/dparams) for one batch, by hand-written backprop or by jax.grad; see forward_backward.

    The training forward's new model state is dropped: forward_backward returns it.

    Args:
      model: an fnn Layer.
      loss: an fnn Loss or its name.
      params: the model's parameter pytree.
      x, y: inputs and targets.
      key: PRNG key for stochastic layers (dropout); None if there are none.
      state: the model's non-trainable state (fnn.init_state), or None; the forward runs
        in training mode.
      method: "manual" (hand-written backward) or "autodiff" (jax.grad).
      precision: None, "bf16", "fp16" or a fnn.precision.Policy (see forward_backward).

    Returns:
      (L, grads): the loss, a scalar, and the gradients with the structure of params.

    Raises:
      InputError / InputTypeError: as forward_backward.
    """
    r = forward_backward(model, loss, params, x, y, key=key, state=state, method=method, precision=precision)
    return r.value, r.grads


def grad(model: Layer, loss: Union[str, Loss], params: Params, x: ArrayLike, y: ArrayLike, *,
         key: Optional[PRNGKey] = None, state: Optional[ModelState] = None, method: str = "manual",
         precision: Precision = None) -> Grads:
    """dL/dparams alone; see forward_backward.

    Args:
      model: an fnn Layer.
      loss: an fnn Loss or its name.
      params: the model's parameter pytree.
      x, y: inputs and targets.
      key: PRNG key for stochastic layers (dropout); None if there are none.
      state: the model's non-trainable state (fnn.init_state), or None; the forward runs
        in training mode.
      method: "manual" (hand-written backward) or "autodiff" (jax.grad).
      precision: None, "bf16", "fp16" or a fnn.precision.Policy (see forward_backward).

    Returns:
      The gradients, with the structure of params.

    Raises:
      InputError / InputTypeError: as forward_backward.
    """
    return value_and_grad(model, loss, params, x, y, key=key, state=state, method=method,
                          precision=precision)[1]


def make_value_and_grad(model: Layer, loss: Union[str, Loss], method: str = "manual",
                        precision: Precision = None) -> Callable[..., Tuple[Array, Grads]]:
    """A function (params, x, y, *, key=None, state=None) -> (L, grads), ready for jax.jit.

    Args:
      model: an fnn Layer.
      loss: an fnn Loss or its name.
      method: "manual" (hand-written backward) or "autodiff" (jax.grad).
      precision: None, "bf16", "fp16" or a fnn.precision.Policy (see forward_backward).

    Returns:
      fn(params, x, y, *, key=None, state=None) -> (L, grads), value_and_grad with the
      model, loss, method and precision fixed.

    Raises:
      InputError: for a method or loss fnn does not know.
    """
    check_choice("gradient method", method, METHODS)
    loss = get_loss(loss)

    def fn(params, x, y, *, key=None, state=None):
        return value_and_grad(model, loss, params, x, y, key=key, state=state, method=method,
                              precision=precision)

    return fn


def differentiable(model: Layer, *, train: bool = False) -> Callable[..., Array]:
    """The model as f(params, x, key=None, state=None) whose VJP is the hand-written backward.

    jax.grad, jax.vjp, jit and vmap of any function that calls it use
    model.backward instead of differentiating the forward:

        f = fnn.differentiable(model)
        jax.grad(lambda p: jnp.sum(f(p, x) ** 2))(params)

    Arrays (params, x, key, state) are ordinary arguments; `train` is fixed here.
    A stateful model in inference reads `state` (no gradient flows into it); the
    state is not updated here (fnn.forward_backward does that).

    Args:
      model: an fnn Layer.
      train: the forward's mode: False (inference) or True (dropout on, with a key).

    Returns:
      f(params, x, key=None, state=None) -> the model's output, with model.backward as its VJP.
    """
    @jax.custom_vjp
    def f(params, x, key=None, state=None):
        return model.forward(params, x, key=key, train=train, state=state)[0]

    def f_fwd(params, x, key=None, state=None):
        out, saved = model.forward(params, x, key=key, train=train, state=state)
        return out, (params, saved)

    def f_bwd(residuals, dout):
        params, saved = residuals
        dparams, dx = model.backward(params, saved, dout)
        return dparams, dx, None, None

    f.defvjp(f_fwd, f_bwd)
    return f


def differentiable_loss(loss: Union[str, Loss]) -> Callable[[Array, ArrayLike], Array]:
    """The loss as L(out, target) whose VJP is the hand-written loss.grad (and loss.target_grad).

        dL/d out    = loss.grad(out, target)
        dL/d target = loss.target_grad(out, target) for float targets; integer labels
                      are not differentiable and get a float0 zero cotangent

    A loss without a target_grad raises TypeError when the target is
    differentiated (it is among jax.grad's argnums, or computed from them),
    instead of giving zeros; jax.grad in `out` alone works for every loss.

    Args:
      loss: an fnn Loss or its name.

    Returns:
      L(out, target) -> a scalar, with loss.grad (and loss.target_grad) as its VJP.

    Raises:
      InputError: for a loss name fnn does not know.
    """
    loss = get_loss(loss)

    @jax.custom_vjp
    def f(out, target):
        return loss.fn(out, target)

    def f_fwd(out, target):
        if target.perturbed and loss.target_grad is None and _differentiable(target.value):
            raise InputTypeError(
                f"differentiable_loss({loss.name}): the loss has no target_grad, so it cannot be "
                "differentiated with respect to the target; differentiate in the output only "
                "(jax.grad(L, argnums=0)), or give the Loss a target_grad(out, target) = dL/dtarget")
        return loss.fn(out.value, target.value), (out.value, target.value, target.perturbed)

    def f_bwd(residuals, dL):
        out, target, target_perturbed = residuals
        dL = jnp.zeros((), out.dtype) if isinstance(dL, jax.custom_derivatives.SymbolicZero) else dL
        return dL * loss.grad(out, target), _target_cotangent(loss, out, target, target_perturbed, dL)

    f.defvjp(f_fwd, f_bwd, symbolic_zeros=True)
    return f


def _differentiable(target):
    """Whether the target can carry a gradient: float (or complex) values, not integer labels."""
    return jnp.issubdtype(jnp.result_type(target), jnp.inexact)


def _target_cotangent(loss, out, target, perturbed, dL):
    """dL · dL/dtarget shaped and typed like target; float0 zeros for integer labels, None if unused."""
    if not _differentiable(target):
        return np.zeros(np.shape(target), jax.dtypes.float0)
    if not perturbed:
        return None
    target = jnp.asarray(target)
    return (dL * loss.target_grad(out, target)).reshape(target.shape).astype(target.dtype)
