"""Losses over a batch, each beside its hand-written gradient w.r.t. the network output.

A `Loss` bundles

    fn(out, target)          -> scalar L
    grad(out, target)        -> dL/d out, same shape as out
    target_grad(out, target) -> dL/d target, same shape as target (float targets;
                                used by fnn.differentiable_loss, never in training)

`out` is the network's raw output: predictions for the regression losses,
logits for the cross-entropies (never probabilities: the fused forms are the
stable ones). Regression targets of shape (batch,) are accepted for outputs
of shape (batch, 1).
"""
from typing import Callable, NamedTuple, Optional, Union

import jax.numpy as jnp

from fnn import numerics
from fnn.errors import InputError
from fnn.typing import Array, ArrayLike

__all__ = [
    "TASKS", "Loss", "mse", "half_squared_error", "binary_cross_entropy",
    "softmax_cross_entropy", "l1", "huber", "get_loss", "LOSSES",
]


TASKS = ("classification", "binary", "regression")


class Loss(NamedTuple):
    """A named loss with its hand-written gradient w.r.t. the network output.

    task: what the targets are, and so how they are checked and scored:
      "classification"  integer labels (batch,) of any integer dtype, or soft targets
                        (batch, classes) of weights y_bc ≥ 0, any row mass; out are logits.
                        L = −(1/B) Σ_b Σ_c y_bc log softmax(z_b)_c, terms with y_bc = 0 left
                        out (0·log 0 = 0 at a masked logit, z_c = −inf); negative weights
                        are refused by fnn.validate.check_targets at fnn's entries
      "binary"          0/1 (or probability) targets; out is one logit per target
      "regression"      real targets shaped like out (or out without its last axis of 1)
    kink_distance(out, target): elementwise distance of the residual to the
      nearest point where the loss is not differentiable (l1 at ŷ = y, huber at
      |ŷ − y| = δ); None for a smooth loss. Gradient checks draw problems away from it.
    target_grad(out, target): dL/d target for float targets, shaped like target;
      None if not written, and then fnn.differentiable_loss refuses to be
      differentiated with respect to the target (rather than return zeros).
    """
    name: str
    fn: Callable
    grad: Callable
    task: str = "regression"
    kink_distance: Optional[Callable] = None
    target_grad: Optional[Callable] = None

    def accuracy(self, out: Array, target: ArrayLike) -> Optional[Array]:
        """Fraction of correct predictions for classification losses; None for regression.

        Args:
          out: the network's output: logits (classification: the argmax is the class;
            binary: a logit > 0 is class 1), or predictions (regression).
          target: integer labels or soft targets (classification), 0/1 targets (binary).

        Returns:
          The fraction correct, a float scalar array; None for a regression loss.
        """
        target = jnp.asarray(target)
        if self.task == "classification":
            labels = target if jnp.issubdtype(target.dtype, jnp.integer) else jnp.argmax(target, axis=-1)
            return jnp.mean(jnp.argmax(out, axis=-1) == labels)
        if self.task == "binary":
            return jnp.mean((out.reshape(target.shape) > 0) == (target > 0.5))
        return None


def _like_output(out, target, loss_name):
    """target reshaped to out's shape, or a ValueError naming both shapes."""
    target = jnp.asarray(target)
    if target.shape == out.shape:
        return target.astype(out.dtype)
    if out.ndim == target.ndim + 1 and out.shape[-1] == 1 and out.shape[:-1] == target.shape:
        return target.reshape(out.shape).astype(out.dtype)
    raise InputError(
        f"{loss_name}: target shape {target.shape} does not match output shape "
        f"{out.shape}; expected {out.shape}" + (
            f" or {out.shape[:-1]}" if out.shape and out.shape[-1] == 1 else ""))


def _mse(out, target):
    """L = (1/n) Σ (ŷ − y)²  over all n elements."""
    r = out - _like_output(out, target, "mse")
    return jnp.mean(r * r)


def _mse_grad(out, target):
    """dL/dŷ = 2 (ŷ − y) / n."""
    return 2 * (out - _like_output(out, target, "mse")) / out.size


def _mse_target_grad(out, target):
    """dL/dy = −2 (ŷ − y) / n."""
    target = jnp.asarray(target)
    return (-_mse_grad(out, target)).reshape(target.shape)


mse = Loss("mse", _mse, _mse_grad, target_grad=_mse_target_grad)


def _half_se(out, target):
    """L = ½ (1/n) Σ (ŷ − y)²: seed 002's ½(ŷ − y)², averaged over the n elements."""
    r = out - _like_output(out, target, "half_squared_error")
    return 0.5 * jnp.mean(r * r)


def _half_se_grad(out, target):
    """dL/dŷ = (ŷ − y) / n."""
    return (out - _like_output(out, target, "half_squared_error")) / out.size


def _half_se_target_grad(out, target):
    """dL/dy = −(ŷ − y) / n."""
    target = jnp.asarray(target)
    return (-_half_se_grad(out, target)).reshape(target.shape)


half_squared_error = Loss("half_squared_error", _half_se, _half_se_grad,
                          target_grad=_half_se_target_grad)


def _bce(logits, target):
    """L = (1/n) Σ softplus(z) − y·z  =  −(1/n) Σ [y log σ(z) + (1 − y) log(1 − σ(z))].

    Computed per element as y·softplus(−z) + (1 − y)·softplus(z), i.e.

        log1p(e^−|z|) + (1 − y)·z   for z ≥ 0,     log1p(e^−|z|) − y·z   for z < 0,

    a sum of terms ≥ 0 for targets in [0, 1]: nothing cancels, so both tails are
    accurate (softplus(z) − y·z rounds to 0 for z = 20, y = 1 in float32, where
    L = 2.06e-9). e^−|z| is the exponential the gradient reads too.
    """
    y = _like_output(logits, target, "binary_cross_entropy")
    linear = jnp.where(logits >= 0, (1 - y) * logits, -y * logits)     # y·max(−z, 0) + (1 − y)·max(z, 0)
    return jnp.mean(jnp.log1p(jnp.exp(-jnp.abs(logits))) + linear)


def _bce_grad(logits, target):
    """dL/dz = (σ(z) − y) / n.

    σ from e^−|z|, the exponential the loss value computes too, so XLA
    computes it once for both (numerics.sigmoid_from_exp; benchmarks/RESULTS.md, finding 10).
    """
    y = _like_output(logits, target, "binary_cross_entropy")
    return (numerics.sigmoid_from_exp(logits) - y) / logits.size


def _bce_target_grad(logits, target):
    """dL/dy = −z / n."""
    target = jnp.asarray(target)
    return (-logits / logits.size).reshape(target.shape).astype(jnp.result_type(logits))


binary_cross_entropy = Loss("binary_cross_entropy", _bce, _bce_grad, "binary",
                            target_grad=_bce_target_grad)


def _targets(logits, target):
    """(batch, classes) target distribution from integer labels or one-hot/soft targets.

    Labels narrower than int32 (uint8, int16, ...) are compared with the class
    indices in int32: in their own dtype the indices would wrap past the
    dtype's range (uint8 class 256 would read as 0).
    """
    target = jnp.asarray(target)
    if jnp.issubdtype(target.dtype, jnp.integer) and target.shape == logits.shape[:-1]:
        if target.dtype.itemsize < 4:
            target = target.astype(jnp.int32)
        classes = jnp.arange(logits.shape[-1], dtype=target.dtype)
        return (target[..., None] == classes.reshape((1,) * target.ndim + (-1,))).astype(logits.dtype)
    if target.shape == logits.shape and jnp.issubdtype(target.dtype, jnp.floating):
        return target.astype(logits.dtype)
    raise InputError(
        f"softmax_cross_entropy: target of shape {target.shape} and dtype {target.dtype} "
        f"does not fit logits of shape {logits.shape}; expected integer labels of shape "
        f"{logits.shape[:-1]} or float targets of shape {logits.shape}")


def _batch_size(logits):
    return logits.size // logits.shape[-1]


def _softmax_ce(logits, target):
    """L = −(1/B) Σ_b Σ_c y_bc log softmax(z_b)_c, with 0·log 0 = 0 for masked classes.

    Soft targets are weights y_bc ≥ 0 of any row mass (a distribution sums to
    1); the formula is applied as written, only the terms with y_bc = 0 are
    left out, so a masked class (z_c = −inf) with y_c = 0 adds 0, not NaN.
    Negative weights are refused at fnn's entries (fnn.validate.check_targets).
    """
    y = _targets(logits, target)
    logp = numerics.log_softmax(logits, axis=-1)
    terms = jnp.where(y != 0, y * logp, jnp.zeros_like(logp))
    return -jnp.sum(terms) / _batch_size(logits)


def _softmax_ce_grad(logits, target):
    """dL/dz by the chain rule through the loss's two stages, logits → log_softmax → L.

        dL/dlogp_c = g_c = −y_c / B        (0 where y_c = 0: those terms are not in L)
        dL/dz      = g − softmax(z) · Σ_c g_c          (log_softmax's vector-Jacobian product)

    For a target distribution (integer labels, one-hot: Σ_c y_c = 1) this is
    the familiar (softmax(z) − y)/B; for soft targets of any mass it stays exact.

    Written this way for XLA's CPU backend: the target masked as in L (XLA
    shares it with the loss value), the row sum kept out of dz's fusion, and g
    one select that dz reads from memory (benchmarks/RESULTS.md, findings 4, 8, 9).
    """
    y = _targets(logits, target)
    g = jnp.where(y != 0, -y / _batch_size(logits), jnp.zeros_like(y))             # dL/dlogp
    return g + numerics.softmax(logits, axis=-1) * -jnp.sum(g, axis=-1, keepdims=True)


def _softmax_ce_target_grad(logits, target):
    """dL/dy_bc = −log softmax(z_b)_c / B for float targets (+inf for a masked class, z_c = −inf)."""
    return -numerics.log_softmax(logits, axis=-1) / _batch_size(logits)


softmax_cross_entropy = Loss("softmax_cross_entropy", _softmax_ce, _softmax_ce_grad, "classification",
                             target_grad=_softmax_ce_target_grad)


def _l1(out, target):
    """L = (1/n) Σ |ŷ − y|."""
    return jnp.mean(jnp.abs(out - _like_output(out, target, "l1")))


def _l1_grad(out, target):
    """dL/dŷ = sign(ŷ − y) / n  (0 where ŷ = y; jax.grad of jnp.abs takes 1 there)."""
    return jnp.sign(out - _like_output(out, target, "l1")) / out.size


def _l1_kink(out, target):
    """|ŷ − y|: l1 has its kink at ŷ = y."""
    return jnp.abs(out - _like_output(out, target, "l1"))


def _l1_target_grad(out, target):
    """dL/dy = −sign(ŷ − y) / n."""
    target = jnp.asarray(target)
    return (-_l1_grad(out, target)).reshape(target.shape)


l1 = Loss("l1", _l1, _l1_grad, "regression", _l1_kink, _l1_target_grad)


def huber(delta: float = 1.0) -> Loss:
    """Huber loss: quadratic within ±delta of the target, linear beyond.

    L = (1/n) Σ h(r),  r = ŷ − y,  h(r) = ½ r² if |r| ≤ δ else δ(|r| − ½δ)
    dL/dŷ = clip(r, −δ, δ) / n,   dL/dy = −dL/dŷ

    Args:
      delta: δ, where the quadratic part meets the linear one (> 0).

    Returns:
      A regression Loss, named "huber" for δ = 1 and "huber(δ)" otherwise.

    Raises:
      InputError: for delta ≤ 0.
    """
    if not delta > 0:
        raise InputError(f"huber delta must be > 0, got {delta!r}")

    def fn(out, target):
        r = out - _like_output(out, target, "huber")
        a = jnp.abs(r)
        return jnp.mean(jnp.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta)))

    def grad(out, target):
        r = out - _like_output(out, target, "huber")
        return jnp.clip(r, -delta, delta) / out.size

    def target_grad(out, target):
        return (-grad(out, target)).reshape(jnp.shape(target))

    def kink_distance(out, target):
        """| |ŷ − y| − δ |: huber switches from quadratic to linear at |ŷ − y| = δ."""
        return jnp.abs(jnp.abs(out - _like_output(out, target, "huber")) - delta)

    return Loss("huber" if delta == 1.0 else f"huber({delta})", fn, grad, "regression", kink_distance,
                target_grad)


LOSSES = {
    "mse": mse,
    "half_squared_error": half_squared_error,
    "binary_cross_entropy": binary_cross_entropy,
    "bce": binary_cross_entropy,
    "softmax_cross_entropy": softmax_cross_entropy,
    "cross_entropy": softmax_cross_entropy,
    "l1": l1,
    "huber": huber(1.0),
}


def get_loss(loss: Union[str, Loss]) -> Loss:
    """A Loss from a name in LOSSES or a Loss itself.

    Args:
      loss: a name in LOSSES ("mse", "softmax_cross_entropy", "bce", ...) or a Loss,
        returned as it is.

    Returns:
      The Loss.

    Raises:
      InputError: for anything else, naming the losses there are.
    """
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, str) and loss in LOSSES:
        return LOSSES[loss]
    raise InputError(
        f"unknown loss {loss!r}; expected one of {', '.join(sorted(LOSSES))} or an fnn.Loss")
