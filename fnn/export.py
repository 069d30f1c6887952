"""Trained params as framework-neutral files: one named array per leaf, in .npz or .safetensors.

    fnn.export.save_params("model.safetensors", params)       # or "model.npz"
    arrays = fnn.export.load_params("model.safetensors")       # {"0.W": ndarray, "0.b": ..., ...}

Names. A leaf is named by its path in the pytree, each step written as it
is and joined with dots: a list or tuple index as its number, a dict key as
the key, a NamedTuple field by its name. A serial MLP's params
`[{"W": .., "b": ..}, (), {"W": .., "b": ..}]` give "0.W", "0.b", "2.W",
"2.b" (the activation's () has no leaves and no name); `{"params": p,
"state": s}` gives "params.0.W", ..., "state.2.mean". `flat_names(params)`
lists them in the order of jax.tree.leaves(params), the order of the file.
A dict key must be a non-empty str without a dot, or an int, so that no two
leaves can share a name.

What the arrays are, layer by layer (fnn's layout; PyTorch's in brackets):

    Dense        W (in, out), b (out,)            [nn.Linear: weight = Wᵀ (out, in), bias = b]
    Conv 1-D     W (k, C_in/g, C_out), b (C_out,) [nn.Conv1d: weight = W.transpose(2, 1, 0)]
    Conv 2-D     W (kh, kw, C_in/g, C_out)        [nn.Conv2d: weight = W.transpose(3, 2, 0, 1)]
    RNN/GRU/LSTM L.D.W_x (F, G·H), L.D.W_h (H, G·H), L.D.b_x, L.D.b_h (G·H,), L the stacked
                 layer, D the direction (0 forward, 1 reverse), gate blocks in PyTorch's order
                 [weight_ih_lL = W_xᵀ, weight_hh_lL = W_hᵀ, bias_ih_lL = b_x, bias_hh_lL = b_h;
                  D = 1 adds the suffix _reverse]
    LayerNorm,   scale, offset (features,)        [weight = scale, bias = offset]
    BatchNorm    model state: mean, var           [running_mean = mean; running_var is the
                                                   unbiased variance, fnn's var the biased one]
    Embedding    W (vocab, dim)                   [nn.Embedding: weight = W]

Both are cross-correlations with the same group layout, so a Conv kernel
only changes axes; fnn is channels-last, so a Dense read after Flatten sees
the features in (position, channel) order where PyTorch's sees (channel,
position). Flax's Dense and Conv kernels are fnn's W as it is.

Formats. .npz is np.savez's archive (one .npy per name, uncompressed), which
numpy has no bfloat16 for: such params are refused there (use .safetensors,
or cast to float32, which is exact). .safetensors follows the public format:
an 8-byte little-endian header length N, N bytes of JSON
{name: {"dtype", "shape", "data_offsets": [begin, end]}} padded with spaces
to a multiple of 8, then the raw little-endian bytes, in leaf order. Its
dtypes are F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8 and
BOOL; .npz takes the same ones but BF16. Files are written atomically
(fnn.atomic_file); nothing is pickled, and load_params reads either format
(told apart by their first bytes, not the extension) without unpickling,
refusing with InputError a truncated file, a header larger than the file,
offsets out of range, pairs with begin > end, overlapping tensors or bytes
no tensor claims, an unknown dtype, or a shape that does not match its bytes.
"""
import io
import json
import math
import os
import zipfile
from typing import Dict, List, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np
from numpy.lib import format as npy_format

from fnn.atomic_file import open_regular, write_atomically
from fnn.data.file_limits import Limits
from fnn.data.npz import read_npz
from fnn.errors import InputError, InputTypeError
from fnn.typing import Params

__all__ = ["save_params", "load_params", "flat_names", "FORMATS", "SAFETENSORS_DTYPES"]

FORMATS = {".npz": "npz", ".safetensors": "safetensors"}
# The safetensors dtype names and the little-endian numpy dtypes they are read as.
SAFETENSORS_DTYPES = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "BF16": np.dtype(jnp.bfloat16),
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"), "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"), "U32": np.dtype("<u4"), "U16": np.dtype("<u2"), "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
_CODES = {dtype.newbyteorder("<"): code for code, dtype in SAFETENSORS_DTYPES.items()}
_ENTRY_KEYS = {"dtype", "shape", "data_offsets"}
_MAX_HEADER = 100_000_000           # the safetensors library's own limit on N
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)   # fixed, so that the same params give the same bytes


def _step(key, where):
    """The name of one step of a pytree path."""
    if isinstance(key, jax.tree_util.SequenceKey):
        return str(key.idx)
    if isinstance(key, jax.tree_util.GetAttrKey):
        return key.name
    if isinstance(key, jax.tree_util.FlattenedIndexKey):
        return str(key.key)
    k = key.key
    if isinstance(k, bool) or not isinstance(k, (str, int)):
        raise InputTypeError(f"{where}: dict key {k!r} of type {type(k).__name__}; expected str or int keys")
    if isinstance(k, str) and (not k or "." in k):
        raise InputError(f"{where}: dict key {k!r}; expected a non-empty key without '.', which joins "
                         "the steps of a name")
    return str(k)


def _leaf_array(name, path, leaf, where):
    """The leaf as a numpy array of a dtype the files hold, or an error naming it."""
    if isinstance(leaf, jax.Array) and jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        raise InputTypeError(f"{where}: {path} ({name!r}) is a PRNG key, not a parameter; leave it out, "
                             "or save jax.random.key_data(key)")
    if not isinstance(leaf, (jax.Array, np.ndarray, np.generic)):
        raise InputTypeError(f"{where}: {path} ({name!r}) is a {type(leaf).__name__} ({leaf!r:.40}), "
                             "not an array; expected numpy or jax arrays (jnp.asarray(value) for a scalar)")
    array = np.asarray(leaf)
    if array.dtype.newbyteorder("<") not in _CODES:
        raise InputTypeError(f"{where}: {path} ({name!r}) has dtype {array.dtype}; expected one of "
                             "float64, float32, float16, bfloat16, (u)int8-64 or bool")
    return array


def _flatten(params, where):
    """[(name, array)] of params' leaves, in leaf order, each checked."""
    paths_leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    if not paths_leaves:
        raise InputError(f"{where}: params have no arrays; expected a pytree of arrays from a model's init")
    named, seen = [], {}
    for path, leaf in paths_leaves:
        where_leaf = f"params{jax.tree_util.keystr(path)}"
        name = ".".join(_step(k, where) for k in path)
        if not name:
            raise InputError(f"{where}: params is a bare array, which has no name; expected a pytree "
                             "of arrays, e.g. {'W': W}")
        if name in seen:
            raise InputError(f"{where}: {seen[name]} and {where_leaf} are both named {name!r}")
        if name == "__metadata__":
            raise InputError(f"{where}: {where_leaf} is named '__metadata__', which safetensors reserves")
        seen[name] = where_leaf
        named.append((name, _leaf_array(name, where_leaf, leaf, where)))
    return named


def flat_names(params: Params) -> List[str]:
    """The names save_params gives the leaves of `params`, in jax.tree.leaves order (module docstring).

    Args:
      params: a pytree of arrays (tuples, lists, dicts, NamedTuples).

    Returns:
      A list of str, one per leaf, e.g. ["0.W", "0.b", "2.W", "2.b"] for an MLP.
    """
    return [name for name, _ in _flatten(params, "flat_names")]


def _format(path, format, where):
    if format is not None:
        if format not in FORMATS.values():
            raise InputError(f"{where}: format {format!r}; expected 'npz', 'safetensors' or None")
        return format
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext not in FORMATS:
        raise InputError(f"{where}: cannot tell the format of {os.fspath(path)!r} from its extension "
                         f"{ext!r}; expected .npz or .safetensors, or pass format='npz' or 'safetensors'")
    return FORMATS[ext]


def save_params(path: Union[str, os.PathLike], params: Params, *, format: Optional[str] = None) -> None:
    """Write every leaf of `params` under its dotted name to `path`, atomically.

    Args:
      path: a str or os.PathLike; its extension (.npz, .safetensors) gives the format.
      params: a pytree of numpy or jax arrays (no PRNG keys, no Python scalars).
      format: "npz", "safetensors", or None to read it from the extension.

    Raises:
      InputTypeError: a leaf that is not an array, a PRNG key, a dtype the formats lack.
      InputError: an unknown format, names that clash, bfloat16 in .npz, a failed write.
    """
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise InputTypeError(f"save_params: path must be a non-empty str or os.PathLike, got {path!r}")
    format = _format(path, format, "save_params")
    named = _flatten(params, "save_params")
    if format == "npz":
        for name, array in named:
            if array.dtype == SAFETENSORS_DTYPES["BF16"]:
                raise InputError(f"save_params: {name!r} is bfloat16, which .npz (numpy) cannot hold; save "
                                 "to .safetensors, or cast the params to float32 (exact)")
        write = lambda f: _write_npz(f, named)
    else:
        write = lambda f: f.write(_safetensors_bytes(named))
    write_atomically(path, write, InputError, "params file")


def _write_npz(f, named):
    """np.savez's archive, one uncompressed NAME.npy per array, with fixed timestamps."""
    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as archive:
        for name, array in named:
            buffer = io.BytesIO()
            npy_format.write_array(buffer, array, allow_pickle=False)
            archive.writestr(zipfile.ZipInfo(f"{name}.npy", _ZIP_DATE), buffer.getvalue())


def _safetensors_bytes(named):
    header, offset, chunks = {}, 0, []
    for name, array in named:
        little = array.astype(array.dtype.newbyteorder("<"), copy=False)
        data = little.tobytes()                               # C order
        header[name] = {"dtype": _CODES[little.dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-(8 + len(text)) % 8)                    # the data starts 8-byte aligned
    return b"".join([len(text).to_bytes(8, "little"), text] + chunks)


def load_params(path: Union[str, os.PathLike]) -> Dict[str, np.ndarray]:
    """The arrays of a file save_params (or any .npz / .safetensors writer) wrote, by name.

    Args:
      path: a .npz or .safetensors file (told apart by its first bytes).

    Returns:
      A dict name -> numpy array in the file's order; for fnn's files, flat_names order, so
      jax.tree.unflatten(jax.tree.structure(params), list(load_params(path).values()))
      rebuilds params.

    Raises:
      InputError: a missing or non-regular file, or one that is truncated or malformed
        (the message names the problem).
    """
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise InputTypeError(f"load_params: path must be a non-empty str or os.PathLike, got {path!r}")
    path = os.fspath(path)
    with open_regular(path, InputError, "params file") as f:
        size = os.fstat(f.fileno()).st_size
        if f.read(4) in _ZIP_MAGIC:
            f.seek(0)
            limit = max(256 << 20, 16 * size)                  # what a compressed archive may inflate to
            arrays, _ = read_npz(path, f, None, Limits(max_file_bytes=size, max_array_bytes=limit))
            return _checked_npz(path, arrays)
        f.seek(0)
        buffer = bytearray(size)
        f.readinto(buffer)
    return _read_safetensors(path, buffer)


def _checked_npz(path, arrays):
    for name, array in arrays.items():
        if array.dtype.newbyteorder("<") not in _CODES:
            raise InputError(f"{path}: array {name!r} has dtype {array.dtype}; expected one of the "
                             "dtypes of fnn.export.SAFETENSORS_DTYPES")
    return arrays


def _bad(path, problem):
    return InputError(f"{path}: not a readable .safetensors file: {problem}")


def _header(path, buffer):
    """The parsed JSON header and the data's start in `buffer`."""
    if len(buffer) < 8:
        raise _bad(path, f"{len(buffer)} bytes, fewer than the 8 of the header length: truncated")
    n = int.from_bytes(buffer[:8], "little")
    if n > len(buffer) - 8:
        raise _bad(path, f"its header claims {n:,} bytes, larger than the {len(buffer) - 8:,} after the "
                         "length: truncated, or not a safetensors file")
    if n > _MAX_HEADER:
        raise _bad(path, f"its header claims {n:,} bytes, more than the {_MAX_HEADER:,} allowed")
    raw = bytes(buffer[8:8 + n])
    if not raw.startswith(b"{"):
        raise _bad(path, "its header does not start with '{'")

    def no_duplicates(pairs):
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            raise ValueError(f"the name {next(k for k in keys if keys.count(k) > 1)!r} appears twice")
        return dict(pairs)

    def no_constant(name):
        raise ValueError(f"{name} is not a JSON number")

    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=no_duplicates, parse_constant=no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise _bad(path, f"its header is not valid JSON ({e})") from None
    if not isinstance(header, dict):
        raise _bad(path, "its header is not a JSON object")
    return header, 8 + n


def _entry(path, name, entry, data_size):
    """(dtype, shape, begin, end) of one header entry, each checked."""
    if not isinstance(entry, dict) or set(entry) != _ENTRY_KEYS:
        raise _bad(path, f"tensor {name!r} is {entry!r:.80}; expected an object with exactly dtype, shape "
                         "and data_offsets")
    code, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if code not in SAFETENSORS_DTYPES:
        raise _bad(path, f"tensor {name!r} has dtype {code!r:.40}; expected one of {', '.join(SAFETENSORS_DTYPES)}")
    ints = lambda v, n=None: (isinstance(v, list) and (n is None or len(v) == n)
                              and all(type(i) is int and i >= 0 for i in v))
    if not ints(shape):
        raise _bad(path, f"tensor {name!r} has shape {shape!r:.80}; expected a list of non-negative integers")
    if not ints(offsets, 2):
        raise _bad(path, f"tensor {name!r} has data_offsets {offsets!r:.80}; expected [begin, end], two "
                         "non-negative integers")
    begin, end = offsets
    if begin > end:
        raise _bad(path, f"tensor {name!r} has data_offsets [{begin}, {end}]: begin after end")
    if end > data_size:
        raise _bad(path, f"tensor {name!r} ends at byte {end:,} of the data, which holds {data_size:,}: "
                         "offsets out of range, or the file is truncated")
    dtype = SAFETENSORS_DTYPES[code]
    if end - begin != math.prod(shape) * dtype.itemsize:
        raise _bad(path, f"tensor {name!r} has {end - begin:,} bytes but shape {shape} of {code} needs "
                         f"{math.prod(shape) * dtype.itemsize:,}")
    return dtype, tuple(shape), begin, end


def _read_safetensors(path, buffer):
    header, start = _header(path, buffer)
    metadata = header.pop("__metadata__", {})
    if not (isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())):
        raise _bad(path, "its __metadata__ is not an object of strings")
    data = memoryview(buffer)[start:]
    entries = sorted(((name, *_entry(path, name, e, len(data))) for name, e in header.items()),
                     key=lambda e: (e[3], e[4]))
    position = 0
    for name, _, _, begin, end in entries:
        if begin != position:
            problem = "overlaps the tensor before it" if begin < position else "leaves bytes no tensor claims"
            raise _bad(path, f"tensor {name!r} starts at byte {begin:,} of the data, where {position:,} was "
                             f"expected: it {problem}")
        position = end
    if position != len(data):
        raise _bad(path, f"its tensors end at byte {position:,} of the data, which holds {len(data):,}: "
                         "bytes no tensor claims")
    arrays = {}
    for name, dtype, shape, begin, end in entries:
        array = np.frombuffer(data[begin:end], dtype).reshape(shape)
        if dtype == np.bool_ and np.any(array.view(np.uint8) > 1):
            raise _bad(path, f"BOOL tensor {name!r} holds bytes other than 0 and 1")
        arrays[name] = array.astype(dtype.newbyteorder("="), copy=False)
    return arrays
