"""fnn report: write (or re-write) a saved run's report.html, from the parameter snapshots the run kept.

`fnn train --report` keeps the report's snapshots in RUN/snapshots.npz (fnn's
checkpoint format: atomic, checksummed, never pickled), so the report can be
written again later, for instance after an upgrade. A run trained without
--report has no snapshots: its report then has one frame, the trained params.
The run's dataset is generated (or read) again from its saved reference.
"""
import os

from fnn import checkpoint, cli
from fnn.errors import InputError
from fnn.runs.build import prepare_data
from fnn.runs.run import load_run
from fnn.viz import report as viz_report

__all__ = ["SNAPSHOTS", "add_report", "report", "save_snapshots", "load_snapshots"]

SNAPSHOTS, REPORT = "snapshots.npz", "report.html"


def add_report(p):
    p.add_argument("run", metavar="RUN", help="a run folder written by fnn train")
    p.add_argument("--out", metavar="FILE", help="where to write the report (default RUN/report.html)")
    return p


def save_snapshots(folder, snapshots):
    """The snapshots' params and model states, with their steps and epochs, in FOLDER/snapshots.npz."""
    frames = list(snapshots)
    checkpoint.save(os.path.join(folder, SNAPSHOTS),
                    {"params": [f.params for f in frames], "model_state": [f.model_state for f in frames]},
                    config={"steps": [f.step for f in frames], "epochs": [f.epoch for f in frames]})


def load_snapshots(run):
    """The run's Snapshots from RUN/snapshots.npz, or None if it kept none."""
    path = os.path.join(run.folder, SNAPSHOTS)
    if not os.path.exists(path):
        return None
    config, _ = checkpoint.read_config(path)
    steps, epochs = (config or {}).get("steps"), (config or {}).get("epochs")
    if (not isinstance(steps, list) or not isinstance(epochs, list) or len(steps) != len(epochs)
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in steps + epochs)):
        raise InputError(f"{path!r} does not list its frames' steps and epochs; write the report again "
                         "with fnn train --report")
    n = len(steps)
    trees, _ = checkpoint.load(path, {"params": [run.params] * n, "model_state": [run.model_state] * n})
    snapshots = viz_report.Snapshots()
    for params, state, step, epoch in zip(trees["params"], trees["model_state"], steps, epochs):
        snapshots.add(params, step, epoch, state)
    return snapshots


def report(args):
    """Write the run's report from its snapshots (or its trained params alone)."""
    run = load_run(args.run)
    out = args.out or os.path.join(run.folder, REPORT)
    if os.path.isdir(out) or not os.path.isdir(os.path.dirname(os.path.abspath(out))):
        raise InputError(f"--out {out!r}: expected a file path in an existing folder")
    snapshots = load_snapshots(run)
    if snapshots is None:
        snapshots = viz_report.Snapshots()
        snapshots.add(run.params, run.step, len(run.history.get("epoch") or []), run.model_state)
        print(f"{run.folder} kept no snapshots (train with --report for frames over training): "
              "one frame, the trained params")
    ds, _ = prepare_data(run.config)
    if ds.in_features != run.data["in_features"]:
        raise InputError(f"the run's dataset {run.config['dataset']!r} now has {ds.in_features} features; "
                         f"the run was trained on {run.data['in_features']}")
    split = (run.metrics or {}).get("validation_split_name") or (
        "validation" if run.config["validation_split"] else "test")
    cli.write_file(out, viz_report.training_report(run.model, run.loss, ds, snapshots, run.history,
                                                   summary=run.metrics, split=split, progress=True))
    print(f"wrote {out} ({len(snapshots)} frame{'' if len(snapshots) == 1 else 's'})")
    return 0
