"""Bad input at a public entry is a typed fnn error naming the value and what was expected.

Each of these used to surface as a raw JAX or Python error (a TypeError from
jax.random, an AttributeError, an OverflowError, a json TypeError), or not at all.
"""
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn import checkpoint, optim
from fnn.checkpoint import CheckpointError
from fnn.errors import FnnError, InputError, InputTypeError
from fnn.train import init_state

MODEL = fnn.mlp([3, 4, 2], "tanh")
PARAMS = MODEL.init(jax.random.key(0), (-1, 3))[1]
X = jax.random.normal(jax.random.key(1), (16, 3))
Y = jax.random.randint(jax.random.key(2), (16,), 0, 2)
OPT = optim.sgd(0.1)
KEY_MESSAGE = "must be a PRNG key such as jax.random.key(0), got "


def _fit(model=MODEL, optimizer=OPT, x=X, y=Y, **kw):
    kw = {"key": jax.random.key(3), "steps": 2, "batch_size": 4, "progress": False, **kw}
    return fnn.fit(model, "softmax_cross_entropy", optimizer, PARAMS, x, y, **kw)


def _named(value):
    return re.escape(repr(value))


# ---- PRNG keys ----

BAD_KEYS = [None, 0, np.uint32(5), jax.random.split(jax.random.key(0), 2), jnp.zeros(3, jnp.uint32)]
BAD_KEY_TEXT = [r"None", r"0", r"np\.uint32\(5\)", r"an array of dtype key<fry> and shape \(2,\)",
                r"an array of dtype uint32 and shape \(3,\)"]


@pytest.mark.parametrize("key, text", zip(BAD_KEYS, BAD_KEY_TEXT))
def test_fit_names_a_key_that_is_not_a_prng_key(key, text):
    with pytest.raises(InputTypeError, match=re.escape("fit: key " + KEY_MESSAGE) + text):
        _fit(key=key)


@pytest.mark.parametrize("layer", [fnn.Dense(3), fnn.Dropout(0.5), fnn.Activation("relu"), MODEL],
                         ids=lambda l: l.name)
@pytest.mark.parametrize("key, text", zip(BAD_KEYS[:2], BAD_KEY_TEXT[:2]))
def test_layer_init_names_a_key_that_is_not_a_prng_key(layer, key, text):
    with pytest.raises(InputTypeError, match=re.escape(f"{layer.name}: init(key, input_shape): key "
                                                       + KEY_MESSAGE) + text):
        layer.init(key, (-1, 3))


def test_forward_names_a_key_that_is_not_a_prng_key():
    model = fnn.serial(fnn.Dense(4), fnn.Dropout(0.5))
    _, params = model.init(jax.random.key(0), (-1, 3))
    with pytest.raises(InputTypeError, match=re.escape(f"{model.name}: forward key " + KEY_MESSAGE) + "0"):
        model.forward(params, X, key=0, train=True)
    with pytest.raises(InputError, match=r"Dropout\(0.5\) is stochastic in training and needs a PRNG key"):
        fnn.Dropout(0.5).forward((), X, train=True)                    # no key: the message shows the call
    with pytest.raises(InputTypeError, match=re.escape(KEY_MESSAGE) + "1"):
        fnn.value_and_grad(MODEL, "softmax_cross_entropy", PARAMS, X, Y, key=1)


def test_keys_inside_jit_and_vmap_still_pass():
    shapes = jax.eval_shape(lambda k: MODEL.init(k, (-1, 3))[1], jax.random.key(0))
    assert jax.tree.map(lambda s: s.shape, shapes) == jax.tree.map(jnp.shape, PARAMS)
    keys = jax.random.split(jax.random.key(0), 3)
    stacked = jax.vmap(lambda k: MODEL.init(k, (-1, 3))[1])(keys)
    assert stacked[0]["W"].shape == (3, 3, 4)
    raw = jax.random.PRNGKey(0)                                       # a raw uint32[2] key
    assert MODEL.init(raw, (-1, 3))[0] == (-1, 2)


def test_get_dataset_and_check_layer_name_a_bad_key():
    with pytest.raises(InputTypeError, match=re.escape("get_dataset: key " + KEY_MESSAGE) + "0"):
        fnn.get_dataset("spirals", key=0)
    with pytest.raises(InputTypeError, match=r"get_dataset\('moons'\) draws random points and needs a PRNG key"):
        fnn.get_dataset("moons")
    dense = fnn.Dense(2)
    with pytest.raises(InputTypeError, match=re.escape("key " + KEY_MESSAGE) + "None"):
        fnn.check_layer(dense, dense.init(jax.random.key(0), (-1, 3))[1], X, key=None)


# ---- fit settings ----

@pytest.mark.parametrize("split", [float("nan"), float("inf"), -0.1, 1.0, 1.5, "a", True, np.float32(np.nan)])
def test_fit_names_a_validation_split_that_is_not_a_fraction(split):
    with pytest.raises(InputError, match=r"validation_split must be a finite number in \[0, 1\), got "
                                         + _named(split)):
        _fit(validation_split=split)


@pytest.mark.parametrize("chunk_steps", ["a", None, 0, -1, 2.5])
def test_fit_names_a_chunk_steps_that_is_not_a_positive_integer(chunk_steps):
    with pytest.raises(InputError, match=r"chunk_steps must be a positive integer, got " + _named(chunk_steps)):
        _fit(chunk_steps=chunk_steps)


@pytest.mark.parametrize("kw, error, message", [
    (dict(history=[1]), InputTypeError, r"history must be a dict of lists such as FitResult.history, got \[1\]"),
    (dict(history={"train_loss": 1.0}), InputTypeError, r"history must be a dict of lists.*'train_loss': 1.0"),
    (dict(state=1), InputTypeError, r"state must be a fnn.TrainState .*got 1"),
    (dict(state=PARAMS), InputTypeError, r"state must be a fnn.TrainState .*got \(\{'W'"),
    (dict(callback=1), InputTypeError, r"callback must be a function or None, got 1"),
    (dict(validation_data=X), InputTypeError, r"validation_data must be a pair \(x_val, y_val\), got Array"),
    (dict(validation_data=(X, None)), InputTypeError, r"fit: validation_data: y must be an array of numbers, got None"),
    (dict(x=None), InputTypeError, r"fit: x must be an array of numbers, got None"),
    (dict(x="abc"), InputTypeError, r"fit: x must be an array of numbers, got 'abc'"),
    (dict(model=3), InputTypeError, r"fit: model must be an fnn Layer such as fnn.mlp\(\[784, 100, 10\]\), got 3"),
    (dict(optimizer="sgd"), InputTypeError, r"fit: optimizer must be an fnn.optim optimizer .*got 'sgd'"),
    (dict(optimizer=None), InputTypeError, r"fit: optimizer must be an fnn.optim optimizer .*got None"),
    (dict(steps=None), InputError, r"exactly one of epochs or steps, got epochs=None, steps=None"),
    (dict(steps="2"), InputError, r"steps must be a positive integer, got '2'"),
    (dict(batch_size=4.0), InputError, r"batch_size must be a positive integer, got 4.0"),
])
def test_fit_names_each_setting_of_the_wrong_type(kw, error, message):
    with pytest.raises(error, match=message):
        _fit(**kw)


def test_evaluate_and_predict_name_a_model_that_is_not_a_layer():
    with pytest.raises(InputTypeError, match=r"model must be an fnn Layer .*got 'mlp'"):
        fnn.predict("mlp", PARAMS, X)
    with pytest.raises(InputTypeError, match=r"evaluate: x must be an array of numbers, got None"):
        fnn.evaluate(MODEL, "softmax_cross_entropy", PARAMS, None, Y)


# ---- layers: shapes and dtypes ----

@pytest.mark.parametrize("shape", [None, 3, "ab", (-1, 2.5), (-1, True)])
def test_init_and_summary_name_an_input_shape_that_is_not_a_tuple_of_ints(shape):
    with pytest.raises(InputTypeError, match=r"init\(key, input_shape\): input_shape must be a tuple of integers"
                                             r" such as \(-1, 784\) \(-1: the batch\), got " + _named(shape)):
        MODEL.init(jax.random.key(0), shape)
    with pytest.raises(InputTypeError, match=r"summary\(.*input_shape must be a tuple of integers.*got "
                                             + _named(shape)):
        fnn.summary(MODEL, shape)


def test_init_names_a_dtype_that_is_not_floating_point():
    with pytest.raises(InputTypeError, match=r"Dense\(3\): init dtype must be a floating-point dtype .*int32"):
        fnn.Dense(3).init(jax.random.key(0), (-1, 2), jnp.int32)
    with pytest.raises(InputTypeError, match=r"init dtype must be a floating-point dtype .*got 'x'"):
        MODEL.init(jax.random.key(0), (-1, 3), dtype="x")
    assert MODEL.init(jax.random.key(0), (-1, 3), jnp.bfloat16)[1][0]["W"].dtype == jnp.bfloat16


# ---- datasets ----

def test_get_dataset_names_an_unknown_option_and_lists_the_known_ones():
    with pytest.raises(InputTypeError, match=r"get_dataset\('spirals'\) got unknown option\(s\) bogus; it takes "
                                             r"n, noise, n_classes, turns, n_test"):
        fnn.get_dataset("spirals", key=jax.random.key(0), bogus=1)
    with pytest.raises(InputTypeError, match=r"get_dataset\('xor'\) got unknown option\(s\) n; it takes no options"):
        fnn.get_dataset("xor", n=3)
    with pytest.raises(InputError, match=r"unknown dataset \['x'\]"):
        fnn.get_dataset(["x"])


# ---- checkpoint arguments ----

def _state():
    return init_state(PARAMS, OPT, jax.random.key(0))


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "ck.npz"
    checkpoint.save(path, {"state": _state()}, step=1)
    return path


@pytest.mark.parametrize("path", [None, 3, ["ck.npz"]])
def test_checkpoint_names_a_path_that_is_not_a_str_or_pathlike(path):
    message = r"path must be a str or os.PathLike, got " + _named(path)
    with pytest.raises(InputTypeError, match=r"checkpoint.load: " + message):
        checkpoint.load(path, {"state": _state()})
    with pytest.raises(InputTypeError, match=r"checkpoint.read_config: " + message):
        checkpoint.read_config(path)
    with pytest.raises(InputTypeError, match=r"checkpoint.save: " + message):
        checkpoint.save(path, {"state": _state()})


def test_load_names_templates_that_are_not_a_dict_of_named_trees(saved):
    with pytest.raises(InputTypeError, match=r"checkpoint.load: templates must be a dict name -> pytree, "
                                             r"e.g. \{'state': state\}, got list"):
        checkpoint.load(saved, [_state()])
    with pytest.raises(InputTypeError, match=r"templates: names must be non-empty strings, got 0"):
        checkpoint.load(saved, {0: _state()})
    with pytest.raises(CheckpointError, match=r"has no 'params'; it holds \['state'\]"):
        checkpoint.load(saved, {"params": PARAMS})
    checkpoint.save(saved, {"w": np.zeros(())})
    with pytest.raises(InputTypeError, match=r"the template's w is a str; expected arrays, PRNG keys or Python numbers"):
        checkpoint.load(saved, {"w": "zero"})


@pytest.mark.parametrize("trees, message", [
    ([1], r"checkpoint.save: trees must be a dict name -> pytree, e.g. \{'state': state\}, got list"),
    ({1: PARAMS}, r"checkpoint.save: trees: names must be non-empty strings, got 1"),
    ({"": PARAMS}, r"checkpoint.save: trees: names must be non-empty strings, got ''"),
    ({"s": {"name": "adam"}}, r"checkpoint.save: s\['name'\] is a str of dtype <U4; expected numeric arrays"),
    ({"s": [object()]}, r"checkpoint.save: s\[0\] is a object of dtype object; expected numeric arrays"),
])
def test_save_names_trees_it_cannot_store(tmp_path, trees, message):
    with pytest.raises(InputTypeError, match=message):
        checkpoint.save(tmp_path / "ck.npz", trees)
    assert not (tmp_path / "ck.npz").exists()


@pytest.mark.parametrize("config, error, message", [
    ({"run": {"lr": np.float32(0.1)}}, InputTypeError, r"config\['run'\]\['lr'\] is np.float32\(0.1\) of type float32"),
    ({"run": {"f": print}}, InputTypeError, r"config\['run'\]\['f'\] is <built-in function print> of type"),
    ({"hidden": [100, {3}]}, InputTypeError, r"config\['hidden'\]\[1\] is \{3\} of type set"),
    ({1: "a"}, InputTypeError, r"config has the key 1 of type int; expected str keys"),
    ([1, 2], InputTypeError, r"config must be a dict or None, got list"),
])
def test_save_names_the_config_value_json_cannot_give_back(tmp_path, config, error, message):
    with pytest.raises(error, match=message):
        checkpoint.save(tmp_path / "ck.npz", {"state": _state()}, config=config)
    assert not (tmp_path / "ck.npz").exists()


def test_a_config_that_contains_itself_is_named(tmp_path):
    config = {"a": []}
    config["a"].append(config)
    with pytest.raises(InputError, match=r"config\['a'\]\[0\] contains itself"):
        checkpoint.save(tmp_path / "ck.npz", {"state": _state()}, config=config)


def test_allow_nonfinite_must_be_a_bool(saved):
    with pytest.raises(InputTypeError, match=r"checkpoint.save: allow_nonfinite must be True or False, got 'yes'"):
        checkpoint.save(saved, {"state": _state()}, allow_nonfinite="yes")
    with pytest.raises(InputTypeError, match=r"checkpoint.load: allow_nonfinite must be True or False, got 1"):
        checkpoint.load(saved, {"state": _state()}, allow_nonfinite=1)


def test_every_error_here_is_an_fnn_error():
    """Scripts shorten FnnError to one line; these are the classes the tests above expect."""
    assert issubclass(CheckpointError, InputError) and issubclass(InputError, FnnError)
    assert issubclass(InputTypeError, FnnError) and issubclass(InputTypeError, TypeError)


@pytest.mark.parametrize("call,error,message", [
    (lambda: init_state(PARAMS, optim.sgd(0.1), None), InputTypeError, r"init_state: key must be a PRNG key.*got None"),
    (lambda: init_state(PARAMS, optim.sgd(0.1), 0), InputTypeError, r"init_state: key must be a PRNG key.*got 0"),
    (lambda: fnn.predict(MODEL, PARAMS, None), InputTypeError, r"predict: x must be an array of numbers, got None"),
    (lambda: fnn.predict(MODEL, PARAMS, X.astype(jnp.complex64)), InputTypeError,
     r"predict: x has complex dtype complex64; expected real features"),
])
def test_entries_outside_fit_name_the_value(call, error, message):
    with pytest.raises(error, match=message):
        call()


@pytest.mark.parametrize("keys,steps,error,message", [
    (None, 3, InputTypeError, r"keys must be a 1-D array of PRNG keys.*got <class 'NoneType'>"),
    ([1, 2], 3, InputTypeError, r"keys must be a 1-D array of PRNG keys.*got int32 of shape \(2,\)"),
    ("split", 2**40, InputError, r"steps must be a positive integer at most 2147483647, got 1099511627776"),
])
def test_train_many_names_bad_keys_and_step_counts(keys, steps, error, message):
    from fnn.train.ensemble import train_many
    keys = jax.random.split(jax.random.key(0), 2) if keys == "split" else keys
    with pytest.raises(error, match=message):
        train_many(MODEL, "softmax_cross_entropy", optim.sgd(0.1), X, jnp.zeros(16, jnp.int32), keys=keys,
                   steps=steps)
