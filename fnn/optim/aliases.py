"""Named optimizers, each a chain of transforms (fnn.optim.transforms), and get_optimizer by name.

    sgd(α)      = chain(scale_by_learning_rate(α))            w ← w − α g  (seed 002)
    adam(α)     = chain(scale_by_adam(b1, b2, eps), scale_by_learning_rate(α))
    adamw(α)    = chain(scale_by_adam(...), add_decayed_weights(λ), scale_by_learning_rate(α))
"""
from typing import Any, Union

from fnn.errors import InputError, InputTypeError
from fnn.optim.base import GradientTransformation, _concrete, _unit_interval, is_optimizer
from fnn.optim.transforms import (add_decayed_weights, chain, ema, scale_by_adagrad, scale_by_adam,
                                  scale_by_learning_rate, scale_by_rms, trace)
from fnn.typing import LearningRate, Optimizer, Scalar

__all__ = ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw", "OPTIMIZERS",
           "get_optimizer"]

def sgd(learning_rate: LearningRate) -> GradientTransformation:
    """Gradient descent, w ← w − α g  (seed 002's w_new = w_old − α · dL/dw).

    Args:
      learning_rate: the step size α, a float > 0 or a schedule count -> rate
        (fnn.optim.schedules).

    Returns:
      A GradientTransformation (init, update).

    Raises:
      InputError / InputTypeError: for a hyper-parameter out of range or not a real scalar.
    """
    return chain(scale_by_learning_rate(learning_rate))


def momentum(learning_rate: LearningRate, beta: Scalar = 0.9) -> GradientTransformation:
    """SGD with momentum: v ← β v + g;  w ← w − α v.

    Args:
      learning_rate: the step size α, a float > 0 or a schedule count -> rate
        (fnn.optim.schedules).
      beta: the momentum β, in [0, 1).

    Returns:
      A GradientTransformation (init, update).

    Raises:
      InputError / InputTypeError: for a hyper-parameter out of range or not a real scalar.
    """
    _unit_interval("momentum", "beta", beta)
    return chain(trace(beta), scale_by_learning_rate(learning_rate))


def nesterov(learning_rate: LearningRate, beta: Scalar = 0.9) -> GradientTransformation:
    """SGD with Nesterov momentum: v ← β v + g;  w ← w − α (β v + g).

    Args:
      learning_rate: the step size α, a float > 0 or a schedule count -> rate
        (fnn.optim.schedules).
      beta: the momentum β, in [0, 1).

    Returns:
      A GradientTransformation (init, update).

    Raises:
      InputError / InputTypeError: for a hyper-parameter out of range or not a real scalar.
    """
    _unit_interval("nesterov", "beta", beta)
    return chain(trace(beta, nesterov=True), scale_by_learning_rate(learning_rate))


def adagrad(learning_rate: LearningRate, initial_accumulator: Scalar = 0.1, eps: Scalar = 1e-7,
            momentum: Scalar = 0.0) -> GradientTransformation:
    """Adagrad: s ← s + g²;  u = g / sqrt(s + ε);  w ← w − α u.

    momentum=β > 0 adds a moving average of u before the step (m ← β m + (1 − β) u;
    u ← m), as jax.example_libraries.optimizers.adagrad does: that optimizer is
    this one with initial_accumulator=0, eps=0, momentum=0.9.

    Args:
      learning_rate: the step size α, a float > 0 or a schedule count -> rate
        (fnn.optim.schedules).
      initial_accumulator: the starting value of s (≥ 0).
      eps: ε, added to s under the square root (≥ 0).
      momentum: β in [0, 1); 0 for none.

    Returns:
      A GradientTransformation (init, update).

    Raises:
      InputError / InputTypeError: for a hyper-parameter out of range or not a real scalar.
    """
    _unit_interval("adagrad", "momentum", momentum)
    transforms = [scale_by_adagrad(initial_accumulator, eps)]
    if _concrete(momentum) != 0:
        transforms.append(ema(momentum))
    return chain(*transforms, scale_by_learning_rate(learning_rate))


def rmsprop(learning_rate: LearningRate, decay: Scalar = 0.9, eps: Scalar = 1e-8) -> GradientTransformation:
    """RMSprop: ν ← ρ ν + (1 − ρ) g²;  w ← w − α g / sqrt(ν + ε).

    Args:
      learning_rate: the step size α, a float > 0 or a schedule count -> rate
        (fnn.optim.schedules).
      decay: ρ, the decay of the moving average of g², in [0, 1).
      eps: ε, added to ν under the square root (≥ 0).

    Returns:
      A GradientTransformation (init, update).

    Raises:
      InputError / InputTypeError: for a hyper-parameter out of range or not a real scalar.
    """
    return chain(scale_by_rms(decay, eps), scale_by_learning_rate(learning_rate))


def adam(learning_rate: LearningRate, b1: Scalar = 0.9, b2: Scalar = 0.999,
         eps: Scalar = 1e-8) -> GradientTransformation:
    """Adam: w ← w − α m̂ / (sqrt(v̂) + ε), with m̂, v̂ as in scale_by_adam.

    Args:
      learning_rate: the step size α, a float > 0 or a schedule count -> rate
        (fnn.optim.schedules).
      b1: β₁, the decay of the first moment m, in [0, 1).
      b2: β₂, the decay of the second moment v, in [0, 1).
      eps: ε, added to sqrt(v̂) (≥ 0).

    Returns:
      A GradientTransformation (init, update).

    Raises:
      InputError / InputTypeError: for a hyper-parameter out of range or not a real scalar.
    """
    return chain(scale_by_adam(b1, b2, eps), scale_by_learning_rate(learning_rate))


def adamw(learning_rate: LearningRate, b1: Scalar = 0.9, b2: Scalar = 0.999, eps: Scalar = 1e-8,
          weight_decay: Scalar = 1e-4) -> GradientTransformation:
    """AdamW: w ← w − α (m̂ / (sqrt(v̂) + ε) + λ w), the decay outside Adam's scaling.

    As in PyTorch's AdamW, the decay step is multiplied by the (scheduled)
    learning rate α: each update shrinks w by the factor (1 − α λ).

    Args:
      learning_rate: the step size α, a float > 0 or a schedule count -> rate
        (fnn.optim.schedules).
      b1: β₁, the decay of the first moment m, in [0, 1).
      b2: β₂, the decay of the second moment v, in [0, 1).
      eps: ε, added to sqrt(v̂) (≥ 0).
      weight_decay: λ (≥ 0).

    Returns:
      A GradientTransformation (init, update).

    Raises:
      InputError / InputTypeError: for a hyper-parameter out of range or not a real scalar.
    """
    return chain(scale_by_adam(b1, b2, eps), add_decayed_weights(weight_decay),
                 scale_by_learning_rate(learning_rate))


OPTIMIZERS = {
    "sgd": sgd,
    "momentum": momentum,
    "nesterov": nesterov,
    "adagrad": adagrad,
    "rmsprop": rmsprop,
    "adam": adam,
    "adamw": adamw,
}


def get_optimizer(optimizer: Union[str, Optimizer], **kwargs: Any) -> Optimizer:
    """An optimizer from a name in OPTIMIZERS and its arguments, or an optimizer returned as it is.

    get_optimizer("adam", learning_rate=1e-3) is adam(learning_rate=1e-3).

    Args:
      optimizer: a name in OPTIMIZERS ("sgd", "adam", ...), or an optimizer (init, update):
        an fnn GradientTransformation or another library's, e.g. optax's.
      **kwargs: the named optimizer's arguments; none with a built optimizer.

    Returns:
      The optimizer.

    Raises:
      InputError: for a name not in OPTIMIZERS.
      InputTypeError: for arguments given with an already built optimizer.
    """
    if is_optimizer(optimizer):          # a GradientTransformation, or another library's (init, update)
        if kwargs:
            raise InputTypeError(f"get_optimizer: arguments {sorted(kwargs)} given with an "
                            f"already built GradientTransformation")
        return optimizer
    if isinstance(optimizer, str) and optimizer in OPTIMIZERS:
        return OPTIMIZERS[optimizer](**kwargs)
    raise InputError(f"unknown optimizer {optimizer!r}; expected one of "
                     f"{', '.join(sorted(OPTIMIZERS))} or an fnn.optim.GradientTransformation")
