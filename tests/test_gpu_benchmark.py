"""benchmarks.gpu in its CPU mode (--small): every section runs or says why not, and JSON and Markdown agree.

The device the full run is for has neither the mnist1d package nor tqdm: the run here hides
both (importing them raises ImportError) and reads MNIST-1D from the repository's .npz, as
the device does (fnn.fit imports tqdm only to show its progress bar).
One run serves every test of the module.
"""
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn import cli
from benchmarks import data_file, gpu, gpu_grid, gpu_report
from benchmarks.convs import ConvConfig
from benchmarks.sequences import SequenceConfig


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu") / "out"
    with pytest.MonkeyPatch.context() as mp:
        for name in ("mnist1d", "mnist1d.data", "tqdm", "tqdm.auto"):   # neither is on the device
            mp.setitem(sys.modules, name, None)                # any import of it now fails
        code = gpu.main(["--small", "--out", str(out), "--data", data_file.DEFAULT_PATH])
    with open(out / "gpu.json") as f:
        results = json.load(f)
    return code, out, results


def _items(results, section):
    return results["sections"][section]["items"]


def test_every_section_runs_or_says_why_not(small_run):
    code, _, results = small_run
    assert code == 0 and results["complete"] and results["mode"] == "small"
    assert list(results["sections"]) == list(gpu.SECTIONS)
    for name, section in results["sections"].items():
        assert section["status"] in ("ok", "partial"), (name, section)
        assert all(i["status"] == "ok" or i["note"] for i in section["items"])
        assert not any(i["status"] == "error" for i in section["items"])
    assert results["flags"]["sections"] == list(gpu.SECTIONS) and results["flags"]["small"]
    assert results["data"]["source"] == data_file.DEFAULT_PATH and len(results["data"]["sha256"]) == 64
    assert results["seconds"] < results["budget_seconds"]


def test_matmul_and_agreement_figures(small_run):
    _, _, results = small_run
    rates = {i["name"]: i["result"] for i in _items(results, "matmul") if i["status"] == "ok"}
    assert "float32" in rates and all(r["flops_per_second"] > 0 and r["n"] == 128 for r in rates.values())
    rows = [r for i in _items(results, "agreement") for r in i["result"]["rows"]]
    assert {r["dtype"] for r in rows} == set(gpu.AGREEMENT_DTYPES)
    for r in rows:
        if r["status"] == "skipped":
            continue
        assert r["status"] == "met", r
        if r["dtype"] == "float64":
            assert r["manual_vs_autodiff"] < 1e-12
        else:
            assert r["manual_vs_reference"] <= max(2 * r["autodiff_vs_reference"], r["bound"])


def test_family_records_have_time_memory_and_flops_against_the_same_run_rate(small_run):
    _, _, results = small_run
    rates = {i["name"]: i["result"]["flops_per_second"] for i in _items(results, "matmul") if i["status"] == "ok"}
    for family in gpu_grid.FAMILIES:
        items = _items(results, family)
        assert [i["name"].rsplit("/", 1)[1] for i in items] == list(gpu_grid.timed_dtypes(family, small=True))
        for r in (i["result"] for i in items):
            assert r["family"] == family
            assert r["name"].endswith({"float32": "-f32", "bfloat16": "-bf16"}[r["dtype"]])
            for program in ("grad", "step"):
                t = r["time"][program]
                assert t["ratio"] == pytest.approx(t["manual"]["median"] / t["autodiff"]["median"])
                assert r["memory"][program]["ratio"] > 0
            assert r["agreement"]["manual_vs_reference"] < 0.1
            assert r["flops_per_step"] > 0 and r["matmul_rate"] == rates[r["dtype"]]
            for m in ("manual", "autodiff"):
                fps = r["flops_per_step"] / r["time"]["step"][m]["median"]
                assert r["flops_per_second"][m] == pytest.approx(fps)
                assert r["matmul_fraction"][m] == pytest.approx(fps / rates[r["dtype"]])


def test_peers_run_fnn_and_skip_a_missing_pytorch(small_run):
    _, _, results = small_run
    by = {i["name"]: i for i in _items(results, "peers")}
    assert set(by) == set(gpu.PEERS["small"])
    f = by["fnn-manual"]["result"]
    assert f["status"] == "ok" and f["steps"] == gpu.PEER_STEPS["small"] and 0 <= f["test_accuracy"] <= 1
    assert f["settings"]["sizes"] == [40, 100, 100, 10] and f["settings"]["train_examples"] == 4000
    try:
        import torch
    except ImportError:
        torch = None
    if torch is None:
        assert by["torch-cpu"]["status"] == by["torch-cuda"]["status"] == "skipped"
        assert "PyTorch is not installed" in by["torch-cuda"]["note"]
    elif not torch.cuda.is_available():
        assert by["torch-cuda"]["status"] == "skipped" and by["torch-cpu"]["status"] == "ok"


def test_markdown_is_written_from_the_json_and_names_every_section(small_run):
    _, out, results = small_run
    md = (out / "gpu.md").read_text()
    assert md == gpu_report.to_markdown(results) + "\n"
    for heading in ("### Sections", "### Matmul rate", "### Gradient agreement", "#### MLP", "#### CNN",
                    "#### GRU", "#### Attention", "### Achieved TFLOP/s", "### Peers"):
        assert heading in md
    for name in gpu.SECTIONS:
        assert f"| {name} | {results['sections'][name]['status']} |" in md
    for family in gpu_grid.FAMILIES:
        assert all(i["result"]["name"] in md for i in _items(results, family))
    assert "not a measurement" in md and "| torch-cuda | skipped |" in md


def test_data_file_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    fake = fnn.data.Dataset.from_arrays("fake", "classification", 10, rng.normal(size=(30, 40)),
                                        np.arange(30) % 10, rng.normal(size=(10, 40)), np.arange(10))
    path = tmp_path / "sub" / "fake.npz"
    assert data_file.write_dataset(str(path), fake) == path.stat().st_size
    back = data_file.read_dataset(str(path))
    for a, b in zip(back[:4], fake[:4]):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert back.n_classes == 10 and back.name == "mnist1d"
    ds, source = data_file.load(str(path))
    assert np.allclose(ds.x_train.mean(axis=0), 0, atol=1e-6) and source["source"] == str(path)


def test_the_repository_file_is_mnist1d():
    assert os.path.getsize(data_file.DEFAULT_PATH) <= 2 * 1024 * 1024
    ds = data_file.read_dataset(data_file.DEFAULT_PATH)
    assert ds.x_train.shape == (4000, 40) and ds.x_test.shape == (1000, 40)
    assert set(np.unique(ds.y_train)) == set(range(10)) and ds.n_classes == 10
    pytest.importorskip("mnist1d")
    fresh = fnn.data.mnist1d()
    assert all(np.array_equal(a, b) for a, b in zip(ds[:4], fresh[:4]))


def test_budget_shares_and_skipped_failed_items():
    budget = gpu.Budget(170.0, ["matmul", "mlp"])
    assert budget.allowance("matmul") == pytest.approx(170.0 * 1 / 4, rel=1e-3)
    assert budget.allowance("mlp") == pytest.approx(170.0, rel=1e-3)          # the last gets what is left
    lines = []

    def fail():
        raise RuntimeError("broken\nsecond line")

    def skip():
        raise gpu.Skip("not here")
    items = gpu.run_items([("a", fail), ("b", skip), ("c", lambda: {"x": 1, "_line": "done"})], 10.0,
                          lines.append)
    assert [i["status"] for i in items] == ["error", "skipped", "ok"]
    assert items[0]["error"] == "RuntimeError: broken second line" and "Traceback" in items[0]["traceback"]
    assert items[1]["note"] == "not here" and items[2]["result"] == {"x": 1}
    assert lines[2].startswith("  c: done [")
    none = gpu.run_items([("a", lambda: 1), ("b", lambda: 2)], 0.0, lines.append)
    assert [i["status"] for i in none] == ["skipped", "skipped"] and "time budget" in none[0]["note"]
    assert gpu._section_status(items) == "error" and gpu._section_status(none) == "skipped"


def test_flop_counts_of_small_networks():
    # 1-D conv, L 6, stride 2 -> 3 positions; C_in 4 -> 3 -> 3, kernel 3, batch 2
    conv = ConvConfig(1, 6, 3, 2, 3, 2, 2, "none")
    first, second = 2 * 2 * 3 * 3 * 4 * 3, 2 * 2 * 3 * 3 * 3 * 3
    assert gpu_grid.flops_per_step(conv) == 2 * first + 3 * second + 6 * 2 * 3 * 10
    gru = SequenceConfig("gru", 5, 3, 2)                 # B·T = 10, F = 8, H = 3, 3 gates
    assert gpu_grid.flops_per_step(gru) == 2 * 2 * 10 * 8 * 9 + 3 * 2 * 10 * 3 * 9 + 6 * 2 * 3 * 10
    attn = SequenceConfig("attention", 6, 4, 2, heads=2)
    assert gpu_grid.flops_per_step(attn) == 18 * 2 * 6 * 16 + 12 * 2 * 36 * 4 + 6 * 2 * 4 * 10


def test_every_configuration_of_the_full_run_traces_in_both_dtypes():
    # Shapes only (jax.eval_shape: nothing compiled or run), so the device run cannot fail on one.
    configs = [c for f in gpu_grid.FAMILIES for c in gpu_grid.family_grid(f)] + gpu_grid.agreement_grid()
    for config in configs:
        model, shape, batch, _ = gpu._network(config)
        assert gpu_grid.flops_per_step(config) > 0
        for dtype in gpu_grid.TIMED_DTYPES:
            dt = jnp.dtype(dtype)
            params = jax.eval_shape(lambda k: model.init(k, shape, dt)[1], jax.random.key(0))
            x, y = jax.ShapeDtypeStruct((batch,) + shape[1:], dt), jax.ShapeDtypeStruct((batch,), jnp.int32)
            state = fnn.init_state(model, shape, dt) if model.stateful else None
            for method in ("manual", "autodiff"):
                vg = fnn.make_value_and_grad(model, "softmax_cross_entropy", method)
                value, grads = jax.eval_shape(lambda p, xx, yy: vg(p, xx, yy, state=state)[:2], params, x, y)
                assert value.shape == () and jax.tree.structure(grads) == jax.tree.structure(params)


@pytest.mark.parametrize("argv, message", [
    (["--sections", "mlp,nope"], "nope"),
    (["--budget-seconds", "0"], "positive"),
    (["--data", "/nonexistent/mnist1d.npz"], "mnist1d.npz"),
])
def test_command_line_errors_are_one_line(argv, message, capsys, tmp_path):
    try:
        code = cli.run(gpu.main, argv + ["--small", "--out", str(tmp_path)])
    except SystemExit as e:                              # argparse's own one-line error
        code = e.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
