"""fnn.Conv: forward against the formula, the hand-written backward against jax.vjp and finite differences."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import fnn
from conftest import normal, random_params
from fnn.check import TOL_AUTODIFF, check_gradients, check_layer
from fnn.errors import InputError
from fnn.layers.window import geometry

KEY = jax.random.key(0)
CHECK_KEY = jax.random.key(0, impl="rbg")    # check_layer's cotangent: rbg compiles faster than threefry

# id -> (Conv settings, input shape (N, spatial..., C)): the edge cases of the window arithmetic.
CASES = {
    "batch1-length1": (dict(features=3, kernel_size=1), (1, 1, 2)),
    "kernel-equals-length": (dict(features=2, kernel_size=5), (2, 5, 2)),
    "stride-over-kernel": (dict(features=2, kernel_size=2, stride=3), (2, 9, 2)),        # r = 1: dW crop
    "same-odd-length": (dict(features=3, kernel_size=3, stride=2, padding="SAME"), (2, 7, 2)),
    "same-even-length": (dict(features=2, kernel_size=4, stride=3, padding="SAME"), (2, 8, 1)),
    "dilation": (dict(features=2, kernel_size=3, stride=2, dilation=2), (2, 10, 2)),
    "dilation-leftover": (dict(features=2, kernel_size=2, stride=4, dilation=3), (2, 11, 2)),  # r = 3 ≥ d
    "asymmetric-pad": (dict(features=2, kernel_size=2, stride=2, padding=((2, 1),)), (2, 6, 2)),
    "pad-beyond-span": (dict(features=2, kernel_size=2, padding=((3, 0),)), (1, 4, 1)),     # p_lo > K − 1
    "int-pad-groups": (dict(features=6, kernel_size=3, stride=2, padding=1, groups=2), (2, 6, 4)),
    "depthwise-multiplier": (dict(features=8, kernel_size=3, dilation=2, padding="SAME", groups=4),
                             (2, 6, 4)),
    "depthwise": (dict(features=3, kernel_size=2, groups=3, use_bias=False), (2, 5, 3)),
    "2d-nonsquare": (dict(features=2, kernel_size=(2, 3), stride=(2, 1), padding=((1, 0), (2, 1))),
                     (2, 5, 6, 3)),
    "2d-groups-same": (dict(features=4, kernel_size=(3, 2), stride=(3, 2), dilation=(2, 1),
                            padding="SAME", groups=2), (1, 7, 5, 4)),
    "2d-depthwise": (dict(features=3, kernel_size=3, padding=1, groups=3), (2, 4, 4, 3)),
    "2d-pad-per-axis": (dict(features=2, kernel_size=(1, 3), stride=(1, 2), padding=(1, 0)), (1, 3, 5, 2)),
    "2d-kernel-equals-input": (dict(features=2, kernel_size=(3, 2)), (1, 3, 2, 2)),
    "2d-batch1-1x1": (dict(features=2, kernel_size=1), (1, 1, 1, 2)),
}


def make(case):
    settings, in_shape = CASES[case]
    settings = dict(settings)
    layer = fnn.Conv(settings.pop("features"), settings.pop("kernel_size"), **settings)
    return layer, in_shape, CASES[case][0]


def jitted(layer):
    """The layer with its forward and backward compiled whole: one program each, not one per operation."""
    return layer.replace(forward=jax.jit(layer.forward, static_argnames="train"),
                         backward=jax.jit(layer.backward))


def expected_length(L, k, s, d, padding, axis):
    """The docstring's formula, written independently of fnn.layers.window."""
    if padding == "SAME":
        return math.ceil(L / s)
    if padding == "VALID":
        lo = hi = 0
    elif isinstance(padding, int):
        lo = hi = padding
    else:
        p = padding[axis]
        lo, hi = (p, p) if isinstance(p, int) else p
    return (L + lo + hi - d * (k - 1) - 1) // s + 1


def expected_shape(settings, in_shape):
    rank = len(in_shape) - 2
    each = lambda v: v if isinstance(v, tuple) else (v,) * rank
    k, s = each(settings["kernel_size"]), each(settings.get("stride", 1))
    d = each(settings.get("dilation", 1))
    padding = settings.get("padding", "VALID")
    return tuple(expected_length(in_shape[1 + a], k[a], s[a], d[a], padding, a) for a in range(rank))


@pytest.mark.parametrize("case", sorted(CASES))
def test_backward_matches_vjp_and_shapes_match_the_formula(x64, case):
    layer, in_shape, settings = make(case)
    out_shape, _ = layer.init(KEY, (-1,) + in_shape[1:])
    assert out_shape == (-1,) + expected_shape(settings, in_shape) + (settings["features"],)
    params = random_params(layer, in_shape, 1)
    x = normal(2, in_shape)
    assert jax.eval_shape(layer.apply, params, x).shape == in_shape[:1] + out_shape[1:]
    result = check_layer(jitted(layer), params, x, key=CHECK_KEY)
    assert result.ok(), result
    assert [path for path, _ in result.leaves] == (["['W']", "['b']"] if settings.get("use_bias", True)
                                                   else ["['W']"])
    assert result.max_error <= TOL_AUTODIFF


def naive_conv(x, W, b, stride, dilation, pads, groups):
    """z[n, i, o] = Σ_{j,c} x[n, s·i + d·j − p_lo, c] W[j, c, o] + b[o], by loops (any rank)."""
    x, W = np.asarray(x), np.asarray(W)
    rank = x.ndim - 2
    xp = np.pad(x, ((0, 0),) + tuple(pads) + ((0, 0),))
    k, (c_in_g, c_out) = W.shape[:rank], W.shape[-2:]
    out = [(xp.shape[1 + a] - dilation[a] * (k[a] - 1) - 1) // stride[a] + 1 for a in range(rank)]
    z = np.zeros((x.shape[0], *out, c_out))
    for o in range(c_out):
        group = o // (c_out // groups)
        channels = slice(group * c_in_g, (group + 1) * c_in_g)
        for i in np.ndindex(*out):
            for j in np.ndindex(*k):
                at = tuple(stride[a] * i[a] + dilation[a] * j[a] for a in range(rank))
                taps = xp[(slice(None),) + at + (channels,)]                       # (N, C_in/g)
                z[(slice(None),) + i + (o,)] += taps @ W[j + (slice(None), o)]
    return z + (0 if b is None else np.asarray(b))


@pytest.mark.parametrize("case", ["asymmetric-pad", "int-pad-groups", "depthwise", "same-even-length",
                                  "2d-nonsquare", "2d-groups-same"])
def test_forward_is_the_formula(x64, case):
    layer, in_shape, settings = make(case)
    params = random_params(layer, in_shape, 3)
    x = normal(4, in_shape)
    g = geometry("test", in_shape[1:-1], settings["kernel_size"], settings.get("stride", 1),
                 settings.get("dilation", 1), settings.get("padding", "VALID"))
    expected = naive_conv(x, params["W"], params.get("b"), g.stride, g.dilation, g.pads,
                          settings.get("groups", 1))
    np.testing.assert_allclose(layer.apply(params, x), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", ["same-odd-length", "same-even-length", "depthwise-multiplier",
                                  "2d-groups-same"])
def test_same_padding_is_lax_same(x64, case):
    """SAME splits the padding as lax does: the extra one at the end."""
    layer, in_shape, settings = make(case)
    params = random_params(layer, in_shape, 5)
    x = normal(6, in_shape)
    rank = len(in_shape) - 2
    sp = "W" if rank == 1 else "HW"
    each = lambda v: v if isinstance(v, tuple) else (v,) * rank
    z = lax.conv_general_dilated(x, params["W"], each(settings.get("stride", 1)), "SAME",
                                 rhs_dilation=each(settings.get("dilation", 1)),
                                 dimension_numbers=("N" + sp + "C", sp + "IO", "N" + sp + "C"),
                                 feature_group_count=settings.get("groups", 1))
    np.testing.assert_allclose(layer.apply(params, x), np.asarray(z) + np.asarray(params["b"]), rtol=1e-12,
                               atol=1e-12)


def test_backward_formulas_on_a_tiny_case(x64):
    """dW, db and dx written out by hand for k = 2, s = 2, L = 5 (one leftover input)."""
    layer = fnn.Conv(1, 2, stride=2)
    params = {"W": jnp.array([[[2.0]], [[3.0]]]), "b": jnp.array([0.5])}       # (k, C_in, C_out)
    x = jnp.arange(1.0, 6.0).reshape(1, 5, 1)
    z, saved = layer.forward(params, x)
    np.testing.assert_allclose(z.ravel(), [2 * 1 + 3 * 2 + 0.5, 2 * 3 + 3 * 4 + 0.5])
    grads, dx = layer.backward(params, saved, jnp.array([10.0, 100.0]).reshape(1, 2, 1))
    np.testing.assert_allclose(dx.ravel(), [20, 30, 200, 300, 0])      # x[4] is read by no window
    np.testing.assert_allclose(grads["W"].ravel(), [10 * 1 + 100 * 3, 10 * 2 + 100 * 4])
    np.testing.assert_allclose(grads["b"], [110])


# --------------------------------------------------------------------------- finite differences

def test_gradients_match_finite_differences(x64):
    """A 2-D grouped, padded, strided Conv, reshaped into a 1-D SAME strided one: both ranks in one model."""
    model = fnn.serial(fnn.Conv(4, (2, 3), stride=(1, 2), padding=((1, 0), (0, 2)), groups=2),  # (N,3,2,4)
                       fnn.Activation("tanh"), fnn.Reshape((3, 8)),
                       fnn.Conv(3, 3, stride=2, padding="SAME"), fnn.Activation("tanh"),          # (N, 2, 3)
                       fnn.Flatten(), fnn.Dense(3))
    in_shape = (3, 3, 4, 2)
    assert model.init(KEY, (-1,) + in_shape[1:])[0] == (-1, 3)
    params = random_params(model, in_shape, 7)
    x = normal(8, in_shape)
    y = jnp.asarray(np.arange(in_shape[0]) % 3, jnp.int32)
    result = check_gradients(model, "softmax_cross_entropy", params, x, y)
    assert result.ok(), result
    assert {leaf.path for leaf in result.leaves} == {"[0]['W']", "[0]['b']", "[3]['W']", "[3]['b']",
                                                     "[6]['W']", "[6]['b']"}
    assert all(leaf.fd_count == math.prod(leaf.shape) for leaf in result.leaves)


# --------------------------------------------------------------------------- wrong backwards are caught

def _grads_with_dx(layer, make_dx):
    def backward(params, saved, dz):
        grads, _ = layer.backward(params, saved, dz)
        return grads, make_dx(params["W"], saved, dz)
    return layer.replace(backward=backward)


def _transposed_pads(g):
    return tuple((K - 1 - lo, K - 1 - hi + r) for K, (lo, hi), r in zip(g.span, g.pads, g.leftover))


def _dx_with_kernel(settings, kernel_of):
    """dx as the transposed convolution, with the kernel kernel_of(W) (right: flipped, swapped per group)."""
    def dx(W, x, dz):
        g = geometry("test", x.shape[1:-1], settings["kernel_size"], settings.get("stride", 1),
                     settings.get("dilation", 1), settings.get("padding", "VALID"))
        return lax.conv_general_dilated(dz, kernel_of(W), (1,), _transposed_pads(g), lhs_dilation=g.stride,
                                        rhs_dilation=g.dilation, dimension_numbers=("NWC", "WIO", "NWC"),
                                        feature_group_count=settings.get("groups", 1))
    return dx


def _swapped(W, groups):
    k, c_in_g, c_out = W.shape
    return W.reshape(k, c_in_g, groups, c_out // groups).transpose(0, 3, 2, 1).reshape(k, c_out // groups, -1)


WRONG_DX = {
    "right": lambda W, groups: jnp.flip(_swapped(W, groups), 0),
    "kernel-not-flipped": lambda W, groups: _swapped(W, groups),
    "in-out-not-regrouped": lambda W, groups: jnp.flip(W.reshape(W.shape[0], W.shape[2] // groups, -1), 0),
}


@pytest.mark.parametrize("variant", sorted(WRONG_DX))
def test_check_layer_catches_a_wrong_dx(x64, variant):
    settings = dict(features=6, kernel_size=3, stride=2, padding=((2, 1),), dilation=2, groups=3)
    layer = fnn.Conv(6, 3, stride=2, padding=((2, 1),), dilation=2, groups=3)
    in_shape = (2, 9, 3)
    params = random_params(layer, in_shape, 9)
    groups = settings["groups"]
    wrong = _grads_with_dx(layer, _dx_with_kernel(settings, lambda W: WRONG_DX[variant](W, groups)))
    result = check_layer(wrong, params, normal(10, in_shape), key=CHECK_KEY)
    if variant == "right":                   # the test's own transposed convolution is the right one
        assert result.ok(), result
    else:
        assert not result.ok() and result.dx > 1e-3, result


def test_check_layer_catches_dW_without_the_stride(x64):
    layer = fnn.Conv(2, 2, stride=3)
    in_shape = (2, 9, 2)

    def backward(params, saved, dz):
        grads, dx = layer.backward(params, saved, dz)
        unstrided = lax.conv_general_dilated(saved, dz, (1,), [(0, 0)], rhs_dilation=(1,),   # missing s
                                             dimension_numbers=("CWN", "IWO", "WNC"))
        return {**grads, "W": unstrided[:2]}, dx
    params = random_params(layer, in_shape, 11)
    result = check_layer(layer.replace(backward=backward), params, normal(12, in_shape), key=CHECK_KEY)
    assert not result.ok() and dict(result.leaves)["['W']"] > 1e-3 and result.dx <= TOL_AUTODIFF


# --------------------------------------------------------------------------- settings and errors

@pytest.mark.parametrize("make_layer,value", [
    (lambda: fnn.Conv(0, 3), "0"),
    (lambda: fnn.Conv(2, 0), "0"),
    (lambda: fnn.Conv(2, (3, -1)), "(3, -1)"),
    (lambda: fnn.Conv(2, 2.5), "2.5"),
    (lambda: fnn.Conv(2, 3, stride=0), "0"),
    (lambda: fnn.Conv(2, 3, stride=(1, 0)), "(1, 0)"),
    (lambda: fnn.Conv(2, 3, dilation=-2), "-2"),
    (lambda: fnn.Conv(2, 3, padding="same"), "'same'"),
    (lambda: fnn.Conv(2, 3, padding="FULL"), "'FULL'"),
    (lambda: fnn.Conv(2, 3, padding=-1), "-1"),
    (lambda: fnn.Conv(2, 3, padding=((1, -2),)), "((1, -2),)"),
    (lambda: fnn.Conv(2, 3, padding=(1.5,)), "(1.5,)"),
    (lambda: fnn.Conv(2, 3, groups=0), "0"),
    (lambda: fnn.Conv(3, 3, groups=2), "groups 2"),
])
def test_bad_settings_are_named(make_layer, value):
    with pytest.raises(InputError) as info:
        make_layer()
    assert value in str(info.value) and "Conv" in str(info.value)


@pytest.mark.parametrize("layer,input_shape,value", [
    (fnn.Conv(4, 3, groups=2), (-1, 5, 3), "3 channels"),
    (fnn.Conv(2, 5), (-1, 4, 1), "has 4 there"),                         # kernel longer than the input
    (fnn.Conv(2, 3, dilation=3), (-1, 6, 1), "spans 7"),            # dilated span 7 > 6
    (fnn.Conv(2, 4, stride=2, padding=((1, 0),)), (-1, 2, 1), "3 with padding"),
    (fnn.Conv(2, (3, 3)), (-1, 5, 1), "(3, 3)"),                    # a 2-D kernel on 1-D inputs
    (fnn.Conv(2, 3, padding=(1, 1)), (-1, 5, 1), "(1, 1)"),          # padding for 2 axes
    (fnn.Conv(2, 1), (-1, 5), "(-1, 5)"),                           # no channel axis
    (fnn.Conv(2, 1), (-1, 2, 2, 2, 2), "3 spatial axes"),
    (fnn.Conv(2, 1), (-1, 0, 2), "(-1, 0, 2)"),
])
def test_bad_input_shapes_are_named_at_init(layer, input_shape, value):
    with pytest.raises(InputError) as info:
        layer.init(KEY, input_shape)
    assert value in str(info.value) and layer.name in str(info.value)


def test_forward_checks_rank_channels_and_length():
    layer = fnn.Conv(2, 3)
    _, params = layer.init(KEY, (-1, 6, 2))
    for bad, value in [((1, 6, 3), "(1, 6, 3)"), ((1, 6, 2, 1), "(1, 6, 2, 1)"), ((1, 2, 2), "has 2 there")]:
        with pytest.raises(InputError) as info:
            layer.apply(params, jnp.zeros(bad))
        assert value in str(info.value)
    assert layer.apply(params, jnp.zeros((1, 9, 2))).shape == (1, 7, 2)   # any long enough length
    with pytest.raises(InputError, match=r"params\['W'\] has shape \(5, 2, 2\).*kernel_size \(3,\)"):
        layer.apply({**params, "W": jnp.zeros((5, 2, 2))}, jnp.zeros((1, 6, 2)))


def test_name_lists_the_settings_that_differ_from_the_defaults():
    assert fnn.Conv(8, 3).name == "Conv(8, 3)"
    assert (fnn.Conv(8, (3, 3), stride=2, padding="SAME", groups=2, use_bias=False).name
            == "Conv(8, (3, 3), stride=2, padding='SAME', groups=2, use_bias=False)")
    assert fnn.Conv(8, 3).kind == "conv"


def test_default_initializers_use_the_kernel_fan_in():
    layer = fnn.Conv(16, (3, 5), groups=2)
    _, params = layer.init(KEY, (-1, 8, 9, 16))
    W = np.asarray(params["W"])
    assert W.shape == (3, 5, 8, 16) and params["b"].shape == (16,)
    limit = math.sqrt(6 / (3 * 5 * 8))                                  # he_uniform, fan_in = prod(k)·C_in/g
    assert np.abs(W).max() <= limit and np.abs(W).max() > 0.99 * limit
    assert not np.any(np.asarray(params["b"]))
    fan_in = 3 * 5 * 8                                                   # PyTorch's default, as documented
    torch_like = fnn.Conv(16, (3, 5), groups=2, W_init="pytorch_uniform",
                          b_init=fnn.initializers.uniform(1 / math.sqrt(fan_in)))
    _, params = torch_like.init(KEY, (-1, 8, 9, 16))
    assert np.abs(np.asarray(params["W"])).max() <= 1 / math.sqrt(fan_in)
    assert np.abs(np.asarray(params["W"])).max() > 0.99 / math.sqrt(fan_in)
    assert 0 < np.abs(np.asarray(params["b"])).max() <= 1 / math.sqrt(fan_in)


def test_summary_jit_and_dtypes():
    model = fnn.serial(fnn.Conv(4, 3, padding="SAME"), fnn.Activation("relu"), fnn.Flatten(), fnn.Dense(2))
    table = fnn.summary(model, (-1, 10, 2))
    assert [r.output_shape for r in table.rows[1:]] == [(-1, 10, 4), (-1, 10, 4), (-1, 40), (-1, 2)]
    assert table.total_params == 3 * 2 * 4 + 4 + 40 * 2 + 2
    layer = model.layers[0]
    _, params = layer.init(KEY, (-1, 10, 2), jnp.bfloat16)
    x = jnp.ones((2, 10, 2), jnp.bfloat16)
    y, saved = jax.jit(layer.forward)(params, x)
    grads, dx = jax.jit(layer.backward)(params, saved, jnp.ones_like(y))
    eager_grads, eager_dx = layer.backward(params, saved, jnp.ones_like(y))
    assert y.dtype == grads["W"].dtype == grads["b"].dtype == dx.dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(dx, np.float32), np.asarray(eager_dx, np.float32))


def test_manual_gradients_vmapped_over_models_under_jit(x64):
    """As fnn.ensemble trains many models at once: jit(vmap(manual)) equals jit(vmap(jax.grad))."""
    model = fnn.serial(fnn.Conv(4, 3, stride=2, padding="SAME", groups=2), fnn.Activation("tanh"),
                       fnn.MaxPool(2, stride=1), fnn.AvgPool(2, padding=1), fnn.Flatten(), fnn.Dense(2))
    params = jax.vmap(lambda k: model.init(k, (-1, 9, 2), jnp.float64)[1])(jax.random.split(KEY, 3))
    x, y = normal(13, (5, 9, 2)), jnp.array([0, 1, 0, 1, 1])

    def grads(method):
        one = lambda p: fnn.grad(model, "softmax_cross_entropy", p, x, y, method=method)
        return jax.jit(jax.vmap(one))(params)
    manual, autodiff = grads("manual"), grads("autodiff")
    assert jax.tree.structure(manual) == jax.tree.structure(params)
    for g, r in zip(jax.tree.leaves(manual), jax.tree.leaves(autodiff)):
        assert g.shape[0] == 3 and fnn.relative_error(g, r) <= TOL_AUTODIFF
