"""fnn (manual, autodiff) against PyTorch (eager, compiled) and Equinox: the MNIST-1D CNN and GRU, the transformer.

    python -m benchmarks.family_peers [--models cnn,gru,transformer] [--rounds 3] [--steps N]
                                      [--json PATH] [--md PATH] [--quick]

benchmarks.peers does this for the MNIST-1D MLP; here each of fnn's newer
families (benchmarks.family_tasks: the paper's CNN and bidirectional GRU on
MNIST-1D, scripts/transformer.py's model on its sort task) is trained by every
contender under one protocol: the same data, the same initial parameters (fnn's,
copied into each peer), minibatch size, steps and Adam learning rate. Each
contender runs once cold (its first-call wall time, compilation included) and
once warm (its steps/s and accuracy), then, with --rounds R, R interleaved rounds
of warm runs (benchmarks.rounds) whose quiet and loaded runs are reported apart,
with fnn-manual's same-round ratio to each. One table per model. A peer that
cannot run here (not installed; torch.compile failing) is recorded with the
reason, and the others still run.
"""
import argparse
import json
import os
import sys
import time

import jax

import fnn
from fnn import cli
from fnn.errors import InputError

from benchmarks import family_equinox, family_torch
from benchmarks.common import device_info
from benchmarks.family_tasks import MODELS, fnn_trainer, make_task
from benchmarks.peer_runners import PeerUnavailable
from benchmarks.rounds import QUIET_CORES, LoadMeter, round_summary, run_rounds

__all__ = ["PEERS", "ROUNDS", "REFERENCE", "run", "run_model", "summarize", "table_lines", "to_markdown", "main"]

PEERS = ("fnn-manual", "fnn-autodiff", "torch", "torch-compile", "equinox")
ROUNDS = 3
REFERENCE = "fnn-manual"
TITLES = {"cnn": "the MNIST-1D paper's CNN (fnn.models.paper_cnn)",
          "gru": "the MNIST-1D paper's bidirectional GRU (fnn.models.paper_gru)",
          "transformer": "the transformer demo's model on sorting (scripts/transformer.py, fnn.layers.gpt)"}
METRICS = {"cnn": "test accuracy", "gru": "test accuracy", "transformer": "exact match"}


def _check(kind, names, allowed):
    names = tuple(names)
    unknown = [n for n in names if n not in allowed]
    if unknown or not names:
        raise InputError(f"unknown {kind}(s) {', '.join(map(repr, unknown)) or '(none given)'}; "
                         f"expected some of {', '.join(allowed)}")
    return names


def _prepare(peer, task, threads):
    if peer.startswith("fnn-"):
        return fnn_trainer(task, peer.split("-", 1)[1])
    if peer in family_torch.TORCH_PEERS:
        return family_torch.prepare(peer, task, threads=threads)
    return family_equinox.prepare(peer, task, unavailable=PeerUnavailable)


class _Contender:
    """A prepared contender: first() trains cold then warm and records both; again() trains warm, → steps/s."""

    def __init__(self, trainer):
        self.trainer = trainer

    def first(self):
        t = self.trainer
        with LoadMeter() as cold_load:
            t0 = time.perf_counter()
            t.train()
            cold = time.perf_counter() - t0
        with LoadMeter() as warm_load:
            t0 = time.perf_counter()
            trained = t.train()
            warm = time.perf_counter() - t0
        scores, note = t.score(trained), t.note()
        return {"name": t.name, "status": "ok", "message": t.description + (f"; {note}" if note else ""),
                "device": t.device, "threads": t.threads, "steps": t.steps, "first_call_seconds": cold,
                "first_call_other_cores": cold_load.other_cores, "steps_per_second": t.steps / warm,
                "train_seconds": warm, "other_cores": warm_load.other_cores, "accuracy": scores["accuracy"],
                "scores": scores}

    def again(self):
        t0 = time.perf_counter()
        self.trainer.train()
        return self.trainer.steps / (time.perf_counter() - t0)


def run_model(name, peers=PEERS, *, rounds=ROUNDS, steps=None, seed=0, quick=False, threads=None, log=print):
    """Every contender on model `name`: a JSON-ready dict of its settings, contenders, rounds and summary."""
    log = log or (lambda *a, **k: None)
    task = make_task(name, seed=seed, steps=steps, quick=quick)
    records, calls = [], {}
    for peer in peers:
        try:
            contender = _Contender(_prepare(peer, task, threads))
            r = contender.first()
            calls[peer] = contender.again
        except PeerUnavailable as e:
            r = {"name": peer, "status": "skipped", "message": str(e)}
        records.append(r)
        log(f"{name} {peer}: skipped ({r['message']})" if r["status"] == "skipped" else
            f"{name} {peer}: first call {r['first_call_seconds']:.2f} s, {r['steps_per_second']:,.0f} steps/s, "
            f"{METRICS[name]} {r['accuracy']:.4f}")
    out = {"model": name, "title": TITLES[name], "metric": METRICS[name], "settings": task.settings,
           "contenders": records}
    if rounds:
        log(f"{name}: {rounds} interleaved rounds of {', '.join(calls)}")
        out["rounds"] = run_rounds(calls, rounds, seed=seed, log=lambda line: log(f"{name} {line}"))
    out["summary"] = summarize(out)
    return out


def run(models=MODELS, peers=PEERS, *, rounds=ROUNDS, steps=None, seed=0, quick=False, threads=None, log=print):
    """run_model for each of `models`; the whole run as a JSON-ready dict (device, settings, one entry per model)."""
    models, peers = _check("model", models, MODELS), _check("peer", peers, PEERS)
    info = dict(device_info(), versions=_versions())
    out = {"benchmark": "fnn vs peers on the MNIST-1D CNN, the GRU and the transformer demo", "device": info,
           "settings": {"models": list(models), "peers": list(peers), "rounds": rounds, "steps": steps,
                        "seed": seed, "quick": quick, "reference": REFERENCE, "quiet_cores": QUIET_CORES,
                        "torch_threads": threads or family_torch.THREADS},
           "models": {}}
    for name in models:
        out["models"][name] = run_model(name, peers, rounds=rounds, steps=steps, seed=seed, quick=quick,
                                        threads=threads, log=log)
    return out


def _versions():
    """fnn's version and the installed peers' (None where one is missing), without importing them."""
    from importlib import metadata
    out = {"fnn": fnn.__version__}
    for package in ("torch", "equinox", "optax"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = None
    return out


# ------------------------------------------------------------------ summary

def _ok(m):
    return {r["name"]: r for r in m["contenders"] if r["status"] == "ok"}


def summarize(m):
    """fnn-manual's steps/s over each contender's (same-round medians: quiet pairs where any, else all
    rounds; the first warm runs without rounds), the accuracies, and the observation line they make."""
    ok, ratios = _ok(m), {}
    base = ok.get(REFERENCE)
    summary = {"reference": REFERENCE if base else None}
    if "rounds" in m:
        summary["rounds"] = round_summary(m["rounds"], REFERENCE)
    for name, r in ok.items():
        if name == REFERENCE or base is None:
            continue
        row = summary.get("rounds", {}).get(name, {}).get("fnn_ratio")
        if row and row["quiet"]:
            ratios[name] = {"ratio": row["quiet"]["median"], "from": "quiet rounds", "n": row["quiet"]["n"]}
        elif row and row["all"]:
            ratios[name] = {"ratio": row["all"]["median"], "from": "all rounds", "n": row["all"]["n"]}
        else:
            ratios[name] = {"ratio": base["steps_per_second"] / r["steps_per_second"], "from": "first runs", "n": 1}
    summary["ratios"] = ratios
    summary["observation"] = _observation(m, ok, ratios)
    summary["goal"] = "none set yet for this model"
    return summary


def _observation(m, ok, ratios):
    if REFERENCE not in ok:
        return f"{REFERENCE} did not run: no comparison"
    if not ratios:
        return f"{REFERENCE} ran alone: no comparison"
    sources = sorted({r["from"] for r in ratios.values()})
    speed = ", ".join(f"{r['ratio']:.2f}× {name}" for name, r in ratios.items())
    others = [ok[n]["accuracy"] for n in ratios]
    return (f"{REFERENCE} steps/s over each contender's ({' / '.join(sources)}, medians): {speed}; "
            f"{m['metric']} {ok[REFERENCE]['accuracy']:.3f} against {min(others):.3f}–{max(others):.3f}")


# ------------------------------------------------------------------ output

def _median(stats, fmt=",.0f"):
    return "-" if stats is None else f"{stats['median']:{fmt}} ({stats['n']})"


def _spread(stats, fmt=",.0f"):
    if stats is None:
        return "-"
    return f"{stats['median']:{fmt}} ({stats['q1']:{fmt}}–{stats['q3']:{fmt}}, n {stats['n']})"


def table_lines(out):
    """The run as text: per model, every contender's first call, steps/s, accuracy and fnn-manual's ratio."""
    lines = []
    for name, m in out["models"].items():
        rounds = m["summary"].get("rounds", {})
        head = (f"{'contender':<14} {'first s':>8} {'steps/s':>9} {m['metric']:>14} {'rounds: all | quiet':>22} "
                f"{'fnn ×':>7}")
        lines += ["", f"{name}: {m['title']}, {m['settings']['steps']} steps", head, "-" * len(head)]
        for r in m["contenders"]:
            if r["status"] != "ok":
                lines.append(f"{r['name']:<14} skipped: {r['message']}")
                continue
            row, ratio = rounds.get(r["name"]), m["summary"]["ratios"].get(r["name"])
            rates = "" if row is None else f"{_median(row['all'])} | {_median(row['quiet'])}"
            ratio = "" if ratio is None else format(ratio["ratio"], ".2f")
            lines.append(f"{r['name']:<14} {r['first_call_seconds']:>8.2f} {r['steps_per_second']:>9,.0f} "
                         f"{r['accuracy']:>14.4f} {rates:>22} {ratio:>7}")
        lines.append(f"observation: {m['summary']['observation']}")
    return lines


def to_markdown(out, command=None):
    """One table per model, with the device, the protocol and the goal/observation line."""
    d = out["device"]
    lines = ["## fnn and its peers: the MNIST-1D CNN, the GRU and the transformer demo", "",
             f"- device: {d['description']}" + (f", {d['cpu_model']}, {d['cpu_count']} cores"
                                                 if d.get("cpu_model") else ""),
             f"- date: {d['date']}; JAX {d['jax_version']}; PyTorch threads {out['settings']['torch_threads']}",
             "- every contender starts from fnn's initial params, with the same data, minibatch size, steps "
             "and Adam learning rate; first call: the first training's wall time, compilation included; "
             "steps/s: warm runs",
             f"- interleaved rounds: {out['settings']['rounds']}; a run is quiet when other processes used "
             f"< {out['settings']['quiet_cores']:g} cores during it; fnn ×: {REFERENCE}'s steps/s over the "
             "contender's in the same round (quiet: both runs quiet)"]
    if command:
        lines.append(f"- command: `{command}`")
    for name, m in out["models"].items():
        lines += [""] + _model_markdown(m)
    return "\n".join(lines)


def _model_markdown(m):
    s, rounds = m["settings"], m["summary"].get("rounds", {})
    lr = f"lr {s['learning_rate']:g}" + (" cosine decay" if s["schedule"] == "cosine" else "")
    lines = [f"### {m['model']}: {m['title']}", "",
             f"- {s['parameters']:,} params, Adam {lr}, batch {s['batch_size']}, {s['steps']} steps, "
             f"{s['train_examples']} train / {s['test_examples']} test examples ({s['data']}), seed {s['seed']}",
             f"- goal: {m['summary']['goal']}; observation: {m['summary']['observation']}", ""]
    extra = ["token accuracy"] if m["model"] == "transformer" else []
    header = ["contender", "what", "first call s (compile incl.)", "steps/s, warm run", "steps/s, all rounds",
              "quiet", "loaded", "other cores", "fnn ×, all", "fnn ×, quiet", m["metric"]] + extra
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in m["contenders"]:
        if r["status"] != "ok":
            lines.append(f"| {r['name']} | skipped: {r['message']} |" + " |" * (len(header) - 2))
            continue
        row = rounds.get(r["name"], {})
        ratio = row.get("fnn_ratio", {})
        cells = [r["name"], r["message"], f"{r['first_call_seconds']:.2f}", f"{r['steps_per_second']:,.0f}",
                 _spread(row.get("all")), _spread(row.get("quiet")), _spread(row.get("loaded")),
                 _spread(row.get("other_cores"), ".2f"), _spread(ratio.get("all"), ".2f"),
                 _spread(ratio.get("quiet"), ".2f"), f"{r['accuracy']:.4f}"]
        cells += [f"{r['scores']['token_accuracy']:.4f}"] if extra else []
        lines.append("| " + " | ".join(cells) + " |")
    return lines


# ------------------------------------------------------------------ command line

def _list(text):
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}")
    return items


def parse_args(argv):
    p = cli.ArgumentParser(prog="python -m benchmarks.family_peers", description=__doc__.split("\n")[0])
    p.add_argument("--models", type=_list, default=list(MODELS), help=f"some of {', '.join(MODELS)} (default all)")
    p.add_argument("--peers", type=_list, default=list(PEERS), help=f"some of {', '.join(PEERS)} (default all)")
    p.add_argument("--rounds", type=cli.int_in_range(0, 1000), default=ROUNDS,
                   help=f"interleaved rounds of warm runs after the first (default {ROUNDS}; 0: one run each)")
    p.add_argument("--steps", type=cli.positive_int, help="training steps of every model (default: each model's own)")
    p.add_argument("--seed", type=cli.int_in_range(0, 2 ** 31 - 1), default=0,
                   help="seed of the data, the initial params and the shuffling (default 0)")
    p.add_argument("--threads", type=cli.positive_int,
                   help=f"PyTorch's CPU threads (default {family_torch.THREADS}; fnn and Equinox: XLA's own)")
    p.add_argument("--quick", action="store_true", help="tiny models and data, a few steps (a smoke test)")
    p.add_argument("--json", metavar="PATH", help="write every figure as JSON")
    p.add_argument("--md", metavar="PATH", help="write the Markdown tables")
    args = p.parse_args(argv)
    args.models, args.peers = _check("model", args.models, MODELS), _check("peer", args.peers, PEERS)
    for flag in ("json", "md"):
        path = getattr(args, flag)
        if path is not None and (os.path.isdir(path) or not os.path.isdir(os.path.dirname(os.path.abspath(path)))):
            raise InputError(f"--{flag} {path!r}: expected a file path in an existing folder")
    return args


def main(argv=None):
    args = parse_args(argv)
    print(f"device: {cli.device_description()}; JAX {jax.__version__}")
    out = run(args.models, args.peers, rounds=args.rounds, steps=args.steps, seed=args.seed, quick=args.quick,
              threads=args.threads)
    out["command"] = ("python -m benchmarks.family_peers " + " ".join(sys.argv[1:] if argv is None else argv)).strip()
    for line in table_lines(out):
        print(line)
    for path, text in ((args.json, lambda: json.dumps(out, indent=1)),
                       (args.md, lambda: to_markdown(out, out["command"]) + "\n")):
        if path:
            cli.write_file(path, text())
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main, prog="python -m benchmarks.family_peers"))
