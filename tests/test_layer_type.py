"""The Layer type: a static pytree that passes through jit, a readable repr, attributes, fnn.summary."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn

MODEL = fnn.mlp([3, 5, 2], "relu", dropout=0.5)


def test_a_model_is_a_jit_argument_and_compiles_once_per_model():
    _, params = MODEL.init(jax.random.key(0), (-1, 3))
    x = jnp.ones((4, 3))
    traces = []

    @jax.jit
    def apply(model, params, x):
        traces.append(model.name)
        return model.apply(params, x)

    np.testing.assert_array_equal(apply(MODEL, params, x), MODEL.apply(params, x))
    apply(MODEL, params, x + 1)
    assert traces == [MODEL.name]                          # static: same model, no retrace
    other = fnn.mlp([3, 5, 2], "relu", dropout=0.5)        # another model object: its own program
    _, p2 = other.init(jax.random.key(1), (-1, 3))
    apply(other, p2, x)
    assert len(traces) == 2
    assert jax.tree.leaves(MODEL) == []                    # no array leaves to trace
    grads = jax.grad(lambda p, m: jnp.sum(m.apply(p, x)))(params, MODEL)   # a model beside params
    assert jax.tree.structure(grads) == jax.tree.structure(params)


def test_repr_is_the_layer_name_not_its_functions():
    assert repr(fnn.Dense(4)) == "Layer(Dense(4))"
    assert repr(MODEL) == "Layer(serial(Dense(5), relu, Dropout(0.5), Dense(2)))"
    assert "function" not in repr(MODEL)


def test_layers_say_what_they_are():
    dense, act, drop, out = MODEL.layers
    assert (MODEL.kind, dense.kind, act.kind, drop.kind) == ("serial", "dense", "activation", "dropout")
    assert MODEL.stochastic and drop.stochastic and not dense.stochastic
    assert not fnn.mlp([3, 5, 2]).stochastic and not fnn.Dropout(0.0).stochastic
    assert act.activation is fnn.get_activation("relu") and dense.activation is None
    wrong = dense.replace(backward=lambda params, saved, dy: (params, dy))
    assert wrong.forward is dense.forward and wrong.backward is not dense.backward


@pytest.mark.parametrize("activation, init", [("relu", "he"), ("gelu", "he"), ("tanh", "glorot"),
                                              ("sigmoid", "glorot")])
def test_mlp_initialization_follows_the_activation(activation, init):
    # He-uniform draws W from U(±√(6/fan_in)), Glorot from U(±√(6/(fan_in + fan_out))).
    fan_in, fan_out = 400, 300
    _, params = fnn.mlp([fan_in, fan_out, 1], activation).init(jax.random.key(0), (-1, fan_in))
    limit = np.sqrt(6 / fan_in) if init == "he" else np.sqrt(6 / (fan_in + fan_out))
    w = np.abs(np.asarray(params[0]["W"]))
    assert w.max() <= limit and w.max() > 0.99 * limit


def test_summary_lists_layers_shapes_and_parameter_counts():
    s = fnn.summary(fnn.serial(fnn.mlp([40, 100, 10]), fnn.Activation("softmax")), (-1, 40))
    rows = [(r.depth, r.name, r.output_shape, r.params) for r in s.rows]
    assert rows == [(0, "serial", (-1, 10), 5110),
                    (1, "serial", (-1, 10), 5110),
                    (2, "Dense(100)", (-1, 100), 4100),
                    (2, "relu", (-1, 100), 0),
                    (2, "Dense(10)", (-1, 10), 1010),
                    (1, "softmax", (-1, 10), 0)]
    assert (s.input_shape, s.output_shape, s.total_params) == ((-1, 40), (-1, 10), 5110)
    text = str(s)
    assert "Dense(100)" in text and "4,100" in text and "5,110 parameters" in text
    with pytest.raises(TypeError, match="summary expects an fnn Layer"):
        fnn.summary("mlp", (-1, 40))
    with pytest.raises(ValueError, match="width"):
        fnn.summary(fnn.Dense(3, in_features=4), (-1, 5))
