"""Checkpoints: exact round trips, atomic writes, refusal of corrupt or mismatched files, exact resume."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn import checkpoint, optim
from fnn.checkpoint import CheckpointError
from fnn.train import fit, init_state


def _state(sizes=(3, 5, 2), seed=0):
    model = fnn.mlp(list(sizes), "tanh")
    _, params = model.init(jax.random.key(seed), (-1, sizes[0]))
    opt = optim.adam(1e-2)
    return model, opt, init_state(params, opt, jax.random.key(seed + 1))


def _equal(a, b):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    unwrap = lambda l: jax.random.key_data(l) if jnp.issubdtype(l.dtype, jax.dtypes.prng_key) else l
    return len(la) == len(lb) and all(np.array_equal(unwrap(u), unwrap(v)) for u, v in zip(la, lb))


def test_round_trip_is_exact(tmp_path):
    _, _, state = _state()
    path = tmp_path / "ck.npz"
    checkpoint.save(path, {"state": state}, step=7, config={"hidden": [5], "lr": 0.01})
    trees, meta = checkpoint.load(path, {"state": _state(seed=3)[2]})
    assert _equal(trees["state"], state)
    assert meta == {"step": 7, "config": {"hidden": [5], "lr": 0.01}}
    assert checkpoint.read_config(path) == ({"hidden": [5], "lr": 0.01}, 7)
    restored_key = trees["state"].key
    assert jnp.issubdtype(restored_key.dtype, jax.dtypes.prng_key)
    assert np.array_equal(jax.random.normal(restored_key, (3,)), jax.random.normal(state.key, (3,)))


def test_write_is_atomic_and_leaves_no_temporary_files(tmp_path):
    _, _, state = _state()
    path = tmp_path / "ck.npz"
    checkpoint.save(path, {"state": state}, step=1)
    checkpoint.save(path, {"state": state}, step=2)
    assert os.listdir(tmp_path) == ["ck.npz"]
    assert checkpoint.read_config(path)[1] == 2


def test_file_is_not_a_pickle(tmp_path):
    _, _, state = _state()
    path = tmp_path / "ck.npz"
    checkpoint.save(path, {"state": state})
    with np.load(path, allow_pickle=False) as f:           # would raise on object arrays
        assert all(f[name].dtype != object for name in f.files)


def test_truncated_file_is_refused(tmp_path):
    _, _, state = _state()
    path = tmp_path / "ck.npz"
    checkpoint.save(path, {"state": state})
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        checkpoint.load(path, {"state": state})


def test_flipped_bytes_fail_the_checksum(tmp_path):
    _, _, state = _state()
    path = tmp_path / "ck.npz"
    checkpoint.save(path, {"state": state})
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    arrays["state/0"] = arrays["state/0"] + 1.0             # altered data, valid zip
    np.savez(path, **arrays)
    with pytest.raises(CheckpointError, match="checksum"):
        checkpoint.load(path, {"state": state})


def test_other_architecture_is_refused(tmp_path):
    _, _, state = _state((3, 5, 2))
    path = tmp_path / "ck.npz"
    checkpoint.save(path, {"state": state})
    with pytest.raises(CheckpointError, match="different architecture"):
        checkpoint.load(path, {"state": _state((3, 6, 2))[2]})
    with pytest.raises(CheckpointError, match="different architecture"):
        checkpoint.load(path, {"state": _state((3, 5, 5, 2))[2]})


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        checkpoint.load(tmp_path / "nope.npz", {})


def test_resume_equals_uninterrupted_run_bit_for_bit(tmp_path):
    model, opt, _ = _state((4, 8, 3))
    x = jax.random.normal(jax.random.key(5), (40, 4))
    y = jax.random.randint(jax.random.key(6), (40,), 0, 3)
    _, params = model.init(jax.random.key(0), (-1, 4))
    kw = dict(key=jax.random.key(1), batch_size=8, progress=False)
    full = fit(model, "softmax_cross_entropy", opt, params, x, y, epochs=6, **kw)

    path = tmp_path / "ck.npz"
    first = fit(model, "softmax_cross_entropy", opt, params, x, y, epochs=2, **kw)
    checkpoint.save(path, {"state": first.state}, step=int(first.state.step),
                    config={"history": first.history})
    template = init_state(params, opt, jax.random.key(99))
    trees, meta = checkpoint.load(path, {"state": template})
    resumed = fit(model, "softmax_cross_entropy", opt, params, x, y, epochs=6,
                  state=trees["state"], history=meta["config"]["history"], **kw)
    assert _equal(resumed.params, full.params)
    assert _equal(resumed.state.opt_state, full.state.opt_state)
    assert resumed.history["train_loss"] == full.history["train_loss"]
