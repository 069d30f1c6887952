"""fnn on one GPU in one command: gradient agreement, manual/autodiff time and memory, TFLOP/s, PyTorch.

On the device, from the repository root (fnn need not be installed; JAX with CUDA,
and PyTorch for the peers, are all it needs):

    PYTHONPATH=. python -m benchmarks.gpu --data benchmarks/data/mnist1d.npz --out $OUT/gpu

Sections, in the order they run, each within its share of a soft time budget
(--budget-seconds, default 420 s: the whole run, start-up included, ends within
8 minutes on an H100/H200; a section or configuration the budget cannot fit is
skipped with a note):

    matmul     the (n, n) @ (n, n) jnp.dot rate in float32 and bfloat16 (n = 8192)
    agreement  manual and jax.grad gradients of an MLP, two CNNs (BatchNorm, LayerNorm),
               a GRU, an LSTM and causal attention in float64, float32 and bfloat16,
               each against float64 jax.grad
    mlp, cnn, gru, attention
               per configuration, in float32 and bfloat16: the jitted gradient and train
               step (Adam) of both methods, interleaved medians and their ratio, XLA's
               peak memory, and the train step's TFLOP/s against the same dtype's matmul rate
    peers      the MNIST-1D MLP (40-100-100-10, 6000 steps): fnn.fit manual and autodiff,
               a bare lax.scan, PyTorch eager on CUDA (skipped where it is missing)

OUT/gpu.json holds every figure, the device, the date and the flags; OUT/gpu.md the
tables (benchmarks.gpu_report, from the JSON). Both are rewritten after each
section, so a run cut short keeps what it measured. MNIST-1D comes from --data
(default: benchmarks/data/mnist1d.npz, kept in the repository; the mnist1d package
is then not imported). A section that fails records its traceback and the run goes
on; the exit code is then 1.

--small runs the same code on tiny problems with 2-3 timed rounds, each dtype in
the MLP and in some of the other families (tests/test_gpu_benchmark.py runs it).
On a busy 2-core CPU it takes about 2 minutes the first time, almost all of it
XLA compiling the train steps, and about 15 s once JAX's persistent compilation
cache (JAX_COMPILATION_CACHE_DIR, which the tests set) holds the programs.

    python -m benchmarks.gpu --small --out /tmp/gpu-small
    python -m benchmarks.gpu --write-data benchmarks/data/mnist1d.npz    # needs mnist1d
"""
import functools
import json
import os
import sys
import time
import traceback

import jax
import jax.numpy as jnp

import fnn
from fnn import cli
from fnn.errors import InputError
from fnn.grads import METHODS

from benchmarks import convs, data_file, grads, gpu_grid, gpu_report, peers
from benchmarks.common import device_info, dtype_context, dtype_supported, matmul_rate

SECTIONS = ("matmul", "agreement", "mlp", "cnn", "gru", "attention", "peers")
SHARES = dict(matmul=1, agreement=2, mlp=3, cnn=3, gru=3, attention=3, peers=2)   # of the budget
DEFAULT_BUDGET = 420.0
AGREEMENT_DTYPES = ("float64", "float32", "bfloat16")        # float64 first: it is the reference
# A dtype's agreement is met when manual's error against float64 is at most twice jax.grad's
# own, or within this bound (float64: manual against jax.grad itself).
AGREEMENT_BOUND = {"float64": 1e-10, "float32": 1e-4, "bfloat16": 5e-2}
PEERS = {"full": ("fnn-manual", "fnn-autodiff", "fnn-scan", "torch-cuda"),
         "small": ("fnn-manual", "torch-cuda", "torch-cpu")}
PEER_STEPS = {"full": peers.STEPS, "small": 20}


supported = functools.lru_cache(dtype_supported)     # one probe per dtype and run, not per item


class Skip(Exception):
    """An item that cannot run here (a dtype, a missing peer): recorded as skipped, with the reason."""


class Budget:
    """A soft time budget: each section gets its share of what is left when it starts."""

    def __init__(self, seconds, sections):
        self.seconds, self.start, self.pending = seconds, time.perf_counter(), list(sections)

    def elapsed(self):
        return time.perf_counter() - self.start

    def allowance(self, section):
        """Seconds for `section`: the time left × its share of the shares of the sections still to run."""
        shares = sum(SHARES[s] for s in self.pending)
        self.pending.remove(section)
        return max(0.0, self.seconds - self.elapsed()) * SHARES[section] / shares


def run_items(items, allowance, log):
    """Run [(name, fn)] in order while the allowance lasts; [{name, status, seconds, result | note | error}].

    An item is skipped once the section's time used plus the last item's time
    reaches the allowance. An item's exception is recorded with its traceback
    and the next item runs: one failure does not cost the rest of a device run.
    """
    start, last, out = time.perf_counter(), 0.0, []
    for name, fn in items:
        used = time.perf_counter() - start
        if used + last >= allowance:
            out.append({"name": name, "status": "skipped", "seconds": 0.0,
                        "note": f"time budget ({used:.0f} s of the section's {allowance:.0f} s used)"})
            log(f"  {name}: skipped, {out[-1]['note']}")
            continue
        t0 = time.perf_counter()
        try:
            entry = {"name": name, "status": "ok", "result": fn()}
        except Skip as e:
            entry = {"name": name, "status": "skipped", "note": str(e)}
        except Exception as e:  # noqa: BLE001 - recorded, and the run goes on
            entry = {"name": name, "status": "error", "error": cli.one_line(f"{type(e).__name__}: {e}"),
                     "traceback": traceback.format_exc()}
        last = entry["seconds"] = time.perf_counter() - t0
        out.append(entry)
        log(f"  {name}: " + (entry.get("note") or entry.get("error") or _describe(entry["result"]))
            + f" [{last:.1f} s]")
    return out


def _describe(result):
    return result.pop("_line", "ok") if isinstance(result, dict) else "ok"


def _section_status(items):
    states = {i["status"] for i in items}
    if "error" in states:
        return "error"
    if states <= {"skipped"}:
        return "skipped"
    return "ok" if states == {"ok"} else "partial"


# ------------------------------------------------------------------ the sections

def matmul_items(mode):
    n = gpu_grid.MATMUL_N[mode]

    def measure(dtype):
        if not supported(dtype):
            raise Skip(f"{dtype} is not supported on this device")
        r = matmul_rate(dtype, n, budget_seconds=1.0 if mode == "full" else 0.05)
        r["_line"] = f"{r['flops_per_second'] / 1e12:.3f} TFLOP/s ({n}x{n}, median of {r['time']['n']})"
        return r
    return [(dtype, lambda d=dtype: measure(d)) for dtype in gpu_grid.TIMED_DTYPES]


def _network(config):
    """(model, input shape, batch, classes) of any configuration of gpu_grid."""
    shape, batch = gpu_grid.problem_shapes(config)
    if isinstance(config, grads.Config):
        return fnn.mlp(config.sizes, activation=config.activation), shape, batch, config.sizes[-1]
    return config.model(), shape, batch, convs.CLASSES


def _both_grads(model, loss, params, x, y, state, dtype):
    """Manual and jax.grad gradients, one compiled program, everything cast to `dtype`."""
    with dtype_context(dtype):
        cast = lambda tree: None if tree is None else jax.tree.map(lambda a: jnp.asarray(a, dtype), tree)
        fns = [fnn.make_value_and_grad(model, loss, m) for m in METHODS]
        both = jax.jit(lambda p, xx, yy, s: tuple(f(p, xx, yy, state=s)[1] for f in fns))
        return jax.device_get(both(cast(params), cast(x), y, cast(state)))


def agreement(config, key):
    """One network's manual and jax.grad gradients in each dtype the device runs, against float64 jax.grad."""
    model, shape, batch, classes = _network(config)
    loss = fnn.get_loss("softmax_cross_entropy")
    k_init, k_x, k_y = jax.random.split(key, 3)
    _, params = model.init(k_init, shape)
    x = jax.random.normal(k_x, (batch,) + shape[1:])
    y = jax.random.randint(k_y, (batch,), 0, classes, jnp.int32)
    state = fnn.init_state(model, shape) if model.stateful else None
    rows, reference = [], None
    for dtype in AGREEMENT_DTYPES:
        if not supported(dtype):
            rows.append({"dtype": dtype, "status": "skipped", "note": "not supported on this device"})
            continue
        manual, autodiff = _both_grads(model, loss, params, x, y, state, dtype)
        reference = autodiff if dtype == "float64" else reference
        e = grads._leaf_errors(manual, autodiff, autodiff if reference is None else reference)
        bound = AGREEMENT_BOUND[dtype]
        if reference is None:
            e["manual_vs_reference"] = e["autodiff_vs_reference"] = None
            met = e["manual_vs_autodiff"] <= bound
        elif dtype == "float64":
            met = e["manual_vs_autodiff"] <= bound
        else:
            met = e["manual_vs_reference"] <= max(2 * e["autodiff_vs_reference"], bound)
        rows.append(dict(e, dtype=dtype, bound=bound, status="met" if met else "not met"))
    line = "; ".join(f"{r['dtype']} {r['manual_vs_autodiff']:.1e} {r['status']}" if "bound" in r
                     else f"{r['dtype']} skipped" for r in rows)
    return {"name": config.name, "rows": rows, "_line": "manual vs jax.grad: " + line}


def timed(family, config, dtype, key, timing, rates):
    """run_config of the family's benchmark module in `dtype`, with its TFLOP/s against the matmul rate."""
    if not supported(dtype):
        raise Skip(f"{dtype} is not supported on this device")
    if family == "mlp":
        r = grads.run_config(config._replace(dtype=dtype), key=key, timing=timing)
    else:
        r = convs.run_config(config, key=key, timing=timing, dtype=dtype)
        r["name"] = f"{config.name}-{grads.SHORT_DTYPE[dtype]}"
    flops, rate = gpu_grid.flops_per_step(config), rates.get(dtype)
    step = {m: r["time"]["step"][m]["median"] for m in METHODS}
    r.update(family=family, dtype=dtype, flops_per_step=flops, matmul_rate=rate,
             flops_per_second=None if flops is None else {m: flops / step[m] for m in METHODS})
    r["matmul_fraction"] = (None if flops is None or not rate else
                            {m: r["flops_per_second"][m] / rate for m in METHODS})
    r["_line"] = (f"step {step['manual'] * 1e3:.3f} / {step['autodiff'] * 1e3:.3f} ms "
                  f"(ratio {r['time']['step']['ratio']:.3f}), "
                  f"peak memory ratio {_fmt(r['memory']['step']['ratio'])}, "
                  f"manual vs f64 {r['agreement']['manual_vs_reference']:.1e}")
    if r["matmul_fraction"]:
        r["_line"] += f", manual {r['matmul_fraction']['manual']:.0%} of the {dtype} matmul rate"
    return r


def _fmt(value):
    return "n/a" if value is None else f"{value:.3f}"


def peer(name, ds, steps):
    """One peer on MNIST-1D (benchmarks.peers.run), or Skip with the reason it cannot run here."""
    out = peers.run([name], data=ds, steps=steps, log=None)
    (p,) = out["peers"]
    if p["status"] != "ok":
        raise Skip(p["message"])
    p["settings"] = out["settings"]
    p["_line"] = (f"{p['device']}, {p['steps_per_second']:,.0f} steps/s, wall {p['wall_seconds']:.2f} s, "
                  f"test accuracy {p['test_accuracy']:.4f}")
    return p


def section_items(section, mode, key, rates, ds):
    """The [(name, fn)] of one section."""
    if section == "matmul":
        return matmul_items(mode)
    if section == "agreement":
        return [(c.name, lambda c=c, i=i: agreement(c, jax.random.fold_in(key, i)))
                for i, c in enumerate(gpu_grid.agreement_grid(mode == "small"))]
    if section == "peers":
        return [(name, lambda n=name: peer(n, ds, PEER_STEPS[mode])) for name in PEERS[mode]]
    timing = gpu_grid.SMALL_TIMING if mode == "small" else gpu_grid.FULL_TIMING
    configs = gpu_grid.family_grid(section, mode == "small")
    return [(f"{c.name}/{d}", lambda c=c, d=d, k=jax.random.fold_in(key, i): timed(section, c, d, k, timing, rates))
            for i, c in enumerate(configs) for d in gpu_grid.timed_dtypes(section, mode == "small")]


def finish_section(section, items, allowance, seconds):
    out = {"status": _section_status(items), "allowance_seconds": allowance, "seconds": seconds, "items": items}
    if section == "peers":
        out["summary"] = peers.summarize({"peers": [i["result"] for i in items if i["status"] == "ok"]})
    return out


# ------------------------------------------------------------------ a whole run

def run(sections, *, small, budget_seconds, ds=None, data=None, seed=0, log=print, write=None):
    """Every selected section in order; the results as a JSON-ready dict. write(results) after each section.

    ds: the peers' MNIST-1D Dataset; data: where it came from, for the record.
    """
    mode = "small" if small else "full"
    info = device_info()
    precision = getattr(jax.config, "jax_default_matmul_precision", None)
    results = {"benchmark": "fnn on one device (benchmarks.gpu)", "mode": mode, "device": info, "data": data,
               "date": info["date"], "matmul_precision": str(precision),
               "timing": gpu_grid.SMALL_TIMING if small else gpu_grid.FULL_TIMING,
               "budget_seconds": budget_seconds, "seconds": 0.0, "complete": False,
               "sections": {s: {"status": "pending", "note": "not reached", "items": []} if s in sections
                            else {"status": "skipped", "note": "not in --sections", "items": []} for s in SECTIONS}}
    budget, rates = Budget(budget_seconds, [s for s in SECTIONS if s in sections]), {}
    for section in (s for s in SECTIONS if s in sections):
        allowance = budget.allowance(section)
        log(f"{section}: up to {allowance:.0f} s ({budget.elapsed():.0f} s into the run)")
        t0 = time.perf_counter()
        key = jax.random.fold_in(jax.random.key(seed), SECTIONS.index(section))    # whatever else runs
        items = run_items(section_items(section, mode, key, rates, ds), allowance, log)
        results["sections"][section] = finish_section(section, items, allowance, time.perf_counter() - t0)
        if section == "matmul":
            rates.update({it["name"]: it["result"]["flops_per_second"] for it in items if it["status"] == "ok"})
        results["seconds"] = budget.elapsed()
        if write:
            write(results)
    results["complete"] = True
    if write:
        write(results)
    return results


def parse_args(argv):
    p = cli.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__.split("\n")[0])
    p.add_argument("--out", default="gpu-results", metavar="DIR", help="folder for gpu.json and gpu.md")
    p.add_argument("--small", action="store_true", help="tiny problems, very short timing (the CPU check)")
    p.add_argument("--data", metavar="FILE", help="MNIST-1D .npz (x, y, x_test, y_test); default "
                                                  "benchmarks/data/mnist1d.npz where it exists")
    p.add_argument("--budget-seconds", type=cli.positive_float, default=DEFAULT_BUDGET,
                   help=f"soft time budget of the whole run (default {DEFAULT_BUDGET:g})")
    p.add_argument("--sections", default=",".join(SECTIONS), help=f"comma list among {', '.join(SECTIONS)}")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed for parameters and data")
    p.add_argument("--write-data", metavar="FILE", help="write MNIST-1D (needs the mnist1d package) and exit")
    return p.parse_args(argv)


def check_sections(text):
    sections = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown or not sections:
        raise InputError(f"--sections {text!r}: expected a comma list among {', '.join(SECTIONS)}")
    return sections


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.write_data:
        print(f"wrote {args.write_data} ({data_file.write_dataset(args.write_data) / 1e6:.2f} MB)")
        return 0
    sections = check_sections(args.sections)
    folder = cli.output_folder(args.out)
    ds, data = data_file.load(args.data) if "peers" in sections else (None, None)
    print(f"device: {cli.device_description()}; JAX {jax.__version__}; {'small' if args.small else 'full'} run, "
          f"budget {args.budget_seconds:g} s; writing {folder}/gpu.json and gpu.md", flush=True)
    command = ("python -m benchmarks.gpu " + " ".join(argv)).strip()
    flags = dict(vars(args), sections=sections, data=args.data)

    def write(results):
        results.update(command=command, flags=flags)
        cli.write_file(os.path.join(folder, "gpu.json"), json.dumps(results, indent=1, default=grads._json_default))
        cli.write_file(os.path.join(folder, "gpu.md"), gpu_report.to_markdown(results) + "\n")

    results = run(sections, small=args.small, budget_seconds=args.budget_seconds, ds=ds, data=data, seed=args.seed,
                  log=lambda line: print(line, flush=True), write=write)
    for name in SECTIONS:
        s = results["sections"][name]
        print(f"{name}: {s['status']}" + (f" ({s['seconds']:.1f} s)" if "seconds" in s else f" ({s['note']})"))
    print(f"{results['seconds']:.1f} s in all; wrote {folder}/gpu.json and {folder}/gpu.md")
    return 1 if any(s["status"] == "error" for s in results["sections"].values()) else 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
