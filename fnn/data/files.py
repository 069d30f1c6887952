"""A user's own data from a .csv or .npz file: read, checked row by row, split into train/test.

Every problem raises DataFileError (a ValueError) whose message names the
file, the line or row, and what is wrong: ragged rows, text in a number
column, NaN/inf, labels that do not fit the task, mismatched lengths. A
missing file raises DataFileNotFoundError (also a FileNotFoundError). .npz
files are read with allow_pickle=False.
"""
import csv
import os
import zipfile

import numpy as np

from fnn.data.dataset import TASKS, Dataset, numpy_rngs
from fnn.errors import InputError, InputTypeError
from fnn.validate import check_choice, check_int_at_least, check_key, check_number

__all__ = ["DataFileError", "DataFileNotFoundError", "load_file", "MISSING_SPLIT_KEY"]

MISSING_SPLIT_KEY = (
    "{path}: holding out test_fraction={fraction} of its rows for test shuffles them with a PRNG "
    "key: call load_file({path!r}, key=jax.random.key(0)) or get_dataset({path!r}, "
    "key=jax.random.key(0)), or pass test_fraction=0 to train on every row")


class DataFileError(InputError):
    """A data file that cannot be used; the message names the file and the problem."""

    def __init__(self, path, problem):
        super().__init__(f"{path}: {problem}")
        self.path, self.problem = str(path), problem

    def __reduce__(self):
        return type(self), (self.path, self.problem)


class DataFileNotFoundError(DataFileError, FileNotFoundError):
    """The data file does not exist."""


def _csv_rows(path, delimiter):
    """[(line number, cells)] of the non-blank, non-comment lines."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        return [(i, [c.strip() for c in row]) for i, row in enumerate(csv.reader(f, delimiter=delimiter), 1)
                if row and any(c.strip() for c in row) and not row[0].lstrip().startswith("#")]


def _is_number(cell):
    try:
        float(cell)
        return True
    except ValueError:
        return False


def _read_csv(path, label_column, header, delimiter):
    """(x (n, d), y (n,), line numbers) from a CSV file."""
    rows = _csv_rows(path, delimiter)
    if not rows:
        raise DataFileError(path, "the file is empty: expected rows of numbers, features and a label")
    names = None
    if header is None:
        header = not any(_is_number(c) for c in rows[0][1])
    if header:
        names, rows = rows[0][1], rows[1:]
        if not rows:
            raise DataFileError(path, "the file has a header but no data rows")
    values = _csv_values(path, rows, names)                          # (n, width)
    column = _label_index(path, label_column, names, values.shape[1])
    lines = [line for line, _ in rows]
    return np.delete(values, column, axis=1), values[:, column], lines


def _csv_values(path, rows, names):
    """The cells of every row as float64 (n, width); the width is the header's or the first row's."""
    width = len(names) if names else len(rows[0][1])
    if width < 2:
        raise DataFileError(path, f"rows have {width} column; expected at least 2 (features and a label)")
    values = np.empty((len(rows), width), np.float64)
    for r, (line, cells) in enumerate(rows):
        if len(cells) != width:
            raise DataFileError(path, f"line {line} has {len(cells)} columns, expected {width} "
                                      f"(ragged rows)")
        for c, cell in enumerate(cells):
            try:
                values[r, c] = float(cell)
            except ValueError:
                column = f"column {c + 1}" + (f" ({names[c]!r})" if names else "")
                raise DataFileError(path, f"line {line}, {column}: {cell!r} is not a number") from None
    return values


def _label_index(path, label_column, names, width):
    """The label's column index in [0, width), from an index (negative counts from the end) or a name."""
    if isinstance(label_column, str):
        if not names or label_column not in names:
            raise DataFileError(path, f"no column named {label_column!r}; columns: {names}")
        label_column = names.index(label_column)
    if not -width <= label_column < width:
        raise DataFileError(path, f"label_column {label_column} is out of range for {width} columns")
    return label_column % width


def _npz_array(path, data, name):
    if name not in data.files:
        raise DataFileError(path, f"no array named {name!r}; arrays in the file: {', '.join(data.files)}")
    try:
        a = data[name]
    except ValueError as e:  # object arrays need pickle, which is never allowed
        raise DataFileError(path, f"array {name!r} cannot be loaded without pickle ({e}); "
                                  f"save numeric arrays") from None
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
        raise DataFileError(path, f"array {name!r} has non-numeric dtype {a.dtype}; expected numbers")
    return a


def _read_npz(path, x_key, y_key):
    """[(x, y)] for the file's split, or [(x, y), (x_test, y_test)] if it holds a test split too."""
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError, zipfile.BadZipFile) as e:
        raise DataFileError(path, f"not a readable .npz archive ({e})") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise DataFileError(path, "not an .npz archive of named arrays (use np.savez(path, x=..., y=...))")
    with data:
        splits = [(x_key, y_key)]
        test_keys = (x_key + "_test", y_key + "_test")
        present = [k in data.files for k in test_keys]
        if any(present) and not all(present):
            raise DataFileError(path, f"has {test_keys[present.index(True)]!r} but not "
                                      f"{test_keys[present.index(False)]!r}; give both or neither")
        if all(present):
            splits.append(test_keys)
        return [(_npz_array(path, data, xk), _npz_array(path, data, yk), xk, yk) for xk, yk in splits]


def _check_features(path, x, what, lines=None):
    """x as float (n, features); every value finite."""
    x = np.asarray(x, np.float64)
    if x.ndim == 0:
        raise DataFileError(path, f"{what} is a scalar; expected one row per example")
    x = x.reshape(x.shape[0], int(np.prod(x.shape[1:])))     # (n, features)
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise DataFileError(path, f"{what} has shape {x.shape}: no examples or no features")
    bad = np.argwhere(~np.isfinite(x))
    if len(bad):
        r, c = bad[0]
        row = f"line {lines[r]}" if lines else f"row {r}"
        raise DataFileError(path, f"{what}: {row}, feature {c}: value {x[r, c]:g} is not finite")
    return x


def _check_labels(path, y, task, what, lines=None):
    """Labels valid for the task: integers >= 0 (classification), 0/1 (binary), finite (regression)."""
    y = np.asarray(y, np.float64)
    if y.ndim == 0:
        raise DataFileError(path, f"{what} is a scalar; expected one label per example")
    if task == "regression":
        y = y.reshape(y.shape[0], int(np.prod(y.shape[1:])))     # (n, outputs)
    elif y.ndim == 2 and y.shape[1] == 1:
        y = y.reshape(-1)
    elif y.ndim != 1:
        raise DataFileError(path, f"{what} has shape {y.shape}; {task} labels must be one per row, shape (n,)")

    def where(i):
        r = np.unravel_index(i, y.shape)[0]
        return f"line {lines[r]}" if lines else f"row {r}"

    flat = y.reshape(-1)
    problems = [(~np.isfinite(flat), "is not finite")]
    if task == "classification":
        problems += [(flat < 0, "is negative; class labels must be 0, 1, ..., K-1"),
                     (flat != np.round(flat), "is not an integer; class labels must be 0, 1, ..., K-1")]
    elif task == "binary":
        problems += [((flat != 0) & (flat != 1), "is not 0 or 1; binary labels must be 0 or 1")]
    for mask, problem in problems:
        bad = np.flatnonzero(mask)
        if len(bad):
            raise DataFileError(path, f"{what}: {where(bad[0])}: label {flat[bad[0]]:g} {problem}")
    return y


def load_file(path, task="classification", *, label_column=-1, header=None, delimiter=",",
              x_key="x", y_key="y", test_fraction=0.2, key=None, n_classes=None):
    """A user's own data from a .npz or .csv file, checked and split into train/test.

    .csv: one example per line, the label in `label_column` (index, or name when
    there is a header), the other columns features. A first line with no number in
    it is a header (header=None); force with header=True/False. Lines starting
    with '#' are skipped.
    .npz: arrays `x_key` (n, ...) and `y_key` (n,) or (n, outputs); features are
    flattened to (n, features). If it also holds x_test and y_test, those are the
    test split and test_fraction is ignored. Loaded with allow_pickle=False.

    Args:
      path: the file.
      task: "classification" (integer labels 0..K-1), "binary" (labels 0/1) or
        "regression" (any finite targets).
      test_fraction: the share of shuffled rows held out for test, in [0, 1).
      key: PRNG key for the shuffle before the split, e.g. jax.random.key(0).
        Required when rows are held out (a TypeError shows the call); not
        needed for test_fraction=0 or an .npz with its own test split.
      n_classes: for classification, the number of classes; default max label + 1.
    Raises:
      DataFileNotFoundError (a FileNotFoundError) when the file is missing;
      DataFileError (a ValueError) naming the file and the problem otherwise;
      TypeError when a split needs a key and none (or not a PRNG key) is given.
    """
    check_choice("load_file task", task, TASKS)
    test_fraction = check_number("load_file: test_fraction", test_fraction, 0, 1, high_open=True)
    if key is not None:
        check_key("load_file: key", key)
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataFileNotFoundError(path, "no such file (expected a .npz or .csv data file)")
    if os.path.getsize(path) == 0:
        raise DataFileError(path, "the file is empty (0 bytes)")
    splits = _read_splits(path, task, label_column, header, delimiter, x_key, y_key)
    if len(splits) == 1:
        splits = _split(path, *splits[0], test_fraction, key)
    (x, y), (x_test, y_test) = splits
    n_classes = _n_classes(path, task, n_classes, y, y_test)
    name = os.path.splitext(os.path.basename(path))[0]
    return Dataset.from_arrays(name, task, n_classes, x, y, x_test, y_test)


def _read_splits(path, task, label_column, header, delimiter, x_key, y_key):
    """[(x, y)] checked for the task, or [(x, y), (x_test, y_test)] if the .npz holds a test split."""
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".csv":
        x, y, lines = _read_csv(path, label_column, header, delimiter)
        return [(_check_features(path, x, "features", lines), _check_labels(path, y, task, "labels", lines))]
    if suffix != ".npz":
        raise DataFileError(path, f"unsupported file type {suffix or '(none)'!r}; expected .npz or .csv")
    splits = []
    for x, y, xk, yk in _read_npz(path, x_key, y_key):
        x, y = _check_features(path, x, repr(xk)), _check_labels(path, y, task, repr(yk))
        if len(x) != len(y):
            raise DataFileError(path, f"{xk!r} has {len(x)} rows but {yk!r} has {len(y)}; "
                                      f"expected one label per example")
        splits.append((x, y))
    if len(splits) == 2 and splits[0][0].shape[1] != splits[1][0].shape[1]:
        raise DataFileError(path, f"train features have width {splits[0][0].shape[1]} but test "
                                  f"features {splits[1][0].shape[1]}")
    return splits


def _split(path, x, y, test_fraction, key):
    """Shuffle with `key`, hold out round(n·test_fraction) rows for test: [(x, y), (x_test, y_test)]."""
    n = len(x)
    n_test = int(round(n * test_fraction))
    if n_test == 0:
        return [(x, y), (x[:0], y[:0])]
    if n_test >= n:
        raise DataFileError(path, f"{n} examples are too few for test_fraction={test_fraction}")
    if key is None:
        raise InputTypeError(MISSING_SPLIT_KEY.format(path=path, fraction=test_fraction))
    perm = numpy_rngs("load_file: key", key, 1)[0].permutation(n)
    x, y = x[perm], y[perm]
    return [(x[n_test:], y[n_test:]), (x[:n_test], y[:n_test])]


def _n_classes(path, task, n_classes, y, y_test):
    """The given n_classes (checked against the labels) or max label + 1; 2 for binary; None for regression."""
    if task == "binary":
        return 2
    if task == "regression":
        return None
    found = int(max(y.max(initial=0), y_test.max(initial=0))) + 1
    if n_classes is None:
        return found
    if check_int_at_least("load_file: n_classes", n_classes, 2) < found:
        raise DataFileError(path, f"label {found - 1} does not fit n_classes={n_classes}")
    return int(n_classes)
