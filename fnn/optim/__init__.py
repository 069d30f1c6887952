"""Optimizers as (init, update) pairs of pure functions over parameter pytrees.

    opt = fnn.optim.adam(1e-3)
    state = opt.init(params)
    updates, state = opt.update(grads, state, params)
    params = fnn.optim.apply_updates(params, updates)        # params + updates

An optimizer is a `GradientTransformation(init, update)`. Its state is a pytree
of NamedTuples, each with the step count `count` (an int32 array), so the
state goes through jit, vmap and numpy.savez like the parameters do. `update`
turns gradients into the steps to add to the parameters; it only reads
`params` where a transform needs them (weight decay, L1/L2 penalties).

Named optimizers are chains of small transforms, e.g.

    adam(lr)  = chain(scale_by_adam(b1, b2, eps), scale_by_learning_rate(lr))
    adamw(lr) = chain(scale_by_adam(...), add_decayed_weights(wd), scale_by_learning_rate(lr))

and plain gradient descent, seed 002's  w ← w − α · dL/dw,  is
chain(scale_by_learning_rate(α)). The learning-rate transform comes last and
flips the sign. Add clipping or penalties by chaining more transforms in
front: chain(clip_by_global_norm(1.0), add_l2_penalty(1e-4), sgd(0.1)).

Every learning rate is a positive float or a schedule (fnn.optim.schedules) that
maps the step count to the rate; `current_lr(state)` reads the rate of the
latest update from any optimizer state.

    base        GradientTransformation, apply_updates, global_norm, current_lr, is_optimizer
    transforms  chain and the small transforms, with their state NamedTuples
    aliases     sgd, momentum, nesterov, adagrad, rmsprop, adam, adamw; get_optimizer
    schedules   learning-rate schedules count -> rate
"""
from fnn.optim import schedules
from fnn.optim.base import GradientTransformation
from fnn.optim.base import ScaleByLearningRateState
from fnn.optim.base import apply_updates
from fnn.optim.base import current_lr
from fnn.optim.base import declared_schedules
from fnn.optim.base import global_norm
from fnn.optim.base import is_optimizer
from fnn.optim.schedules import check_learning_rates
from fnn.optim.transforms import CountState
from fnn.optim.transforms import EmaState
from fnn.optim.transforms import ScaleByAdagradState
from fnn.optim.transforms import ScaleByAdamState
from fnn.optim.transforms import ScaleByRmsState
from fnn.optim.transforms import TraceState
from fnn.optim.transforms import add_decayed_weights
from fnn.optim.transforms import add_l1_penalty
from fnn.optim.transforms import add_l2_penalty
from fnn.optim.transforms import chain
from fnn.optim.transforms import clip_by_global_norm
from fnn.optim.transforms import ema
from fnn.optim.transforms import scale_by_adagrad
from fnn.optim.transforms import scale_by_adam
from fnn.optim.transforms import scale_by_learning_rate
from fnn.optim.transforms import scale_by_rms
from fnn.optim.transforms import trace
from fnn.optim.aliases import OPTIMIZERS
from fnn.optim.aliases import adagrad
from fnn.optim.aliases import adam
from fnn.optim.aliases import adamw
from fnn.optim.aliases import get_optimizer
from fnn.optim.aliases import momentum
from fnn.optim.aliases import nesterov
from fnn.optim.aliases import rmsprop
from fnn.optim.aliases import sgd

__all__ = [
    "CountState",
    "EmaState",
    "GradientTransformation",
    "OPTIMIZERS",
    "ScaleByAdagradState",
    "ScaleByAdamState",
    "ScaleByLearningRateState",
    "ScaleByRmsState",
    "TraceState",
    "adagrad",
    "adam",
    "adamw",
    "add_decayed_weights",
    "add_l1_penalty",
    "add_l2_penalty",
    "apply_updates",
    "chain",
    "check_learning_rates",
    "clip_by_global_norm",
    "current_lr",
    "declared_schedules",
    "ema",
    "get_optimizer",
    "global_norm",
    "is_optimizer",
    "momentum",
    "nesterov",
    "rmsprop",
    "scale_by_adagrad",
    "scale_by_adam",
    "scale_by_learning_rate",
    "scale_by_rms",
    "schedules",
    "sgd",
    "trace",
]
