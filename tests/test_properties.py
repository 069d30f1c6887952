"""Property tests (hypothesis): random architectures, losses and batches; extreme and masked logits.

1. On random MLPs (1-3 Dense layers, widths 1-6, any hidden and output
   activation, any loss, batch 1-5, dropout on or off) the hand-written
   gradient equals jax.grad: to 1e-10 in float64, 1e-4 in float32, measured as
   ‖g_manual − g_jax‖₂ / max(‖g_manual‖₂, ‖g_jax‖₂) over the whole flattened
   gradient (one scale for all leaves: a leaf whose true gradient is ~0 makes a
   per-leaf ratio meaningless). relu and leaky_relu agree with jax.grad even at
   exactly 0; l1 does not (sign(0) = 0 by hand, 1 by jax.grad), so a zero
   residual is skipped.
2. On random logits of ±1e4 with −inf masks (never on a cross-entropy target),
   the losses, fnn's logsumexp/softmax/log_softmax, and their gradients are
   finite and equal a float64 numpy reference computed with the shift trick.

Each example is a list of four architectures compiled as one function (both
dtypes, both gradient methods): on these tiny shapes compiling costs less than
running eagerly, which compiles every primitive for every new shape. The logit
tests draw from three shapes, so their compiled functions are reused. Examples
are derandomized: every run checks the same draws.
"""
from functools import partial
from typing import List, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from jax.flatten_util import ravel_pytree

import fnn
from conftest import random_params
from fnn import numerics

ACTIVATIONS = sorted(fnn.ACTIVATIONS)
LOSSES = sorted(fnn.LOSSES)
CROSS_ENTROPY = ("softmax_cross_entropy", "cross_entropy")
BINARY = ("binary_cross_entropy", "bce")
TOLERANCE = {"float64": 1e-10, "float32": 1e-4}
# XLA's backend optimizations cost most of the compile time of these tiny programs, and
# the manual and autodiff gradients are compiled alike, so they are off here.
FAST_COMPILE = {"xla_backend_optimization_level": 0}
SETTINGS = settings(max_examples=40, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


class Problem(NamedTuple):
    """A drawn architecture, loss and batch; its arrays are made from `seed` in a given dtype."""
    widths: List[int]            # input, then each Dense layer's width
    activation: str              # hidden activation
    output: str                  # output activation
    loss: str
    batch: int
    dropout: float
    soft_targets: bool           # cross-entropy: a distribution per row instead of integer labels
    flat_targets: bool           # width-1 regression/binary: targets (batch,) instead of (batch, 1)
    seed: int

    def arrays(self, dtype):
        """(model, params, x, y, key): params N(0, ½²), x N(0, 1), targets that fit the loss."""
        model = fnn.mlp(self.widths, self.activation, output=self.output, dropout=self.dropout)
        rng = np.random.default_rng(self.seed)
        params = random_params(model, (-1, self.widths[0]), rng, dtype)       # advances rng
        x = jnp.asarray(rng.standard_normal((self.batch, self.widths[0])), dtype)
        out = self.widths[-1]
        if self.loss in CROSS_ENTROPY:
            if self.soft_targets:
                p = rng.uniform(size=(self.batch, out)) * (rng.uniform(size=(self.batch, out)) < 0.7)
                p[np.arange(self.batch), rng.integers(0, out, self.batch)] += 0.1   # no all-zero row
                y = jnp.asarray(p / p.sum(axis=-1, keepdims=True), dtype)
            else:
                y = jnp.asarray(rng.integers(0, out, self.batch), jnp.int32)
        else:
            shape = (self.batch,) if self.flat_targets else (self.batch, out)
            raw = rng.uniform(size=shape) if self.loss in BINARY else rng.standard_normal(shape)
            y = jnp.asarray(raw, dtype)
        key = jax.random.key(self.seed % 2**31, impl="rbg") if self.dropout else None
        return model, params, x, y, key


@st.composite
def problems(draw):
    depth = draw(st.integers(1, 3))                                 # Dense layers
    widths = [draw(st.integers(1, 6)) for _ in range(depth + 1)]
    loss = draw(st.sampled_from(LOSSES))
    return Problem(widths, draw(st.sampled_from(ACTIVATIONS)), draw(st.sampled_from(ACTIVATIONS)), loss,
                   draw(st.integers(1, 5)), draw(st.sampled_from([0.0, 0.0, 0.4])) if depth > 1 else 0.0,
                   draw(st.booleans()), widths[-1] == 1 and draw(st.booleans()), draw(st.integers(0, 2**32 - 1)))


def _relative_error(a, b):
    """‖a − b‖₂ / max(‖a‖₂, ‖b‖₂) over flattened trees, in float64; 0 when both are exactly zero."""
    a = np.asarray(ravel_pytree(a)[0], np.float64)
    b = np.asarray(ravel_pytree(b)[0], np.float64)
    assert a.shape == b.shape and np.all(np.isfinite(a)) and np.all(np.isfinite(b))
    scale = max(np.linalg.norm(a), np.linalg.norm(b))
    return 0.0 if scale == 0 else float(np.linalg.norm(a - b) / scale)


def _both_ways(model, loss, params, x, y, key):
    """Backprop(L, out, grads, state) by hand-written backprop and (L, grads) by jax.grad."""
    manual = fnn.forward_backward(model, loss, params, x, y, key=key, method="manual")
    autodiff = fnn.value_and_grad(model, loss, params, x, y, key=key, method="autodiff")
    return manual, autodiff


EDGE_PROBLEMS = [      # batch 1, width 1, l1, integer labels, softmax output, dropout
    Problem([3, 1], "relu", "identity", "l1", 1, 0.0, False, True, 0),
    Problem([2, 4, 3], "leaky_relu", "identity", "softmax_cross_entropy", 1, 0.0, False, False, 1),
    Problem([2, 5, 5, 4], "tanh", "softmax", "half_squared_error", 5, 0.4, False, False, 2),
    Problem([1, 1, 1, 1], "sigmoid", "sigmoid", "bce", 1, 0.4, False, True, 3),
]


@settings(SETTINGS, max_examples=7)
@given(st.lists(problems(), min_size=4, max_size=4, unique_by=repr))
@example(EDGE_PROBLEMS)
def test_manual_gradient_equals_jax_grad(problem_list):
    """float64 and float32 versions of each problem, both gradients of each, all in one compiled function.

    A drawn list of problems shares one compilation, which costs less per problem than one each.
    """
    with jax.enable_x64(True):
        drawn = [(p, p.arrays("float64"), p.arrays("float32")) for p in problem_list]
        args = [(a64[1:], a32[1:]) for _, a64, a32 in drawn]

        def all_gradients(args):
            return [(_both_ways(a64[0], p.loss, *b64), _both_ways(a64[0], p.loss, *b32))
                    for (p, a64, _), (b64, b32) in zip(drawn, args)]

        compiled = jax.jit(all_gradients).lower(args).compile(compiler_options=FAST_COMPILE)
        results = jax.device_get(compiled(args))
    checked = 0
    for problem, (b64, b32), pair in zip(problem_list, args, results):
        for dtype, ((loss_m, out, g_m, _), (loss_a, g_a)), (params, _, y, _) in zip(
                ("float64", "float32"), pair, (b64, b32)):
            if problem.loss == "l1" and np.any(out.reshape(-1) == np.asarray(y).reshape(-1)):
                continue   # |r| has a kink at r = 0: sign(0) = 0 by hand, jax.grad takes 1 there
            assert jax.tree.structure(g_m) == jax.tree.structure(params), problem
            assert all(g.dtype == jnp.dtype(dtype) and g.shape == p.shape
                       for g, p in zip(jax.tree.leaves(g_m), jax.tree.leaves(params))), problem
            assert np.isfinite(loss_m) and abs(loss_m - loss_a) <= TOLERANCE[dtype] * max(1.0, abs(loss_a)), problem
            assert _relative_error(g_m, g_a) <= TOLERANCE[dtype], (dtype, problem)
            checked += 1
    assert checked > 0


# ---- extreme logits ----

NEG_INF = -np.inf
EXTREME = st.one_of(st.sampled_from([1e4, -1e4, 0.0]), st.floats(-1e4, 1e4, width=32))
SHAPES = [(1, 1), (1, 6), (4, 6)]      # (batch, classes): few shapes, so few compilations
DTYPES = ["float32", "float64"]


@st.composite
def masked_logits(draw, keep_label):
    """(logits, labels): ±1e4 and random values of a drawn shape, −inf where a mask falls.

    keep_label: never mask the label's class; otherwise a whole row may be masked.
    """
    batch, classes = draw(st.sampled_from(SHAPES))
    n = batch * classes
    values = np.array(draw(st.lists(EXTREME, min_size=n, max_size=n))).reshape(batch, classes)
    masked = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n))).reshape(batch, classes)
    logits = np.where(masked, NEG_INF, values)
    labels = np.array(draw(st.lists(st.integers(0, classes - 1), min_size=batch, max_size=batch)))
    if keep_label:
        logits[np.arange(batch), labels] = values[np.arange(batch), labels]
    elif draw(st.booleans()):
        logits[draw(st.integers(0, batch - 1))] = NEG_INF               # an all-masked row
    return logits, labels


def _logsumexp_reference(x):
    """float64 log Σ exp(x) along the last axis by the shift trick, kept as a size-1 axis; −inf for all −inf."""
    x = np.asarray(x, np.float64)
    m = np.max(x, axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return m + np.log(np.sum(np.exp(x - m), axis=-1, keepdims=True))


def _log_softmax_reference(x):
    """float64 x − logsumexp(x); −inf on masked entries and on rows of all −inf."""
    x = np.asarray(x, np.float64)
    lse = _logsumexp_reference(x)
    return np.where(np.isneginf(lse), NEG_INF, x - np.where(np.isneginf(lse), 0.0, lse))


def _close(actual, expected, dtype, scale=1.0):
    """Equal to the float64 reference within the input dtype's round-off (scaled by |logits| ≤ 2e4)."""
    rtol, atol = (1e-6, 1e-6 * scale) if dtype == "float32" else (1e-12, 1e-12 * scale)
    actual = np.asarray(actual, np.float64)
    assert actual.shape == np.shape(expected)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


@partial(jax.jit, static_argnums=0)
def _loss_value_and_grads(name, z, target):
    """(L, loss.grad, jax.grad of loss.fn) for a loss by name."""
    loss = fnn.get_loss(name)
    return loss.fn(z, target), loss.grad(z, target), jax.grad(loss.fn)(z, target)


@SETTINGS
@given(masked_logits(keep_label=True), st.booleans(), st.integers(0, 2**32 - 1))
def test_cross_entropy_at_extreme_masked_logits(logits_labels, soft, seed):
    logits, labels = logits_labels
    batch, classes = logits.shape
    if soft:                      # random weights on the unmasked classes, the label's above zero
        w = np.random.default_rng(seed).uniform(size=logits.shape) * np.isfinite(logits)
        w[np.arange(batch), labels] += 0.5
        y = w / w.sum(axis=-1, keepdims=True)
    else:
        y = np.eye(classes)[labels]
    for dtype in DTYPES:
        with jax.enable_x64(dtype == "float64"):
            z = jnp.asarray(logits, dtype)
            target = jnp.asarray(y, dtype) if soft else jnp.asarray(labels, jnp.int32)
            value, g_manual, g_auto = jax.device_get(_loss_value_and_grads("softmax_cross_entropy", z, target))
        logp = _log_softmax_reference(np.asarray(z))
        expected = -np.sum(np.where(y > 0, y * np.where(y > 0, logp, 0.0), 0.0)) / batch
        expected_grad = (np.exp(logp) - y) / batch
        assert np.isfinite(value) and np.all(np.isfinite(g_manual)) and np.all(np.isfinite(g_auto)), dtype
        _close(value, expected, dtype, scale=2e4)
        _close(g_manual, expected_grad, dtype)
        _close(g_auto, expected_grad, dtype)
        assert np.all(g_auto[np.isneginf(logits)] == 0) and np.all(g_manual[np.isneginf(logits)] == 0), dtype


@SETTINGS
@given(st.sampled_from(SHAPES), st.data())
def test_binary_cross_entropy_at_extreme_logits(shape, data):
    n = shape[0] * shape[1]
    logits = np.array(data.draw(st.lists(EXTREME, min_size=n, max_size=n))).reshape(shape)
    y = np.array(data.draw(st.lists(st.sampled_from([0.0, 1.0, 0.5, 0.25]), min_size=n, max_size=n))).reshape(shape)
    for dtype in DTYPES:
        with jax.enable_x64(dtype == "float64"):
            z = jnp.asarray(logits, dtype)
            target = jnp.asarray(y, dtype)
            value, g_manual, g_auto = jax.device_get(_loss_value_and_grads("binary_cross_entropy", z, target))
        z = np.asarray(z, np.float64)
        e = np.exp(-np.abs(z))                                   # ≤ 1: the stable forms of softplus and σ
        expected = np.mean(np.maximum(z, 0) + np.log1p(e) - y * z)
        expected_grad = (np.where(z >= 0, 1 / (1 + e), e / (1 + e)) - y) / n
        assert np.isfinite(value) and np.all(np.isfinite(g_manual)) and np.all(np.isfinite(g_auto)), dtype
        _close(value, expected, dtype, scale=1e4)
        _close(g_manual, expected_grad, dtype)
        _close(g_auto, expected_grad, dtype)


@jax.jit
def _values_and_vjps(x, ct):
    """{name: (f(x), ctᵀ ∂f/∂x)} for fnn's logsumexp, softmax and log_softmax along the last axis."""
    results = {}
    for name in ("logsumexp", "softmax", "log_softmax"):
        out, vjp = jax.vjp(getattr(numerics, name), x)
        results[name] = (out, vjp(ct[:, 0] if name == "logsumexp" else ct)[0])
    return results


@SETTINGS
@given(masked_logits(keep_label=False), st.integers(0, 2**32 - 1))
def test_logsumexp_softmax_log_softmax_at_extreme_masked_logits(logits_labels, seed):
    """Values and vector-Jacobian products against the shift-trick reference, all-masked rows included:

        d logsumexp: ct · s,   d softmax: s ⊙ (ct − Σ ct ⊙ s),   d log_softmax: ct − s Σ ct
    """
    logits, _ = logits_labels
    all_masked = np.all(np.isneginf(logits), axis=-1)
    for dtype in DTYPES:
        with jax.enable_x64(dtype == "float64"):
            x = jnp.asarray(logits, dtype)
            ct = jnp.asarray(np.random.default_rng(seed).standard_normal(logits.shape), dtype)
            results = jax.device_get(_values_and_vjps(x, ct))
        x, ct = np.asarray(x, np.float64), np.asarray(ct, np.float64)
        logp = _log_softmax_reference(x)
        s = np.exp(logp)
        reference = {
            "logsumexp": (_logsumexp_reference(x)[:, 0], ct[:, :1] * s),
            "softmax": (s, s * (ct - np.sum(ct * s, axis=-1, keepdims=True))),
            "log_softmax": (logp, ct - s * np.sum(ct, axis=-1, keepdims=True)),
        }
        for name, (ref_out, ref_grad) in reference.items():
            out, grad = (np.asarray(a, np.float64) for a in results[name])
            assert np.all(np.isfinite(grad)), (name, dtype)
            assert not np.any(np.isnan(out)) and np.array_equal(np.isneginf(out), np.isneginf(ref_out)), (name, dtype)
            finite = np.isfinite(ref_out)
            _close(out[finite], ref_out[finite], dtype, scale=1.0 if name == "softmax" else 2e4)
            _close(grad, ref_grad, dtype)
        assert np.all(results["softmax"][0][all_masked] == 0) and np.all(results["softmax"][1][all_masked] == 0)
