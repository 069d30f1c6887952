"""What fnn's scripts share: a one-line error for a user's mistake, the device line, safe output files.

A script's output folder is checked before any work (`output_folder`: a
writable directory, its files regular files), held with an exclusive lock
for the whole run (`lock_folder`), and written only through `write_file`
(temporary file, fsync, atomic rename) and `append_lines` (fsync'd), which
turn an OSError (a full disk, a read-only folder) into one InputError naming
the file and the reason. A failed write never replaces a previous file.
"""
import argparse
import contextlib
import errno
import fcntl
import os
import re
import secrets
import stat
import sys

import jax

from fnn.atomic_file import append_synced, write_atomically
from fnn.errors import FnnError, InputError
from fnn.validate import check_number, check_positive_int

__all__ = ["ArgumentParser", "DefaultsHelpFormatter", "USER_ERRORS", "run", "one_line", "device_description", "positive_int",
           "positive_float", "fraction", "non_negative_float", "int_in_range", "os_reason", "output_folder", "check_regular_files",
           "lock_folder", "write_file", "append_lines", "LOCK_FILE"]

# A user's mistake, which fnn raised on purpose (fnn.errors): one line on stderr, exit code 2,
# no traceback. Any other exception is a bug and keeps its traceback.
USER_ERRORS = (FnnError,)
LOCK_FILE = ".lock"


def one_line(text):
    """`text` with every line break (and run of whitespace around it) made one space."""
    return re.sub(r"\s*[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]+\s*", " ", str(text)).strip()


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line (exit 2) instead of usage + error."""

    def error(self, message):
        self.exit(2, one_line(f"{self.prog}: error: {message}") + "\n")


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """--help that adds "(default: X)" to a flag whose help does not already name its default."""

    def _get_help_string(self, action):
        text = action.help or ""
        if ("default" in text or action.default is None or action.default is False
                or action.default == argparse.SUPPRESS
                or action.option_strings == []):
            return text
        return f"{text} (default: {action.default})"


def run(main, argv=None, prog=None):
    """Call main(argv); a user error (FnnError) becomes one stderr line and exit code 2.

    prog: the name the line starts with (default: the script's file name).
    """
    if prog is None:
        prog = (sys.argv[0].rsplit("/", 1)[-1]) if sys.argv else "fnn"
    try:
        return main(argv)
    except USER_ERRORS as e:
        print(one_line(f"{prog}: error: {e}"), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def device_description():
    """e.g. 'cpu (TFRT_CPU_0)' or 'gpu (NVIDIA H100 80GB HBM3) x1'."""
    devices = jax.devices()
    d = devices[0]
    return f"{d.platform} ({d.device_kind}) x{len(devices)}"


def _argument_type(parse, check, expected):
    """An argparse type: the text parsed, then checked by an fnn.validate function."""
    def convert(text):
        try:
            return check("value", parse(text))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    convert.__doc__ = f"argparse type: {expected}."
    return convert


positive_int = _argument_type(int, check_positive_int, "a positive integer")
positive_float = _argument_type(float, lambda name, v: check_number(name, v, 0, low_open=True),
                                "a positive finite number")


fraction = _argument_type(float, lambda name, v: check_number(name, v, 0, 1, high_open=True),
                          "a number in [0, 1)")
non_negative_float = _argument_type(float, lambda name, v: check_number(name, v, 0), "a finite number ≥ 0")


def int_in_range(low, high):
    """An argparse type: an integer in [low, high], e.g. int_in_range(1, 2**31 - 1)."""
    def check(name, value):
        if not low <= value <= high:
            raise InputError(f"{name} out of range")
        return value
    return _argument_type(int, check, f"an integer from {low:,} to {high:,}")


# ---- output files ----------------------------------------------------------------------------

def os_reason(error):
    """The OS's reason for an OSError ('No space left on device'), or the error's text."""
    return error.strerror or str(error) if isinstance(error, OSError) else str(error)


def output_folder(path, flag="--out"):
    """`path` made (if needed) and checked to be a directory this process can write files in.

    A probe file is created in it and removed. Raises InputError naming `flag`,
    the path and the OS's reason, before any work is done.
    """
    if not isinstance(path, str) or not path.strip():
        raise InputError(f"{flag} must name a folder, got {path!r}")
    try:
        if os.path.lexists(path) and not os.path.isdir(path):
            raise InputError(f"{flag} {path!r} is not a folder (a file of that name exists)")
        os.makedirs(path, exist_ok=True)
    except (OSError, ValueError) as e:
        raise InputError(f"{flag} {path!r}: cannot create the folder ({os_reason(e)})") from None
    probe = os.path.join(path, f".probe-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"x")
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as e:
        raise InputError(f"{flag} {path!r} is not a writable folder ({os_reason(e)})") from None
    return path


def check_regular_files(folder, names):
    """InputError unless each FOLDER/NAME that exists is a regular file (not a FIFO, folder, device)."""
    for name in names:
        path = os.path.join(folder, name)
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            if os.path.lexists(path):
                raise InputError(f"{path!r} is a broken symbolic link, not a regular file") from None
            continue
        except (OSError, ValueError) as e:
            raise InputError(f"cannot inspect {path!r} ({os_reason(e)})") from None
        if not stat.S_ISREG(mode):
            raise InputError(f"{path!r} exists and is not a regular file; move it away or choose another folder")


@contextlib.contextmanager
def lock_folder(folder, flag="--out"):
    """Hold an exclusive lock on FOLDER/.lock for the block; InputError at once if another run holds it.

    flock(2) locks die with the process, so a killed run never leaves the folder locked.
    The lock file holds the owner's pid, for the message; it is left in place.
    """
    path = os.path.join(folder, LOCK_FILE)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NONBLOCK, 0o644)
    except OSError as e:
        raise InputError(f"{flag} {folder!r}: cannot create the lock file {path!r} ({os_reason(e)})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise InputError(f"{flag} {folder!r}: cannot lock {path!r} ({os_reason(e)})") from None
            owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise InputError(f"{flag} {folder!r} is in use by another run (pid {owner})") from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as e:
            raise InputError(f"cannot write the lock file {path!r} ({os_reason(e)})") from None
        yield path
    finally:
        os.close(fd)                                    # releases the lock


def write_file(path, data):
    """Write bytes or str `data` to `path` atomically (fnn.atomic_file: a temporary beside it, fsync'd, renamed).

    Raises InputError naming the path and the OS's reason (e.g. no space left on
    device); the previous file at `path`, if any, is then left as it was.
    """
    data = data.encode() if isinstance(data, str) else bytes(data)
    write_atomically(path, lambda f: f.write(data), InputError, "file")


def append_lines(path, lines):
    """Append text `lines` (each without its newline) to `path` and fsync; InputError on an OSError."""
    append_synced(path, "".join(line + "\n" for line in lines).encode(), InputError, "file")
