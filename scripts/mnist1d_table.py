"""The MNIST-1D paper's table of test accuracies, reproduced with fnn's hand-written backprop.

Trains each model of the table (fnn.models: logistic, the residual MLP, the
CNN, the bidirectional GRU, the same with an LSTM, and fnn-best) on MNIST-1D
and on MNIST-1D with its 40 positions shuffled by one fixed permutation, over
several seeds, and prints mean ± std beside the published figures (Greydanus
2020). The paper's protocol: Adam, learning rate 1e-2, batch 100, 6000 steps,
no weight decay, cross-entropy, PyTorch's default initialization
(fnn.models.torch_init). fnn-best has its own recipe (RECIPES).
"""
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402

import fnn  # noqa: E402
from fnn import cli, data, models, optim  # noqa: E402

# Published test accuracy (%): (default MNIST-1D, shuffled positions).
PAPER = {"logistic": (32, 32), "mlp": (68, 68), "cnn": (94, 56), "gru": (91, 57), "human": (96, None)}
ROWS = ("logistic", "mlp", "cnn", "gru", "lstm", "transformer", "human", "fnn-best")
TRAINED = ("logistic", "mlp", "cnn", "gru", "lstm", "transformer", "fnn-best")
# init "torch": fnn.models.torch_init (PyTorch's default, as the paper); "fnn": the layers' own (He uniform).
PROTOCOL = dict(steps=6000, batch_size=100, learning_rate=1e-2, schedule=None, init="torch")
RECIPES = {name: PROTOCOL for name in ("logistic", "mlp", "cnn", "gru", "lstm")}
RECIPES["fnn-best"] = dict(steps=3000, batch_size=100, learning_rate=3e-3, schedule="cosine", init="fnn")
RECIPES["transformer"] = dict(steps=3000, batch_size=100, learning_rate=3e-3, schedule="cosine", init="fnn")
LOSS = "softmax_cross_entropy"


def parse_args(argv):
    p = cli.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=cli.positive_int, default=5, help="seeds per model and dataset (default 5)")
    p.add_argument("--grad", choices=fnn.grads.METHODS, default="manual",
                   help="gradients: manual (hand-written backprop, the default) or autodiff (jax.grad)")
    p.add_argument("--models", default=",".join(TRAINED),
                   help=f"comma-separated models to train (default {','.join(TRAINED)})")
    p.add_argument("--data", choices=("both", "normal", "shuffled"), default="both",
                   help="the default dataset, the shuffled one, or both (default)")
    p.add_argument("--steps", type=cli.positive_int, default=None,
                   help="train every model this many steps instead of its recipe's (for a quick look)")
    p.add_argument("--json", metavar="PATH", help="write every run to this JSON file")
    args = p.parse_args(argv)
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in names if m not in TRAINED]
    if not names or unknown:
        p.error(f"--models {args.models!r}: expected a comma-separated list of {', '.join(TRAINED)}")
    args.models = names
    if args.json is not None:
        folder = os.path.dirname(os.path.abspath(args.json))
        if os.path.isdir(args.json) or not os.path.isdir(folder):
            p.error(f"--json {args.json!r}: expected a file path in an existing folder")
    return args


def learning_rate(recipe, steps):
    """The recipe's learning rate: a constant, or a cosine decay to 0 over the run."""
    if recipe["schedule"] is None:
        return recipe["learning_rate"]
    return optim.schedules.cosine_decay(recipe["learning_rate"], steps)


def train_one(name, dataset, seed, grad, steps=None):
    """Train model `name` on `dataset` from seed `seed`: a dict with its test accuracy and time."""
    recipe = RECIPES[name]
    steps = recipe["steps"] if steps is None else steps
    model = models.mnist1d_model(name)
    k_init, k_torch, k_fit = jax.random.split(jax.random.key(seed), 3)
    _, params = model.init(k_init, (-1, dataset.in_features))
    if recipe["init"] == "torch":
        params = models.torch_init(k_torch, params)
    start = time.perf_counter()
    result = fnn.fit(model, LOSS, optim.adam(learning_rate(recipe, steps)), params,
                     dataset.x_train, dataset.y_train, key=k_fit, steps=steps,
                     batch_size=recipe["batch_size"], progress=False, config=fnn.StepConfig(method=grad))
    wall = time.perf_counter() - start
    test = fnn.evaluate(model, LOSS, result.params, dataset.x_test, dataset.y_test,
                        model_state=result.model_state)
    return dict(model=name, shuffled=None, seed=seed, grad=grad, test_accuracy=test["accuracy"],
                steps=result.steps, wall_seconds=round(wall, 3))


def cell(runs):
    """'mean ± std' in percent of the runs' test accuracies ('-' for none)."""
    accs = [100 * r["test_accuracy"] for r in runs]
    if not accs:
        return "-"
    std = statistics.stdev(accs) if len(accs) > 1 else 0.0
    return f"{statistics.mean(accs):.1f} ± {std:.1f}%"


def table(runs, grad, seeds):
    """The table as text: one row per model, paper and fnn side by side, default and shuffled."""
    head = ("model", "paper", f"fnn ({grad})", "paper shuffled", f"fnn shuffled ({grad})")
    rows = [head]
    for name in ROWS:
        paper = PAPER.get(name, (None, None))
        mine = [cell([r for r in runs if r["model"] == name and r["shuffled"] is s]) for s in (False, True)]
        if name == "human":
            mine = ["", ""]
        rows.append((name, *(f"{p}%" if p is not None else "-" for p in paper[:1]), mine[0],
                     f"{paper[1]}%" if paper[1] is not None else "-", mine[1]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return (f"MNIST-1D test accuracy, mean ± std over {seeds} seed(s)\n" + "\n".join(lines))


def main(argv=None):
    args = parse_args(argv)
    print(f"device: {cli.device_description()}")
    sets = {"normal": [False], "shuffled": [True], "both": [False, True]}[args.data]
    datasets = {s: data.mnist1d(shuffle_seq=s) for s in sets}
    runs = []
    for name in args.models:
        for shuffled in sets:
            for seed in range(args.seeds):
                run = train_one(name, datasets[shuffled], seed, args.grad, args.steps)
                run["shuffled"] = shuffled
                runs.append(run)
                print(f"  {name:<9} {'shuffled' if shuffled else 'default':<8} seed {seed}: "
                      f"test accuracy {run['test_accuracy']:.4f} ({run['steps']} steps, "
                      f"{run['wall_seconds']:.1f} s)", flush=True)
    print(table(runs, args.grad, args.seeds))
    if args.json is not None:
        text = json.dumps({"device": cli.device_description(), "grad": args.grad, "seeds": args.seeds,
                           "recipes": RECIPES, "paper": PAPER, "runs": runs}, indent=2)
        cli.write_file(args.json, text)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
