"""A disk cache for arrays that take seconds to make: digest-checked .npz files in the user's cache folder.

    folder = cache_dir()                     # None when caching is turned off
    arrays = read_arrays(path, request, names)   # None: missing, corrupt, or made for another request
    write_arrays(path, arrays, request)      # atomically; a warning, never an error, if it cannot

The folder is $FNN_CACHE_DIR if set, else $XDG_CACHE_HOME/fnn (an absolute
XDG_CACHE_HOME only, as the XDG spec asks), else ~/.cache/fnn. Setting
FNN_CACHE_DIR to the empty string turns the cache off.

A file holds the arrays, the request they were made for (bytes, e.g. JSON of
the generator's arguments and versions) and a SHA-256 digest of both. It is
read with fnn.data.npz, which never unpickles and checks every size before
allocating; a file that is missing, unreadable, truncated, altered (the
digest differs) or made for another request reads as None, so the caller
makes the arrays again and overwrites it. Files are written atomically
(fnn.atomic_file): concurrent readers see the old file or the new one. A
folder that cannot be written leaves the arrays uncached, with a warning.
"""
import hashlib
import os
import warnings
from typing import Optional

import numpy as np

from fnn.atomic_file import open_regular, write_atomically
from fnn.data.file_limits import DataFileError, Limits
from fnn.data.npz import read_npz
from fnn.errors import InputError

__all__ = ["cache_dir", "CACHE_DIR_ENV"]

CACHE_DIR_ENV = "FNN_CACHE_DIR"
_REQUEST, _DIGEST = "__request__", "__sha256__"
_LIMITS = Limits(max_file_bytes=4 << 30, max_array_bytes=4 << 30)


class _Unusable(InputError):
    """A cache file or folder that cannot be read or written: the cache is skipped, never fatal."""


def cache_dir() -> Optional[str]:
    """The folder of fnn's disk cache, or None when FNN_CACHE_DIR is set to "" (no caching).

    Returns:
      $FNN_CACHE_DIR if set and not empty; else $XDG_CACHE_HOME/fnn if XDG_CACHE_HOME
      is an absolute path; else ~/.cache/fnn. The folder is created on the first write.
    """
    folder = os.environ.get(CACHE_DIR_ENV)
    if folder is not None:
        return folder or None
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = xdg if os.path.isabs(xdg) else os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "fnn")


def _digest(request, arrays):
    """SHA-256 of the request and of each array's name, dtype, shape and bytes, in name order."""
    h = hashlib.sha256(request)
    for name in sorted(arrays):
        a = arrays[name]
        h.update(f"\0{name}\0{a.dtype.str}{a.shape}\0".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.digest()


def read_arrays(path, request, names):
    """{name: array} from the cache file at `path`, or None if it cannot be used as it is.

    Args:
      path: the file.
      request: bytes, what the arrays were made for; a file made for other bytes is not used.
      names: the array names the file must hold, and only those.
    Returns:
      The arrays, or None when the file is missing, unreadable, corrupt, or for another request.
    """
    try:
        with open_regular(path, _Unusable, "cache file") as f:
            members, _ = read_npz(path, f, None, _LIMITS)
    except (_Unusable, DataFileError, OSError):
        return None
    if set(members) != set(names) | {_REQUEST, _DIGEST}:
        return None
    if members[_REQUEST].dtype != np.uint8 or members[_REQUEST].tobytes() != request:
        return None
    arrays = {name: members[name] for name in names}
    if members[_DIGEST].dtype != np.uint8 or members[_DIGEST].tobytes() != _digest(request, arrays):
        return None
    return arrays


def write_arrays(path, arrays, request):
    """Write `arrays` (a dict name -> numpy array) made for `request` to `path`, atomically.

    A folder that cannot be created or written (read-only, a file in the way, a
    full disk) gives a RuntimeWarning naming the path and the reason, and nothing else.
    """
    members = dict(arrays)
    members[_REQUEST] = np.frombuffer(request, np.uint8)
    members[_DIGEST] = np.frombuffer(_digest(request, arrays), np.uint8)
    try:
        write_atomically(path, lambda f: np.savez(f, **members), _Unusable, "cache file")
    except _Unusable as e:
        warnings.warn(f"{e}; going on without the disk cache (set {CACHE_DIR_ENV} to a writable folder, "
                      f"or to an empty string to turn the cache off)", RuntimeWarning, stacklevel=3)
