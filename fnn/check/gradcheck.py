"""Gradient checking: hand-written backprop against jax.grad and central finite differences.

Everything runs in float64. For each parameter leaf the check reports the
relative error

    rel(a, b) = ‖a − b‖∞ / max(‖a‖∞, ‖b‖∞, tiny)     (0 when a = b = 0)

between three gradients of L(params) = loss(model(params, x), y):

    manual    model.backward after loss.grad (fnn.value_and_grad, method="manual")
    autodiff  jax.grad of the same forward and loss (method="autodiff")
    fd        central differences  (L(p + h eᵢ) − L(p − h eᵢ)) / 2h,  one i per element

The manual gradient must match jax.grad to round-off, TOL_AUTODIFF = 1e-10,
and finite differences to their own error, TOL_FD = 1e-6 (the choice of the
step h = FD_EPS is explained in fnn.check.finite_differences).

A finite difference is only a gradient where L is differentiable: a step
across a kink (relu at 0, l1 at ŷ = y, huber at |ŷ − y| = δ) measures a
one-sided slope. examples/gradcheck_grid.py draws its problems away from kinks.

`check_layer` compares a single layer's backward with jax.vjp of its forward.
"""
import math
from typing import NamedTuple, Optional, Tuple, Union

import jax
import jax.numpy as jnp
import numpy as np

from fnn.check.finite_differences import FD_EPS, central_differences, sample_indices
from fnn.errors import InputError, InputTypeError
from fnn.grads import loss_value, value_and_grad
from fnn.layers import Layer
from fnn.losses import Loss, get_loss
from fnn.typing import ArrayLike, ModelState, Params, PRNGKey
from fnn.validate import check_key, check_number, check_positive_int

__all__ = [
    "TOL_AUTODIFF", "TOL_FD", "FD_EPS", "relative_error",
    "LeafError", "GradCheckResult", "check_gradients",
    "LayerCheckResult", "check_layer",
]

TOL_AUTODIFF = 1e-10   # float64, manual vs jax.grad
TOL_FD = 1e-6          # float64, manual (and jax.grad) vs central differences

_TINY = np.finfo(np.float64).tiny

MISSING_MODEL_KEY = (
    "check_gradients: {model} is stochastic in training and needs a PRNG key (one dropout mask "
    "for every evaluation): call check_gradients(model, loss, params, x, y, key=jax.random.key(0))")
MISSING_FD_KEY = (
    "check_gradients: max_fd_per_leaf={n} samples the differenced elements and needs a PRNG key: "
    "call check_gradients(model, loss, params, x, y, max_fd_per_leaf={n}, fd_key=jax.random.key(0))")


def relative_error(a: ArrayLike, b: ArrayLike) -> float:
    """‖a − b‖∞ / max(‖a‖∞, ‖b‖∞, tiny), computed in float64; 0 when both are zero.

    Args:
      a, b: arrays (or scalars) of the same shape.

    Returns:
      a Python float; inf if either holds a NaN or an infinity.

    Raises:
      InputError: if the shapes differ.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise InputError(f"relative_error: shapes differ, {a.shape} vs {b.shape}; expected equal shapes")
    if a.size == 0:
        return 0.0
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return math.inf
    scale = max(np.max(np.abs(a)), np.max(np.abs(b)), _TINY)
    return float(np.max(np.abs(a - b)) / scale)


class LeafError(NamedTuple):
    """Relative errors of one parameter leaf; the fd ones over the `fd_count` checked elements."""
    path: str
    shape: Tuple[int, ...]
    manual_vs_autodiff: float
    manual_vs_fd: float
    autodiff_vs_fd: float
    fd_count: int


class GradCheckResult(NamedTuple):
    """Per-leaf relative errors of a gradient check and their maxima (0 for no leaves)."""
    loss: float
    leaves: Tuple[LeafError, ...]
    max_manual_vs_autodiff: float
    max_manual_vs_fd: float
    max_autodiff_vs_fd: float
    eps: float

    def ok(self, tol_autodiff: float = TOL_AUTODIFF, tol_fd: float = TOL_FD) -> bool:
        """True if manual ≈ jax.grad within tol_autodiff and both ≈ finite differences within tol_fd.

        Args:
          tol_autodiff: the largest manual vs jax.grad error accepted.
          tol_fd: the largest error against finite differences accepted.

        Returns:
          Whether every maximum is within its tolerance.
        """
        return (self.max_manual_vs_autodiff <= tol_autodiff
                and self.max_manual_vs_fd <= tol_fd
                and self.max_autodiff_vs_fd <= tol_fd)


def _to_float64(tree):
    """Floating leaves cast to float64; integer leaves (labels) unchanged. Call under enable_x64."""
    def cast(a):
        if not isinstance(a, jax.Array):
            a = np.asarray(a)
            if jnp.issubdtype(a.dtype, jnp.floating):
                a = a.astype(np.float64)
            return jax.device_put(a)
        if jnp.issubdtype(a.dtype, jnp.floating) and a.dtype != jnp.float64:
            return a.astype(jnp.float64)
        return a
    return jax.tree_util.tree_map(cast, tree)


def _check_layer_arg(name, layer):
    if not isinstance(layer, Layer):
        raise InputTypeError(f"{name} must be an fnn.Layer, got {type(layer).__name__}")


def _check_same_structure(params, grads, method):
    if jax.tree_util.tree_structure(grads) != jax.tree_util.tree_structure(params):
        raise InputError(
            f"{method} gradients have structure {jax.tree_util.tree_structure(grads)}, "
            f"expected the structure of params {jax.tree_util.tree_structure(params)}")


def _check_float_leaves(path_leaves):
    for path, leaf in path_leaves:
        dtype = jnp.asarray(leaf).dtype
        if not jnp.issubdtype(dtype, jnp.floating):
            raise InputTypeError(f"parameter {jax.tree_util.keystr(path)} has dtype {dtype}; "
                            "expected a float array")


def _flat_leaves(tree):
    """The leaves of a gradient tree as flat float64 NumPy vectors."""
    return [np.asarray(g, np.float64).ravel() for g in jax.tree_util.tree_leaves(tree)]


def _check_keys(model, key, max_fd_per_leaf, fd_key):
    """The model's key (None where nothing is stochastic) and fd_key, checked; TypeError if missing."""
    if key is None:
        if model.stochastic:
            raise InputTypeError(MISSING_MODEL_KEY.format(model=model.name))
    else:
        check_key("key", key)
    if max_fd_per_leaf is not None and fd_key is None:
        raise InputTypeError(MISSING_FD_KEY.format(n=max_fd_per_leaf))
    if fd_key is not None:
        check_key("fd_key", fd_key)


def check_gradients(model: Layer, loss: Union[str, Loss], params: Params, x: ArrayLike, y: ArrayLike, *,
                    key: Optional[PRNGKey] = None, state: Optional[ModelState] = None, eps: float = FD_EPS,
                    max_fd_per_leaf: Optional[int] = None, fd_key: Optional[PRNGKey] = None) -> GradCheckResult:
    """Compare the manual gradient with jax.grad and central finite differences, in float64.

    Per parameter leaf (jax.tree_util.keystr path), the relative error is

        rel(a, b) = ‖a − b‖∞ / max(‖a‖∞, ‖b‖∞, tiny),   0 if both are zero,

    for manual vs autodiff, manual vs fd and autodiff vs fd. Finite
    differences are central, ∂L/∂pᵢ ≈ (L(p + h eᵢ) − L(p − h eᵢ)) / 2h, one
    vmapped evaluation per element; with `max_fd_per_leaf`, a leaf with more
    elements is differenced on that many elements drawn with `fd_key`, and its
    fd errors are over those elements only. The forward runs with train=True,
    as in training, with the same `key` for every evaluation (one dropout mask);
    BatchNorm normalizes with each evaluation's batch statistics, so the gradient
    checked is that of training, through the statistics.
    Where a step of ±h crosses a kink (a relu pre-activation within h·|input|
    of 0, say), the difference is not a derivative and manual vs fd fails
    although the backward is right: draw inputs away from kinks, or cap the
    elements with max_fd_per_leaf on large relu networks.

    Args:
      model: an fnn Layer.
      loss: an fnn Loss or its name.
      params: the model's parameter pytree (any float dtype; cast to float64).
      x: inputs (cast to float64).
      y: targets (floats cast to float64, integer labels kept).
      key: PRNG key for the forward of a stochastic model (dropout); required
        when model.stochastic (TypeError otherwise), else None.
      state: the model's non-trainable state (fnn.init_state), passed to every
        forward; None is fine for BatchNorm, whose training forward does not read it.
      eps: the finite-difference step h > 0 (FD_EPS = 1e-5; see fnn.check.finite_differences).
      max_fd_per_leaf: cap on differenced elements per leaf; None for all.
      fd_key: PRNG key drawing that sample; required with max_fd_per_leaf.

    Returns:
      a GradCheckResult; `.ok()` applies TOL_AUTODIFF and TOL_FD.

    Raises:
      InputError / InputTypeError: for a model that is not a Layer, a missing or bad key,
      eps ≤ 0, non-float parameter leaves, or a backward whose tree or shapes differ from params.
    """
    _check_layer_arg("model", model)
    eps = check_number("eps", eps, 0, low_open=True)
    if max_fd_per_leaf is not None:
        max_fd_per_leaf = check_positive_int("max_fd_per_leaf", max_fd_per_leaf)
    _check_keys(model, key, max_fd_per_leaf, fd_key)
    loss = get_loss(loss)
    with jax.enable_x64(True):
        params, x, y, state = _to_float64(params), _to_float64(x), _to_float64(y), _to_float64(state)
        path_leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
        _check_float_leaves(path_leaves)
        value, manual = value_and_grad(model, loss, params, x, y, key=key, state=state, method="manual")
        _, autodiff = value_and_grad(model, loss, params, x, y, key=key, state=state, method="autodiff")
        _check_same_structure(params, manual, "manual")
        picks = sample_indices([int(np.size(leaf)) for _, leaf in path_leaves], max_fd_per_leaf, fd_key)
        fd = central_differences(
            lambda p: loss_value(model, loss, p, x, y, key=key, train=True, state=state),
            [leaf for _, leaf in path_leaves], treedef, picks, eps)
    leaves = _leaf_errors(path_leaves, _flat_leaves(manual), _flat_leaves(autodiff), picks, fd)
    return GradCheckResult(
        loss=float(value),
        leaves=leaves,
        max_manual_vs_autodiff=max((l.manual_vs_autodiff for l in leaves), default=0.0),
        max_manual_vs_fd=max((l.manual_vs_fd for l in leaves), default=0.0),
        max_autodiff_vs_fd=max((l.autodiff_vs_fd for l in leaves), default=0.0),
        eps=eps)


def _leaf_errors(path_leaves, manual, autodiff, picks, fd):
    """A LeafError per parameter leaf from the flat manual/autodiff gradients and the fd values."""
    leaves = []
    start = 0
    for (path, leaf), g_man, g_auto, pick in zip(path_leaves, manual, autodiff, picks):
        if g_man.shape != g_auto.shape:
            raise InputError(f"manual gradient of {jax.tree_util.keystr(path)} has {g_man.size} "
                             f"elements, expected {g_auto.size} (shape {np.shape(leaf)})")
        fd_leaf = fd[start:start + len(pick)]
        start += len(pick)
        leaves.append(LeafError(
            path=jax.tree_util.keystr(path),
            shape=tuple(np.shape(leaf)),
            manual_vs_autodiff=relative_error(g_man, g_auto),
            manual_vs_fd=relative_error(g_man[pick], fd_leaf),
            autodiff_vs_fd=relative_error(g_auto[pick], fd_leaf),
            fd_count=len(pick)))
    return tuple(leaves)


class LayerCheckResult(NamedTuple):
    """Relative errors of one layer's backward against jax.vjp: per dparams leaf and for dx."""
    leaves: Tuple[Tuple[str, float], ...]
    dx: float
    max_error: float

    def ok(self, tol: float = TOL_AUTODIFF) -> bool:
        """True if every dparams leaf and dx match jax.vjp within tol.

        Args:
          tol: the largest relative error accepted.

        Returns:
          Whether max_error ≤ tol.
        """
        return self.max_error <= tol


def check_layer(layer: Layer, params: Params, x: Union[ArrayLike, Tuple[ArrayLike, ArrayLike]], *,
                key: PRNGKey, train: bool = True, state: Optional[ModelState] = None) -> LayerCheckResult:
    """One layer's backward against jax.vjp of its forward, for a random cotangent, in float64.

    With y = forward(params, x) and dy ~ N(0, 1) of y's shape, compares
    backward(params, saved, dy) with the VJP (dyᵀ ∂y/∂params, dyᵀ ∂y/∂x), each
    by relative_error (‖a − b‖∞ / max(‖a‖∞, ‖b‖∞, tiny)).

    Integer inputs (token ids) and masks have no gradient: there the backward's dx must be
    float0 zeros of their shape (as jax.vjp gives), and only the float parts of x are compared.

    Args:
      layer: an fnn Layer (a single layer or a composition).
      params: its parameter pytree.
      x: an input batch: an array, or a masked sequence (x, key_mask) (fnn.layers.masking).
      key: PRNG key, required: split in two, one for the forward (a dropout
        mask; unused by deterministic layers) and one drawing the cotangent dy.
      train: the forward's train flag.
      state: a stateful layer's state (fnn.init_state), needed with train=False
        (BatchNorm's running statistics, constants of the backward); with train=True
        BatchNorm uses the batch statistics and the state may be None.

    Returns:
      a LayerCheckResult with (keystr path, error) per dparams leaf and the dx error.

    Raises:
      InputTypeError: for a layer that is not a Layer or a key that is not a PRNG key.
      InputError: for a backward whose dparams tree differs from params.
    """
    _check_layer_arg("layer", layer)
    k_forward, k_cotangent = jax.random.split(check_key("key", key))

    def forward(p, xx):
        return layer.forward(p, xx, key=k_forward, train=train, state=state)

    with jax.enable_x64(True):
        params, x, state = _to_float64(params), _to_float64(x), _to_float64(state)
        y, saved = forward(params, x)
        dy = _cotangent(k_cotangent, y)                                     # y's shape
        dparams, dx = layer.backward(params, saved, dy)
        _check_same_structure(params, dparams, f"{layer.name} backward")
        _, vjp = jax.vjp(lambda p, xx: forward(p, xx)[0], params, x)
        ref_dparams, ref_dx = vjp(dy)
        paths = jax.tree_util.tree_flatten_with_path(params)[0]
        leaves = tuple(
            (jax.tree_util.keystr(path), relative_error(g, r))
            for (path, _), g, r in zip(paths, jax.tree_util.tree_leaves(dparams),
                                       jax.tree_util.tree_leaves(ref_dparams)))
        dx_error = _dx_error(x, dx, ref_dx)
    return LayerCheckResult(leaves, dx_error, max([dx_error] + [e for _, e in leaves]))


def _differentiable_leaf(a):
    return jnp.issubdtype(jnp.result_type(a), jnp.inexact)


def _cotangent(key, y):
    """dy ~ N(0, 1) for each float leaf of the output; float0 zeros for a bool/integer leaf (a mask)."""
    leaves, treedef = jax.tree_util.tree_flatten(y)
    keys = jax.random.split(key, max(len(leaves), 1))
    return jax.tree_util.tree_unflatten(treedef, [
        jax.random.normal(k, a.shape, jnp.float64) if _differentiable_leaf(a)
        else np.zeros(a.shape, jax.dtypes.float0) for a, k in zip(leaves, keys)])


def _dx_error(x, dx, ref_dx):
    """relative_error of dx against jax.vjp's, leaf by leaf over x (an array or a pair (x, mask)).

    An integer or bool leaf of x (token ids, a mask) has no gradient: there the backward
    must give float0 zeros of its shape (error 0), and anything else is an error of inf.
    """
    if jax.tree_util.tree_structure(dx) != jax.tree_util.tree_structure(x):
        return math.inf
    errors = []
    for a, g, r in zip(*(jax.tree_util.tree_leaves(t) for t in (x, dx, ref_dx))):
        if _differentiable_leaf(a):
            errors.append(relative_error(g, r) if np.shape(g) == np.shape(a) else math.inf)
        else:
            ok = np.shape(g) == np.shape(a) and np.asarray(g).dtype == jax.dtypes.float0
            errors.append(0.0 if ok else math.inf)
    return max(errors, default=0.0)
