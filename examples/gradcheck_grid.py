"""The gradient-check grid: layer variant × hidden activation × loss × shape, each checked in float64.

Every case is one problem for fnn.check_gradients (manual backprop vs jax.grad
vs central finite differences); scripts/gradcheck.py prints the grid's table,
tests/test_gradcheck.py runs its quick version. Course tooling, not library code.

    grid = Grid()                                   # holds the compiled code the cases share
    results = run_cases(grid, default_cases(), key=jax.random.key(0))

Cases build their models from the Grid's leaf layers: one Dense per width, one
Activation per function, one Dropout per rate, one Conv, pool or norm layer per
setting, each with its forward and backward under jax.jit, and one jitted
fn/grad per loss. The 1,239 cases then
compile each leaf once per input shape, not once per case. Pass one Grid to
every call that should share compiled code; a new Grid starts with none.
"""
import math
import zlib
from typing import Any, NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from fnn.activations import ACTIVATIONS
from fnn.check import FD_EPS, TOL_AUTODIFF, TOL_FD, GradCheckResult, check_gradients
from fnn.errors import InputError
from fnn.layers import (GRU, LSTM, RNN, Activation, AvgPool, BatchNorm, Conv, Dense, Dropout, Flatten,
                        GlobalAvgPool, Layer, LayerNorm, MaxPool, MultiHeadAttention, Reshape,
                        TransformerBlock, parallel, residual, serial)
from fnn.losses import Loss, get_loss
from fnn.validate import check_key

__all__ = [
    "Grid", "Case", "CaseResult", "Problem", "default_cases", "build_model", "make_problem",
    "run_case", "run_cases", "LAYER_VARIANTS", "LOSS_TARGETS",
]

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
_SHAPES = ((1, 3, 4, 2), (3, 2, 5, 3), (8, 4, 6, 1))   # (batch, in, hidden, out)
_DROPOUT_RATE = 0.25
_KINK_MARGIN = 1e-3     # ≫ eps·|x|: no finite-difference step crosses a kink
_MIN_BATCH_STD = 0.1    # BatchNorm's batch σ: 1/σ and its derivatives stay moderate
_GRAD_FLOOR = 1e-4      # smallest leaf gradient, relative to |L|, in a drawn problem
_DRAWS = 20
_POOL = 512            # normals per draw: one compiled shape for every case


class Grid:
    """The compiled code that cases share: jitted leaf layers and losses, made on first use.

    Leaf layers are keyed by their constructor and its argument (Dense and a
    width, Activation and a name, Dropout and a rate), losses by name. Models
    built through one Grid are made of the same leaf Layer objects, so jit's
    caches, which live on those objects' functions, serve every case.
    """

    def __init__(self):
        self._layers = {}     # (constructor, argument) -> Layer, forward and backward jitted
        self._losses = {}     # loss name -> Loss, fn and grad jitted

    def dense(self, width):
        """Dense(width), jitted."""
        return self._leaf(Dense, width)

    def activation(self, name):
        """Activation(name), jitted."""
        return self._leaf(Activation, name)

    def dropout(self, rate):
        """Dropout(rate), jitted."""
        return self._leaf(Dropout, rate)

    def leaf(self, constructor, *args, **kwargs):
        """constructor(*args, **kwargs), jitted (Conv, MaxPool, LayerNorm, ...); arguments hashable."""
        return self._leaf(constructor, (args, tuple(sorted(kwargs.items()))))

    def loss(self, name):
        """get_loss(name) with fn and grad under jax.jit."""
        if name not in self._losses:
            loss = get_loss(name)
            self._losses[name] = loss._replace(fn=jax.jit(loss.fn), grad=jax.jit(loss.grad))
        return self._losses[name]

    def _leaf(self, constructor, argument):
        if (constructor, argument) not in self._layers:
            if isinstance(argument, tuple):
                args, kwargs = argument
                layer = constructor(*args, **dict(kwargs))
            else:
                layer = constructor(argument)
            self._layers[constructor, argument] = _jitted(layer)
        return self._layers[constructor, argument]


def _jitted(layer):
    """The leaf layer with its own forward (train static) and backward under jax.jit.

    A deterministic layer's forward drops the key before the jitted call:
    serial hands every layer a key, and key=None vs a key would otherwise
    compile it twice.
    """
    forward = jax.jit(layer.forward, static_argnames=("train",))
    if not layer.stochastic:
        forward = _without_key(forward, layer.stateful)
    return layer.replace(forward=forward, backward=jax.jit(layer.backward))


def _without_key(forward, stateful=False):
    if stateful:                                  # BatchNorm: its forward takes the state too
        def forward_without_key(params, x, *, key=None, train=False, state=None):
            del key
            return forward(params, x, train=train, state=state)
        return forward_without_key

    def forward_without_key(params, x, *, key=None, train=False):
        del key
        return forward(params, x, train=train)
    return forward_without_key


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
        """The loss, with the kind of targets for a classification loss (labels or soft)."""
        classification = get_loss(self.loss).task == "classification"
        return f"{self.loss}({self.targets})" if classification else self.loss

    @property
    def shape_label(self):
        return f"B={self.batch} " + "-".join(str(s) for s in self.sizes)

    @property
    def label(self):
        return f"{self.layers} {self.activation} {self.loss_label} {self.shape_label}"

    @property
    def output_activation(self):
        """The output activation of the output_act variant (None for the others).

        softmax before a regression loss on several outputs, sigmoid otherwise
        (one regression output, or before a cross-entropy).
        """
        if self.layers != "output_act":
            return None
        regression = get_loss(self.loss).task == "regression"
        return "softmax" if regression and self.sizes[2] > 1 else "sigmoid"


class CaseResult(NamedTuple):
    """A case, its GradCheckResult, and whether it passed the tolerances."""
    case: Case
    result: GradCheckResult
    passed: bool

    def record(self):
        """A JSON-ready dict: the case, its max relative errors (None for inf/NaN), and the pass flag."""
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


# --- The layer variants: (grid, case) -> Layer, the structures fnn.mlp builds. ---

def _dense(grid, case):
    """serial(Dense(out)): no hidden layer, no activation."""
    return serial(grid.dense(case.sizes[2]))


def _dense_act(grid, case):
    """mlp([in, hidden, out], activation)."""
    _, hidden, out = case.sizes
    return serial(grid.dense(hidden), grid.activation(case.activation), grid.dense(out))


def _dropout(grid, case):
    """mlp([in, hidden, out], activation, dropout=0.25), checked in train mode with one key."""
    _, hidden, out = case.sizes
    return serial(grid.dense(hidden), grid.activation(case.activation),
                  grid.dropout(_DROPOUT_RATE), grid.dense(out))


def _deep(grid, case):
    """serial(serial(Dense, act), serial(Dense, act, Dropout), Dense, act, Dense): nested serials."""
    _, hidden, out = case.sizes
    act = grid.activation(case.activation)
    return serial(
        serial(grid.dense(hidden), act),
        serial(grid.dense(hidden), act, grid.dropout(_DROPOUT_RATE)),
        grid.dense(hidden), act,
        grid.dense(out))


def _output_act(grid, case):
    """mlp([in, hidden, out], activation, output=case.output_activation)."""
    return serial(*_dense_act(grid, case).layers, grid.activation(case.output_activation))


def _conv(grid, case):
    """x (batch, in) as a length-`in` sequence of one channel: Conv(k 3, SAME) → act →
    Conv(k 2, stride 2, dilation 1, SAME: odd and even lengths) → act → AvgPool(2, SAME) → Flatten → Dense."""
    d_in, hidden, out = case.sizes
    act = grid.activation(case.activation)
    return serial(grid.leaf(Reshape, (d_in, 1)),
                  grid.leaf(Conv, hidden, 3, padding="SAME"), act,
                  grid.leaf(Conv, hidden, 2, stride=2, padding="SAME"), act,
                  grid.leaf(AvgPool, 2, padding="SAME"), grid.leaf(Flatten), grid.dense(out))


def _pool(grid, case):
    """Conv(k 2, dilation 2, SAME, no bias) → act → MaxPool(2) → depthwise Conv(k 1, groups) → act
    → GlobalAvgPool → Dense: max pooling (drawn away from ties), groups, global pooling."""
    d_in, hidden, out = case.sizes
    act = grid.activation(case.activation)
    return serial(grid.leaf(Reshape, (d_in, 1)),
                  grid.leaf(Conv, hidden, 2, dilation=2, padding="SAME", use_bias=False), act,
                  grid.leaf(MaxPool, 2, padding="SAME"),
                  grid.leaf(Conv, hidden, 1, groups=hidden), act,
                  grid.leaf(GlobalAvgPool), grid.dense(out))


def _norm(grid, case):
    """Dense → LayerNorm → act → BatchNorm (training: batch statistics; at batch 8 only: a batch
    of 1 has no variance, one of 3 relu outputs often almost none) → Dense → act → Dense. BatchNorm follows the activation, not a Dense:
    it would cancel that Dense's bias, whose gradient is then exactly 0 (only round-off to compare)."""
    _, hidden, out = case.sizes
    act = grid.activation(case.activation)
    bn = (grid.leaf(BatchNorm),) if case.batch >= 8 else ()
    return serial(grid.dense(hidden), grid.leaf(LayerNorm), act, *bn, grid.dense(hidden), act, grid.dense(out))


def _graph(grid, case):
    """Dense → act → residual(Dense, act) → parallel(Dense, serial(Dense, act), concat)
    → parallel(Dense, serial(Dense, act, Dense), sum): the two-paths rule three ways."""
    _, hidden, out = case.sizes
    act = grid.activation(case.activation)
    d = grid.dense
    return serial(d(hidden), act, residual(d(hidden), act),
                  parallel(d(hidden), serial(d(hidden), act), combine="concat"),
                  parallel(d(out), serial(d(hidden), act, d(out)), combine="sum"))


def _recurrent(grid, case):
    """x (batch, in) as a length-`in` sequence of one feature: bidirectional GRU → act → LSTM
    (learned initial state, forget-gate bias) → RNN(last state only, 2 stacked layers) → Dense:
    backpropagation through time for each cell, both directions, stacking, and both outputs."""
    d_in, hidden, out = case.sizes
    return serial(grid.leaf(Reshape, (d_in, 1)),
                  grid.leaf(GRU, hidden, bidirectional=True), grid.activation(case.activation),
                  grid.leaf(LSTM, hidden, initial_state="learned", forget_bias=1.0),
                  grid.leaf(RNN, hidden, return_sequences=False, num_layers=2), grid.dense(out))


def _attention(grid, case):
    """x (batch, in) as a length-`in` sequence: Dense → act → causal MultiHeadAttention with two
    heads of width 1 → pre-norm TransformerBlock (one head, LayerNorm, GELU MLP, residuals)
    → GlobalAvgPool → Dense."""
    d_in, hidden, out = case.sizes
    return serial(grid.leaf(Reshape, (d_in, 1)), grid.dense(hidden), grid.activation(case.activation),
                  grid.leaf(MultiHeadAttention, 2, head_dim=1, causal=True),
                  grid.leaf(TransformerBlock, hidden, 1, mlp_ratio=2, causal=False),
                  grid.leaf(GlobalAvgPool), grid.dense(out))


_VARIANTS = {
    "dense": _dense,
    "dense+act": _dense_act,
    "dropout": _dropout,
    "deep": _deep,
    "output_act": _output_act,
    "conv": _conv,
    "pool": _pool,
    "norm": _norm,
    "graph": _graph,
    "recurrent": _recurrent,
    "attention": _attention,
}
LAYER_VARIANTS = tuple(_VARIANTS)
# Variants that check layers rather than activations run with three hidden activations:
# smooth, kinked and one with a non-monotone derivative.
ARCHITECTURES = ("conv", "pool", "norm", "graph", "recurrent", "attention")
ARCHITECTURE_ACTIVATIONS = ("tanh", "relu", "gelu")


def _case_sizes(loss, shape):
    """(batch, (in, hidden, out)); a cross-entropy over one class is degenerate, so ≥ 3 classes."""
    batch, d_in, hidden, out = shape
    if get_loss(loss).task == "classification" and out < 2:
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
            acts = ("-",) if layers == "dense" else activations
            for act in ARCHITECTURE_ACTIVATIONS if layers in ARCHITECTURES else acts:
                for shape in _SHAPES:
                    cases.append(Case(layers, act, loss, targets, *_case_sizes(loss, shape)))
    return cases


def _quick_cases(activations):
    variants = [v for v in LAYER_VARIANTS if v != "dense" and v not in ARCHITECTURES]
    cases = []
    for i, act in enumerate(activations):
        loss, targets = LOSS_TARGETS[i % len(LOSS_TARGETS)]
        shape = _SHAPES[i % 2]
        cases.append(Case(variants[i % len(variants)], act, loss, targets, *_case_sizes(loss, shape)))
    for loss, targets in (LOSS_TARGETS[0], LOSS_TARGETS[3]):
        cases.append(Case("dense", "-", loss, targets, *_case_sizes(loss, _SHAPES[2])))
    for i, layers in enumerate(ARCHITECTURES):        # batches 8 and 3: norm (i = 2) at 8, with BatchNorm
        loss, targets = LOSS_TARGETS[i % len(LOSS_TARGETS)]
        act = ARCHITECTURE_ACTIVATIONS[i % len(ARCHITECTURE_ACTIVATIONS)]
        cases.append(Case(layers, act, loss, targets, *_case_sizes(loss, _SHAPES[1 + (i + 1) % 2])))
    return cases


def build_model(grid, case):
    """The case's model as an fnn Layer, made of the grid's jitted leaf layers.

    Args:
      grid: the Grid whose compiled layers the model shares.
      case: a Case; case.layers is one of LAYER_VARIANTS.
    """
    if case.layers not in _VARIANTS:
        raise InputError(f"unknown layer variant {case.layers!r}; expected one of {', '.join(LAYER_VARIANTS)}")
    return _VARIANTS[case.layers](grid, case)


def _normals(key, n):
    """n standard normals (float64, on the host) from one fixed-size draw, compiled once."""
    size = max(_POOL, 1 << max(0, n - 1).bit_length())
    with jax.enable_x64(True):
        return np.asarray(jax.random.normal(key, (size,), jnp.float64))[:n]


def _draw_params(model, key, d_in):
    """Params of the model's structure: N(0, 1/fan_in) matrices and kernels (fan_in: every axis but
    the last), N(0, 0.2²) vectors (no exact zeros), a normalization's scale γ ~ 1 + N(0, 0.2²)
    (γ near 0 would leave the next BatchNorm a batch of almost no variance: ill-conditioned)."""
    with jax.enable_x64(True):
        shapes = jax.eval_shape(lambda k: model.init(k, (-1, d_in), jnp.float64)[1], key)
    paths, treedef = jax.tree_util.tree_flatten_with_path(shapes)
    z = _normals(key, sum(math.prod(leaf.shape) for _, leaf in paths))
    drawn, start = [], 0
    for path, leaf in paths:
        n = math.prod(leaf.shape)
        scale = 1 / math.sqrt(math.prod(leaf.shape[:-1])) if len(leaf.shape) >= 2 else 0.2   # 1/√fan_in
        center = 1.0 if jax.tree_util.keystr(path).endswith("['scale']") else 0.0
        drawn.append(center + scale * z[start:start + n].reshape(leaf.shape))
        start += n
    return jax.tree_util.tree_unflatten(treedef, drawn)


def _draw_data(case, key):
    """(x, y) on the host: x ~ N(0, 1), targets of the case's kind for outputs (batch, out)."""
    batch, (d_in, _, out) = case.batch, case.sizes
    z = _normals(key, batch * (d_in + out))
    x = z[:batch * d_in].reshape(batch, d_in)                # (batch, in)
    t = z[batch * d_in:].reshape(batch, out)                 # (batch, out)
    if case.targets == "labels":
        return x, np.argmax(t, axis=-1).astype(np.int32)      # uniform over the classes
    if case.targets == "soft":
        e = np.exp(2 * (t - t.max(axis=-1, keepdims=True)))
        return x, e / e.sum(axis=-1, keepdims=True)
    t = t.reshape(batch) if out == 1 else t                  # (batch,) targets for one output
    return x, (t > 0).astype(np.float64) if case.targets == "binary" else t


def _kink_gaps(layer, saved):
    """How close each kink of the model's layers is, one array per layer that has kinks:

    |z| for the pre-activations of a kinked Activation (relu, leaky_relu), and for a
    MaxPool(2) the gap |a − b| between the two inputs of each window (a near-tie is a kink:
    the gradient jumps from one input to the other; an exact tie is two relu zeros, left tied).
    A BatchNorm's batch σ, scaled so that σ < _MIN_BATCH_STD reads as a gap below _KINK_MARGIN.
    """
    if layer.layers:
        if layer.kind == "parallel" and "combine='concat'" in layer.name:
            saved = saved[0]                     # (branches' saved, the widths marker)
        for sub, s in zip(layer.layers, saved):
            yield from _kink_gaps(sub, s)
    elif layer.activation is not None and layer.activation.kinked:
        yield jnp.abs(saved[0])
    elif layer.name.startswith("BatchNorm") and len(saved) == 4:
        # not a kink, but a batch of almost one value makes 1/σ and the loss's third derivatives
        # large, and a central difference's h² error with them: the gap is σ's distance to that
        yield np.sqrt(np.asarray(saved[3])) * (_KINK_MARGIN / _MIN_BATCH_STD)
    elif layer.name.startswith("MaxPool(2"):
        x, y = saved                              # x (N, L, C); windows of 2 at stride 2, SAME
        pairs = jnp.pad(x, ((0, 0), (0, 2 * y.shape[1] - x.shape[1]), (0, 0)), constant_values=-jnp.inf)
        pairs = pairs.reshape(x.shape[0], y.shape[1], 2, x.shape[2])
        gap = jnp.abs(pairs[:, :, 0] - pairs[:, :, 1])
        yield jnp.where(gap == 0, jnp.inf, gap)     # equal: two relu zeros, which a step leaves equal


def _well_posed(model, loss, params, x, y, key):
    """Whether finite differences can measure every gradient of this problem.

    False if a kinked activation's pre-activation, a max-pool window's two inputs, or
    the residual of a loss with a kink (loss.kink_distance), lie within _KINK_MARGIN
    of the kink, if a BatchNorm's batch σ is below _MIN_BATCH_STD, or
    if a parameter leaf's (manual) gradient is below _GRAD_FLOOR·|L|.
    """
    out, saved = model.forward(params, x, key=key, train=True)
    value = loss.fn(out, y)
    grads, _ = model.backward(params, saved, loss.grad(out, y))
    gaps = [np.min(g) for g in _kink_gaps(model, saved)]
    if loss.kink_distance is not None:
        gaps.append(np.min(np.asarray(loss.kink_distance(out, y))))
    if min(gaps, default=math.inf) < _KINK_MARGIN:
        return False
    floor = _GRAD_FLOOR * abs(float(value))
    return all(np.max(np.abs(g)) >= floor for g in jax.tree_util.tree_leaves(grads) if g.size)


class Problem(NamedTuple):
    """A drawn case: its model and loss (the grid's jitted ones), float64 params and data, dropout key."""
    model: Layer
    loss: Loss
    params: Any
    x: np.ndarray
    y: np.ndarray
    key: Optional[jax.Array]     # None when the model has no stochastic layer


def make_problem(grid, case, *, key):
    """The case's Problem in float64, drawn from `key`.

    Weights are N(0, 1/fan_in) and biases N(0, 0.2²), so no bias is exactly 0.
    x and y are redrawn (up to 20 times) until the problem is well posed for
    finite differences:

    - no pre-activation of a kinked activation (relu, leaky_relu), and no
      residual of a loss with a kink (l1, huber: Loss.kink_distance), lies
      within 1e-3 of the kink (a difference across a kink measures a
      one-sided slope, not the gradient);
    - no parameter leaf has a gradient below 1e-4·|L| (an l1 loss whose
      residual signs cancel, or a layer of dead relus, has an exactly zero
      gradient that finite differences only see as round-off, relative error 1).

    Args:
      grid: the Grid whose compiled layers and losses the problem uses.
      case: a Case.
      key: PRNG key, required: split for the params, the dropout mask and the data.
    """
    check_key("key", key)
    model = build_model(grid, case)
    loss = grid.loss(case.loss)
    k_params, k_drop, k_data = jax.random.split(key, 3)
    k_drop = k_drop if model.stochastic else None
    params = _draw_params(model, k_params, case.sizes[0])
    with jax.enable_x64(True):
        for attempt in range(_DRAWS):
            x, y = _draw_data(case, jax.random.fold_in(k_data, attempt))
            if _well_posed(model, loss, params, x, y, k_drop):
                break
    return Problem(model, loss, params, x, y, k_drop)


def _case_key(key, case):
    """A key for the case from its label, so a case draws the same problem in any grid."""
    return jax.random.fold_in(key, zlib.crc32(case.label.encode()) & 0x7FFFFFFF)


def run_case(grid, case, *, key, eps=FD_EPS, tol_autodiff=TOL_AUTODIFF, tol_fd=TOL_FD):
    """Draw the case's problem from `key` (folded with the case's label) and check its gradients.

    Args:
      grid: the Grid whose compiled code the case uses (and adds to).
      case: a Case.
      key: PRNG key, required; the same key draws the same problem for a case in any list.
      eps: the finite-difference step.
      tol_autodiff, tol_fd: the tolerances of GradCheckResult.ok.
    Returns:
      a CaseResult.
    """
    problem = make_problem(grid, case, key=_case_key(check_key("key", key), case))
    result = check_gradients(problem.model, problem.loss, problem.params, problem.x, problem.y,
                             key=problem.key, eps=eps)
    return CaseResult(case, result, result.ok(tol_autodiff, tol_fd))


def run_cases(grid, cases, *, key, eps=FD_EPS, tol_autodiff=TOL_AUTODIFF, tol_fd=TOL_FD,
              callback=None):
    """run_case for each case, in order, sharing the grid; `callback(case_result)` after each if given."""
    results = []
    for case in cases:
        r = run_case(grid, case, key=key, eps=eps, tol_autodiff=tol_autodiff, tol_fd=tol_fd)
        if callback is not None:
            callback(r)
        results.append(r)
    return results
