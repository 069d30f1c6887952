"""benchmarks/limits.py: the MLP's training built up piece by piece, and each model's matmul fraction (quick mode).

No figure of time is asserted: only that every piece trains what it claims to
and that every figure is recorded and read back into the tables.
"""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn import cli
from benchmarks import limits
from benchmarks.peer_runners import load_mnist1d


@pytest.fixture(scope="module")
def record():
    rec = limits.run(rounds=2, steps=8, model_names=("mlp",), quick=True, log=lambda m: None)
    rec["settings"]["models"] = ["mlp"]
    return rec


def test_every_piece_and_model_ran_in_every_round(record):
    names = [f"mlp/{p}" for p in limits.PIECES] + ["fit/mlp"]
    assert set(record["programs"]) == set(names)
    assert set(record["rounds"]) == set(names) | {"matmul"}
    for name, entries in record["rounds"].items():
        assert [e["round"] for e in entries] == [0, 1]
        assert all(e["steps_per_second"] > 0 for e in entries)
    # whole epochs from +shuffle on: 8 steps of 4-step epochs (400 quick examples, batch 100)
    assert [record["programs"][f"mlp/{p}"]["steps"] for p in limits.PIECES] == [8] * len(limits.PIECES)


def test_flops_per_step_are_the_mlps_matmuls_and_xlas_count_is_close():
    b, sizes = limits.BATCH_SIZE, limits.SIZES
    forward = sum(2 * b * i * o for i, o in zip(sizes[:-1], sizes[1:]))
    assert limits.MLP_FLOPS == 3 * forward - 2 * b * sizes[0] * sizes[1]
    model, params, *_ = limits._problem(load_mnist1d(), 8)
    xla = limits._xla_flops(model, params, jnp.zeros((limits.BATCH_SIZE, sizes[0])))
    assert xla is None or limits.MLP_FLOPS <= xla <= 1.5 * limits.MLP_FLOPS      # + bias, ReLU, Adam


def test_the_matmul_piece_multiplies_what_the_step_multiplies():
    ws = [jnp.asarray(np.random.default_rng(0).standard_normal((i, o)), jnp.float32)
          for i, o in zip(limits.SIZES[:-1], limits.SIZES[1:])]
    xs = jnp.ones((2, 3, limits.SIZES[0]))
    text = jax.jit(limits._matmul_loop).lower(ws, xs).as_text()
    assert text.count("dot_general") == 3 * (len(ws)) - 1                # forward, dW each; dX but the first
    out = limits._matmul_loop(ws, xs)
    assert [w.shape for w in out] == [w.shape for w in ws]


def test_summary_and_markdown_read_every_figure_from_the_record(record):
    summary = limits.summarize(record)
    rows = summary["programs"]
    for name in limits.PIECES:
        r = rows[f"mlp/{name}"]
        want = np.median([e["steps_per_second"] for e in record["rounds"][f"mlp/{name}"]])
        assert r["steps_per_second"]["all"] == pytest.approx(want)
        assert 0 < r["fraction"]["min"] <= r["fraction"]["all"] <= r["fraction"]["max"]
    assert summary["goal"]["fraction"] == limits.GOAL
    assert summary["goal"]["met"] == (summary["goal"]["fit_fraction"] >= limits.GOAL)
    md = limits.to_markdown(record, summary, "python -m benchmarks.limits --quick")
    assert all(f"| {p} |" in md for p in limits.PIECES) and "| mlp |" in md
    assert md.count("µs/step") == len(limits.PIECES) - 1 and "Goal: fnn.fit on the MNIST-1D MLP" in md
    assert record["device"]["cpu_model"] is None or record["device"]["cpu_model"] in md
    json.dumps(record)                                                     # JSON-ready


@pytest.mark.parametrize("argv, named", [(["--models", "mlp,resnet"], "--models"), (["--rounds", "0"], "--rounds"),
                                         (["--steps", "x"], "--steps"), (["--bogus"], "--bogus")])
def test_bad_flags_exit_2_with_one_line(argv, named, capsys):
    try:
        code = cli.run(limits.main, argv, prog="python -m benchmarks.limits")
    except SystemExit as e:
        code = e.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert named in err and len(err.splitlines()) == 1
