"""Gradient checking: hand-written backprop against jax.grad and central finite differences.

Everything runs in float64. For each parameter leaf the check reports the
relative error

    rel(a, b) = ‖a − b‖∞ / max(‖a‖∞, ‖b‖∞, tiny)     (0 when a = b = 0)

between three gradients of L(params) = loss(model(params, x), y):

    manual    model.backward after loss.grad (fnn.value_and_grad, method="manual")
    autodiff  jax.grad of the same forward and loss (method="autodiff")
    fd        central differences  (L(p + h eᵢ) − L(p − h eᵢ)) / 2h,  one i per element

The manual gradient must match jax.grad to round-off, TOL_AUTODIFF = 1e-10,
and finite differences to their own error, TOL_FD = 1e-6. A central
difference errs by O(h²·|∂³L|) (truncation) plus O(ε·|L| / h) (round-off,
ε = 2.2e-16); the default h = 1e-5 sits near the optimum ε^(1/3) ≈ 6e-6.
With h = 1e-6 the round-off term alone reaches 8e-7 on the default grid's
deep softmax networks, whose first-layer gradients are ~1e-4·|L|.

A finite difference is only a gradient where L is differentiable: a step
across a kink (relu at 0, l1 at ŷ = y, huber at |ŷ − y| = δ) measures a
one-sided slope. The default grid draws its problems away from kinks.

`check_layer` compares a single layer's backward with jax.vjp of its forward.
`default_cases` and `run_cases` build and run the grid of layer × activation ×
loss × shape combinations that scripts/gradcheck.py prints.
"""
import dataclasses
import math
import zlib
from typing import NamedTuple, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from fnn.activations import ACTIVATIONS
from fnn.grads import loss_value, value_and_grad
from fnn.layers import Activation, Dense, Dropout, Layer, mlp, serial
from fnn.losses import Loss, get_loss

__all__ = [
    "TOL_AUTODIFF", "TOL_FD", "FD_EPS", "relative_error",
    "LeafError", "GradCheckResult", "check_gradients",
    "LayerCheckResult", "check_layer",
    "Case", "CaseResult", "default_cases", "build_model", "make_problem", "run_case", "run_cases",
    "LAYER_VARIANTS", "LOSS_TARGETS",
]

TOL_AUTODIFF = 1e-10   # float64, manual vs jax.grad
TOL_FD = 1e-6          # float64, manual (and jax.grad) vs central differences
FD_EPS = 1e-5          # central-difference step h (≈ ε^(1/3) for float64)

_TINY = np.finfo(np.float64).tiny
_FD_CHUNK = 256                # parameter elements per vmapped batch (× 2 signs)
_FD_CHUNK_ELEMENTS = 1 << 22   # at most this many elements (chunk × params) at once


def relative_error(a, b):
    """‖a − b‖∞ / max(‖a‖∞, ‖b‖∞, tiny), computed in float64; 0 when both are zero.

    Args:
      a, b: arrays (or scalars) of the same shape.
    Returns:
      a Python float; inf if either holds a NaN or an infinity.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"relative_error: shapes differ, {a.shape} vs {b.shape}; expected equal shapes")
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

    def ok(self, tol_autodiff=TOL_AUTODIFF, tol_fd=TOL_FD):
        """True if manual ≈ jax.grad within tol_autodiff and both ≈ finite differences within tol_fd."""
        return (self.max_manual_vs_autodiff <= tol_autodiff
                and self.max_manual_vs_fd <= tol_fd
                and self.max_autodiff_vs_fd <= tol_fd)


def _to_float64(tree):
    """Floating leaves cast to float64; integer leaves (labels) unchanged."""
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


def _check_same_structure(params, grads, method):
    if jax.tree_util.tree_structure(grads) != jax.tree_util.tree_structure(params):
        raise ValueError(
            f"{method} gradients have structure {jax.tree_util.tree_structure(grads)}, "
            f"expected the structure of params {jax.tree_util.tree_structure(params)}")


def _fd_indices(sizes, max_fd_per_leaf, fd_key):
    """Per leaf, the element indices (within the leaf) to difference: all, or a sorted sample."""
    picks = []
    for i, n in enumerate(sizes):
        if max_fd_per_leaf is None or n <= max_fd_per_leaf:
            picks.append(np.arange(n))
        else:
            idx = jax.random.choice(jax.random.fold_in(fd_key, i), n, (max_fd_per_leaf,), replace=False)
            picks.append(np.sort(np.asarray(idx)))
    return picks


def _central_differences(f, leaves, treedef, picks, eps):
    """(f(p + h eᵢ) − f(p − h eᵢ)) / (pᵢ⁺ − pᵢ⁻) for the picked elements of each leaf.

    The divisor is the step actually taken in floating point, not 2h. The
    perturbed parameter vectors are built on the host, a chunk at a time with
    both signs, and f is vmapped over them; chunks have one fixed length (the
    last is padded), so models of different sizes share compiled code.
    """
    leaves = [np.asarray(leaf, np.float64) for leaf in leaves]
    sizes = [leaf.size for leaf in leaves]
    offsets = np.cumsum([0] + sizes)
    indices = np.concatenate([o + p for o, p in zip(offsets, picks)] + [np.zeros(0, np.int64)])
    n = len(indices)
    if n == 0:
        return np.zeros(0)
    flat = np.concatenate([leaf.ravel() for leaf in leaves])
    chunk = _FD_CHUNK
    while chunk > 1 and 2 * chunk * flat.size > _FD_CHUNK_ELEMENTS:
        chunk //= 2
    padded = np.zeros(-(-n // chunk) * chunk, dtype=np.int64)
    padded[:n] = indices
    rows = np.arange(chunk)
    parts = []
    for s in range(0, len(padded), chunk):
        i = padded[s:s + chunk]
        plus, minus = flat[i] + eps, flat[i] - eps
        batch = np.tile(flat, (2 * chunk, 1))              # (2·chunk, n_params)
        batch[rows, i] = plus
        batch[chunk + rows, i] = minus
        columns = np.split(batch, offsets[1:-1], axis=1)
        batched = jax.tree_util.tree_unflatten(
            treedef, [c.reshape((2 * chunk,) + leaf.shape) for c, leaf in zip(columns, leaves)])
        values = np.asarray(jax.vmap(f)(batched))
        parts.append((values[:chunk] - values[chunk:]) / (plus - minus))
    return np.concatenate(parts)[:n]


def check_gradients(model, loss, params, x, y, *, key=None, eps=FD_EPS,
                    max_fd_per_leaf=None, fd_key=None):
    """Compare the manual gradient with jax.grad and central finite differences, in float64.

    Per parameter leaf (jax.tree_util.keystr path), the relative error is

        rel(a, b) = ‖a − b‖∞ / max(‖a‖∞, ‖b‖∞, tiny),   0 if both are zero,

    for manual vs autodiff, manual vs fd and autodiff vs fd. Finite
    differences are central, ∂L/∂pᵢ ≈ (L(p + h eᵢ) − L(p − h eᵢ)) / 2h, one
    vmapped evaluation per element; a leaf with more than `max_fd_per_leaf`
    elements is differenced on that many elements drawn with `fd_key`, and its
    fd errors are over those elements only. The forward runs with train=True,
    as in training, with the same `key` for every evaluation (one dropout mask).
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
      key: PRNG key for stochastic layers (dropout); None if there are none.
      eps: the finite-difference step h > 0 (FD_EPS = 1e-5; see the module docstring).
      max_fd_per_leaf: cap on differenced elements per leaf; None for all.
      fd_key: PRNG key for that sample (default jax.random.key(0)).
    Returns:
      a GradCheckResult; `.ok()` applies TOL_AUTODIFF and TOL_FD.
    """
    if not isinstance(model, Layer):
        raise TypeError(f"model must be an fnn.Layer, got {type(model).__name__}")
    if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a finite float > 0, got {eps!r}")
    if max_fd_per_leaf is not None and not (isinstance(max_fd_per_leaf, int) and max_fd_per_leaf > 0):
        raise ValueError(f"max_fd_per_leaf must be a positive int or None, got {max_fd_per_leaf!r}")
    loss = get_loss(loss)
    fd_key = jax.random.key(0) if fd_key is None else fd_key
    with jax.enable_x64(True):
        params, x, y = _to_float64(params), _to_float64(x), _to_float64(y)
        path_leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
        for path, leaf in path_leaves:
            if not jnp.issubdtype(jnp.asarray(leaf).dtype, jnp.floating):
                raise TypeError(f"parameter {jax.tree_util.keystr(path)} has dtype "
                                f"{jnp.asarray(leaf).dtype}; expected a float array")
        value, manual = value_and_grad(model, loss, params, x, y, key=key, method="manual")
        _, autodiff = value_and_grad(model, loss, params, x, y, key=key, method="autodiff")
        _check_same_structure(params, manual, "manual")
        manual_leaves = [np.asarray(g, np.float64).ravel() for g in jax.tree_util.tree_leaves(manual)]
        autodiff_leaves = [np.asarray(g, np.float64).ravel() for g in jax.tree_util.tree_leaves(autodiff)]

        picks = _fd_indices([int(np.size(leaf)) for _, leaf in path_leaves], max_fd_per_leaf, fd_key)
        fd = _central_differences(
            lambda p: loss_value(model, loss, p, x, y, key=key, train=True),
            [leaf for _, leaf in path_leaves], treedef, picks, eps)

    leaves = []
    start = 0
    for (path, leaf), g_man, g_auto, pick in zip(path_leaves, manual_leaves, autodiff_leaves, picks):
        if g_man.shape != g_auto.shape:
            raise ValueError(f"manual gradient of {jax.tree_util.keystr(path)} has {g_man.size} "
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
    return GradCheckResult(
        loss=float(value),
        leaves=tuple(leaves),
        max_manual_vs_autodiff=max((l.manual_vs_autodiff for l in leaves), default=0.0),
        max_manual_vs_fd=max((l.manual_vs_fd for l in leaves), default=0.0),
        max_autodiff_vs_fd=max((l.autodiff_vs_fd for l in leaves), default=0.0),
        eps=float(eps))


class LayerCheckResult(NamedTuple):
    """Relative errors of one layer's backward against jax.vjp: per dparams leaf and for dx."""
    leaves: Tuple[Tuple[str, float], ...]
    dx: float
    max_error: float

    def ok(self, tol=TOL_AUTODIFF):
        """True if every dparams leaf and dx match jax.vjp within tol."""
        return self.max_error <= tol


def check_layer(layer, params, x, *, key=None, train=True, cotangent_key=None):
    """One layer's backward against jax.vjp of its forward, for a random cotangent, in float64.

    With y = forward(params, x) and dy ~ N(0, 1) of y's shape, compares
    backward(params, saved, dy) with the VJP (dyᵀ ∂y/∂params, dyᵀ ∂y/∂x), each
    by relative_error (‖a − b‖∞ / max(‖a‖∞, ‖b‖∞, tiny)).

    Args:
      layer: an fnn Layer (a single layer or a composition).
      params: its parameter pytree.
      x: an input batch.
      key: PRNG key for the forward of stochastic layers (dropout).
      train: the forward's train flag.
      cotangent_key: PRNG key for dy (default jax.random.key(0)).
    Returns:
      a LayerCheckResult with (keystr path, error) per dparams leaf and the dx error.
    """
    cotangent_key = jax.random.key(0) if cotangent_key is None else cotangent_key
    with jax.enable_x64(True):
        params, x = _to_float64(params), _to_float64(x)
        y, saved = layer.forward(params, x, key=key, train=train)
        dy = jax.random.normal(cotangent_key, y.shape, jnp.float64)
        dparams, dx = layer.backward(params, saved, dy)
        _check_same_structure(params, dparams, f"{layer.name} backward")
        _, vjp = jax.vjp(lambda p, xx: layer.forward(p, xx, key=key, train=train)[0], params, x)
        ref_dparams, ref_dx = vjp(dy)
        paths = jax.tree_util.tree_flatten_with_path(params)[0]
        leaves = tuple(
            (jax.tree_util.keystr(path), relative_error(g, r))
            for (path, _), g, r in zip(paths, jax.tree_util.tree_leaves(dparams),
                                       jax.tree_util.tree_leaves(ref_dparams)))
        dx_error = relative_error(dx, ref_dx)
    return LayerCheckResult(leaves, dx_error, max([dx_error] + [e for _, e in leaves]))


# --- The grid of cases: layer variant × hidden activation × loss × shape. ---

# (loss name, kind of targets)
LOSS_TARGETS = (
    ("softmax_cross_entropy", "labels"),
    ("softmax_cross_entropy", "soft"),
    ("binary_cross_entropy", "binary"),
    ("mse", "float"),
    ("half_squared_error", "float"),
    ("l1", "float"),
    ("huber", "float"),
)
# dense        serial(Dense(out))
# dense+act    mlp([in, hidden, out], activation)
# dropout      the same with Dropout(0.25) after the activation, in train mode, one fixed key
# deep         serial(serial(Dense, act), serial(Dense, act, Dropout), Dense, act, Dense)
# output_act   mlp with an output activation: softmax before mse/half_squared_error/l1/huber
#              (sigmoid where out is 1), sigmoid before the cross-entropies
LAYER_VARIANTS = ("dense", "dense+act", "dropout", "deep", "output_act")
_SHAPES = ((1, 3, 4, 2), (3, 2, 5, 3), (8, 4, 6, 1))   # (batch, in, hidden, out)
_DROPOUT_RATE = 0.25
_WITH_DROPOUT = ("dropout", "deep")
_KINK_MARGIN = 1e-3     # ≫ eps·|x|: no finite-difference step crosses a kink
_GRAD_FLOOR = 1e-4      # smallest leaf gradient, relative to |L|, in a drawn problem
_DRAWS = 20
_POOL = 512            # normals per draw: one compiled shape for every case


def _hidden_activations():
    """Names in ACTIVATIONS, one per distinct function (aliases such as linear and silu dropped)."""
    seen, names = set(), []
    for name, act in ACTIVATIONS.items():
        if id(act) not in seen:
            seen.add(id(act))
            names.append(name)
    return tuple(names)


class Case(NamedTuple):
    """One gradient-check problem: layers, hidden activation, loss and targets, batch and widths."""
    layers: str        # one of LAYER_VARIANTS
    activation: str    # hidden activation, "-" for the plain Dense variant
    loss: str
    targets: str       # "labels", "soft", "binary" or "float"
    batch: int
    sizes: Tuple[int, int, int]   # (in, hidden, out)

    @property
    def loss_label(self):
        return f"{self.loss}({self.targets})" if self.loss == "softmax_cross_entropy" else self.loss

    @property
    def shape_label(self):
        return f"B={self.batch} " + "-".join(str(s) for s in self.sizes)

    @property
    def label(self):
        return f"{self.layers} {self.activation} {self.loss_label} {self.shape_label}"

    @property
    def output_activation(self):
        """The output activation of the output_act variant (None for the others)."""
        if self.layers != "output_act":
            return None
        regression = self.targets == "float"
        return "softmax" if regression and self.sizes[2] > 1 else "sigmoid"


class CaseResult(NamedTuple):
    """A case, its GradCheckResult, and whether it passed the tolerances."""
    case: Case
    result: GradCheckResult
    passed: bool

    def record(self):
        """A JSON-ready dict: the case, its max relative errors, and the pass flag."""
        c, r = self.case, self.result

        def num(v):
            return v if math.isfinite(v) else None
        return {
            "layers": c.layers, "activation": c.activation, "loss": c.loss,
            "targets": c.targets, "batch": c.batch, "sizes": list(c.sizes),
            "output_activation": c.output_activation,
            "max_rel_err_autodiff": num(r.max_manual_vs_autodiff),
            "max_rel_err_fd": num(r.max_manual_vs_fd),
            "max_rel_err_autodiff_vs_fd": num(r.max_autodiff_vs_fd),
            "pass": self.passed,
        }


def _case_sizes(loss, shape):
    """(batch, (in, hidden, out)); a cross-entropy over one class is degenerate, so ≥ 3 classes."""
    batch, d_in, hidden, out = shape
    if loss == "softmax_cross_entropy" and out < 2:
        out = 3
    return batch, (d_in, hidden, out)


def default_cases(quick=False):
    """The grid of cases: every layer variant × hidden activation × loss (and targets) × shape.

    Shapes are (batch, in, hidden, out) = (1, 3, 4, 2), (3, 2, 5, 3) and
    (8, 4, 6, 1); a softmax cross-entropy gets 3 classes where out is 1. The
    "dense" variant has no hidden activation, so it appears once per loss and
    shape. quick=True keeps one case per hidden activation, taking the losses,
    the other layer variants and the first two shapes (batch 1 and 3) in turn,
    plus the plain Dense layer at batch 8 with two losses: every layer type,
    activation and loss still appears.
    """
    activations = _hidden_activations()
    if quick:
        return _quick_cases(activations)
    cases = []
    for layers in LAYER_VARIANTS:
        for loss, targets in LOSS_TARGETS:
            for act in ("-",) if layers == "dense" else activations:
                for shape in _SHAPES:
                    cases.append(Case(layers, act, loss, targets, *_case_sizes(loss, shape)))
    return cases


def _quick_cases(activations):
    variants = [v for v in LAYER_VARIANTS if v != "dense"]
    cases = []
    for i, act in enumerate(activations):
        loss, targets = LOSS_TARGETS[i % len(LOSS_TARGETS)]
        shape = _SHAPES[i % 2]
        cases.append(Case(variants[i % len(variants)], act, loss, targets, *_case_sizes(loss, shape)))
    for loss, targets in (LOSS_TARGETS[0], LOSS_TARGETS[3]):
        cases.append(Case("dense", "-", loss, targets, *_case_sizes(loss, _SHAPES[2])))
    return cases


_SHARED_LAYERS = {}
_SHARED_LOSSES = {}


def _shared_jit(layer):
    """The layer with each leaf's forward and backward under jax.jit, one jitted pair per name.

    Cases then share compiled code: a leaf layer is compiled once per input
    shape, not once per model. Forward and backward are the layer's own; the
    key reaches only Dropout (Dense and Activation ignore it), so it does not
    split their compiled code in two.
    """
    if layer.layers:
        return serial(*(_shared_jit(sub) for sub in layer.layers))
    if layer.name not in _SHARED_LAYERS:
        forward = jax.jit(layer.forward, static_argnames=("train",))
        if not layer.stochastic:
            keyless = forward

            def forward(params, x, *, key=None, train=False):
                del key
                return keyless(params, x, train=train)
        _SHARED_LAYERS[layer.name] = (forward, jax.jit(layer.backward))
    forward, backward = _SHARED_LAYERS[layer.name]
    return dataclasses.replace(layer, forward=forward, backward=backward)


def _shared_loss(name):
    """The named loss with fn and grad under jax.jit, shared by every case."""
    if name not in _SHARED_LOSSES:
        loss = get_loss(name)
        _SHARED_LOSSES[name] = loss._replace(fn=jax.jit(loss.fn), grad=jax.jit(loss.grad))
    return _SHARED_LOSSES[name]


def build_model(case):
    """The case's model as an fnn Layer; every layer type appears across the variants.

    The leaf layers' own forward and backward run under jax.jit, shared by all
    cases, so the grid compiles each once per shape rather than once per case.
    """
    return _shared_jit(_build_model(case))


def _build_model(case):
    d_in, hidden, out = case.sizes
    act = case.activation
    if case.layers == "dense":
        return serial(Dense(out, in_features=d_in))
    if case.layers == "dense+act":
        return mlp([d_in, hidden, out], activation=act)
    if case.layers == "dropout":
        return mlp([d_in, hidden, out], activation=act, dropout=_DROPOUT_RATE)
    if case.layers == "deep":
        return serial(
            serial(Dense(hidden), Activation(act)),
            serial(Dense(hidden), Activation(act), Dropout(_DROPOUT_RATE)),
            Dense(hidden), Activation(act),
            Dense(out))
    if case.layers == "output_act":
        return mlp([d_in, hidden, out], activation=act, output=case.output_activation)
    raise ValueError(f"unknown layer variant {case.layers!r}; expected one of {', '.join(LAYER_VARIANTS)}")


def _normals(key, n):
    """n standard normals (float64, on the host) from one fixed-size draw, compiled once."""
    size = max(_POOL, 1 << max(0, n - 1).bit_length())
    with jax.enable_x64(True):
        return np.asarray(jax.random.normal(key, (size,), jnp.float64))[:n]


def _draw_params(model, key, d_in):
    """Params of the model's structure: N(0, 1/fan_in) matrices, N(0, 0.2²) vectors (no exact zeros)."""
    with jax.enable_x64(True):
        shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), (-1, d_in), jnp.float64)[1])
    leaves, treedef = jax.tree_util.tree_flatten(shapes)
    z = _normals(key, sum(math.prod(leaf.shape) for leaf in leaves))
    drawn, start = [], 0
    for leaf in leaves:
        n = math.prod(leaf.shape)
        scale = 1 / math.sqrt(leaf.shape[0]) if len(leaf.shape) >= 2 else 0.2
        drawn.append(scale * z[start:start + n].reshape(leaf.shape))
        start += n
    return jax.tree_util.tree_unflatten(treedef, drawn)


def _draw_data(case, key):
    """(x, y) on the host: x ~ N(0, 1), targets of the case's kind for outputs (batch, out)."""
    batch, (d_in, _, out) = case.batch, case.sizes
    z = _normals(key, batch * (d_in + out))
    x = z[:batch * d_in].reshape(batch, d_in)
    t = z[batch * d_in:].reshape(batch, out)
    if case.targets == "labels":
        return x, np.argmax(t, axis=-1).astype(np.int32)      # uniform over the classes
    if case.targets == "soft":
        e = np.exp(2 * (t - t.max(axis=-1, keepdims=True)))
        return x, e / e.sum(axis=-1, keepdims=True)
    t = t.reshape(batch) if out == 1 else t                  # (batch,) targets for one output
    return x, (t > 0).astype(np.float64) if case.targets == "binary" else t


def _activation_inputs(layer, saved):
    """The pre-activations z saved by each kinked Activation layer (relu, leaky_relu) in a model."""
    if layer.layers:
        for sub, s in zip(layer.layers, saved):
            yield from _activation_inputs(sub, s)
    elif layer.activation is not None and layer.activation.kinked:
        yield saved[0]


def _well_posed(model, loss, params, x, y, key):
    """Whether finite differences can measure every gradient of this problem.

    False if a relu-like pre-activation, or an l1/huber residual, lies within
    _KINK_MARGIN of a kink, or if a parameter leaf's (manual) gradient is below
    _GRAD_FLOOR·|L|.
    """
    out, saved = model.forward(params, x, key=key, train=True)
    value = loss.fn(out, y)
    grads, _ = model.backward(params, saved, loss.grad(out, y))
    gaps = [np.min(np.abs(z)) for z in _activation_inputs(model, saved)]
    if loss.kink_distance is not None:
        gaps.append(np.min(np.asarray(loss.kink_distance(out, y))))
    if min(gaps, default=math.inf) < _KINK_MARGIN:
        return False
    floor = _GRAD_FLOOR * abs(float(value))
    return all(np.max(np.abs(g)) >= floor for g in jax.tree_util.tree_leaves(grads) if g.size)


def make_problem(case, key):
    """(model, params, x, y, dropout_key) for a case, in float64, drawn from `key`.

    dropout_key is None for the variants without a Dropout layer.
    Weights are N(0, 1/fan_in) and biases N(0, 0.2²), so no bias is exactly 0.
    x and y are redrawn (up to 20 times) until the problem is well posed for
    finite differences:

    - no pre-activation of a relu-like layer, and no l1/huber residual, lies
      within 1e-3 of a kink (a difference across a kink measures a one-sided
      slope, not the gradient);
    - no parameter leaf has a gradient below 1e-4·|L| (an l1 loss whose
      residual signs cancel, or a layer of dead relus, has an exactly zero
      gradient that finite differences only see as round-off, relative error 1).
    """
    model = build_model(case)
    loss = _shared_loss(case.loss)
    k_params, k_drop, k_data = jax.random.split(key, 3)
    k_drop = k_drop if case.layers in _WITH_DROPOUT else None
    params = _draw_params(model, k_params, case.sizes[0])
    with jax.enable_x64(True):
        for attempt in range(_DRAWS):
            x, y = _draw_data(case, jax.random.fold_in(k_data, attempt))
            if _well_posed(model, loss, params, x, y, k_drop):
                break
    return model, params, x, y, k_drop


def _case_key(key, case):
    """A key for the case from its label, so a case draws the same problem in any grid."""
    return jax.random.fold_in(key, zlib.crc32(case.label.encode()) & 0x7FFFFFFF)


def run_case(case, *, key=None, eps=FD_EPS, tol_autodiff=TOL_AUTODIFF, tol_fd=TOL_FD):
    """Draw the case's problem and check its gradients; a CaseResult."""
    key = jax.random.key(0) if key is None else key
    model, params, x, y, k_drop = make_problem(case, _case_key(key, case))
    result = check_gradients(model, _shared_loss(case.loss), params, x, y, key=k_drop, eps=eps)
    return CaseResult(case, result, result.ok(tol_autodiff, tol_fd))


def run_cases(cases, *, key=None, eps=FD_EPS, tol_autodiff=TOL_AUTODIFF, tol_fd=TOL_FD,
              callback=None):
    """run_case for each case, in order; `callback(case_result)` after each if given."""
    results = []
    for case in cases:
        r = run_case(case, key=key, eps=eps, tol_autodiff=tol_autodiff, tol_fd=tol_fd)
        if callback is not None:
            callback(r)
        results.append(r)
    return results
