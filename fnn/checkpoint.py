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

Nothing is restored approximately. Each array is restored with the dtype it
was saved with, which must be the template leaf's dtype (a float64 1e306 is
inf in float32, so no cast is made; CheckpointError names the leaf and both
dtypes). A NaN or inf in a floating-point array is refused when saving and
when loading, unless allow_nonfinite=True (PRNG keys and integers are always
finite). Steps are non-negative integers. The path must be a regular file
(a FIFO or a directory is refused before anything reads or writes it),
and an OSError while writing (a full disk) is a CheckpointError naming the
path and the reason, with the previous checkpoint left in place.
"""
import contextlib
import hashlib
import json
import os
from typing import Any, Dict, Optional, Tuple, Union

import jax
import jax.numpy as jnp
import numpy as np

from fnn.atomic_file import open_regular, write_atomically
from fnn.errors import InputError, InputTypeError
from fnn.typing import PyTree
from fnn.validate import check_bool, check_non_negative_int

__all__ = ["CheckpointError", "save", "load", "read_config", "FORMAT"]

FORMAT = "fnn-checkpoint-1"
_META = "__meta__"
_ENTRY_KEYS = frozenset({"path", "shape", "dtype", "key", "sha256"})
_CORRUPT = "checkpoint {path!r} is truncated or corrupt ({error})"
_JSON_VALUES = "JSON values (a dict with str keys, list, str, int, float, bool or None)"


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


def save(path: Union[str, os.PathLike], trees: Dict[str, PyTree], *, step: int = 0,
         config: Optional[Dict[str, Any]] = None, allow_nonfinite: bool = False) -> None:
    """Write `trees` (a dict name -> pytree), `step` and `config` (JSON-able) atomically to `path`.

    Args:
      path: the checkpoint file (.npz), replaced atomically if it exists.
      trees: a dict name -> pytree of arrays, PRNG keys and Python scalars, e.g.
        {"params": params, "opt_state": opt_state, "key": key}.
      step: the training step, a non-negative int.
      config: a dict of JSON values (the run's configuration), or None for {}.
      allow_nonfinite: True to store NaN and inf rather than refuse them.

    Raises:
      CheckpointError: a leaf holds NaN or inf (unless allow_nonfinite=True), `path`
        is a directory or another non-regular file, or writing fails (the OS reason
        is named; the previous checkpoint at `path` is left as it was).
      InputTypeError: a path, tree name, leaf or config value of the wrong type.
    """
    path = _check_path(path, "checkpoint.save")
    _check_trees(trees, "checkpoint.save: trees")
    step = check_non_negative_int("checkpoint.save: step", step)
    allow_nonfinite = check_bool("checkpoint.save: allow_nonfinite", allow_nonfinite)
    if config is not None and not isinstance(config, dict):
        raise InputTypeError(f"checkpoint.save: config must be a dict or None, got {type(config).__name__}")
    _check_json(config or {}, "config", set())
    arrays, leaves_meta = {}, {}
    for name, tree in trees.items():
        paths_leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
        entries = []
        for i, (p, leaf) in enumerate(paths_leaves):
            where = f"{name}{jax.tree_util.keystr(p)}"
            array, dtype = _stored_array(where, leaf, allow_nonfinite)
            arrays[f"{name}/{i}"] = array
            entries.append({"path": jax.tree_util.keystr(p), "shape": list(array.shape),
                            "dtype": dtype, "key": _is_key(leaf), "sha256": _digest(array)})
        leaves_meta[name] = entries
    meta = {"format": FORMAT, "step": step, "config": config or {}, "trees": leaves_meta}
    arrays[_META] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    write_atomically(path, lambda f: np.savez(f, **arrays), CheckpointError, "checkpoint")


def _stored_array(where, leaf, allow_nonfinite):
    """(array as written, its dtype's name in the metadata) of one leaf, or an FnnError for what cannot be saved."""
    array = _to_numpy(leaf)
    dtype = array.dtype
    if not (dtype.kind in "biufc" or (dtype.kind == "V" and jnp.issubdtype(dtype, jnp.number))):
        raise InputTypeError(f"checkpoint.save: {where} is a {type(leaf).__name__} of dtype {dtype}; "
                             "expected numeric arrays (or PRNG keys)")
    if not (allow_nonfinite or _is_key(leaf)):
        _check_finite(array, lambda bad: CheckpointError(
            f"checkpoint.save: {where} holds NaN or inf ({bad} of {array.size} values); "
            "expected finite values, or pass allow_nonfinite=True to save them anyway"))
    if dtype.kind == "V":            # bfloat16, float8, int4 (ml_dtypes): written as their raw bits
        return array.view(f"u{dtype.itemsize}"), dtype.name
    return array, dtype.str


def _check_finite(array, error):
    """Raise error(count) if a floating-point array holds NaN or inf."""
    if jnp.issubdtype(array.dtype, jnp.inexact) and array.size:
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        if bad:
            raise error(bad)


def _check_path(path, where):
    """path as a str, or InputTypeError unless it is a str or os.PathLike."""
    if not isinstance(path, (str, os.PathLike)):
        raise InputTypeError(f"{where}: path must be a str or os.PathLike, got {path!r}")
    path = os.fsdecode(os.fspath(path))
    if not path:
        raise InputError(f"{where}: path is empty; expected a checkpoint file such as 'run/checkpoint.npz'")
    return path


def _check_trees(trees, where):
    """InputTypeError unless `trees` is a dict whose names are non-empty strings."""
    if not isinstance(trees, dict):
        raise InputTypeError(f"{where} must be a dict name -> pytree, e.g. {{'state': state}}, "
                             f"got {type(trees).__name__}")
    for name in trees:
        if not isinstance(name, str) or not name:
            raise InputTypeError(f"{where}: names must be non-empty strings, got {name!r}")


def _check_json(value, where, open_containers):
    """InputTypeError naming the first part of `value` that JSON would not give back as it is."""
    if value is None or isinstance(value, (bool, str, int, float)):
        return
    if not isinstance(value, (dict, list, tuple)):
        raise InputTypeError(f"checkpoint.save: {where} is {_short(value)} of type {type(value).__name__}; "
                             f"expected {_JSON_VALUES}")
    if id(value) in open_containers:
        raise InputError(f"checkpoint.save: {where} contains itself; expected {_JSON_VALUES}")
    open_containers.add(id(value))
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for k, v in items:
        if isinstance(value, dict) and not isinstance(k, str):
            raise InputTypeError(f"checkpoint.save: {where} has the key {k!r} of type {type(k).__name__}; "
                                 "expected str keys (JSON would turn it into a string)")
        _check_json(v, f"{where}[{k!r}]", open_containers)
    open_containers.discard(id(value))


def _short(value, limit=60):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


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
        raise CheckpointError(f"{path!r} is not an fnn checkpoint (format {found!r}, expected {FORMAT!r})")
    trees = meta.get("trees")
    well_formed = (type(meta.get("step")) is int and "config" in meta and isinstance(trees, dict)
                   and all(isinstance(entries, list) for entries in trees.values())
                   and all(isinstance(e, dict) and _ENTRY_KEYS <= e.keys()
                           for entries in trees.values() for e in entries))
    if not well_formed:
        raise CheckpointError(f"checkpoint {path!r} has malformed metadata; the file is corrupt")
    if meta["step"] < 0:
        raise CheckpointError(f"checkpoint {path!r} has step {meta['step']}; expected a non-negative "
                              "integer, the file is corrupt")


@contextlib.contextmanager
def _open(path, where):
    """(data, meta) of the checkpoint at `path` (a regular file); data is closed on leaving the block."""
    path = _check_path(path, where)
    with open_regular(path, CheckpointError, "checkpoint") as f:
        try:
            data = np.load(f, allow_pickle=False)
        except Exception as e:
            raise _corrupt(path, e) from None
        if not isinstance(data, np.lib.npyio.NpzFile):      # a bare .npy array
            raise CheckpointError(f"{path!r} is not an fnn checkpoint (a single array, not an .npz archive)")
        with data:
            raw = _read(data, path, _META)
            try:
                meta = json.loads(raw.tobytes().decode())
            except (ValueError, UnicodeDecodeError, RecursionError) as e:
                raise _corrupt(path, e) from None
            _check_meta(path, meta)
            yield data, meta


def read_config(path: Union[str, os.PathLike]) -> Tuple[Dict[str, Any], int]:
    """(config, step) of a checkpoint, without restoring its arrays.

    Args:
      path: a checkpoint written by save.

    Returns:
      (config, step): the JSON configuration saved with it (a dict) and its step.

    Raises:
      CheckpointError: the file is missing, not a regular file, truncated or corrupt.
      InputTypeError: path is not a str or PathLike.
    """
    with _open(path, "checkpoint.read_config") as (_, meta):
        return meta["config"], meta["step"]


def load(path: Union[str, os.PathLike], templates: Dict[str, PyTree], *,
         allow_nonfinite: bool = False) -> Tuple[Dict[str, PyTree], Dict[str, Any]]:
    """Restore the trees of a checkpoint into `templates` (dict name -> pytree of the same structure).

    Each leaf comes back as the template's kind of leaf (a jax array, a numpy
    array, a Python scalar, a PRNG key), with the dtype it was saved with.

    Args:
      path: a checkpoint written by save.
      templates: a dict name -> pytree with the structure, dtypes and kinds of leaf of the
        saved trees (e.g. freshly initialized params and optimizer state); only the
        names given are restored.
      allow_nonfinite: True to accept NaN and inf in the saved arrays.

    Returns:
      (trees, meta): trees a dict name -> restored pytree; meta a dict with "step" and "config".

    Raises:
      CheckpointError: the file is missing, not a regular file, truncated or corrupt;
        its trees do not match the templates (another architecture or optimizer);
        a leaf was saved with another dtype than the template's (no cast is made);
        or a leaf holds NaN or inf (unless allow_nonfinite=True).
      InputTypeError: path is not a str/PathLike, or templates is not a dict of named trees.
    """
    allow_nonfinite = check_bool("checkpoint.load: allow_nonfinite", allow_nonfinite)
    _check_trees(templates, "checkpoint.load: templates")
    with _open(path, "checkpoint.load") as (data, meta):
        path = os.fspath(path)
        restored = {name: _restore(data, meta, path, name, template, allow_nonfinite)
                    for name, template in templates.items()}
        return restored, {"step": meta["step"], "config": meta["config"]}


def _restore(data, meta, path, name, template, allow_nonfinite):
    """The tree `name` of an open checkpoint, restored into the structure of `template`."""
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
        where = f"{name}{entry['path']}"
        if _digest(array) != entry["sha256"]:
            raise CheckpointError(f"checkpoint {path!r}: {where} fails its checksum; the file is corrupt")
        want_shape = tuple(jax.random.key_data(want).shape if _is_key(want) else np.shape(want))
        if entry["path"] != jax.tree_util.keystr(p) or tuple(array.shape) != want_shape:
            raise CheckpointError(
                f"checkpoint {path!r}: {where} has shape {tuple(array.shape)}, the model "
                f"expects {name}{jax.tree_util.keystr(p)} of shape {want_shape}; "
                "it was saved from a different architecture")
        array = _saved_view(path, where, entry, array)
        if entry["key"] is not _is_key(want):
            raise CheckpointError(f"checkpoint {path!r}: {where} was saved as "
                                  f"{'a PRNG key' if entry['key'] else 'an array'}, the model expects "
                                  f"{'a PRNG key' if _is_key(want) else 'an array'} there")
        _check_dtype(path, where, array, want)
        if not allow_nonfinite:
            _check_finite(array, lambda bad: CheckpointError(
                f"checkpoint {path!r}: {where} holds NaN or inf ({bad} of {array.size} values); "
                "expected finite values, or pass allow_nonfinite=True to load them anyway"))
        leaves.append(_as_template_leaf(array, want))
    return jax.tree_util.tree_unflatten(treedef, leaves)


def _saved_view(path, where, entry, array):
    """The array with the dtype the metadata names: ml_dtypes (bfloat16, ...) are stored as raw bits."""
    try:
        saved = jnp.dtype(entry["dtype"])
    except (TypeError, ValueError):
        raise CheckpointError(f"checkpoint {path!r}: {where} has the unknown dtype {entry['dtype']!r}; "
                              "the file is corrupt") from None
    if saved == array.dtype:
        return array
    if saved.kind == "V" and array.dtype == np.dtype(f"u{saved.itemsize}"):
        return array.view(saved)
    raise CheckpointError(f"checkpoint {path!r}: {where} holds {array.dtype} data but its metadata says "
                          f"{saved}; the file is corrupt")


_KINDS = {bool: "b", int: "iu", float: "f", complex: "c"}


def _check_dtype(path, where, array, want):
    """CheckpointError unless the saved dtype is the template's (a Python scalar: the same kind)."""
    if _is_key(want):
        expected = jax.random.key_data(want).dtype
    elif hasattr(want, "dtype"):
        expected = np.dtype(want.dtype)
    elif type(want) in _KINDS:
        if array.dtype.kind in _KINDS[type(want)]:
            return
        expected = type(want).__name__
    else:
        raise InputTypeError(f"checkpoint.load: the template's {where} is a {type(want).__name__}; "
                             "expected arrays, PRNG keys or Python numbers")
    if array.dtype != expected:
        raise CheckpointError(
            f"checkpoint {path!r}: {where} was saved as {array.dtype}, the model expects {expected}; "
            "it is not cast (a cast can change values: float64 1e306 is inf in float32): build "
            f"the template with dtype {array.dtype}, or convert the restored array yourself")


def _as_template_leaf(array, want):
    """The saved array as the template's kind of leaf: a PRNG key, numpy array, Python number or jax array."""
    if _is_key(want):
        return jax.random.wrap_key_data(array, impl=jax.random.key_impl(want))
    if isinstance(want, (np.ndarray, np.generic)):
        return np.array(array) if isinstance(want, np.ndarray) else array[()]
    if type(want) in _KINDS:
        return type(want)(array.item())
    return jnp.asarray(array)
