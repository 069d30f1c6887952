"""Params to .npz and .safetensors: the key names, every dtype both ways, the safetensors library, hostile files."""
import json
import struct
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn.errors import InputError, InputTypeError
from fnn.export import flat_names, load_params, save_params

FORMATS = ("npz", "safetensors")


@jax.tree_util.register_pytree_with_keys_class
class _TwoSameKeys:
    """A pytree node whose two children have the same key, as a careless custom node might."""

    def tree_flatten_with_keys(self):
        return [(jax.tree_util.DictKey("a"), np.ones(1)), (jax.tree_util.DictKey("a"), np.ones(1))], None

    def tree_flatten(self):
        return [np.ones(1), np.ones(1)], None

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls()

ARRAYS = {
    "f64": np.array([1.5, -0.0, np.inf, np.nan]), "f32": np.arange(6, dtype=np.float32).reshape(2, 3),
    "f16": np.array([65504, -1e-4], np.float16), "i32": np.array([-2**31, 7], np.int32),
    "i64": np.array([2**62, -1], np.int64), "u8": np.arange(3, dtype=np.uint8),
    "bool": np.array([[True, False]]), "empty": np.zeros((0, 3), np.float32), "scalar": np.float32(2.5),
}


def _assert_bit_identical(got, want):
    assert list(got) == list(want)
    for name, array in want.items():
        array = np.asarray(array)
        assert got[name].dtype == array.dtype and got[name].shape == array.shape, name
        assert got[name].tobytes() == array.tobytes(), name


# ---------------------------------------------------------------- names

def test_names_are_dotted_pytree_paths():
    _, params = fnn.mlp([4, 3, 2]).init(jax.random.key(0), (-1, 4))
    assert flat_names(params) == ["0.W", "0.b", "2.W", "2.b"]        # the relu's () has no leaves
    _, lstm = fnn.LSTM(3, num_layers=2, bidirectional=True).init(jax.random.key(0), (-1, 5, 4))
    assert flat_names(lstm)[:4] == ["0.0.W_h", "0.0.W_x", "0.0.b_h", "0.0.b_x"]
    assert flat_names(lstm)[-1] == "1.1.b_x"                         # layer 1, the reverse direction
    state = fnn.optim.adam(0.1).init({"W": jnp.ones(2)})
    assert flat_names(state) == ["0.count", "0.mu.W", "0.nu.W", "1.count", "1.learning_rate"]
    assert flat_names({"params": params, "state": ()}) == ["params.0.W", "params.0.b", "params.2.W",
                                                           "params.2.b"]
    assert flat_names({10: [jnp.ones(1)], 9: jnp.ones(1)}) == ["9", "10.0"]       # int keys, in jax's order


@pytest.mark.parametrize("bad, error, match", [
    ({"a.b": np.ones(1)}, InputError, "dict key 'a.b'; expected a non-empty key without '.'"),
    ({"": np.ones(1)}, InputError, "dict key ''"),
    ({(1, 2): np.ones(1)}, InputTypeError, "dict key \\(1, 2\\) of type tuple"),
    (_TwoSameKeys(), InputError, r"params\['a'\] and params\['a'\] are both named 'a'"),
    (np.ones(2), InputError, "bare array, which has no name"),
    ({"__metadata__": np.ones(1)}, InputError, "safetensors reserves"),
    ({}, InputError, "params have no arrays"),
])
def test_names_that_cannot_be_written_are_refused(bad, error, match):
    with pytest.raises(error, match=match):
        flat_names(bad)


# ---------------------------------------------------------------- both formats

@pytest.mark.parametrize("fmt", FORMATS)
def test_every_dtype_round_trips_bit_for_bit(tmp_path, fmt):
    arrays = dict(ARRAYS, **({"bf16": jnp.array([1.5, -3.0], jnp.bfloat16)} if fmt == "safetensors" else {}))
    save_params(tmp_path / f"p.{fmt}", arrays)
    got = load_params(tmp_path / f"p.{fmt}")
    _assert_bit_identical(got, {n: np.asarray(arrays[n]) for n in flat_names(arrays)})
    assert all(a.flags.writeable for a in got.values())


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_trained_models_params_come_back_into_its_tree(tmp_path, fmt):
    model = fnn.serial(fnn.Reshape((8, 1)), fnn.Conv(2, 3), fnn.Activation("relu"), fnn.Flatten(), fnn.Dense(2))
    _, params = model.init(jax.random.key(0), (-1, 8))
    path = tmp_path / f"model.{fmt}"
    save_params(path, params)
    flat = load_params(path)
    assert list(flat) == flat_names(params) == ["1.W", "1.b", "4.W", "4.b"]
    assert flat["1.W"].shape == (3, 1, 2)                              # (k, C_in, C_out)
    restored = jax.tree.unflatten(jax.tree.structure(params), list(flat.values()))
    x = jnp.linspace(-1, 1, 16).reshape(2, 8)
    np.testing.assert_array_equal(model.apply(restored, x), model.apply(params, x))
    if fmt == "npz":                                                  # plain numpy reads it too
        with np.load(path, allow_pickle=False) as data:
            assert sorted(data.files) == sorted(flat)


def test_the_format_comes_from_the_extension_or_the_argument(tmp_path):
    params = {"W": np.ones((2, 2), np.float32)}
    save_params(tmp_path / "p.bin", params, format="safetensors")
    assert (tmp_path / "p.bin").read_bytes()[8:9] == b"{"
    assert list(load_params(tmp_path / "p.bin")) == ["W"]           # told apart by its bytes
    save_params(tmp_path / "P.NPZ", params)
    assert zipfile.is_zipfile(tmp_path / "P.NPZ")
    with pytest.raises(InputError, match="extension '.pt'; expected .npz or .safetensors"):
        save_params(tmp_path / "p.pt", params)
    with pytest.raises(InputError, match="format 'torch'"):
        save_params(tmp_path / "p.npz", params, format="torch")


@pytest.mark.parametrize("leaf, error, match", [
    (jax.random.key(0), InputTypeError, r"params\['x'\] \('x'\) is a PRNG key, not a parameter"),
    (1.0, InputTypeError, r"params\['x'\] \('x'\) is a float \(1.0\), not an array"),
    ("W", InputTypeError, "is a str"),
    (np.ones(2, np.complex64), InputTypeError, "has dtype complex64"),
])
def test_leaves_that_are_not_parameter_arrays_are_refused(tmp_path, leaf, error, match):
    for fmt in FORMATS:
        with pytest.raises(error, match=match):
            save_params(tmp_path / f"p.{fmt}", {"x": leaf, "W": np.ones(2)})
        assert not (tmp_path / f"p.{fmt}").exists()


def test_bfloat16_is_refused_in_npz_and_a_directory_is_not_overwritten(tmp_path):
    with pytest.raises(InputError, match="'W' is bfloat16, which .npz .* cannot hold"):
        save_params(tmp_path / "p.npz", {"W": jnp.ones(2, jnp.bfloat16)})
    (tmp_path / "d.npz").mkdir()
    with pytest.raises(InputError, match="it is a directory"):
        save_params(tmp_path / "d.npz", {"W": np.ones(2)})


# ---------------------------------------------------------------- the safetensors format

def test_the_safetensors_layout_follows_the_spec(tmp_path):
    save_params(tmp_path / "p.safetensors", {"b": np.ones(3, np.float32), "a": np.arange(2, dtype=np.int64)})
    raw = (tmp_path / "p.safetensors").read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    assert (8 + n) % 8 == 0 and raw[8 + n - 1:8 + n] in (b"}", b" ")
    header = json.loads(raw[8:8 + n])
    assert header == {"a": {"dtype": "I64", "shape": [2], "data_offsets": [0, 16]},
                      "b": {"dtype": "F32", "shape": [3], "data_offsets": [16, 28]}}
    assert raw[8 + n:] == np.arange(2, dtype="<i8").tobytes() + np.ones(3, "<f4").tobytes()


def test_the_safetensors_library_reads_fnns_files_and_fnn_reads_its(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    arrays = dict(ARRAYS, bf16=jnp.array([1.5, -3.0], jnp.bfloat16))
    want = {n: np.asarray(arrays[n]) for n in sorted(arrays)}
    save_params(tmp_path / "fnn.safetensors", arrays)
    _assert_bit_identical(dict(sorted(st.load_file(str(tmp_path / "fnn.safetensors")).items())), want)
    st.save_file(want, str(tmp_path / "theirs.safetensors"), metadata={"format": "np"})
    _assert_bit_identical(dict(sorted(load_params(tmp_path / "theirs.safetensors").items())), want)


def _safetensors(header, data=b"", raw_header=None):
    text = raw_header if raw_header is not None else json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


F32_2 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}


@pytest.mark.parametrize("content, match", [
    (b"\x01\x00", "2 bytes, fewer than the 8 of the header length: truncated"),
    (struct.pack("<Q", 10**6) + b"{}", "header claims 1,000,000 bytes, larger than the 2"),
    (_safetensors({"w": F32_2}, bytes(4)), "ends at byte 8 of the data, which holds 4"),
    (_safetensors({"w": {**F32_2, "data_offsets": [8, 0]}}, bytes(8)), r"\[8, 0\]: begin after end"),
    (_safetensors({"w": F32_2, "v": {**F32_2, "data_offsets": [4, 12]}}, bytes(12)),
     "'v' starts at byte 4 .* overlaps the tensor before it"),
    (_safetensors({"w": {**F32_2, "data_offsets": [4, 12]}}, bytes(12)), "leaves bytes no tensor claims"),
    (_safetensors({"w": F32_2}, bytes(12)), "end at byte 8 of the data, which holds 12"),
    (_safetensors({"w": {**F32_2, "dtype": "F8_E4M3"}}, bytes(8)), "dtype 'F8_E4M3'; expected one of F64"),
    (_safetensors({"w": {**F32_2, "shape": [3]}}, bytes(8)), "has 8 bytes but shape \\[3\\] of F32 needs 12"),
    (_safetensors({"w": {**F32_2, "shape": [-2]}}, bytes(8)), "expected a list of non-negative integers"),
    (_safetensors({"w": {"dtype": "F32", "shape": [2]}}, bytes(8)), "exactly dtype, shape and data_offsets"),
    (_safetensors(None, bytes(8), b'{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"w":{}}'),
     "the name 'w' appears twice"),
    (_safetensors(None, b"", b"not json"), "does not start with"),
    (_safetensors(None, b"", b"{\xff}"), "not valid JSON"),
    (_safetensors(None, b"", b"[1, 2]"), "does not start with"),
    (_safetensors({"__metadata__": {"n": 1}}), "__metadata__ is not an object of strings"),
    (_safetensors({"b": {"dtype": "BOOL", "shape": [2], "data_offsets": [0, 2]}}, b"\x01\x02"),
     "holds bytes other than 0 and 1"),
])
def test_a_malformed_safetensors_file_is_refused(tmp_path, content, match):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(InputError, match=match):
        load_params(path)


def test_hostile_npz_files_are_refused_without_unpickling(tmp_path):
    np.savez(tmp_path / "objects.npz", x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(InputError, match="cannot be loaded without pickle"):
        load_params(tmp_path / "objects.npz")
    np.savez(tmp_path / "complex.npz", x=np.ones(2, np.complex64))
    with pytest.raises(InputError, match="complex"):
        load_params(tmp_path / "complex.npz")
    save_params(tmp_path / "good.npz", {"W": np.ones(1000)})
    (tmp_path / "cut.npz").write_bytes((tmp_path / "good.npz").read_bytes()[:3000])
    with pytest.raises(InputError, match="cut.npz"):
        load_params(tmp_path / "cut.npz")
    with pytest.raises(InputError, match="no params file at"):
        load_params(tmp_path / "missing.npz")


def test_fnn_exports_the_functions():
    assert (fnn.save_params, fnn.load_params, fnn.flat_names) == (save_params, load_params, flat_names)
    assert {"save_params", "load_params", "flat_names", "export"} <= set(fnn.__all__)
