"""fnn.initializers: shapes, dtypes and empirical scale against the Glorot/He/LeCun formulas."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn import initializers

FAN_IN, FAN_OUT = 300, 200  # 60,000 samples: the empirical std is within ~0.5% of the truth
# name -> (distribution, std as a function of (fan_in, fan_out))
FORMULAS = {
    "glorot_uniform": ("uniform", lambda i, o: math.sqrt(6 / (i + o))),
    "glorot_normal": ("normal", lambda i, o: math.sqrt(2 / (i + o))),
    "he_uniform": ("uniform", lambda i, o: math.sqrt(6 / i)),
    "he_normal": ("normal", lambda i, o: math.sqrt(2 / i)),
    "lecun_uniform": ("uniform", lambda i, o: math.sqrt(3 / i)),
    "lecun_normal": ("normal", lambda i, o: math.sqrt(1 / i)),
    "pytorch_uniform": ("uniform", lambda i, o: math.sqrt(1 / i)),
}
ALIASES = {"xavier_uniform": "glorot_uniform", "xavier_normal": "glorot_normal",
           "kaiming_uniform": "he_uniform", "kaiming_normal": "he_normal"}


def expected_std(name, fan_in, fan_out):
    """The standard deviation the formula implies (a uniform U(−a, a) has std a/√3)."""
    kind, scale = FORMULAS[name]
    return scale(fan_in, fan_out) / math.sqrt(3) if kind == "uniform" else scale(fan_in, fan_out)


@pytest.fixture(scope="module")
def samples():
    key = jax.random.key(0)
    return {name: np.asarray(initializers.get_initializer(name)(key, (FAN_IN, FAN_OUT)))
            for name in FORMULAS}


def test_every_registered_initializer_is_covered():
    assert set(initializers.INITIALIZERS) == set(FORMULAS) | set(ALIASES) | {"zeros"}


@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_shape_dtype_and_empirical_std_match_formula(samples, name):
    W = samples[name]
    assert W.shape == (FAN_IN, FAN_OUT) and W.dtype == np.float32
    assert abs(W.mean()) < 0.02 * expected_std(name, FAN_IN, FAN_OUT)
    assert W.std() == pytest.approx(expected_std(name, FAN_IN, FAN_OUT), rel=0.02)


@pytest.mark.parametrize("name", [n for n in sorted(FORMULAS) if FORMULAS[n][0] == "uniform"])
def test_uniform_initializers_fill_their_limits(samples, name):
    W = samples[name]
    limit = FORMULAS[name][1](FAN_IN, FAN_OUT)
    assert np.abs(W).max() <= limit
    assert np.abs(W).max() > 0.999 * limit
    # Flat between the limits: each fifth of [−a, a] holds a fifth of the samples.
    counts, _ = np.histogram(W, bins=5, range=(-limit, limit))
    np.testing.assert_allclose(counts / W.size, 0.2, atol=0.01)


@pytest.mark.parametrize("name", [n for n in sorted(FORMULAS) if FORMULAS[n][0] == "normal"])
def test_normal_initializers_are_gaussian(samples, name):
    W = samples[name] / expected_std(name, FAN_IN, FAN_OUT)
    assert np.mean(np.abs(W) < 1) == pytest.approx(0.6827, abs=0.01)
    assert np.abs(W).max() > 3  # not truncated at 2σ


@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_fan_in_and_fan_out_are_read_from_the_shape(name):
    """A (fan_in, fan_out) weight, not (fan_out, fan_in): swapping them changes He/LeCun."""
    key = jax.random.key(1)
    init = initializers.get_initializer(name)
    tall, wide = np.asarray(init(key, (800, 50))), np.asarray(init(key, (50, 800)))
    assert tall.std() == pytest.approx(expected_std(name, 800, 50), rel=0.03)
    assert wide.std() == pytest.approx(expected_std(name, 50, 800), rel=0.03)


@pytest.mark.parametrize("shape,fan_in,fan_out", [
    ((3, 8, 16), 3 * 8, 3 * 16),                  # 1-D kernel (k, C_in/groups, C_out)
    ((3, 5, 8, 16), 15 * 8, 15 * 16),             # 2-D kernel (kh, kw, C_in/groups, C_out)
    ((3, 3, 1, 32), 9, 9 * 32),                   # depthwise: one input channel per output
], ids=str)
@pytest.mark.parametrize("name", ["he_uniform", "glorot_uniform", "pytorch_uniform"])
def test_kernel_fans_multiply_by_the_receptive_field(name, shape, fan_in, fan_out):
    W = np.asarray(initializers.get_initializer(name)(jax.random.key(3), shape))
    limit = FORMULAS[name][1](fan_in, fan_out)
    assert W.shape == shape
    assert np.abs(W).max() <= limit and np.abs(W).max() > 0.97 * limit


def test_uniform_of_a_limit():
    b = np.asarray(initializers.uniform(0.25)(jax.random.key(4), (3000,)))
    assert np.abs(b).max() <= 0.25 and np.abs(b).max() > 0.99 * 0.25
    assert initializers.uniform(0.25).__name__ == "uniform(0.25)"
    for bad in (0, -1.0, float("inf"), "0.1"):
        with pytest.raises(ValueError, match=r"uniform\(limit\)") as info:
            initializers.uniform(bad)
        assert repr(bad) in str(info.value)


def test_vector_shape_uses_its_length_for_both_fans():
    b = np.asarray(initializers.glorot_uniform(jax.random.key(2), (5000,)))
    limit = math.sqrt(6 / (5000 + 5000))
    assert b.shape == (5000,) and np.abs(b).max() <= limit and np.abs(b).max() > 0.99 * limit


@pytest.mark.parametrize("name", sorted(FORMULAS) + ["zeros"])  # aliases are the same functions
def test_dtype_is_respected(x64, name):
    init = initializers.get_initializer(name)
    for dtype in (jnp.float64, jnp.float16, jnp.bfloat16):
        assert init(jax.random.key(0), (4, 3), dtype).dtype == dtype


def test_zeros():
    W = initializers.zeros(jax.random.key(0), (3, 4))
    assert W.shape == (3, 4) and W.dtype == jnp.float32
    assert not np.any(np.asarray(W))


@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_deterministic_for_a_key_and_different_across_keys(name):
    init = initializers.get_initializer(name)
    a = init(jax.random.key(7), (6, 5))
    b = init(jax.random.key(7), (6, 5))
    c = init(jax.random.key(8), (6, 5))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_aliases_are_the_same_functions():
    for alias, name in ALIASES.items():
        assert initializers.get_initializer(alias) is initializers.get_initializer(name)
        assert getattr(initializers, alias) is getattr(initializers, name)


def test_callable_passes_through():
    def ones(key, shape, dtype=jnp.float32):
        del key
        return jnp.ones(shape, dtype)
    assert fnn.get_initializer(ones) is ones


@pytest.mark.parametrize("bad", ["glorot", "He_Normal", "", 1.0])
def test_unknown_name_raises_listing_valid_names(bad):
    with pytest.raises(ValueError) as info:
        fnn.get_initializer(bad)
    message = str(info.value)
    assert repr(bad) in message
    for name in initializers.INITIALIZERS:
        assert name in message
    with pytest.raises(ValueError, match="unknown initializer"):
        fnn.Dense(3, W_init=bad)


# --------------------------------------------------------------------------- per layer

@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_dense_uses_the_selected_weight_initializer(name):
    layer = fnn.Dense(FAN_OUT, W_init=name)
    _, params = layer.init(jax.random.key(3), (-1, FAN_IN))
    W = np.asarray(params["W"])
    assert W.shape == (FAN_IN, FAN_OUT)
    assert W.std() == pytest.approx(expected_std(name, FAN_IN, FAN_OUT), rel=0.02)
    assert not np.any(np.asarray(params["b"]))  # b_init defaults to zeros


def test_dense_initializers_for_weights_and_bias_are_separate():
    def halves(key, shape, dtype):
        del key
        return jnp.full(shape, 0.5, dtype)
    layer = fnn.Dense(4, W_init="zeros", b_init=halves)
    _, params = layer.init(jax.random.key(4), (-1, 3), dtype=jnp.bfloat16)
    assert params["W"].dtype == params["b"].dtype == jnp.bfloat16
    assert not np.any(np.asarray(params["W"], np.float32))
    np.testing.assert_array_equal(np.asarray(params["b"], np.float32), 0.5)


def test_dense_init_is_deterministic_and_key_dependent():
    layer = fnn.Dense(5, W_init="he_normal")
    p1 = layer.init(jax.random.key(5), (-1, 4))[1]
    p2 = layer.init(jax.random.key(5), (-1, 4))[1]
    p3 = layer.init(jax.random.key(6), (-1, 4))[1]
    np.testing.assert_array_equal(p1["W"], p2["W"])
    assert not np.allclose(p1["W"], p3["W"])
