"""examples.graph.backprop: hand-written local derivatives on a traced graph, checked against jax.grad in float64."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from examples.graph import GraphResult, Node, SUPPORTED_PRIMITIVES, backprop


def _jax_grads(fn, args):
    return jax.grad(fn, argnums=tuple(range(len(args))))(*args)


def _check(fn, *args, rtol=1e-12, atol=1e-12):
    args = tuple(jnp.asarray(a, jnp.float64) for a in args)
    r = backprop(fn, *args)
    np.testing.assert_allclose(r.value, fn(*args), rtol=rtol, atol=atol)
    for got, want in zip(r.grads, _jax_grads(fn, args)):
        assert got.dtype == jnp.float64
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)
    return r


SCALAR_FNS = {
    "seed 002 graph": (lambda a, b, c: (a + b) * (b - c), (2.0, 3.0, 1.0)),
    "fan-out b three times": (lambda a, b: b * b + b / a, (1.5, -0.7)),
    "exp log div neg": (lambda a, b: -jnp.exp(a) / jnp.log(b), (0.3, 2.5)),
    "tanh sigmoid": (lambda a, b: jnp.tanh(a * b) + jax.nn.sigmoid(a - b), (0.4, -1.2)),
    "sin cos": (lambda a, b: jnp.sin(a) * jnp.cos(b) + jnp.cos(a * a), (0.9, 2.1)),
    "integer_pow": (lambda a: a ** 3 + a ** -2 + a ** 1, (1.3,)),
    "pow both sides": (lambda a, b: a ** b, (1.7, 2.3)),
    "sqrt rsqrt square abs": (lambda a: jnp.sqrt(a) + jax.lax.rsqrt(a) + jnp.square(a) + jnp.abs(-a),
                              (2.2,)),
    "log1p expm1": (lambda a: jnp.log1p(a) * jnp.expm1(a), (0.6,)),
    "max min": (lambda a, b: jnp.maximum(a, b) * jnp.minimum(a, b * b), (0.5, -1.5)),
    "python constants": (lambda a: 2.0 * a + 1.0 - a / 3.0, (4.0,)),
    "relu (inlined custom_jvp)": (lambda a, b: jax.nn.relu(a) + jax.nn.relu(b), (0.8, -0.3)),
    "where (inlined jit, select_n)": (lambda a, b: jnp.where(a > b, a * b, a + b), (0.2, 0.9)),
    "deep chain": (lambda a: jnp.tanh(jnp.tanh(jnp.tanh(a * 3.0) * 2.0) + a), (0.35,)),
}


@pytest.mark.parametrize("name", sorted(SCALAR_FNS))
def test_matches_jax_grad(x64, name):
    fn, args = SCALAR_FNS[name]
    _check(fn, *args)


def test_seed_002_graph_nodes(x64):
    """y = (a + b)(b − c) at (2, 3, 1): d = 5, e = 2, y = 10; ∂y/∂(a, b, c) = (e, e + d, −d)."""
    r = backprop(lambda a, b, c: (a + b) * (b - c), 2.0, 3.0, 1.0, output_name="y")
    assert isinstance(r, GraphResult) and all(isinstance(n, Node) for n in r.nodes)
    got = [(n.name, n.op, n.inputs, float(n.value), float(n.grad)) for n in r.nodes]
    assert got == [
        ("a", "input", (), 2.0, 2.0),
        ("b", "input", (), 3.0, 7.0),
        ("c", "input", (), 1.0, -5.0),
        ("d", "add", ("a", "b"), 5.0, 2.0),
        ("e", "sub", ("b", "c"), 2.0, 5.0),
        ("y", "mul", ("d", "e"), 10.0, 1.0),
    ]
    assert r.output == "y" and float(r.value) == 10.0
    assert [float(g) for g in r.grads] == [2.0, 7.0, -5.0]
    assert r.node("d").inputs == ("a", "b")


def test_fan_out_accumulates(x64):
    """f = b·b: each use of b contributes b, so ∂f/∂b = 2b; a lost path would give b."""
    r = backprop(lambda b: b * b, 3.0)
    assert float(r.grads[0]) == 6.0
    r = backprop(lambda a, b: (a + b) * b * b, 1.0, 2.0)   # ∂/∂b = b² + 2b(a + b) = 16
    assert float(r.grads[1]) == 16.0


def test_finite_differences(x64):
    fn = lambda a, b: jnp.tanh(a * b) * jnp.exp(-b) + (a - b) ** 2
    a, b, h = 0.7, -0.4, 1e-6
    r = backprop(fn, a, b)
    fd_a = (fn(a + h, b) - fn(a - h, b)) / (2 * h)
    fd_b = (fn(a, b + h) - fn(a, b - h)) / (2 * h)
    np.testing.assert_allclose([r.grads[0], r.grads[1]], [fd_a, fd_b], rtol=1e-7)


def test_max_tie_splits_like_jax(x64):
    r = _check(lambda a, b: jnp.maximum(a, b), 1.0, 1.0)
    assert [float(g) for g in r.grads] == [0.5, 0.5]


def test_elementwise_arrays(x64):
    """Array inputs: grads are the gradients of the output's sum (elementwise derivatives)."""
    x = jnp.linspace(-1.5, 2.0, 7)
    a = jnp.asarray(0.8)
    fn = lambda a, x: a * jnp.tanh(x) + 2.0 * x ** 2 + jnp.where(x > 0, x, -x * a)
    r = backprop(fn, a, x)
    assert r.value.shape == (7,) and r.grads[1].shape == (7,) and r.grads[0].shape == ()
    want = jax.grad(lambda a, x: jnp.sum(fn(a, x)), argnums=(0, 1))(a, x)
    np.testing.assert_allclose(r.grads[0], want[0], rtol=1e-12)
    np.testing.assert_allclose(r.grads[1], want[1], rtol=1e-12)


def test_reduce_sum_of_array(x64):
    x = jnp.array([0.5, -1.0, 2.0])
    _check(lambda x: jnp.sum(x ** 2 * jnp.sin(x)), x)


def test_unused_input_and_constant_output(x64):
    r = backprop(lambda a, b: a * 2.0, 1.0, 5.0)
    assert float(r.grads[1]) == 0.0 and float(r.grads[0]) == 2.0
    r = backprop(lambda a: a, 3.0)
    assert float(r.value) == 3.0 and float(r.grads[0]) == 1.0 and r.output == "a"


def test_float32_inputs_keep_dtype():
    r = backprop(lambda a, b: a * b, 2.0, 3.0)
    assert r.grads[0].dtype == jnp.float32 and float(r.grads[0]) == 3.0


def test_unsupported_primitive_is_named():
    with pytest.raises(NotImplementedError, match="'erf'"):
        backprop(lambda a: jax.lax.erf(a), 0.5)
    assert "mul" in SUPPORTED_PRIMITIVES and "erf" not in SUPPORTED_PRIMITIVES


def test_bad_input():
    with pytest.raises(TypeError, match="callable"):
        backprop(3.0, 1.0)
    with pytest.raises(TypeError, match="int32"):
        backprop(lambda a: a * 2, jnp.array([1, 2], jnp.int32))
    with pytest.raises(TypeError, match="bool"):
        backprop(lambda a: a, True)
    with pytest.raises(ValueError, match="2 outputs"):
        backprop(lambda a: (a, a), 1.0)
    with pytest.raises(ValueError, match="at least one argument"):
        backprop(lambda: 1.0)
    with pytest.raises(ValueError, match="'a'"):
        backprop(lambda a, b: a * b, 1.0, 2.0, output_name="a")
    with pytest.raises(KeyError, match="'z'"):
        backprop(lambda a, b: a * b, 1.0, 2.0).node("z")
