"""Print the seeds' worked examples computed by fnn; --json writes the numbers, --plots DIR the pictures."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jax  # noqa: E402

from examples import seeds  # noqa: E402
from fnn import cli  # noqa: E402
from fnn.errors import InputError  # noqa: E402

SEED = 0  # PRNG seed for the examples that start from random weights


def parse_args(argv=None):
    p = cli.ArgumentParser(description=__doc__)
    p.add_argument("--json", metavar="PATH", help="write every number to this JSON file")
    p.add_argument("--seed", type=int, default=SEED, help=f"PRNG seed (default {SEED})")
    p.add_argument("--plots", metavar="DIR", help="write the seeds' pictures as PNG files into DIR")
    args = p.parse_args(argv)
    if args.plots is not None and Path(args.plots).exists() and not Path(args.plots).is_dir():
        p.error(f"--plots {args.plots} is not a directory; expected a folder for the PNG files")
    if args.json is not None:
        path = Path(args.json).resolve()
        if path.is_dir():
            p.error(f"--json {args.json} is a directory; expected a file path")
        if not path.parent.is_dir():
            p.error(f"--json {args.json}: directory {path.parent} does not exist")
    return args


def _n(x, digits=6):
    """A number without float noise: 1.399999976 -> 1.4, 2.0 -> 2."""
    return f"{x:.{digits}g}"


def _money(x):
    return f"${x:,.0f}"


def print_house(r):
    print("== Seed 000: house prices, one linear neuron ==")
    for size, price, fitted in zip(r["sizes_sqft"], r["prices"], r["fitted_prices"]):
        print(f"  {size:,.0f} sq ft  price {_money(price)}  fitted {_money(fitted)}")
    print(f"  gradient descent on standardized inputs: lr {r['lr']}, {r['steps']} steps, "
          f"MSE {_n(r['loss_first'])} -> {_n(r['loss_last'], 2)}")
    print(f"  learned: price = {_n(r['price_per_sqft'])} $/sq ft x size + {_money(r['intercept'])}"
          "  (seed: $200/sq ft)")
    print(f"  {r['query_sqft']:,.0f} sq ft -> {_money(r['predicted_price'])}")


def print_single_neuron(r):
    print("== Seed 002: a single neuron, y_hat = w x + b, L = 1/2 (y_hat - y)^2 ==")
    print(f"  x={_n(r['x'])}, y={_n(r['y'])}, w={_n(r['w0'])}, b={_n(r['b0'])}, lr={_n(r['lr'])}")
    print(f"  forward: y_hat={_n(r['prediction'])}, L={_n(r['loss'])}")
    print(f"  backward: dL/dy_hat={_n(r['dL_dyhat'])}, dL/dw={_n(r['dL_dw'])}, dL/db={_n(r['dL_db'])}")
    print(f"  step: w={_n(r['w1'])}, b={_n(r['b1'])}; y_hat={_n(r['prediction_after'])}, "
          f"L={_n(r['loss_after'])}  (seed: w=1, b=1, L=0)")


def print_two_layer(r):
    print("== Seed 002: two linear layers, a1 = w1 x + b1, a2 = w2 a1 + b2, J = 1/2 (a2 - y)^2 ==")
    print(f"  x={_n(r['x'])}, y={_n(r['y'])}, w1={_n(r['w1'])}, b1={_n(r['b1'])}, "
          f"w2={_n(r['w2'])}, b2={_n(r['b2'])}")
    print(f"  forward: a1={_n(r['a1'])}, a2={_n(r['a2'])}, J={_n(r['loss'])}")
    print(f"  backward: dJ/da2={_n(r['dJ_da2'])}, dJ/dw2={_n(r['dJ_dw2'])}, dJ/db2={_n(r['dJ_db2'])}, "
          f"dJ/da1={_n(r['dJ_da1'])}, dJ/dw1={_n(r['dJ_dw1'])}, dJ/db1={_n(r['dJ_db1'])}")
    s = r["seed_gradient_summary"]
    print(f"  note: seed 002's gradient summary has dJ/da1 = 2 x 2 = {_n(s['dJ_da1'])} and "
          f"dJ/dw1 = dJ/db1 = {_n(s['dJ_dw1'])}, an arithmetic slip (w2 = {_n(r['w2'])}, so "
          f"2 x {_n(r['w2'])} = {_n(r['dJ_da1'])}); its own update step uses {_n(r['dJ_dw1'])}")
    print(f"  step (lr {_n(r['lr'])}): w1={_n(r['w1_new'])}, b1={_n(r['b1_new'])}, "
          f"w2={_n(r['w2_new'])}, b2={_n(r['b2_new'])}  (seed: 1.4, -0.6, 2.6, 0.8)")
    print(f"  after the step: a2={_n(r['a2_after_step'])}, J={_n(r['loss_after_step'])} "
          f"(up from {_n(r['loss'])}: this step overshoots); after {r['more_steps']} more steps "
          f"J={_n(r['loss_after_more_steps'], 3)}")


def print_graph(r):
    print("== Seed 002: computational graph y = (a + b)(b - c) ==")
    for node in r["nodes"]:
        rhs = f"{node['op']}({', '.join(node['inputs'])})" if node["inputs"] else node["op"]
        print(f"  {node['name']} = {rhs:<10} value {_n(node['value']):>4}   dy/d{node['name']} = {_n(node['grad'])}")
    print(f"  dy/da = e = {_n(r['dy_da'])}, dy/db = e + d = {_n(r['dy_db'])} (b is used twice), "
          f"dy/dc = -d = {_n(r['dy_dc'])}")


def print_xor(r):
    print("== Seeds 003/004: XOR ==")
    fmt = lambda xs: ", ".join(_n(x, 3) for x in xs)
    h, lr, phi, grid = (r["hidden_layer"], r["logistic_regression"],
                        r["logistic_regression_phi"], r["linear_grid_search"])
    print(f"  binary cross-entropy, gradient descent lr {r['lr']}, {r['steps']} steps, "
          f"{r['inits']} random initializations each")
    print(f"  2-{r['hidden']}-1 tanh network: accuracies [{fmt(h['accuracies'])}], "
          f"p(y=1) = [{fmt(h['probabilities'])}] for targets {fmt(r['targets'])}")
    print(f"  logistic regression (one neuron): accuracies [{fmt(lr['accuracies'])}], "
          f"best {_n(lr['best_accuracy'])}, loss {_n(min(lr['losses']), 4)} (= ln 2: p = 1/2 everywhere)")
    print(f"  no linear classifier gets 4/4: best of {grid['classifiers']:,} on a grid is "
          f"{_n(grid['best_accuracy'])}; b <= 0, w1 + b > 0, w2 + b > 0 force w1 + w2 + b > 0")
    print(f"  with phi = x1 x2 as a third input: accuracies [{fmt(phi['accuracies'])}], "
          f"weights [{fmt(phi['weights'])}], bias {_n(phi['bias'], 3)}")


def main(argv=None):
    args = parse_args(argv)
    device = cli.device_description()
    print(f"device: {device}")
    results = seeds.all_examples(key=jax.random.key(args.seed))
    print_house(results["house_prices"])
    print_single_neuron(results["single_neuron"])
    print_two_layer(results["two_layer_linear"])
    print_graph(results["computational_graph"])
    print_xor(results["xor"])
    if args.json is not None:
        try:
            Path(args.json).write_text(json.dumps({"seed": args.seed, "device": device, **results}, indent=2))
        except OSError as e:
            raise InputError(f"cannot write --json {args.json}: {e.strerror}") from None
        print(f"wrote {args.json}")
    if args.plots is not None:
        from examples.seed_figures import save_seed_figures   # matplotlib only when drawing
        for path in save_seed_figures(args.plots, key=jax.random.key(args.seed)):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
