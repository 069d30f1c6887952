"""How close fnn's training comes to the machine's matrix-multiply rate, and where fit's time goes.

    python -m benchmarks.limits [--rounds 5] [--steps 4000] [--models mlp,cnn,gru,transformer]
                                [--json PATH] [--md PATH] [--quick]

Part 1, the MNIST-1D MLP (40-100-100-10, ReLU, batch 100, Adam 1e-2): the same
training built up one piece at a time, each piece a compiled loop over the
same steps, so that the difference between neighbours is what a piece costs:

    matmuls      the step's matrix multiplies alone (forward, dW, dX) and W − lr·dW
    grad+sgd     fnn's hand-written value_and_grad and p − lr·g; batches gathered beforehand
    grad+adam    the same with fnn's Adam (benchmarks.peers' fnn-scan)
    +shuffle     each epoch's permutation drawn and its batches gathered in the program, as fit does
    +metrics     fnn's train step (make_step): each step's loss and accuracy folded into the epoch's means
    fit-program  fit's compiled chunk alone: traced step counts, the non-finite check, epoch metrics
    fit          fnn.fit end to end: its chunks, one host sync each, the history

Part 2, each MNIST-1D table model (fnn.models.mnist1d_model) trained by
fnn.fit: its FLOPs per step as XLA counts them in the compiled step, and the
rate that makes against the matmul rate.

Every program runs once per round beside an (n, n) float32 matmul, in a
shuffled order (benchmarks.rounds); fractions are taken against the matmul
rate of the same round, and quiet rounds (other processes < 0.1 cores) are
reported apart from loaded ones.
"""
import argparse
import json
import math
import statistics
import sys
import time

import jax
import jax.numpy as jnp

import fnn
from fnn import cli, models
import fnn.train.fit  # noqa: F401 (the module, not fnn.train.fit the function)
fit_module = sys.modules["fnn.train.fit"]
from fnn.train.epoch import MeanRecord, epoch_batches, epoch_indices, epoch_keys, run_epoch
from fnn.train.step import StepConfig, init_state, make_step

from benchmarks.common import device_info, reference_matmul
from benchmarks.peer_runners import BATCH_SIZE, LEARNING_RATE, SIZES, load_mnist1d
from benchmarks.rounds import QUIET_CORES, run_rounds

__all__ = ["PIECES", "MODELS", "MATMUL_N", "GOAL", "run", "summarize", "to_markdown", "main"]

PIECES = ("matmuls", "grad+sgd", "grad+adam", "+shuffle", "+metrics", "fit-program", "fit")
MODELS = ("mlp", "cnn", "gru", "transformer")
MATMUL_N = 1024               # the reference: a (1024, 1024) @ (1024, 1024) float32 matmul
GOAL = 0.60                   # fnn.fit on the MNIST-1D MLP at ≥ 60% of the matmul rate
# The step's matrix-multiply FLOPs, counted as benchmarks.grads.flops_per_step counts them: 6·B·in·out a
# layer (Z = XW, dW = XᵀdZ, dX = dZWᵀ), less the first layer's dX, which nothing needs.
MLP_FLOPS = sum(6 * BATCH_SIZE * i * o for i, o in zip(SIZES[:-1], SIZES[1:])) - 2 * BATCH_SIZE * SIZES[0] * SIZES[1]
LOSS = "softmax_cross_entropy"


# ------------------------------------------------------------------ part 1: the pieces

def _problem(ds, steps, model_name="mlp", key=jax.random.key(0)):
    """(model, params, key, x, y, epochs, per_epoch) for `steps` steps on the MNIST-1D training set."""
    model = fnn.mlp(list(SIZES), "relu") if model_name == "mlp" else models.mnist1d_model(model_name)
    init_key, train_key = jax.random.split(key)
    _, params = model.init(init_key, (-1, SIZES[0]))
    x, y = jnp.asarray(ds.x_train), jnp.asarray(ds.y_train)
    per_epoch = x.shape[0] // BATCH_SIZE
    return model, params, train_key, x, y, math.ceil(steps / per_epoch), per_epoch


def _gathered(x, y, key, epochs, steps):
    """Every step's minibatch gathered beforehand: (steps, batch, ...) each."""
    _, perm_keys = epoch_keys(key, epochs)
    idx = epoch_indices(perm_keys, x.shape[0], BATCH_SIZE).reshape(-1, BATCH_SIZE)[:steps]
    return x[idx], y[idx]


def _matmul_loop(ws, xs):
    """The step's matrix multiplies alone: Z = XW per layer, dW = XᵀdZ, dX = dZWᵀ but for the first."""
    def body(ws, x):
        acts, h = [], x
        for w in ws:
            acts.append(h)
            h = h @ w
        d, new = h, [None] * len(ws)                     # the output stands in for dL/dZ
        for i in reversed(range(len(ws))):
            new[i] = ws[i] - 1e-6 * (acts[i].T @ d)
            if i:
                d = d @ ws[i].T
        return new, None
    return jax.lax.scan(body, ws, xs)[0]


def _piece(name, ds, steps):
    """(program, args, steps it trains) of one piece; program(*args) blocks to nothing but its result."""
    model, params, key, x, y, epochs, per_epoch = _problem(ds, steps)
    opt = fnn.optim.adam(LEARNING_RATE)
    value_and_grad = fnn.grads.make_value_and_grad(model, LOSS, "manual")

    def adam_step(carry, batch):
        p, s = carry
        _, g = value_and_grad(p, *batch)
        u, s = opt.update(g, s, p)
        return (fnn.optim.apply_updates(p, u), s), None

    if name == "matmuls":
        ws = [layer["W"] for layer in params if isinstance(layer, dict) and "W" in layer]
        return jax.jit(_matmul_loop), (ws, _gathered(x, y, key, epochs, steps)[0]), steps
    if name == "grad+sgd":
        def sgd(p, xs, ys):
            def body(p, batch):
                _, g = value_and_grad(p, *batch)
                return jax.tree.map(lambda a, b: a - LEARNING_RATE * b, p, g), None
            return jax.lax.scan(body, p, (xs, ys))[0]
        return jax.jit(sgd), (params, *_gathered(x, y, key, epochs, steps)), steps
    if name == "grad+adam":
        def adam(p, xs, ys):
            return jax.lax.scan(adam_step, (p, opt.init(p)), (xs, ys))[0]
        return jax.jit(adam), (params, *_gathered(x, y, key, epochs, steps)), steps
    steps = epochs * per_epoch                          # whole epochs from here on
    if name == "+shuffle":
        def shuffled(p, x, y, key):
            _, perm_keys = epoch_keys(key, epochs)
            def epoch(carry, k):
                idx = epoch_indices(k[None], x.shape[0], BATCH_SIZE)[0]
                return jax.lax.scan(adam_step, carry, (x[idx], y[idx]))[0], None
            return jax.lax.scan(epoch, (p, opt.init(p)), perm_keys)[0]
        return jax.jit(shuffled), (params, x, y, key), steps
    if name == "+metrics":
        step = make_step(model, LOSS, opt, StepConfig(), checked=False)
        def with_metrics(state, x, y):
            keys, perm_keys = epoch_keys(state.key, epochs)
            def epoch(state, k):
                key, perm_key = k
                idx = epoch_indices(perm_key[None], x.shape[0], BATCH_SIZE)[0]
                state, record = run_epoch(step, state._replace(key=key), epoch_batches(x, y, idx, True),
                                          per_epoch, MeanRecord.empty())
                return state, record.means()
            return jax.lax.scan(epoch, state, (keys, perm_keys))
        return jax.jit(with_metrics), (init_state(params, opt, key), x, y), steps
    if name == "fit-program":
        chunk = fit_module.ChunkConfig(BATCH_SIZE, epochs, None, True, StepConfig.checked(StepConfig()))
        early = fit_module.EarlyStop(jnp.full((), jnp.inf, jnp.float32), (), jnp.zeros((), jnp.int32),
                                     jnp.zeros((), bool), ())
        program = jax.jit(lambda state, early, x, y, left: fit_module._chunk(
            model, fnn.get_loss(LOSS), opt, chunk, state, early, x, y, None, None, left))
        return program, (init_state(params, opt, key), early, x, y, jnp.asarray(steps, jnp.int32)), steps
    if name == "fit":
        def run_fit(params, x, y, key):
            return fnn.fit(model, LOSS, opt, params, x, y, key=key, steps=steps, batch_size=BATCH_SIZE,
                           progress=False).params
        return run_fit, (params, x, y, key), steps
    raise ValueError(f"unknown piece {name!r}")


def _timed(program, args, steps):
    """A call returning steps/s of one run of program(*args) (after one warm-up run, compilation included)."""
    jax.block_until_ready(program(*args))

    def call():
        t0 = time.perf_counter()
        jax.block_until_ready(program(*args))
        return steps / (time.perf_counter() - t0)
    return call


# ------------------------------------------------------------------ part 2: the families

def _xla_flops(model, params, x):
    """XLA's FLOP count of one compiled train step (fnn's step, unchecked) on a batch of x."""
    opt = fnn.optim.adam(LEARNING_RATE)
    step = make_step(model, LOSS, opt, StepConfig(), checked=False)
    state = init_state(params, opt, jax.random.key(0), fnn.init_state(model, (-1, SIZES[0])))
    batch = x[:BATCH_SIZE], jnp.zeros((BATCH_SIZE,), jnp.int32)
    cost = jax.jit(step).lower(state, *batch).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost["flops"]) if cost and "flops" in cost else None


def _family(name, ds, steps):
    model, params, key, x, y, epochs, per_epoch = _problem(ds, steps, name)
    steps = epochs * per_epoch
    opt = fnn.optim.adam(LEARNING_RATE)

    def run_fit():
        return fnn.fit(model, LOSS, opt, params, x, y, key=key, steps=steps, batch_size=BATCH_SIZE,
                       progress=False).params
    return (lambda: run_fit()), steps, _xla_flops(model, params, x)


# ------------------------------------------------------------------ a whole run

def run(*, rounds=5, steps=4000, model_names=MODELS, quick=False, log=print, seed=0):
    """Every piece and model once per round beside the matmul; the JSON-ready record of the run."""
    ds = load_mnist1d()
    if quick:
        ds = ds._replace(x_train=ds.x_train[:400], y_train=ds.y_train[:400])
    matmul_n = 64 if quick else MATMUL_N
    calls, info = {}, {}
    for name in PIECES:
        program, args, n = _piece(name, ds, steps)
        calls[f"mlp/{name}"] = _timed(program, args, n)
        info[f"mlp/{name}"] = {"part": "pieces", "steps": n, "flops_per_step": MLP_FLOPS}
    for name in model_names:
        program, n, flops = _family(name, ds, steps)
        calls[f"fit/{name}"] = _timed(lambda p=program: p(), (), n)
        info[f"fit/{name}"] = {"part": "families", "steps": n, "flops_per_step": flops}
    matmul, matmul_flops = reference_matmul("float32", matmul_n)
    jax.block_until_ready(matmul())
    matmul_reps = max(1, int(0.3 / max(1e-9, _seconds(matmul))))

    def matmul_rate():
        t0 = time.perf_counter()
        for _ in range(matmul_reps):
            out = matmul()
        jax.block_until_ready(out)
        return matmul_flops * matmul_reps / (time.perf_counter() - t0)
    calls["matmul"] = matmul_rate
    log(f"{len(calls)} programs compiled; {rounds} rounds")
    out = run_rounds(calls, rounds, seed=seed, log=log)          # "steps_per_second": the matmul's in FLOP/s
    return {"device": device_info(), "settings": {"sizes": list(SIZES), "batch_size": BATCH_SIZE, "lr": LEARNING_RATE,
                                                   "steps": steps, "rounds": rounds, "matmul_n": matmul_n,
                                                   "quick": quick, "quiet_cores": QUIET_CORES, "goal": GOAL},
            "programs": info, "rounds": out}


def _seconds(call):
    t0 = time.perf_counter()
    jax.block_until_ready(call())
    return time.perf_counter() - t0


def _median(values):
    return statistics.median(values) if values else None


def summarize(record):
    """Per program: median steps/s and matmul fraction over all rounds and over quiet rounds."""
    rounds = record["rounds"]
    matmul = {e["round"]: e for e in rounds["matmul"]}
    quiet = lambda e: e["other_cores"] is not None and e["other_cores"] < QUIET_CORES  # noqa: E731
    rows = {}
    for name, meta in record["programs"].items():
        entries = rounds[name]
        fractions = [(e, e["steps_per_second"] * meta["flops_per_step"] / matmul[e["round"]]["steps_per_second"]) for e in entries
                     if meta["flops_per_step"] and e["round"] in matmul]
        rows[name] = {
            "steps_per_second": {"all": _median([e["steps_per_second"] for e in entries]),
                                 "quiet": _median([e["steps_per_second"] for e in entries if quiet(e)])},
            "fraction": {"all": _median([f for _, f in fractions]),
                         "quiet": _median([f for e, f in fractions if quiet(e) and quiet(matmul[e["round"]])]),
                         "min": min((f for _, f in fractions), default=None),
                         "max": max((f for _, f in fractions), default=None)},
            "quiet_rounds": sum(quiet(e) for e in entries), **meta}
    rate = [e["steps_per_second"] for e in rounds["matmul"]]
    fit = rows["mlp/fit"]["fraction"]
    best = fit["quiet"] if fit["quiet"] is not None else fit["all"]
    return {"programs": rows, "matmul": {"flops_per_second": _median(rate), "min": min(rate), "max": max(rate)},
            "goal": {"fraction": GOAL, "fit_fraction": best, "met": best is not None and best >= GOAL}}


def _pct(v):
    return "n/a" if v is None else f"{100 * v:.0f}%"


def to_markdown(record, summary, command=None):
    """The run's two tables and its goal line, every figure read from the record."""
    d, s = record["device"], record["settings"]
    rows = summary["programs"]
    lines = [f"Measured {d['date'][:10]} on {d['cpu_model'] or d['description']} ({d['cpu_count']} cores), "
             f"jax {d['jax_version']}; {s['rounds']} rounds of {s['steps']} steps; matmul "
             f"({s['matmul_n']}, {s['matmul_n']}) float32 {summary['matmul']['flops_per_second'] / 1e9:,.1f} GFLOP/s "
             f"(median; {summary['matmul']['min'] / 1e9:,.1f}–{summary['matmul']['max'] / 1e9:,.1f}).", ""]
    if command:
        lines += [f"`{command}`", ""]
    lines += ["| MNIST-1D MLP, built up | steps/s (median) | quiet | cost of the piece | matmul fraction | quiet |",
              "|---|---:|---:|---:|---:|---:|"]
    previous = None
    for name in PIECES:
        r = rows[f"mlp/{name}"]
        sps = r["steps_per_second"]["all"]
        cost = "" if previous is None else f"{1e6 * (1 / sps - 1 / previous):+.1f} µs/step"
        previous = sps
        quiet_sps = r["steps_per_second"]["quiet"]
        lines.append(f"| {name} | {sps:,.0f} | {'n/a' if quiet_sps is None else f'{quiet_sps:,.0f}'} | {cost} | "
                     f"{_pct(r['fraction']['all'])} | {_pct(r['fraction']['quiet'])} |")
    lines += ["", f"MLP FLOPs per step: {MLP_FLOPS / 1e6:.2f} M (matrix multiplies only, as benchmarks.grads "
                  "counts them).", "",
              "| fnn.fit on | XLA FLOPs/step | steps/s (median) | GFLOP/s | matmul fraction | range |",
              "|---|---:|---:|---:|---:|---:|"]
    for name in s.get("models", MODELS):
        r = rows.get(f"fit/{name}")
        if r is None:
            continue
        f, sps = r["flops_per_step"], r["steps_per_second"]["all"]
        lines.append(f"| {name} | {'n/a' if f is None else f'{f / 1e6:.2f} M'} | {sps:,.0f} | "
                     f"{'n/a' if f is None else f'{f * sps / 1e9:,.1f}'} | {_pct(r['fraction']['all'])} | "
                     f"{_pct(r['fraction']['min'])}–{_pct(r['fraction']['max'])} |")
    g = summary["goal"]
    lines += ["", f"Goal: fnn.fit on the MNIST-1D MLP at ≥ {_pct(g['fraction'])} of the matmul rate: "
                  f"{_pct(g['fit_fraction'])}, {'met' if g['met'] else 'not met'}."]
    return "\n".join(lines) + "\n"


def _models(text):
    names = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [n for n in names if n not in MODELS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(MODELS)}, got {text!r}")
    return names


def parse_args(argv):
    p = cli.ArgumentParser(prog="python -m benchmarks.limits", description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=cli.positive_int, default=5, help="interleaved rounds (default 5)")
    p.add_argument("--steps", type=cli.positive_int, default=4000, help="steps per timed run (default 4000)")
    p.add_argument("--models", type=_models, default=list(MODELS), help=f"part 2's models (default {','.join(MODELS)})")
    p.add_argument("--json", metavar="PATH", help="write every figure as JSON")
    p.add_argument("--md", metavar="PATH", help="write the tables as Markdown")
    p.add_argument("--quick", action="store_true", help="tiny data and matmul, a few steps: for the tests")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    record = run(rounds=args.rounds, steps=args.steps, model_names=tuple(args.models), quick=args.quick, log=log)
    record["settings"]["models"] = list(args.models)
    summary = summarize(record)
    record["summary"] = summary
    command = "python -m benchmarks.limits " + " ".join(argv if argv is not None else sys.argv[1:])
    md = to_markdown(record, summary, command.strip())
    print(md)
    for path, text in ((args.json, lambda: json.dumps(record, indent=1)), (args.md, lambda: md)):
        if path:
            cli.write_file(path, text())
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
