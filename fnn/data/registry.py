"""Datasets by name: DATASETS, and get_dataset for a name or a .npz/.csv path."""
import inspect
import os
from typing import Any, Optional, Union

from fnn.data.dataset import Dataset
from fnn.data.file_limits import Limits, check_limits
from fnn.data.files import load_file
from fnn.data.mnist import mnist1d
from fnn.data.toy import blobs, circles, house_prices, moons, sine, spirals, xor
from fnn.errors import InputError, InputTypeError
from fnn.typing import PRNGKey
from fnn.validate import check_key

__all__ = ["DATASETS", "RANDOM_DATASETS", "MISSING_DATASET_KEY", "get_dataset"]

# name -> loader. The loaders named in RANDOM_DATASETS draw points and take a PRNG key
# first; the others are fixed (xor, house_prices) or take their own `seed` (mnist1d).
DATASETS = {
    "xor": xor,
    "house_prices": house_prices,
    "spirals": spirals,
    "moons": moons,
    "circles": circles,
    "blobs": blobs,
    "sine": sine,
    "mnist1d": mnist1d,
}

RANDOM_DATASETS = frozenset({"spirals", "moons", "circles", "blobs", "sine"})

MISSING_DATASET_KEY = (
    "get_dataset({name!r}) draws random points and needs a PRNG key: "
    "call get_dataset({name!r}, key=jax.random.key(0))")


def _is_file(name):
    return isinstance(name, (str, os.PathLike)) and os.fspath(name).lower().endswith((".npz", ".csv"))


def get_dataset(name: Union[str, os.PathLike], *, key: Optional[PRNGKey] = None, limits: Optional[Limits] = None,
                **kwargs: Any) -> Dataset:
    """A Dataset by name in DATASETS, or from a .npz/.csv path (see load_file).

        ds = get_dataset("spirals", key=jax.random.key(0), n=200)
        ds = get_dataset("mnist1d")                       # fixed: no key needed

    Args:
      name: a name in DATASETS or a path ending in .npz or .csv.
      key: PRNG key, keyword-only. Required for the datasets that draw random
        points (RANDOM_DATASETS: spirals, moons, circles, blobs, sine) and for
        a file whose rows are split into train/test; a TypeError shows the
        call when it is missing. The fixed datasets (xor, house_prices) and
        mnist1d (its own integer `seed` keyword, default 42, the published
        set) do not use it: a key given to them is checked and ignored, so a
        script can pass one key whatever the dataset.
      limits: for a file, a fnn.data.Limits passed to load_file (default
        DEFAULT_LIMITS); ignored for a named dataset, so a script can always pass it.
      **kwargs: passed to the loader, e.g. n=200, noise=0.2, or seed=1 for mnist1d.

    Returns:
      The Dataset.

    Raises:
      ValueError for an unknown name; TypeError for a missing key (where one
      is needed), a key that is not a PRNG key (an int seed, for instance), or an
      option the loader does not take.
    """
    if key is not None:
        check_key("get_dataset: key", key)
    if limits is not None:
        check_limits(limits)
    if _is_file(name):
        return load_file(name, key=key, limits=limits, **kwargs)
    if not isinstance(name, str) or name not in DATASETS:
        raise InputError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)} "
                         f"or a path to a .npz or .csv file")
    _check_options(name, kwargs)
    if name not in RANDOM_DATASETS:
        return DATASETS[name](**kwargs)
    if key is None:
        raise InputTypeError(MISSING_DATASET_KEY.format(name=name))
    return DATASETS[name](key, **kwargs)


def _check_options(name, kwargs):
    """InputTypeError naming a keyword the dataset's loader does not take, and those it does."""
    params = inspect.signature(DATASETS[name]).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    known = [p for p, v in params.items() if v.kind is not inspect.Parameter.POSITIONAL_ONLY and p != "key"]
    unknown = sorted(set(kwargs) - set(known))
    if unknown:
        raise InputTypeError(f"get_dataset({name!r}) got unknown option(s) {', '.join(unknown)}; "
                             f"it takes {', '.join(known) or 'no options'}")
