"""Every bad input at a public entry gets a typed exception that names the value and what was expected."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn import data, optim
from fnn.train import evaluate, fit, predict

MODEL = fnn.mlp([2, 4, 3], "relu")
_, PARAMS = MODEL.init(jax.random.key(0), (-1, 2))
X = jnp.array([[0., 0.], [0., 1.], [1., 0.], [1., 1.]])
Y = jnp.array([0, 1, 2, 1], jnp.int32)
CE = "softmax_cross_entropy"


def _fit(**kw):
    args = dict(model=MODEL, loss=CE, optimizer=optim.sgd(0.1), params=PARAMS, x=X, y=Y,
                key=jax.random.key(0), epochs=1, batch_size=2, progress=False)
    args.update(kw)
    return fit(args.pop("model"), args.pop("loss"), args.pop("optimizer"), args.pop("params"),
               args.pop("x"), args.pop("y"), **args)


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


# (what, call, exception type, text the message must contain)
CASES = [
    ("input of the wrong width", lambda: predict(MODEL, PARAMS, jnp.ones((4, 3))),
     ValueError, "has width 3, expected 2"),
    ("wrong width inside jit", lambda: jax.jit(MODEL.apply)(PARAMS, jnp.ones((4, 3))),
     ValueError, "has width 3, expected 2"),
    ("x and y of different lengths", lambda: _fit(y=Y[:3]),
     ValueError, "x has 4 examples (shape (4, 2)) but y has 3"),
    ("label out of range", lambda: evaluate(MODEL, CE, PARAMS, X, jnp.array([0, 1, 3, 1])),
     ValueError, "label 3 is out of range for 3 classes"),
    ("negative label", lambda: _fit(y=jnp.array([0, -1, 2, 1])),
     ValueError, "label -1 is out of range for 3 classes"),
    ("float labels for softmax cross-entropy", lambda: _fit(y=Y.astype(jnp.float32)),
     TypeError, "expected integer class labels of shape (4,)"),
    ("binary target outside [0, 1]",
     lambda: fnn.value_and_grad(fnn.mlp([2, 1]), "binary_cross_entropy",
                                fnn.mlp([2, 1]).init(jax.random.key(0), (-1, 2))[1], X, jnp.full((4, 1), 2.0)),
     ValueError, "target 2 is outside [0, 1]"),
    ("NaN in the inputs", lambda: _fit(x=X.at[2, 0].set(jnp.nan)),
     ValueError, "x has NaN or inf in 1 example(s), the first at index 2"),
    ("inf in the validation data", lambda: _fit(validation_data=(X.at[1, 1].set(jnp.inf), Y)),
     ValueError, "validation_data: x has NaN or inf"),
    ("empty dataset", lambda: _fit(x=jnp.zeros((0, 2)), y=jnp.zeros((0,), jnp.int32)),
     ValueError, "x is empty"),
    ("batch larger than the data", lambda: _fit(batch_size=10),
     ValueError, "batch_size=10 must be between 1 and the 4 training examples"),
    ("zero epochs", lambda: _fit(epochs=0), ValueError, "epochs must be a positive integer, got 0"),
    ("negative steps", lambda: _fit(epochs=None, steps=-5), ValueError, "steps must be a positive integer, got -5"),
    ("non-positive learning rate", lambda: optim.adam(0.0), ValueError, "0"),
    ("unknown activation", lambda: fnn.mlp([2, 3], activation="relu6"),
     ValueError, "unknown activation 'relu6'; expected one of gelu"),
    ("unknown optimizer", lambda: optim.get_optimizer("lion", learning_rate=0.1),
     ValueError, "adam"),
    ("unknown loss", lambda: fnn.get_loss("hinge"), ValueError, "unknown loss 'hinge'; expected one of"),
    ("unknown dataset", lambda: data.get_dataset("cifar10"), ValueError, "unknown dataset 'cifar10'"),
    ("random dataset without a key", lambda: data.get_dataset("spirals"),
     TypeError, "get_dataset('spirals', key=jax.random.key(0))"),
    ("an int seed where a key is expected", lambda: data.spirals(0),
     TypeError, "spirals: key must be a PRNG key such as jax.random.key(0), got 0"),
    ("unknown initializer", lambda: fnn.Dense(3, W_init="orthogonal"), ValueError, "unknown initializer"),
    ("dropout rate 1", lambda: fnn.Dropout(1.0), ValueError, "Dropout rate (the drop probability) must be a finite number in [0, 1), got 1.0"),
    ("dropout without a key in training",
     lambda: fnn.Dropout(0.5).forward((), X, train=True), ValueError, "key=jax.random.key(0)"),
    ("params of another model", lambda: _fit(params=fnn.mlp([2, 5, 3]).init(jax.random.key(0), (-1, 2))[1]),
     ValueError, "params do not match the model"),
    ("params with a layer missing", lambda: fnn.value_and_grad(MODEL, CE, PARAMS[:2], X, Y),
     ValueError, "params do not match the model"),
    ("bad mlp sizes", lambda: fnn.mlp([2, 0, 1]), ValueError, "mlp sizes (2, 0, 1): each width must be a positive integer, got 0"),
    ("unknown gradient method", lambda: fnn.value_and_grad(MODEL, CE, PARAMS, X, Y, method="numeric"),
     ValueError, "unknown gradient method 'numeric'"),
]


@pytest.mark.parametrize("what, call, exc, text", CASES, ids=[c[0] for c in CASES])
def test_bad_input_raises_typed_error_naming_it(what, call, exc, text):
    with pytest.raises(exc) as info:
        call()
    assert text in str(info.value), f"{what}: {info.value}"


@pytest.mark.parametrize("name, text, message", [
    ("missing.csv", None, "missing.csv"),
    ("empty.csv", "", "empty"),
    ("ragged.csv", "1,2,0\n3,4\n", "line 2"),
    ("words.csv", "1,2,0\n3,abc,1\n", "abc"),
])
def test_bad_data_files(tmp_path, name, text, message):
    path = tmp_path / name if text is None else _write(tmp_path, name, text)
    with pytest.raises(data.DataFileError) as info:
        data.load_file(path)
    assert message in str(info.value)


def test_checks_are_free_inside_jit():
    """A jitted value_and_grad traces the checks once; later calls do not re-run them."""
    f = jax.jit(lambda p, x, y: fnn.value_and_grad(MODEL, CE, p, x, y))
    f(PARAMS, X, Y)
    f(PARAMS, X + 1, Y)
    assert f._cache_size() == 1


def test_valid_inputs_pass_unchanged():
    result = _fit(epochs=2)
    assert result.steps == 4
    assert np.isfinite(evaluate(MODEL, CE, result.params, X, Y)["loss"])
