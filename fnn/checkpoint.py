"""Checkpoints: every array of a training run in one .npz file, written atomically, never pickled.

A checkpoint holds named pytrees (params, optimizer state, PRNG key, ...),
plain numbers (the step) and a JSON configuration. It is restored into
templates of the same structure, built from that configuration, so no code
or Python object is ever read back from the file.

    save(path, {"params": params, "opt_state": opt_state, "key": key}, step=10, config=cfg)
    trees, meta = load(path, {"params": params0, "opt_state": state0, "key": key0})

Writing goes to a temporary file in the same folder, fsync'd, then renamed
over `path` (an atomic replace on POSIX), so a crash leaves either the old
checkpoint or the new one, never a partial file. The temporary file is hidden
(`.NAME.tmp-XXXX.npz` beside `NAME`), so a glob such as `*.npz` never picks one
up; one left behind by a killed writer is removed by the next save to the same
path (one writer per path). Each array carries a SHA-256 digest: a truncated
or altered file is refused with CheckpointError, and so is anything in the
file that does not parse as an fnn checkpoint. Arrays are read with
allow_pickle=False: loading never runs code from the file.
"""
import contextlib
import hashlib
import json
import os
import secrets

import jax
import jax.numpy as jnp
import numpy as np

from fnn.errors import InputError

__all__ = ["CheckpointError", "save", "load", "read_config", "FORMAT"]

FORMAT = "fnn-checkpoint-1"
_META = "__meta__"
_ENTRY_KEYS = frozenset({"path", "shape", "dtype", "key", "sha256"})
_CORRUPT = "checkpoint {path!r} is truncated or corrupt ({error})"


class CheckpointError(InputError):
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
    prefix = _temporary_prefix(path)
    _remove_stale_temporaries(folder, prefix)
    fd, tmp = _create_temporary(folder, prefix)
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


def _temporary_prefix(path):
    """'.NAME.tmp-': the hidden prefix of save()'s temporary files for `path`."""
    return f".{os.path.basename(os.fspath(path))}.tmp-"


def _create_temporary(folder, prefix):
    """(fd, path) of a new file PREFIX<random>.npz, with the permissions np.savez would give it.

    tempfile.mkstemp would create it 0600, and the checkpoint renamed from it
    would be unreadable to anyone but its owner; 0666 here is narrowed by the umask.
    """
    while True:
        tmp = os.path.join(folder, f"{prefix}{secrets.token_hex(6)}.npz")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue


def _remove_stale_temporaries(folder, prefix):
    """Delete temporaries of this checkpoint that a killed writer left behind."""
    for name in os.listdir(folder):
        if name.startswith(prefix) and name.endswith(".npz"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(folder, name))


def _corrupt(path, error):
    return CheckpointError(_CORRUPT.format(path=os.fspath(path), error=f"{type(error).__name__}: {error}"))


def _read(data, path, name):
    """The array `name` of an open checkpoint; any failure to parse it is corruption."""
    try:
        return data[name]
    except Exception as e:  # zip, npy-header and I/O errors of a damaged file alike
        raise _corrupt(path, e) from None


def _check_meta(path, meta):
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise CheckpointError(f"{os.fspath(path)!r} is not an fnn checkpoint (format {found!r}, expected {FORMAT!r})")
    trees = meta.get("trees")
    well_formed = (type(meta.get("step")) is int and "config" in meta and isinstance(trees, dict)
                   and all(isinstance(entries, list) for entries in trees.values())
                   and all(isinstance(e, dict) and _ENTRY_KEYS <= e.keys()
                           for entries in trees.values() for e in entries))
    if not well_formed:
        raise CheckpointError(f"checkpoint {os.fspath(path)!r} has malformed metadata; the file is corrupt")


@contextlib.contextmanager
def _open(path):
    """(data, meta) of the checkpoint at `path`; data is closed on leaving the block."""
    if not os.path.exists(path):
        raise CheckpointError(f"no checkpoint at {os.fspath(path)!r}")
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as e:
        raise _corrupt(path, e) from None
    if not isinstance(data, np.lib.npyio.NpzFile):      # a bare .npy array
        raise CheckpointError(f"{os.fspath(path)!r} is not an fnn checkpoint (a single array, not an .npz archive)")
    with data:
        raw = _read(data, path, _META)
        try:
            meta = json.loads(raw.tobytes().decode())
        except (ValueError, UnicodeDecodeError, RecursionError) as e:
            raise _corrupt(path, e) from None
        _check_meta(path, meta)
        yield data, meta


def read_config(path):
    """(config, step) of a checkpoint, without restoring its arrays."""
    with _open(path) as (_, meta):
        return meta["config"], meta["step"]


def load(path, templates):
    """Restore the trees of a checkpoint into `templates` (dict name -> pytree of the same structure).

    Returns:
      (trees, meta): trees a dict name -> restored pytree; meta a dict with "step" and "config".
    Raises:
      CheckpointError: the file is missing, truncated or corrupt, or its trees do not
        match the templates (another architecture or optimizer).
    """
    with _open(path) as (data, meta):
        restored = {name: _restore(data, meta, path, name, template) for name, template in templates.items()}
        return restored, {"step": meta["step"], "config": meta["config"]}


def _restore(data, meta, path, name, template):
    """The tree `name` of an open checkpoint, restored into the structure of `template`."""
    path = os.fspath(path)
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
        array = _read(data, path, f"{name}/{i}")
        if _digest(array) != entry["sha256"]:
            raise CheckpointError(f"checkpoint {path!r}: {name}{entry['path']} fails its checksum; the file is corrupt")
        want_shape = tuple(jax.random.key_data(want).shape if _is_key(want) else np.shape(want))
        if entry["path"] != jax.tree_util.keystr(p) or tuple(array.shape) != want_shape:
            raise CheckpointError(
                f"checkpoint {path!r}: {name}{entry['path']} has shape {tuple(array.shape)}, the model "
                f"expects {name}{jax.tree_util.keystr(p)} of shape {want_shape}; "
                "it was saved from a different architecture")
        try:
            if _is_key(want):
                leaves.append(jax.random.wrap_key_data(array, impl=jax.random.key_impl(want)))
            else:
                leaves.append(jnp.asarray(array, dtype=getattr(want, "dtype", array.dtype)))
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"checkpoint {path!r}: {name}{entry['path']} of dtype {array.dtype} "
                                  f"cannot be restored into the model's {name}{entry['path']} ({e})") from None
    return jax.tree_util.tree_unflatten(treedef, leaves)
