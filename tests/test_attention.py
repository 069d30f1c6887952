"""Embedding, positions, MultiHeadAttention and the transformer: backward vs jax.vjp, masks, gpt training."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from conftest import normal, random_params
from fnn.check import TOL_AUTODIFF, TOL_FD, check_gradients, check_layer, relative_error
from fnn.errors import InputError, InputTypeError
from fnn.layers import attention_backward, attention_forward
from fnn.layers.embedding import sinusoids

KEY = jax.random.key(0)


def _mask(seed, B, T, empty_row=None):
    """A random bool key mask (batch, T), about 1/3 padding; example empty_row fully masked."""
    m = np.random.default_rng(seed).random((B, T)) > 0.35
    if empty_row is not None:
        m[empty_row] = False
    return jnp.asarray(m)


def naive_attention(q, k, v, causal, key_mask):
    """softmax of the full (T × T) score matrix over the allowed keys; rows with none give 0."""
    T, d = q.shape[2], q.shape[3]
    s = np.asarray(q) @ np.swapaxes(np.asarray(k), -1, -2) / math.sqrt(d)      # (B, H, T, T)
    allowed = np.ones(s.shape, bool)
    if causal:
        allowed &= np.tril(np.ones((T, T), bool))
    if key_mask is not None:
        allowed &= np.asarray(key_mask)[:, None, None, :]
    s = np.where(allowed, s, -np.inf)
    m = np.max(s, axis=-1, keepdims=True)
    e = np.where(allowed, np.exp(s - np.where(np.isfinite(m), m, 0)), 0.0)
    total = e.sum(-1, keepdims=True)
    p = e / np.where(total > 0, total, 1.0)
    lse = np.where(total[..., 0] > 0, np.log(np.where(total > 0, total, 1.0))[..., 0] + m[..., 0], -np.inf)
    return p @ np.asarray(v), lse


# (B, H, T, d, block_size): T = 1, one head, head_dim 1, T not a multiple of the block, several blocks
CORE_CASES = [(1, 1, 1, 1, 128), (2, 1, 5, 1, 2), (1, 2, 7, 3, 3), (2, 2, 9, 2, 4)]


def _qkv(seed, B, H, T, d):
    return tuple(normal(seed + i, (B, H, T, d)) for i in range(3))


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("B, H, T, d, bs", CORE_CASES, ids=str)
def test_attention_is_the_naive_softmax_and_its_backward_matches_vjp(x64, B, H, T, d, bs, causal, masked):
    q, k, v = _qkv(2, B, H, T, d)
    do = normal(5, (B, H, T, d))
    mask = _mask(3, B, T, empty_row=0) if masked else None
    o, lse = attention_forward(q, k, v, causal=causal, key_mask=mask, block_size=bs)
    ref_o, ref_lse = naive_attention(q, k, v, causal, mask)
    np.testing.assert_allclose(o, ref_o, rtol=1e-12, atol=1e-13)
    np.testing.assert_array_equal(np.isfinite(lse), np.isfinite(ref_lse))
    np.testing.assert_allclose(np.where(np.isfinite(lse), lse, 0), np.where(np.isfinite(ref_lse), ref_lse, 0),
                               rtol=1e-12, atol=1e-13)
    fwd = lambda q, k, v: attention_forward(q, k, v, causal=causal, key_mask=mask, block_size=bs)[0]
    _, vjp = jax.vjp(fwd, q, k, v)
    grads = attention_backward(q, k, v, o, lse, do, causal=causal, key_mask=mask, block_size=bs)
    for g, r in zip(grads, vjp(do)):
        assert np.all(np.isfinite(g))
        assert relative_error(g, r) <= TOL_AUTODIFF
    if masked:
        padding = ~np.asarray(mask)                      # (B, T): the masked keys
        dq, dk, dv = map(np.asarray, grads)
        assert np.all(dv.transpose(0, 2, 1, 3)[padding] == 0)      # exactly zero weight, exactly zero gradient
        assert np.all(dk.transpose(0, 2, 1, 3)[padding] == 0)
        assert np.all(dq[0] == 0) and np.all(np.asarray(o)[0] == 0)   # example 0: no key at all


def test_a_masked_key_has_exactly_no_influence(x64):
    q, k, v = _qkv(6, 2, 2, 5, 2)
    mask = _mask(7, 2, 5)
    o, _ = attention_forward(q, k, v, key_mask=mask, block_size=2)
    far = jnp.where(~mask[:, None, :, None], 1e3, 0.0)               # huge keys and values at the padding
    o2, _ = attention_forward(q, k + far, v + far, key_mask=mask, block_size=2)
    np.testing.assert_array_equal(o, o2)


def _without_D(q, k, v, o, lse, do, **kw):
    """The backward with D = rowsum(dO ⊙ O) forgotten: attention_backward told O = 0."""
    return attention_backward(q, k, v, jnp.zeros_like(o), lse, do, **kw)


def _without_scale(q, k, v, o, lse, do, **kw):
    """dQ and dK not scaled by 1/√d."""
    dq, dk, dv = attention_backward(q, k, v, o, lse, do, **kw)
    return dq * math.sqrt(q.shape[-1]), dk * math.sqrt(q.shape[-1]), dv


@pytest.mark.parametrize("wrong", [_without_D, _without_scale])
def test_a_wrong_attention_backward_is_caught(x64, wrong):
    q, k, v = _qkv(8, 2, 2, 5, 2)
    do = normal(9, (2, 2, 5, 2))
    o, lse = attention_forward(q, k, v, causal=True, block_size=2)
    ref = jax.vjp(lambda q, k, v: attention_forward(q, k, v, causal=True, block_size=2)[0], q, k, v)[1](do)
    bad = wrong(q, k, v, o, lse, do, causal=True, block_size=2)
    assert max(relative_error(g, r) for g, r in zip(bad, ref)) > 1e-2
    # and through the layer: check_layer flags a MultiHeadAttention with that backward
    layer = fnn.MultiHeadAttention(2, causal=True, block_size=2)
    params = random_params(layer, (2, 5, 4), 0)

    def backward(params, saved, dy):
        import fnn.layers.attention as A
        real, A.attention_backward = A.attention_backward, wrong
        try:
            return layer.backward(params, saved, dy)
        finally:
            A.attention_backward = real
    assert check_layer(layer.replace(backward=backward), params, normal(1, (2, 5, 4)), key=KEY).max_error > 1e-2


# (B, T, d_model, heads, head_dim, block_size): T = 1, batch 1, one head; blocks with T not a multiple;
# head_dim given (heads · head_dim = 6 ≠ d_model), head_dim 1
MHA_CASES = [(1, 1, 2, 1, None, 128), (2, 5, 4, 2, None, 2), (2, 7, 3, 3, 2, 3), (2, 5, 4, 4, 1, 128)]


@pytest.mark.parametrize("causal, masked", [(True, False), (False, True)])
@pytest.mark.parametrize("B, T, D, H, dh, bs", MHA_CASES, ids=str)
def test_multi_head_attention_backward_matches_vjp(x64, B, T, D, H, dh, bs, causal, masked):
    layer = fnn.MultiHeadAttention(H, head_dim=dh, causal=causal, block_size=bs, use_bias=B > 1)
    params = random_params(layer, (B, T, D), 1)
    x = normal(2, (B, T, D))
    mask = _mask(3, B, T, empty_row=B - 1) if masked else None
    r = check_layer(layer, params, (x, mask) if masked else x, key=KEY)
    assert r.max_error <= TOL_AUTODIFF, r
    y = layer.apply(params, (x, mask) if masked else x)
    if masked:
        y, m = y
        assert m is mask
        np.testing.assert_array_equal(y[B - 1], np.broadcast_to(params.get("b_o", 0.0), (T, D)))  # O = 0


def test_a_fully_masked_row_has_finite_outputs_and_gradients(x64):
    model = fnn.serial(fnn.MultiHeadAttention(2), fnn.layers.DropMask())
    params = random_params(model, (2, 5, 4), 2)
    x, mask = normal(3, (2, 5, 4)), jnp.asarray([[True, False, True, True, False], [False] * 5])
    y, saved = model.forward(params, (x, mask))
    grads, (dx, dmask) = model.backward(params, saved, normal(4, y.shape))
    assert np.all(np.isfinite(y)) and all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
    assert np.all(np.isfinite(dx)) and dmask.dtype == jax.dtypes.float0 and dmask.shape == (2, 5)
    auto = jax.grad(lambda p: jnp.sum(model.apply(p, (x, mask)) ** 2))(params)
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(auto))


def test_embedding_duplicate_ids_add_and_ids_have_no_gradient(x64):
    layer = fnn.Embedding(5, 3)
    _, params = layer.init(KEY, (-1, 4), jnp.float64)
    ids = jnp.asarray([[1, 1, 4, 1], [0, 4, 2, 2]])
    y, saved = layer.forward(params, ids)
    np.testing.assert_array_equal(y, np.asarray(params["W"])[np.asarray(ids)])
    dy = normal(0, (2, 4, 3))
    grads, dids = layer.backward(params, saved, dy)
    d = np.asarray(dy)
    np.testing.assert_allclose(grads["W"][1], d[0, 0] + d[0, 1] + d[0, 3], rtol=1e-14)
    np.testing.assert_allclose(grads["W"][2], d[1, 2] + d[1, 3], rtol=1e-14)
    np.testing.assert_array_equal(grads["W"][3], 0)
    assert dids.dtype == jax.dtypes.float0 and dids.shape == ids.shape
    r = check_layer(layer, params, ids, key=KEY)
    assert r.max_error <= TOL_AUTODIFF and r.dx == 0.0
    broken = layer.replace(backward=lambda p, s, dy: ({"W": jnp.zeros_like(p["W"]).at[s].set(dy)}, dids))
    assert check_layer(broken, params, ids, key=KEY).max_error > 1e-2        # set, not add: caught


def test_embedding_refuses_float_and_out_of_range_ids(x64):
    layer = fnn.Embedding(5, 3)
    _, params = layer.init(KEY, (-1, 2))
    with pytest.raises(InputError, match=r"token id 5 is out of range; expected ids in \[0, 4\]"):
        layer.apply(params, jnp.asarray([[0, 5]]))
    with pytest.raises(InputError, match="token id -1"):
        layer.apply(params, jnp.asarray([[-1, 2]]))
    with pytest.raises(InputTypeError, match="expected integer token ids"):
        layer.apply(params, jnp.asarray([[0.0, 1.0]]))
    jitted = jax.jit(layer.apply)(params, jnp.asarray([[0, 5]]))        # not checkable under jit: NaN
    assert np.all(np.isfinite(jitted[0, 0])) and np.all(np.isnan(jitted[0, 1]))
    with pytest.raises(InputError, match="pad_id"):
        fnn.Embedding(5, 3, pad_id=5)


@pytest.mark.parametrize("layer", [fnn.PositionalEmbedding(6), fnn.SinusoidalPositions()], ids=str)
@pytest.mark.parametrize("masked", [False, True])
def test_positions_backward_matches_vjp(x64, layer, masked):
    params = random_params(layer, (2, 4, 5), 3)
    x = normal(4, (2, 4, 5))
    r = check_layer(layer, params, (x, _mask(5, 2, 4)) if masked else x, key=KEY)
    assert r.max_error <= TOL_AUTODIFF, r
    if params:
        _, saved = layer.forward(params, x)
        grads, _ = layer.backward(params, saved, normal(6, (2, 4, 5)))
        np.testing.assert_array_equal(grads["W"][4:], 0)           # rows past T get nothing


def test_sinusoids_are_vaswanis_formula(x64):
    pe = np.asarray(sinusoids(7, 6, jnp.float64))
    t, i = 5, 2
    assert pe[t, 2 * i] == pytest.approx(math.sin(t / 10000 ** (2 * i / 6)), abs=1e-14)
    assert pe[t, 2 * i + 1] == pytest.approx(math.cos(t / 10000 ** (2 * i / 6)), abs=1e-14)
    assert pe.shape == (7, 6) and np.all(pe[0, 1::2] == 1) and np.all(pe[0, ::2] == 0)


@pytest.mark.parametrize("causal, masked", [(True, False), (False, True), (True, True)])
def test_transformer_block_backward_matches_vjp(x64, causal, masked):
    block = fnn.TransformerBlock(4, 2, mlp_ratio=2, causal=causal, block_size=2)
    params = random_params(block, (2, 5, 4), 4)
    x = normal(5, (2, 5, 4))
    r = check_layer(block, params, (x, _mask(6, 2, 5, empty_row=1)) if masked else x, key=KEY)
    assert r.max_error <= TOL_AUTODIFF, r


GPT = fnn.models.gpt(7, 6, 4, 2, 2, mlp_ratio=2, pad_id=0, block_size=3)
IDS = jnp.asarray([[3, 1, 4, 1, 5], [2, 6, 5, 0, 0]])                 # example 1 ends in padding


def test_gpt_gradients_match_autodiff_and_finite_differences(x64):
    """Through Embedding (integer x), two blocks with a padding mask, and the loss's zero target rows."""
    params = random_params(GPT, IDS.shape, 5)
    labels = jnp.asarray([[1, 4, 1, 5, 2], [6, 5, 1, 2, 3]])
    y = jax.nn.one_hot(labels, 7) * (IDS != 0)[..., None]             # no loss at the padding
    r = check_gradients(GPT, "softmax_cross_entropy", params, IDS, y, max_fd_per_leaf=12, fd_key=KEY)
    assert r.ok(), r
    assert r.max_manual_vs_autodiff <= TOL_AUTODIFF and r.max_manual_vs_fd <= TOL_FD
    # jax.grad through fnn.differentiable (the hand-written backward as a custom VJP) takes integer x too
    f = fnn.differentiable(GPT)
    objective = lambda apply: lambda p: jnp.sum(jnp.sin(apply(p, IDS)))
    ours, ref = jax.grad(objective(f))(params), jax.grad(objective(GPT.apply))(params)
    assert max(map(relative_error, jax.tree.leaves(ours), jax.tree.leaves(ref))) <= TOL_AUTODIFF


def test_bad_inputs_are_named(x64):
    with pytest.raises(InputError, match="d_model 6 is not divisible by heads 4"):
        fnn.MultiHeadAttention(4).init(KEY, (-1, 3, 6))
    with pytest.raises(InputError, match=r"input shape \(-1, 6\) has 2 axes; expected 3"):
        fnn.MultiHeadAttention(2).init(KEY, (-1, 6))
    _, params = fnn.MultiHeadAttention(2).init(KEY, (-1, 3, 4))
    with pytest.raises(InputError, match=r"input of shape \(3, 4\); expected \(batch, T, d_model\)"):
        fnn.MultiHeadAttention(2).apply(params, jnp.zeros((3, 4)))
    with pytest.raises(InputTypeError, match="key_mask has dtype int32; expected bool"):
        fnn.MultiHeadAttention(2).apply(params, (jnp.zeros((2, 3, 4)), jnp.ones((2, 3), jnp.int32)))
    with pytest.raises(InputError, match=r"key_mask of shape \(2, 4\) does not fit x of shape \(2, 3, 4\)"):
        fnn.MultiHeadAttention(2).apply(params, (jnp.zeros((2, 3, 4)), jnp.ones((2, 4), bool)))
    with pytest.raises(InputError, match="T = 7 is more than max_len 6"):
        GPT.apply(random_params(GPT, (1, 5), 0), jnp.ones((1, 7), jnp.int32))
    with pytest.raises(InputError, match=r"T = 7 > max_len 6"):
        GPT.init(KEY, (-1, 7))
    with pytest.raises(InputError, match="heads must be a positive integer"):
        fnn.MultiHeadAttention(0)
    with pytest.raises(InputError, match="unknown gpt positions 'rotary'"):
        fnn.models.gpt(7, 6, 4, 2, 1, positions="rotary")


def _walk_sizes(jaxpr):
    """The element counts of every value a jaxpr (and each sub-jaxpr: scan and map bodies) makes."""
    for eqn in jaxpr.eqns:
        for var in eqn.outvars:
            yield math.prod(var.aval.shape) if hasattr(var.aval, "shape") else 0
        for p in eqn.params.values():
            for sub in (p if isinstance(p, (tuple, list)) else (p,)):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    yield from _walk_sizes(inner)


def test_the_manual_backward_never_holds_the_full_score_matrix():
    B, H, T, d, bs = 1, 2, 16, 2, 4
    q, k, v = (jnp.ones((B, H, T, d)),) * 3
    full = B * H * T * T                                  # one (T × T) matrix per head
    o, lse = attention_forward(q, k, v, causal=True, block_size=bs)
    manual = jax.make_jaxpr(lambda q, k, v, o, lse, do: attention_backward(
        q, k, v, o, lse, do, causal=True, block_size=bs))(q, k, v, o, lse, o)
    assert max(_walk_sizes(manual.jaxpr)) <= full // (T // bs)            # one block's scores at most
    autodiff = jax.make_jaxpr(lambda q, k, v, do: jax.vjp(
        lambda q, k, v: attention_forward(q, k, v, causal=True, block_size=bs)[0], q, k, v)[1](do))(q, k, v, o)
    assert max(_walk_sizes(autodiff.jaxpr)) >= full                       # every block's probabilities


def _copy_task(n, half, vocab, seed):
    """Sequences [a, b, c, a, b, c]: inputs all but the last token, one-hot targets the next token,
    kept only where the next token is a copy (the first half is random, zero target rows)."""
    first = np.random.default_rng(seed).integers(0, vocab, (n, half))
    seq = np.concatenate([first, first], axis=1)
    x, labels = seq[:, :-1], seq[:, 1:]
    y = np.eye(vocab, dtype=np.float32)[labels] * (np.arange(2 * half - 1) >= half - 1)[None, :, None]
    return jnp.asarray(x, jnp.int32), jnp.asarray(y)


def test_fit_trains_gpt_on_a_copy_task():
    vocab, half = 6, 4
    model = fnn.models.gpt(vocab, 2 * half, 16, 2, 1, mlp_ratio=2)
    x, y = _copy_task(256, half, vocab, 0)
    _, params = model.init(jax.random.key(1), (-1, x.shape[1]))
    r = fnn.fit(model, "softmax_cross_entropy", fnn.optim.adam(1e-2), params, x, y, key=jax.random.key(2),
                steps=64, batch_size=64, progress=False)
    first, last = r.history["train_loss"][0], r.history["train_loss"][-1]     # epochs of 4 steps
    assert first > 0.5 and last < 0.35 * first, r.history["train_loss"]
    assert fnn.predict(model, r.params, x[:2]).shape == (2, 2 * half - 1, vocab)
    with pytest.raises(InputTypeError, match="takes integer token ids"):
        fnn.fit(model, "softmax_cross_entropy", fnn.optim.adam(1e-2), params, x.astype(jnp.float32), y,
                key=KEY, steps=1, progress=False)
    dense = fnn.mlp([7, 3])
    with pytest.raises(InputTypeError, match="expected floating-point features"):
        fnn.evaluate(dense, "softmax_cross_entropy", dense.init(KEY, (-1, 7))[1], x, jnp.zeros(256, jnp.int32))
