"""What a data file may cost (Limits), the errors for a bad one, and opening it safely.

A data file comes from a user and may be hostile: a FIFO that never ends, a
device, a 10 GB CSV, an .npz whose 1 KB of deflate inflates to gigabytes.
open_data_file refuses anything but a regular file from os.stat alone (a FIFO
is never opened for a blocking read) and anything larger than
limits.max_file_bytes before reading a byte. Readers check every claimed size
against the limits before they allocate it.
"""
import os
import stat
from typing import NamedTuple, Union

from fnn.errors import InputError, InputTypeError
from fnn.validate import check_positive_int

__all__ = ["Limits", "DEFAULT_LIMITS", "DataFileError", "DataFileNotFoundError", "open_data_file",
           "check_limits", "over_limit", "size_text", "brief"]


class Limits(NamedTuple):
    """The most a data file may make load_file read or allocate.

    Raise one with e.g. load_file(path, limits=Limits(max_classes=50_000)) or
    DEFAULT_LIMITS._replace(max_file_bytes=4 << 30).

    Fields:
      max_file_bytes: the file's size on disk (os.stat), checked before it is
        opened. Default 1 GiB.
      max_array_bytes: the decompressed bytes of the data read from the file:
        each .npz array (its zip entry size and its .npy header's shape × dtype),
        all arrays together, and the parsed CSV values (8 bytes a cell).
        Default 256 MiB: 40 times MNIST-1D at float64, while an 800 MB zip bomb
        (a few MB on disk) is refused before it is inflated.
      max_classes: the most classes a classification file may have (max label + 1),
        so a stray label of 1e9 cannot build a 10^9-wide output layer.
        Default 10,000.
      max_line_chars: the longest CSV line, in characters. Default 4 Mi (4,194,304).
    """
    max_file_bytes: int = 1 << 30
    max_array_bytes: int = 256 << 20
    max_classes: int = 10_000
    max_line_chars: int = 1 << 22


DEFAULT_LIMITS = Limits()


class DataFileError(InputError):
    """A data file that cannot be used; the message names the file and the problem."""

    def __init__(self, path: Union[str, os.PathLike], problem: object) -> None:
        problem = " ".join(str(problem).splitlines())           # one line, as a script prints it
        super().__init__(f"{path}: {problem}")
        self.path, self.problem = str(path), problem

    def __reduce__(self):
        return type(self), (self.path, self.problem)


class DataFileNotFoundError(DataFileError, FileNotFoundError):
    """The data file does not exist."""


def check_limits(limits):
    """limits (DEFAULT_LIMITS for None), or TypeError/ValueError unless a Limits of positive integers."""
    if limits is None:
        return DEFAULT_LIMITS
    if not isinstance(limits, Limits):
        raise InputTypeError(f"load_file: limits must be a fnn.data.Limits such as "
                             f"Limits(max_classes=50000), got {limits!r}")
    for name, value in limits._asdict().items():
        check_positive_int(f"load_file: limits.{name}", value)
    return limits


def brief(text, most=120):
    """Text from the file (or a library's message quoting it) cut to one line of at most `most` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= most else text[:most - 3] + "..."


def size_text(n):
    """A byte count for a message: '1,073,741,824 bytes (1.0 GiB)'."""
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n:,} bytes ({n / scale:.1f} {unit})"
    return f"{n:,} bytes"


def over_limit(limits, field):
    """The end of a message about a limit: its value and how to raise it."""
    value = getattr(limits, field)
    shown = size_text(value) if field.endswith("bytes") else f"{value:,}"
    return (f"the limit is {field}={shown}; if the file is trusted, raise it with "
            f"load_file(..., limits=fnn.data.Limits({field}=...))")


_KINDS = [(stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket")]


def _check_regular(path, st, limits):
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in _KINDS if test(st.st_mode)), "not a regular file")
        raise DataFileError(path, f"is {kind}; expected a regular .npz or .csv file")
    if st.st_size == 0:
        raise DataFileError(path, "the file is empty (0 bytes)")
    if st.st_size > limits.max_file_bytes:
        raise DataFileError(path, f"the file is {size_text(st.st_size)}, larger than the "
                                  f"{size_text(limits.max_file_bytes)} allowed; {over_limit(limits, 'max_file_bytes')}")


def open_data_file(path, limits):
    """The file opened for binary reading, after os.stat shows a regular file within max_file_bytes.

    Opened with O_NONBLOCK and checked again with fstat, so a FIFO swapped in
    between the two cannot block; OSErrors become DataFileErrors naming the path.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        _check_regular(path, os.stat(path), limits)
        fd = os.open(path, flags)
    except DataFileError:
        raise
    except FileNotFoundError:
        raise DataFileNotFoundError(path, "no such file (expected a .npz or .csv data file)") from None
    except OSError as e:
        raise DataFileError(path, f"cannot be read ({e.strerror or e}); expected a readable "
                                  f".npz or .csv file") from None
    except ValueError:                                   # os.stat: "embedded null byte"
        raise DataFileError(repr(path), "is not a valid path (it holds a NUL character)") from None
    try:
        _check_regular(path, os.fstat(fd), limits)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
