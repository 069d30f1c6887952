"""Gradient checking: hand-written backprop against jax.grad, jax.vjp and finite differences.

    check_gradients(model, loss, params, x, y)   manual vs jax.grad vs central differences, per leaf
    check_layer(layer, params, x, key=...)       one layer's backward vs jax.vjp of its forward
    relative_error(a, b)                         ‖a − b‖∞ / max(‖a‖∞, ‖b‖∞)
    precision_check(model, loss, params, x, y)   the backward in bf16/fp16 vs jax.grad in it and in float32

The grid of layer × activation × loss × shape cases that scripts/gradcheck.py
runs is course material: examples/gradcheck_grid.py.
"""
from fnn.check.finite_differences import FD_EPS
from fnn.check.gradcheck import TOL_AUTODIFF
from fnn.check.gradcheck import TOL_FD
from fnn.check.gradcheck import GradCheckResult
from fnn.check.gradcheck import LayerCheckResult
from fnn.check.gradcheck import LeafError
from fnn.check.gradcheck import check_gradients
from fnn.check.gradcheck import check_layer
from fnn.check.gradcheck import relative_error
from fnn.check.precision import precision_check

__all__ = [
    "TOL_AUTODIFF",
    "TOL_FD",
    "FD_EPS",
    "relative_error",
    "LeafError",
    "GradCheckResult",
    "check_gradients",
    "LayerCheckResult",
    "check_layer",
    "precision_check",
]
