"""Checkpoints: every array of a training run in one .npz file, written atomically, never pickled.

A checkpoint holds named pytrees (params, optimizer state, PRNG key, ...),
plain numbers (the step) and a JSON configuration. It is restored into
templates of the same structure, built from that configuration, so no code
or Python object is ever read back from the file.

    save(path, {"params": params, "opt_state": opt_state, "key": key}, step=10, config=cfg)
    trees, meta = load(path, {"params": params0, "opt_state": state0, "key": key0})

Writing goes to a temporary file in the same folder, fsync'd, then renamed
over `path` (an atomic replace on POSIX), so a crash leaves either the old
checkpoint or the new one, never a partial file. Each array carries a SHA-256
digest: a truncated or altered file is refused with CheckpointError.
"""
import hashlib
import json
import os
import tempfile
import zipfile

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["CheckpointError", "save", "load", "read_config", "FORMAT"]

FORMAT = "fnn-checkpoint-1"
_META = "__meta__"


class CheckpointError(ValueError):
    """A checkpoint that is missing, truncated, corrupt, or of another model."""


def _is_key(leaf):
    return isinstance(leaf, jax.Array) and jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def _to_numpy(leaf):
    if _is_key(leaf):
        leaf = jax.random.key_data(leaf)
    return np.asarray(leaf)


def _digest(array):
    h = hashlib.sha256()
    h.update(f"{array.dtype.str}{array.shape}".encode())
    h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


def save(path, trees, *, step=0, config=None):
    """Write `trees` (a dict name -> pytree), `step` and `config` (JSON-able) atomically to `path`."""
    arrays, leaves_meta = {}, {}
    for name, tree in trees.items():
        paths_leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
        entries = []
        for i, (p, leaf) in enumerate(paths_leaves):
            array = _to_numpy(leaf)
            entry = f"{name}/{i}"
            arrays[entry] = array
            entries.append({"path": jax.tree_util.keystr(p), "shape": list(array.shape),
                            "dtype": array.dtype.str, "key": _is_key(leaf),
                            "sha256": _digest(array)})
        leaves_meta[name] = entries
    meta = {"format": FORMAT, "step": int(step), "config": config or {}, "trees": leaves_meta}
    arrays[_META] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)

    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _open(path):
    if not os.path.exists(path):
        raise CheckpointError(f"no checkpoint at {path!r}")
    try:
        data = np.load(path, allow_pickle=False)
        meta = json.loads(bytes(data[_META]).decode())
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError, UnicodeDecodeError) as e:
        raise CheckpointError(f"checkpoint {path!r} is truncated or corrupt ({e})") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path!r} is not an fnn checkpoint (format {meta.get('format')!r}, expected {FORMAT!r})")
    return data, meta


def read_config(path):
    """(config, step) of a checkpoint, without restoring its arrays."""
    _, meta = _open(path)
    return meta["config"], meta["step"]


def load(path, templates):
    """Restore the trees of a checkpoint into `templates` (dict name -> pytree of the same structure).

    Returns:
      (trees, meta): trees a dict name -> restored pytree; meta a dict with "step" and "config".
    Raises:
      CheckpointError: the file is missing, truncated or corrupt, or its trees do not
        match the templates (another architecture or optimizer).
    """
    data, meta = _open(path)
    restored = {}
    for name, template in templates.items():
        if name not in meta["trees"]:
            raise CheckpointError(f"checkpoint {path!r} has no {name!r}; it holds {sorted(meta['trees'])}")
        entries = meta["trees"][name]
        paths_leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
        if len(entries) != len(paths_leaves):
            raise CheckpointError(
                f"checkpoint {path!r}: {name} has {len(entries)} arrays, the model expects "
                f"{len(paths_leaves)}; it was saved from a different architecture")
        leaves = []
        for i, ((p, want), entry) in enumerate(zip(paths_leaves, entries)):
            try:
                array = data[f"{name}/{i}"]
            except (KeyError, ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
                raise CheckpointError(f"checkpoint {path!r} is truncated or corrupt ({e})") from None
            if _digest(array) != entry["sha256"]:
                raise CheckpointError(f"checkpoint {path!r}: {name}{entry['path']} fails its checksum; the file is corrupt")
            want_shape = tuple(jax.random.key_data(want).shape if _is_key(want) else np.shape(want))
            if tuple(array.shape) != want_shape or jax.tree_util.keystr(p) != entry["path"]:
                raise CheckpointError(
                    f"checkpoint {path!r}: {name}{entry['path']} has shape {tuple(array.shape)}, the model "
                    f"expects {name}{jax.tree_util.keystr(p)} of shape {want_shape}; "
                    "it was saved from a different architecture")
            if _is_key(want):
                leaves.append(jax.random.wrap_key_data(array, impl=jax.random.key_impl(want)))
            else:
                leaves.append(jnp.asarray(array, dtype=getattr(want, "dtype", array.dtype)))
        restored[name] = jax.tree_util.tree_unflatten(treedef, leaves)
    return restored, {"step": meta["step"], "config": meta["config"]}
