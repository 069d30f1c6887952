"""N small MLPs trained in one vmapped program against a Python loop of N trainings: the speedup."""
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

import fnn
from fnn import cli, data, ensemble, optim

from benchmarks.common import (compile_timed, device_info, format_seconds, summarize_times,
                               time_interleaved)

# ------------------------------------------------------------------ settings
# Each problem: N networks of SIZES (tanh, one logit, binary cross-entropy), full-batch
# gradient descent at LEARNING_RATE for STEPS steps, on n examples. The loop compiles the
# one-model training once and calls it N times; the many-models program is its jax.vmap.
N_MODELS = 256
SIZES = (2, 8, 1)
ACTIVATION = "tanh"
LEARNING_RATE = 1.0
STEPS = 1000
PROBLEMS = (("xor", 4), ("moons", 32), ("moons", 256))     # (dataset, training examples)
REPEATS = 5
QUICK = dict(steps=200, problems=(("xor", 4), ("moons", 32)), repeats=3)
GOAL_SPEEDUP = 20.0                                         # on CPU, for the XOR-sized problem


def problem_data(name, n, seed=0):
    """(x, y) float32 arrays: the 4 XOR points, or n two-moons points as binary targets (n, 1)."""
    if name == "xor":
        ds = data.xor()
    else:
        ds = data.as_binary(data.standardize_dataset(data.moons(jax.random.key(seed), n=n, noise=0.1))[0])
    return jnp.asarray(ds.x_train), jnp.asarray(ds.y_train)


def run_problem(name, n, *, n_models=N_MODELS, steps=STEPS, repeats=REPEATS, seed=0):
    """Compile, check and time both variants on one problem; a JSON-ready dict."""
    x, y = problem_data(name, n, seed)
    model = fnn.mlp(list(SIZES), activation=ACTIVATION)
    train = ensemble.make_train(model, "binary_cross_entropy", optim.sgd(LEARNING_RATE), steps=steps,
                                input_shape=(-1, SIZES[0]))
    keys = jax.random.split(jax.random.key(seed), n_models)
    key_list = [keys[i] for i in range(n_models)]           # indexed before timing
    one, compile_one = compile_timed(train, keys[0], {}, x, y)
    many, compile_many = compile_timed(jax.vmap(train, in_axes=(0, None, None, None)), keys, {}, x, y)

    def loop():
        return [one(k, {}, x, y) for k in key_list]          # one compiled program, N calls

    looped, together = jax.block_until_ready((loop(), many(keys, {}, x, y)))      # warm-up
    stacked = jax.tree.map(lambda *a: jnp.stack(a), *[s.params for s, _ in looped])
    diff = max(float(jnp.max(jnp.abs(a - b)))
               for a, b in zip(jax.tree.leaves(stacked), jax.tree.leaves(together[0].params)))
    times = time_interleaved({"loop": loop, "many": lambda: many(keys, {}, x, y)}, repeats)
    t_loop, t_many = (summarize_times(times[k]) for k in ("loop", "many"))
    converged = ensemble.converged(model, together[0].params, x, y)
    return {
        "problem": name, "examples": int(x.shape[0]), "n_models": n_models, "steps": steps,
        "sizes": list(SIZES), "activation": ACTIVATION, "optimizer": f"sgd({LEARNING_RATE})",
        "compile_seconds": {"one_model": compile_one, "many_models": compile_many},
        "loop_seconds": t_loop, "many_seconds": t_many,
        "speedup": t_loop["median"] / t_many["median"],
        "microseconds_per_model_step": {
            "loop": 1e6 * t_loop["median"] / (n_models * steps),
            "many": 1e6 * t_many["median"] / (n_models * steps)},
        "max_abs_param_difference": diff,
        "fraction_classifying_all_training_points": float(np.mean(np.asarray(converged))),
    }


def parse_args(argv):
    p = cli.ArgumentParser(prog="python -m benchmarks.many_models", description=__doc__)
    p.add_argument("--quick", action="store_true",
                   help=f"{QUICK['steps']} steps, two problems, {QUICK['repeats']} rounds (about a minute on 2 CPU cores)")
    p.add_argument("--models", type=cli.positive_int, default=N_MODELS, help=f"N (default {N_MODELS})")
    p.add_argument("--steps", type=cli.positive_int, help=f"training steps per model (default {STEPS})")
    p.add_argument("--repeats", type=cli.positive_int, help=f"timed rounds (default {REPEATS})")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed for the keys and the data")
    p.add_argument("--json", metavar="PATH", help="write every figure as JSON")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    info = device_info()
    print(f"device: {info['description']}; JAX {info['jax_version']}")
    steps = args.steps or (QUICK["steps"] if args.quick else STEPS)
    repeats = args.repeats or (QUICK["repeats"] if args.quick else REPEATS)
    problems = QUICK["problems"] if args.quick else PROBLEMS
    print(f"{args.models} MLPs {'-'.join(map(str, SIZES))} {ACTIVATION}, full-batch sgd({LEARNING_RATE}), "
          f"{steps} steps each; median of {repeats} rounds")
    header = (f"{'problem':<10} {'n':>4} {'compile 1':>10} {'compile N':>10} {'loop':>9} {'vmapped':>9} "
              f"{'speedup':>8} {'µs/model-step loop':>19} {'vmapped':>8} {'max |Δp|':>9}")
    print(header)
    records = []
    for name, n in problems:
        r = run_problem(name, n, n_models=args.models, steps=steps, repeats=repeats, seed=args.seed)
        records.append(r)
        us = r["microseconds_per_model_step"]
        print(f"{name:<10} {r['examples']:>4} {format_seconds(r['compile_seconds']['one_model']):>10} "
              f"{format_seconds(r['compile_seconds']['many_models']):>10} "
              f"{format_seconds(r['loop_seconds']['median']):>9} {format_seconds(r['many_seconds']['median']):>9} "
              f"{r['speedup']:>7.1f}x {us['loop']:>19.3f} {us['many']:>8.3f} {r['max_abs_param_difference']:>9.1e}")
    head = records[0]
    verdict = "meets" if head["speedup"] >= GOAL_SPEEDUP else "misses"
    print(f"{head['problem']} ({head['examples']} examples): {head['speedup']:.1f}x, "
          f"{verdict} the {GOAL_SPEEDUP:.0f}x goal on CPU")
    if args.json:
        folder = os.path.dirname(os.path.abspath(args.json))
        os.makedirs(folder, exist_ok=True)
        command = "python -m benchmarks.many_models " + " ".join(sys.argv[1:] if argv is None else argv)
        with open(args.json, "w") as f:
            json.dump({"device": info, "command": command.strip(), "goal_speedup": GOAL_SPEEDUP,
                       "results": records}, f, indent=1)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
