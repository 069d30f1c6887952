"""scripts/train.py fails cleanly: one stderr line and exit code 2 for every user-caused failure,
found before training where it can be, and nothing lost (a previous checkpoint still loads).

Runs are in-process (fnn.cli.run(main, argv)) and tiny: XOR, 4 examples, one step an epoch.
"""
import contextlib
import errno
import io
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from fnn import checkpoint, cli
from fnn.runs import config as run_config, history as run_history
from fnn.errors import FnnError, InputError
from conftest import load_script

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "train.py")
XOR = ["--dataset", "xor", "--hidden", "4", "--activation", "tanh", "--optimizer", "sgd",
       "--lr", "1", "--no-progress"]
SAVED = {"dataset": "xor", "model": "mlp", "hidden": "4", "activation": "tanh", "optimizer": "sgd", "lr": 1.0,
         "batch_size": 4, "grad": "manual", "seed": 0, "precision": "fp32"}


train = load_script("train", "train_script_under_test")


def call(capsys, *argv):
    code = cli.run(train.main, [str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def refused(capsys, argv, *names):
    """Run argv; assert exit 2, exactly one stderr line, no traceback, and that it names each of `names`."""
    try:
        code, out, err = call(capsys, *argv)
    except SystemExit as e:                       # argparse
        code, (out, err) = e.code, capsys.readouterr()
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for name in names:
        assert str(name) in lines[0], (name, lines[0])
    return lines[0]


def files(folder):
    """{name: bytes} of every file in folder (the lock file aside)."""
    return {n: open(os.path.join(folder, n), "rb").read() for n in sorted(os.listdir(folder))
            if n != cli.LOCK_FILE and os.path.isfile(os.path.join(folder, n))}


def params(folder):
    with np.load(os.path.join(folder, train.CHECKPOINT)) as f:
        return {k: f[k] for k in f.files if k != "__meta__"}


def loads_at(folder, step):
    """The checkpoint in folder loads (its arrays pass their checksums) and is at `step`."""
    config, saved_step = checkpoint.read_config(os.path.join(folder, train.CHECKPOINT))
    assert saved_step == step
    assert params(folder)
    return config


def _finished_run(tmp_path_factory, name, argv):
    """The folder of a run of train.py with `argv` that finished (stdout silenced)."""
    folder = str(tmp_path_factory.mktemp(name) / "run")
    with contextlib.redirect_stdout(io.StringIO()):
        assert train.main([*argv, "--out", folder]) == 0
    return folder


def _copy(folder, tmp_path, name):
    copy = str(tmp_path / name)
    shutil.copytree(folder, copy)
    return copy


@pytest.fixture(scope="module")
def done5(tmp_path_factory):
    """A finished 5-step XOR run (5 epochs); tests copy it before changing anything."""
    return _finished_run(tmp_path_factory, "done5", [*XOR, "--steps", "5"])


@pytest.fixture
def run5(done5, tmp_path):
    return _copy(done5, tmp_path, "run")


@pytest.fixture(scope="module")
def signals(tmp_path_factory):
    """A .npz of 10 examples of 5 features, 2 classes: data --model cnn takes, small enough to be quick."""
    path = str(tmp_path_factory.mktemp("signals") / "signals.npz")
    np.savez(path, x=(np.arange(50, dtype=np.float32).reshape(10, 5) % 7), y=np.arange(10) % 2)
    return path


@pytest.fixture(scope="module")
def cnn_done2(signals, tmp_path_factory):
    """A finished 2-step --model cnn run on `signals`; tests copy it before changing anything."""
    return _finished_run(tmp_path_factory, "cnn_done2",
                         ["--model", "cnn", "--dataset", signals, "--steps", "2", "--no-progress"])


@pytest.fixture
def cnn2(cnn_done2, tmp_path):
    return _copy(cnn_done2, tmp_path, "cnn")


# ---- 1. --out must be (or become) a writable folder -----------------------------------------

def test_out_that_is_not_a_writable_folder_is_refused_before_training(capsys, tmp_path, run5):
    a_file = tmp_path / "a_file"
    a_file.write_text("keep me")
    refused(capsys, [*XOR, "--out", a_file], "--out", str(a_file), "not a folder")
    refused(capsys, [*XOR, "--out", a_file / "sub"], "--out", str(a_file / "sub"), "cannot create")
    refused(capsys, [*XOR, "--out", "/proc/fnn-no-such-folder"], "/proc/fnn-no-such-folder", "cannot create")
    refused(capsys, [*XOR, "--out", ""], "--out", "''")
    refused(capsys, [*XOR, "--out", "  "], "--out", "'  '")
    refused(capsys, [*XOR, "--resume", ""], "--resume", "''")
    assert a_file.read_text() == "keep me"


def test_read_only_out_is_refused_and_its_checkpoint_kept(capsys, run5, monkeypatch):
    before = files(run5)
    real_open = os.open

    def read_only(path, *args, **kwargs):      # root ignores chmod: the OS's answer for a read-only mount
        if ".probe-" in os.fspath(path):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), path)
        return real_open(path, *args, **kwargs)
    monkeypatch.setattr(os, "open", read_only)
    line = refused(capsys, [*XOR, "--steps", "9", "--out", run5], "--out", run5, "Read-only file system")
    assert "not a writable folder" in line
    monkeypatch.undo()
    assert files(run5) == before
    loads_at(run5, 5)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder")
def test_chmod_read_only_out_is_refused(capsys, run5):
    os.chmod(run5, 0o555)
    try:
        refused(capsys, [*XOR, "--steps", "9", "--out", run5], run5, "Permission denied")
    finally:
        os.chmod(run5, 0o755)
    loads_at(run5, 5)


# ---- 2. a full disk while writing: one line, the previous files kept ---------------------------

def enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_full_disk_writing_the_checkpoint_keeps_the_old_one_and_resumes_exactly(capsys, run5, tmp_path,
                                                                                 monkeypatch):
    monkeypatch.setattr(np, "savez", enospc)
    refused(capsys, ["--resume", run5, "--steps", "10", "--no-progress"],
            os.path.join(run5, train.CHECKPOINT), "No space left on device", "the previous checkpoint there, if any, is unchanged")
    monkeypatch.undo()
    loads_at(run5, 5)
    assert not [n for n in os.listdir(run5) if ".tmp-" in n]            # no temporary left behind
    # the history was appended before the checkpoint failed; the resume drops those epochs
    assert len(open(os.path.join(run5, train.HISTORY)).readlines()) == 1 + 10
    assert call(capsys, "--resume", run5, "--steps", "10", "--no-progress")[0] == 0
    full = str(tmp_path / "full")
    assert call(capsys, *XOR, "--steps", "10", "--out", full)[0] == 0
    a, b = params(full), params(run5)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    history = lambda folder: open(os.path.join(folder, train.HISTORY)).readlines()[1:]  # noqa: E731
    assert history(full) == history(run5)


@pytest.mark.parametrize("victim", [train.METRICS, train.PLOT, train.HISTORY])
def test_full_disk_writing_metrics_plot_or_history_is_one_line(capsys, run5, monkeypatch, victim):
    before = files(run5)
    real_fsync = os.fsync

    def full_for_victim(fd):                            # ENOSPC for that file (and its temporary) only,
        if victim in os.readlink(f"/proc/self/fd/{fd}"):   # as a full disk reports it on fsync
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)
    monkeypatch.setattr(os, "fsync", full_for_victim)
    refused(capsys, ["--resume", run5, "--steps", "7", "--no-progress"], victim, "No space left on device")
    monkeypatch.undo()
    assert not [n for n in os.listdir(run5) if ".tmp-" in n]
    if victim != train.HISTORY:
        assert files(run5)[victim] == before[victim]            # the previous file, whole
        loads_at(run5, 7)                                       # the checkpoint was written before
    else:
        assert files(run5) == before                            # nothing was written
        loads_at(run5, 5)
    assert call(capsys, "--resume", run5, "--steps", "8", "--no-progress")[0] == 0
    loads_at(run5, 8)


# ---- 3. flag values fit's int32 counters and the memory can hold ------------------------------

@pytest.mark.parametrize("argv, names", [
    (["--seed", "99999999999999999999"], ["--seed", "99999999999999999999", "4,294,967,295"]),
    (["--seed", "-1"], ["--seed", "'-1'"]),
    (["--seed", "1.5"], ["--seed", "1.5"]),
    (["--steps", "3000000000"], ["--steps", "3000000000", "2,147,483,647"]),
    (["--epochs", "1099511627776"], ["--epochs", "1099511627776", "2,147,483,647"]),
    (["--epochs", "2147483647", "--batch-size", "1"], ["--epochs", "8,589,934,588", "2,147,483,647"]),
    (["--batch-size", "1e3"], ["--batch-size", "1e3"]),
    (["--lr", "nan"], ["--lr", "nan"]),
    (["--lr", "inf"], ["--lr", "inf"]),
    (["--hidden", "100000000"], ["--hidden", "100,000,000", "--max-width 65,536"]),
    (["--hidden", "60000,60000"], ["--hidden", "3,600,", "--max-params 268,435,456"]),
    (["--hidden", ",".join(["2"] * 300)], ["--hidden", "300 layers", "--max-layers 256"]),
    (["--hidden", "8", "--max-width", "4"], ["--hidden", "--max-width 4"]),
    (["--hidden", "20", "--max-params", "50"], ["2-20-1", "81 parameters", "--max-params 50"]),
    (["--dataset", "blobs", "--max-classes", "2"], ["blobs", "3 classes", "--max-classes 2"]),
    (["--max-width", "0"], ["--max-width", "'0'"]),
    (["--devices", "0"], ["--devices", "'0'"]),
    (["--activation", "swoosh"], ["unknown activation 'swoosh'"]),
    (["--dataset", "cifar\nx"], ["unknown dataset", "'cifar\\nx'"]),
    (["--model", "bogus"], ["--model", "unknown model 'bogus'", "mlp, cnn"]),
    (["--model", "cnn"], ["--hidden '4' applies to --model mlp only"]),
    (["--model", "cnn", "--hidden", "100000000"], ["--hidden '100000000' applies to --model mlp only"]),
])
def test_out_of_range_flags_are_one_line_before_training(capsys, tmp_path, argv, names):
    out = tmp_path / "out"
    argv = [*XOR[:-1], *argv, "--no-progress", "--out", out]      # later flags win
    line = refused(capsys, argv, *names)
    assert not (out / train.CHECKPOINT).exists(), line
    assert not (out / train.HISTORY).exists()


@pytest.mark.parametrize("argv, names", [
    (["--dataset", "xor"], ["--model cnn needs examples of at least 3 features", "'xor' has 2"]),
    (["--activation", "relu"], ["--activation 'relu' applies to --model mlp only"]),
    (["--max-params", "1000"], ["--model cnn", "4,002 parameters", "--max-params 1,000"]),
    (["--max-width", "16"], ["--model cnn", "25 channels", "--max-width 16"]),
    (["--max-layers", "2"], ["--model cnn", "3 convolutions", "--max-layers 2"]),
])
def test_cnn_flags_and_sizes_are_one_line_before_training(capsys, tmp_path, signals, argv, names):
    out = tmp_path / "out"
    refused(capsys, ["--model", "cnn", "--dataset", signals, *argv, "--steps", "2", "--no-progress",
                     "--out", out], *names)
    assert not (out / train.CHECKPOINT).exists()


def test_a_raised_limit_lets_the_run_through(capsys, tmp_path):
    code, out, err = call(capsys, *XOR, "--hidden", "8", "--max-width", "8", "--steps", "2",
                          "--out", tmp_path / "wide")
    assert code == 0, err
    assert "model: 2-8-1" in out


def test_a_dataset_file_over_max_data_bytes_is_refused(capsys, tmp_path):
    path = tmp_path / "big.csv"
    path.write_text("x,y\n" + "1,0\n" * 100)
    refused(capsys, [*XOR, "--dataset", path, "--max-data-bytes", "100", "--out", tmp_path / "o"],
            str(path), "404 bytes", "raise it with --max-data-bytes")


def test_a_label_beyond_max_classes_names_the_flag(capsys, tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("a,b,label\n" + "".join(f"{i % 3},{i % 5},{i % 2}\n" for i in range(20)) + "1,2,1e9\n")
    refused(capsys, [*XOR, "--dataset", path, "--out", tmp_path / "o"], str(path), "label 1e+09",
            "10,000 classes", "raise it with --max-classes")


def test_help_states_the_limits(capsys):
    with pytest.raises(SystemExit) as e:
        train.parse_args(["--help"])
    assert e.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for flag, default in [("--max-width", "65,536"), ("--max-layers", "256"), ("--max-params", "268,435,456"),
                          ("--max-classes", "10,000"), ("--max-data-bytes", "268,435,456"),
                          ("--steps", "2,147,483,647"), ("--seed", "4,294,967,295")]:
        assert flag in text and default in text, flag


# ---- 4. a resumed checkpoint's config: every field checked -------------------------------------

def _rewrite_config(folder, change):
    """Rewrite the checkpoint in folder with its JSON config passed through change(config), arrays kept."""
    path = os.path.join(folder, train.CHECKPOINT)
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    meta = json.loads(arrays["__meta__"].tobytes().decode())
    change(meta["config"])
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(path, **arrays)


def _set(field, value):
    def change(config):
        config["run"][field] = value
    return change


def _delete(field, section="run"):
    def change(config):
        (config[section] if section else config).pop(field)
    return change


@pytest.mark.parametrize("change, names", [
    (_delete("seed"), ["lacks field 'seed'"]),
    (_delete("dataset"), ["lacks field 'dataset'"]),
    (_set("seed", "0"), ["field 'seed'", "'0'"]),
    (_set("seed", 2**40), ["field 'seed'", str(2**40)]),
    (_set("lr", -1), ["field 'lr'", "-1"]),
    (_set("lr", True), ["field 'lr'", "True"]),
    (_set("activation", "swoosh"), ["field 'activation'", "'swoosh'"]),
    (_set("optimizer", None), ["field 'optimizer'", "None"]),
    (_set("hidden", 4), ["field 'hidden'", "4"]),
    (_set("hidden", "100000000"), ["field 'hidden'", "--max-width"]),
    (_set("batch_size", 0), ["field 'batch_size'", "0"]),
    (_set("grad", "numeric"), ["field 'grad'", "'numeric'"]),
    (_set("precision", "fp8"), ["field 'precision'", "'fp8'"]),
    (_set("model", "rnn"), ["field 'model'", "'rnn'"]),
    (_set("model", None), ["field 'model'", "None"]),
    (_set("dataset", ["xor"]), ["field 'dataset'", "['xor']"]),
    (_set("steps", None), ["exactly one of epochs and steps"]),
    (_set("epochs", 3), ["exactly one of epochs and steps"]),
    (_set("colour", "red"), ["unknown field 'colour'"]),
    (_delete("history_log", None), ["lacks field 'history_log'"]),
    (lambda c: c["history_log"].update(epochs=-1), ["field 'history_log'"]),
    (lambda c: c.update(run=[1]), ["no run configuration"]),
])
def test_a_checkpoint_config_with_a_bad_field_is_refused(capsys, run5, change, names):
    _rewrite_config(run5, change)
    before = files(run5)
    ckpt = os.path.join(run5, train.CHECKPOINT)
    refused(capsys, ["--resume", run5, "--steps", "9", "--no-progress"], ckpt, *names)
    assert files(run5) == before


def test_a_checkpoint_from_before_history_jsonl_resumes(capsys, run5):
    history = run_history.read_history(run5, checkpoint.read_config(os.path.join(run5, train.CHECKPOINT))[0]
                                 ["history_log"], 5)

    def legacy(config):
        config.pop("history_log")
        config["history"] = history
        config["run"].pop("precision")
        config["run"].pop("model")
    _rewrite_config(run5, legacy)
    os.remove(os.path.join(run5, train.HISTORY))
    code, out, err = call(capsys, "--resume", run5, "--steps", "7", "--no-progress")
    assert code == 0, err
    assert len(open(os.path.join(run5, train.HISTORY)).readlines()) == 1 + 7
    config = loads_at(run5, 7)
    assert "history" not in config
    assert (config["run"]["model"], config["run"]["precision"]) == ("mlp", "fp32")


# ---- 5. flags given with --resume must match the saved run -----------------------------------

@pytest.mark.parametrize("flag, value", [
    ("--hidden", "5"), ("--activation", "relu"), ("--dataset", "moons"), ("--lr", "0.5"),
    ("--precision", "bf16"), ("--optimizer", "adam"), ("--grad", "autodiff"), ("--seed", "3"),
    ("--batch-size", "2"), ("--model", "cnn"),
])
def test_a_flag_that_conflicts_with_the_resumed_run_is_refused(capsys, run5, flag, value):
    before = files(run5)
    saved = SAVED[flag[2:].replace("-", "_")]
    line = refused(capsys, ["--resume", run5, "--steps", "9", flag, value, "--no-progress"],
                   flag, repr(saved), "conflicts")
    assert value in line
    assert files(run5) == before


def test_flags_equal_to_the_saved_run_are_accepted(capsys, run5, tmp_path):
    other = str(tmp_path / "elsewhere")
    code, out, err = call(capsys, "--resume", run5, "--epochs", "7", "--model", "mlp", "--hidden", " 4 ", "--lr", "1.0",
                          "--seed", "0", "--batch-size", "4", "--grad", "manual", "--dataset", "xor",
                          "--precision", "fp32", "--optimizer", "sgd", "--activation", "tanh",
                          "--out", other, "--no-progress", "--report")
    assert code == 0, err
    loads_at(other, 7)
    loads_at(run5, 5)                                  # --out elsewhere: the resumed run is untouched
    assert len(open(os.path.join(other, train.HISTORY)).readlines()) == 1 + 7
    assert os.path.getsize(os.path.join(other, train.REPORT)) > 0


@pytest.mark.parametrize("argv, names", [
    (["--model", "mlp"], ["--model 'mlp' conflicts with the run being resumed", "saved with 'cnn'"]),
    (["--model", "mlp", "--hidden", "4"], ["--model 'mlp' conflicts", "saved with 'cnn'"]),
    (["--hidden", "4"], ["--hidden '4' applies to --model mlp only", "the run being resumed"]),
    (["--hidden", "100,100"], ["--hidden '100,100' applies to --model mlp only"]),
    (["--activation", "relu"], ["--activation 'relu' applies to --model mlp only", "the run being resumed"]),
])
def test_a_flag_that_conflicts_with_a_resumed_cnn_run_is_refused(capsys, cnn2, argv, names):
    before = files(cnn2)
    refused(capsys, ["--resume", cnn2, "--steps", "4", *argv, "--no-progress"], *names)
    assert files(cnn2) == before


def test_a_cnn_run_resumes_with_its_own_flags_under_a_width_limit_of_its_channels(capsys, cnn2, signals, tmp_path):
    other = str(tmp_path / "other")
    code, out, err = call(capsys, "--resume", cnn2, "--steps", "3", "--model", "cnn", "--dataset", signals,
                          "--max-width", "25", "--out", other, "--no-progress")
    assert code == 0, err
    assert loads_at(other, 3)["run"]["model"] == "cnn"


# ---- 6. one run at a time in a folder ----------------------------------------------------------

def test_a_locked_out_folder_is_refused_at_once(capsys, run5):
    before = files(run5)
    with cli.lock_folder(run5):
        refused(capsys, ["--resume", run5, "--steps", "9", "--no-progress"], run5,
                "in use by another run", f"(pid {os.getpid()})")
    assert files(run5) == before
    assert call(capsys, "--resume", run5, "--steps", "6", "--no-progress")[0] == 0   # released


def test_a_lock_held_by_another_process_dies_with_it(capsys, run5):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[2]); from fnn import cli\n"
         "with cli.lock_folder(sys.argv[1]):\n    print('locked', flush=True); sys.stdin.read()", run5, ROOT],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        refused(capsys, ["--resume", run5, "--steps", "9", "--no-progress"],
                "in use by another run", f"(pid {holder.pid})")
    finally:
        holder.kill()
        holder.wait()
    assert call(capsys, "--resume", run5, "--steps", "6", "--no-progress")[0] == 0


# ---- 7. metrics.json: strict JSON, untouched when there is nothing to train -------------------

def _strict(text):
    def refuse(name):
        raise AssertionError(f"{name} in strict JSON")
    return json.loads(text, parse_constant=refuse)


def test_metrics_is_strict_json_and_a_finished_run_is_left_alone(capsys, run5):
    metrics = _strict(open(os.path.join(run5, train.METRICS)).read())
    assert metrics["steps"] == 5
    before = files(run5)
    code, out, err = call(capsys, "--resume", run5, "--no-progress")
    assert code == 0 and err == ""
    assert len(out.strip().splitlines()) == 1 and "nothing to train" in out
    assert files(run5) == before
    refused(capsys, ["--resume", run5, "--steps", "3", "--no-progress"], "step 5", "3 steps")
    assert files(run5) == before
    assert call(capsys, "--resume", run5, "--steps", "7", "--no-progress")[0] == 0
    metrics = _strict(open(os.path.join(run5, train.METRICS)).read())
    assert metrics["steps"] == 7 and metrics["resumed_from_step"] == 5
    # at most the 2 new steps in the training time, not the 7 since step 0
    assert metrics["steps_per_second"] <= 2 / metrics["train_seconds"] * (1 + 1e-9)


def test_strict_json_writes_null_for_nan_and_infinity():
    value = {"a": float("nan"), "b": [float("inf"), -float("inf"), np.float32(np.nan)], "c": 1.5, "d": 2,
             "e": np.float64(0.25), "f": None, "g": True}
    assert _strict(run_history.strict_json(value)) == {"a": None, "b": [None, None, None], "c": 1.5, "d": 2,
                                                 "e": 0.25, "f": None, "g": True}


# ---- 8. history.jsonl: the checkpoint stays the model's size; crashes neither lose nor repeat --

def test_checkpoint_holds_no_history_and_history_jsonl_one_line_an_epoch(run5):
    config = loads_at(run5, 5)
    assert set(config) == {"run", "data", "history_log"} and config["history_log"]["epochs"] == 5
    lines = open(os.path.join(run5, train.HISTORY)).read().splitlines()
    assert _strict(lines[0]) == {"format": run_history.HISTORY_FORMAT, "run_id": config["history_log"]["run_id"]}
    assert [_strict(line)["epoch"] for line in lines[1:]] == [1, 2, 3, 4, 5]


def test_history_lines_after_the_checkpoint_are_dropped_on_resume(capsys, run5, done5, tmp_path):
    path = os.path.join(run5, train.HISTORY)
    lines = open(path).readlines()
    with open(path, "a") as f:            # killed after appending epoch 6, and while appending epoch 7
        f.write(lines[-1].replace('"epoch":5', '"epoch":6') + '{"epoch":7,"st')
    assert call(capsys, "--resume", run5, "--steps", "8", "--no-progress")[0] == 0
    full = str(tmp_path / "full")
    assert call(capsys, *XOR, "--steps", "8", "--out", full)[0] == 0
    assert open(path).readlines()[1:] == open(os.path.join(full, train.HISTORY)).readlines()[1:]
    a, b = params(full), params(run5)
    assert all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("damage, names", [
    (lambda lines: lines[:3], ["line 4", "ends before it"]),
    (lambda lines: lines[:2] + ["{not json\n"] + lines[3:], ["line 3"]),
    (lambda lines: lines[:2] + [lines[2].replace("0.", "NaN, \"x\": 0.", 1)] + lines[3:], ["line 3"]),
    (lambda lines: lines[:2] + [lines[3]] + lines[3:], ["line 3", "epoch 3, expected 2"]),
    (lambda lines: ['{"format": "fnn-history-1", "run_id": "other"}\n'] + lines[1:], ["line 1", "another run"]),
    (lambda lines: [], ["line 1"]),
])
def test_a_corrupt_history_is_refused_naming_the_file_and_line(capsys, run5, damage, names):
    path = os.path.join(run5, train.HISTORY)
    lines = open(path).readlines()
    with open(path, "w") as f:
        f.writelines(damage(lines))
    before = files(run5)
    refused(capsys, ["--resume", run5, "--steps", "9", "--no-progress"], path, *names)
    assert files(run5) == before


def test_a_missing_history_is_refused(capsys, run5):
    os.remove(os.path.join(run5, train.HISTORY))
    refused(capsys, ["--resume", run5, "--steps", "9", "--no-progress"], train.HISTORY, "missing", "5 epochs")


# ---- 9. the script's files must be regular files ------------------------------------------------

@pytest.mark.parametrize("name", [train.METRICS, train.CHECKPOINT, train.HISTORY, train.PLOT])
@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_an_output_that_is_not_a_regular_file_is_refused_before_training(capsys, tmp_path, name, kind):
    out = tmp_path / "out"
    out.mkdir()
    (os.mkfifo if kind == "fifo" else os.mkdir)(out / name)
    t0 = time.monotonic()
    refused(capsys, [*XOR, "--steps", "3", "--out", out], str(out / name), "not a regular file")
    assert time.monotonic() - t0 < 60
    assert sorted(os.listdir(out)) == sorted([name, cli.LOCK_FILE])


def test_a_fifo_in_the_resumed_folder_is_refused(capsys, run5, tmp_path):
    os.remove(os.path.join(run5, train.HISTORY))
    os.mkfifo(os.path.join(run5, train.HISTORY))
    refused(capsys, ["--resume", run5, "--out", tmp_path / "new", "--steps", "9", "--no-progress"],
            train.HISTORY, "not a regular file")


# ---- internal bugs keep their traceback ------------------------------------------------------

def test_a_bug_inside_main_is_not_shortened(capsys, tmp_path, monkeypatch):
    def buggy_build(*args, **kwargs):
        raise ValueError("deliberate bug, not an fnn error")
    import fnn.commands.train as train_command
    monkeypatch.setattr(train_command, "prepare_data", buggy_build)
    with pytest.raises(ValueError, match="deliberate bug") as e:
        cli.run(train.main, [*XOR, "--steps", "3", "--out", str(tmp_path / "o")])
    assert not isinstance(e.value, FnnError)
    assert "error" not in capsys.readouterr().err
    r = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); from fnn import cli\n"
                        "def main(argv): raise ValueError('deliberate bug')\nsys.exit(cli.run(main))", ROOT],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "Traceback" in r.stderr and "ValueError: deliberate bug" in r.stderr


def test_a_message_with_a_line_break_is_printed_on_one_line(capsys):
    def main(argv):
        raise InputError("first line\nsecond line")
    assert cli.run(main, []) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"{sys.argv[0].rsplit('/', 1)[-1]}: error: "
                                                            "first line second line"]


# ---- 10. properties: random flags and configs give success or one clean line -----------------

FLAGS = ["--steps", "--epochs", "--lr", "--model", "--hidden", "--seed", "--batch-size", "--activation", "--dataset",
         "--optimizer", "--grad", "--precision", "--devices", "--max-width", "--max-params", "--resume"]
VALUES = st.one_of(st.text(max_size=30), st.integers().map(str), st.floats().map(str),
                   st.sampled_from(["", "0", "-1", "1e9", "2147483648", "100,100", "4,x", "relu", "xor", "nan",
                                    "cnn", "mlp"]))


def _one_line_or_success(thunk):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = cli.run(lambda argv: thunk() and 0, [])
        except SystemExit as e:
            code = e.code
    assert code in (0, 2), code
    assert len(err.getvalue().splitlines()) == (0 if code == 0 else 1), err.getvalue()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(FLAGS), VALUES), max_size=5))
def test_random_flags_parse_to_a_checked_config_or_one_line(pairs):
    argv = [s for pair in pairs for s in pair if pair[0] != "--resume"]   # --resume would read a folder
    _one_line_or_success(lambda: train.checked_flags(argv))


JSON = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10)),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                max_size=3), max_leaves=6)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(run_config.CONFIG_KEYS + ("history_log", "extra")), JSON, st.booleans())
def test_random_checkpoint_configs_are_checked_or_refused_in_one_line(field, value, replace):
    run = dict(SAVED, steps=5, epochs=None)
    saved = {"run": run, "history_log": {"run_id": "abc", "epochs": 5}}
    if field == "history_log":
        saved["history_log"] = value if replace else dict(saved["history_log"], epochs=value)
    else:
        run[field] = value
    try:
        config, _ = run_config.check_saved_config(saved, "checkpoint 'x'", run_config.LIMITS)
    except InputError as e:
        assert "\n" not in str(e) and "checkpoint 'x'" in str(e)
    else:
        assert field in ("hidden", "history_log") or value is None or config[field] == value


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(st.text(max_size=40), JSON.map(json.dumps)), max_size=4), st.integers(0, 6))
def test_random_history_files_are_read_or_refused_in_one_line(tmp_path, lines, epochs):
    path = tmp_path / train.HISTORY
    path.write_text("".join(line.replace("\n", " ") + "\n" for line in
                            ['{"format": "fnn-history-1", "run_id": "r"}', *lines]))
    try:
        history = run_history.read_history(str(tmp_path), {"run_id": "r", "epochs": epochs}, 10**6)
    except InputError as e:
        assert "\n" not in str(e) and train.HISTORY in str(e)
    else:
        assert len((history or {"epoch": []})["epoch"]) == epochs


def test_an_append_that_fails_cuts_the_file_back_to_what_it_held(tmp_path, monkeypatch):
    path = tmp_path / "history.jsonl"
    path.write_bytes(b'{"epoch": 1}\n')

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(InputError, match=r"history\.jsonl.*No space left on device"):
        cli.append_lines(str(path), ['{"epoch": 2}'])
    assert path.read_bytes() == b'{"epoch": 1}\n'
