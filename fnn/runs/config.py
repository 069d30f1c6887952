"""A training run's configuration: the flags of `fnn train` / scripts/train.py, checked, and as saved.

A run is described by CONFIG_KEYS (dataset, hidden widths, activation, optimizer,
learning rate, batch size, epochs or steps, gradient method, seed, precision, model:
"mlp", the MLP of --hidden and --activation, or "cnn", the MNIST-1D paper's CNN).
`flag_config` checks the flags given, `new_config` fills in DEFAULTS,
`check_saved_config` checks the copy stored in a checkpoint field by field, and
`check_resume_flags` refuses a flag given with --resume that differs from the
saved run (FIXED_ON_RESUME). Sizes are checked against LIMITS before anything is
allocated; every limit has a --max-... flag to raise it.
"""
import math
import numbers
import os

from fnn import checkpoint, data, optim, precision
from fnn.activations import ACTIVATIONS
from fnn.errors import InputError
from fnn.grads import METHODS
from fnn.runs.history import history_from
from fnn.train.fit import HISTORY_KEYS
from fnn.validate import parse_int_list

__all__ = ["DEFAULTS", "UNREGULARIZED", "DEFAULT_BATCH", "CONFIG_KEYS", "MODELS", "FIXED_ON_RESUME", "MAX_INT32", "MAX_SEED", "LIMITS",
           "is_file_name", "hidden_sizes", "check_hidden", "check_params", "check_mlp_only", "flag_config",
           "new_config", "saved_config", "check_saved_config", "check_resume_flags"]

# Defaults: MNIST-1D, MLP 40-100-100-10 ReLU, Adam, batch 100 (the dataset's published MLP setup).
# Regularization, measured over 5 seeds (README, "Training defaults"): dropout 0.2 and weight
# decay 3e-2 take MNIST-1D's MLP from 66.9% to 71.8% test accuracy and its test loss from 3.25
# to 0.79. Early stopping is there to ask for (--validation-split, --patience): on MNIST-1D the
# validation loss bottoms out long before the accuracy does, so it cost accuracy at every patience tried.
DEFAULTS = dict(dataset="mnist1d", hidden="100,100", activation="relu", optimizer="adam",
                lr=1e-2, batch_size=None, steps=6000, grad="manual", seed=0, precision="fp32", model="mlp",
                dropout=0.2, weight_decay=3e-2, validation_split=0.0, patience=0)
# What a run saved before these flags existed trained with: none of them.
UNREGULARIZED = dict(dropout=0.0, weight_decay=0.0, validation_split=0.0, patience=0)
DEFAULT_BATCH = 100
CONFIG_KEYS = ("dataset", "hidden", "activation", "optimizer", "lr", "batch_size", "epochs",
               "steps", "grad", "seed", "precision", "model", "dropout", "weight_decay",
               "validation_split", "patience")
# Flags that must match the run being resumed (--steps/--epochs may extend it).
FIXED_ON_RESUME = ("dataset", "hidden", "activation", "optimizer", "lr", "batch_size", "grad",
                   "seed", "precision", "model", "dropout", "weight_decay", "validation_split", "patience")
MAX_INT32 = 2**31 - 1            # fit counts steps in int32
# --model: "mlp" (--hidden, --activation) or "cnn" (fnn.models.paper_cnn, a fixed architecture).
# A cnn run's config keeps the defaults in hidden and activation; nothing reads them.
MODELS = ("mlp", "cnn")
MLP_ONLY = ("hidden", "activation", "dropout")
MAX_SEED = 2**32 - 1
# Size limits, checked before anything is allocated; each has a --max-... flag to raise it.
LIMITS = dict(max_width=65_536, max_layers=256, max_params=2**28, max_classes=10_000,
              max_data_bytes=2**28)


def _choice(kind, choices):
    def check(value):
        if not isinstance(value, str) or value not in choices:
            raise ValueError(f"unknown {kind} {value!r}; expected one of {', '.join(choices)}")
        return value
    return check


def _int(low, high):
    def check(value):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not low <= value <= high:
            raise ValueError(f"must be an integer from {low:,} to {high:,}, got {value!r}")
        return int(value)
    return check


def _lr(value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"must be a positive finite number, got {value!r}")
    return float(value)


def _fraction(value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
        raise ValueError(f"must be a number in [0, 1), got {value!r}")
    return float(value)


def _non_negative(value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (math.isfinite(value) and value >= 0):
        raise ValueError(f"must be a finite number ≥ 0, got {value!r}")
    return float(value)


def is_file_name(name):
    return name.lower().endswith((".npz", ".csv"))


def _dataset(value):
    if isinstance(value, str) and (value in data.DATASETS or is_file_name(value)):
        return value
    raise ValueError(f"unknown dataset {value!r}; expected one of {', '.join(data.DATASETS)} "
                     "or a path to a .npz or .csv file")


def _hidden(value):
    """The canonical form of --hidden: '100, 100' -> '100,100'."""
    try:
        if not isinstance(value, str):
            raise InputError("not a string")
        return ",".join(map(str, parse_int_list("hidden", value)))
    except InputError:
        raise ValueError(f"must be comma-separated positive integers such as 100,100, got {value!r}") from None


FIELDS = dict(dataset=_dataset, hidden=_hidden, activation=_choice("activation", list(ACTIVATIONS)),
              optimizer=_choice("optimizer", list(optim.OPTIMIZERS)), lr=_lr,
              batch_size=_int(1, MAX_INT32), epochs=_int(1, MAX_INT32), steps=_int(1, MAX_INT32),
              grad=_choice("gradient method", METHODS), seed=_int(0, MAX_SEED),
              precision=_choice("precision", precision.PRECISIONS), model=_choice("model", MODELS),
              dropout=_fraction, weight_decay=_non_negative, validation_split=_fraction,
              patience=_int(0, MAX_INT32))


def _checked(where, name, value):
    try:
        return FIELDS[name](value)
    except ValueError as e:
        raise InputError(f"{where}: {e}") from None


def hidden_sizes(text):
    """--hidden's widths: '100,100' -> [100, 100], '' -> [] (no hidden layer)."""
    return parse_int_list("--hidden", text)


def check_hidden(hidden, limits, where="--hidden"):
    """InputError if the hidden layers alone pass --max-layers, --max-width or --max-params."""
    widths = hidden_sizes(hidden)
    if len(widths) > limits["max_layers"]:
        raise InputError(f"{where} {hidden!r} has {len(widths):,} layers, more than --max-layers "
                         f"{limits['max_layers']:,}")
    if widths and max(widths) > limits["max_width"]:
        raise InputError(f"{where} {hidden!r}: width {max(widths):,} is above --max-width "
                         f"{limits['max_width']:,} (raise the flag to allow it)")
    check_params(widths, limits, where)


def check_params(sizes, limits, where="--hidden"):
    """InputError if an MLP of layer `sizes` has more than --max-params parameters."""
    n = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    if n > limits["max_params"]:
        raise InputError(f"{where}: the model {'-'.join(map(str, sizes))} has {n:,} parameters, more than "
                         f"--max-params {limits['max_params']:,} (raise the flag to allow it)")
    return n


def check_mlp_only(given, model, resumed=None):
    """InputError for --hidden or --activation given with a cnn model (resumed: the run's checkpoint path)."""
    if model != "cnn":
        return
    for name in MLP_ONLY:
        if given[name] is not None:
            run = "" if resumed is None else f" (the run being resumed, {resumed!r})"
            raise InputError(f"--{name} {given[name]!r} applies to --model mlp only; --model cnn{run} is the "
                             "MNIST-1D paper's CNN (fnn.models.paper_cnn), whose layers are fixed")


def flag_config(args, limits):
    """The configuration flags the user gave, checked (None where a flag was not given)."""
    given = {}
    for name in CONFIG_KEYS:
        value = getattr(args, name)
        given[name] = None if value is None else _checked(f"--{name.replace('_', '-')}", name, value)
    check_mlp_only(given, given["model"])
    split = DEFAULTS["validation_split"] if given["validation_split"] is None else given["validation_split"]
    if given["patience"] and split == 0 and args.resume is None:
        raise InputError(f"--patience {given['patience']} stops on the validation loss, and "
                         f"--validation-split {split:g} holds out no validation examples; give both "
                         "(e.g. --validation-split 0.1 --patience 20), or --patience 0")
    if given["hidden"] is not None:
        check_hidden(given["hidden"], limits)
    if args.resume is not None and not args.resume.strip():
        raise InputError(f"--resume must name a folder, got {args.resume!r}")
    return given


def new_config(given):
    """A new run's configuration: the flags given, the defaults for the others."""
    config = {k: DEFAULTS.get(k) if given[k] is None else given[k] for k in CONFIG_KEYS}
    config.update(epochs=given["epochs"], steps=given["steps"])
    if config["model"] == "cnn":                 # the paper's CNN and protocol: no dropout layer,
        config["dropout"] = 0.0                  # and no weight decay unless asked for
        if given["weight_decay"] is None:
            config["weight_decay"] = 0.0
    if config["validation_split"] == 0:
        config["patience"] = 0                   # no validation data: no early stopping
    if config["epochs"] is None and config["steps"] is None:
        config["steps"] = DEFAULTS["steps"]
    return config


def saved_config(path, limits):
    """(run config, history meta, step) of the checkpoint at `path`, every field checked.

    history meta is {"run_id", "epochs"} for a run with OUT/history.jsonl, or
    {"history": ...} for a checkpoint from before it (the history in its config).
    """
    saved, step = checkpoint.read_config(path)
    run, meta = check_saved_config(saved, f"checkpoint {path!r}", limits)
    return run, meta, step


def check_saved_config(saved, where, limits):
    """(run config, history meta) of a checkpoint's JSON config `saved`; InputError naming the field."""
    run = saved.get("run") if isinstance(saved, dict) else None
    if not isinstance(run, dict):
        raise InputError(f"{where} has no run configuration; it was not written by scripts/train.py")
    run = dict(run)
    run.setdefault("precision", "fp32")                   # checkpoints from before --precision
    run.setdefault("model", "mlp")                        # and from before --model
    for name, value in UNREGULARIZED.items():             # and from before regularization
        run.setdefault(name, value)
    unknown = sorted(map(str, set(run) - set(CONFIG_KEYS)))
    missing = [k for k in CONFIG_KEYS if k not in run]
    if unknown or missing:
        raise InputError(f"{where}: run configuration " + (f"lacks field {missing[0]!r}" if missing
                                                           else f"has unknown field {unknown[0]!r}"))
    for name in CONFIG_KEYS:
        if run[name] is not None or name not in ("epochs", "steps"):
            run[name] = _checked(f"{where}: field {name!r}", name, run[name])
    if (run["epochs"] is None) == (run["steps"] is None):
        raise InputError(f"{where}: run configuration needs exactly one of epochs and steps, got "
                         f"epochs={run['epochs']!r}, steps={run['steps']!r}")
    if run["model"] == "mlp":                             # a cnn run's hidden is not its widths
        check_hidden(run["hidden"], limits, where=f"{where}: field 'hidden'")
    return run, _history_meta(saved, where)


def _history_meta(saved, where):
    if "history_log" in saved:
        meta = saved["history_log"]
        if (not isinstance(meta, dict) or set(meta) != {"run_id", "epochs"}
                or not isinstance(meta["run_id"], str) or not 0 < len(meta["run_id"]) <= 64
                or isinstance(meta["epochs"], bool) or not isinstance(meta["epochs"], int)
                or not 0 <= meta["epochs"] <= MAX_INT32):
            raise InputError(f"{where}: field 'history_log' is malformed, got {meta!r:.200}")
        return meta
    if "history" in saved:                                 # before history.jsonl
        old = saved["history"]
        try:
            n = len(old["epoch"])
            entries = [{k: old[k][i] for k in HISTORY_KEYS} for i in range(n)]
        except (TypeError, KeyError, IndexError):
            raise InputError(f"{where}: field 'history' is malformed") from None
        return {"history": history_from(entries, where)}
    raise InputError(f"{where}: lacks field 'history_log'")


def check_resume_flags(given, run, path):
    """InputError for a flag given with --resume that differs from the saved run's value.

    --model is compared first; with a cnn run, --hidden and --activation are
    then refused outright (check_mlp_only); then the other FIXED_ON_RESUME flags.
    """
    _check_same(given, run, path, "model")
    check_mlp_only(given, run["model"], resumed=path)
    for name in FIXED_ON_RESUME:
        _check_same(given, run, path, name)


def _check_same(given, run, path, name):
    value, saved = given[name], run[name]
    if value is None:
        return
    same = value == saved or (name == "dataset" and is_file_name(value)
                              and os.path.abspath(value) == os.path.abspath(saved))
    if not same:
        raise InputError(f"--{name.replace('_', '-')} {value!r} conflicts with the run being resumed, "
                         f"saved with {saved!r} in {path!r}; leave the flag out or start a new run")
