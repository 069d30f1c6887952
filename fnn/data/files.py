"""A user's own data from a .csv or .npz file: read, checked row by row, split into train/test.

Every problem raises DataFileError (an fnn InputError, a ValueError) whose
message names the file, the line or row, and what is wrong: ragged rows, text
in a number column, NaN/inf, labels that do not fit the task, mismatched
lengths, a file that is not UTF-8 CSV or not a valid .npz. A missing file
raises DataFileNotFoundError (also a FileNotFoundError).

The file is treated as hostile: only a regular file is opened (never a FIFO
or device), and every size it claims is checked against fnn.data.Limits
before it is read or allocated (file size, decompressed array bytes, line
length, class count). .npz arrays are read without pickle and without
np.load (see fnn.data.npz). A classification file whose labels are all one
class loads with a UserWarning.
"""
import os
import warnings
from typing import Optional, Sequence, Union

import numpy as np

from fnn.data.csv_file import _is_number, read_csv
from fnn.data.dataset import TASKS, Dataset, numpy_rngs
from fnn.data.file_limits import (DEFAULT_LIMITS, DataFileError, DataFileNotFoundError, Limits,
                                  brief, check_limits, open_data_file, over_limit)
from fnn.data.npz import read_npz
from fnn.errors import InputError, InputTypeError
from fnn.typing import PRNGKey
from fnn.validate import check_choice, check_int_at_least, check_key, check_number

__all__ = ["DataFileError", "DataFileNotFoundError", "Limits", "DEFAULT_LIMITS", "load_file",
           "load_features", "MISSING_SPLIT_KEY"]

MISSING_SPLIT_KEY = (
    "{path}: holding out test_fraction={fraction} of its rows for test shuffles them with a PRNG "
    "key: call load_file({path!r}, key=jax.random.key(0)) or get_dataset({path!r}, "
    "key=jax.random.key(0)), or pass test_fraction=0 to train on every row")


def _read_npz(path, f, x_key, y_key, limits):
    """[(x, y, x name, y name)] for the file's split, and its test split (x_test, y_test) if it has one."""
    test_keys = (x_key + "_test", y_key + "_test")
    arrays, names = read_npz(path, f, (x_key, y_key) + test_keys, limits)
    for k in (x_key, y_key):
        if k not in arrays:
            raise DataFileError(path, f"no array named {k!r}; arrays in the file: "
                                      f"{brief(', '.join(names)) or '(none)'}")
    present = [k in arrays for k in test_keys]
    if any(present) and not all(present):
        raise DataFileError(path, f"has {test_keys[present.index(True)]!r} but not "
                                  f"{test_keys[present.index(False)]!r}; give both or neither")
    splits = [(x_key, y_key)] + ([test_keys] if all(present) else [])
    return [(arrays[xk], arrays[yk], xk, yk) for xk, yk in splits]


def _check_features(path, x, what, lines=None):
    """x as float32 (n, features), as fnn trains on it; every value finite in float32."""
    if x.ndim == 0:
        raise DataFileError(path, f"{what} is a scalar; expected one row per example")
    with np.errstate(over="ignore", invalid="ignore"):
        x32 = np.asarray(x, np.float32)
    x32 = x32.reshape(x.shape[0], int(np.prod(x.shape[1:])))     # (n, features)
    if x32.shape[0] == 0 or x32.shape[1] == 0:
        raise DataFileError(path, f"{what} has shape {x32.shape}: no examples or no features")
    bad = np.argwhere(~np.isfinite(x32))
    if len(bad):
        r, c = bad[0]
        row = f"line {lines[r]}" if lines else f"row {r}"
        value = np.asarray(x).reshape(x32.shape)[r, c]
        why = "is not finite" if not np.isfinite(value) else "overflows float32 (|x| > 3.4e38), the precision fnn trains in"
        raise DataFileError(path, f"{what}: {row}, feature {c}: value {value:g} {why}")
    return x32


def _label_problems(task, flat, limits):
    """[(bad mask, problem)] of the labels, checked in this order."""
    problems = [(~np.isfinite(flat), "is not finite")]
    if task == "classification":
        problems += [(flat < 0, "is negative; class labels must be 0, 1, ..., K-1"),
                     (flat != np.round(flat), "is not an integer; class labels must be 0, 1, ..., K-1 "
                                              "(for real-valued targets use task='regression')"),
                     (flat >= limits.max_classes,
                      f"would make more than {limits.max_classes:,} classes (the class count is the "
                      f"largest label + 1; expected labels 0..{limits.max_classes - 1}); "
                      + over_limit(limits, "max_classes"))]
    elif task == "binary":
        problems += [((flat != 0) & (flat != 1), "is not 0 or 1; binary labels must be 0 or 1")]
    else:
        problems += [(np.abs(flat) > np.finfo(np.float32).max, "overflows float32 (|y| > 3.4e38), "
                                                              "the precision fnn trains in")]
    return problems


def _check_labels(path, y, task, what, limits, lines=None):
    """Labels valid for the task: integers in [0, max_classes) (classification), 0/1 (binary), finite (regression)."""
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
    for mask, problem in _label_problems(task, flat, limits):
        bad = np.flatnonzero(mask)
        if len(bad):
            raise DataFileError(path, f"{what}: {where(bad[0])}: label {flat[bad[0]]:g} {problem}")
    return y


def _check_options(label_column, delimiter, x_key, y_key):
    if not (isinstance(label_column, str) or (isinstance(label_column, int) and not isinstance(label_column, bool))):
        raise InputTypeError(f"load_file: label_column must be a column index or a header name, "
                             f"got {label_column!r}")
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in '\r\n"':
        raise InputError(f"load_file: delimiter must be one character such as ',' or ';' (not a "
                         f"quote or newline), got {delimiter!r}")
    for name, value in (("x_key", x_key), ("y_key", y_key)):
        if not isinstance(value, str) or not value:
            raise InputTypeError(f"load_file: {name} must be an array name such as 'x', got {value!r}")


def load_file(path: Union[str, os.PathLike], task: str = "classification", *, label_column: Union[int, str] = -1,
              header: Optional[bool] = None, delimiter: str = ",", x_key: str = "x", y_key: str = "y",
              test_fraction: float = 0.2, key: Optional[PRNGKey] = None, n_classes: Optional[int] = None,
              limits: Optional[Limits] = None, class_names: Optional[Sequence[str]] = None) -> Dataset:
    """A user's own data from a .npz or .csv file, checked and split into train/test.

    .csv: UTF-8 text, one example per line, the label in `label_column` (index,
    or name when there is a header), the other columns features. Labels are
    class indices 0..K-1, or class names (any word in the label column):
    names are numbered in sorted order and kept as Dataset.class_names. A first line
    with no number in it is a header (header=None); force with header=True/False.
    Lines starting with '#' are skipped.
    .npz: arrays `x_key` (n, ...) and `y_key` (n,) or (n, outputs) of bool, int
    or float dtype; features are flattened to (n, features). If it also holds
    x_test and y_test, those are the test split and test_fraction is ignored.
    Never unpickles.

    Args:
      path: the file (a regular file: a directory, FIFO or device is refused).
      task: "classification" (integer labels 0..K-1), "binary" (labels 0/1) or
        "regression" (any finite targets).
      label_column: .csv: the label's column, an index (-1: the last) or, with a
        header, its name.
      header: .csv: None to detect a header line, True or False to say.
      delimiter: .csv: the one-character column separator.
      x_key, y_key: .npz: the names of the feature and target arrays.
      test_fraction: the share of shuffled rows held out for test, in [0, 1).
      key: PRNG key for the shuffle before the split, e.g. jax.random.key(0).
        Required when rows are held out (a TypeError shows the call); not
        needed for test_fraction=0 or an .npz with its own test split.
      n_classes: for classification, the number of classes; default max label + 1.
      class_names: the names of the classes in their index order (a trained run's,
        so the labels mean the same classes): a CSV's named labels are numbered
        by them (a name not among them is refused), an .npz's integer labels are
        indices into them. Default: a CSV's own names, sorted.
      limits: a fnn.data.Limits bounding what the file may make fnn read and
        allocate; default DEFAULT_LIMITS = Limits() (1 GiB file, 1 GiB of
        decompressed data, 10,000 classes, 4 Mi-character CSV lines).

    Returns:
      The Dataset, named after the file (without its extension).

    Raises:
      DataFileNotFoundError (a FileNotFoundError) when the file is missing;
      DataFileError (a ValueError) naming the file and the problem otherwise;
      TypeError when a split needs a key and none (or not a PRNG key) is given.

    Warns:
      UserWarning when every classification (or binary) label is the same class.
    """
    check_choice("load_file task", task, TASKS)
    test_fraction = check_number("load_file: test_fraction", test_fraction, 0, 1, high_open=True)
    if key is not None:
        check_key("load_file: key", key)
    _check_options(label_column, delimiter, x_key, y_key)
    limits = check_limits(limits)
    path = _path("load_file", path)
    if class_names is not None:
        class_names = _check_class_names(class_names)
    splits, class_names = _read_splits(path, task, label_column, header, delimiter, x_key, y_key, limits,
                                       class_names)
    if len(splits) == 1:
        splits = _split(path, *splits[0], test_fraction, key)
    (x, y), (x_test, y_test) = splits
    if class_names is not None and task == "classification":
        n_classes = len(class_names) if n_classes is None else n_classes
    n_classes = _n_classes(path, task, n_classes, y, y_test)
    _warn_one_class(path, task, y, y_test)
    name = os.path.splitext(os.path.basename(path))[0]
    return Dataset.from_arrays(name, task, n_classes, x, y, x_test, y_test, class_names=class_names)


def _check_class_names(names):
    if isinstance(names, str) or not all(isinstance(n, str) for n in names) or len(set(names)) != len(names):
        raise InputTypeError(f"load_file: class_names must be distinct strings, got {names!r:.200}")
    return tuple(names)


def _path(where, path):
    """path as a str, or InputTypeError naming `where`."""
    path = os.fspath(path)
    if not isinstance(path, str):
        raise InputTypeError(f"{where}: path must be a str or os.PathLike of str, got {path!r}")
    return path


def _suffix(path):
    """".csv" or ".npz" (any case), or DataFileError for another file type."""
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in (".csv", ".npz"):
        raise DataFileError(path, f"unsupported file type {suffix or '(none)'!r}; expected .npz or .csv")
    return suffix


def _read_splits(path, task, label_column, header, delimiter, x_key, y_key, limits, class_names=None):
    """([(x, y)] checked for the task, or [(x, y), (x_test, y_test)] if the .npz holds a test split;
    class names, or None for numeric labels)."""
    suffix = _suffix(path)
    with open_data_file(path, limits) as f:
        if suffix == ".csv":
            x, y, lines = read_csv(path, f, label_column, header, delimiter, limits)
            if isinstance(y, list):                      # class names: a word in the label column
                y, class_names = _encode_names(path, y, task, class_names, lines)
            elif class_names is not None:
                raise DataFileError(path, f"its labels are numbers, but the classes are named "
                                          f"({brief(', '.join(class_names))}); expected those names")
            return [(_check_features(path, x, "features", lines),
                     _check_labels(path, y, task, "labels", limits, lines))], class_names
        read = _read_npz(path, f, x_key, y_key, limits)
    splits = []
    for x, y, xk, yk in read:
        x, y = _check_features(path, x, repr(xk)), _check_labels(path, y, task, repr(yk), limits)
        if len(x) != len(y):
            raise DataFileError(path, f"{xk!r} has {len(x)} rows but {yk!r} has {len(y)}; "
                                      f"expected one label per example")
        splits.append((x, y))
    if len(splits) == 2 and splits[0][0].shape[1] != splits[1][0].shape[1]:
        raise DataFileError(path, f"train features have width {splits[0][0].shape[1]} but test "
                                  f"features {splits[1][0].shape[1]}")
    return splits, class_names       # an .npz's labels are indices, into class_names if given


def _encode_names(path, labels, task, class_names, lines):
    """Class-name labels → (indices float64 (n,), names): the names sorted, or the given ones."""
    if task == "regression":
        i = next(i for i, label in enumerate(labels) if not _is_number(label))
        raise DataFileError(path, f"labels: line {lines[i]}: {brief(repr(labels[i]), 40)} is not a number; "
                                  "regression targets must be numbers")
    if class_names is None:
        class_names = tuple(sorted(set(labels)))
        if task == "binary" and len(class_names) > 2:
            raise DataFileError(path, f"labels have {len(class_names)} names ({brief(', '.join(class_names))}); "
                                      "binary labels need two")
    index = {name: i for i, name in enumerate(class_names)}
    for i, label in enumerate(labels):
        if label not in index:
            raise DataFileError(path, f"labels: line {lines[i]}: {brief(repr(label), 40)} is not one of the "
                                      f"classes ({brief(', '.join(class_names))})")
    return np.array([index[label] for label in labels], np.float64), tuple(class_names)


def _split(path, x, y, test_fraction, key):
    """Shuffle with `key`, hold out round(n·test_fraction) rows for test: [(x, y), (x_test, y_test)]."""
    n = len(x)
    if test_fraction == 0:
        return [(x, y), (x[:0], y[:0])]
    n_test = int(round(n * test_fraction))
    if n_test == 0 or n_test >= n:
        left = "no test rows" if n_test == 0 else "no training rows"
        fewest = int(0.5 / min(test_fraction, 1 - test_fraction)) + 1
        raise DataFileError(path, f"{n} examples are too few for test_fraction={test_fraction:g}: "
                                  f"holding out round({n} × {test_fraction:g}) = {n_test} for test "
                                  f"leaves {left}; expected at least {fewest} rows, or pass "
                                  f"test_fraction=0 to train on every row without a test split")
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


def _warn_one_class(path, task, y, y_test):
    """A UserWarning when every label is the same class: training would learn nothing from it."""
    if task == "regression":
        return
    classes = np.unique(np.concatenate([y.reshape(-1), y_test.reshape(-1)]))
    if len(classes) == 1:
        warnings.warn(f"{path}: every label is {classes[0]:g}: the data has one class, so a "
                      f"{task} model learns nothing from it (it predicts {classes[0]:g} for every "
                      f"input and its loss falls toward 0); expected at least two classes",
                      UserWarning, stacklevel=3)


def load_features(path: Union[str, os.PathLike], *, header: Optional[bool] = None, delimiter: str = ",",
                  x_key: str = "x", limits: Optional[Limits] = None) -> np.ndarray:
    """Inputs without labels, to predict on: a .csv of feature columns only, or an .npz's `x_key` array.

    Read and checked as load_file reads features (UTF-8 CSV, a header detected as
    there, every value finite in float32; .npz without pickle; sizes bounded by limits).

    Args:
      path: the .csv or .npz file.
      header, delimiter: as load_file's (CSV only).
      x_key: the .npz array of features (n, ...), flattened to (n, features).
      limits: a fnn.data.Limits (default DEFAULT_LIMITS).

    Returns:
      x, float32 (n, features).

    Raises:
      DataFileNotFoundError, or DataFileError naming the file and the problem.
    """
    limits = check_limits(limits)
    path = _path("load_features", path)
    suffix = _suffix(path)
    with open_data_file(path, limits) as f:
        if suffix == ".csv":
            x, _, lines = read_csv(path, f, None, header, delimiter, limits)
            return _check_features(path, x, "features", lines)
        arrays, names = read_npz(path, f, (x_key,), limits)
    if x_key not in arrays:
        raise DataFileError(path, f"no array named {x_key!r}; arrays in the file: {brief(', '.join(names)) or '(none)'}")
    return _check_features(path, arrays[x_key], repr(x_key))
