"""Hand-written backprop against jax.grad over a grid of MLPs: agreement, time, memory, FLOP/s.

`--family conv` runs the convolutional grid instead (benchmarks.convs), `--family sequence`
the recurrent and attention grid (benchmarks.sequences); the other options then are theirs.
"""
import argparse
import json
import os
import statistics
import sys
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import fnn
from fnn import cli
from fnn.errors import InputError, InputTypeError
from fnn.check import relative_error
from fnn.grads import METHODS
from fnn.train import StepConfig, init_state, make_step
from fnn.validate import check_choice, check_positive_int

from benchmarks.common import (DTYPES, choose_repeats, compile_timed, device_info, dtype_context,
                               dtype_supported, format_bytes, format_seconds, hlo_summary,
                               matmul_rate, memory_figures, ratio, reference_matmul, summarize_times,
                               time_interleaved)

# ------------------------------------------------------------------ settings
# An MLP of depth d is  width -> width (x d hidden layers) -> width: d + 1 square
# Dense layers, d hidden activations, the loss on the last layer's output.
BASE = dict(depth=2, width=256, batch=256, activation="relu", loss="softmax_cross_entropy",
            dtype="float32")
QUICK_BASE = dict(BASE, width=128, batch=128)
DEPTHS = (1, 2, 3, 4)
WIDTHS = (32, 64, 128, 256, 512, 1024, 2048)
BATCHES = (1, 4, 16, 64, 256, 1024, 4096)
CORE = dict(depth=(1, 4), width=(32, 256, 2048), batch=(1, 64, 4096))      # depth x width x batch
ACTIVATIONS = ("relu", "leaky_relu", "sigmoid", "tanh", "gelu", "gelu_tanh", "swish", "softplus",
               "identity")
LOSSES = ("softmax_cross_entropy", "binary_cross_entropy", "mse", "half_squared_error", "l1", "huber")
# --quick: no core product, each axis at its ends, one activation of each family
# (piecewise linear: relu; saturating: tanh; smooth: gelu, softplus), two more losses.
QUICK_CORE = {}
QUICK_DEPTHS, QUICK_WIDTHS, QUICK_BATCHES = (1, 4), (32, 1024), (1, 1024)
QUICK_ACTIVATIONS = ("relu", "tanh", "gelu", "softplus")
QUICK_LOSSES = ("softmax_cross_entropy", "binary_cross_entropy", "mse")
OPTIMIZER, LEARNING_RATE = "adam", 1e-3
FULL_TIMING = dict(seconds=4.0, min_repeats=5, max_repeats=500, warmup_seconds=0.2)
QUICK_TIMING = dict(seconds=0.15, min_repeats=3, max_repeats=100, warmup_seconds=0.02)
MATMUL_N = {"cpu": 2048, "default": 8192}            # the reference jnp.dot is (n, n) @ (n, n)
QUICK_MATMUL_N = {"cpu": 1024, "default": 4096}
LARGEST_SHARE = 0.25     # "largest MLPs": FLOPs per step within 4x of the grid's largest
GOALS = dict(time_median=1.00, time_worst=1.05, memory=1.00, matmul_fraction=0.80)   # for the full grid
GRID_KINDS = ("full", "quick", "custom")
PROGRAMS = ("grad", "step")
SHORT_LOSS = {"softmax_cross_entropy": "softmax_ce", "binary_cross_entropy": "bce",
              "half_squared_error": "half_se"}
SHORT_DTYPE = {"float32": "f32", "bfloat16": "bf16", "float64": "f64"}


class Config(NamedTuple):
    """One benchmarked problem: an MLP, its batch, loss and dtype."""
    depth: int
    width: int
    batch: int
    activation: str
    loss: str
    dtype: str

    @property
    def name(self):
        return (f"d{self.depth}-w{self.width}-b{self.batch}-{self.activation}-"
                f"{SHORT_LOSS.get(self.loss, self.loss)}-{SHORT_DTYPE.get(self.dtype, self.dtype)}")

    @property
    def sizes(self):
        return [self.width] * (self.depth + 2)


def flops_per_step(config):
    """Matrix-multiply FLOPs of one train step: 6·B·in·out per dense layer.

    2·B·in·out each for the forward Z = XW, dW = XᵀdZ and dX = dZWᵀ, less the
    first layer's dX (2·B·in·out), which neither program computes: nothing
    needs the gradient of the input, and XLA removes it.
    """
    b, sizes = config.batch, config.sizes
    total = sum(6 * b * i * o for i, o in zip(sizes[:-1], sizes[1:]))
    return total - 2 * b * sizes[0] * sizes[1]


# ------------------------------------------------------------------ grids

def _check_axis(name, values, allowed=None):
    values = tuple(values)
    if not values:
        raise InputError(f"{name}: expected at least one value, got none")
    for v in values:
        if allowed is None:
            check_positive_int(f"{name}: each value", v)
        else:
            check_choice(f"{name} value", v, allowed)
    return values


def product_grid(depths, widths, batches, activations, losses, dtypes):
    """Every combination of the given axes (each value once), as (Config, ("custom",)) pairs."""
    unique = lambda values: tuple(dict.fromkeys(values))
    depths, widths, batches = (unique(_check_axis(n, v)) for n, v in
                               (("depths", depths), ("widths", widths), ("batches", batches)))
    activations = unique(_check_axis("activations", activations, tuple(fnn.ACTIVATIONS)))
    losses = unique(_check_axis("losses", losses, tuple(fnn.LOSSES)))
    dtypes = unique(_check_axis("dtypes", dtypes, DTYPES))
    return [(Config(d, w, b, a, l, t), ("custom",)) for t in dtypes for l in losses
            for a in activations for d in depths for w in widths for b in batches]


def default_grid(quick=False, dtypes=("float32",)):
    """The benchmark grid as [(Config, groups)], each configuration once.

    Not the product of every axis: a depth x width x batch core ("core"), then
    one axis at a time around a base configuration ("depth", "width", "batch",
    "activation", "loss", "dtype"). groups names every part a configuration
    belongs to. --quick uses a smaller core, a smaller base and shorter sweeps.
    """
    dtypes = _check_axis("dtypes", dtypes, DTYPES)
    base, core = (QUICK_BASE, QUICK_CORE) if quick else (BASE, CORE)
    sweeps = {
        "depth": ("depth", QUICK_DEPTHS if quick else DEPTHS),
        "width": ("width", QUICK_WIDTHS if quick else WIDTHS),
        "batch": ("batch", QUICK_BATCHES if quick else BATCHES),
        "activation": ("activation", QUICK_ACTIVATIONS if quick else ACTIVATIONS),
        "loss": ("loss", QUICK_LOSSES if quick else LOSSES),
        "dtype": ("dtype", dtypes),
    }
    grid = {}

    def add(config, group):
        grid.setdefault(config, [])
        if group not in grid[config]:
            grid[config].append(group)

    for d in core.get("depth", ()):
        for w in core["width"]:
            for b in core["batch"]:
                add(Config(**dict(base, depth=d, width=w, batch=b)), "core")
    for group, (field, values) in sweeps.items():
        for v in values:
            add(Config(**dict(base, **{field: v})), group)
    return [(c, tuple(g)) for c, g in grid.items()]


# ------------------------------------------------------------------ one configuration

def _targets(config, key, out_shape):
    dtype = jnp.dtype(config.dtype)
    if config.loss in ("softmax_cross_entropy", "cross_entropy"):
        return jax.random.randint(key, out_shape[:-1], 0, out_shape[-1], jnp.int32)
    if config.loss in ("binary_cross_entropy", "bce"):
        return jax.random.bernoulli(key, 0.5, out_shape).astype(dtype)
    return jax.random.normal(key, out_shape, dtype)


def build_problem(config, key):
    """(model, params, x, y) for a configuration, in its dtype (call inside dtype_context)."""
    k_init, k_x, k_y = jax.random.split(key, 3)
    model = fnn.mlp(config.sizes, activation=config.activation)
    dtype = jnp.dtype(config.dtype)
    _, params = model.init(k_init, (-1, config.width), dtype=dtype)
    x = jax.random.normal(k_x, (config.batch, config.width), dtype)
    y = _targets(config, k_y, (config.batch, config.sizes[-1]))
    return model, params, x, y


def _leaf_errors(manual, autodiff, reference):
    """Per-leaf relative errors ‖a − b‖∞ / max(‖a‖∞, ‖b‖∞) of the three gradients."""
    leaves = []
    for (path, m), a, r in zip(jax.tree_util.tree_leaves_with_path(manual),
                               jax.tree.leaves(autodiff), jax.tree.leaves(reference)):
        m, a, r = (np.asarray(v).astype(np.float64) for v in (m, a, r))
        leaves.append({"path": jax.tree_util.keystr(path), "shape": list(m.shape),
                       "manual_vs_autodiff": relative_error(m, a),
                       "manual_vs_reference": relative_error(m, r),
                       "autodiff_vs_reference": relative_error(a, r)})
    worst = {k: max(leaf[k] for leaf in leaves) for k in
             ("manual_vs_autodiff", "manual_vs_reference", "autodiff_vs_reference")}
    return dict(worst, leaves=leaves)


def _reference_grads(model, loss, params, x, y, state=None):
    """jax.grad of the same forward and loss in float64, on the same params, batch and model state."""
    with jax.enable_x64(True):
        to64 = lambda a: jnp.asarray(np.asarray(a).astype(np.float64))
        p64 = jax.tree.map(to64, params)
        x64 = to64(x)
        y64 = y if jnp.issubdtype(y.dtype, jnp.integer) else to64(y)
        s64 = None if state is None else jax.tree.map(to64, state)
        fn = jax.jit(fnn.make_value_and_grad(model, loss, "autodiff"))
        return jax.device_get(fn(p64, x64, y64, state=s64)[1])


class _Stepper:
    """Calls a compiled train step on its own state, which the step donates and replaces."""

    def __init__(self, compiled, state, x, y):
        self.compiled, self.state, self.x, self.y = compiled, state, x, y

    def __call__(self):
        self.state, metrics = self.compiled(self.state, self.x, self.y)
        return self.state, metrics


def _device_memory():
    try:
        stats = jax.devices()[0].memory_stats()
    except Exception:  # noqa: BLE001
        return None
    if not stats:
        return None
    return {k: int(stats[k]) for k in ("bytes_in_use", "peak_bytes_in_use") if k in stats}


def run_config(config, *, key, timing, optimizer=OPTIMIZER, learning_rate=LEARNING_RATE,
               dump_hlo=None, matmul_n=None):
    """Every figure of one configuration, manual and autodiff measured side by side.

    Compiles the jitted gradient (fnn.make_value_and_grad) and the jitted train
    step (fnn.train.make_step: forward, loss, backward, optimizer update; the
    state donated) for both methods; compares the gradients with each other and
    with a float64 jax.grad reference; reads XLA's memory analysis; times the
    four programs in interleaved rounds after warm-up. With matmul_n, every
    round also times the reference (n, n) matmul: the rate the train step's
    FLOP/s are compared with, measured under the same conditions.
    """
    loss = fnn.get_loss(config.loss)
    opt = fnn.optim.get_optimizer(optimizer, learning_rate=learning_rate)
    with dtype_context(config.dtype):
        model, params, x, y = build_problem(config, key)
        compiled, compile_seconds, states = {}, {}, {}
        for m in METHODS:
            compiled["grad", m], compile_seconds["grad", m] = compile_timed(
                fnn.make_value_and_grad(model, loss, m), params, x, y)
            # Each step owns (and donates) its state: fresh copies, none shared with params.
            states[m] = init_state(jax.tree.map(jnp.copy, params), opt,
                                   jax.random.fold_in(key, METHODS.index(m)))
            compiled["step", m], compile_seconds["step", m] = compile_timed(
                make_step(model, loss, opt, StepConfig(method=m)), states[m], x, y, donate_argnums=0)
        if dump_hlo:
            _dump(dump_hlo, config, compiled)
        calls = {(p, m): (lambda c=compiled[p, m]: c(params, x, y)) if p == "grad"
                 else _Stepper(compiled[p, m], states[m], x, y)
                 for p in PROGRAMS for m in METHODS}
        if matmul_n:
            calls["matmul"], matmul_flops = reference_matmul(config.dtype, matmul_n)

        first, repeats = _warm_up(calls, timing)
        grads = {m: jax.device_get(first["grad", m][1]) for m in METHODS}
        cpu = {}
        times = time_interleaved(calls, repeats, cpu_times=cpu)
    reference = (grads["autodiff"] if config.dtype == "float64"
                 else _reference_grads(model, loss, params, x, y))
    record = {"config": config._asdict(), "name": config.name, "sizes": config.sizes,
              "parameters": int(sum(np.size(p) for p in jax.tree.leaves(params))),
              "flops_per_step": flops_per_step(config), "repeats": repeats,
              "agreement": _leaf_errors(grads["manual"], grads["autodiff"], reference),
              "compile_seconds": {}, "times": {}, "cpu_times": {}, "time": {}, "memory": {},
              "hlo": {}}
    _add_program_figures(record, compiled, compile_seconds, times, cpu)
    if matmul_n:
        median = statistics.median(times["matmul"])
        record["matmul_interleaved"] = {"n": matmul_n, "times": times["matmul"],
                                        "flops_per_second": matmul_flops / median}
    record["device_memory"] = _device_memory()
    return record


def _warm_up(calls, timing):
    """({call: its first result}, timed rounds): run every call once, then whole rounds.

    Rounds continue until warmup_seconds have passed; the last round's time
    sets the number of timed rounds. A first call that fills the budget is enough.
    """
    first, warm = {}, {}
    for k, call in calls.items():
        t0 = time.perf_counter()
        first[k] = jax.block_until_ready(call())
        warm[k] = time.perf_counter() - t0
    warmed = sum(warm.values())
    while warmed < timing["seconds"]:
        warm = {k: v[0] for k, v in time_interleaved(calls, 1).items()}
        warmed += sum(warm.values())
        if warmed >= timing["warmup_seconds"]:
            break
    return first, choose_repeats(sum(warm.values()), timing["seconds"], timing["min_repeats"],
                                 timing["max_repeats"])


def _add_program_figures(record, compiled, compile_seconds, times, cpu):
    """Times, ratios, memory and HLO counts of the gradient and train-step programs, into record."""
    for p in PROGRAMS:
        t = {m: times[p, m] for m in METHODS}
        s = {m: summarize_times(t[m]) for m in METHODS}
        paired = summarize_times([a / b for a, b in zip(t["manual"], t["autodiff"])])
        mem = {m: memory_figures(compiled[p, m]) for m in METHODS}
        record["times"][p] = t
        record["cpu_times"][p] = {m: cpu[p, m] for m in METHODS}
        record["compile_seconds"][p] = {m: compile_seconds[p, m] for m in METHODS}
        cpu_median = {m: statistics.median(cpu[p, m]) for m in METHODS}
        record["time"][p] = dict(s, ratio=ratio(s["manual"]["median"], s["autodiff"]["median"]),
                                 paired_ratio={k: paired[k] for k in ("median", "q1", "q3")},
                                 cpu_ratio=ratio(cpu_median["manual"], cpu_median["autodiff"]))
        peak = {m: mem[m]["peak_bytes"] if mem[m] else None for m in METHODS}
        record["memory"][p] = dict(mem, ratio=ratio(peak["manual"], peak["autodiff"]),
                                   temp_ratio=ratio(*(mem[m]["temp_size_in_bytes"] if mem[m] else None
                                                      for m in METHODS)))
        record["hlo"][p] = {m: hlo_summary(compiled[p, m]) for m in METHODS}
    record["flops_per_second"] = {m: record["flops_per_step"] / record["time"]["step"][m]["median"]
                                  for m in METHODS}


def _dump(folder, config, compiled):
    """Write each program's optimized HLO as text, to compare manual with autodiff."""
    os.makedirs(folder, exist_ok=True)
    for (p, m), c in compiled.items():
        with open(os.path.join(folder, f"{config.name}.{p}.{m}.hlo.txt"), "w") as f:
            f.write(c.as_text())


# ------------------------------------------------------------------ a whole run

def matmul_size(platform, quick):
    table = QUICK_MATMUL_N if quick else MATMUL_N
    return table.get(platform, table["default"])


def run(grid, *, quick=False, timing=None, optimizer=OPTIMIZER, learning_rate=LEARNING_RATE,
        matmul_n=None, seed=0, dump_hlo=None, log=print, grid_kind=None):
    """Benchmark every (Config, groups) of `grid`; returns the results as a JSON-ready dict.

    log(line) receives the table as it is measured (None for silence). grid_kind
    ("full", "quick" or "custom"; by default "quick" or "full" after `quick`)
    is recorded with the results: the goals are stated for the full grid.
    """
    grid_kind = grid_kind or ("quick" if quick else "full")
    if grid_kind not in GRID_KINDS:
        raise InputError(f"grid_kind {grid_kind!r}: expected one of {', '.join(GRID_KINDS)}")
    log = log or (lambda *a, **k: None)
    timing = dict(QUICK_TIMING if quick else FULL_TIMING, **(timing or {}))
    info = device_info()
    started = time.perf_counter()
    n = matmul_n or matmul_size(info["platform"], quick)
    dtypes = sorted({c.dtype for c, _ in grid}, key=DTYPES.index)
    matmul = {}

    def measure_matmul(when):
        for dtype in dtypes:
            m = matmul_rate(dtype, n, budget_seconds=min(2.0, 4 * timing["seconds"]))
            matmul.setdefault(dtype, {"runs": []})["runs"].append(dict(m, when=when))
            log(f"matmul rate {dtype} ({when}): {m['flops_per_second'] / 1e9:,.1f} GFLOP/s "
                f"({n}x{n} @ {n}x{n}, median of {m['time']['n']})")

    measure_matmul("start")
    largest = set(largest_configs([c for c, _ in grid]))
    log(table_header())
    records = []
    key = jax.random.key(seed)
    for i, (config, groups) in enumerate(grid):
        record = run_config(config, key=jax.random.fold_in(key, i), timing=timing,
                            optimizer=optimizer, learning_rate=learning_rate, dump_hlo=dump_hlo,
                            matmul_n=n if config in largest else None)
        record["groups"] = list(groups)
        records.append(record)
        log(table_row(record, record.get("matmul_interleaved", matmul[config.dtype]["runs"][0])
                      ["flops_per_second"]))
    # The rate again at the end. The largest MLPs are compared with the matmul timed in their
    # own rounds; the others with the higher of the start and end rates (the conservative
    # choice when the machine's load changed during the run).
    measure_matmul("end")
    for dtype, m in matmul.items():
        m["flops_per_second"] = max(r["flops_per_second"] for r in m["runs"])
    for r in records:
        rate = r.get("matmul_interleaved", matmul[r["config"]["dtype"]])["flops_per_second"]
        r["matmul_fraction"] = {m: r["flops_per_second"][m] / rate for m in METHODS}
    results = {"benchmark": "fnn manual backprop vs jax.grad", "device": info,
               "settings": {"quick": quick, "grid": grid_kind, "timing": timing, "optimizer": optimizer,
                            "learning_rate": learning_rate, "seed": seed, "matmul_n": n,
                            "goals": GOALS, "largest_share": LARGEST_SHARE,
                            "model": "width -> width x depth -> width MLP, all layers square"},
               "matmul": matmul, "records": records,
               "seconds": time.perf_counter() - started}
    results["summary"] = summarize(results)
    return results


# ------------------------------------------------------------------ summary and goals

def _median_worst(pairs):
    pairs = [(v, n) for v, n in pairs if v is not None]
    if not pairs:
        return None
    worst = max(pairs)
    return {"median": statistics.median(v for v, _ in pairs), "worst": worst[0],
            "worst_config": worst[1], "best": min(pairs)[0], "n": len(pairs)}


def largest_configs(configs):
    """The configurations whose FLOPs per step are within LARGEST_SHARE of their dtype's largest."""
    top = {}
    for c in configs:
        top[c.dtype] = max(top.get(c.dtype, 0), flops_per_step(c))
    return [c for c in configs if flops_per_step(c) >= LARGEST_SHARE * top[c.dtype]]


def largest_records(records, dtype="float32"):
    """The records of `dtype` whose FLOPs per step are within LARGEST_SHARE of the largest."""
    recs = [r for r in records if r["config"]["dtype"] == dtype]
    if not recs:
        return []
    top = max(r["flops_per_step"] for r in recs)
    return [r for r in recs if r["flops_per_step"] >= LARGEST_SHARE * top]


def summarize(results):
    """Median and worst ratios over the grid, the goals and where the run stands against each."""
    records = results["records"]
    s = {}
    for p in PROGRAMS:
        s[f"{p}_time_ratio"] = _median_worst((r["time"][p]["ratio"], r["name"]) for r in records)
        s[f"{p}_memory_ratio"] = _median_worst((r["memory"][p]["ratio"], r["name"]) for r in records)
        s[f"{p}_cpu_time_ratio"] = _median_worst((r["time"][p]["cpu_ratio"], r["name"]) for r in records)
    s["agreement"] = {}
    for dtype in DTYPES:
        recs = [r for r in records if r["config"]["dtype"] == dtype]
        if recs:
            s["agreement"][dtype] = {k: max(r["agreement"][k] for r in recs) for k in
                                     ("manual_vs_autodiff", "manual_vs_reference", "autodiff_vs_reference")}
    dtype = "float32" if any(r["config"]["dtype"] == "float32" for r in records) else (
        records[0]["config"]["dtype"] if records else "float32")
    largest = largest_records(records, dtype)
    s["largest"] = {"dtype": dtype, "configs": [r["name"] for r in largest],
                    "matmul_fraction": {m: min((r["matmul_fraction"][m] for r in largest), default=None)
                                        for m in METHODS},
                    "flops_per_second": {m: max((r["flops_per_second"][m] for r in largest), default=None)
                                         for m in METHODS}}
    s["goals"] = goal_rows(s)
    return s


def _status(ok):
    return "n/a" if ok is None else ("met" if ok else "not met")


def _at_most(value, goal):
    """value ≤ goal, compared at three decimals (a few bytes of alignment are not a regression)."""
    return round(value, 3) <= goal


def goal_rows(s):
    """[(goal, measured, status)] for the issue's four gradient goals."""
    rows = []
    st = s.get("step_time_ratio")
    rows.append(("train-step time manual/autodiff ≤ %.2f, median configuration" % GOALS["time_median"],
                 "n/a" if st is None else f"{st['median']:.3f}",
                 _status(None if st is None else _at_most(st["median"], GOALS["time_median"]))))
    rows.append(("train-step time manual/autodiff ≤ %.2f, worst configuration" % GOALS["time_worst"],
                 "n/a" if st is None else f"{st['worst']:.3f} ({st['worst_config']})",
                 _status(None if st is None else _at_most(st["worst"], GOALS["time_worst"]))))
    for p, what in (("step", "train step"), ("grad", "gradient")):
        mr = s.get(f"{p}_memory_ratio")
        rows.append((f"peak memory manual/autodiff ≤ {GOALS['memory']:.2f} (at three decimals), {what}, "
                     "every configuration",
                     "n/a" if mr is None else
                     f"median {mr['median']:.3f}, worst {mr['worst']:.3f} ({mr['worst_config']})",
                     _status(None if mr is None else _at_most(mr["worst"], GOALS["memory"]))))
    lg = s["largest"]
    frac = lg["matmul_fraction"]["manual"]
    rows.append((f"manual train step ≥ {GOALS['matmul_fraction']:.0%} of the measured matmul rate, "
                 f"largest MLPs ({lg['dtype']})",
                 "n/a" if frac is None else
                 f"{frac:.0%} at worst (autodiff {lg['matmul_fraction']['autodiff']:.0%}) over "
                 f"{len(lg['configs'])} config(s)",
                 _status(None if frac is None else frac >= GOALS["matmul_fraction"])))
    return rows


# ------------------------------------------------------------------ output

_COLUMNS = [("config", 34), ("err m/a", 8), ("err m/64", 8), ("err a/64", 8),
            ("grad m", 9), ("grad a", 9), ("ratio", 6), ("step m", 9), ("step a", 9), ("ratio", 6),
            ("mem m", 10), ("mem a", 10), ("ratio", 6), ("compile m/a", 12), ("matmul%", 7)]


def table_header():
    head = " ".join(f"{name:>{w}}" if i else f"{name:<{w}}" for i, (name, w) in enumerate(_COLUMNS))
    return head + "\n" + "-" * len(head)


def _fmt_ratio(r):
    return "n/a" if r is None else f"{r:.3f}"


def table_row(r, matmul_rate=None):
    """One configuration as a line of the stdout table (matmul% against `matmul_rate` if given)."""
    t, mem, a, c = r["time"], r["memory"], r["agreement"], r["compile_seconds"]
    frac = (r["flops_per_second"]["manual"] / matmul_rate if matmul_rate
            else r.get("matmul_fraction", {}).get("manual"))
    peak = lambda p, m: mem[p][m]["peak_bytes"] if mem[p][m] else None
    cells = [r["name"], f"{a['manual_vs_autodiff']:.1e}", f"{a['manual_vs_reference']:.1e}",
             f"{a['autodiff_vs_reference']:.1e}",
             format_seconds(t["grad"]["manual"]["median"]), format_seconds(t["grad"]["autodiff"]["median"]),
             _fmt_ratio(t["grad"]["ratio"]),
             format_seconds(t["step"]["manual"]["median"]), format_seconds(t["step"]["autodiff"]["median"]),
             _fmt_ratio(t["step"]["ratio"]),
             format_bytes(peak("step", "manual")), format_bytes(peak("step", "autodiff")),
             _fmt_ratio(mem["step"]["ratio"]),
             f"{c['step']['manual']:.2f}/{c['step']['autodiff']:.2f}s",
             "n/a" if frac is None else f"{frac:.0%}"]
    return " ".join(f"{v:>{w}}" if i else f"{v:<{w}}" for i, (v, (_, w)) in enumerate(zip(cells, _COLUMNS)))


def summary_lines(results):
    s = results["summary"]
    lines = []
    for p in PROGRAMS:
        tr, mr = s[f"{p}_time_ratio"], s[f"{p}_memory_ratio"]
        if tr:
            lines.append(f"{p} time manual/autodiff: median {tr['median']:.3f}, best {tr['best']:.3f}, "
                         f"worst {tr['worst']:.3f} ({tr['worst_config']})")
        cr = s[f"{p}_cpu_time_ratio"]
        if cr:
            lines.append(f"{p} CPU time manual/autodiff: median {cr['median']:.3f}, best {cr['best']:.3f}, "
                         f"worst {cr['worst']:.3f} ({cr['worst_config']})")
        if mr:
            lines.append(f"{p} peak memory manual/autodiff: median {mr['median']:.3f}, "
                         f"best {mr['best']:.3f}, worst {mr['worst']:.3f} ({mr['worst_config']})")
    for dtype, a in s["agreement"].items():
        lines.append(f"agreement {dtype}: manual vs jax.grad {a['manual_vs_autodiff']:.1e}; vs float64 "
                     f"reference: manual {a['manual_vs_reference']:.1e}, autodiff "
                     f"{a['autodiff_vs_reference']:.1e} (max over leaves and configurations)")
    lines.append(_goals_heading(results) + ":")
    for goal, measured, status in s["goals"]:
        lines.append(f"  [{status}] {goal}: {measured}")
    lines.append(f"{len(results['records'])} configurations in {results['seconds']:.1f} s")
    return lines


def _grid_kind(results):
    st = results["settings"]
    return st.get("grid") or ("quick" if st["quick"] else "full")


def _goals_heading(results):
    """'goals', or a warning that they are indicative only: they are stated for the full grid."""
    kind = _grid_kind(results)
    if kind == "full":
        return "goals"
    return f"goals (stated for the full grid; on this {kind} grid they are indicative only)"


def _md_table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def to_markdown(results, command=None):
    """The run as Markdown: device, goals, then time, memory, agreement and FLOP/s tables."""
    d, s, st = results["device"], results["summary"], results["settings"]
    recs = results["records"]
    out = ["## Manual backprop vs jax.grad", "",
           f"- device: {d['description']}" + (f", {d['cpu_model']}, {d['cpu_count']} cores"
                                               if d["platform"] == "cpu" else ""),
           f"- date: {d['date']}; JAX {d['jax_version']} (jaxlib {d['jaxlib_version']}), "
           f"Python {d['python_version']}",
           f"- {len(recs)} configurations ({_grid_kind(results)} grid) in "
           f"{results['seconds']:.0f} s; train step optimizer: {st['optimizer']} "
           f"(lr {st['learning_rate']:g}); MLP: {st['model']}"]
    if d.get("load_average"):
        out.append(f"- load average at start: {', '.join(f'{v:.2f}' for v in d['load_average'])}")
    if command:
        out.append(f"- command: `{command}`")
    heading = _goals_heading(results)
    out += ["", "### Goals", ""] + ([] if heading == "goals" else [heading[0].upper() + heading[1:] + ".", ""])
    out += [_md_table(["goal", "measured", "status"], s["goals"]), ""]
    out += ["### Device matmul rate", "",
            "Measured at the start and at the end of the run. The largest MLPs are compared with the "
            "matmul timed in their own interleaved rounds, the others with the higher of these two "
            "rates (the FLOP/s table shows the rate used).",
            "",
            _md_table(["dtype", "when", "n", "median time", "rate"],
                      [(k, r["when"], f"{r['n']}", format_seconds(r["time"]["median"]),
                        f"{r['flops_per_second'] / 1e9:,.1f} GFLOP/s")
                       for k, v in results["matmul"].items() for r in v["runs"]]),
            ""]
    out += ["### Summary", ""] + [f"- {line}" for line in summary_lines(results)[:-1]
                                  if not line.startswith(("goals", "  ["))] + [""]
    rows = []
    for r in recs:
        t, c = r["time"], r["compile_seconds"]
        pr = t["step"]["paired_ratio"]
        rows.append((r["name"], format_seconds(t["grad"]["manual"]["median"]),
                     format_seconds(t["grad"]["autodiff"]["median"]), _fmt_ratio(t["grad"]["ratio"]),
                     format_seconds(t["step"]["manual"]["median"]),
                     format_seconds(t["step"]["autodiff"]["median"]), _fmt_ratio(t["step"]["ratio"]),
                     f"{pr['q1']:.2f}–{pr['q3']:.2f}", _fmt_ratio(t["step"]["cpu_ratio"]), r["repeats"],
                     f"{c['grad']['manual']:.2f} / {c['grad']['autodiff']:.2f}",
                     f"{c['step']['manual']:.2f} / {c['step']['autodiff']:.2f}"))
    out += ["### Time (medians; ratio = manual / autodiff)", "",
            "Step paired q1–q3: quartiles of the per-round ratios manual/autodiff (each round runs "
            "both), a measure of the timing noise. Step CPU ratio: the same ratio in process CPU "
            "time, which leaves out the time other processes held the cores.", "",
            _md_table(["config", "grad manual", "grad autodiff", "ratio", "step manual", "step autodiff",
                       "ratio", "step paired q1–q3", "step CPU ratio", "rounds", "compile grad m / a (s)",
                       "compile step m / a (s)"], rows), ""]
    rows = []
    for r in recs:
        mem = r["memory"]
        peak = lambda p, m: format_bytes(mem[p][m]["peak_bytes"]) if mem[p][m] else "n/a"
        temp = lambda p, m: format_bytes(mem[p][m]["temp_size_in_bytes"]) if mem[p][m] else "n/a"
        rows.append((r["name"], peak("grad", "manual"), peak("grad", "autodiff"),
                     _fmt_ratio(mem["grad"]["ratio"]), f"{temp('grad', 'manual')} / {temp('grad', 'autodiff')}",
                     peak("step", "manual"), peak("step", "autodiff"), _fmt_ratio(mem["step"]["ratio"]),
                     f"{temp('step', 'manual')} / {temp('step', 'autodiff')}"))
    out += ["### Peak memory (XLA compiled memory analysis: arguments + outputs − donated + temporaries)",
            "", _md_table(["config", "grad manual", "grad autodiff", "ratio", "grad temp m / a",
                           "step manual", "step autodiff", "ratio", "step temp m / a"], rows), ""]
    rows = [(r["name"], f"{r['agreement']['manual_vs_autodiff']:.1e}",
             f"{r['agreement']['manual_vs_reference']:.1e}", f"{r['agreement']['autodiff_vs_reference']:.1e}")
            for r in recs]
    out += ["### Gradient agreement (max over leaves of ‖a − b‖∞ / max(‖a‖∞, ‖b‖∞))", "",
            _md_table(["config", "manual vs jax.grad", "manual vs float64", "jax.grad vs float64"], rows), ""]
    rate = lambda r: r.get("matmul_interleaved", results["matmul"][r["config"]["dtype"]])["flops_per_second"]
    rows = [(r["name"], f"{r['flops_per_step'] / 1e9:.3g}",
             f"{r['flops_per_second']['manual'] / 1e9:,.1f}", f"{r['flops_per_second']['autodiff'] / 1e9:,.1f}",
             f"{rate(r) / 1e9:,.1f}" + (" (same rounds)" if "matmul_interleaved" in r else ""),
             f"{r['matmul_fraction']['manual']:.0%}", f"{r['matmul_fraction']['autodiff']:.0%}")
            for r in sorted(recs, key=lambda r: -r["flops_per_step"])]
    out += ["### Achieved FLOP/s of the train step (matmul FLOPs / median step time)", "",
            _md_table(["config", "GFLOP/step", "manual GFLOP/s", "autodiff GFLOP/s", "matmul GFLOP/s",
                       "manual / matmul", "autodiff / matmul"], rows), ""]
    return "\n".join(out)


def save_plots(results, folder):
    """time_ratio.png, memory_ratio.png and matmul_fraction.png in `folder`; returns their paths."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    os.makedirs(folder, exist_ok=True)
    recs = results["records"]
    names = [r["name"] for r in recs]
    paths = []
    for what, title, fname in (("time", "time manual / autodiff (median)", "time_ratio.png"),
                               ("memory", "peak memory manual / autodiff", "memory_ratio.png")):
        fig, ax = plt.subplots(figsize=(8, 0.22 * len(recs) + 1.5))
        ys = np.arange(len(recs))
        for off, p in ((-0.2, "grad"), (0.2, "step")):
            vals = [r[what][p]["ratio"] or np.nan for r in recs]
            ax.barh(ys + off, vals, height=0.4, label="gradient" if p == "grad" else "train step")
        ax.axvline(1.0, color="k", lw=0.8)
        ax.set_yticks(ys, names, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel(title)
        ax.set_title(f"{title} — {results['device']['description']}", fontsize=9)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = os.path.join(folder, fname)
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    fig, ax = plt.subplots(figsize=(6, 4))
    for m, marker in (("manual", "o"), ("autodiff", "x")):
        ax.scatter([r["flops_per_step"] for r in recs], [r["matmul_fraction"][m] for r in recs],
                   marker=marker, label=m)
    ax.set_xscale("log")
    ax.axhline(GOALS["matmul_fraction"], color="k", lw=0.8, ls="--")
    ax.set_xlabel("matmul FLOPs per train step")
    ax.set_ylabel("achieved / measured matmul rate")
    ax.set_title(results["device"]["description"], fontsize=9)
    ax.legend()
    fig.tight_layout()
    path = os.path.join(folder, "matmul_fraction.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return paths + [path]


# ------------------------------------------------------------------ command line

def _list(kind):
    def parse(text):
        items = [t.strip() for t in text.split(",") if t.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}")
        if kind is int:
            try:
                return [int(t) for t in items]
            except ValueError:
                raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
        return items
    return parse


def parse_args(argv):
    p = cli.ArgumentParser(prog="python -m benchmarks.grads", description=__doc__)
    p.add_argument("--family", choices=tuple(FAMILIES), default="mlp",
                   help="the network family: mlp (this grid, the default), conv or sequence")
    p.add_argument("--quick", action="store_true", help="small grid and short timings (< 1 minute on a 2-core CPU)")
    p.add_argument("--json", metavar="PATH", help="write every raw figure as JSON")
    p.add_argument("--md", metavar="PATH", help="write a Markdown summary")
    p.add_argument("--plots", metavar="DIR", help="write plots of the time and memory ratios")
    p.add_argument("--dtypes", type=_list(str),
                   help=f"dtypes to run, from {', '.join(DTYPES)} (default: those the device supports)")
    axes = p.add_argument_group("custom grid: any of these replaces the default grid by the "
                                "product of the given axes (the others at the base configuration)")
    axes.add_argument("--depths", type=_list(int), help="e.g. 1,2,4")
    axes.add_argument("--widths", type=_list(int), help="e.g. 32,256,2048")
    axes.add_argument("--batches", type=_list(int), help="e.g. 1,64,4096")
    axes.add_argument("--activations", type=_list(str), help="e.g. relu,tanh")
    axes.add_argument("--losses", type=_list(str), help="e.g. mse,softmax_cross_entropy")
    p.add_argument("--optimizer", default=OPTIMIZER, help=f"train-step optimizer (default {OPTIMIZER})")
    p.add_argument("--lr", type=cli.positive_float, default=LEARNING_RATE, help="its learning rate")
    p.add_argument("--seconds", type=cli.positive_float,
                   help="timing budget per configuration (default %.2f, --quick %.2f)"
                        % (FULL_TIMING["seconds"], QUICK_TIMING["seconds"]))
    p.add_argument("--min-repeats", type=cli.positive_int, help="fewest timed rounds per configuration")
    p.add_argument("--max-repeats", type=cli.positive_int, help="most timed rounds per configuration")
    p.add_argument("--matmul-size", type=cli.positive_int, help="n of the reference (n, n) matmul")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed for parameters and data")
    p.add_argument("--dump-hlo", metavar="DIR", help="write each program's optimized HLO text")
    return p.parse_args(argv)


def grid_kind_from_args(args):
    """'custom' when any axis was given, else 'quick' or 'full'."""
    if any(getattr(args, a) for a in ("depths", "widths", "batches", "activations", "losses")):
        return "custom"
    return "quick" if args.quick else "full"


def grid_from_args(args, dtypes):
    if grid_kind_from_args(args) != "custom":
        return default_grid(args.quick, dtypes)
    base = QUICK_BASE if args.quick else BASE
    return product_grid(args.depths or [base["depth"]], args.widths or [base["width"]],
                        args.batches or [base["batch"]], args.activations or [base["activation"]],
                        args.losses or [base["loss"]], dtypes)


FAMILIES = {"mlp": None, "conv": "benchmarks.convs", "sequence": "benchmarks.sequences"}


def _family(argv):
    """(family, the other arguments) from `--family NAME` or `--family=NAME` (default "mlp")."""
    argv, rest, family = list(argv), [], "mlp"
    while argv:
        a = argv.pop(0)
        if a == "--family" and argv:
            family = argv.pop(0)
        elif a.startswith("--family="):
            family = a.split("=", 1)[1]
        else:
            rest.append(a)
    return family, rest


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    family, rest = _family(argv)
    if family not in FAMILIES:
        raise InputError(f"--family {family!r}: expected one of {', '.join(FAMILIES)}")
    if FAMILIES[family] is not None:
        import importlib
        return importlib.import_module(FAMILIES[family]).main(rest)
    args = parse_args(rest)
    info = device_info()
    print(f"device: {info['description']}; JAX {info['jax_version']}")
    if args.dtypes:
        dtypes = list(_check_axis("dtypes", args.dtypes, DTYPES))
        missing = [t for t in dtypes if not dtype_supported(t)]
        if missing:
            raise InputError(f"--dtypes: {', '.join(missing)} not supported on {info['description']}")
    else:
        dtypes = [t for t in DTYPES if dtype_supported(t)]
        skipped = [t for t in DTYPES if t not in dtypes]
        if skipped:
            print(f"skipping {', '.join(skipped)}: not supported on this device")
    fnn.optim.get_optimizer(args.optimizer, learning_rate=args.lr)          # fail early on a bad name
    grid = grid_from_args(args, dtypes)
    timing = {k: v for k, v in (("seconds", args.seconds), ("min_repeats", args.min_repeats),
                                ("max_repeats", args.max_repeats)) if v is not None}
    if timing.get("min_repeats", 1) > timing.get("max_repeats", 10 ** 9):
        raise InputError(f"--min-repeats {args.min_repeats} is more than --max-repeats {args.max_repeats}")
    print(f"{len(grid)} configurations, dtypes {', '.join(dtypes)}")
    results = run(grid, quick=args.quick, timing=timing, optimizer=args.optimizer, learning_rate=args.lr,
                  matmul_n=args.matmul_size, seed=args.seed, dump_hlo=args.dump_hlo,
                  grid_kind=grid_kind_from_args(args))
    command = "python -m benchmarks.grads " + " ".join(argv)
    results["command"] = command.strip()
    print()
    for line in summary_lines(results):
        print(line)
    if args.json:
        _write(args.json, json.dumps(results, indent=1, default=_json_default))
        print(f"wrote {args.json}")
    if args.md:
        _write(args.md, to_markdown(results, results["command"]) + "\n")
        print(f"wrote {args.md}")
    if args.plots:
        for path in save_plots(results, args.plots):
            print(f"wrote {path}")
    return 0


def _json_default(v):
    if isinstance(v, (np.integer, np.floating)):
        return v.item()
    raise InputTypeError(f"not JSON serializable: {type(v).__name__}")


def _write(path, text):
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


if __name__ == "__main__":
    sys.exit(cli.run(main))
