"""fnn evaluate, fnn predict, fnn summary: a saved run used on new data, with the run's own preprocessing."""
import io
import math
import os

import numpy as np

import fnn
from fnn import cli, data
from fnn.runs.build import file_limits, flag_message
from fnn.runs.config import LIMITS
from fnn.runs.history import strict_json
from fnn.runs.run import load_run
from fnn.errors import InputError

__all__ = ["add_evaluate", "add_predict", "add_summary", "evaluate", "predict", "summary"]

OUTPUT_TYPES = (".csv", ".npz")


def _data_limit_flag(p):
    p.add_argument("--max-data-bytes", type=cli.int_in_range(1, 2**62), default=LIMITS["max_data_bytes"],
                   help=f"largest data file, and array read from it (default {LIMITS['max_data_bytes']:,} = 256 MiB)")


def _run_argument(p):
    p.add_argument("run", metavar="RUN", help="a run folder written by fnn train (e.g. runs/latest)")


def add_evaluate(p):
    _run_argument(p)
    p.add_argument("--data", required=True, metavar="FILE",
                   help="a labelled .csv (label in the last column, as for training) or .npz (x, y; and "
                        "x_test, y_test if present) file, in the raw units the run was trained on")
    p.add_argument("--json", metavar="PATH", help="also write the figures to this JSON file")
    _data_limit_flag(p)
    return p


def add_predict(p):
    _run_argument(p)
    p.add_argument("--input", required=True, metavar="FILE",
                   help="raw inputs: a .csv of feature columns only (a header line is allowed) or an .npz "
                        "with an array x (n, features)")
    p.add_argument("--output", metavar="FILE",
                   help="write the predictions here, .csv or .npz (default: CSV on standard output)")
    _data_limit_flag(p)
    return p


def add_summary(p):
    _run_argument(p)
    p.add_argument("--json", action="store_true", help="print the summary as JSON instead of text")
    return p


def _limits(args):
    return file_limits({"max_data_bytes": args.max_data_bytes, "max_classes": LIMITS["max_classes"]})


def _reading(read):
    """read() with a file's limit message naming --max-data-bytes."""
    try:
        return read()
    except data.DataFileError as e:
        message = flag_message(e)
        if message is None:
            raise
        raise InputError(message) from None


def evaluate(args):
    """Loss and accuracy (or regression errors) of the run on a labelled file, its preprocessing applied."""
    run = load_run(args.run)
    if args.json is not None:
        _check_output_path(args.json, "--json", (".json",))
    x, y = _reading(lambda: run.load_data(args.data, limits=_limits(args)))
    result = run.evaluate(x, y)
    parts = [f"loss {result['loss']:.4f} ({run.loss.name})"]
    if result.get("accuracy") is not None:
        parts.append(f"accuracy {result['accuracy']:.4f}")
    for name in ("rmse", "mae"):
        if name in result:
            parts.append(f"{name} {result[name]:.4g}")
    print(f"{args.data}: {len(x):,} examples; " + ", ".join(parts))
    if args.json is not None:
        cli.write_file(args.json, strict_json({"run": args.run, "data": args.data, "examples": len(x), **result}))
        print(f"wrote {args.json}")
    return 0


def _check_output_path(path, flag, suffixes):
    if os.path.splitext(path)[1].lower() not in suffixes:
        raise InputError(f"{flag} {path!r}: expected a file ending in {' or '.join(suffixes)}")
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path) or not os.path.isdir(folder):
        raise InputError(f"{flag} {path!r}: expected a file path in an existing folder")


def predictions(run, x):
    """{column name: array} of the run's predictions for raw inputs x, in output order."""
    if run.task == "regression":
        out = run.predict(x)
        names = ["prediction"] if out.shape[1] == 1 else [f"prediction_{j}" for j in range(out.shape[1])]
        return {name: out[:, j] for j, name in enumerate(names)}
    proba = run.predict_proba(x)
    index = np.argmax(proba, axis=-1)
    classes = run.class_names or [str(c) for c in range(proba.shape[1])]
    columns = {"label": run.preprocessing.labels(index)}
    columns.update({f"p_{name}": proba[:, j] for j, name in enumerate(classes)})
    return columns


def _csv_text(columns):
    def cell(v):
        if isinstance(v, (str, np.str_)):
            return '"' + v.replace('"', '""') + '"' if any(c in v for c in ',"\n') else str(v)
        if isinstance(v, (int, np.integer)):
            return str(int(v))
        return f"{float(v):.6g}"
    names = list(columns)
    lines = [",".join(names)]
    for i in range(len(columns[names[0]])):
        lines.append(",".join(cell(columns[n][i]) for n in names))
    return "\n".join(lines) + "\n"


def _npz_bytes(run, columns):
    arrays = {}
    if run.task == "regression":
        arrays["predictions"] = np.stack([columns[n] for n in columns], axis=1).astype(np.float32)
    else:
        names = [n for n in columns if n.startswith("p_")]
        arrays["probabilities"] = np.stack([columns[n] for n in names], axis=1).astype(np.float32)
        arrays["labels"] = np.argmax(arrays["probabilities"], axis=1).astype(np.int32)
        if run.class_names is not None:
            arrays["class_names"] = np.asarray(run.class_names, dtype=str)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def predict(args):
    """Predictions of the run for raw inputs: labels and class probabilities, or values."""
    run = load_run(args.run)
    if args.output is not None:
        _check_output_path(args.output, "--output", OUTPUT_TYPES)
    x = _reading(lambda: data.load_features(args.input, limits=_limits(args)))
    if x.shape[1] != run.data["in_features"]:
        extra = " (drop the label column)" if x.shape[1] == run.data["in_features"] + 1 else ""
        raise InputError(f"--input {args.input!r} has {x.shape[1]} columns per example; the run takes "
                         f"{run.data['in_features']} features{extra}")
    columns = predictions(run, x)
    if args.output is None:
        print(_csv_text(columns), end="")
        return 0
    body = _npz_bytes(run, columns) if args.output.lower().endswith(".npz") else _csv_text(columns)
    cli.write_file(args.output, body)
    print(f"wrote {args.output}: {len(x):,} predictions ({', '.join(columns)})")
    return 0


def summary_record(run):
    """The summary as a JSON-ready dict: architecture, shapes, parameters, data, training figures."""
    table = fnn.summary(run.model, (-1, run.data["in_features"]))
    layers = [{"layer": r.name, "output_shape": list(r.output_shape), "params": r.params} for r in table.rows]
    record = {"run": run.folder, "model": run.config["model"], "task": run.task,
              "parameters": table.total_params, "layers": layers, "step": run.step,
              "config": run.config, "data": run.data}
    if run.metrics is not None:
        record["metrics"] = {k: run.metrics.get(k) for k in (
            "test_accuracy", "test_loss", "train_accuracy", "train_loss", "steps", "epochs", "stopped_early",
            "best_epoch", "train_seconds", "compile_seconds", "steps_per_second", "device") if k in run.metrics}
    return record


def summary(args):
    """Architecture, shapes, parameter counts, preprocessing and training figures of a saved run."""
    run = load_run(args.run)
    record = summary_record(run)
    if args.json:
        print(strict_json(record))
        return 0
    table = fnn.summary(run.model, (-1, run.data["in_features"]))
    print(f"run {run.folder}: {run.config['model']} on {run.config['dataset']} ({run.task}), step {run.step:,}")
    print(table)
    d = run.data
    classes = f", classes {', '.join(run.class_names)}" if run.class_names else (
        f", {d['n_classes']} classes" if d["n_classes"] else "")
    print(f"data: {d['n_train']:,} train / {d['n_test']:,} test examples of {d['in_features']} features"
          f"{classes}; inputs standardized by the training split's mean and std"
          + ("; targets too" if d["standardized_targets"] else ""))
    c = run.config
    print(f"training: {c['optimizer']} lr {c['lr']:g}, batch {c['batch_size']}, "
          + (f"{c['steps']:,} steps" if c["steps"] else f"{c['epochs']:,} epochs")
          + f", {c['grad']} gradients, dropout {c['dropout']:g}, weight decay {c['weight_decay']:g}, "
          f"validation split {c['validation_split']:g}, patience {c['patience']}")
    m = record.get("metrics")
    if m:
        acc = m.get("test_accuracy")
        loss = m.get("test_loss")
        figures = [f"test loss {loss:.4f}" if isinstance(loss, float) and math.isfinite(loss) else None,
                   f"test accuracy {acc:.4f}" if isinstance(acc, float) else None,
                   f"{m['epochs']} epochs" if "epochs" in m else None,
                   "stopped early" if m.get("stopped_early") else None]
        print("result: " + ", ".join(f for f in figures if f))
    return 0
