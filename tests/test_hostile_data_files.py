"""load_file on hostile files: every failure is a DataFileError naming the file, nothing huge is allocated.

Cases by class: zip-level damage (bad CRC, truncated, not a zip, a member that
is not a .npy); .npy headers that claim huge or impossible shapes, or dtypes
that need pickle or are complex; zip bombs (refused from the zip directory and
the header, before inflating: tracemalloc shows the peak); CSV files beyond
the size limits, not UTF-8, with NUL bytes or very long lines; huge class
labels; splits that leave no rows; one-class data (a warning); FIFOs,
directories and devices (refused from os.stat, never opened for a blocking
read). Then hypothesis: random bytes and text as .csv/.npz, random valid-ish
archives and random damage to a valid one must load or raise an FnnError,
never another exception.
"""
import io
import os
import stat
import threading
import tracemalloc
import warnings
import zipfile

import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from numpy.lib import format as npy_format

import fnn
from fnn import data
from fnn.data import DataFileError, Limits
from fnn.errors import FnnError, InputTypeError

KEY = jax.random.key(0)
MiB = 1 << 20


def _npy(dtype="<f8", shape=(2, 2), body=None, fortran=False):
    """The bytes of a .npy member whose header claims `shape` of `dtype`; body defaults to zeros of that size."""
    f = io.BytesIO()
    npy_format.write_array_header_1_0(f, {"descr": dtype, "fortran_order": fortran, "shape": shape})
    if body is None:
        body = bytes(int(np.prod(shape)) * np.dtype(dtype).itemsize)
    return f.getvalue() + body


def _zip(path, members, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression) as z:
        for name, payload in members.items():
            z.writestr(name, payload)
    return path


def _raises(path, match, **kwargs):
    """The DataFileError load_file raises for `path`; its message names the file and matches `match`."""
    kwargs.setdefault("test_fraction", 0.0)
    with pytest.raises(DataFileError, match=match) as info:
        data.load_file(path, **kwargs)
    assert str(path) in str(info.value)
    return info.value


def _peak_bytes(call):
    """The most memory (bytes) Python and numpy held while `call()` ran."""
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# ------------------------------------------------------------------ 1. zip-level failures

def test_bad_crc_truncated_and_not_a_zip(tmp_path):
    x = np.arange(64, dtype=np.float64).reshape(32, 2)
    good = tmp_path / "good.npz"
    np.savez(good, x=x, y=np.arange(32) % 2)
    raw = bytearray(good.read_bytes())
    at = raw.index(x.tobytes()[8 * 40:8 * 41])                  # one value inside x's data
    raw[at] ^= 0xFF
    (tmp_path / "crc.npz").write_bytes(bytes(raw))
    _raises(tmp_path / "crc.npz", r"not a readable .npz archive \(BadZipFile: Bad CRC-32")
    np.savez_compressed(tmp_path / "deflated.npz", x=x, y=np.arange(32) % 2)
    raw = bytearray((tmp_path / "deflated.npz").read_bytes())
    raw[60] ^= 0xFF                                            # inside x.npy's deflate stream
    (tmp_path / "deflated_bad.npz").write_bytes(bytes(raw))
    _raises(tmp_path / "deflated_bad.npz", "not a readable .npz archive")
    for cut in (10, len(raw) // 2, len(raw) - 5):
        (tmp_path / f"cut{cut}.npz").write_bytes(good.read_bytes()[:cut])
        _raises(tmp_path / f"cut{cut}.npz", "not a readable .npz archive|truncated")
    (tmp_path / "text.npz").write_text("x,y\n1,2\n")
    _raises(tmp_path / "text.npz", r"not a readable .npz archive \(BadZipFile: File is not a zip file\)")


def test_members_that_are_not_npy_arrays(tmp_path):
    _raises(_zip(tmp_path / "text_member.npz", {"x.npy": b"hello world", "y.npy": _npy(shape=(2,))}),
            "member 'x' is not a .npy array")
    _raises(_zip(tmp_path / "no_suffix.npz", {"x": b"\x93NUMPY\x01\x00" + b"\x00" * 20, "y.npy": _npy(shape=(2,))}),
            "'x' has a malformed .npy header|not a readable")
    _raises(_zip(tmp_path / "version.npz", {"x.npy": b"\x93NUMPY\x07\x00rest", "y.npy": _npy(shape=(2,))}),
            r"format version \(7, 0\)")
    garbage_header = b"\x93NUMPY\x01\x00" + (20).to_bytes(2, "little") + b"{'descr': __import__}\n"
    _raises(_zip(tmp_path / "code.npz", {"x.npy": garbage_header, "y.npy": _npy(shape=(2,))}),
            "'x' has a malformed .npy header")
    np.save(tmp_path / "single.npy", np.ones(3))
    os.rename(tmp_path / "single.npy", tmp_path / "single.npz")
    _raises(tmp_path / "single.npz", r"single .npy array, not an .npz archive.*np.savez")


def test_encrypted_member(tmp_path):
    path = _zip(tmp_path / "locked.npz", {"x.npy": _npy(), "y.npy": _npy(shape=(2,))})
    raw = bytearray(path.read_bytes())
    raw[6] |= 0x1                                              # x.npy's local header: "encrypted"
    raw[raw.index(b"PK\x01\x02") + 8] |= 0x1                  # and its central directory entry
    path.write_bytes(bytes(raw))
    _raises(path, "not a readable .npz archive .*encrypted, password required")


# ------------------------------------------------------------------ 2. .npy headers

@pytest.mark.parametrize("name, header, match", [
    ("rows.npz", dict(shape=(10 ** 12, 2), body=b""), r"claims shape \(1000000000000, 2\) of float64: 16,000,000,000,000 bytes"),
    ("wide.npz", dict(shape=(2, 2 ** 62), body=b""), r"claims shape \(2, 4611686018427387904\)"),
    ("negative.npz", dict(shape=(-1, 2), body=b""), r"shape \(-1, 2\) in its .npy header; expected non-negative"),
    ("object.npz", dict(dtype="|O", shape=(2,), body=b""), "dtype object.*without pickle"),
    ("struct.npz", dict(dtype=[("a", "<f8")], shape=(2,)), "non-numeric dtype"),
    ("strings.npz", dict(dtype="<U3", shape=(2,)), "non-numeric dtype <U3"),
    ("complex.npz", dict(dtype="<c16", shape=(2, 2)), "complex dtype complex128; complex numbers are not supported"),
    ("short.npz", dict(shape=(3, 2), body=b"\x00" * 10), r"holds 10 bytes of data but its header claims shape \(3, 2\)"),
    ("long.npz", dict(shape=(1, 2), body=b"\x00" * 40), "holds 40 bytes of data but its header claims"),
])
def test_npy_header_checked_before_allocating(tmp_path, name, header, match):
    path = _zip(tmp_path / name, {"x.npy": _npy(**header), "y.npy": _npy(shape=(2,))})
    assert _peak_bytes(lambda: _raises(path, match)) < 4 * MiB


def test_fortran_order_and_big_endian_arrays_load(tmp_path):
    x = np.arange(12, dtype=">f4").reshape(6, 2)
    path = _zip(tmp_path / "orders.npz", {"x.npy": _npy(">f4", (6, 2), np.asfortranarray(x).tobytes("F"), True),
                                          "y.npy": _npy("<i8", (6,), (np.arange(6) % 3).tobytes())})
    ds = data.load_file(path, test_fraction=0.0)
    np.testing.assert_array_equal(ds.x_train, x.astype(np.float32))
    np.testing.assert_array_equal(ds.y_train, np.arange(6) % 3)


# ------------------------------------------------------------------ 3. zip bombs and file sizes

def _bomb(path, nbytes):
    """An .npz whose x.npy inflates to `nbytes` of zeros from a few KB, written in chunks."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open("x.npy", "w", force_zip64=True) as w:
            w.write(_npy("<f8", (nbytes // 8, 1), b""))
            for _ in range(nbytes // MiB):
                w.write(bytes(MiB))
        z.writestr("y.npy", _npy("<f8", (nbytes // 8,), b""))
    return path


def test_zip_bomb_refused_before_inflating(tmp_path):
    path = _bomb(tmp_path / "bomb.npz", 64 * MiB)
    assert path.stat().st_size < 256 * 1024
    limits = Limits(max_array_bytes=16 * MiB)
    peak = _peak_bytes(lambda: _raises(path, r"array 'x' inflates to 67,10\d,\d+ bytes.*16,777,216 bytes "
                                             r"\(16.0 MiB\) allowed.*Limits\(max_array_bytes=", limits=limits))
    assert peak < 4 * MiB


def test_zip_directory_claiming_gigabytes_refused_under_default_limits(tmp_path):
    path = _zip(tmp_path / "claims.npz", {"x.npy": _npy(shape=(4, 2)), "y.npy": _npy(shape=(4,))})
    raw = bytearray(path.read_bytes())
    central = raw.index(b"PK\x01\x02")                         # x.npy's central directory entry
    raw[central + 24:central + 28] = (0xF0000000).to_bytes(4, "little")    # uncompressed size 3.75 GiB
    (tmp_path / "claims.npz").write_bytes(bytes(raw))
    _raises(path, r"array 'x' inflates to 4,026,531,840 bytes \(3.8 GiB\).*268,435,456 bytes \(256.0 MiB\) allowed")


def test_total_of_arrays_is_limited_too(tmp_path):
    path = tmp_path / "two.npz"
    np.savez(path, x=np.zeros((3 * MiB // 8, 1)), y=np.zeros(3 * MiB // 8))
    _raises(path, "arrays 'x', 'y' inflate to .* together, more than the 4,194,304 bytes",
            limits=Limits(max_array_bytes=4 * MiB))
    np.savez(path, x=np.zeros((128, 1)), y=np.arange(128) % 2, x_test=np.zeros((400, 1)), y_test=np.zeros(400))
    _raises(path, "array 'x_test' claims .* with the arrays before it", limits=Limits(max_array_bytes=4096))
    assert data.load_file(path, limits=Limits(max_array_bytes=1 * MiB)).x_test.shape == (400, 1)


def test_file_size_limit_from_stat(tmp_path):
    path = tmp_path / "big.csv"
    path.write_text("".join(f"{i},{i % 2}\n" for i in range(300)))
    _raises(path, r"the file is \d,\d+ bytes .*larger than the 1,000 bytes allowed.*Limits\(max_file_bytes=",
            limits=Limits(max_file_bytes=1000))
    np.savez(tmp_path / "big.npz", x=np.ones((300, 2)), y=np.zeros(300))
    _raises(tmp_path / "big.npz", "larger than the 1,000 bytes allowed", limits=Limits(max_file_bytes=1000))
    assert len(data.load_file(path, test_fraction=0.0, limits=Limits(max_file_bytes=10_000)).x_train) == 300


def test_csv_values_and_lines_are_limited(tmp_path):
    path = tmp_path / "many.csv"
    path.write_text("".join(f"{i},{i},{i % 2}\n" for i in range(100)))
    _raises(path, r"at line 43, the values read so far pass 1,024 bytes.*max_array_bytes",
            limits=Limits(max_array_bytes=1024))
    (tmp_path / "long.csv").write_text("1,0\n" + ",".join(["1"] * 100) + ",0\n")
    _raises(tmp_path / "long.csv", r"line 2 is longer than 100 characters.*max_line_chars",
            limits=Limits(max_line_chars=100))
    (tmp_path / "field.csv").write_text("1" * 200_000 + ",0\n")
    _raises(tmp_path / "field.csv", r"line 1: field larger than field limit")


def test_limits_are_checked(tmp_path):
    path = tmp_path / "ok.csv"
    path.write_text("1,0\n2,1\n")
    with pytest.raises(InputTypeError, match="limits must be a fnn.data.Limits.*got 5"):
        data.load_file(path, test_fraction=0.0, limits=5)
    with pytest.raises(ValueError, match="limits.max_classes must be a positive integer, got 0"):
        data.load_file(path, test_fraction=0.0, limits=Limits(max_classes=0))
    with pytest.raises(InputTypeError, match="limits must be"):
        data.get_dataset("xor", limits={"max_classes": 3})
    assert data.get_dataset("xor", limits=Limits()).n_classes == 2            # ignored for a name
    assert data.get_dataset(str(path), test_fraction=0.0, limits=Limits(max_classes=5)).n_classes == 2
    assert data.DEFAULT_LIMITS == Limits(1 << 30, 256 << 20, 10_000, 1 << 22)


# ------------------------------------------------------------------ 4. class labels

def test_class_count_is_limited(tmp_path):
    path = tmp_path / "huge_label.csv"
    path.write_text("1,2,0\n3,4,1e9\n")
    error = _raises(path, r"line 2: label 1e\+09 would make more than 10,000 classes.*"
                          r"Limits\(max_classes=\.\.\.\)")
    assert "labels 0..9999" in str(error)
    np.savez(tmp_path / "int64.npz", x=np.ones((2, 2)), y=np.array([0, 2 ** 62]))
    _raises(tmp_path / "int64.npz", r"'y': row 1: label 4.61169e\+18 would make more than 10,000 classes")
    np.savez(tmp_path / "uint64.npz", x=np.ones((2, 2)), y=np.array([0, 2 ** 64 - 1], np.uint64))
    _raises(tmp_path / "uint64.npz", "would make more than 10,000 classes")
    (tmp_path / "ok.csv").write_text("1,2,0\n3,4,19999\n")
    assert data.load_file(tmp_path / "ok.csv", test_fraction=0.0, limits=Limits(max_classes=20_000)).n_classes == 20_000
    assert data.load_file(path, task="regression", test_fraction=0.0).y_train[1, 0] == 1e9


def test_non_integer_labels_point_to_regression(tmp_path):
    path = tmp_path / "prices.csv"
    path.write_text("1,2,0.25\n3,4,1.5\n")
    _raises(path, r"line 1: label 0.25 is not an integer.*task='regression'")
    assert data.load_file(path, task="regression", test_fraction=0.0).y_train.shape == (2, 1)


# ------------------------------------------------------------------ 5. text that is not UTF-8 CSV

@pytest.mark.parametrize("name, raw, match", [
    ("utf16.csv", "a,b,y\n1,2,0\n".encode("utf-16"), "not UTF-8 text.*UTF-16 byte-order mark"),
    ("utf16le.csv", "1,2,0\n".encode("utf-16-le"), "not UTF-8 text.*line 1 holds a NUL byte"),
    ("latin1.csv", "caf\u00e9,b,y\n1,2,0\n".encode("latin-1"), r"not UTF-8 text \(byte 0xe9 near line 1"),
    ("binary.csv", bytes(range(128, 256)) * 4, "not UTF-8 text.*byte 0x80"),
    ("nul.csv", b"1,2,0\n3,\x004,1\n", "line 2 holds a NUL byte"),
    ("zip.csv", b"PK\x03\x04" + bytes(range(256)), "not UTF-8 text|NUL byte"),
])
def test_csv_that_is_not_utf8_text(tmp_path, name, raw, match):
    (tmp_path / name).write_bytes(raw)
    error = _raises(tmp_path / name, match)
    assert "expected a UTF-8 CSV file" in str(error)


def test_utf8_bom_and_odd_line_endings_load(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffa;b;y\r\n1;2;0\r\n\r\n# note\r3;4;1\r\n".encode("utf-8"))
    ds = data.load_file(path, delimiter=";", test_fraction=0.0)
    np.testing.assert_array_equal(ds.x_train, [[1, 2], [3, 4]])
    with pytest.raises(ValueError, match="delimiter must be one character.*got ';;'"):
        data.load_file(path, delimiter=";;")


# ------------------------------------------------------------------ 6. splits that leave no rows

def test_tiny_files_say_the_split_is_empty(tmp_path):
    for n in (1, 2):
        path = tmp_path / f"rows{n}.csv"
        path.write_text("".join(f"{i},{i % 2}\n" for i in range(n)))
        _raises(path, f"{n} examples are too few for test_fraction=0.2: holding out round\\({n} × 0.2\\) = 0 "
                      f"for test leaves no test rows; expected at least 3 rows, or pass test_fraction=0",
                test_fraction=0.2, key=KEY)
    (tmp_path / "five.csv").write_text("".join(f"{i},{i % 2}\n" for i in range(5)))
    _raises(tmp_path / "five.csv", r"= 5 for test leaves no training rows", test_fraction=0.95, key=KEY)
    (tmp_path / "three.csv").write_text("".join(f"{i},{i % 2}\n" for i in range(3)))
    ds = data.load_file(tmp_path / "three.csv", key=KEY)
    assert (len(ds.x_train), len(ds.x_test)) == (2, 1)


# ------------------------------------------------------------------ 7. complex data

def test_complex_arrays_refused_in_files_and_fit(tmp_path):
    np.savez(tmp_path / "cx.npz", x=np.ones((4, 2)) * 1j, y=np.zeros(4))
    _raises(tmp_path / "cx.npz", "array 'x' has complex dtype complex128")
    np.savez(tmp_path / "cy.npz", x=np.ones((4, 2)), y=np.zeros(4, np.complex64))
    _raises(tmp_path / "cy.npz", "array 'y' has complex dtype complex64", task="regression")
    model = fnn.mlp([2, 1])
    _, params = model.init(KEY, (-1, 2))
    x, y = np.ones((4, 2), np.float32), np.zeros((4, 1), np.float32)
    with pytest.raises(InputTypeError, match="evaluate: x has complex dtype complex64"):
        fnn.evaluate(model, "mse", params, x.astype(np.complex64), y)
    with pytest.raises(InputTypeError, match="fit: y has complex dtype complex64"):
        fnn.fit(model, "mse", fnn.optim.sgd(0.1), params, x, y.astype(np.complex64), key=KEY, steps=1,
                progress=False)


def test_float64_values_beyond_float32_are_named(tmp_path):
    np.savez(tmp_path / "huge.npz", x=np.array([[1.0, 1e300]]), y=np.zeros(1))
    _raises(tmp_path / "huge.npz", r"'x': row 0, feature 1: value 1e\+300 overflows float32")
    np.savez(tmp_path / "huge_y.npz", x=np.ones((2, 1)), y=np.array([1.0, -1e39]))
    _raises(tmp_path / "huge_y.npz", r"'y': row 1: label -1e\+39 overflows float32", task="regression")


# ------------------------------------------------------------------ 8. one class

def test_one_class_warns_with_the_file_and_class(tmp_path):
    path = tmp_path / "same.csv"
    path.write_text("".join(f"{i},1\n" for i in range(6)))
    with pytest.warns(UserWarning, match=f"{path}: every label is 1: the data has one class") as record:
        data.load_file(path, key=KEY)
    w = record[0]
    shown = warnings.formatwarning(w.message, w.category, w.filename, w.lineno)
    assert len(shown.strip().splitlines()) <= 2 and __file__ == w.filename     # points at the caller
    binary = tmp_path / "zeros.csv"
    binary.write_text("1,0\n2,0\n")
    with pytest.warns(UserWarning, match="zeros.csv: every label is 0"):
        data.load_file(binary, task="binary", test_fraction=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data.load_file(path, task="regression", test_fraction=0.0)             # no warning


# ------------------------------------------------------------------ 9. not a regular file

def _load_in_thread(path):
    """The exception load_file raises for `path`, from a thread given 10 s (a hang fails the test)."""
    caught = []

    def run():
        try:
            data.load_file(path, test_fraction=0.0)
        except Exception as e:                                   # noqa: BLE001 — inspected below
            caught.append(e)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), f"load_file({path}) hung"
    return caught[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_directory_and_device_refused_before_opening(tmp_path):
    os.mkfifo(tmp_path / "pipe.csv")
    error = _load_in_thread(tmp_path / "pipe.csv")
    assert isinstance(error, DataFileError) and "pipe.csv: is a FIFO (named pipe); expected a regular" in str(error)
    (tmp_path / "folder.npz").mkdir()
    _raises(tmp_path / "folder.npz", "folder.npz: is a directory; expected a regular .npz or .csv file")
    os.symlink("/dev/zero", tmp_path / "zero.npz")
    error = _load_in_thread(tmp_path / "zero.npz")
    assert isinstance(error, DataFileError) and "zero.npz: is a character device" in str(error)
    assert stat.S_ISFIFO(os.stat(tmp_path / "pipe.csv").st_mode)


def test_path_with_a_nul_character(tmp_path):
    with pytest.raises(DataFileError, match=r"'.*bad\\x00name.csv': is not a valid path \(it holds a NUL"):
        data.load_file(str(tmp_path / "bad\x00name.csv"), test_fraction=0.0)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads every file")
def test_unreadable_file(tmp_path):
    path = tmp_path / "secret.csv"
    path.write_text("1,0\n")
    path.chmod(0)
    _raises(path, "cannot be read \\(Permission denied\\)")


# ------------------------------------------------------------------ 10. properties

FUZZ = settings(max_examples=100, deadline=2000, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _loads_or_fnn_error(path, **kwargs):
    """load_file either gives a Dataset or raises an FnnError: any other exception fails."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        try:
            ds = data.load_file(path, key=KEY, **kwargs)
        except FnnError as e:
            assert str(path) in str(e) or "load_file" in str(e)
            assert "\n" not in str(e) and len(str(e)) < 800             # one line, as a script prints it
            return None
    assert isinstance(ds, data.Dataset) and ds.x_train.dtype == np.float32
    return ds


@FUZZ
@given(raw=st.binary(max_size=600), suffix=st.sampled_from([".csv", ".npz"]))
def test_random_bytes_load_or_raise_data_file_error(tmp_path, raw, suffix):
    path = tmp_path / f"random{suffix}"
    path.write_bytes(raw)
    _loads_or_fnn_error(path)


CSV_CHARS = st.sampled_from(list("0123456789.-+eE,;\t \n\r#\"'") + ["nan", "inf", "\x00", "\ufeff", "é",
                                                                     "\u2028", "١", "1_0", "\x85"])


@FUZZ
@given(text=st.one_of(st.text(max_size=300), st.lists(CSV_CHARS, max_size=120).map("".join)),
       header=st.sampled_from([None, True, False]), task=st.sampled_from(data.TASKS),
       encoding=st.sampled_from(["utf-8", "utf-16", "utf-32"]))
def test_random_csv_text_loads_or_raises(tmp_path, text, header, task, encoding):
    path = tmp_path / "text.csv"
    try:
        path.write_bytes(text.encode(encoding))
    except UnicodeEncodeError:                                   # lone surrogates
        path.write_bytes(text.encode(encoding, "surrogatepass"))
    _loads_or_fnn_error(path, header=header, task=task, test_fraction=0.25)


DTYPES = ["<f8", ">f4", "<f2", "|b1", "<i8", "<u8", "|i1", "<c8", "|O", "<U2", "|S3", "<M8[s]", "|V4"]


@FUZZ
@given(x_shape=st.lists(st.integers(0, 4), max_size=3).map(tuple), y_shape=st.lists(st.integers(0, 4), max_size=2).map(tuple),
       x_dtype=st.sampled_from(DTYPES), y_dtype=st.sampled_from(DTYPES), extra=st.binary(max_size=8),
       cut=st.integers(0, 8), task=st.sampled_from(data.TASKS), compress=st.booleans(), seed=st.integers(0, 2 ** 16))
def test_random_npy_members_load_or_raise(tmp_path, x_shape, y_shape, x_dtype, y_dtype, extra, cut, task,
                                          compress, seed):
    rng = np.random.default_rng(seed)

    def member(dtype, shape):
        size = int(np.prod(shape)) * np.dtype(dtype).itemsize
        body = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        return _npy(dtype, shape, body[:max(0, len(body) - cut)] + extra)
    path = _zip(tmp_path / "members.npz", {"x.npy": member(x_dtype, x_shape), "y.npy": member(y_dtype, y_shape)},
                zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED)
    _loads_or_fnn_error(path, task=task, test_fraction=0.0)


@FUZZ
@example(edits=[(371, 0)], cut=None, compress=True)               # a NUL starts a member's name: ''
@given(edits=st.lists(st.tuples(st.integers(0, 10 ** 6), st.integers(0, 255)), min_size=1, max_size=4),
       cut=st.one_of(st.none(), st.integers(0, 10 ** 6)), compress=st.booleans())
def test_damaged_valid_npz_loads_or_raises(tmp_path, edits, cut, compress):
    buffer = io.BytesIO()
    (np.savez_compressed if compress else np.savez)(buffer, x=np.arange(24.0).reshape(12, 2), y=np.arange(12) % 3)
    raw = bytearray(buffer.getvalue())
    for at, value in edits:
        raw[at % len(raw)] = value
    if cut is not None:
        raw = raw[:cut % len(raw)]
    path = tmp_path / "damaged.npz"
    path.write_bytes(bytes(raw))
    _loads_or_fnn_error(path, test_fraction=0.0)


HEADER_VALUES = st.one_of(st.integers(-2, 3), st.integers(2 ** 40, 2 ** 70), st.booleans(), st.none(),
                          st.text(max_size=6), st.sampled_from(DTYPES + ["<f8", "(", "{}", "__import__('os')"]))


@FUZZ
@given(descr=HEADER_VALUES, fortran=HEADER_VALUES,
       shape=st.one_of(HEADER_VALUES, st.lists(HEADER_VALUES, max_size=4).map(tuple), st.lists(HEADER_VALUES, max_size=3)),
       text=st.one_of(st.none(), st.text(max_size=80)), version=st.sampled_from([b"\x01\x00", b"\x02\x00", b"\x03\x00"]),
       body=st.binary(max_size=64))
def test_random_npy_headers_load_or_raise(tmp_path, descr, fortran, shape, text, version, body):
    header = repr({"descr": descr, "fortran_order": fortran, "shape": shape}) if text is None else text
    raw = header.encode("utf-8", "surrogatepass") + b"\n"
    size = len(raw).to_bytes(2 if version == b"\x01\x00" else 4, "little")
    path = _zip(tmp_path / "headers.npz", {"x.npy": b"\x93NUMPY" + version + size + raw + body,
                                           "y.npy": _npy("<f8", (2,))})
    _loads_or_fnn_error(path, test_fraction=0.0)
