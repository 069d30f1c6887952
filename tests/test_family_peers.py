"""benchmarks/family_peers.py: fnn against PyTorch and Equinox on the CNN, the GRU and the transformer, quick mode.

PyTorch and Equinox are optional (benchmark-only extras): a peer that is not
installed must be skipped with a message, and is run only where it is. No
figure of time is asserted, only that each is recorded.
"""
import json
import math
import subprocess
import sys

import jax
import numpy as np
import pytest

from fnn import cli
from benchmarks import family_equinox, family_peers, family_tasks, family_torch
from conftest import ROOT, load_script

QUICK_PEERS = ("fnn-manual", "fnn-autodiff", "torch", "equinox")


def _installed(name):
    try:
        __import__(name)
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def out():
    """Every model in quick mode, fnn's two contenders and the peers that are installed, one round."""
    return family_peers.run(family_tasks.MODELS, QUICK_PEERS, rounds=1, quick=True, log=None)


def _by_name(model):
    return {r["name"]: r for r in model["contenders"]}


def test_quick_mode_trains_every_model_with_each_contender(out):
    for name in family_tasks.MODELS:
        m = out["models"][name]
        by = _by_name(m)
        assert list(by) == list(QUICK_PEERS)
        for peer, r in by.items():
            if peer in ("torch", "equinox") and not _installed(peer):
                assert r["status"] == "skipped" and "not installed" in r["message"], r
                continue
            assert r["status"] == "ok", r
            assert r["steps"] == family_tasks.QUICK[name]["steps"]
            assert 0.0 <= r["accuracy"] <= 1.0 and r["accuracy"] == r["scores"]["accuracy"]
            assert r["first_call_seconds"] > 0 and r["train_seconds"] > 0
            assert r["steps_per_second"] == pytest.approx(r["steps"] / r["train_seconds"])
            assert [e["round"] for e in m["rounds"][peer]] == [0]
        if name == "transformer":
            assert 0.0 <= by["fnn-manual"]["scores"]["token_accuracy"] <= 1.0
        ratios = m["summary"]["rounds"]
        assert "fnn_ratio" not in ratios["fnn-manual"] and ratios["fnn-autodiff"]["fnn_ratio"]["all"]["n"] == 1
        assert set(m["summary"]["ratios"]) == {p for p in QUICK_PEERS[1:] if by[p]["status"] == "ok"}
        assert m["summary"]["observation"].startswith("fnn-manual steps/s over each contender's")


def test_json_records_every_figure(out):
    d = json.loads(json.dumps(out))
    assert {"cpu_model", "cpu_count", "date", "jax_version", "versions"} <= set(d["device"])
    assert d["device"]["versions"]["torch"] is None or _installed("torch")
    assert d["settings"]["rounds"] == 1 and d["settings"]["quick"] is True
    for name, m in d["models"].items():
        assert m["model"] == name and m["settings"]["steps"] == family_tasks.QUICK[name]["steps"]
        assert {"batch_size", "learning_rate", "parameters", "train_examples", "test_examples"} <= set(m["settings"])
        for peer, entries in m["rounds"].items():
            assert {"round", "steps_per_second", "other_cores"} <= set(entries[0])
        assert {"rounds", "ratios", "observation", "goal"} <= set(m["summary"])


def test_markdown_has_one_table_per_model_and_text_lines(out):
    md = family_peers.to_markdown(out, "python -m benchmarks.family_peers --quick")
    assert md.count("\n### ") == len(family_tasks.MODELS)
    for name in family_tasks.MODELS:
        section = md.split(f"### {name}:")[1].split("\n### ")[0]
        assert "- goal: none set yet" in section and "observation: fnn-manual steps/s" in section
        rows = [line for line in section.splitlines() if line.startswith("| ")]
        assert rows[0].startswith("| contender | what | first call s") and len(rows) == 1 + len(QUICK_PEERS)
        assert all(row.count("|") == rows[0].count("|") for row in rows[1:] if "skipped" not in row)
    assert "exact match | token accuracy |" in md and "`python -m benchmarks.family_peers --quick`" in md
    lines = family_peers.table_lines(out)
    assert sum(line.startswith("observation:") for line in lines) == len(family_tasks.MODELS)


def test_main_writes_json_and_markdown(out, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(family_peers, "run", lambda *a, **k: json.loads(json.dumps(out)))
    j, md = tmp_path / "f.json", tmp_path / "f.md"
    assert family_peers.main(["--quick", "--json", str(j), "--md", str(md)]) == 0
    assert json.loads(j.read_text())["command"] == f"python -m benchmarks.family_peers --quick --json {j} --md {md}"
    assert md.read_text().startswith("## fnn and its peers")
    assert f"wrote {j}" in capsys.readouterr().out


@pytest.mark.parametrize("argv, named", [
    (["--models", "cnn,mlp"], "'mlp'"), (["--peers", "fnn-manual,jax"], "'jax'"), (["--rounds", "-1"], "--rounds"),
    (["--steps", "0"], "--steps"), (["--seed", "x"], "--seed"), (["--models", ","], "--models"),
    (["--json", "/nonexistent-folder/f.json"], "--json"), (["--bogus"], "--bogus")])
def test_bad_flags_exit_2_with_one_line(argv, named, capsys):
    try:
        code = cli.run(family_peers.main, argv, prog="python -m benchmarks.family_peers")
    except SystemExit as e:                                   # argparse's own errors (cli.ArgumentParser)
        code = e.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert named in err and len(err.splitlines()) == 1 and err.startswith("python -m benchmarks.family_peers")


def test_bad_flag_from_the_command_line():
    p = subprocess.run([sys.executable, "-m", "benchmarks.family_peers", "--models", "nope"], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and p.stdout == "" and len(p.stderr.strip().splitlines()) == 1 and "'nope'" in p.stderr


def test_missing_peers_are_skipped_with_what_to_install(monkeypatch):
    for module in ("torch", "equinox"):
        monkeypatch.setitem(sys.modules, module, None)          # import now raises ImportError
    m = family_peers.run_model("cnn", ("torch", "torch-compile", "equinox"), rounds=1, quick=True, log=None)
    by = _by_name(m)
    assert all(r["status"] == "skipped" for r in by.values()) and m["rounds"] == {}
    assert "fnn[peers]" in by["torch"]["message"] and "fnn[jax-peers]" in by["equinox"]["message"]
    assert m["summary"]["observation"] == "fnn-manual did not run: no comparison"


def test_torch_compile_failing_is_recorded_as_unavailable(monkeypatch):
    torch = pytest.importorskip("torch")

    def broken(module):
        def call(*args):
            raise RuntimeError("no C++ compiler\nfound")
        return call
    monkeypatch.setattr(torch, "compile", broken)
    m = family_peers.run_model("gru", ("torch-compile",), rounds=1, quick=True, log=None)
    r, = m["contenders"]
    assert r["status"] == "skipped" and r["message"] == "unavailable: RuntimeError: no C++ compiler found"
    assert "torch-compile" not in m["rounds"]
    assert "| torch-compile | skipped: unavailable: RuntimeError" in "\n".join(family_peers._model_markdown(m))


@pytest.mark.parametrize("name", family_tasks.MODELS)
def test_peers_start_from_fnns_initial_params(name):
    """At fnn's initial params every peer's module computes fnn's logits (the layouts copied right)."""
    task = family_tasks.make_task(name, quick=True)
    x = task.x_train[:5]
    want = np.asarray(task.model.apply(task.params, x))
    if _installed("torch"):
        import torch
        module, to_input = {"cnn": family_torch._cnn, "gru": family_torch._gru,
                            "transformer": family_torch._transformer}[name](torch, task)
        with torch.no_grad():
            np.testing.assert_allclose(module(to_input(x)).numpy(), want, atol=1e-5)
    if _installed("equinox"):
        import equinox as eqx
        with jax.numpy_rank_promotion("allow"):
            module = {"cnn": family_equinox._cnn, "gru": family_equinox._gru,
                      "transformer": family_equinox._transformer}[name](eqx, task, jax.random.key(0))
            np.testing.assert_allclose(np.asarray(jax.vmap(module)(x)), want, atol=1e-5)


def test_protocols_are_the_scripts_own():
    table, demo = load_script("mnist1d_table"), load_script("transformer")
    for name in ("cnn", "gru"):
        p = family_tasks.PROTOCOLS[name]
        assert {k: p[k] for k in ("batch_size", "learning_rate", "schedule", "init")} == {
            k: table.RECIPES[name][k] for k in ("batch_size", "learning_rate", "schedule", "init")}
    p, recipe = family_tasks.PROTOCOLS["transformer"], demo.RECIPES["sort"]
    assert {k: p[k] for k in demo.MODEL} == demo.MODEL and p["length"] == recipe["task"]["length"]
    assert all(p[k] == recipe[k] for k in ("n_train", "n_test", "batch_size", "learning_rate"))


def test_summary_prefers_quiet_same_round_ratios():
    def entries(rates, loads):
        return [{"round": i, "steps_per_second": r, "other_cores": c} for i, (r, c) in enumerate(zip(rates, loads))]
    ok = lambda name, sps, acc: {"name": name, "status": "ok", "steps_per_second": sps, "accuracy": acc}  # noqa: E731
    m = {"metric": "test accuracy", "contenders": [ok("fnn-manual", 100.0, 0.9), ok("torch", 50.0, 0.8),
                                                   ok("equinox", 80.0, 0.85)],
         "rounds": {"fnn-manual": entries([100, 100, 10], [0.0, 0.0, 1.0]),
                    "torch": entries([50, 25, 5], [0.0, 1.0, 1.0]), "equinox": entries([50, 50, 50], [1.0, 1.0, 1.0])}}
    s = family_peers.summarize(m)
    assert s["ratios"]["torch"] == {"ratio": 2.0, "from": "quiet rounds", "n": 1}      # round 0 only
    assert s["ratios"]["equinox"]["from"] == "all rounds" and s["ratios"]["equinox"]["ratio"] == 2.0
    assert s["observation"] == ("fnn-manual steps/s over each contender's (all rounds / quiet rounds, medians): "
                                "2.00× torch, 2.00× equinox; test accuracy 0.900 against 0.800–0.850")
    del m["rounds"]
    assert family_peers.summarize(m)["ratios"]["equinox"] == {"ratio": 1.25, "from": "first runs", "n": 1}
    assert math.isclose(family_peers.summarize(m)["ratios"]["torch"]["ratio"], 2.0)
    with pytest.raises(ValueError, match="'mlp'"):
        family_peers.run(["mlp"], log=None)
