"""fnn (manual and autodiff) against PyTorch and scikit-learn training the same MNIST-1D MLP."""
import argparse
import json
import math
import os
import sys
import time
import warnings
from typing import NamedTuple, Optional

import jax
import numpy as np

import fnn
from fnn import cli
from fnn.errors import InputError
from fnn.validate import check_positive_int

from benchmarks.common import device_info

# ------------------------------------------------------------------ settings
# MNIST-1D's published MLP: 40-100-100-10, ReLU, Adam, batch 100; 6000 steps = 150 epochs of 4000.
SIZES = (40, 100, 100, 10)
LEARNING_RATE = 1e-2
BATCH_SIZE = 100
STEPS = 6000
SEED = 0
# "-1t": the same on one CPU thread. Small matmuls gain little from threads, and on a
# busy machine a thread pool that waits for its other threads can be many times slower.
# "fnn-scan": fnn's value_and_grad and Adam in a bare lax.scan, the floor under fit (not a peer).
PEERS = ("fnn-manual", "fnn-autodiff", "fnn-scan", "fnn-manual-cpu", "torch-cpu", "torch-cpu-1t", "torch-cuda",
         "sklearn", "sklearn-1t")
SPEEDUP_GOAL = 5.0            # fnn steps/s ≥ 5 × PyTorch eager steps/s on the same CPU ...
ACCURACY_TOLERANCE = 0.02     # ... at equal test accuracy: fnn ≥ PyTorch − 2 points
PEERS_EXTRA = "pip install 'fnn[peers]'  (torch, scikit-learn)"


class PeerResult(NamedTuple):
    """One framework's run: throughput, time and test accuracy, or why it was skipped."""
    name: str
    status: str                      # "ok" or "skipped"
    message: str = ""
    device: str = ""
    steps: int = 0
    steps_per_second: Optional[float] = None     # excluding compilation
    train_seconds: Optional[float] = None        # the training loop, excluding compilation
    wall_seconds: Optional[float] = None         # model set-up, compilation and training
    test_accuracy: Optional[float] = None
    threads: Optional[int] = None


class PeerUnavailable(Exception):
    """A peer that cannot run here (not installed, no device); the message says why."""


def cpu_threads():
    """The cores this process may use (what XLA's CPU client uses)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def load_mnist1d():
    """MNIST-1D (fnn.data.mnist1d), features standardized by the training set's statistics."""
    ds, _ = fnn.data.standardize_dataset(fnn.data.get_dataset("mnist1d"))
    return ds


def _initial_params(seed, sizes):
    model = fnn.mlp(list(sizes), activation="relu")
    k_init, k_train = jax.random.split(jax.random.key(seed))
    _, params = model.init(k_init, (-1, sizes[0]))
    return model, params, k_train


# ------------------------------------------------------------------ the peers

def run_fnn(ds, method, *, steps, batch_size, lr, seed, sizes=SIZES, cpu=False):
    """fnn.fit (compiled multi-epoch chunks), run twice: cold (with compilation), then warm.

    The warm run reuses the compiled program and repeats the cold run exactly;
    its time is the training time without compilation.
    """
    if cpu:
        with jax.default_device(jax.devices("cpu")[0]):
            return run_fnn(ds, method, steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                           sizes=sizes)._replace(name=f"fnn-{method}-cpu")
    model, params, key = _initial_params(seed, sizes)
    loss, opt = fnn.get_loss("softmax_cross_entropy"), fnn.optim.adam(lr)
    runs = []
    for _ in range(2):
        t0 = time.perf_counter()
        result = fnn.fit(model, loss, opt, params, ds.x_train, ds.y_train, key=key, steps=steps,
                         batch_size=batch_size, config=fnn.StepConfig(method=method),
                         progress=False)
        jax.block_until_ready(result.params)
        runs.append((time.perf_counter() - t0, result))
    (cold, _), (warm, result) = runs
    acc = fnn.evaluate(model, loss, result.params, ds.x_test, ds.y_test)["accuracy"]
    device = next(iter(jax.tree.leaves(result.params)[0].devices())).platform
    return PeerResult(f"fnn-{method}", "ok", "fnn.fit, compiled epochs", device, result.steps,
                      result.steps / warm, warm, cold, acc,
                      cpu_threads() if device == "cpu" else None)


def run_fnn_scan(ds, *, steps, batch_size, lr, seed, sizes=SIZES, method="manual"):
    """The floor under fnn.fit: fnn's value_and_grad and Adam in a bare lax.scan.

    What a user writes by hand from fnn's functions: the same model, initial
    parameters, gradients and optimizer, with none of fit's per-step work (the
    loss and accuracy of every step, the non-finite check) and every epoch's
    shuffled batches gathered before the timed loop. fit's figure against this
    one is the cost of what fit adds. Cold, then warm, as run_fnn.
    """
    model, params, key = _initial_params(seed, sizes)
    loss, opt = fnn.get_loss("softmax_cross_entropy"), fnn.optim.adam(lr)
    value_and_grad = fnn.grads.make_value_and_grad(model, loss, method)
    x, y = jax.numpy.asarray(ds.x_train), jax.numpy.asarray(ds.y_train)
    n = x.shape[0]
    epochs = math.ceil(steps / (n // batch_size))
    idx = jax.numpy.concatenate([fnn.data.batch_indices(k, n, batch_size)
                                 for k in jax.random.split(key, epochs)])[:steps]
    xs, ys = x[idx], y[idx]                                   # (steps, batch, ...)

    @jax.jit
    def train(params, xs, ys):
        def body(carry, batch):
            p, s = carry
            _, grads = value_and_grad(p, *batch)
            updates, s = opt.update(grads, s, p)
            return (fnn.optim.apply_updates(p, updates), s), None
        (params, _), _ = jax.lax.scan(body, (params, opt.init(params)), (xs, ys))
        return params

    runs = []
    for _ in range(2):
        t0 = time.perf_counter()
        trained = jax.block_until_ready(train(params, xs, ys))
        runs.append(time.perf_counter() - t0)
    cold, warm = runs
    acc = fnn.evaluate(model, loss, trained, ds.x_test, ds.y_test)["accuracy"]
    device = next(iter(jax.tree.leaves(trained)[0].devices())).platform
    return PeerResult("fnn-scan", "ok", "fnn value_and_grad + adam in a bare lax.scan (no fit)", device,
                      steps, steps / warm, warm, cold, acc, cpu_threads() if device == "cpu" else None)


def run_torch(ds, device="cpu", *, steps, batch_size, lr, seed, sizes=SIZES, init_params=None,
              threads=None):
    """PyTorch eager: a plain Python loop of forward, cross-entropy, backward, torch.optim.Adam."""
    try:
        import torch
    except ImportError:
        raise PeerUnavailable(f"PyTorch is not installed: {PEERS_EXTRA}") from None
    if device == "cuda" and not torch.cuda.is_available():
        raise PeerUnavailable("no CUDA device for PyTorch")
    threads = threads or cpu_threads()
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    t_start = time.perf_counter()
    layers = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(fan_in, fan_out))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    if init_params is not None:                        # the same initial weights as fnn
        linears = [l for l in layers if isinstance(l, torch.nn.Linear)]
        with torch.no_grad():
            for lin, p in zip(linears, [p for p in init_params if p]):
                lin.weight.copy_(torch.from_numpy(np.asarray(p["W"]).T.copy()))
                lin.bias.copy_(torch.from_numpy(np.asarray(p["b"]).copy()))
    model = model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    x = torch.from_numpy(np.asarray(ds.x_train, np.float32)).to(device)
    y = torch.from_numpy(np.asarray(ds.y_train, np.int64)).to(device)
    n, gen = x.shape[0], torch.Generator().manual_seed(seed)
    per_epoch = n // batch_size
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for step in range(steps):
        j = step % per_epoch
        if j == 0:
            perm = torch.randperm(n, generator=gen).to(device)
        idx = perm[j * batch_size:(j + 1) * batch_size]
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync()
    train = time.perf_counter() - t0
    wall = time.perf_counter() - t_start
    with torch.no_grad():
        xt = torch.from_numpy(np.asarray(ds.x_test, np.float32)).to(device)
        pred = model(xt).argmax(dim=1).cpu().numpy()
    acc = float(np.mean(pred == np.asarray(ds.y_test)))
    return PeerResult(f"torch-{device}", "ok", f"PyTorch {torch.__version__} eager", device, steps,
                      steps / train, train, wall, acc, threads if device == "cpu" else None)


def run_sklearn(ds, *, steps, batch_size, lr, seed, sizes=SIZES, threads=None):
    """scikit-learn's MLPClassifier (hand-written NumPy backprop), Adam, whole epochs.

    threads limits NumPy's BLAS thread pool (threadpoolctl) during the fit.
    """
    try:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier
        from threadpoolctl import threadpool_limits
        import sklearn
    except ImportError:
        raise PeerUnavailable(f"scikit-learn is not installed: {PEERS_EXTRA}") from None
    threads = threads or cpu_threads()
    n = len(ds.x_train)
    per_epoch = math.ceil(n / batch_size)                # sklearn keeps the last partial batch
    epochs = max(1, math.ceil(steps / per_epoch))
    clf = MLPClassifier(hidden_layer_sizes=tuple(sizes[1:-1]), activation="relu", solver="adam",
                        alpha=0.0, batch_size=batch_size, learning_rate_init=lr, max_iter=epochs,
                        shuffle=True, random_state=seed, tol=0.0, n_iter_no_change=epochs + 1,
                        early_stopping=False)
    t0 = time.perf_counter()
    with warnings.catch_warnings(), threadpool_limits(limits=threads):
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(np.asarray(ds.x_train, np.float32), np.asarray(ds.y_train))
    train = time.perf_counter() - t0
    acc = float(clf.score(np.asarray(ds.x_test, np.float32), np.asarray(ds.y_test)))
    done = clf.n_iter_ * per_epoch
    return PeerResult("sklearn", "ok", f"scikit-learn {sklearn.__version__} MLPClassifier", "cpu", done,
                      done / train, train, train, acc, threads)


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


def run(peers=None, *, data=None, steps=STEPS, batch_size=BATCH_SIZE, lr=LEARNING_RATE, seed=SEED,
        sizes=SIZES, threads=None, log=print):
    """Train the same MLP with each peer; returns the results as a JSON-ready dict.

    data: a fnn Dataset (default MNIST-1D, standardized). A peer that cannot run
    here is recorded as skipped, with the reason, and the others still run.
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
    results = []
    for name in peers:
        try:
            if name == "fnn-scan":
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
        except PeerUnavailable as e:
            r = PeerResult(name, "skipped", str(e))
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
    out["summary"] = summarize(out)
    return out


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
    return {"reference": None if ref_cpu is None else ref_cpu["name"], "ratios": ratios, "goal": goal}


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
    return lines


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
    return "\n".join(lines)


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
    p.add_argument("--json", metavar="PATH", help="write every figure as JSON")
    p.add_argument("--md", metavar="PATH", help="write a Markdown summary")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    peers = None if args.peers is None else _check_peers(args.peers)
    print(f"device: {cli.device_description()}; JAX {jax.__version__}")
    out = run(peers, steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
              threads=args.threads)
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
