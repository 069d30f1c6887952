"""Checkpoints that survive faults: SIGKILL at random moments, damaged files, pickles; exact resume.

The subprocess tests run tests/_kill_target.py (a small MLP trained by fnn.fit,
one checkpoint a chunk of 4 steps) and kill it with SIGKILL: once half-way
through writing a checkpoint, then at random moments drawn from a seeded
generator, in training and in saving. After every kill the latest checkpoint
must load and equal the uninterrupted run's state at its step; the run then
resumes to the end and must equal the uninterrupted run bit for bit.
Subprocesses share a fresh JAX compilation cache, so only the first ones compile.
"""
import glob
import os
import signal
import struct
import subprocess
import sys
import threading
import time
import zipfile

import jax
import numpy as np
import pytest

import fnn
from fnn import checkpoint, optim
from fnn.checkpoint import CheckpointError
from fnn.train import init_state

import _kill_target as target

TARGET = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_kill_target.py")
CHECKPOINT = target.CHECKPOINT
STEPS_PER_EPOCH = target.N // target.BATCH
EPOCHS = 100                 # the killed run: 100 checkpoints of 4 steps each
DIE_IN_SAVE = 11             # the first run dies writing its 11th checkpoint, keeping the 10th
SHORT_EPOCHS = DIE_IN_SAVE - 1   # the run with another seed stops where the first killed run did
RANDOM_KILLS = 5
TIMEOUT = 180                # seconds any one subprocess may take before the test gives up


_leaves = target.leaves      # a tree's leaves as numpy arrays, PRNG keys as their key data


def _small_state(sizes=(3, 5, 2), opt=None, seed=0):
    model = fnn.mlp(list(sizes), "tanh")
    _, params = model.init(jax.random.key(seed), (-1, sizes[0]))
    return init_state(params, opt or optim.adam(1e-2), jax.random.key(seed + 1))


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """(path, state, raw bytes) of a small saved checkpoint."""
    state = _small_state()
    path = tmp_path_factory.mktemp("small") / "ck.npz"
    checkpoint.save(path, {"state": state}, step=3, config={"hidden": [5]})
    return path, state, path.read_bytes()


def _load_bytes(tmp_path, raw, template):
    path = tmp_path / "damaged.npz"
    path.write_bytes(raw)
    return checkpoint.load(path, {"state": template})


def _member_data(raw_path):
    """{name: (start, end)} byte ranges of each stored member's data in the zip file."""
    ranges = {}
    with zipfile.ZipFile(raw_path) as z, open(raw_path, "rb") as f:
        for info in z.infolist():
            f.seek(info.header_offset + 26)
            name_len, extra_len = struct.unpack("<HH", f.read(4))
            start = info.header_offset + 30 + name_len + extra_len
            ranges[info.filename] = (start, start + info.compress_size)
    return ranges


# ---- loading refuses every kind of damage, each with a clear CheckpointError ----

def test_single_bit_flips_anywhere_are_refused_or_harmless(small, tmp_path):
    """A flipped bit either raises CheckpointError or lands in zip bookkeeping (a timestamp) and
    changes nothing: load never returns altered arrays and never raises anything else."""
    path, state, raw = small
    rng = np.random.default_rng(0)
    positions = rng.choice(len(raw), size=300, replace=False)
    refused = 0
    for pos in positions:
        damaged = bytearray(raw)
        damaged[pos] ^= 1 << int(rng.integers(8))
        try:
            trees, meta = _load_bytes(tmp_path, bytes(damaged), state)
        except CheckpointError as e:
            assert "corrupt" in str(e) or "not an fnn checkpoint" in str(e), str(e)
            refused += 1
            continue
        assert all(np.array_equal(a, b) for a, b in zip(_leaves(trees["state"]), _leaves(state))), pos
        assert meta == {"step": 3, "config": {"hidden": [5]}}
    assert refused > 0.6 * len(positions)


def test_flips_inside_every_array_and_the_metadata_are_refused(small, tmp_path):
    path, state, raw = small
    ranges = _member_data(path)
    assert "__meta__.npy" in ranges and "state/0.npy" in ranges
    for name, (start, end) in ranges.items():
        for pos in (end - 1, (start + end) // 2 + 1):        # the array payload; the middle of the member
            damaged = bytearray(raw)
            damaged[pos] ^= 0x10
            with pytest.raises(CheckpointError, match="corrupt|not an fnn checkpoint"):
                _load_bytes(tmp_path, bytes(damaged), state)


@pytest.mark.parametrize("fraction", [0.0, 0.001, 0.1, 0.5, 0.9, 0.999])
def test_truncation_at_any_point_is_refused(small, tmp_path, fraction):
    path, state, raw = small
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        _load_bytes(tmp_path, raw[: int(len(raw) * fraction)], state)


def test_truncation_inside_each_member_is_refused(small, tmp_path):
    path, state, raw = small
    for name, (start, end) in _member_data(path).items():
        with pytest.raises(CheckpointError, match="truncated or corrupt"):
            _load_bytes(tmp_path, raw[: (start + end) // 2], state)


def test_a_checksum_mismatch_names_the_array(small, tmp_path):
    """A re-zipped file with valid CRCs but one altered array fails the stored SHA-256."""
    path, state, _ = small
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    arrays["state/1"] = arrays["state/1"].copy()
    arrays["state/1"].flat[0] += 1
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    with pytest.raises(CheckpointError, match=r"state\.params\[0\]\['b'\] fails its checksum"):
        checkpoint.load(bad, {"state": state})


@pytest.mark.parametrize("meta", [b"[1, 2]", b'{"format": "fnn-checkpoint-1"}',
                                  b'{"format": "fnn-checkpoint-1", "step": 0, "config": {}, "trees": {"state": [1]}}',
                                  b"{not json", b"\xff\xfe"])
def test_malformed_metadata_is_refused(small, tmp_path, meta):
    path, state, _ = small
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    arrays["__meta__"] = np.frombuffer(meta, np.uint8)
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    with pytest.raises(CheckpointError, match="malformed|corrupt|not an fnn checkpoint"):
        checkpoint.load(bad, {"state": state})
    with pytest.raises(CheckpointError):
        checkpoint.read_config(bad)


def test_files_that_are_not_checkpoints_are_refused(tmp_path):
    np.save(tmp_path / "array.npy", np.arange(3))
    (tmp_path / "text.npz").write_text("step,loss\n1,0.5\n")
    np.savez(tmp_path / "other.npz", x=np.arange(3))
    with pytest.raises(CheckpointError, match="not an fnn checkpoint"):
        checkpoint.load(tmp_path / "array.npy", {})
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        checkpoint.load(tmp_path / "text.npz", {})
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        checkpoint.load(tmp_path / "other.npz", {})


@pytest.mark.parametrize("other, expected", [
    (lambda: _small_state((3, 6, 2)), r"has shape \(3, 5\), the model expects .* of shape \(3, 6\)"),
    (lambda: _small_state((4, 5, 2)), r"has shape \(3, 5\), the model expects .* of shape \(4, 5\)"),
    (lambda: _small_state((3, 5, 5, 2)), r"has \d+ arrays, the model expects \d+"),
    (lambda: _small_state(opt=optim.sgd(0.1)), r"has \d+ arrays, the model expects \d+"),
])
def test_another_architecture_or_optimizer_is_refused(small, other, expected):
    path, _, _ = small
    with pytest.raises(CheckpointError, match=expected) as e:
        checkpoint.load(path, {"state": other()})
    assert "different architecture" in str(e.value)


class _CreatesFile:
    """Unpickling this calls open(path, "w"): a stand-in for arbitrary code in a pickle."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("entry", ["state/0", "__meta__"])
def test_loading_never_unpickles(small, tmp_path, entry):
    path, state, _ = small
    marker = tmp_path / "code-ran"
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    arrays[entry] = np.array([_CreatesFile(str(marker))], dtype=object)
    bad = tmp_path / "pickled.npz"
    np.savez(bad, **arrays)                                  # object arrays are stored as pickles
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        checkpoint.load(bad, {"state": state})
    if entry == "__meta__":
        with pytest.raises(CheckpointError, match="truncated or corrupt"):
            checkpoint.read_config(bad)
    assert not marker.exists()
    with np.load(bad, allow_pickle=True) as f:               # the payload is live: pickle runs it
        f[entry]
    assert marker.exists()


# ---- temporary files ----

def test_temporaries_are_hidden_and_stale_ones_removed_by_the_next_save(tmp_path):
    state = _small_state()
    path = tmp_path / "ck.npz"
    checkpoint.save(path, {"state": state}, step=1)
    stale = tmp_path / ".ck.npz.tmp-killed.npz"              # what a writer killed mid-save leaves
    stale.write_bytes(path.read_bytes()[:100])
    not_ours = tmp_path / ".other.npz.tmp-x.npz"              # another checkpoint's temporary
    not_ours.write_bytes(b"x")
    assert glob.glob(str(tmp_path / "*.npz")) == [str(path)]
    assert checkpoint.read_config(path) == ({}, 1)
    checkpoint.save(path, {"state": state}, step=2)
    assert sorted(os.listdir(tmp_path)) == [".other.npz.tmp-x.npz", "ck.npz"]
    assert checkpoint.read_config(path) == ({}, 2)


def test_checkpoint_gets_the_permissions_np_savez_would_give(tmp_path):
    umask = os.umask(0o027)
    try:
        checkpoint.save(tmp_path / "ck.npz", {"state": _small_state()})
        np.savez(tmp_path / "plain.npz", x=np.arange(3))
    finally:
        os.umask(umask)
    mode = lambda name: os.stat(tmp_path / name).st_mode & 0o777
    assert mode("ck.npz") == mode("plain.npz") == 0o640


def test_a_failed_write_leaves_the_old_checkpoint_and_no_temporary(tmp_path, monkeypatch):
    state = _small_state()
    path = tmp_path / "ck.npz"
    checkpoint.save(path, {"state": state}, step=1)

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint.os, "fsync", broken_fsync)
    with pytest.raises(CheckpointError, match=r"cannot write checkpoint .*ck\.npz.*No space left on device"):
        checkpoint.save(path, {"state": state}, step=2)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["ck.npz"]
    assert checkpoint.read_config(path) == ({}, 1)


# ---- real processes, killed ----

def _env(cache):
    return dict(os.environ, JAX_PLATFORMS="cpu", JAX_COMPILATION_CACHE_DIR=str(cache),
                JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0", JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")


class _Run:
    """tests/_kill_target.py as a subprocess; a thread collects its stdout; killed after TIMEOUT."""

    def __init__(self, out, *args, env, log):
        self.log = open(log, "w")
        self.proc = subprocess.Popen([sys.executable, TARGET, str(out), *map(str, args)],
                                     stdout=subprocess.PIPE, stderr=self.log, text=True, env=env)
        self.watchdog = threading.Timer(TIMEOUT, self.proc.kill)
        self.watchdog.start()
        self.lines, self.ended, self.changed = [], False, threading.Condition()
        self.reader = threading.Thread(target=self._read)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self.changed:
                self.lines.append(line)
                self.changed.notify_all()
        with self.changed:
            self.ended = True
            self.changed.notify_all()

    def count(self, prefix):
        return sum(line.startswith(prefix) for line in self.lines)

    def wait_for(self, prefix, count=1, timeout=None):
        """True once `count` lines start with `prefix`; False on timeout or if the run ended first."""
        with self.changed:
            self.changed.wait_for(lambda: self.count(prefix) >= count or self.ended, timeout)
            return self.count(prefix) >= count

    def finish(self, kill=False):
        """Wait for the process (after SIGKILL if `kill`); its return code."""
        if kill:
            self.proc.send_signal(signal.SIGKILL)
        rc = self.proc.wait()
        self.reader.join()
        self.watchdog.cancel()
        self.log.close()
        return rc

    def stderr(self):
        with open(self.log.name) as f:
            return f.read()[-3000:]


def _inspect(folder, template, rc):
    """What a kill left in `folder`: files, temporaries, and the checkpoint (or the error loading it)."""
    names = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    rec = {"rc": rc, "names": names, "temporaries": [n for n in names if n != CHECKPOINT],
           "globbed": [os.path.basename(p) for p in glob.glob(os.path.join(folder, "*.npz"))],
           "step": None, "error": None}
    if CHECKPOINT in names:
        try:
            trees, meta = checkpoint.load(os.path.join(folder, CHECKPOINT), {"state": template})
        except Exception as e:  # recorded, so that the test names the kill that broke it
            rec["error"] = f"{type(e).__name__}: {e}"
        else:
            rec.update(step=meta["step"], leaves=_leaves(trees["state"]), history=meta["config"]["history"],
                       state_step=int(trees["state"].step))
    return rec


def _kill_chain(folder, env, logs, make_template):
    """One run killed half-way through a save, RANDOM_KILLS runs killed at random, then one to the end."""
    rng = np.random.default_rng(20240613)
    records = []
    run = _Run(folder, "--epochs", EPOCHS, "--die-in-save", DIE_IN_SAVE, env=env, log=logs / "die.log")
    template = make_template()                  # while the first run starts
    rc = run.finish()
    records.append(dict(_inspect(folder, template, rc), how=f"died writing checkpoint {DIE_IN_SAVE}",
                        stderr=run.stderr()))
    for i in range(RANDOM_KILLS):
        # Even kills: at a random moment up to 1.5 s into training (tracing, compiling, the first
        # chunks, saves), but no later than a random number of saves. Odd kills: a random moment
        # (0-10 ms, about one chunk and save) after a random number of saves. Either way a run
        # makes about 10 saves at most, so the chain cannot finish before its last run.
        run = _Run(folder, "--epochs", EPOCHS, env=env, log=logs / f"kill{i}.log")
        saves = int(rng.integers(1, 11))
        delay, extra = float(rng.uniform(0.0, 1.5)), float(rng.uniform(0.0, 0.01))
        run.wait_for("training", timeout=TIMEOUT)
        if run.wait_for("saved", saves, timeout=delay if i % 2 == 0 else TIMEOUT):
            time.sleep(extra)
        seen = run.count("saved")
        rc = run.finish(kill=True)
        plan = f"at most {saves} saves or {delay:.3f} s" if i % 2 == 0 else f"{saves} saves + {extra * 1e3:.1f} ms"
        how = f"was killed after {seen} saves (planned: {plan})"
        records.append(dict(_inspect(folder, template, rc), how=how, stderr=run.stderr()))
    run = _Run(folder, "--epochs", EPOCHS, env=env, log=logs / "final.log")
    rc = run.finish()
    records.append(dict(_inspect(folder, template, rc), how="ran to the end", stderr=run.stderr()))
    return records


def _run_to_end(name, folder, env, *args):
    """Run tests/_kill_target.py uninterrupted; (returncode, stderr)."""
    run = _Run(folder / name, *args, env=env, log=folder / f"{name}.log")
    return run.finish(), run.stderr()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The killed-and-resumed chain and, on the other core, an uninterrupted reference and a run with another seed."""
    root = tmp_path_factory.mktemp("kills")
    env = _env(root / "jax-cache")
    uninterrupted = {}

    def background():
        uninterrupted["reference"] = _run_to_end("reference", root, env, "--epochs", EPOCHS,
                                                 "--snapshots", root / "snapshots.npz")
        uninterrupted["other_seed"] = _run_to_end("other_seed", root, env, "--epochs", SHORT_EPOCHS, "--seed", 1)

    thread = threading.Thread(target=background)
    thread.start()
    templates = []

    def make_template():
        model, opt, params, _, _, train_key = target.problem(0)
        templates.append(init_state(params, opt, train_key))
        return templates[0]

    chain = _kill_chain(root / "chain", env, root, make_template)
    thread.join()
    template = templates[0]
    finals = {}
    for name in ("reference", "other_seed"):
        rc, stderr = uninterrupted.get(name, (None, "did not run"))
        assert rc == 0, f"the {name} run failed:\n{stderr}"
        finals[name] = _inspect(root / name, template, rc)
    with np.load(root / "snapshots.npz") as f:
        snapshots = {k: f[k] for k in f.files}
    return chain, finals, snapshots


def _snapshot(snapshots, step):
    n = sum(k.startswith(f"{step}/") for k in snapshots)
    assert n > 0, f"the reference saved no state at step {step}"
    return [snapshots[f"{step}/{i}"] for i in range(n)]


def _same(a, b):
    return len(a) == len(b) and all(np.array_equal(u, v) for u, v in zip(a, b))


def test_a_process_killed_while_writing_keeps_the_previous_checkpoint(runs):
    chain, _, snapshots = runs
    died = chain[0]
    assert died["rc"] == -signal.SIGKILL, died["stderr"]
    assert died["error"] is None and died["step"] == (DIE_IN_SAVE - 1) * STEPS_PER_EPOCH
    assert _same(died["leaves"], _snapshot(snapshots, died["step"]))
    assert died["globbed"] == [CHECKPOINT]
    (tmp,) = died["temporaries"]                          # the half-written file, hidden
    assert tmp.startswith(f".{CHECKPOINT}.tmp-") and tmp.endswith(".npz")


def test_random_kills_never_leave_a_corrupt_or_partial_checkpoint(runs):
    chain, finals, snapshots = runs
    history = finals["reference"]["history"]
    previous = 0
    for rec in chain:
        brief = {k: v for k, v in rec.items() if k not in ("leaves", "history")}
        where = f"after the run that {rec['how']}: {brief}"
        assert rec["rc"] in (0, -signal.SIGKILL), where
        assert rec["error"] is None, where
        assert rec["globbed"] == [CHECKPOINT], where         # a temporary never passes for a checkpoint
        assert all(t.startswith(f".{CHECKPOINT}.tmp-") for t in rec["temporaries"]), where
        step = rec["step"]
        assert step == rec["state_step"] and step % STEPS_PER_EPOCH == 0 and step >= previous, where
        assert _same(rec["leaves"], _snapshot(snapshots, step)), where
        assert rec["history"] == {k: v[: step // STEPS_PER_EPOCH] for k, v in history.items()}, where
        previous = step
    assert all(r["rc"] == -signal.SIGKILL for r in chain[1:-1]), "a run ended before its kill"
    progressed = [b for a, b in zip(chain, chain[1:-1]) if b["step"] > a["step"]]
    assert len(progressed) >= RANDOM_KILLS // 2, "the kills after a number of saves did not land after saves"


def test_the_next_save_removes_temporaries_left_by_a_kill(runs):
    chain, _, _ = runs
    assert chain[0]["temporaries"], "the run killed mid-write left no temporary file"
    for before, after in zip(chain, chain[1:]):
        if after["step"] > before["step"]:                  # a save completed in between
            assert not set(before["temporaries"]) & set(after["temporaries"]), after["how"]
    assert chain[-1]["names"] == [CHECKPOINT]


def test_resumed_after_kills_equals_the_uninterrupted_run_bit_for_bit(runs):
    chain, finals, _ = runs
    final, reference = chain[-1], finals["reference"]
    assert final["rc"] == 0, final["stderr"]
    assert final["step"] == reference["step"] == EPOCHS * STEPS_PER_EPOCH
    assert _same(final["leaves"], reference["leaves"])
    assert final["history"] == reference["history"]


def test_same_seed_gives_bit_identical_params_across_processes(runs):
    """The chain's first run trained from scratch in a process of its own, as did the reference."""
    chain, finals, snapshots = runs
    fresh, other = chain[0], finals["other_seed"]
    step = SHORT_EPOCHS * STEPS_PER_EPOCH
    assert fresh["step"] == other["step"] == step
    assert _same(fresh["leaves"], _snapshot(snapshots, step))
    assert not _same(fresh["leaves"], _snapshot(snapshots, step + STEPS_PER_EPOCH))   # params move every epoch
    params = slice(0, 6)                                    # W, b of the three Dense layers
    assert not any(np.array_equal(u, v) for u, v in zip(other["leaves"][params], fresh["leaves"][params]))
    assert fresh["history"] == {k: v[:SHORT_EPOCHS] for k, v in finals["reference"]["history"].items()}
    assert other["history"]["train_loss"] != fresh["history"]["train_loss"]
