"""fnn.MaxPool, AvgPool, GlobalAvgPool, Flatten, Reshape: forward, tie rule, backward vs jax.vjp and FD."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from conftest import normal, random_params
from fnn.check import TOL_AUTODIFF, check_gradients, check_layer
from fnn.errors import InputError

KEY = jax.random.key(0)
CHECK_KEY = jax.random.key(0, impl="rbg")    # check_layer's cotangent: rbg compiles faster than threefry

# id -> (layer, input shape, expected output shape): the window edge cases, 1-D and 2-D.
CASES = {
    "max-window1-length1": (fnn.MaxPool(1), (1, 1, 2), (1, 1, 2)),
    "max-window-equals-length": (fnn.MaxPool(5), (2, 5, 2), (2, 1, 2)),
    "max-stride-over-window": (fnn.MaxPool(2, stride=3), (2, 8, 2), (2, 3, 2)),        # gaps, leftover
    "max-overlapping": (fnn.MaxPool(3, stride=1), (2, 6, 2), (2, 4, 2)),
    "max-same-odd": (fnn.MaxPool(3, stride=2, padding="SAME"), (2, 7, 1), (2, 4, 1)),
    "max-same-even": (fnn.MaxPool(2, padding="SAME"), (1, 6, 2), (1, 3, 2)),
    "max-asymmetric-pad": (fnn.MaxPool(3, stride=2, padding=((2, 0),)), (2, 5, 2), (2, 3, 2)),
    "max-2d-nonsquare": (fnn.MaxPool((2, 3), stride=(1, 2), padding=((1, 0), (2, 1))), (2, 4, 5, 2),
                         (2, 4, 3, 2)),
    "max-2d-same": (fnn.MaxPool((3, 2), stride=(2, 3), padding="SAME"), (1, 5, 7, 2), (1, 3, 3, 2)),
    "avg-window1-length1": (fnn.AvgPool(1), (1, 1, 2), (1, 1, 2)),
    "avg-overlapping-pad": (fnn.AvgPool(3, stride=1, padding=1), (2, 5, 2), (2, 5, 2)),
    "avg-stride-over-window": (fnn.AvgPool(2, stride=3), (1, 8, 1), (1, 3, 1)),
    "avg-same-even": (fnn.AvgPool(4, stride=3, padding="SAME"), (2, 8, 2), (2, 3, 2)),
    "avg-include-pad": (fnn.AvgPool(3, stride=2, padding=((2, 1),), count_include_pad=True), (2, 6, 1),
                        (2, 4, 1)),
    "avg-2d-nonsquare": (fnn.AvgPool((2, 3), stride=(1, 2), padding=((1, 0), (2, 1))), (2, 4, 5, 2),
                         (2, 4, 3, 2)),
    "avg-2d-same-include-pad": (fnn.AvgPool((3, 2), padding="SAME", count_include_pad=True), (1, 5, 5, 2),
                                (1, 2, 3, 2)),
    "global-1d": (fnn.GlobalAvgPool(), (2, 5, 3), (2, 3)),
    "global-2d": (fnn.GlobalAvgPool(), (1, 3, 4, 2), (1, 2)),
    "flatten-2d": (fnn.Flatten(), (2, 3, 4, 2), (2, 24)),
    "flatten-flat": (fnn.Flatten(), (3, 5), (3, 5)),
    "reshape": (fnn.Reshape((4, 6)), (2, 3, 8), (2, 4, 6)),
    "reshape-inferred": (fnn.Reshape((-1, 2)), (1, 3, 2, 2), (1, 6, 2)),
}


def jitted(layer):
    """The layer with its forward and backward compiled whole: one program each, not one per operation."""
    return layer.replace(forward=jax.jit(layer.forward, static_argnames="train"),
                         backward=jax.jit(layer.backward))


@pytest.mark.parametrize("case", sorted(CASES))
def test_backward_matches_vjp_and_shapes(x64, case):
    layer, in_shape, out_shape = CASES[case]
    assert layer.init(KEY, (-1,) + in_shape[1:]) == ((-1,) + out_shape[1:], ())
    x = normal(1, in_shape)
    assert jax.eval_shape(layer.apply, (), x).shape == out_shape
    result = check_layer(jitted(layer), (), x, key=CHECK_KEY)
    assert result.ok() and result.max_error <= TOL_AUTODIFF, result


def windows(x, window, stride, pads, fill):
    """{output index: the values of its window} by loops, with padding `fill` (any rank)."""
    x = np.asarray(x)
    rank = x.ndim - 2
    xp = np.pad(x, ((0, 0),) + tuple(pads) + ((0, 0),), constant_values=fill)
    out = [(xp.shape[1 + a] - window[a]) // stride[a] + 1 for a in range(rank)]
    return {i: xp[(slice(None),) + tuple(slice(stride[a] * i[a], stride[a] * i[a] + window[a])
                                         for a in range(rank))] for i in np.ndindex(*out)}


@pytest.mark.parametrize("x_shape,window,stride,pads,padding", [
    ((2, 7, 2), (3,), (2,), ((2, 0),), ((2, 0),)),
    ((1, 5, 7, 2), (3, 2), (2, 3), ((1, 1), (0, 1)), "SAME"),              # SAME: the extra pad at the end
])
def test_forward_is_the_formula(x64, x_shape, window, stride, pads, padding):
    x = normal(2, x_shape)
    axes = tuple(range(1, len(x_shape) - 1))                               # a window's spatial axes
    real = windows(np.ones(x_shape), window, stride, pads, 0.0)              # 1 where an input is
    y = np.asarray(fnn.MaxPool(window, stride=stride, padding=padding).apply((), x))
    for i, w in windows(x, window, stride, pads, -np.inf).items():
        np.testing.assert_array_equal(y[(slice(None),) + i], w.max(axis=axes))
    for include in (False, True):
        layer = fnn.AvgPool(window, stride=stride, padding=padding, count_include_pad=include)
        y = np.asarray(layer.apply((), x))
        for i, w in windows(x, window, stride, pads, 0.0).items():
            count = math.prod(window) if include else real[i].sum(axis=axes)
            np.testing.assert_allclose(y[(slice(None),) + i], w.sum(axis=axes) / count, rtol=1e-13)


@pytest.mark.parametrize("layer", [fnn.AvgPool(2, padding="SAME"), fnn.MaxPool(2, padding="SAME")],
                         ids=lambda l: l.name)
def test_pools_of_a_padded_length_one_axis_in_a_large_batch(layer):
    # A length-1 axis padded to a window of 2, ~1,000 windows: lax.reduce_window sums these
    # wrongly on XLA's CPU backend (jaxlib 0.10), eagerly and under jit; AvgPool adds slices.
    x = normal(3, (900, 1, 5)).astype(np.float32)
    for apply in (layer.apply, jax.jit(layer.apply)):
        np.testing.assert_allclose(np.asarray(apply((), jnp.asarray(x))), x, rtol=1e-6)


def test_max_pool_pads_with_minus_infinity_and_avg_pool_counts_real_inputs():
    x = -jnp.arange(1.0, 5.0).reshape(1, 4, 1)                      # -1, -2, -3, -4: all below the 0 pad
    np.testing.assert_array_equal(fnn.MaxPool(2, padding=1).apply((), x).ravel(), [-1, -2, -4])
    ones = jnp.ones((1, 4, 1))
    np.testing.assert_allclose(fnn.AvgPool(3, stride=1, padding=1).apply((), ones).ravel(), 1.0)
    with_pad = fnn.AvgPool(3, stride=1, padding=1, count_include_pad=True)
    np.testing.assert_allclose(with_pad.apply((), ones).ravel(), [2 / 3, 1, 1, 2 / 3], rtol=1e-6)


# --------------------------------------------------------------------------- the max-pool tie rule

def max_pool_dx(layer, x):
    y, saved = layer.forward((), jnp.asarray(x, jnp.float32))
    return np.asarray(layer.backward((), saved, jnp.arange(1.0, y.size + 1).reshape(y.shape))[1])


def test_tied_maxima_give_the_whole_gradient_to_the_first_in_window_order():
    # windows of 3, stride 1: [1 3 3] [3 3 0] [3 0 3] [0 3 2]; dy = 1, 2, 3, 4
    x = np.array([1.0, 3, 3, 0, 3, 2]).reshape(1, 6, 1)
    np.testing.assert_array_equal(max_pool_dx(fnn.MaxPool(3, stride=1), x).ravel(),
                                  [0, 1 + 2, 3, 0, 4, 0])            # overlapping windows add
    # 2-D: row-major order over the window's offsets, so (0, 1) comes before (1, 0)
    x = np.array([[1.0, 5], [5, 5]]).reshape(1, 2, 2, 1)
    np.testing.assert_array_equal(max_pool_dx(fnn.MaxPool(2), x).reshape(2, 2), [[0, 1], [0, 0]])
    x = np.full((1, 2, 4, 1), 7.0)                                     # all tied: each window's top-left
    np.testing.assert_array_equal(max_pool_dx(fnn.MaxPool(2), x).reshape(2, 4), [[1, 0, 2, 0], [0, 0, 0, 0]])


def test_a_padded_window_never_sends_gradient_to_its_padding():
    x = np.array([-5.0, -5, -1]).reshape(1, 3, 1)                    # pad (2, 0): window 0 is [pad pad -5]
    dx = max_pool_dx(fnn.MaxPool(3, stride=2, padding=((2, 0),)), x).ravel()
    np.testing.assert_array_equal(dx, [1, 0, 2])                     # [-5 -5 -1] -> -1 gets dy 2


# --------------------------------------------------------------------------- finite differences

def test_gradients_match_finite_differences(x64):
    model = fnn.serial(fnn.Conv(3, 2, padding="SAME"), fnn.Activation("tanh"),
                       fnn.MaxPool(3, stride=2, padding=1),                  # (N, 4, 3), overlapping
                       fnn.AvgPool(2, stride=1, padding=((1, 0),)),          # (N, 4, 3)
                       fnn.Reshape((2, 2, 3)), fnn.AvgPool((2, 1), padding="SAME", count_include_pad=True),
                       fnn.GlobalAvgPool(), fnn.Dense(3))
    in_shape = (3, 7, 2)
    assert model.init(KEY, (-1, 7, 2))[0] == (-1, 3)
    params = random_params(model, in_shape, 3)
    x = normal(4, in_shape)
    result = check_gradients(model, "softmax_cross_entropy", params, x, jnp.array([0, 2, 1]))
    assert result.ok(), result
    assert len(result.leaves) == 4


# --------------------------------------------------------------------------- wrong backwards are caught

def test_check_layer_catches_wrong_pool_backwards(x64):
    x = normal(5, (2, 6, 2))
    max_pool = fnn.MaxPool(2, stride=1)

    def to_window_start(params, saved, dy):                          # dy to each window's first element
        x, _ = saved
        dx = jnp.zeros_like(x).at[:, :dy.shape[1]].add(dy)
        return (), dx
    assert not check_layer(max_pool.replace(backward=to_window_start), (), x, key=CHECK_KEY).ok()

    avg_pool = fnn.AvgPool(3, stride=2, padding=1)                    # divides border windows by 2

    def dividing_by_the_window_size(params, saved, dy):
        return fnn.AvgPool(3, stride=2, padding=1, count_include_pad=True).backward(params, saved, dy)
    result = check_layer(avg_pool.replace(backward=dividing_by_the_window_size), (), x, key=CHECK_KEY)
    assert not result.ok() and result.dx > 1e-3


# --------------------------------------------------------------------------- settings and errors

@pytest.mark.parametrize("make_layer,value", [
    (lambda: fnn.MaxPool(0), "0"),
    (lambda: fnn.MaxPool((2, 0)), "(2, 0)"),
    (lambda: fnn.MaxPool(2, stride=0), "0"),
    (lambda: fnn.AvgPool(2, stride=-1), "-1"),
    (lambda: fnn.AvgPool(2, padding="same"), "'same'"),
    (lambda: fnn.MaxPool(2, padding=-1), "-1"),
    (lambda: fnn.AvgPool(2, count_include_pad=1), "1"),
    (lambda: fnn.Reshape((0, 3)), "(0, 3)"),
    (lambda: fnn.Reshape((-1, -1)), "(-1, -1)"),
    (lambda: fnn.Reshape(12), "12"),
])
def test_bad_settings_are_named(make_layer, value):
    with pytest.raises((InputError, fnn.InputTypeError)) as info:
        make_layer()
    assert value in str(info.value)


@pytest.mark.parametrize("layer,input_shape,value", [
    (fnn.MaxPool(2, padding=2), (-1, 6, 1), "padding (2, 2)"),              # a window of padding only
    (fnn.AvgPool((3, 2), padding=((0, 0), (0, 2))), (-1, 4, 4, 1), "padding (0, 2)"),
    (fnn.MaxPool(5), (-1, 4, 1), "has 4 there"),                            # window longer than the input
    (fnn.AvgPool((2, 2)), (-1, 4, 1), "(2, 2)"),                            # 2-D window, 1-D input
    (fnn.MaxPool(2), (-1, 4), "(-1, 4)"),
    (fnn.GlobalAvgPool(), (-1, 4), "(-1, 4)"),
    (fnn.Flatten(), (-1,), "(-1,)"),
    (fnn.Reshape((5, 2)), (-1, 3, 3), "9 values"),
    (fnn.Reshape((-1, 2)), (-1, 3, 3), "a multiple of 2"),
])
def test_bad_input_shapes_are_named_at_init(layer, input_shape, value):
    with pytest.raises(InputError) as info:
        layer.init(KEY, input_shape)
    assert value in str(info.value) and layer.name in str(info.value)


def test_names_kinds_and_flatten_order():
    assert fnn.MaxPool(2).name == "MaxPool(2)"
    assert (fnn.AvgPool((2, 2), stride=1, padding="SAME", count_include_pad=True).name
            == "AvgPool((2, 2), stride=1, padding='SAME', count_include_pad=True)")
    assert {fnn.MaxPool(2).kind, fnn.AvgPool(2).kind, fnn.GlobalAvgPool().kind} == {"pool"}
    assert (fnn.Flatten().kind, fnn.Reshape((2,)).kind) == ("flatten", "reshape")
    x = np.arange(24.0).reshape(2, 3, 2, 2)
    np.testing.assert_array_equal(fnn.Flatten().apply((), jnp.asarray(x)), x.reshape(2, 12))
    with pytest.raises(InputError, match=r"Reshape\(\(5, 2\)\).*12 values"):
        fnn.Reshape((5, 2)).apply((), jnp.zeros((2, 3, 4)))
