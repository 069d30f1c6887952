"""A run's history file: OUT/history.jsonl, one JSON line per epoch, beside its checkpoint.

The first line is a header {"format": HISTORY_FORMAT, "run_id": ...}; each
later line is one epoch of fit()'s history (HISTORY_KEYS; NaN and infinity
written as null). The checkpoint records how many epochs it covers
(history_log = {"run_id", "epochs"}), so `read_history` takes exactly those and
drops any line a run killed between the two writes left after them. Every
line is checked (strict JSON, epoch numbering, increasing steps, finite values).
"""
import json
import math
import numbers
import os

from fnn import cli
from fnn.errors import InputError
from fnn.train.fit import HISTORY_KEYS

__all__ = ["HISTORY", "HISTORY_FORMAT", "strict_json", "history_from", "read_history", "HistoryLog"]

HISTORY = "history.jsonl"
HISTORY_FORMAT = "fnn-history-1"
MAX_INT32 = 2**31 - 1            # fit counts steps in int32


def _strict_loads(text):
    def refuse(name):
        raise ValueError(f"{name} is not JSON")
    return json.loads(text, parse_constant=refuse)


def strict_json(value):
    """JSON text of `value` with every NaN or infinity written as null (json.dumps(allow_nan=False))."""
    def clean(v):
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if isinstance(v, numbers.Real) and not isinstance(v, (bool, numbers.Integral)):
            return float(v) if math.isfinite(v) else None
        return v
    return json.dumps(clean(value), indent=2, allow_nan=False)


def _entry_line(history, i):
    def finite(v):
        return None if isinstance(v, float) and not math.isfinite(v) else v
    return json.dumps({k: finite(history[k][i]) for k in HISTORY_KEYS}, allow_nan=False, separators=(",", ":"))


def _check_entry(entry, i, last_step):
    if not isinstance(entry, dict) or set(entry) != set(HISTORY_KEYS):
        raise ValueError(f"expected an object with keys {', '.join(HISTORY_KEYS)}")
    if entry["epoch"] != i + 1 or type(entry["epoch"]) is not int:
        raise ValueError(f"epoch {entry['epoch']!r}, expected {i + 1}")
    if type(entry["step"]) is not int or not last_step < entry["step"] <= MAX_INT32:
        raise ValueError(f"step {entry['step']!r} after step {last_step}")
    for k in HISTORY_KEYS[2:]:
        v = entry[k]
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
            raise ValueError(f"{k} {v!r} is not a finite number or null")


def history_from(entries, where):
    """fit()'s history dict from a list of per-epoch entries, each checked."""
    last = 0
    for i, entry in enumerate(entries):
        try:
            _check_entry(entry, i, last)
        except ValueError as e:
            raise InputError(f"{where}: history epoch {i + 1} is corrupt ({e})") from None
        last = entry["step"]
    history = {k: [e[k] for e in entries] for k in HISTORY_KEYS}
    history["train_loss"] = [math.nan if v is None else float(v) for v in history["train_loss"]]
    return history


def read_history(folder, meta, step):
    """The first meta["epochs"] epochs of FOLDER/history.jsonl (lines after them are dropped:
    a run killed between appending the history and writing the checkpoint left them)."""
    if "history" in meta:
        return meta["history"]
    path = os.path.join(folder, HISTORY)
    epochs = meta["epochs"]
    if epochs == 0:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            lines = [f.readline() for _ in range(epochs + 1)]
    except FileNotFoundError:
        raise InputError(f"{path!r} is missing; the checkpoint's run has {epochs} epochs of history there") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read {path!r} ({cli.os_reason(e)})") from None
    entries, last = [], 0
    for n, line in enumerate(lines, start=1):
        try:
            if not line.endswith("\n"):
                raise ValueError("the file ends before it")
            value = _strict_loads(line)
            if n == 1:
                if value != {"format": HISTORY_FORMAT, "run_id": meta["run_id"]}:
                    raise ValueError(f"expected the header of run {meta['run_id']}; the file belongs to another run")
                continue
            _check_entry(value, n - 2, last)
        except (ValueError, TypeError) as e:
            raise InputError(f"{path!r} line {n} is corrupt ({cli.one_line(e)}); "
                             f"the checkpoint needs its first {epochs} epochs") from None
        entries.append(value)
        last = value["step"]
    if last > step:
        raise InputError(f"{path!r} epoch {epochs} ends at step {last}, after the checkpoint's step {step}")
    return history_from(entries, path)


class HistoryLog:
    """Keeps OUT/history.jsonl equal to fit()'s history: written whole at the first call, appended after."""

    def __init__(self, path, run_id):
        self.path, self.run_id, self.written = path, run_id, None

    def sync(self, history):
        n = len(history["epoch"])
        new = [_entry_line(history, i) for i in range(self.written or 0, n)]
        if self.written is None:
            header = json.dumps({"format": HISTORY_FORMAT, "run_id": self.run_id})
            cli.write_file(self.path, "".join(line + "\n" for line in [header] + new))
        elif new:
            cli.append_lines(self.path, new)
        self.written = n
