"""scripts/train.py as a user runs it: outputs, resume, and one-line errors.

The runs call the script's main() in this process (one JAX start-up for all of them);
one bad command line runs it as a separate process, as a user's shell does.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import fnn
from fnn import checkpoint, cli, models
from fnn.errors import InputError
from conftest import load_script

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "train.py")
XOR = ["--dataset", "xor", "--hidden", "4", "--activation", "tanh", "--optimizer", "sgd",
       "--lr", "1", "--no-progress"]


def run(*args):
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def train_script():
    return load_script("train", "train_script_in_process")


def in_process(script, capsys, *argv):
    """(exit code, stdout, stderr) of scripts/train.py argv, run in this process."""
    code = cli.run(script.main, [str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_xor_run_writes_metrics_checkpoint_and_plot(tmp_path, train_script, capsys):
    code, out, err = in_process(train_script, capsys, *XOR, "--steps", "1500", "--out", tmp_path)
    assert code == 0, err
    assert "device: cpu" in out
    assert "hand-written vs jax.grad max relative error" in out
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


def test_resume_matches_uninterrupted_run(tmp_path, train_script, capsys):
    full, part = tmp_path / "full", tmp_path / "part"
    assert in_process(train_script, capsys, *XOR, "--steps", "600", "--batch-size", "2", "--out", full)[0] == 0
    assert in_process(train_script, capsys, *XOR, "--steps", "200", "--batch-size", "2", "--out", part)[0] == 0
    code, out, err = in_process(train_script, capsys, "--resume", part, "--steps", "600", "--no-progress")
    assert code == 0, err
    assert "resumed from" in out
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
def test_bad_input_is_one_line_and_exit_2(args, message, tmp_path, train_script, capsys):
    try:                                                  # in-process: one JAX start-up for all of them
        code, _, err = in_process(train_script, capsys, *args, "--out", tmp_path, "--no-progress")
    except SystemExit as e:                               # argparse
        code, err = e.code, capsys.readouterr().err
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err


def test_bad_input_from_the_command_line_is_one_line_and_exit_2(tmp_path):
    r = run("--lr", "-1", "--out", str(tmp_path), "--no-progress")   # the script as a user runs it
    assert r.returncode == 2 and "--lr" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr


# --model cnn, in-process (the script loaded as a module) so that its runs share one MNIST-1D.
# 4,000 training examples in batches of 1,000: 4 steps an epoch, so the 4-step run ends at an
# epoch boundary, where a resume continues exactly (one that ends mid-epoch starts a fresh epoch).
CNN = ["--model", "cnn", "--batch-size", "1000", "--no-progress"]     # no validation split by default


def _run_config(folder):
    return checkpoint.read_config(os.path.join(folder, "checkpoint.npz"))[0]["run"]


def test_the_paper_cnn_trains_writes_its_files_and_resumes_exactly(train_script, capsys, tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    code, out, err = in_process(train_script, capsys, *CNN, "--steps", "8", "--report", "--out", full)
    assert code == 0, err
    assert "model: cnn serial(Reshape((40, 1)), Conv(25, 5, stride=2, padding=1)" in out
    assert "hand-written vs jax.grad max relative error" in out
    m = json.loads((full / "metrics.json").read_text())
    assert m["architecture"] == "cnn" and m["model"].startswith("serial(Reshape((40, 1))")
    assert m["steps"] == 8 and m["epochs"] == 2 and m["grad_check_rel_err"] < 1e-5
    assert m["test_accuracy"] > 0.2                       # 8 steps: above chance (0.1)
    config = _run_config(full)
    assert (config["model"], config["steps"], config["batch_size"]) == ("cnn", 8, 1000)
    assert len((full / "history.jsonl").read_text().splitlines()) == 1 + 2
    assert (full / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<html" in (full / "report.html").read_text(encoding="utf-8")
    assert in_process(train_script, capsys, *CNN, "--steps", "4", "--out", part)[0] == 0
    code, out, err = in_process(train_script, capsys, "--resume", part, "--steps", "8", "--no-progress")
    assert code == 0, err
    assert "resumed from" in out
    a, b = _params(full), _params(part)
    assert a.keys() == b.keys() and a
    assert all(np.array_equal(a[k], b[k]) for k in a)
    history = lambda folder: (folder / "history.jsonl").read_text().splitlines()[1:]  # noqa: E731
    assert history(full) == history(part)
    assert _run_config(part) == config


def test_cnn_min_length_is_the_shortest_signal_paper_cnn_takes(train_script):
    fnn.summary(models.paper_cnn(train_script.CNN_MIN_LENGTH), (-1, train_script.CNN_MIN_LENGTH))
    with pytest.raises(InputError, match="no window fits"):
        fnn.summary(models.paper_cnn(train_script.CNN_MIN_LENGTH - 1), (-1, train_script.CNN_MIN_LENGTH - 1))
