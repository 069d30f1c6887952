"""What fraction of XOR networks converge from random initializations, by hidden width: one vmapped program each."""
import json
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import fnn  # noqa: E402
from fnn import cli, data, ensemble, optim  # noqa: E402
from fnn.validate import parse_float_list, parse_int_list  # noqa: E402

# Settings: 2-h-1 tanh networks, one logit, binary cross-entropy, full-batch gradient
# descent (all 4 points every step) at lr 1.0 for 2000 steps, 100 networks per width, the
# init keys split from key(SEED). Converged: all 4 points on the right side of logit 0.
DEFAULTS = dict(hidden="2,3,4", nets=100, steps=2000, lrs="1.0", seed=0, grad="manual",
                activation="tanh", plot="runs/xor_convergence.png")
LOSS = "binary_cross_entropy"


def parse_args(argv):
    p = cli.ArgumentParser(description=__doc__)
    p.add_argument("--hidden", default=DEFAULTS["hidden"], help="hidden widths, e.g. 2,3,4")
    p.add_argument("--nets", type=cli.positive_int, default=DEFAULTS["nets"], help="networks per width and rate")
    p.add_argument("--steps", type=cli.positive_int, default=DEFAULTS["steps"], help="gradient-descent steps")
    p.add_argument("--lrs", default=DEFAULTS["lrs"],
                   help="learning rates, e.g. 0.3,1,3: every network is trained at each (vmapped too)")
    p.add_argument("--activation", default=DEFAULTS["activation"], help="hidden activation")
    p.add_argument("--grad", choices=fnn.grads.METHODS, default=DEFAULTS["grad"],
                   help="manual: hand-written backprop; autodiff: jax.grad")
    p.add_argument("--seed", type=int, default=DEFAULTS["seed"], help="PRNG seed the network keys are split from")
    p.add_argument("--plot", default=DEFAULTS["plot"], help="PNG to write ('' for none)")
    p.add_argument("--json", metavar="PATH", help="write the table and every network's outcome as JSON")
    return p.parse_args(argv)


def wilson_interval(k, n, z=1.96):
    """95% Wilson score interval of a binomial proportion k/n."""
    p = k / n
    center = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, center - half), min(1.0, center + half)


def run_width(width, *, nets, steps, lrs, seed, grad, activation):
    """Train nets × len(lrs) 2-width-1 networks in one program; one record per learning rate."""
    ds = data.xor()
    model = fnn.mlp([2, width, 1], activation=activation)
    keys = jnp.tile(jax.random.split(jax.random.key(seed), nets), len(lrs))    # same inits at every rate
    rates = jnp.repeat(jnp.asarray(lrs, jnp.float32), nets)
    t0 = time.perf_counter()
    result = ensemble.train_many(model, LOSS, lambda learning_rate: optim.sgd(learning_rate),
                                 ds.x_train, ds.y_train, keys=keys, steps=steps,
                                 config=fnn.StepConfig(method=grad),
                                 hyperparams={"learning_rate": rates})
    ok = np.asarray(ensemble.converged(model, result.params, ds.x_train, ds.y_train))
    losses = np.asarray(result.losses)                                         # (N, steps)
    seconds = time.perf_counter() - t0
    records = []
    for j, lr in enumerate(lrs):
        part = slice(j * nets, (j + 1) * nets)
        k = int(ok[part].sum())
        low, high = wilson_interval(k, nets)
        records.append({
            "hidden": width, "lr": lr, "nets": nets, "converged": k, "fraction": k / nets,
            "ci95": [low, high], "median_final_loss": float(np.median(losses[part, -1])),
            "converged_per_net": ok[part].astype(bool).tolist(),
            "final_loss_per_net": losses[part, -1].tolist(),
            "seconds_for_width": seconds, "loss_curves": losses[part]})
    return records


def print_table(records, lrs):
    print(f"{'hidden':>6} {'lr':>6} {'converged':>10} {'fraction':>9} {'95% interval':>15} {'median final loss':>18}")
    for r in records:
        print(f"{r['hidden']:>6} {r['lr']:>6g} {r['converged']:>6}/{r['nets']:<3} {r['fraction']:>9.2f} "
              f"  [{r['ci95'][0]:.2f}, {r['ci95'][1]:.2f}] {r['median_final_loss']:>18.2e}")


def save_plot(records, path, settings):
    from fnn.plotting import figure, save_figure
    widths = sorted({r["hidden"] for r in records})
    lrs = sorted({r["lr"] for r in records})
    fig = figure(figsize=(4.0 + 3.2 * len(widths), 3.8), layout="constrained")
    grid = fig.add_gridspec(1, 1 + len(widths))
    ax = fig.add_subplot(grid[0, 0])
    bar = 0.8 / len(lrs)
    for j, lr in enumerate(lrs):
        rs = [next(r for r in records if r["hidden"] == w and r["lr"] == lr) for w in widths]
        xs = np.arange(len(widths)) + (j - (len(lrs) - 1) / 2) * bar
        frac = np.array([r["fraction"] for r in rs])
        err = np.array([[f - r["ci95"][0], r["ci95"][1] - f] for f, r in zip(frac, rs)]).T
        ax.bar(xs, frac, bar, yerr=err, capsize=3, label=f"lr {lr:g}")
    ax.set_xticks(np.arange(len(widths)), [f"2-{w}-1" for w in widths])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("fraction converged (all 4 points correct)")
    ax.set_title(f"{settings['nets']} networks each, 95% intervals", fontsize=9)
    if len(lrs) > 1:
        ax.legend(fontsize=8)
    first_lr = lrs[-1] if 1.0 not in lrs else 1.0
    for i, w in enumerate(widths):
        r = next(r for r in records if r["hidden"] == w and r["lr"] == first_lr)
        ax_c = fig.add_subplot(grid[0, 1 + i])
        for curve, ok in zip(r["loss_curves"], r["converged_per_net"]):
            ax_c.plot(curve, color="tab:blue" if ok else "tab:red", lw=0.5, alpha=0.35)
        ax_c.set_yscale("log")
        ax_c.set_xlabel("step")
        ax_c.set_title(f"2-{w}-1, lr {first_lr:g}: {r['converged']}/{r['nets']} converged", fontsize=9)
        if i == 0:
            ax_c.set_ylabel("training loss (BCE)")
    fig.suptitle(f"XOR from random initializations: {settings['activation']}, full-batch gradient "
                 f"descent, {settings['steps']} steps; loss curves blue: converged, red: not", fontsize=10)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    return save_figure(fig, path, dpi=100)


def main(argv=None):
    args = parse_args(argv)
    widths = parse_int_list("--hidden", args.hidden, at_least=1)
    lrs = parse_float_list("--lrs", args.lrs)
    fnn.get_activation(args.activation)                     # fail early on a bad name
    print(f"device: {cli.device_description()}")
    print(f"XOR, 2-h-1 {args.activation}, binary cross-entropy, full-batch gradient descent, {args.steps} steps, "
          f"{args.nets} networks per width and rate (keys from seed {args.seed}), {args.grad} gradients; "
          "converged = all 4 points correct")
    records = []
    for w in widths:
        records += run_width(w, nets=args.nets, steps=args.steps, lrs=lrs, seed=args.seed,
                             grad=args.grad, activation=args.activation)
    print_table(records, lrs)
    settings = {"nets": args.nets, "steps": args.steps, "activation": args.activation, "grad": args.grad,
                "seed": args.seed, "loss": LOSS, "optimizer": "sgd (full batch)", "lrs": lrs,
                "converged": "all 4 XOR points classified correctly (logit > 0 exactly for label 1)"}
    if args.plot:
        print(f"wrote {save_plot(records, args.plot, settings)}")
    if args.json:
        folder = os.path.dirname(os.path.abspath(args.json))
        os.makedirs(folder, exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"device": cli.device_description(), "settings": settings,
                       "table": [{k: v for k, v in r.items() if k != "loss_curves"} for r in records]},
                      f, indent=1)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
