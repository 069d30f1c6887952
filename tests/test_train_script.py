"""scripts/train.py as a user runs it: outputs, resume, and one-line errors."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "train.py")
XOR = ["--dataset", "xor", "--hidden", "4", "--activation", "tanh", "--optimizer", "sgd",
       "--lr", "1", "--no-progress"]


def run(*args):
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, timeout=300)


def test_xor_run_writes_metrics_checkpoint_and_plot(tmp_path):
    r = run(*XOR, "--steps", "1500", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "device: cpu" in r.stdout
    assert "hand-written vs jax.grad max relative error" in r.stdout
    m = json.loads((tmp_path / "metrics.json").read_text())
    for field in ("dataset", "device", "grad", "steps", "wall_seconds", "steps_per_second",
                  "train_loss", "test_accuracy", "grad_check_rel_err"):
        assert field in m, field
    assert m["dataset"] == "xor" and m["grad"] == "manual" and m["steps"] == 1500
    assert m["test_accuracy"] == 1.0
    assert m["grad_check_rel_err"] < 1e-5
    assert (tmp_path / "checkpoint.npz").stat().st_size > 0
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _params(folder):
    with np.load(os.path.join(folder, "checkpoint.npz")) as f:
        return {k: f[k] for k in f.files if k != "__meta__"}


def test_resume_matches_uninterrupted_run(tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    assert run(*XOR, "--steps", "600", "--batch-size", "2", "--out", str(full)).returncode == 0
    assert run(*XOR, "--steps", "200", "--batch-size", "2", "--out", str(part)).returncode == 0
    r = run("--resume", str(part), "--steps", "600", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "resumed from" in r.stdout
    a, b = _params(full), _params(part)
    assert a.keys() == b.keys()
    assert all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("args, message", [
    (["--lr", "-1"], "--lr"),
    (["--steps", "0"], "--steps"),
    (["--dataset", "cifar"], "unknown dataset 'cifar'"),
    (["--activation", "swoosh"], "unknown activation 'swoosh'"),
    (["--optimizer", "lion"], "unknown optimizer"),
    (["--hidden", "10,x"], "--hidden"),
    (["--grad", "numeric"], "--grad"),
    (["--dataset", "xor", "--batch-size", "5"], "larger than the 4 training examples"),
    (["--resume", "/nonexistent/run"], "no checkpoint"),
    (["--model", "resnet"], "unknown model 'resnet'"),
    (["--model", "cnn", "--hidden", "10"], "--hidden '10' applies to --model mlp only"),
    (["--model", "cnn", "--activation", "tanh"], "--activation 'tanh' applies to --model mlp only"),
    (["--model", "cnn", "--dataset", "xor"], "--model cnn needs examples of at least 3 features"),
    (["--model", "cnn", "--max-params", "5000"], "has 5,210 parameters, more than --max-params 5,000"),
])
def test_bad_input_is_one_line_and_exit_2(args, message, tmp_path):
    r = run(*args, "--out", str(tmp_path), "--no-progress")
    assert r.returncode == 2
    assert message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "Traceback" not in r.stderr


def test_the_paper_cnn_trains_resumes_exactly_and_refuses_another_model_on_resume(tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    cnn = ["--model", "cnn", "--no-progress"]
    # MNIST-1D: 40 batches of 100 an epoch; the part run ends at an epoch boundary, where a resume
    # continues exactly (one that ends mid-epoch resumes with a fresh epoch: see the README)
    r = run(*cnn, "--steps", "80", "--out", str(full))
    assert r.returncode == 0, r.stderr
    assert "model: cnn serial(Reshape((40, 1)), Conv(25, 5, stride=2, padding=1)" in r.stdout
    m = json.loads((full / "metrics.json").read_text())
    assert m["architecture"] == "cnn" and m["steps"] == 80 and m["grad_check_rel_err"] < 1e-5
    assert m["model"].startswith("serial(Reshape((40, 1))")
    assert m["test_accuracy"] > 0.2                       # 80 steps: well above chance (0.1)
    assert run(*cnn, "--steps", "40", "--out", str(part)).returncode == 0
    r = run("--resume", str(part), "--model", "mlp", "--no-progress")
    assert r.returncode == 2 and "--model 'mlp' conflicts with the run being resumed" in r.stderr
    r = run("--resume", str(part), "--steps", "80", "--no-progress")
    assert r.returncode == 0, r.stderr
    a, b = _params(full), _params(part)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
