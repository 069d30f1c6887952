"""benchmarks/: the manual-vs-autodiff suite and the peers comparison, run on tiny problems.

PyTorch and scikit-learn are optional (the `peers` extra): the tests hide them
to check that each peer is skipped with a message, and use them only if present.
"""
import json
import math
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn import cli
from benchmarks import common, convs, grads, peers, rounds, scaling, sequences

TINY_TIMING = dict(seconds=0.005, min_repeats=2, max_repeats=3, warmup_seconds=0.0)


@pytest.fixture(scope="module")
def results():
    """Two tiny configurations through the whole suite (compiled once for the module)."""
    grid = grads.product_grid([1], [8], [4], ["relu"], ["softmax_cross_entropy", "mse"], ["float32"])
    return grads.run(grid, quick=True, timing=TINY_TIMING, matmul_n=64, log=None)


# ------------------------------------------------------------------ grids

def test_flops_per_step_counts_six_b_in_out_less_the_first_input_gradient():
    c = grads.Config(2, 10, 3, "relu", "mse", "float32")          # 10-10-10-10: three dense layers
    assert c.sizes == [10, 10, 10, 10]
    assert grads.flops_per_step(c) == 3 * 6 * 3 * 10 * 10 - 2 * 3 * 10 * 10


def test_default_grid_covers_every_axis_without_the_full_product():
    grid = grads.default_grid(quick=False, dtypes=("float32", "bfloat16", "float64"))
    configs = [c for c, _ in grid]
    assert len(configs) == len(set(configs))
    assert {c.depth for c in configs} == {1, 2, 3, 4}
    assert {32, 2048} <= {c.width for c in configs} and {1, 4096} <= {c.batch for c in configs}
    assert set(grads.ACTIVATIONS) <= {c.activation for c in configs}
    assert set(grads.LOSSES) <= {c.loss for c in configs}
    assert {c.dtype for c in configs} == {"float32", "bfloat16", "float64"}
    assert all(groups for _, groups in grid)
    core = [c for c, g in grid if "core" in g]
    assert len(core) == 2 * 3 * 3
    product = 4 * 7 * 7 * len(grads.ACTIVATIONS) * len(grads.LOSSES) * 3
    assert len(configs) < 80 < product
    quick = grads.default_grid(quick=True, dtypes=("float32",))
    assert len(quick) < len(grid) and len(quick) <= 16
    assert {c.dtype for c, _ in quick} == {"float32"}


def test_product_grid_rejects_unknown_values():
    with pytest.raises(ValueError, match="activations.*'nope'"):
        grads.product_grid([1], [8], [4], ["nope"], ["mse"], ["float32"])
    with pytest.raises(ValueError, match="widths.*0"):
        grads.product_grid([1], [0], [4], ["relu"], ["mse"], ["float32"])
    with pytest.raises(ValueError, match="dtypes.*'float16'"):
        grads.default_grid(dtypes=("float16",))


def test_dtype_support_detection():
    assert common.dtype_supported("float32")
    with pytest.raises(ValueError, match="float16"):
        common.dtype_supported("float16")


# ------------------------------------------------------------------ timing and memory helpers

def test_time_interleaved_calls_each_variant_once_per_round():
    counts = {"a": 0, "b": 0}

    def call(name):
        counts[name] += 1
        return jnp.zeros(())

    times = common.time_interleaved({"a": lambda: call("a"), "b": lambda: call("b")}, 5)
    assert counts == {"a": 5, "b": 5}
    assert len(times["a"]) == len(times["b"]) == 5 and min(times["a"] + times["b"]) >= 0
    assert common.choose_repeats(0.1, 1.0, 3, 50) == 10
    assert common.choose_repeats(10.0, 1.0, 3, 50) == 3
    assert common.choose_repeats(1e-6, 1.0, 3, 50) == 50


def test_memory_figures_add_up():
    compiled, seconds = common.compile_timed(lambda a: a @ a.T + 1.0, jnp.ones((16, 8)))
    m = common.memory_figures(compiled)
    assert seconds > 0
    assert m["argument_size_in_bytes"] == 16 * 8 * 4 and m["output_size_in_bytes"] == 16 * 16 * 4
    assert m["peak_bytes"] == (m["argument_size_in_bytes"] + m["output_size_in_bytes"]
                               - m["alias_size_in_bytes"] + m["temp_size_in_bytes"])
    assert common.hlo_summary(compiled)["total"] >= 2


# ------------------------------------------------------------------ the suite

def test_every_record_has_agreement_time_memory_and_flops(results):
    assert [r["name"] for r in results["records"]] == ["d1-w8-b4-relu-softmax_ce-f32",
                                                       "d1-w8-b4-relu-mse-f32"]
    for r in results["records"]:
        a = r["agreement"]
        assert a["manual_vs_autodiff"] < 1e-5
        assert a["manual_vs_reference"] < 1e-4 and a["autodiff_vs_reference"] < 1e-4
        assert [leaf["path"] for leaf in a["leaves"]] == ["[0]['W']", "[0]['b']", "[2]['W']", "[2]['b']"]
        for p in grads.PROGRAMS:
            for m in fnn.grads.METHODS:
                assert len(r["times"][p][m]) == r["repeats"] >= 2
                assert r["time"][p][m]["median"] == pytest.approx(np.median(r["times"][p][m]))
                assert r["compile_seconds"][p][m] > 0
                assert r["memory"][p][m]["peak_bytes"] > 0
            t = r["time"][p]
            assert t["ratio"] == pytest.approx(t["manual"]["median"] / t["autodiff"]["median"])
            mem = r["memory"][p]
            assert mem["ratio"] == pytest.approx(mem["manual"]["peak_bytes"] / mem["autodiff"]["peak_bytes"])
        assert r["flops_per_step"] == grads.flops_per_step(grads.Config(**r["config"]))
        rate = r.get("matmul_interleaved", results["matmul"]["float32"])["flops_per_second"]
        assert r["matmul_fraction"]["manual"] == pytest.approx(r["flops_per_second"]["manual"] / rate)
    # Both configurations have the same FLOPs: both are "largest" and time the matmul in their rounds.
    assert all(len(r["matmul_interleaved"]["times"]) == r["repeats"] for r in results["records"])
    assert [run["when"] for run in results["matmul"]["float32"]["runs"]] == ["start", "end"]


def test_step_programs_donate_their_state(results):
    for r in results["records"]:
        step = r["memory"]["step"]["manual"]
        assert step["alias_size_in_bytes"] > 0


def test_summary_goals_and_device(results):
    s, d = results["summary"], results["device"]
    assert s["step_time_ratio"]["worst"] >= s["step_time_ratio"]["median"] >= s["step_time_ratio"]["best"]
    assert s["agreement"]["float32"]["manual_vs_autodiff"] < 1e-5
    assert len(s["goals"]) == 5 and {g[2] for g in s["goals"]} <= {"met", "not met", "n/a"}
    assert s["largest"]["configs"] and d["platform"] == jax.devices()[0].platform
    assert d["jax_version"] == jax.__version__ and d["date"][:2] == "20"
    assert results["matmul"]["float32"]["flops_per_second"] > 0


def test_grid_kind_from_args_and_bad_kind():
    kind = lambda argv: grads.grid_kind_from_args(grads.parse_args(argv))
    assert [kind([]), kind(["--quick"]), kind(["--widths", "8"]), kind(["--quick", "--losses", "mse"])] == \
        ["full", "quick", "custom", "custom"]
    with pytest.raises(ValueError, match="'partial'"):
        grads.run([], grid_kind="partial", log=None)


class _FakeGpu:
    """Stands for a device with memory statistics, as JAX's GPU devices have."""
    platform, device_kind = "gpu", "Fake GPU"

    def memory_stats(self):
        return {"bytes_in_use": np.int64(1 << 20), "peak_bytes_in_use": 3 << 20, "num_allocs": 7}


def test_device_memory_statistics_are_recorded_where_the_device_has_them(monkeypatch):
    monkeypatch.setattr(jax, "devices", lambda *a: [_FakeGpu(), _FakeGpu()])
    info = common.device_info()
    assert info["description"] == "gpu (Fake GPU) x2"
    assert json.loads(json.dumps(info))["memory_stats"]["peak_bytes_in_use"] == 3 << 20
    assert grads._device_memory() == {"bytes_in_use": 1 << 20, "peak_bytes_in_use": 3 << 20}

    class NoStats(_FakeGpu):
        def memory_stats(self):
            raise NotImplementedError
    monkeypatch.setattr(jax, "devices", lambda *a: [NoStats()])
    assert common.device_info()["memory_stats"] is None and grads._device_memory() is None


def test_goal_rows_compare_at_three_decimals():
    s = {"step_time_ratio": {"median": 0.999, "worst": 1.07, "worst_config": "x", "best": 0.9, "n": 3},
         "step_memory_ratio": {"median": 1.0, "worst": 1.0002, "worst_config": "y", "best": 0.8, "n": 3},
         "grad_memory_ratio": {"median": 1.0, "worst": 1.01, "worst_config": "z", "best": 0.8, "n": 3},
         "largest": {"dtype": "float32", "configs": ["big"],
                     "matmul_fraction": {"manual": 0.85, "autodiff": 0.84}}}
    status = [row[2] for row in grads.goal_rows(s)]
    assert status == ["met", "not met", "met", "not met", "met"]


def test_markdown_json_and_plots(results, tmp_path):
    md = grads.to_markdown(results, "python -m benchmarks.grads --quick")
    assert "### Goals" in md and "`python -m benchmarks.grads --quick`" in md
    assert "(quick grid)" in md and "on this quick grid they are indicative only" in md
    full = dict(results, settings=dict(results["settings"], grid="full"))
    assert "indicative" not in grads.to_markdown(full) and "goals:" in grads.summary_lines(full)
    assert all(r["name"] in md for r in results["records"])
    back = json.loads(json.dumps(results))
    assert back["device"]["jax_version"] == jax.__version__
    paths = grads.save_plots(results, str(tmp_path / "plots"))
    assert [p.rsplit("/", 1)[-1] for p in paths] == ["time_ratio.png", "memory_ratio.png",
                                                      "matmul_fraction.png"]
    assert all((tmp_path / "plots" / p.rsplit("/", 1)[-1]).stat().st_size > 1000 for p in paths)


def test_command_line_end_to_end(tmp_path, capsys):
    out = tmp_path / "r.json"
    code = grads.main(["--quick", "--depths", "1", "--widths", "8", "--batches", "2", "--dtypes", "float64",
                       "--seconds", "0.005", "--max-repeats", "2", "--min-repeats", "2",
                       "--matmul-size", "32", "--json", str(out), "--md", str(tmp_path / "r.md")])
    assert code == 0
    text = capsys.readouterr().out
    assert text.startswith("device: ") and "d1-w8-b2-relu-softmax_ce-f64" in text
    data = json.loads(out.read_text())
    assert data["command"].startswith("python -m benchmarks.grads --quick")
    assert data["settings"]["grid"] == "custom"             # axes given: not the grid the goals are for
    assert "goals (stated for the full grid; on this custom grid they are indicative only):" in text
    (r,) = data["records"]
    assert r["agreement"]["manual_vs_autodiff"] < 1e-12          # float64: round-off only
    assert (tmp_path / "r.md").read_text().startswith("## Manual backprop vs jax.grad")


@pytest.mark.parametrize("argv, message", [
    (["--dtypes", "float16"], "float16"),
    (["--activations", "nope"], "nope"),
    (["--optimizer", "sgdd"], "sgdd"),
    (["--widths", "a,b"], "integers"),
    (["--family", "rnn"], "family"),
])
def test_command_line_errors_are_one_line(argv, message, capsys):
    try:
        code = cli.run(grads.main, argv)
    except SystemExit as e:                              # argparse's own one-line error
        code = e.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_family_hands_the_other_arguments_to_its_module(monkeypatch):
    seen = []
    monkeypatch.setattr(convs, "main", lambda argv: seen.append(argv) or 0)
    assert grads.main(["--quick", "--family", "conv", "--json", "c.json"]) == 0
    assert grads.main(["--family=conv"]) == 0
    assert seen == [["--quick", "--json", "c.json"], []]


# ------------------------------------------------------------------ peers

@pytest.fixture(scope="module")
def blobs():
    return fnn.data.blobs(jax.random.key(0), n=200, centers=3, n_test=100)


def _hide(monkeypatch, *modules):
    for m in modules:
        monkeypatch.setitem(sys.modules, m, None)        # import m now raises ImportError


def test_peers_missing_are_skipped_with_a_message(monkeypatch, blobs):
    _hide(monkeypatch, "torch", "sklearn", "sklearn.neural_network", "sklearn.exceptions")
    out = peers.run(["fnn-manual", "fnn-scan", "torch-cpu", "sklearn"], data=blobs, steps=40, batch_size=20,
                    log=None)
    by = {p["name"]: p for p in out["peers"]}
    assert by["torch-cpu"]["status"] == by["sklearn"]["status"] == "skipped"
    assert "PyTorch is not installed" in by["torch-cpu"]["message"]
    assert "scikit-learn is not installed" in by["sklearn"]["message"]
    assert "fnn[peers]" in by["torch-cpu"]["message"]
    f = by["fnn-manual"]
    assert f["status"] == "ok" and f["steps"] == 40 and 0.5 < f["test_accuracy"] <= 1.0
    assert f["wall_seconds"] >= f["train_seconds"] > 0
    assert f["steps_per_second"] == pytest.approx(40 / f["train_seconds"])
    bare = by["fnn-scan"]                      # the same training as a bare lax.scan, without fit
    assert bare["status"] == "ok" and bare["steps"] == 40 and 0.5 < bare["test_accuracy"] <= 1.0
    assert out["summary"]["ratios"]["fnn-scan"]["fnn"] == "fnn-manual"
    assert out["summary"]["goal"]["status"] == "n/a"
    assert "PyTorch not run" in out["summary"]["goal"]["measured"]
    lines = peers.table_lines(out)
    assert any("torch-cpu" in l and "skipped" in l for l in lines)
    md = peers.to_markdown(out)
    assert "| torch-cpu | skipped |" in md and "| fnn-manual | cpu |" in md


def _peer(name, sps, acc, device="cpu", threads=2):
    return peers.PeerResult(name, "ok", "", device, 100, sps, 100 / sps, 1.0, acc, threads)._asdict()


def test_peers_summary_uses_the_faster_pytorch_and_accuracy_tolerance():
    out = {"peers": [_peer("fnn-manual", 5000.0, 0.66), _peer("torch-cpu", 200.0, 0.66),
                     _peer("torch-cpu-1t", 900.0, 0.67, threads=1),
                     peers.PeerResult("torch-cuda", "skipped", "no CUDA device")._asdict()]}
    s = peers.summarize(out)
    assert s["ratios"]["torch-cpu"]["fnn_speedup"] == pytest.approx(25.0)
    assert "torch-cuda" not in s["ratios"]
    assert s["goal"]["status"] == "met" and "5.6×" in s["goal"]["measured"]      # 5000 / 900
    out["peers"][0] = _peer("fnn-manual", 5000.0, 0.60)                            # 7 points worse
    assert peers.summarize(out)["goal"]["status"] == "not met"
    out["peers"][0] = _peer("fnn-manual", 4000.0, 0.66)                            # 4.4×
    assert peers.summarize(out)["goal"]["status"] == "not met"


def test_peers_bad_input(capsys):
    with pytest.raises(ValueError, match="'jax-manual'"):
        peers.run(["jax-manual"], data=None)
    assert cli.run(peers.main, ["--peers", "fnn-manual,nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert "'nope'" in err and len(err.splitlines()) == 1


def test_torch_peer_when_installed(blobs):
    pytest.importorskip("torch")
    r = peers.run_torch(blobs, "cpu", steps=20, batch_size=20, lr=1e-2, seed=0, sizes=(2, 16, 16, 3),
                        threads=1)
    assert r.status == "ok" and r.steps == 20 and r.threads == 1
    assert 0.0 <= r.test_accuracy <= 1.0 and r.steps_per_second > 0 and math.isfinite(r.wall_seconds)


# ------------------------------------------------------------------ convolutional networks

@pytest.mark.parametrize("norm", convs.NORMS)
def test_conv_configurations_measure_both_methods_and_agree_with_float64(norm):

    config = convs.ConvConfig(dims=1, length=6, channels=3, depth=2, kernel=3, stride=2, batch=2, norm=norm)
    r = convs.run_config(config, key=jax.random.key(0), timing=TINY_TIMING)
    assert r["name"] == f"1d-L6-c3-d2-k3-s2-b2-{norm}"
    # float32 gradients against the float64 jax.grad: round-off only (a bias before a norm is left out)
    assert r["agreement"]["manual_vs_reference"] < 1e-4
    assert r["agreement"]["manual_vs_autodiff"] < 1e-4
    for program in ("grad", "step"):
        assert r["time"][program]["ratio"] > 0
        assert r["memory"][program]["ratio"] is None or r["memory"][program]["ratio"] > 0
    s = convs.summarize([r])
    assert set(s["goals"]) == {"time_median", "time_worst", "memory"}


def test_conv_grid_covers_both_ranks_normalization_and_strides():

    for quick in (True, False):
        grid = convs.default_grid(quick)
        assert {c.dims for c in grid} == {1, 2}
        assert {c.norm for c in grid} == set(convs.NORMS)
        assert {c.stride for c in grid} == {1, 2}
        assert len(grid) == len(set(grid))


# ------------------------------------------------------------------ sequences (recurrent, attention)

@pytest.mark.parametrize("config", [sequences.SequenceConfig("gru", 5, 3, 2), sequences.SequenceConfig("lstm", 5, 3, 2),
                                    sequences.SequenceConfig("attention", 6, 4, 2, heads=2, causal=True)],
                         ids=lambda c: c.name)
def test_sequence_configurations_measure_both_methods_and_agree_with_float64(config):
    r = convs.run_config(config, key=jax.random.key(0), timing=TINY_TIMING)
    assert r["agreement"]["manual_vs_reference"] < 1e-4 and r["agreement"]["manual_vs_autodiff"] < 1e-4
    for program in ("grad", "step"):
        assert r["time"][program]["ratio"] > 0
    s = sequences.summarize_sequences([r])
    assert s["goals"]["attention_memory_long"] is None                    # no attention at T ≥ 512 here


def test_sequence_grid_covers_lengths_heads_and_masks():
    grid = sequences.default_grid()
    attention = [c for c in grid if c.kind == "attention"]
    assert {c.kind for c in grid} == set(sequences.KINDS)
    assert {c.length for c in grid if c.kind != "attention"} == {16, 64, 256}
    assert min(c.length for c in attention) == 64 and max(c.length for c in attention) == 1024
    assert {c.heads for c in attention} == {1, 4, 8} and {c.causal for c in attention} == {True, False}
    assert len(grid) == len(set(grid))


def test_long_attention_gradient_needs_under_half_of_autodiffs_memory():
    # XLA's buffer assignment of the compiled programs, no timing: the manual backward keeps
    # the log-sum-exp and a block of probabilities, jax.grad every block's (block × T) probabilities.
    config = sequences.SequenceConfig("attention", 512, 8, 1, heads=1, causal=True)
    model = config.model()
    _, params = model.init(jax.random.key(0), config.input_shape)
    x = jnp.ones((1, 512, 8))
    y = jnp.zeros((1,), jnp.int32)
    peaks = {}
    for method in ("manual", "autodiff"):
        vg = fnn.make_value_and_grad(model, "softmax_cross_entropy", method)
        mem = common.memory_figures(jax.jit(vg).lower(params, x, y).compile())
        if mem is None:
            pytest.skip("this backend reports no memory figures")
        peaks[method] = mem["peak_bytes"]
    assert peaks["manual"] <= 0.5 * peaks["autodiff"], peaks


def test_jax_peers_train_the_same_mlp_and_rounds_compare_them_with_fnn(blobs):
    names = ["fnn-manual", "optax-step", "optax-scan"]        # optax: in the dev extra
    out = peers.run(names, data=blobs, steps=40, batch_size=20, rounds=2, log=None)
    by = {p["name"]: p for p in out["peers"]}
    for name in names:
        assert by[name]["status"] == "ok" and 0.5 < by[name]["test_accuracy"] <= 1.0, by[name]
        assert by[name]["wall_seconds"] >= by[name]["train_seconds"] > 0
        assert [e["round"] for e in out["rounds"][name]] == [0, 1]
    assert by["optax-scan"]["steps"] == 40                   # 10 steps an epoch: 4 whole epochs
    row = out["summary"]["rounds"]["optax-step"]
    assert row["all"]["n"] == 2 and row["fnn_ratio"]["all"]["n"] == 2
    goal = out["summary"]["jax_goal"]
    assert [m["peer"] for m in goal["measured"]] == ["optax-step", "optax-scan"]
    assert goal["status"] in ("met", "not met")
    md = peers.to_markdown(out)
    assert "Interleaved rounds: 2" in md and "| optax-step |" in md
    assert any("interleaved rounds" in line for line in peers.table_lines(out))


def test_missing_jax_peers_are_skipped_with_what_to_install(monkeypatch, blobs):
    _hide(monkeypatch, "equinox", "flax", "flax.nnx")
    out = peers.run(["fnn-manual", "equinox", "flax-nnx", "flax-nnx-split"], data=blobs, steps=20,
                    batch_size=20, rounds=1, log=None)
    by = {p["name"]: p for p in out["peers"]}
    for name in ("equinox", "flax-nnx", "flax-nnx-split"):
        assert by[name]["status"] == "skipped" and "fnn[jax-peers]" in by[name]["message"]
        assert name not in out["rounds"]
    assert out["summary"]["jax_goal"]["status"] == "n/a"


def test_equinox_and_flax_peers_where_installed(blobs):
    pytest.importorskip("equinox")
    pytest.importorskip("flax")
    out = peers.run(["fnn-manual", "equinox", "flax-nnx", "flax-nnx-split"], data=blobs, steps=40,
                    batch_size=20, log=None)
    for p in out["peers"]:
        assert p["status"] == "ok" and 0.5 < p["test_accuracy"] <= 1.0, p


def test_round_summary_splits_quiet_from_loaded_and_pairs_ratios_within_a_round():
    entries = lambda rates, loads: [{"round": i, "steps_per_second": r, "other_cores": c}  # noqa: E731
                                    for i, (r, c) in enumerate(zip(rates, loads))]
    data = {"fnn-manual": entries([4000, 2000, 3900], [0.0, 0.9, 0.05]),
            "optax-step": entries([2000, 1000, 3900], [0.02, 0.8, 0.5])}
    s = rounds.round_summary(data, "fnn-manual")
    assert s["fnn-manual"]["quiet"]["n"] == 2 and s["fnn-manual"]["loaded"]["n"] == 1
    ratio = s["optax-step"]["fnn_ratio"]
    assert ratio["all"]["median"] == pytest.approx(2.0) and ratio["all"]["n"] == 3
    assert ratio["quiet"]["n"] == 1 and ratio["quiet"]["median"] == pytest.approx(2.0)   # round 0 only
    if os.path.exists("/proc/stat"):                          # Linux: the machine's load is measured
        busy = rounds.busy_seconds()
        assert busy is not None and busy > 0
        with rounds.LoadMeter() as meter:
            sum(range(100000))
        assert isinstance(meter.other_cores, float) and meter.other_cores >= 0


def test_scaling_sweeps_measure_both_methods_and_plot_them(monkeypatch, tmp_path):
    for name in scaling.SWEEPS:                                 # every sweep builds its configurations
        module, configs = scaling.sweep_configs(name, quick=True)
        assert len(configs) == 3 and len({c.name for c in configs}) == 3
    module, configs = scaling.sweep_configs("mlp-width", quick=True)
    monkeypatch.setattr(scaling, "sweep_configs", lambda name, quick: (module, configs[:2]))
    sweeps = scaling.run_sweeps(["mlp-width"], quick=True, log=None)
    points = sweeps["mlp-width"]
    assert [p["x"] for p in points] == [16, 32]
    for p in points:
        assert p["time"]["manual"] > 0 and p["time"]["autodiff"] > 0
        assert p["memory"]["manual"] is None or p["memory"]["manual"] > 0
    fake = {"attention-T": [{"x": t, "name": f"attn-T{t}", "time": {"manual": t * 1e-6, "autodiff": t * 2e-6},
                             "memory": {"manual": t * 1000, "autodiff": t * t * 10}} for t in (64, 128, 256)]}
    paths = scaling.plot_sweeps({**sweeps, **fake}, str(tmp_path), "test device")
    assert [os.path.basename(p) for p in paths] == ["mlp-width.png", "attention-T.png"]
    assert all(open(p, "rb").read(8) == b"\x89PNG\r\n\x1a\n" for p in paths)
