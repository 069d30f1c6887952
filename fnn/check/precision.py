"""The hand-written backward in 16 bits, against jax.grad in the same precision and in float32."""
from typing import Any, Dict, Optional, Union

import jax
from jax.flatten_util import ravel_pytree

from fnn.check.gradcheck import relative_error
from fnn.grads import forward_backward
from fnn.layers.core import Layer
from fnn.losses import Loss, get_loss
from fnn.precision import FLOAT32_TOLERANCE, GRAD_TOLERANCE, Policy, get_policy
from fnn.typing import ArrayLike, Params, PRNGKey

__all__ = ["precision_check"]


def _three_gradients(model, loss, policy, params, x, y, key):
    """Manual and jax.grad in the policy's precision, jax.grad in float32: one compiled program."""
    manual = forward_backward(model, loss, params, x, y, key=key, method="manual", precision=policy).grads
    auto = forward_backward(model, loss, params, x, y, key=key, method="autodiff", precision=policy).grads
    reference = forward_backward(model, loss, params, x, y, key=key, method="autodiff").grads
    return manual, auto, reference


_three_gradients_program = jax.jit(_three_gradients, static_argnums=(0, 1, 2))


def precision_check(model: Layer, loss: Union[str, Loss], params: Params, x: ArrayLike, y: ArrayLike, *,
                    precision: Union[str, Policy] = "bf16", key: Optional[PRNGKey] = None) -> Dict[str, Any]:
    """The hand-written backward in a precision, against jax.grad in the same precision and in float32.

    rel(a, b) = ‖a − b‖∞ / max(‖a‖∞, ‖b‖∞) over all parameters (relative_error).

    Args:
      model: an fnn Layer.
      loss: an fnn Loss or its name.
      params: the model's float32 parameters.
      x, y: a batch of inputs and targets.
      precision: "bf16", "fp16" (or "fp32") or a fnn.precision.Policy.
      key: PRNG key for a stochastic model (dropout), else None.

    Returns:
      A dict:
        vs_autodiff   rel(manual, jax.grad), both in this precision: is the backward right?
                      Below fnn.precision.GRAD_TOLERANCE[name] (a few units of round-off).
        vs_float32    rel(manual, float32 jax.grad): what the precision itself costs.
                      Below fnn.precision.FLOAT32_TOLERANCE[name].
        tolerance, float32_tolerance, precision, compute_dtype.

    Raises:
      InputError: for a precision fnn does not know.
    """
    policy = get_policy(precision)
    manual, auto, reference = _three_gradients_program(model, get_loss(loss), policy, params, x, y, key)
    flat = lambda g: ravel_pytree(g)[0]
    return {"precision": policy.name, "compute_dtype": str(policy.compute_dtype),
            "vs_autodiff": relative_error(flat(manual), flat(auto)),
            "vs_float32": relative_error(flat(manual), flat(reference)),
            "tolerance": GRAD_TOLERANCE[policy.name],
            "float32_tolerance": FLOAT32_TOLERANCE[policy.name]}
