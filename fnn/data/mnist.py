"""MNIST-1D (Greydanus 2020), generated locally by the `mnist1d` package, cached on disk and per process.

The package's own `make_dataset` draws the signals (its default arguments give
the published dataset); its `get_dataset`, which downloads a pickle, is never
called. Generation takes seconds, so the arrays are kept twice:

  on disk: `mnist1d-<digest>.npz` in fnn's cache folder (fnn.data.disk_cache:
    $FNN_CACHE_DIR, else $XDG_CACHE_HOME/fnn, else ~/.cache/fnn; FNN_CACHE_DIR=""
    turns it off). The digest is of the request: the arguments given (seed and
    overrides) and the versions of mnist1d, numpy and scipy, which fix the
    defaults and the numbers drawn. The file's SHA-256 is checked on every read;
    a missing, corrupt or mismatched file is generated again and rewritten, and
    a folder that cannot be written only skips the cache (with a warning). A
    cache hit does not import mnist1d (which loads matplotlib and scipy).
  in memory: `_MNIST1D_CACHE`, keyed by the same request: each call after the
    first returns fresh copies of the cached arrays (the caller may modify them).

make_dataset seeds numpy's and Python's global generators; both are restored
afterwards, so generating MNIST-1D leaves any other use of np.random or random
as it was.
"""
import hashlib
import importlib.metadata
import json
import os
import random
from typing import Any

import numpy as np

from fnn.data.dataset import Dataset
from fnn.data.disk_cache import cache_dir, read_arrays, write_arrays
from fnn.errors import InputError
from fnn.validate import check_non_negative_int

__all__ = ["mnist1d"]

CACHE_FORMAT = 1
_NAMES = ("x", "y", "x_test", "y_test")
_DTYPES = (np.float32, np.int32, np.float32, np.int32)
# the request (bytes, see _request) -> (x, y, x_test, y_test)
_MNIST1D_CACHE = {}


def _version(package):
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _request(seed, overrides):
    """What the arrays depend on, as canonical JSON bytes: the arguments and the generating packages' versions."""
    request = {"fnn_cache_format": CACHE_FORMAT, "seed": seed, "overrides": overrides,
               "mnist1d": _version("mnist1d"), "numpy": np.__version__, "scipy": _version("scipy")}
    return json.dumps(request, sort_keys=True, default=repr).encode()


def _cache_path(request):
    """The disk-cache file for this request, or None when caching is off."""
    folder = cache_dir()
    if folder is None:
        return None
    return os.path.join(folder, f"mnist1d-{hashlib.sha256(request).hexdigest()[:20]}.npz")


def _make_args(seed, overrides):
    """mnist1d's arguments: its defaults, the seed and the overrides (unknown names refused)."""
    from mnist1d.data import get_dataset_args
    args = get_dataset_args()
    valid = sorted(k for k in vars(args) if k not in ("url", "seed"))
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise InputError(f"mnist1d: unknown argument(s) {', '.join(unknown)}; expected seed or one of "
                         f"{', '.join(valid)}")
    args.seed = seed
    vars(args).update(overrides)
    return args


def _generate(args):
    """make_dataset(args) as (x, y, x_test, y_test); numpy's and Python's global RNG state restored."""
    from mnist1d.data import make_dataset  # generates locally; mnist1d's get_dataset would download
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        d = make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return tuple(np.asarray(d[k], dt) for k, dt in
                 (("x", np.float32), ("y", np.int32), ("x_test", np.float32), ("y_test", np.int32)))


def _cached_or_generated(seed, overrides, request):
    """(x, y, x_test, y_test) from the disk cache, or generated (and then written there)."""
    path = _cache_path(request)
    cached = None if path is None else read_arrays(path, request, _NAMES)
    if cached is not None and all(cached[n].dtype == dt for n, dt in zip(_NAMES, _DTYPES)):
        return tuple(cached[n] for n in _NAMES)
    arrays = _generate(_make_args(seed, overrides))
    if path is not None:
        write_arrays(path, dict(zip(_NAMES, arrays)), request)
    return arrays


def _mnist1d_arrays(seed, overrides):
    """(x, y, x_test, y_test) for these arguments: read or generated once per process, copied on every call."""
    request = _request(seed, overrides)
    if request not in _MNIST1D_CACHE:
        _MNIST1D_CACHE[request] = _cached_or_generated(seed, overrides, request)
    return tuple(a.copy() for a in _MNIST1D_CACHE[request])


def mnist1d(seed: int = 42, **overrides: Any) -> Dataset:
    """MNIST-1D (Greydanus 2020), generated with the `mnist1d` package's make_dataset.

    The defaults are the published dataset: 5000 signals split 4000 train /
    1000 test, 40 features, 10 classes. Reference accuracy of an MLP: 68%
    published, about 65% in re-runs. The package centers and scales the whole
    set to mean 0, std 1; `standardize_dataset` then refits on train only.
    Deterministic for the same arguments; cached on disk and per process (module docstring).

    Args:
      seed: the generator's integer seed (42 is the published dataset). It is
        mnist1d's own seed, not a jax PRNG key.
      **overrides: any other field of mnist1d.data.get_dataset_args(), e.g.
        num_samples=1000 or shuffle_seq=True.

    Returns:
      A 10-class classification Dataset: float32 x (n, 40), int32 labels (n,).

    Raises:
      InputError / InputTypeError: for a seed that is not a non-negative int, or an
      unknown override.
    """
    seed = check_non_negative_int("mnist1d: seed", seed)
    x, y, x_test, y_test = _mnist1d_arrays(seed, overrides)
    return Dataset.from_arrays("mnist1d", "classification", 10, x, y, x_test, y_test)
