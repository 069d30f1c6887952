"""Inputs that used to give a silently wrong result are refused with a typed error naming the value.

fit: a step count past the int32 step counter (2**40 ran 0 steps), settings out of
range (patience=-1, chunk_steps=0, progress="x" were accepted). checkpoint: a
fractional or negative step (2.7 was stored as 2), a dtype cast on load (float64
1e306 became inf in float32), NaN/inf saved or loaded, a FIFO (load hung), a
directory or FIFO as the target, and a failed write (a raw OSError).
"""
import errno
import json
import os
import re
import signal

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn import checkpoint, optim
from fnn.checkpoint import CheckpointError
from fnn.errors import InputError, InputTypeError
from fnn.train import init_state
from fnn.validate import MAX_STEPS

MODEL = fnn.mlp([3, 4, 2], "tanh")
PARAMS = MODEL.init(jax.random.key(0), (-1, 3))[1]
X = jax.random.normal(jax.random.key(1), (16, 3))
Y = jax.random.randint(jax.random.key(2), (16,), 0, 2)
OPT = optim.sgd(0.1)


def _fit(**kw):
    kw = {"key": jax.random.key(3), "batch_size": 4, "progress": False, **kw}
    if "epochs" not in kw:
        kw.setdefault("steps", 2)
    return fnn.fit(MODEL, "softmax_cross_entropy", OPT, PARAMS, X, Y, **kw)


def _state(seed=0):
    return init_state(PARAMS, OPT, jax.random.key(seed))


# ---- fit: step counts the int32 counter cannot hold ----

@pytest.mark.parametrize("kw, message", [
    (dict(steps=np.int64(2**40)), r"steps must be a positive integer at most 2147483647, got .*1099511627776"),
    (dict(steps=2**31), r"steps must be a positive integer at most 2147483647, got 2147483648"),
    (dict(epochs=2**31), r"epochs must be a positive integer at most 2147483647, got 2147483648"),
    (dict(epochs=2**29), r"epochs=536870912 of 4 batches each is 2147483648 steps, more than the 2147483647"
                         r".*at most 536870911 epochs"),
])
def test_fit_refuses_more_steps_than_the_step_counter_holds(kw, message):
    with pytest.raises(InputError, match=message):
        _fit(**kw)


def test_fit_accepts_numpy_integers_in_range():
    result = _fit(steps=np.int64(3), batch_size=np.int32(4), patience=np.int64(2), validation_split=0.25,
                  chunk_steps=np.int16(2), progress=np.bool_(False))
    assert result.steps == 3 and result.history["step"][-1] == 3
    assert MAX_STEPS == 2**31 - 1 == int(jnp.iinfo(jnp.int32).max)


# ---- fit: settings that were accepted and ignored or misread ----

@pytest.mark.parametrize("patience", [-1, 0, 2.5, True, "3", np.float64(2.0)])
def test_fit_refuses_a_patience_that_is_not_a_positive_integer(patience):
    with pytest.raises(InputError, match=rf"patience must be a positive integer or None, got {re.escape(repr(patience))}"):
        _fit(patience=patience, validation_split=0.25)


@pytest.mark.parametrize("chunk_steps", [0, -1, 2.5, True])
def test_fit_refuses_a_chunk_steps_that_is_not_a_positive_integer(chunk_steps):
    with pytest.raises(InputError, match=rf"chunk_steps must be a positive integer, got {re.escape(repr(chunk_steps))}"):
        _fit(chunk_steps=chunk_steps)


@pytest.mark.parametrize("progress", ["x", 0, None])
def test_fit_refuses_a_progress_that_is_not_a_bool(progress):
    with pytest.raises(InputTypeError, match=rf"progress must be True or False, got {re.escape(repr(progress))}"):
        _fit(progress=progress)


def test_fit_refuses_validation_split_and_validation_data_together():
    """The split used to replace validation_data without a word."""
    with pytest.raises(InputError, match=r"both validation_data and validation_split=0.25"):
        _fit(validation_data=(X, Y), validation_split=0.25)


# ---- checkpoint steps ----

@pytest.mark.parametrize("step", [2.7, -1, True, "3", np.float32(2.0)])
def test_save_refuses_a_step_that_is_not_a_non_negative_integer(tmp_path, step):
    path = tmp_path / "ck.npz"
    checkpoint.save(path, {"state": _state()}, step=1)
    with pytest.raises(InputError, match=rf"step must be a non-negative integer, got {re.escape(repr(step))}"):
        checkpoint.save(path, {"state": _state()}, step=step)
    assert checkpoint.read_config(path) == ({}, 1)


def test_save_accepts_a_numpy_integer_step(tmp_path):
    checkpoint.save(tmp_path / "ck.npz", {"state": _state()}, step=np.int64(5))
    config, step = checkpoint.read_config(tmp_path / "ck.npz")
    assert step == 5 and type(step) is int


def _rewrite_meta(path, change):
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    meta = json.loads(arrays["__meta__"].tobytes())
    change(meta)
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    np.savez(path, **arrays)


def test_load_refuses_a_negative_step(tmp_path):
    path = tmp_path / "ck.npz"
    checkpoint.save(path, {"state": _state()}, step=3)
    _rewrite_meta(path, lambda meta: meta.update(step=-1))
    with pytest.raises(CheckpointError, match=r"has step -1; expected a non-negative integer"):
        checkpoint.load(path, {"state": _state()})
    with pytest.raises(CheckpointError, match=r"has step -1"):
        checkpoint.read_config(path)


# ---- checkpoint dtypes: no cast on load ----

@pytest.mark.parametrize("saved, template, message", [
    (np.array([1e306]), jnp.zeros(1, jnp.float32), r"w was saved as float64, the model expects float32"),
    (np.array([1.5], np.float32), np.zeros(1, np.float64), r"w was saved as float32, the model expects float64"),
    (np.array([3], np.int32), jnp.zeros(1, jnp.float32), r"w was saved as int32, the model expects float32"),
    (np.array([0.5], np.float32), jnp.zeros(1, jnp.bfloat16), r"w was saved as float32, the model expects bfloat16"),
    (np.array([2.5], np.float32), 0, r"w was saved as float32, the model expects int"),
])
def test_load_refuses_another_dtype_than_the_templates(tmp_path, saved, template, message):
    path = tmp_path / "ck.npz"
    checkpoint.save(path, {"w": saved if np.ndim(template) else saved[0]})
    with pytest.raises(CheckpointError, match=message):
        checkpoint.load(path, {"w": template})


def test_a_key_and_an_array_are_not_interchangeable(tmp_path):
    key = jax.random.key(0)
    checkpoint.save(tmp_path / "key.npz", {"k": key})
    checkpoint.save(tmp_path / "raw.npz", {"k": jax.random.key_data(key)})
    with pytest.raises(CheckpointError, match=r"k was saved as a PRNG key, the model expects an array"):
        checkpoint.load(tmp_path / "key.npz", {"k": jax.random.key_data(key)})
    with pytest.raises(CheckpointError, match=r"k was saved as an array, the model expects a PRNG key"):
        checkpoint.load(tmp_path / "raw.npz", {"k": key})


def test_leaves_come_back_exactly_as_the_templates_kind(tmp_path):
    """numpy float64 stays numpy float64 (1e306 exact), Python numbers stay Python, bfloat16 round-trips."""
    path = tmp_path / "ck.npz"
    tree = {"f64": np.array([1e306, -2.0]), "py": (3, 2.5, True), "bf16": jnp.array([0.5, -3.0], jnp.bfloat16),
            "i32": jnp.arange(3, dtype=jnp.int32), "u8": np.arange(4, dtype=np.uint8)}
    checkpoint.save(path, {"t": tree})
    template = {"f64": np.zeros(2), "py": (0, 0.0, False), "bf16": jnp.zeros(2, jnp.bfloat16),
                "i32": jnp.zeros(3, jnp.int32), "u8": np.zeros(4, np.uint8)}
    back = checkpoint.load(path, {"t": template})[0]["t"]
    assert type(back["f64"]) is np.ndarray and back["f64"].dtype == np.float64 and back["f64"][0] == 1e306
    assert back["py"] == (3, 2.5, True) and [type(v) for v in back["py"]] == [int, float, bool]
    assert back["bf16"].dtype == jnp.bfloat16 and back["bf16"].tolist() == [0.5, -3.0]
    assert back["i32"].dtype == jnp.int32 and back["i32"].tolist() == [0, 1, 2]
    assert back["u8"].dtype == np.uint8 and back["u8"].tolist() == [0, 1, 2, 3]


# ---- checkpoint NaN/inf ----

@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_save_refuses_nan_or_inf_and_keeps_the_previous_checkpoint(tmp_path, bad):
    path = tmp_path / "ck.npz"
    checkpoint.save(path, {"state": _state()}, step=1)
    params = jax.tree.map(lambda p: p, PARAMS)
    params[2]["W"] = params[2]["W"].at[1, 0].set(bad)
    with pytest.raises(CheckpointError, match=r"save: state\.params\[2\]\['W'\] holds NaN or inf \(1 of 8 values\)"
                                              r".*allow_nonfinite=True"):
        checkpoint.save(path, {"state": _state()._replace(params=params)}, step=2)
    assert os.listdir(tmp_path) == ["ck.npz"] and checkpoint.read_config(path) == ({}, 1)


def test_nan_is_saved_and_loaded_only_when_allowed(tmp_path):
    path = tmp_path / "ck.npz"
    tree = {"w": jnp.array([1.0, jnp.nan], jnp.float32), "bf": jnp.array([jnp.inf], jnp.bfloat16),
            "n": jnp.arange(2), "key": jax.random.key(1)}
    checkpoint.save(path, {"t": tree}, allow_nonfinite=True)
    template = {"w": jnp.zeros(2), "bf": jnp.zeros(1, jnp.bfloat16), "n": jnp.zeros(2, jnp.int32),
                "key": jax.random.key(0)}
    with pytest.raises(CheckpointError, match=r"t\['bf'\] holds NaN or inf \(1 of 1 values\).*allow_nonfinite=True"):
        checkpoint.load(path, {"t": template})                 # digest-valid, still refused
    back = checkpoint.load(path, {"t": template}, allow_nonfinite=True)[0]["t"]
    assert np.isnan(back["w"][1]) and np.isinf(back["bf"][0])


def test_keys_and_integers_need_no_allowance(tmp_path):
    tree = {"key": jax.random.key(7), "step": jnp.asarray(2**31 - 1, jnp.int32), "flags": np.array([True])}
    checkpoint.save(tmp_path / "ck.npz", {"t": tree})
    back = checkpoint.load(tmp_path / "ck.npz", {"t": tree})[0]["t"]
    assert int(back["step"]) == 2**31 - 1


# ---- checkpoint paths that are not regular files; failed writes ----

class _Deadline:
    """Fail the test instead of hanging if the block takes more than a few seconds (a FIFO read)."""

    def __enter__(self):
        def hung(*_):
            raise AssertionError("blocked on a FIFO")
        self.previous = signal.signal(signal.SIGALRM, hung)
        signal.alarm(10)

    def __exit__(self, *exc):
        signal.alarm(0)
        signal.signal(signal.SIGALRM, self.previous)


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "ck.npz"
    os.mkfifo(fifo)
    with _Deadline():
        with pytest.raises(CheckpointError, match=r"cannot read checkpoint .*ck\.npz.*it is a FIFO"):
            checkpoint.load(fifo, {"state": _state()})
        with pytest.raises(CheckpointError, match=r"cannot read checkpoint .*ck\.npz.*it is a FIFO"):
            checkpoint.read_config(fifo)
        with pytest.raises(CheckpointError, match=r"cannot write checkpoint .*ck\.npz.*it is a FIFO"):
            checkpoint.save(fifo, {"state": _state()})
    assert os.path.exists(fifo) and not os.path.isfile(fifo)          # still the FIFO, not replaced


def test_a_directory_is_refused(tmp_path):
    folder = tmp_path / "ck.npz"
    folder.mkdir()
    with pytest.raises(CheckpointError, match=r"cannot write checkpoint .*ck\.npz.*it is a directory"):
        checkpoint.save(folder, {"state": _state()})
    with pytest.raises(CheckpointError, match=r"cannot read checkpoint .*ck\.npz.*it is a directory"):
        checkpoint.load(folder, {"state": _state()})
    assert os.listdir(tmp_path) == ["ck.npz"] and os.listdir(folder) == []


@pytest.mark.parametrize("where", ["savez", "replace"])
def test_an_oserror_while_writing_is_a_checkpoint_error_and_loses_nothing(tmp_path, monkeypatch, where):
    path = tmp_path / "ck.npz"
    state = _state()
    checkpoint.save(path, {"state": state}, step=1)

    def full_disk(f, **arrays):
        f.write(b"PK\x03\x04 partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def refused(src, dst):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    if where == "savez":
        monkeypatch.setattr(checkpoint.np, "savez", full_disk)
        reason = os.strerror(errno.ENOSPC)
    else:
        monkeypatch.setattr(checkpoint.os, "replace", refused)
        reason = os.strerror(errno.EACCES)
    with pytest.raises(CheckpointError, match=rf"cannot write checkpoint '{path}': {reason}.*unchanged"):
        checkpoint.save(path, {"state": state}, step=2)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["ck.npz"]                       # the temporary is gone
    trees, meta = checkpoint.load(path, {"state": _state(seed=5)})
    assert meta["step"] == 1
    assert np.array_equal(trees["state"].params[0]["W"], state.params[0]["W"])
