"""Files written atomically and read only when regular: the file handling of fnn.checkpoint and the scripts.

    write_atomically(path, lambda f: np.savez(f, **arrays), CheckpointError, "checkpoint")
    append_synced(path, b"a line\n", InputError, "metrics log")
    with open_regular(path, CheckpointError, "checkpoint") as f: ...

Writing goes to a hidden temporary `.NAME.tmp-XXXX.EXT` in the folder of
`path`, fsync'd, then renamed over `path` (an atomic replace on POSIX): a
crash leaves the old file or the new one, never a partial one, and a
temporary left by a killed writer is removed by the next write to the same
path. A path that exists but is not a regular file (a directory, a FIFO) is
refused before anything is written or read, and an OSError (a full disk, a
permission) becomes `error` naming the path and the OS reason.
"""
import contextlib
import os
import secrets
import stat

__all__ = ["write_atomically", "append_synced", "open_regular", "file_kind", "temporary_prefix"]


def file_kind(mode):
    """'a directory', 'a FIFO (named pipe)', ... for an st_mode that is not a regular file."""
    for test, kind in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return kind
    return "not a regular file"


def _check_writable(path, error, what):
    """error if `path` exists and is not a regular file (a directory, a FIFO, ...)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as e:
        raise error(f"cannot write {what} {path!r}: {e.strerror or e}") from e
    if not stat.S_ISREG(mode):
        raise error(f"cannot write {what} {path!r}: it is {file_kind(mode)}; expected the path of a file")


def write_atomically(path, write_to, error, what):
    """write_to(f) into a temporary beside `path`, fsync'd and renamed over it.

    Any OSError becomes `error` naming the path and the reason; the temporary is
    removed and a previous file at `path` is left as it was.
    """
    _check_writable(path, error, what)
    folder = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        os.makedirs(folder, exist_ok=True)
        prefix = temporary_prefix(path)
        _remove_stale_temporaries(folder, prefix)
        fd, tmp = _create_temporary(folder, prefix, os.path.splitext(os.fspath(path))[1])
        with os.fdopen(fd, "wb") as f:
            write_to(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        raise error(f"cannot write {what} {path!r}: {e.strerror or e}; the previous {what} "
                    "there, if any, is unchanged") from e
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    try:
        _fsync_folder(folder)
    except OSError as e:
        raise error(f"{what} {path!r} was written but its folder could not be synced to disk "
                    f"({e.strerror or e}); it may not survive a crash") from e


def append_synced(path, data, error, what):
    """Append bytes `data` to `path` (created if missing) and fsync it.

    An OSError becomes `error` naming the path and the reason, and the file is
    cut back to its length before the append: it holds what it held, no partial line.
    """
    _check_writable(path, error, what)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    except OSError as e:
        raise error(f"cannot append to {what} {path!r}: {e.strerror or e}") from e
    with os.fdopen(fd, "ab") as f:
        length = os.fstat(fd).st_size
        try:
            f.write(data)
            f.flush()
            os.fsync(fd)
        except OSError as e:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, length)
            raise error(f"cannot append to {what} {path!r}: {e.strerror or e}; it is kept as it "
                        "was before") from e


def _fsync_folder(folder):
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@contextlib.contextmanager
def open_regular(path, error, what):
    """The file at `path` open for reading in binary, or `error` if it is missing or not a regular file.

    It is opened non-blocking and fstat'ed before anything reads from it, so a
    FIFO (which would block) or a directory is refused at once.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise error(f"no {what} at {path!r}") from None
    except OSError as e:
        raise error(f"cannot read {what} {path!r}: {e.strerror or e}") from None
    try:
        mode = os.fstat(fd).st_mode
    except OSError as e:
        os.close(fd)
        raise error(f"cannot read {what} {path!r}: {e.strerror or e}") from None
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise error(f"cannot read {what} {path!r}: it is {file_kind(mode)}; expected a {what} file")
    with os.fdopen(fd, "rb") as f:
        yield f


def temporary_prefix(path):
    """'.NAME.tmp-': the hidden prefix of write_atomically's temporary files for `path`."""
    return f".{os.path.basename(os.fspath(path))}.tmp-"


def _create_temporary(folder, prefix, extension):
    """(fd, path) of a new file PREFIX<random>EXTENSION, with the permissions np.savez would give it.

    tempfile.mkstemp would create it 0600, and the file renamed from it
    would be unreadable to anyone but its owner; 0666 here is narrowed by the umask.
    """
    while True:
        tmp = os.path.join(folder, f"{prefix}{secrets.token_hex(6)}{extension}")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue


def _remove_stale_temporaries(folder, prefix):
    """Delete temporaries of this file that a killed writer left behind."""
    for name in os.listdir(folder):
        if name.startswith(prefix):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(folder, name))
