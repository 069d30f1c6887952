"""Scaling figures, as pictures: train-step time and peak memory against one axis, manual and autodiff on one plot.

    python -m benchmarks.scaling --plots DIR [--quick] [--json PATH]

Sweeps, each around one base configuration of its family's benchmark:

    mlp-width    MLP depth 2, batch 256, width 32 … 2048         (benchmarks.grads)
    mlp-batch    MLP depth 2, width 256, batch 1 … 4096
    conv-kernel  1-D Conv, L 128, 64 channels, batch 64, kernel 3 … 9   (benchmarks.convs)
    attention-T  MultiHeadAttention d 64, 4 heads, causal, batch 8, T 64 … 1024  (benchmarks.sequences)
    gru-T        GRU hidden 64, batch 32, T 16 … 256

Each point is the family's own run_config (interleaved rounds, medians; XLA's
compiled peak memory). Each sweep gives DIR/<sweep>.png: time on the left,
memory on the right, both axes logarithmic, manual and autodiff as two lines —
for attention the manual backward's memory line falls below autodiff's as T
grows (the saved log-sum-exp, not the probabilities). --json keeps every figure.
"""
import json
import os
import sys

import jax

from fnn import cli

from benchmarks import convs, grads, sequences
from benchmarks.common import device_info

__all__ = ["SWEEPS", "sweep_configs", "run_sweeps", "plot_sweeps"]

SWEEPS = ("mlp-width", "mlp-batch", "conv-kernel", "attention-T", "gru-T")
_AXIS = {"mlp-width": ("width", "MLP width"), "mlp-batch": ("batch", "batch size"),
         "conv-kernel": ("kernel", "kernel size"), "attention-T": ("length", "sequence length T"),
         "gru-T": ("length", "sequence length T")}


def sweep_configs(name, quick=False):
    """(family module, [configs]) of one sweep; quick: three small points."""
    mlp = grads.Config(2, 256, 256, "relu", "softmax_cross_entropy", "float32")
    if name == "mlp-width":
        values = (16, 32, 64) if quick else (32, 64, 128, 256, 512, 1024, 2048)
        return grads, [mlp._replace(width=v, batch=32 if quick else 256) for v in values]
    if name == "mlp-batch":
        values = (1, 8, 64) if quick else (1, 4, 16, 64, 256, 1024, 4096)
        return grads, [mlp._replace(batch=v, width=32 if quick else 256) for v in values]
    if name == "conv-kernel":
        base = convs.ConvConfig(1, 32 if quick else 128, 8 if quick else 64, 2, 3, 1, 8 if quick else 64, "none")
        return convs, [base._replace(kernel=k) for k in ((3, 5, 7) if quick else (3, 5, 7, 9))]
    if name == "attention-T":
        base = sequences.SequenceConfig("attention", 64, 16 if quick else 64, 2 if quick else 8, heads=4,
                                        causal=True)
        return sequences, [base._replace(length=t) for t in ((16, 32, 64) if quick else (64, 128, 256, 512, 1024))]
    if name == "gru-T":
        base = sequences.SequenceConfig("gru", 16, 8 if quick else 64, 4 if quick else 32)
        return sequences, [base._replace(length=t) for t in ((8, 16, 32) if quick else (16, 32, 64, 128, 256))]
    raise ValueError(f"unknown sweep {name!r}; expected one of {', '.join(SWEEPS)}")


def _run(module, config, key, timing):
    if module is grads:
        return grads.run_config(config, key=key, timing=timing)
    if module is sequences:
        return convs.run_config(config, key=key, timing=timing)       # sequences run through convs'
    return module.run_config(config, key=key, timing=timing)


def _peak(figure):
    """Peak bytes from a family's memory figure: a number, or benchmarks.common.memory_figures' dict."""
    return figure.get("peak_bytes") if isinstance(figure, dict) else figure


def run_sweeps(names=SWEEPS, *, quick=False, log=print):
    """{sweep: [point, ...]}: each point the x value and the step's time and peak memory of both methods."""
    timing = grads.QUICK_TIMING if quick else grads.FULL_TIMING
    out = {}
    for s, name in enumerate(names):
        module, configs = sweep_configs(name, quick)
        field, _ = _AXIS[name]
        points = []
        for i, config in enumerate(configs):
            r = _run(module, config, jax.random.fold_in(jax.random.key(s), i), timing)
            t, m = r["time"]["step"], r["memory"]["step"]
            points.append({"x": getattr(config, field), "name": r["name"],
                           "time": {k: t[k]["median"] for k in ("manual", "autodiff")}, "time_ratio": t["ratio"],
                           "memory": {k: _peak(m[k]) for k in ("manual", "autodiff")}, "memory_ratio": m["ratio"]})
            if log:
                log(f"{name}: {r['name']}  step {t['manual']['median'] * 1e3:.3f} / "
                    f"{t['autodiff']['median'] * 1e3:.3f} ms (manual / autodiff), memory ratio {m['ratio']}")
        out[name] = points
    return out


def plot_sweeps(sweeps, folder, device):
    """DIR/<sweep>.png for each sweep; returns the paths."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    os.makedirs(folder, exist_ok=True)
    paths = []
    for name, points in sweeps.items():
        xs = [p["x"] for p in points]
        fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(9, 3.4))
        for method, style in (("manual", "o-"), ("autodiff", "x--")):
            ax_t.plot(xs, [p["time"][method] * 1e3 for p in points], style, label=method)
            mem = [p["memory"][method] for p in points]
            if all(v is not None for v in mem):
                ax_m.plot(xs, [v / 2**20 for v in mem], style, label=method)
        for ax, label in ((ax_t, "train-step time (ms, median)"), (ax_m, "peak memory (MiB, XLA compiled)")):
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xticks(xs, [str(x) for x in xs])
            ax.minorticks_off()
            ax.set_xlabel(_AXIS[name][1])
            ax.set_ylabel(label)
            ax.grid(True, which="major", alpha=0.3)
            ax.legend(fontsize=8)
        fig.suptitle(f"{name}: {points[0]['name']} … — {device}", fontsize=9)
        fig.tight_layout()
        path = os.path.join(folder, f"{name}.png")
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


def main(argv=None):
    p = cli.ArgumentParser(prog="python -m benchmarks.scaling", description=__doc__.split("\n")[0])
    p.add_argument("--plots", metavar="DIR", required=True, help="write one PNG per sweep here")
    p.add_argument("--sweeps", default=",".join(SWEEPS), help=f"comma-separated, of {', '.join(SWEEPS)}")
    p.add_argument("--quick", action="store_true", help="three small points per sweep, short timing (a smoke test)")
    p.add_argument("--json", metavar="PATH", help="write every figure to this JSON file")
    args = p.parse_args(argv)
    names = [s.strip() for s in args.sweeps.split(",") if s.strip()]
    bad = [s for s in names if s not in SWEEPS]
    if bad or not names:
        p.error(f"--sweeps {args.sweeps!r}: expected some of {', '.join(SWEEPS)}")
    info = device_info()
    device = f"{info.get('cpu_model') or info['description']}, {info['cpu_count']} cores, {info['date'][:10]}"
    print(f"device: {device}")
    sweeps = run_sweeps(names, quick=args.quick)
    for path in plot_sweeps(sweeps, args.plots, device):
        print(f"wrote {path}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": info, "quick": args.quick, "sweeps": sweeps}, f, indent=1)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
