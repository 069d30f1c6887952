"""The fnn command and saved runs: train on a user's CSV, then evaluate, predict, summary, gradcheck, report
and fnn.load_run, each with the run's own preprocessing; bad input is one line and exit code 2.

Runs are in-process (fnn.commands.main through fnn.cli.run) and tiny.
"""
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

import fnn
from fnn import cli, commands
from fnn.errors import InputError
from fnn.runs import folders
from conftest import wrong_backward

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMES = ("high", "low", "mid")
FEATURE_SCALE = np.array([1.0, 10.0, 100.0, 0.1])       # raw units far from standardized ones
FEATURE_SHIFT = np.array([0.0, 50.0, -200.0, 3.0])


def _examples(n, seed):
    """(x raw (n, 4), names (n,)): three classes set by a linear score of the standardized features."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 4))
    score = z @ np.array([1.0, 1.0, 1.0, 1.0])
    names = np.where(score < -1, "low", np.where(score > 1, "high", "mid"))
    return z * FEATURE_SCALE + FEATURE_SHIFT, names


def _write_csv(path, x, names=None):
    header = ["a", "b", "c", "d"] + ([] if names is None else ["level"])
    rows = [",".join(header)]
    for i, row in enumerate(x):
        rows.append(",".join(f"{v:.6f}" for v in row) + ("" if names is None else f",{names[i]}"))
    path.write_text("\n".join(rows) + "\n")
    return str(path)


def call(capsys, *argv):
    """(exit code, stdout, stderr) of `fnn argv`, run in this process."""
    try:
        code = cli.run(commands.main, [str(a) for a in argv], prog="fnn")
    except SystemExit as e:                                  # argparse
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def refused(capsys, *argv, names=()):
    code, out, err = call(capsys, *argv)
    assert code == 2, (out, err)
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for name in names:
        assert name in err, (name, err)
    return err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run trained by `fnn train` on a CSV of named classes, and its held-out files."""
    folder = tmp_path_factory.mktemp("cmd")
    x, names = _examples(300, 0)
    x_test, names_test = _examples(120, 1)
    train_csv = _write_csv(folder / "train.csv", x, names)
    test_csv = _write_csv(folder / "test.csv", x_test, names_test)
    new_csv = _write_csv(folder / "new.csv", x_test[:7])
    labels = np.array([NAMES.index(n) for n in names_test], np.int32)
    labelled_csv = _write_csv(folder / "labelled.csv", x_test, labels)
    np.savez(folder / "test.npz", x=x_test.astype(np.float32), y=labels)
    out = folder / "run"
    code = cli.run(commands.main, ["train", "--dataset", train_csv, "--steps", "300", "--batch-size", "20",
                                   "--out", str(out), "--no-progress"], prog="fnn")
    assert code == 0
    return dict(folder=folder, run=str(out), train_csv=train_csv, test_csv=test_csv, new_csv=new_csv,
                labelled_csv=labelled_csv,
                test_npz=str(folder / "test.npz"), x_test=x_test, labels=labels)


def test_load_run_rebuilds_the_model_and_applies_the_saved_preprocessing(trained):
    run = fnn.load_run(trained["run"])
    assert run.class_names == NAMES and run.task == "classification"
    assert run.config["dataset"] == trained["train_csv"] and run.data["source"]["sha256"]
    x = trained["x_test"]
    # by hand: standardize with the saved statistics, run the model, take the argmax
    pre = run.preprocessing
    z = (x - pre.x.mean) / pre.x.std
    logits = np.asarray(fnn.predict(run.model, run.params, z.astype(np.float32)))
    np.testing.assert_allclose(run.predict_proba(x), np.asarray(jax.nn.softmax(logits, axis=-1)),
                               rtol=1e-5, atol=1e-6)
    assert list(run.predict(x)) == [NAMES[i] for i in logits.argmax(axis=1)]
    accuracy = run.evaluate(x, trained["labels"])["accuracy"]
    assert accuracy > 0.8                                    # a linear boundary, 300 steps
    # raw inputs given to the model without the preprocessing score lower: the scaling matters
    raw = np.asarray(fnn.predict(run.model, run.params, x.astype(np.float32))).argmax(axis=1)
    assert np.mean(raw == trained["labels"]) < accuracy


def test_evaluate_reads_csv_and_npz_with_the_runs_class_names(trained, capsys, tmp_path):
    run = fnn.load_run(trained["run"])
    expected = run.evaluate(trained["x_test"], trained["labels"])
    for data in (trained["test_csv"], trained["test_npz"]):
        report = tmp_path / "eval.json"
        code, out, err = call(capsys, "evaluate", trained["run"], "--data", data, "--json", report)
        assert code == 0, err
        assert f"accuracy {expected['accuracy']:.4f}" in out and "120 examples" in out
        figures = json.loads(report.read_text())
        assert figures["accuracy"] == pytest.approx(expected["accuracy"])
        assert figures["loss"] == pytest.approx(expected["loss"], rel=1e-5)


def test_predict_writes_labels_and_probabilities_as_csv_and_npz(trained, capsys, tmp_path):
    run = fnn.load_run(trained["run"])
    x = fnn.data.load_features(trained["new_csv"])          # the inputs as the file holds them
    np.testing.assert_allclose(x, trained["x_test"][:7], rtol=1e-6, atol=1e-6)     # 6 decimals
    code, out, err = call(capsys, "predict", trained["run"], "--input", trained["new_csv"])
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0] == "label,p_high,p_low,p_mid" and len(lines) == 8
    assert [line.split(",")[0] for line in lines[1:]] == list(run.predict(x))
    proba = np.array([[float(v) for v in line.split(",")[1:]] for line in lines[1:]])
    np.testing.assert_allclose(proba, run.predict_proba(x), rtol=1e-4, atol=1e-6)
    path = tmp_path / "p.npz"
    assert call(capsys, "predict", trained["run"], "--input", trained["new_csv"], "--output", path)[0] == 0
    with np.load(path, allow_pickle=False) as saved:
        np.testing.assert_allclose(saved["probabilities"], run.predict_proba(x), rtol=1e-5, atol=1e-7)
        assert list(saved["class_names"]) == list(NAMES)
        assert [NAMES[i] for i in saved["labels"]] == list(run.predict(x))
    csv_path = tmp_path / "p.csv"
    assert call(capsys, "predict", trained["run"], "--input", trained["new_csv"], "--output", csv_path)[0] == 0
    assert csv_path.read_text().splitlines() == lines


def test_summary_and_gradcheck_of_a_run(trained, capsys):
    code, out, err = call(capsys, "summary", trained["run"])
    assert code == 0, err
    assert "10,903 parameters" in out                         # 4-100-100-3: 500 + 10,100 + 303
    assert "Dropout(0.2)" in out and "classes high, low, mid" in out and "test accuracy" in out
    code, out, err = call(capsys, "summary", trained["run"], "--json")
    record = json.loads(out)
    assert record["parameters"] == 4 * 100 + 100 + 100 * 100 + 100 + 100 * 3 + 3
    code, out, err = call(capsys, "gradcheck", trained["run"], "--fd-per-leaf", "4")
    assert code == 0, (out, err)
    assert out.strip().endswith("pass")


def test_fnn_gradcheck_passes_the_models_and_fails_a_wrong_backward(capsys, monkeypatch):
    code, out, err = call(capsys, "gradcheck", "--model", "logistic", "--fd-per-leaf", "4")
    assert code == 0 and out.strip().endswith("pass"), (out, err)

    def wrong_logistic():           # dW 1% too large: the kind of slip a hand-written backward makes
        model = fnn.models.logistic()
        dense = wrong_backward(model.layers[-1], dparams=lambda g: {**g, "W": 1.01 * g["W"]})
        return fnn.serial(*model.layers[:-1], dense)
    monkeypatch.setitem(fnn.models.MNIST1D_MODELS, "logistic", wrong_logistic)
    code, out, err = call(capsys, "gradcheck", "--model", "logistic", "--fd-per-leaf", "4")
    assert code == 1 and out.strip().endswith("FAIL"), (out, err)


@pytest.mark.parametrize("argv, names", [
    (["predict", "{run}", "--input", "{labelled_csv}"], ["5 columns", "the run takes 4 features", "drop the label"]),
    (["predict", "{run}", "--input", "{test_csv}"], ["'mid' is not a number"]),
    (["predict", "{run}", "--input", "{new_csv}", "--output", "{folder}/p.txt"], ["--output", ".csv or .npz"]),
    (["evaluate", "{run}", "--data", "{new_csv}"], ["new.csv"]),
    (["evaluate", "{folder}", "--data", "{test_csv}"], ["is not a run folder"]),
    (["predict", "{run}", "--input", "{folder}/missing.csv"], ["missing.csv"]),
    (["summary", "{folder}/nothing"], ["is not a run folder"]),
    (["evaluate", "{run}"], ["--data"]),
    (["frobnicate"], ["invalid choice"]),
])
def test_bad_input_is_one_line_and_exit_2(trained, capsys, argv, names):
    argv = [a.format(**trained) for a in argv]
    refused(capsys, *argv, names=names)


def test_a_corrupt_checkpoint_is_refused_by_load_run_and_the_commands(trained, capsys, tmp_path):
    copy = tmp_path / "run"
    copy.mkdir()
    raw = bytearray(open(os.path.join(trained["run"], "checkpoint.npz"), "rb").read())
    raw[len(raw) // 2] ^= 0xFF
    (copy / "checkpoint.npz").write_bytes(bytes(raw))
    with pytest.raises(InputError):
        fnn.load_run(copy)
    refused(capsys, "predict", copy, "--input", trained["new_csv"], names=["checkpoint"])


def test_train_makes_a_new_folder_per_run_and_refuses_to_overwrite(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["train", "--dataset", "xor", "--hidden", "4", "--steps", "5", "--no-progress"]
    assert call(capsys, *argv)[0] == 0
    assert call(capsys, *argv)[0] == 0
    runs = sorted(p for p in os.listdir("runs") if p != folders.LATEST)
    assert len(runs) == 2 and os.readlink(os.path.join("runs", folders.LATEST)) == runs[-1]
    assert fnn.load_run("runs/latest").folder == "runs/latest"
    refused(capsys, *argv, "--out", os.path.join("runs", runs[0]), names=["already holds a run", "--overwrite"])
    assert call(capsys, *argv, "--out", os.path.join("runs", runs[0]), "--overwrite")[0] == 0
    assert os.readlink(os.path.join("runs", folders.LATEST)) == runs[0]       # the newest run now
    code, out, err = call(capsys, "train", "--resume", "runs/latest", "--steps", "8", "--no-progress")
    assert code == 0, err
    assert f"resumed from runs/{runs[0]}" in out and "trained 3 steps" in out
    # a resumed run written to another folder that holds a run replaces it only with --overwrite
    other = os.path.join("runs", runs[1])
    refused(capsys, "train", "--resume", "runs/latest", "--steps", "9", "--out", other, "--no-progress",
            names=["already holds a run"])


def _help(capsys, *argv):
    """The --help text of `fnn argv` (argparse exits 0 after printing it), on one line."""
    with pytest.raises(SystemExit) as exit_info:
        commands.main([*argv, "--help"])
    assert exit_info.value.code == 0
    return " ".join(capsys.readouterr().out.split())                # argparse wraps lines


def test_python_dash_m_fnn_and_the_console_script(capsys):
    r = subprocess.run([sys.executable, "-m", "fnn", "--help"], capture_output=True, text=True, timeout=120,
                       cwd=ROOT)
    assert r.returncode == 0 and all(c in r.stdout for c in commands.COMMANDS)
    assert " ".join(r.stdout.split()) == _help(capsys)            # python -m fnn is fnn.commands.main
    text = _help(capsys, "predict")
    assert "--output FILE" in text and "(default 268,435,456" in text
    text = _help(capsys, "gradcheck")
    assert "(default: 8)" not in text and "(default 8)" in text
    import tomllib
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        assert tomllib.load(f)["project"]["scripts"]["fnn"] == "fnn.commands:console"


def test_fnn_report_rewrites_a_report_from_the_runs_snapshots_or_its_params(trained, capsys, tmp_path):
    out = tmp_path / "one.html"
    code, stdout, err = call(capsys, "report", trained["run"], "--out", out)
    assert code == 0, err
    assert "kept no snapshots" in stdout and "(1 frame)" in stdout
    assert "<html" in out.read_text(encoding="utf-8")
    refused(capsys, "report", trained["run"], "--out", tmp_path / "missing" / "r.html",
            names=["existing folder"])
