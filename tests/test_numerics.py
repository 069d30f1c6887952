"""fnn.numerics: logsumexp, softmax and log_softmax stay finite and correct at the edges."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import fnn
from fnn import numerics

NEG_INF = -np.inf
FNS = {"logsumexp": numerics.logsumexp, "softmax": numerics.softmax,
       "log_softmax": numerics.log_softmax}
JAX_FNS = {"logsumexp": jax.nn.logsumexp, "softmax": jax.nn.softmax,
           "log_softmax": jax.nn.log_softmax}


def np_logsumexp(x, axis=-1):
    """float64 reference: a + log Σ exp(x − a)."""
    x = np.asarray(x, np.float64)
    a = np.max(x, axis=axis, keepdims=True)
    return np.squeeze(a + np.log(np.sum(np.exp(x - a), axis=axis, keepdims=True)), axis)


def np_log_softmax(x, axis=-1):
    x = np.asarray(x, np.float64)
    return x - np.expand_dims(np_logsumexp(x, axis), axis)


def rand(seed, shape, scale=3.0):
    return scale * np.random.default_rng(seed).standard_normal(shape)


# Each case: logits (float32) with ±1e4 values, masked (−inf) classes, or whole masked rows.
EDGE_CASES = {
    "large": np.array([[1e4, -1e4, 0.0, 1.0],
                       [-1e4, -1e4 + 1, -1e4, -1e4 + 2],
                       [1e4, 1e4, 1e4 - 1, -1e4]]),
    "masked": np.array([[1.0, NEG_INF, 2.0, -0.5],
                        [NEG_INF, 0.3, NEG_INF, NEG_INF],
                        [1e4, NEG_INF, -1e4, 3.0]]),
    "all_masked": np.array([[NEG_INF, NEG_INF, NEG_INF, NEG_INF],
                            [0.5, -1.0, NEG_INF, 2.0]]),
}


# --------------------------------------------------------------------------- values

def test_module_exports_the_same_functions():
    assert fnn.logsumexp is numerics.logsumexp
    assert fnn.softmax is numerics.softmax
    assert fnn.log_softmax is numerics.log_softmax


@pytest.mark.parametrize("shape,axis", [((5,), -1), ((1, 7), -1), ((3, 4), 0), ((2, 3, 5), 1)])
def test_ordinary_values_match_float64_reference(x64, shape, axis):
    x = rand(0, shape)
    lse = numerics.logsumexp(jnp.asarray(x), axis=axis)
    logp = numerics.log_softmax(jnp.asarray(x), axis=axis)
    s = numerics.softmax(jnp.asarray(x), axis=axis)
    assert lse.dtype == jnp.float64
    np.testing.assert_allclose(lse, np_logsumexp(x, axis), rtol=1e-12)
    np.testing.assert_allclose(logp, np_log_softmax(x, axis), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(s, np.exp(np_log_softmax(x, axis)), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(np.sum(s, axis=axis), 1.0, rtol=1e-12)
    assert lse.shape == tuple(d for i, d in enumerate(shape) if i != axis % len(shape))
    assert s.shape == logp.shape == shape


def test_large_logits_are_finite_and_correct():
    x = EDGE_CASES["large"]
    lse = numerics.logsumexp(jnp.asarray(x, jnp.float32))
    logp = numerics.log_softmax(jnp.asarray(x, jnp.float32))
    s = numerics.softmax(jnp.asarray(x, jnp.float32))
    for out in (lse, logp, s):
        assert out.dtype == jnp.float32
        assert np.all(np.isfinite(out))
    # Row 0: 1e4 dominates; row 1: every logit ≈ −1e4 (exp would underflow without the shift).
    np.testing.assert_allclose(lse, np_logsumexp(x), rtol=1e-6)
    np.testing.assert_allclose(logp, np_log_softmax(x), rtol=1e-6, atol=1e-3)
    np.testing.assert_allclose(s, np.exp(np_log_softmax(x)), rtol=1e-5, atol=1e-7)
    assert s[0, 0] == 1.0 and s[0, 1] == 0.0
    assert logp[0, 1] == pytest.approx(-2e4)


def test_masked_classes_get_exactly_zero_probability():
    x = EDGE_CASES["masked"]
    s = np.asarray(numerics.softmax(jnp.asarray(x, jnp.float32)))
    logp = np.asarray(numerics.log_softmax(jnp.asarray(x, jnp.float32)))
    lse = np.asarray(numerics.logsumexp(jnp.asarray(x, jnp.float32)))
    mask = np.isneginf(x)
    assert np.all(s[mask] == 0.0)
    assert np.all(np.isneginf(logp[mask]))
    assert np.all(np.isfinite(lse)) and np.all(np.isfinite(logp[~mask]))
    for row in range(x.shape[0]):
        keep = ~mask[row]
        ref = np_log_softmax(x[row, keep])  # softmax over the unmasked entries only
        np.testing.assert_allclose(s[row, keep], np.exp(ref), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(logp[row, keep], ref, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(lse[row], np_logsumexp(x[row, keep]), rtol=1e-6)
    assert s[1, 1] == 1.0  # a single unmasked class takes all the mass


def test_all_masked_row_follows_fnn_convention():
    """logsumexp = −inf, softmax = 0, log_softmax = −inf; other rows are untouched.

    (On jax 0.10.2, jax.nn.softmax and jax.nn.log_softmax give nan for such a row;
    this only tests fnn's convention.)
    """
    x = jnp.asarray(EDGE_CASES["all_masked"], jnp.float32)
    lse, s, logp = numerics.logsumexp(x), numerics.softmax(x), numerics.log_softmax(x)
    assert np.isneginf(lse[0])
    assert np.all(np.asarray(s[0]) == 0.0)
    assert np.all(np.isneginf(logp[0]))
    assert not np.any(np.isnan(lse)) and not np.any(np.isnan(s)) and not np.any(np.isnan(logp))
    row = EDGE_CASES["all_masked"][1]
    keep = np.isfinite(row)
    np.testing.assert_allclose(s[1, keep], np.exp(np_log_softmax(row[keep])), rtol=1e-6)
    assert float(jnp.sum(s[1])) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
@pytest.mark.parametrize("case", ["ordinary", "large", "masked", "all_masked"])
def test_half_precision_keeps_dtype_and_matches_float32(dtype, case):
    """Computed in float32 and rounded once: within an ulp of the float32 result."""
    x = rand(1, (2, 3000)) if case == "ordinary" else EDGE_CASES[case]  # many classes to sum
    x_half = jnp.asarray(x, dtype)
    x_ref = x_half.astype(jnp.float32)  # the same (rounded) logits
    info = jnp.finfo(dtype)
    for name, f in FNS.items():
        out = f(x_half)
        assert out.dtype == dtype, name
        out = np.asarray(out, np.float32)
        ref = np.asarray(f(x_ref).astype(dtype), np.float32)  # float32 result, rounded once
        assert not np.any(np.isnan(out)), name
        finite = np.isfinite(ref)
        np.testing.assert_array_equal(out[~finite], ref[~finite], err_msg=name)
        err = np.abs(out[finite] - ref[finite])
        one_ulp = float(info.eps) * np.abs(ref[finite]) + float(info.tiny)
        assert np.all(err <= one_ulp), (name, err.max())


# --------------------------------------------------------------------------- gradients

def _vjps(name, x):
    """jax.vjp of one numerics function at x with a fixed finite cotangent, plus jax.grad."""
    f = FNS[name]
    y, pullback = jax.vjp(f, x)
    ct = jnp.asarray(rand(2, y.shape, 1.0), y.dtype)
    (dx,) = pullback(ct)
    if name == "logsumexp":
        g = jax.grad(lambda x: jnp.sum(f(x)))(x)
    else:  # weight only the finite outputs so that jax.grad has a finite objective
        w = jnp.asarray(rand(3, y.shape, 1.0), x.dtype)
        g = jax.grad(lambda x: jnp.sum(jnp.where(jnp.isfinite(f(x)), f(x) * w, 0)))(x)
    return dx, g


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float16, jnp.bfloat16])
@pytest.mark.parametrize("case", ["large", "masked", "all_masked"])
@pytest.mark.parametrize("name", sorted(FNS))
def test_gradients_are_finite_at_the_edges(name, case, dtype):
    x = jnp.asarray(EDGE_CASES[case], dtype)
    for g in _vjps(name, x):
        assert g.dtype == dtype and g.shape == x.shape
        assert np.all(np.isfinite(np.asarray(g, np.float32))), (name, case, g)


def test_gradients_at_masked_and_all_masked_entries_are_zero():
    x = jnp.asarray(EDGE_CASES["all_masked"], jnp.float32)
    mask = np.isneginf(EDGE_CASES["all_masked"])
    g_lse = jax.grad(lambda x: jnp.sum(numerics.logsumexp(x)))(x)
    g_s = jax.grad(lambda x: jnp.sum(numerics.softmax(x) * jnp.arange(4.0).reshape(1, 4)))(x)
    # d logsumexp = softmax: zero on masked classes and on the all-masked row.
    assert np.all(np.asarray(g_lse)[mask] == 0) and np.all(np.asarray(g_s)[mask] == 0)
    np.testing.assert_allclose(g_lse[1], numerics.softmax(x[1]), rtol=1e-6)


def test_cross_entropy_gradients_with_large_logits_and_masks():
    logits = jnp.asarray([[1e4, -1e4, NEG_INF, 0.0],
                          [-1e4, 1e4, 3.0, NEG_INF],
                          [NEG_INF, NEG_INF, -1e4, NEG_INF]], jnp.float32)
    labels = jnp.asarray([1, 1, 2])  # only non-target classes are masked
    ce = fnn.get_loss("softmax_cross_entropy")
    value = ce.fn(logits, labels)
    g_auto = jax.grad(ce.fn)(logits, labels)
    g_manual = ce.grad(logits, labels)
    # Row 0 pays 2e4 nats, row 1 pays ≈ 0, row 2 has a single unmasked class: 0.
    assert float(value) == pytest.approx(2e4 / 3, rel=1e-6)
    assert np.all(np.isfinite(g_auto)) and np.all(np.isfinite(g_manual))
    np.testing.assert_allclose(g_auto, g_manual, atol=1e-7)
    np.testing.assert_allclose(g_manual[0], np.array([1, -1, 0, 0]) / 3, atol=1e-7)
    assert np.all(np.asarray(g_auto)[np.isneginf(np.asarray(logits))] == 0)
    soft = jax.nn.one_hot(labels, 4)
    np.testing.assert_allclose(jax.grad(ce.fn)(logits, soft), g_manual, atol=1e-7)


def test_binary_cross_entropy_gradients_with_large_logits():
    logits = jnp.asarray([[1e4], [-1e4], [1e4], [-1e4]], jnp.float32)
    target = jnp.asarray([1.0, 0.0, 0.0, 1.0])  # two right with certainty, two wrong
    bce = fnn.get_loss("binary_cross_entropy")
    assert float(bce.fn(logits, target)) == pytest.approx(2e4 / 4, rel=1e-6)
    g_auto = jax.grad(bce.fn)(logits, target)
    np.testing.assert_allclose(g_auto, bce.grad(logits, target), atol=1e-7)
    np.testing.assert_allclose(g_auto[:, 0], np.array([0, 0, 1, -1]) / 4, atol=1e-7)


# --------------------------------------------------------------------------- custom JVP rules

@jax.jit(static_argnums=(0, 1))
def _jvp_and_vjp(f, axis, x, t, ct):
    """(f(x), J t, ctᵀ J) for f along `axis`, in one compiled function."""
    y, dy = jax.jvp(lambda x: f(x, axis=axis), (x,), (t,))
    (dx,) = jax.vjp(lambda x: f(x, axis=axis), x)[1](ct)
    return y, dy, dx


@pytest.mark.parametrize("shape,axis", [((1, 6), -1), ((4, 3), 0), ((2, 3, 4), 1)])
@pytest.mark.parametrize("name", sorted(FNS))
def test_custom_jvp_matches_jax_nn_autodiff(x64, name, shape, axis):
    x = jnp.asarray(rand(4, shape))
    t = jnp.asarray(rand(5, shape, 1.0))
    out_shape = jax.eval_shape(lambda x: FNS[name](x, axis=axis), x).shape
    ct = jnp.asarray(rand(6, out_shape, 1.0))
    ours = _jvp_and_vjp(FNS[name], axis, x, t, ct)
    ref = _jvp_and_vjp(JAX_FNS[name], axis, x, t, ct)
    for a, b, what in zip(ours, ref, ("value", "jvp", "vjp")):
        assert a.dtype == jnp.float64
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13, err_msg=what)


@pytest.mark.parametrize("name", sorted(FNS))
def test_custom_jvp_against_finite_differences(x64, name):
    x = jnp.asarray(rand(7, (3, 5)))
    check_grads(lambda x: FNS[name](x, axis=-1), (x,), order=2, modes=("fwd", "rev"))


# --------------------------------------------------------------------------- no Jacobian

def _all_shapes(jaxpr):
    """Every intermediate shape in a jaxpr, nested jaxprs (pjit, custom_jvp, ...) included."""
    shapes = []
    for eqn in jaxpr.eqns:
        shapes += [tuple(v.aval.shape) for v in eqn.outvars]
        for param in eqn.params.values():
            for p in param if isinstance(param, (tuple, list)) else (param,):
                inner = getattr(p, "jaxpr", p)  # a ClosedJaxpr wraps a Jaxpr
                if hasattr(inner, "eqns"):
                    shapes += _all_shapes(inner)
    return shapes


def test_softmax_backward_never_forms_the_jacobian():
    n = 4096
    z = jnp.zeros((1, n))
    dy = jnp.ones((1, n))
    act = fnn.get_activation("softmax")
    manual = jax.make_jaxpr(lambda z, dy: act.vjp(z, act.fn(z), dy))(z, dy).jaxpr
    autodiff = jax.make_jaxpr(
        lambda z, dy: jax.vjp(numerics.softmax, z)[1](dy))(z, dy).jaxpr
    for jaxpr in (manual, autodiff):
        shapes = _all_shapes(jaxpr)
        assert (1, n) in shapes  # the walk did see the computation
        assert max(int(np.prod(s)) for s in shapes) <= n, sorted(set(shapes))


def test_softmax_vjp_equals_explicit_jacobian_product(x64):
    z = jnp.asarray(rand(8, (2, 5)))
    dy = jnp.asarray(rand(9, (2, 5), 1.0))
    act = fnn.get_activation("softmax")
    s = act.fn(z)
    dz = act.vjp(z, s, dy)
    for b in range(2):
        jac = np.diag(s[b]) - np.outer(s[b], s[b])  # ∂s_i/∂z_j
        np.testing.assert_allclose(dz[b], np.asarray(dy[b]) @ jac, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("bad", [jnp.nan, jnp.inf, -jnp.inf])
def test_all_finite_finds_one_bad_entry_in_any_floating_leaf_and_skips_integers(bad):
    tree = {"W": jnp.ones((3, 4)), "b": jnp.zeros(4, jnp.bfloat16), "count": jnp.asarray(7, jnp.int32)}
    check = jax.jit(numerics.all_finite)
    assert bool(check(tree)) and bool(check({"count": tree["count"]})) and bool(check({}))
    for leaf in ("W", "b"):
        broken = dict(tree, **{leaf: tree[leaf].at[-1].set(bad)})
        assert not bool(check(broken))
