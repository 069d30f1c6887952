"""Named arrays from an .npz archive that is not trusted: every size checked before it is allocated.

np.load would inflate a member before anything can look at it, so the
archive is read here with zipfile and numpy.lib.format directly:

  1. the zip's directory: each wanted member's uncompressed size (ZipInfo.file_size)
     must be within limits.max_array_bytes, and so must their sum;
  2. each member's .npy header (read_magic, read_array_header_1_0/2_0, which parse it
     with ast.literal_eval, never pickle): a numeric dtype (bool, int, float; no
     object, structured, string or complex dtypes), a shape of non-negative ints, and
     prod(shape) × itemsize within the limit and equal to the bytes the member holds;
  3. only then the data, in 1 MiB chunks into an array of that size; the CRC is
     checked as the last chunk is read.

Any zip- or .npy-level failure (not a zip, truncated, bad CRC, encrypted, an
unknown compression, a member that is not a .npy) is a DataFileError naming the
file and the member.
"""
import lzma
import math
import struct
import tokenize
import zipfile
import zlib

import numpy as np
from numpy.lib import format as npy_format

from fnn.data.file_limits import DataFileError, brief, over_limit, size_text

__all__ = ["read_npz"]

_CHUNK = 1 << 20
_HEADER_SLACK = 1 << 16                # a member holds its .npy header (< 64 KiB) before the data
_NPY_MAGIC = b"\x93NUMPY"
# What zipfile, zlib, bz2/lzma and numpy's header parser raise on a damaged archive.
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError,
               NotImplementedError, RuntimeError, zlib.error, lzma.LZMAError, struct.error, OverflowError,
               IndexError)


def read_npz(path, f, names, limits):
    """{name: array} for the wanted member names found in the archive open as `f`, and all names.

    Args:
      path: the file's path, for messages.
      f: the file, opened for binary reading.
      names: the array names wanted (those absent are left out of the result); None for all.
      limits: a fnn.data.Limits.
    Returns:
      (arrays, names in the archive).
    """
    magic = f.read(len(_NPY_MAGIC))
    f.seek(0)
    if magic == _NPY_MAGIC:
        raise DataFileError(path, "is a single .npy array, not an .npz archive of named arrays "
                                  "(save with np.savez(path, x=..., y=...))")
    try:
        with zipfile.ZipFile(f) as archive:
            members = _members(path, archive)
            wanted = {n: members[n] for n in (members if names is None else names) if n in members}
            _check_entry_sizes(path, wanted, limits)
            arrays, total = {}, 0
            for name, info in wanted.items():
                arrays[name] = _read_member(path, archive, info, name, limits, total)
                total += arrays[name].nbytes
            return arrays, list(members)
    except DataFileError:
        raise
    except _ZIP_ERRORS as e:
        raise DataFileError(path, f"not a readable .npz archive ({type(e).__name__}: {brief(e)}); expected a "
                                  f"zip of .npy arrays as np.savez writes") from None


def _members(path, archive):
    """{array name: ZipInfo}; the name is the member's without '.npy', as np.load names them."""
    members = {}
    for info in archive.infolist():
        if not info.filename or info.is_dir():        # a NUL at the start of a name leaves it empty
            continue
        name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
        if name in members:
            raise DataFileError(path, f"holds two members named {brief(repr(name))}; expected one array per name")
        members[name] = info
    return members


def _check_entry_sizes(path, wanted, limits):
    """Each wanted member's uncompressed size, and their sum, within max_array_bytes (from the zip directory)."""
    for name, info in wanted.items():
        if info.file_size > limits.max_array_bytes + _HEADER_SLACK:
            raise DataFileError(path, f"array {name!r} inflates to {size_text(info.file_size)} "
                                      f"(from {size_text(info.compress_size)} compressed), more than the "
                                      f"{size_text(limits.max_array_bytes)} allowed; "
                                      f"{over_limit(limits, 'max_array_bytes')}")
    total = sum(info.file_size for info in wanted.values())
    if total > limits.max_array_bytes + _HEADER_SLACK * len(wanted):
        raise DataFileError(path, f"arrays {', '.join(map(repr, wanted))} inflate to {size_text(total)} "
                                  f"together, more than the {size_text(limits.max_array_bytes)} allowed; "
                                  f"{over_limit(limits, 'max_array_bytes')}")


def _header(path, name, stream):
    """(shape, fortran_order, dtype, header length) of a member's .npy header; never unpickles."""
    if stream.read(len(_NPY_MAGIC)) != _NPY_MAGIC:
        raise DataFileError(path, f"member {name!r} is not a .npy array (no .npy magic bytes); "
                                  f"expected arrays saved by np.savez")
    version = tuple(stream.read(2))
    readers = {(1, 0): npy_format.read_array_header_1_0, (2, 0): npy_format.read_array_header_2_0}
    if version not in readers:
        raise DataFileError(path, f"array {name!r} has .npy format version {version}; expected 1.0 or "
                                  f"2.0 (as np.savez writes)")
    try:
        shape, fortran_order, dtype = readers[version](stream)
    except (ValueError, SyntaxError, RecursionError, tokenize.TokenError) as e:   # numpy's parser raises each
        raise DataFileError(path, f"array {name!r} has a malformed .npy header ({type(e).__name__}: "
                                  f"{brief(e)}); expected a header as np.save writes") from None
    return shape, fortran_order, dtype, stream.tell()


def _check_dtype(path, name, dtype):
    if dtype.hasobject:
        raise DataFileError(path, f"array {name!r} has dtype {brief(dtype, 60)}, which cannot be loaded without "
                                  f"pickle (never allowed); save numeric arrays")
    if dtype.kind == "c":
        raise DataFileError(path, f"array {name!r} has complex dtype {brief(dtype, 60)}; complex numbers are not "
                                  f"supported: expected real numbers (save x.real, or real and "
                                  f"imaginary parts as separate features)")
    if dtype.kind not in "biuf" or dtype.fields is not None or dtype.subdtype is not None:
        raise DataFileError(path, f"array {name!r} has non-numeric dtype {brief(dtype, 60)}; expected numbers "
                                  f"(bool, integer or floating point)")


def _read_member(path, archive, info, name, limits, total):
    """The member's array, its header checked against the limits before the data is allocated."""
    with archive.open(info) as stream:
        shape, fortran_order, dtype, offset = _header(path, name, stream)
        _check_dtype(path, name, dtype)
        if not all(isinstance(n, int) and n >= 0 for n in shape):
            raise DataFileError(path, f"array {name!r} has shape {brief(shape, 60)} in its .npy header; expected "
                                      f"non-negative integers")
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes > limits.max_array_bytes or total + nbytes > limits.max_array_bytes:
            together = f" ({size_text(total + nbytes)} with the arrays before it)" if total else ""
            raise DataFileError(path, f"array {name!r} claims shape {brief(shape, 60)} of {brief(dtype, 60)}: "
                                      f"{size_text(nbytes)}{together}, more than the "
                                      f"{size_text(limits.max_array_bytes)} allowed; "
                                      f"{over_limit(limits, 'max_array_bytes')}")
        held = info.file_size - offset
        if held != nbytes:
            raise DataFileError(path, f"array {name!r} holds {size_text(max(held, 0))} of data but its "
                                      f"header claims shape {brief(shape, 60)} of {brief(dtype, 60)} ({size_text(nbytes)}): "
                                      f"truncated or corrupt")
        array = np.empty(math.prod(shape), dtype)
        _read_into(path, name, stream, memoryview(array.view(np.uint8)), nbytes)
        stream.read(1)                                  # at the end: zipfile checks the CRC
    order = "F" if fortran_order else "C"
    return array.reshape(shape[::-1]).transpose() if order == "F" and len(shape) > 1 else array.reshape(shape)


def _read_into(path, name, stream, buffer, nbytes):
    pos = 0
    while pos < nbytes:
        chunk = stream.read(min(_CHUNK, nbytes - pos))
        if not chunk:
            raise DataFileError(path, f"array {name!r} ends after {pos:,} of its {nbytes:,} bytes: truncated")
        buffer[pos:pos + len(chunk)] = chunk
        pos += len(chunk)
