"""MNIST-1D as an .npz file that travels with the repository, for a machine without the mnist1d package.

    python -m benchmarks.gpu --write-data benchmarks/data/mnist1d.npz

writes fnn.data.mnist1d() (the published dataset: seed 42, 4000 train and 1000
test signals of 40 features, 10 classes) as the arrays x, y, x_test, y_test,
unstandardized; read_dataset loads such a file with fnn.data.load_file (sizes
checked, never unpickled) and never imports the mnist1d package.
"""
import hashlib
import io
import os

import numpy as np

import fnn
from fnn import cli
from fnn.errors import InputError

__all__ = ["DEFAULT_PATH", "write_dataset", "read_dataset", "mnist1d", "load"]

DEFAULT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "mnist1d.npz")


def write_dataset(path, ds=None):
    """Write a classification Dataset (default fnn.data.mnist1d()) to `path` as a compressed .npz.

    Returns the file's size in bytes. Raises InputError naming the path if it cannot be written.
    """
    if ds is None:
        try:
            ds = fnn.data.mnist1d()
        except ImportError:
            raise InputError(f"{path!r}: writing MNIST-1D needs the mnist1d package, which generates it "
                             "(pip install mnist1d)") from None
    buffer = io.BytesIO()
    np.savez_compressed(buffer, x=np.asarray(ds.x_train, np.float32), y=np.asarray(ds.y_train, np.int32),
                        x_test=np.asarray(ds.x_test, np.float32), y_test=np.asarray(ds.y_test, np.int32))
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise InputError(f"{path!r}: cannot create the folder {folder!r} ({cli.os_reason(e)})") from None
    cli.write_file(path, buffer.getvalue())
    return len(buffer.getvalue())


def read_dataset(path, name="mnist1d"):
    """The Dataset in an .npz written by write_dataset (x, y, x_test, y_test), unstandardized."""
    ds = fnn.data.load_file(path, "classification")
    return ds._replace(name=name)


def mnist1d(path=None):
    """MNIST-1D with features standardized by the training set's statistics.

    From the .npz at `path` if given (the mnist1d package is not imported), else
    from fnn.data.mnist1d (which needs the package, or its disk cache).
    """
    if path is None:
        from benchmarks.peers import load_mnist1d
        return load_mnist1d()
    ds, _ = fnn.data.standardize_dataset(read_dataset(path))
    return ds


def load(path=None):
    """(standardized MNIST-1D, where it came from): from `path`, else DEFAULT_PATH where it exists, else fnn.data.

    The source is a dict for the record: {"source": path, "sha256": the file's digest}.
    Raises InputError when neither a file nor the mnist1d package is there.
    """
    if path is None and os.path.isfile(DEFAULT_PATH):
        path = DEFAULT_PATH
    if path is None:
        try:
            return mnist1d(None), {"source": "fnn.data.mnist1d()"}
        except ImportError:
            raise InputError("MNIST-1D needs the mnist1d package or --data FILE "
                             "(written by python -m benchmarks.gpu --write-data FILE)") from None
    ds = mnist1d(path)
    with open(path, "rb") as f:
        return ds, {"source": path, "sha256": hashlib.sha256(f.read()).hexdigest()}
