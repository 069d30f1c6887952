"""Datasets: shapes, dtypes, determinism, balance, train-only standardization, file loading, batches, keys."""
import importlib
import inspect
import pickle
import random
import socket

import jax
import numpy as np
import pytest

import fnn.data.batching
import fnn.data.mnist
from fnn import data

TOY = ("spirals", "moons", "circles", "blobs")
KEY = jax.random.key(0)


def _assert_same(a, b):
    for name in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


# ---------------------------------------------------------------- fixed sets

def test_xor_points_and_labels():
    ds = data.xor()
    np.testing.assert_array_equal(ds.x_train, [[0, 0], [0, 1], [1, 0], [1, 1]])
    np.testing.assert_array_equal(ds.y_train[:, 0], [0, 1, 1, 0])
    assert (ds.task, ds.n_classes, ds.in_features, ds.out_features) == ("binary", 2, 2, 1)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.float32
    _assert_same(ds, ds._replace(x_train=ds.x_test, y_train=ds.y_test))


def test_house_prices_are_seed_000():
    ds = data.house_prices()
    np.testing.assert_array_equal(ds.x_train[:, 0], [1000, 1500, 2000])
    np.testing.assert_array_equal(ds.y_train[:, 0], [200_000, 300_000, 400_000])
    np.testing.assert_array_equal(ds.y_test / ds.x_test, [[200.0]])  # $200 per sq ft at 2500
    assert ds.task == "regression" and ds.n_classes is None


# ---------------------------------------------------------------- generated sets

@pytest.mark.parametrize("name", TOY)
def test_toy_sets_shapes_dtypes_labels_balance(name):
    ds = data.get_dataset(name, key=KEY, n=200, n_test=60)
    assert ds.x_train.shape == (200, 2) and ds.x_test.shape == (60, 2)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
    assert ds.y_train.shape == (200,) and ds.task == "classification"
    counts = np.bincount(ds.y_train, minlength=ds.n_classes)
    assert len(counts) == ds.n_classes and counts.max() - counts.min() <= 1
    assert set(np.unique(ds.y_test)) == set(range(ds.n_classes))
    assert np.all(np.isfinite(ds.x_train))
    assert ds.y_train[:20].min() != ds.y_train[:20].max()  # shuffled, not sorted by class


@pytest.mark.parametrize("name", TOY + ("sine",))
def test_generators_deterministic_per_key(name):
    a = data.get_dataset(name, key=jax.random.key(3), n=50)
    b = getattr(data, name)(jax.random.key(3), n=50)
    c = data.get_dataset(name, key=jax.random.key(4), n=50)
    _assert_same(a, b)
    assert not np.array_equal(a.x_train, c.x_train)
    assert not np.array_equal(a.x_train, a.x_test[:50])  # train and test are drawn independently


def test_spirals_classes_and_radius():
    ds = data.spirals(KEY, n=300, noise=0.0, n_classes=3)
    assert ds.n_classes == 3 and set(np.unique(ds.y_train)) == {0, 1, 2}
    r = np.linalg.norm(ds.x_train, axis=1)
    assert r.max() <= 1.0 + 1e-6 and r.max() > 0.9


def test_circles_radii_follow_factor():
    ds = data.circles(KEY, n=100, noise=0.0, factor=0.3)
    r = np.linalg.norm(ds.x_train, axis=1)
    np.testing.assert_allclose(r[ds.y_train == 0], 1.0, atol=1e-5)
    np.testing.assert_allclose(r[ds.y_train == 1], 0.3, atol=1e-5)


def test_moons_without_noise_lie_on_half_circles():
    ds = data.moons(KEY, n=100, noise=0.0)
    upper, lower = ds.x_train[ds.y_train == 0], ds.x_train[ds.y_train == 1]
    np.testing.assert_allclose(np.linalg.norm(upper, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(lower - [1.0, 0.5], axis=1), 1.0, atol=1e-5)
    assert upper[:, 1].min() >= -1e-6 and lower[:, 1].max() <= 0.5 + 1e-6


def test_blobs_given_centers_and_shared_test_centers():
    centers = np.array([[-5.0, 0.0], [5.0, 0.0], [0.0, 8.0], [0.0, -8.0]])
    ds = data.blobs(KEY, n=400, centers=centers, std=0.5)
    assert ds.n_classes == 4
    for k in range(4):
        np.testing.assert_allclose(ds.x_train[ds.y_train == k].mean(0), centers[k], atol=0.2)
        np.testing.assert_allclose(ds.x_test[ds.y_test == k].mean(0), centers[k], atol=0.2)
    random_centers = data.blobs(jax.random.key(1), n=300, centers=3, std=0.1)
    for k in range(3):
        np.testing.assert_allclose(random_centers.x_train[random_centers.y_train == k].mean(0),
                                   random_centers.x_test[random_centers.y_test == k].mean(0), atol=0.05)


def test_sine_range_and_test_grid():
    ds = data.sine(KEY, n=128, noise=0.0, n_test=50)
    assert ds.x_train.shape == (128, 1) and ds.y_train.shape == (128, 1)
    assert ds.x_train.min() >= -np.pi and ds.x_train.max() <= np.pi
    np.testing.assert_allclose(ds.y_train, np.sin(ds.x_train), atol=1e-6)
    np.testing.assert_allclose(ds.x_test[[0, -1], 0], [-np.pi, np.pi], rtol=1e-6)
    assert np.all(np.diff(ds.x_test[:, 0]) > 0)
    noisy = data.sine(KEY, n=128, noise=0.1)
    assert 0.05 < np.std(noisy.y_train - np.sin(noisy.x_train)) < 0.15


@pytest.mark.parametrize("call, match", [
    (lambda: data.spirals(KEY, n=0), "spirals: n must be a positive integer, got 0"),
    (lambda: data.moons(KEY, noise=-1.0), r"moons: noise must be a finite number in \[0, inf\), got -1.0"),
    (lambda: data.circles(KEY, factor=1.5), r"circles: factor \(the inner radius\) .* in \(0, 1\), got 1.5"),
    (lambda: data.blobs(KEY, centers=np.zeros(3)), "centers must be"),
    (lambda: data.blobs(KEY, box=(1.0, 1.0)), r"blobs: box\[1\] must be a finite number in \(1, inf\)"),
    (lambda: data.spirals(KEY, n_classes=1), "spirals: n_classes must be an integer >= 2, got 1"),
    (lambda: data.sine(KEY, n_test=1), "sine: n_test must be an integer >= 2, got 1"),
])
def test_generator_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("key", [None, "0", True, 0, np.int64(3), jax.random.split(KEY, 2)])
def test_generator_needs_a_prng_key_not_an_int_seed(key):
    with pytest.raises(TypeError, match=r"moons: key must be a PRNG key such as jax.random.key\(0\)"):
        data.moons(key)


@pytest.mark.parametrize("name", sorted(data.RANDOM_DATASETS))
def test_get_dataset_without_key_shows_the_call(name):
    with pytest.raises(TypeError) as info:
        data.get_dataset(name, n=10)
    assert f"get_dataset({name!r}, key=jax.random.key(0))" in str(info.value)


@pytest.mark.parametrize("name", sorted(data.RANDOM_DATASETS))
def test_every_generator_refuses_an_int_seed(name):
    with pytest.raises(TypeError, match=f"{name}: key must be a PRNG key"):
        data.DATASETS[name](0)
    with pytest.raises(TypeError, match="get_dataset: key must be a PRNG key.*got 0"):
        data.get_dataset(name, key=0)


def test_fixed_datasets_need_no_key_and_ignore_one():
    _assert_same(data.get_dataset("xor"), data.get_dataset("xor", key=KEY))
    _assert_same(data.get_dataset("house_prices"), data.get_dataset("house_prices", key=KEY))
    with pytest.raises(TypeError, match="get_dataset: key must be a PRNG key"):
        data.get_dataset("xor", key=7)                 # an int seed is refused even where unused


def test_random_datasets_are_the_loaders_that_take_a_key_first():
    for name, loader in data.DATASETS.items():
        first = next(iter(inspect.signature(loader).parameters), None)
        assert (first == "key") == (name in data.RANDOM_DATASETS), name


def test_get_dataset_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="unknown dataset 'mnist'.*spirals.*mnist1d"):
        data.get_dataset("mnist")


def test_binary_and_classification_views():
    ds = data.moons(KEY, n=20)
    b = data.as_binary(ds)
    assert b.task == "binary" and b.y_train.shape == (20, 1) and b.y_train.dtype == np.float32
    np.testing.assert_array_equal(data.as_classification(b).y_train, ds.y_train)
    with pytest.raises(ValueError, match="2-class"):
        data.as_binary(data.blobs(KEY, n=30, centers=3))


# ---------------------------------------------------------------- MNIST-1D

@pytest.fixture(scope="module")
def mnist():
    return data.mnist1d()


def test_mnist1d_default_sizes(mnist):
    assert mnist.x_train.shape == (4000, 40) and mnist.x_test.shape == (1000, 40)
    assert mnist.y_train.shape == (4000,) and mnist.y_test.shape == (1000,)
    assert mnist.x_train.dtype == np.float32 and mnist.y_train.dtype == np.int32
    assert mnist.n_classes == 10 and mnist.out_features == 10
    counts = np.bincount(mnist.y_train, minlength=10)
    assert len(counts) == 10 and counts.min() > 300


def test_mnist1d_matches_make_dataset_and_is_cached(mnist):
    from mnist1d.data import get_dataset_args, make_dataset
    ref = make_dataset(get_dataset_args())
    np.testing.assert_array_equal(mnist.x_test, ref["x_test"].astype(np.float32))
    np.testing.assert_array_equal(mnist.y_train, ref["y"])
    again = data.mnist1d()
    again.x_train[0] = 99.0  # a copy: the cache is not modified
    assert data.mnist1d().x_train[0, 0] != 99.0


def test_mnist1d_offline_and_leaves_global_rng_alone(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("mnist1d tried to use the network")
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(fnn.data.mnist, "_MNIST1D_CACHE", {})
    np.random.seed(7)
    random.seed(7)
    expected = (np.random.rand(), random.random())
    np.random.seed(7)
    random.seed(7)
    small = data.mnist1d(seed=1, num_samples=200)
    assert (np.random.rand(), random.random()) == expected
    assert small.x_train.shape == (160, 40) and small.x_test.shape == (40, 40)
    assert not np.array_equal(small.x_train, data.mnist1d(seed=2, num_samples=200).x_train)
    with pytest.raises(ValueError, match="unknown argument.*num_sample.*expected"):
        data.mnist1d(num_sample=10)


# ---------------------------------------------------------------- MNIST-1D's disk cache

SMALL = dict(seed=3, num_samples=200)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty disk cache in tmp_path, an empty in-process cache, and a count of generations."""
    monkeypatch.setenv("FNN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(fnn.data.mnist, "_MNIST1D_CACHE", {})
    calls = []
    generate = fnn.data.mnist._generate
    monkeypatch.setattr(fnn.data.mnist, "_generate", lambda args: calls.append(args) or generate(args))
    return tmp_path / "cache", calls


def _fresh(monkeypatch):
    monkeypatch.setattr(fnn.data.mnist, "_MNIST1D_CACHE", {})      # as in a new process


def test_mnist1d_second_call_reads_the_disk_cache_bit_for_bit(cache, monkeypatch):
    folder, calls = cache
    first = data.mnist1d(**SMALL)
    files = list(folder.glob("mnist1d-*.npz"))
    assert len(calls) == 1 and len(files) == 1
    _fresh(monkeypatch)
    monkeypatch.setattr(fnn.data.mnist, "_generate", lambda args: pytest.fail("generated again"))
    again = data.mnist1d(**SMALL)
    _assert_same(again, first)
    assert again.x_train.dtype == np.float32 and again.y_train.dtype == np.int32
    from mnist1d.data import get_dataset_args, make_dataset
    args = get_dataset_args()
    args.seed, args.num_samples = 3, 200
    ref = make_dataset(args)                                       # a fresh generation, by hand
    assert again.x_train.tobytes() == ref["x"].astype(np.float32).tobytes()
    assert again.y_test.tobytes() == ref["y_test"].astype(np.int32).tobytes()


@pytest.mark.parametrize("damage", ["truncate", "flip a byte", "garbage", "pickle", "other request"])
def test_a_corrupt_or_mismatched_cache_file_is_regenerated(cache, monkeypatch, damage):
    folder, calls = cache
    first = data.mnist1d(**SMALL)
    path = next(folder.glob("mnist1d-*.npz"))
    raw = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(raw[:len(raw) // 2])
    elif damage == "flip a byte":                                 # inside x's data: only the digest sees it
        i = raw.index(first.x_train[:1].tobytes())
        path.write_bytes(raw[:i] + bytes([raw[i] ^ 1]) + raw[i + 1:])
    elif damage == "garbage":
        path.write_bytes(b"not an npz")
    elif damage == "pickle":
        np.savez(path, x=np.array([object()], dtype=object))
    else:                                                          # the right name, another request's file
        members = dict(np.load(path))
        members["__request__"] = np.frombuffer(b'{"seed": 4}', np.uint8)
        np.savez(path, **members)
    _fresh(monkeypatch)
    _assert_same(data.mnist1d(**SMALL), first)
    assert len(calls) == 2                                         # generated again, without an error
    _fresh(monkeypatch)
    data.mnist1d(**SMALL)
    assert len(calls) == 2                                         # and the rewritten file is good


def test_mnist1d_cache_off_or_unwritable_still_gives_the_data(cache, tmp_path, monkeypatch):
    folder, calls = cache
    monkeypatch.setenv("FNN_CACHE_DIR", "")                        # off
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    off = data.mnist1d(**SMALL)
    assert not any(tmp_path.iterdir()) and len(calls) == 1        # nothing written anywhere
    (tmp_path / "a_file").write_text("")
    monkeypatch.setenv("FNN_CACHE_DIR", str(tmp_path / "a_file"))  # a folder that cannot be made
    _fresh(monkeypatch)
    with pytest.warns(RuntimeWarning, match="cannot write cache file.*going on without the disk cache"):
        unwritable = data.mnist1d(**SMALL)
    _assert_same(unwritable, off)


def test_cache_dir_follows_fnn_cache_dir_then_xdg_then_home(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("FNN_CACHE_DIR")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert data.cache_dir() == str(tmp_path / ".cache" / "fnn")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    assert data.cache_dir() == str(tmp_path / ".cache" / "fnn")
    monkeypatch.setenv("XDG_CACHE_HOME", "/xdg")
    assert data.cache_dir() == "/xdg/fnn"
    monkeypatch.setenv("FNN_CACHE_DIR", "/mine")
    assert data.cache_dir() == "/mine"
    monkeypatch.setenv("FNN_CACHE_DIR", "")
    assert data.cache_dir() is None


# ---------------------------------------------------------------- standardization

def test_standardize_uses_train_stats_only():
    rng = np.random.default_rng(0)
    train = rng.normal(5.0, 2.0, (500, 3)).astype(np.float32)
    test = rng.normal(8.0, 2.0, (100, 3)).astype(np.float32)
    stats, z_train, z_test = data.standardize(train, test)
    np.testing.assert_allclose(z_train.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(z_train.std(0), 1.0, atol=1e-5)
    assert np.all(z_test.mean(0) > 1.0)  # the test shift survives: not refitted on test
    np.testing.assert_allclose(stats.mean, train.mean(0), rtol=1e-5)
    np.testing.assert_allclose(stats.inverse(z_test), test, rtol=1e-5, atol=1e-5)
    restored = data.Standardizer(**stats._asdict())
    np.testing.assert_array_equal(restored(test), z_test)


def test_standardize_constant_feature_is_zero_not_nan():
    train = np.array([[0.1, 1.0], [0.1, 2.0], [0.1, 3.0]] * 100, np.float32)
    stats, z = data.standardize(train)
    assert stats.std[0] == 1.0
    np.testing.assert_allclose(z[:, 0], 0.0, atol=1e-6)
    assert np.all(np.isfinite(z))


def test_standardize_dataset_targets_for_regression():
    ds, stats = data.standardize_dataset(data.house_prices(), targets=True)
    np.testing.assert_allclose(ds.x_train[:, 0], [-1.2247449, 0.0, 1.2247449], rtol=1e-5)
    np.testing.assert_allclose(stats["y"].inverse(ds.y_test), [[500_000]], rtol=1e-5)
    assert ds.x_test[0, 0] > 2.0  # 2500 sq ft is far outside the training range
    with pytest.raises(ValueError, match="regression"):
        data.standardize_dataset(data.moons(KEY, n=10), targets=True)


# ---------------------------------------------------------------- user files

def _write(path, text):
    path.write_text(text)
    return path


def test_load_npz_with_split(tmp_path):
    x = np.arange(40, dtype=np.float64).reshape(20, 2)
    y = np.arange(20) % 3
    np.savez(tmp_path / "mine.npz", x=x, y=y)
    ds = data.load_file(tmp_path / "mine.npz", test_fraction=0.25, key=jax.random.key(1))
    assert ds.x_train.shape == (15, 2) and ds.x_test.shape == (5, 2)
    assert ds.n_classes == 3 and ds.name == "mine" and ds.y_train.dtype == np.int32
    both = np.concatenate([ds.x_train, ds.x_test])
    np.testing.assert_array_equal(np.sort(both[:, 0]), x[:, 0])       # every row once
    np.testing.assert_array_equal(both[:, 0] // 2 % 3, np.concatenate([ds.y_train, ds.y_test]))
    _assert_same(ds, data.get_dataset(str(tmp_path / "mine.npz"), key=jax.random.key(1), test_fraction=0.25))


def test_load_npz_own_test_split_and_regression(tmp_path):
    path = tmp_path / "reg.npz"
    np.savez(path, x=np.ones((6, 2, 2)), y=np.linspace(0, 1, 6),
             x_test=np.zeros((3, 2, 2)), y_test=np.ones(3))
    ds = data.load_file(path, task="regression")
    assert ds.x_train.shape == (6, 4) and ds.x_test.shape == (3, 4)
    assert ds.y_train.shape == (6, 1) and ds.y_train.dtype == np.float32 and ds.n_classes is None


def test_load_csv_with_and_without_header(tmp_path):
    rows = "".join(f"{i}.5,{-i},{i % 2}\n" for i in range(10))
    plain = data.load_file(_write(tmp_path / "a.csv", rows), test_fraction=0.0)
    named = data.load_file(_write(tmp_path / "b.csv", "f1,f2,label\n" + rows), test_fraction=0.0)
    _assert_same(plain, named)
    np.testing.assert_array_equal(plain.x_train[:, 0], np.arange(10) + 0.5)
    np.testing.assert_array_equal(plain.y_train, np.arange(10) % 2)
    assert plain.x_test.shape == (0, 2) and plain.n_classes == 2
    first = data.load_file(tmp_path / "b.csv", label_column="f1", task="regression", test_fraction=0.0)
    np.testing.assert_array_equal(first.y_train[:, 0], np.arange(10) + 0.5)
    binary = data.load_file(tmp_path / "a.csv", task="binary", test_fraction=0.2, key=KEY)
    assert binary.y_train.shape == (8, 1) and binary.task == "binary"


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv: no such file"):
        data.load_file(tmp_path / "nope.csv")
    with pytest.raises(data.DataFileError) as info:
        data.load_file(tmp_path / "nope.npz")
    copy = pickle.loads(pickle.dumps(info.value))
    assert str(copy) == str(info.value) and isinstance(copy, FileNotFoundError)


@pytest.mark.parametrize("name, text, match", [
    ("empty.csv", "", "empty"),
    ("blank.csv", "\n\n", "empty"),
    ("header_only.csv", "a,b,label\n", "header but no data rows"),
    ("ragged.csv", "1,2,0\n3,4\n", "line 2 has 2 columns, expected 3"),
    ("text.csv", "1,2,0\n3,abc,1\n", "line 2, column 2: 'abc' is not a number"),
    ("text_named.csv", "a,b,y\n1,2,0\n3,,1\n", r"line 3, column 2 \('b'\): '' is not a number"),
    ("nan_label.csv", "1,2,0\n3,4,nan\n", "line 2: label nan is not finite"),
    ("inf_feature.csv", "1,inf,0\n", "line 1, feature 1: value inf is not finite"),
    ("negative.csv", "1,2,0\n3,4,-1\n", "label -1 is negative"),
    ("fraction.csv", "1,2,0\n3,4,1.5\n", "label 1.5 is not an integer"),
    ("one_column.csv", "1\n2\n", "at least 2"),
    ("data.txt", "1,2,0\n", "unsupported file type '.txt'"),
])
def test_load_csv_errors_name_the_problem(tmp_path, name, text, match):
    path = _write(tmp_path / name, text)
    with pytest.raises(data.DataFileError, match=match) as info:
        data.load_file(path, test_fraction=0.0)
    assert name in str(info.value)


def test_load_binary_rejects_other_labels(tmp_path):
    path = _write(tmp_path / "b.csv", "1,2,0\n3,4,2\n")
    with pytest.raises(data.DataFileError, match="label 2 is not 0 or 1"):
        data.load_file(path, task="binary", test_fraction=0.0)


@pytest.mark.parametrize("arrays, match", [
    (dict(x=np.ones((5, 2)), y=np.zeros(4)), "'x' has 5 rows but 'y' has 4"),
    (dict(features=np.ones((5, 2)), y=np.zeros(5)), "no array named 'x'; arrays in the file: features, y"),
    (dict(x=np.array([["a", "b"]] * 2), y=np.zeros(2)), "non-numeric dtype"),
    (dict(x=np.ones((2, 2)), y=np.array([0.0, np.inf])), "row 1: label inf is not finite"),
    (dict(x=np.ones((2, 2)), y=np.array([0, -3])), "label -3 is negative"),
    (dict(x=np.ones((2, 2)), y=np.zeros(2), x_test=np.ones((1, 2))), "'x_test' but not 'y_test'"),
    (dict(x=np.ones((0, 2)), y=np.zeros(0)), r"shape \(0, 2\): no examples"),
])
def test_load_npz_errors_name_the_problem(tmp_path, arrays, match):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(data.DataFileError, match=match) as info:
        data.load_file(path, test_fraction=0.0)
    assert "bad.npz" in str(info.value)


def test_load_npz_never_unpickles(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, x=np.array([{"a": 1}, None], dtype=object), y=np.zeros(2))
    with pytest.raises(data.DataFileError, match="without pickle"):
        data.load_file(path)
    corrupt = _write(tmp_path / "corrupt.npz", "not a zip")
    with pytest.raises(data.DataFileError, match="corrupt.npz: not a readable .npz"):
        data.load_file(corrupt)


def test_load_split_too_small(tmp_path):
    path = _write(tmp_path / "one.csv", "1,2,0\n")
    with pytest.raises(data.DataFileError, match="too few for test_fraction"):
        data.load_file(path, test_fraction=0.9, key=KEY)


def test_load_split_needs_a_prng_key(tmp_path):
    path = _write(tmp_path / "rows.csv", "".join(f"{i},{i % 2}\n" for i in range(10)))
    with pytest.raises(TypeError) as info:
        data.load_file(path)
    assert f"load_file({str(path)!r}, key=jax.random.key(0))" in str(info.value)
    with pytest.raises(TypeError, match=f"get_dataset\\({str(path)!r}, key=jax.random.key\\(0\\)\\)"):
        data.get_dataset(str(path))
    with pytest.raises(TypeError, match="load_file: key must be a PRNG key.*got 1"):
        data.load_file(path, key=1)
    assert len(data.load_file(path, test_fraction=0.0).x_train) == 10       # no split, no key
    np.savez(tmp_path / "own.npz", x=np.ones((4, 2)), y=np.zeros(4), x_test=np.ones((2, 2)), y_test=np.ones(2))
    assert data.load_file(tmp_path / "own.npz").x_test.shape == (2, 2)     # its own test split


# ---------------------------------------------------------------- minibatches

def test_batch_indices_cover_a_permutation():
    idx = np.asarray(data.batch_indices(jax.random.key(0), 10, 3))
    assert idx.shape == (3, 3) and idx.dtype == np.int32
    assert len(set(idx.ravel())) == 9 and idx.max() < 10
    full = np.asarray(data.batch_indices(jax.random.key(0), 10, 3, drop_remainder=False))
    assert full.shape == (4, 3) and set(full.ravel()) == set(range(10))
    other = np.asarray(data.batch_indices(jax.random.key(1), 10, 3))
    assert not np.array_equal(idx, other)
    with pytest.raises(ValueError, match="batch_size 11 is larger than the 10 examples"):
        data.batch_indices(KEY, 10, 11)
    with pytest.raises(TypeError, match="batch_indices: key must be a PRNG key"):
        data.batch_indices(0, 10, 3)


@pytest.mark.parametrize("n", [1, 2, 3, 10, 4000, 70_000])
def test_permutation_is_a_permutation_of_range_n(n):
    perm = np.asarray(data.permutation(jax.random.key(n), n))
    assert perm.dtype == np.int32 and perm.shape == (n,)
    np.testing.assert_array_equal(np.sort(perm), np.arange(n))
    np.testing.assert_array_equal(perm, np.asarray(data.permutation(jax.random.key(n), n)))
    if n > 2:
        assert not np.array_equal(perm, np.asarray(data.permutation(jax.random.key(n + 1), n)))


def test_permutation_is_uniform():
    # one round of packed keys (n = 3): each of the 6 orders is drawn about 1/6 of the time
    keys = jax.random.split(jax.random.key(0), 6000)
    perms = np.asarray(jax.vmap(lambda k: fnn.data.batching._permutation(k, 3))(keys))
    _, counts = np.unique(perms, axis=0, return_counts=True)
    assert len(counts) == 6 and np.all(np.abs(counts - 1000) < 5 * np.sqrt(1000 * 5 / 6))
    # two rounds (n = 4000, 20 random bits a round): where element 0 and element n-1 land
    perms = np.asarray(jax.vmap(lambda k: fnn.data.batching._permutation(k, 4000))(keys[:2000]))
    for element in (0, 3999):
        where = np.argmax(perms == element, axis=1)
        sd = 4000 / np.sqrt(12 * 2000)                         # of the mean of U{0..3999}
        assert abs(where.mean() - 1999.5) < 5 * sd
        assert abs(np.median(where) - 1999.5) < 200
    # and the first position holds every element about equally often
    first = np.bincount(perms[:, 0] // 400, minlength=10)        # 10 bins of 400 elements
    assert np.all(np.abs(first - 200) < 5 * np.sqrt(200))


def test_permutation_rejects_bad_input():
    with pytest.raises(ValueError, match="permutation: n"):
        data.permutation(jax.random.key(0), 0)
    with pytest.raises(TypeError, match="permutation: key must be a PRNG key"):
        data.permutation(None, 3)
    with pytest.raises(TypeError, match="permutation: key must be a PRNG key.*got 3"):
        data.permutation(3, 3)


def test_batches_pair_rows_and_work_under_jit():
    x = np.arange(24, dtype=np.float32).reshape(12, 2)
    y = np.arange(12, dtype=np.int32)

    @jax.jit
    def epoch_sum(key):
        xb, yb = data.batches(key, x, y, 4)
        return xb, yb

    xb, yb = epoch_sum(jax.random.key(2))
    assert xb.shape == (3, 4, 2) and yb.shape == (3, 4)
    np.testing.assert_array_equal(np.asarray(xb)[..., 0], 2 * np.asarray(yb))
    assert sorted(np.asarray(yb).ravel()) == list(range(12))
    with pytest.raises(ValueError, match="x has 12 rows but y has 11"):
        data.batches(KEY, x, y[:11], 4)


# ---------------------------------------------------------------- the package's names

MODULES = ("dataset", "toy", "mnist", "disk_cache", "files", "standardization", "batching", "registry",
           "sequences")
BEFORE_THE_SPLIT = (   # fnn/data.py's __all__ when it was one module: every name still works
    "Dataset", "TASKS", "TASK_LOSS", "DATASETS", "get_dataset",
    "xor", "house_prices", "spirals", "moons", "circles", "blobs", "sine", "mnist1d",
    "as_binary", "as_classification",
    "Standardizer", "fit_standardizer", "standardize", "standardize_dataset",
    "DataFileError", "DataFileNotFoundError", "load_file",
    "permutation", "batch_indices", "batches",
)


@pytest.mark.parametrize("module", MODULES)
def test_each_modules_public_names_are_exported_by_fnn_data(module):
    mod = importlib.import_module(f"fnn.data.{module}")
    assert mod.__all__
    for name in mod.__all__:
        assert getattr(data, name) is getattr(mod, name), name
        assert name in data.__all__, name


def test_fnn_data_exports_exactly_its_modules_names_and_the_old_ones():
    names = {n for m in MODULES for n in importlib.import_module(f"fnn.data.{m}").__all__}
    assert set(data.__all__) == names and len(data.__all__) == len(names)
    assert set(BEFORE_THE_SPLIT) <= names
    from fnn.data import load_file, permutation, spirals
    assert (load_file, permutation, spirals) == (data.load_file, data.permutation, data.spirals)
    assert data.get_dataset is __import__("fnn").get_dataset
