"""fnn (manual and autodiff) against PyTorch, scikit-learn and the JAX ecosystem training the same MNIST-1D MLP.

    python -m benchmarks.peers [--rounds 7] [--json PATH] [--md PATH]

Every peer runs once cold (compilation included: its first-call wall time),
then, with --rounds R, R interleaved rounds (benchmarks.rounds) whose quiet
and loaded runs are reported apart, with fnn-manual's same-round ratio to each.
"""
import argparse
import json
import os
import sys
import time

import jax

from fnn import cli
from fnn.errors import InputError
from fnn.validate import check_positive_int

from benchmarks import jax_peers
from benchmarks.common import device_info
from benchmarks.peer_runners import (BATCH_SIZE, LEARNING_RATE, PEERS_EXTRA, SEED, SIZES, STEPS,  # noqa: F401 (re-exported)
                                     PeerResult, PeerUnavailable, _initial_params, cpu_threads, load_mnist1d,
                                     run_fnn, run_fnn_scan, run_sklearn, run_torch)
from benchmarks.rounds import round_summary, run_rounds

# ------------------------------------------------------------------ settings (the MLP's: peer_runners)
# "-1t": the same on one CPU thread. Small matmuls gain little from threads, and on a
# busy machine a thread pool that waits for its other threads can be many times slower.
# "fnn-scan": fnn's value_and_grad and Adam in a bare lax.scan, the floor under fit (not a peer).
PEERS = ("fnn-manual", "fnn-autodiff", "fnn-scan", "fnn-manual-cpu", "torch-cpu", "torch-cpu-1t", "torch-cuda",
         "sklearn", "sklearn-1t") + jax_peers.JAX_PEERS
JAX_GOAL = 1.5                # fnn.fit steps/s ≥ 1.5 × every JAX contender's, in quiet same-round runs
SPEEDUP_GOAL = 5.0            # fnn steps/s ≥ 5 × PyTorch eager steps/s on the same CPU ...
ACCURACY_TOLERANCE = 0.02     # ... at equal test accuracy: fnn ≥ PyTorch − 2 points


# ------------------------------------------------------------------ a whole run

def _check_peers(peers):
    peers = tuple(peers)
    unknown = [p for p in peers if p not in PEERS]
    if unknown or not peers:
        raise InputError(f"unknown peer(s) {', '.join(map(repr, unknown)) or '(none given)'}; "
                         f"expected some of {', '.join(PEERS)}")
    return peers


def default_peers(platform):
    """Every peer; fnn-manual-cpu only where JAX's default device is not the CPU, -1t where it differs."""
    return tuple(p for p in PEERS if not (p == "fnn-manual-cpu" and platform == "cpu")
                 and not (p.endswith("-1t") and cpu_threads() == 1))


class _JaxPeer:
    """A JAX peer prepared once: its first call trains cold then warm, later calls warm only."""

    def __init__(self, name, ds, common, init_params):
        self.trainer = jax_peers.prepare(name, ds, init_params=init_params, unavailable=PeerUnavailable,
                                         **common)
        self.result = None

    def __call__(self):
        t = self.trainer
        if self.result is None:
            t0 = time.perf_counter()
            t.train()
            cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        model = t.train()
        warm = time.perf_counter() - t0
        if self.result is None:
            device = jax.devices()[0].platform
            self.result = PeerResult(t.name, "ok", t.description, device, t.steps, t.steps / warm, warm, cold,
                                     t.accuracy(model), cpu_threads() if device == "cpu" else None)
        return self.result._replace(steps_per_second=t.steps / warm, train_seconds=warm)


def run(peers=None, *, data=None, steps=STEPS, batch_size=BATCH_SIZE, lr=LEARNING_RATE, seed=SEED,
        sizes=SIZES, threads=None, rounds=0, log=print):
    """Train the same MLP with each peer; returns the results as a JSON-ready dict.

    data: a fnn Dataset (default MNIST-1D, standardized). A peer that cannot run
    here is recorded as skipped, with the reason, and the others still run.
    rounds: after every peer's first (cold) run, this many interleaved rounds of warm runs.
    """
    log = log or (lambda *a, **k: None)
    info = device_info()
    peers = default_peers(info["platform"]) if peers is None else _check_peers(peers)
    check_positive_int("steps", steps)
    ds = load_mnist1d() if data is None else data
    sizes = (ds.x_train.shape[1],) + tuple(sizes[1:-1]) + (ds.n_classes,)
    if not 0 < batch_size <= len(ds.x_train):
        raise InputError(f"batch_size {batch_size} must be between 1 and the {len(ds.x_train)} examples")
    _, init_params, _ = _initial_params(seed, sizes)
    common = dict(steps=steps, batch_size=batch_size, lr=lr, seed=seed, sizes=sizes)
    results, calls = [], {}
    for name in peers:
        try:
            if name in jax_peers.JAX_PEERS:
                calls[name] = _JaxPeer(name, ds, common, init_params)
                r = calls[name]()
            elif name == "fnn-scan":
                r = run_fnn_scan(ds, **common)
            elif name.startswith("fnn-"):
                if name == "fnn-manual-cpu" and info["platform"] == "cpu":
                    raise PeerUnavailable("the default JAX device is the CPU: fnn-manual is this run")
                method = name.split("-")[1]
                r = run_fnn(ds, method, cpu=name.endswith("-cpu"), **common)
            elif name.startswith("torch-"):
                r = run_torch(ds, name.split("-")[1], init_params=init_params,
                              threads=1 if name.endswith("-1t") else threads, **common)
            else:
                r = run_sklearn(ds, threads=1 if name.endswith("-1t") else threads, **common)
            r = r._replace(name=name)
            calls.setdefault(name, _again(name, ds, info, common, init_params, threads))
        except PeerUnavailable as e:
            r = PeerResult(name, "skipped", str(e))
            calls.pop(name, None)
        results.append(r)
        log(f"{name}: skipped ({r.message})" if r.status == "skipped" else
            f"{name}: {r.steps} steps, {r.steps_per_second:,.0f} steps/s, wall {r.wall_seconds:.2f} s, "
            f"test accuracy {r.test_accuracy:.4f}")
    out = {"benchmark": "fnn vs peers, same MLP", "device": info,
           "settings": {"dataset": ds.name, "sizes": list(sizes), "activation": "relu", "optimizer": "adam",
                        "learning_rate": lr, "batch_size": batch_size, "steps": steps, "seed": seed,
                        "train_examples": int(len(ds.x_train)), "test_examples": int(len(ds.x_test)),
                        "speedup_goal": SPEEDUP_GOAL, "accuracy_tolerance": ACCURACY_TOLERANCE},
           "peers": [r._asdict() for r in results]}
    if rounds:
        log(f"{rounds} interleaved rounds of {', '.join(calls)}")
        out["rounds"] = run_rounds({n: (lambda c=c: c().steps_per_second) for n, c in calls.items()}, rounds,
                                   seed=seed, log=log)
        out["settings"]["rounds"] = rounds
    out["summary"] = summarize(out)
    return out


def _again(name, ds, info, common, init_params, threads):
    """A call that runs peer `name` again and returns its PeerResult (for the rounds)."""
    if name == "fnn-scan":
        return lambda: run_fnn_scan(ds, **common)
    if name.startswith("fnn-"):
        return lambda: run_fnn(ds, name.split("-")[1], cpu=name.endswith("-cpu"), **common)
    if name.startswith("torch-"):
        return lambda: run_torch(ds, name.split("-")[1], init_params=init_params,
                                 threads=1 if name.endswith("-1t") else threads, **common)
    return lambda: run_sklearn(ds, threads=1 if name.endswith("-1t") else threads, **common)


def _find(out, name):
    for p in out["peers"]:
        if p["name"] == name and p["status"] == "ok":
            return p
    return None


def _kind(device):
    return "cpu" if device == "cpu" else "accelerator"


def summarize(out):
    """Ratios of fnn-manual's steps/s to every peer's, and the speed goal against PyTorch on CPU.

    Each peer is compared with fnn-manual on the same kind of device (CPU or
    accelerator); fnn-manual-cpu is fnn on the CPU when JAX's default device is not.
    """
    fnn_on = {}
    for name in ("fnn-manual", "fnn-manual-cpu"):
        p = _find(out, name)
        if p is not None:
            fnn_on.setdefault(_kind(p["device"]), p)
    ratios = {}
    for p in out["peers"]:
        base = fnn_on.get(_kind(p["device"])) if p["status"] == "ok" else None
        if base is not None:
            ratios[p["name"]] = {"fnn": base["name"],
                                 "fnn_speedup": base["steps_per_second"] / p["steps_per_second"],
                                 "accuracy_difference": base["test_accuracy"] - p["test_accuracy"]}
    ref_cpu = fnn_on.get("cpu")
    torch_runs = [p for p in (_find(out, "torch-cpu"), _find(out, "torch-cpu-1t")) if p is not None]
    torch_cpu = max(torch_runs, key=lambda p: p["steps_per_second"]) if torch_runs else None
    goal = {"goal": f"fnn MNIST-1D training ≥ {SPEEDUP_GOAL:g}× the steps/s of PyTorch eager on the same CPU "
                    f"(its faster thread setting), at equal test accuracy "
                    f"(fnn ≥ PyTorch − {ACCURACY_TOLERANCE:.2f})",
            "measured": "n/a", "status": "n/a"}
    if torch_cpu is None:
        goal["measured"] = "PyTorch not run: " + next(
            (p["message"] for p in out["peers"] if p["name"] == "torch-cpu"), "not requested")
    elif ref_cpu is not None:
        speedup = ref_cpu["steps_per_second"] / torch_cpu["steps_per_second"]
        equal = ref_cpu["test_accuracy"] >= torch_cpu["test_accuracy"] - ACCURACY_TOLERANCE
        goal["measured"] = (f"{speedup:.1f}× ({ref_cpu['steps_per_second']:,.0f} vs "
                            f"{torch_cpu['steps_per_second']:,.0f} steps/s, {torch_cpu['name']}, "
                            f"{torch_cpu['threads']} thread(s)); test accuracy "
                            f"{ref_cpu['test_accuracy']:.3f} vs {torch_cpu['test_accuracy']:.3f}")
        goal["status"] = "met" if speedup >= SPEEDUP_GOAL and equal else "not met"
    summary = {"reference": None if ref_cpu is None else ref_cpu["name"], "ratios": ratios, "goal": goal}
    if "rounds" in out:
        summary["rounds"] = round_summary(out["rounds"], "fnn-manual")
        summary["jax_goal"] = _jax_goal(out, summary["rounds"])
    return summary


def _jax_goal(out, rounds):
    """fnn.fit ≥ JAX_GOAL × every JAX contender's steps/s in quiet same-round pairs, at equal accuracy."""
    base = _find(out, "fnn-manual")
    goal = {"goal": f"fnn.fit ≥ {JAX_GOAL:g}× every JAX contender's steps/s (median of quiet same-round "
                    f"ratios), at equal test accuracy (fnn ≥ contender − {ACCURACY_TOLERANCE:.2f})",
            "measured": [], "status": "n/a"}
    met = []
    for name in jax_peers.JAX_PEERS:
        p, row = _find(out, name), rounds.get(name)
        if p is None or row is None or base is None:
            continue
        quiet = row["fnn_ratio"]["quiet"]
        ratio = quiet["median"] if quiet else None
        equal = base["test_accuracy"] >= p["test_accuracy"] - ACCURACY_TOLERANCE
        goal["measured"].append({"peer": name, "quiet_ratio": ratio, "quiet_pairs": quiet["n"] if quiet else 0,
                                 "all_ratio": row["fnn_ratio"]["all"]["median"], "equal_accuracy": equal})
        met.append(ratio is not None and ratio >= JAX_GOAL and equal)
    if met:
        goal["status"] = "met" if all(met) else "not met"
    return goal


# ------------------------------------------------------------------ output

def table_lines(out):
    ratios = out["summary"]["ratios"]
    head = (f"{'peer':<16} {'device':>7} {'steps':>6} {'steps/s':>10} {'train s':>8} {'wall s':>8} "
            f"{'test acc':>9} {'fnn ×':>7}")
    lines = [head, "-" * len(head)]
    for p in out["peers"]:
        if p["status"] != "ok":
            lines.append(f"{p['name']:<16} skipped: {p['message']}")
            continue
        r = ratios.get(p["name"])
        lines.append(f"{p['name']:<16} {p['device']:>7} {p['steps']:>6} {p['steps_per_second']:>10,.0f} "
                     f"{p['train_seconds']:>8.2f} {p['wall_seconds']:>8.2f} {p['test_accuracy']:>9.4f} "
                     f"{'' if r is None else format(r['fnn_speedup'], '.2f'):>7}")
    g = out["summary"]["goal"]
    lines.append(f"[{g['status']}] {g['goal']}: {g['measured']}")
    if "rounds" in out["summary"]:
        lines += ["", f"{out['settings']['rounds']} interleaved rounds, steps/s median (n): all | quiet | "
                      "loaded; fnn-manual × peer, same round: all | quiet"]
        for name, row in out["summary"]["rounds"].items():
            lines.append(f"{name:<16} " + " | ".join(_median(row[k]) for k in ("all", "quiet", "loaded"))
                         + ("" if "fnn_ratio" not in row else "; " + " | ".join(
                             _median(row["fnn_ratio"][k], ".2f") for k in ("all", "quiet"))))
        j = out["summary"]["jax_goal"]
        lines.append(f"[{j['status']}] {j['goal']}")
    return lines


def _median(stats, fmt=",.0f"):
    return "-" if stats is None else f"{stats['median']:{fmt}} ({stats['n']})"


def to_markdown(out, command=None):
    d, st = out["device"], out["settings"]
    ratios = out["summary"]["ratios"]
    lines = ["## fnn and its peers: the same MLP on MNIST-1D", "",
             f"- device: {d['description']}" + (f", {d['cpu_model']}, {d['cpu_count']} cores"
                                                 if d.get("cpu_model") else ""),
             f"- date: {d['date']}; JAX {d['jax_version']}",
             f"- model {'-'.join(map(str, st['sizes']))} {st['activation']}, {st['optimizer']} "
             f"lr {st['learning_rate']:g}, batch {st['batch_size']}, {st['steps']} steps, "
             f"{st['train_examples']} train / {st['test_examples']} test examples, seed {st['seed']}",
             "- steps/s and train s exclude compilation (fnn: a second, identical fit() reusing the "
             "compiled program); wall includes model set-up and compilation (fnn: the first fit())",
             "- fnn ×: fnn-manual's steps/s divided by the peer's (on the same device kind)"]
    if command:
        lines.append(f"- command: `{command}`")
    rows = []
    for p in out["peers"]:
        if p["status"] != "ok":
            rows.append((p["name"], "skipped", p["message"]) + ("",) * 7)
            continue
        r = ratios.get(p["name"])
        rows.append((p["name"], p["device"], p["message"], "" if p["threads"] is None else str(p["threads"]),
                     f"{p['steps']}", f"{p['steps_per_second']:,.0f}", f"{p['train_seconds']:.2f}",
                     f"{p['wall_seconds']:.2f}", f"{p['test_accuracy']:.4f}",
                     "" if r is None else f"{r['fnn_speedup']:.2f}"))
    header = ["peer", "device", "what", "CPU threads", "steps", "steps/s", "train s", "wall s",
              "test accuracy", "fnn ×"]
    lines += ["", "| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    g = out["summary"]["goal"]
    lines += ["", "| goal | measured | status |", "|---|---|---|",
              f"| {g['goal']} | {g['measured']} | {g['status']} |", ""]
    if "rounds" in out["summary"]:
        lines += _rounds_markdown(out)
    return "\n".join(lines)


def _spread(stats, fmt=",.0f"):
    if stats is None:
        return "-"
    return f"{stats['median']:{fmt}} ({stats['q1']:{fmt}}–{stats['q3']:{fmt}}, n {stats['n']})"


def _rounds_markdown(out):
    """The rounds: steps/s medians (quartiles) over all, quiet and loaded runs, and fnn's same-round ratios."""
    rounds = out["summary"]["rounds"]
    lines = [f"Interleaved rounds: {out['settings']['rounds']}; a run is quiet when other processes used "
             "< 0.1 cores during it. fnn ×: fnn-manual's steps/s over the peer's in the same round "
             "(quiet: both runs quiet).", "",
             "| peer | first call s (compile incl.) | steps/s, all rounds | quiet | loaded | other cores | "
             "fnn ×, all | fnn ×, quiet |", "|---|---|---|---|---|---|---|---|"]
    for p in out["peers"]:
        row = rounds.get(p["name"])
        if row is None:
            continue
        ratio = row.get("fnn_ratio", {})
        lines.append(f"| {p['name']} | {p['wall_seconds']:.2f} | {_spread(row['all'])} | {_spread(row['quiet'])} | "
                     f"{_spread(row['loaded'])} | {_spread(row['other_cores'], '.2f')} | "
                     f"{_spread(ratio.get('all'), '.2f')} | {_spread(ratio.get('quiet'), '.2f')} |")
    j = out["summary"]["jax_goal"]
    measured = "; ".join(f"{m['peer']} {m['quiet_ratio']:.2f}×" if m["quiet_ratio"] is not None
                         else f"{m['peer']} (no quiet pair; all rounds {m['all_ratio']:.2f}×)"
                         for m in j["measured"])
    lines += ["", "| goal | measured | status |", "|---|---|---|", f"| {j['goal']} | {measured} | {j['status']} |",
              ""]
    return lines


def _list(text):
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}")
    return items


def parse_args(argv):
    p = cli.ArgumentParser(prog="python -m benchmarks.peers", description=__doc__)
    p.add_argument("--peers", type=_list, help=f"some of {', '.join(PEERS)} (default: all that apply)")
    p.add_argument("--steps", type=cli.positive_int, default=STEPS, help=f"training steps (default {STEPS})")
    p.add_argument("--batch-size", type=cli.positive_int, default=BATCH_SIZE)
    p.add_argument("--lr", type=cli.positive_float, default=LEARNING_RATE)
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--threads", type=cli.positive_int, help="PyTorch CPU threads (default: this process's cores)")
    p.add_argument("--rounds", type=cli.int_in_range(0, 1000), default=0,
                   help="interleaved rounds of warm runs after the first, quiet and loaded reported apart "
                        "(default 0: one run each)")
    p.add_argument("--json", metavar="PATH", help="write every figure as JSON")
    p.add_argument("--md", metavar="PATH", help="write a Markdown summary")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    peers = None if args.peers is None else _check_peers(args.peers)
    print(f"device: {cli.device_description()}; JAX {jax.__version__}")
    out = run(peers, steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
              threads=args.threads, rounds=args.rounds)
    out["command"] = ("python -m benchmarks.peers " + " ".join(sys.argv[1:] if argv is None else argv)).strip()
    print()
    for line in table_lines(out):
        print(line)
    for path, text in ((args.json, lambda: json.dumps(out, indent=1)),
                       (args.md, lambda: to_markdown(out, out["command"]) + "\n")):
        if path:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            with open(path, "w") as f:
                f.write(text())
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
