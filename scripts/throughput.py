"""Train-step throughput of a wide MLP: samples/s and TFLOP/s against this device's measured matmul rate."""
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import fnn  # noqa: E402
from fnn import cli, optim, precision  # noqa: E402
from fnn.errors import InputError  # noqa: E402
from fnn.train import StepConfig, init_state, make_step  # noqa: E402
from fnn.train.step import training_optimizer  # noqa: E402

# Settings: a ReLU MLP with softmax cross-entropy on synthetic data (x ~ N(0, 1), random labels),
# plain SGD (its update costs one multiply-add per parameter), one fixed batch. A timed call
# is STEPS train steps in one lax.scan; the figure is the median over REPEATS calls.
# FLOPs per step: 6·B·in·out per Dense layer (forward X W, backward dZ Wᵀ and Xᵀ dZ).
DEFAULTS = {
    "cpu": dict(sizes="784-1024-1024-10", batch=256, steps=10, matmul_size=2048),
    "gpu": dict(sizes="784-4096-4096-10", batch=4096, steps=50, matmul_size=8192),
}
REPEATS = 5
LEARNING_RATE = 1e-3
METHODS = ("manual", "autodiff")


def parse_args(argv):
    p = cli.ArgumentParser(description=__doc__)
    p.add_argument("--sizes", help="layer widths, e.g. 784-4096-4096-10 (default: "
                   f"{DEFAULTS['cpu']['sizes']} on CPU, {DEFAULTS['gpu']['sizes']} on GPU/TPU)")
    p.add_argument("--batch", type=cli.positive_int, help="batch size (default 256 on CPU, 4096 otherwise)")
    p.add_argument("--steps", type=cli.positive_int, help="train steps per timed call (default 10 on CPU, 50 otherwise)")
    p.add_argument("--repeats", type=cli.positive_int, default=REPEATS, help=f"timed calls (default {REPEATS})")
    p.add_argument("--grad", choices=METHODS + ("both",), default="both",
                   help="manual (hand-written backprop), autodiff (jax.grad) or both")
    p.add_argument("--precision", choices=precision.PRECISIONS, default="fp32",
                   help="fp32, or bf16/fp16 compute with float32 master parameters")
    p.add_argument("--matmul-size", type=cli.positive_int,
                   help="n of the reference (n, n) @ (n, n) matmul (default 2048 on CPU, 8192 otherwise)")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed for parameters and data")
    p.add_argument("--json", metavar="PATH", help="write every figure as JSON")
    return p.parse_args(argv)


def parse_sizes(text):
    try:
        sizes = [int(s) for s in text.replace(",", "-").split("-") if s.strip()]
    except ValueError:
        sizes = []
    if len(sizes) < 2 or any(s <= 0 for s in sizes):
        raise InputError(f"--sizes must be two or more positive widths such as 784-4096-4096-10, got {text!r}")
    return sizes


def flops_per_step(sizes, batch):
    """6·B·Σ in·out: each Dense layer's forward and two backward matmuls."""
    return 6.0 * batch * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


def _median_seconds(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def matmul_rate(n, dtype, repeats):
    """FLOP/s of an (n, n) @ (n, n) jnp.dot in `dtype` on the default device: 2n³ / median time."""
    ka, kb = jax.random.split(jax.random.key(1))
    a, b = jax.random.normal(ka, (n, n), dtype), jax.random.normal(kb, (n, n), dtype)
    dot = jax.jit(jnp.dot)
    jax.block_until_ready(dot(a, b))                            # compile and warm up
    median, times = _median_seconds(lambda: dot(a, b), max(repeats, 3))
    return {"n": n, "dtype": str(jnp.dtype(dtype)), "seconds": median, "times": times,
            "flops_per_second": 2.0 * n ** 3 / median}


def prepare(model, sizes, x, y, *, method, policy, steps, key):
    """(call, compile seconds): call() runs `steps` compiled train steps and returns their losses."""
    config = StepConfig(method=method, precision=policy if policy.mixed else None)
    opt = training_optimizer(optim.sgd(LEARNING_RATE), config)      # float16: with its loss scale
    step = make_step(model, "softmax_cross_entropy", opt, config)

    def run(state, x, y):
        return jax.lax.scan(lambda s, _: step(s, x, y), state, None, length=steps)

    _, params = model.init(key, (-1, sizes[0]))
    state = jax.tree.map(jnp.copy, init_state(params, opt, key))   # donated: the caller's key stays valid
    t0 = time.perf_counter()
    compiled = jax.jit(run, donate_argnums=0).lower(state, x, y).compile()
    compile_seconds = time.perf_counter() - t0
    box = {"state": state}

    def call():
        box["state"], (losses, _) = compiled(box["state"], x, y)
        return losses

    jax.block_until_ready(call())                                  # warm-up
    return call, compile_seconds


def time_methods(calls, repeats):
    """{method: [seconds per call]}, the methods interleaved (reversed on odd rounds) so drift hits all."""
    times = {m: [] for m in calls}
    for r in range(repeats):
        for m in (list(calls) if r % 2 == 0 else list(calls)[::-1]):
            t0 = time.perf_counter()
            jax.block_until_ready(calls[m]())
            times[m].append(time.perf_counter() - t0)
    return times


def summarize(method, times, compile_seconds, losses, sizes, batch, steps):
    """The JSON record of one method: step time, samples/s, FLOP/s."""
    step_seconds = statistics.median(times) / steps
    flops = flops_per_step(sizes, batch)
    return {"method": method, "compile_seconds": compile_seconds, "call_seconds": statistics.median(times),
            "times": times, "step_seconds": step_seconds, "samples_per_second": batch / step_seconds,
            "flops_per_step": flops, "flops_per_second": flops / step_seconds,
            "final_loss": float(losses[-1]), "loss_finite": bool(np.all(np.isfinite(losses)))}


def main(argv=None):
    args = parse_args(argv)
    platform = jax.devices()[0].platform
    defaults = DEFAULTS["cpu" if platform == "cpu" else "gpu"]
    sizes = parse_sizes(args.sizes or defaults["sizes"])
    batch = args.batch or defaults["batch"]
    steps = args.steps or defaults["steps"]
    policy = precision.get_policy(args.precision)
    methods = METHODS if args.grad == "both" else (args.grad,)
    print(f"device: {cli.device_description()}")
    print(f"MLP {'-'.join(map(str, sizes))} relu, softmax cross-entropy, sgd, batch {batch}, "
          f"{args.precision} ({policy.compute_dtype} compute); {steps} steps per call, median of {args.repeats}")
    matmul_n = args.matmul_size or defaults["matmul_size"]
    before = matmul_rate(matmul_n, policy.compute_dtype, args.repeats)
    key_p, key_x, key_y = jax.random.split(jax.random.key(args.seed), 3)
    x = jax.random.normal(key_x, (batch, sizes[0]), jnp.float32)
    y = jax.random.randint(key_y, (batch,), 0, sizes[-1], jnp.int32)
    model = fnn.mlp(sizes, activation="relu")
    prepared = {m: prepare(model, sizes, x, y, method=m, policy=policy, steps=steps, key=key_p) for m in methods}
    times = time_methods({m: call for m, (call, _) in prepared.items()}, args.repeats)
    results = [summarize(m, times[m], prepared[m][1], np.asarray(prepared[m][0]()), sizes, batch, steps)
               for m in methods]
    print(f"{'grad':<9} {'compile':>8} {'step':>10} {'samples/s':>12} {'TFLOP/s':>8} {'of matmul':>10}")
    after = matmul_rate(matmul_n, policy.compute_dtype, args.repeats)
    mm = max(before, after, key=lambda m: m["flops_per_second"])   # the device's rate: the faster of the two
    for r in results:
        r["matmul_fraction"] = r["flops_per_second"] / mm["flops_per_second"]
        print(f"{r['method']:<9} {r['compile_seconds']:>7.2f}s {r['step_seconds'] * 1e3:>8.3f}ms "
              f"{r['samples_per_second']:>12,.0f} {r['flops_per_second'] / 1e12:>8.3f} {r['matmul_fraction']:>9.1%}")
    print(f"matmul rate: ({matmul_n}, {matmul_n}) @ ({matmul_n}, {matmul_n}) {mm['dtype']}: "
          f"{mm['flops_per_second'] / 1e12:.3f} TFLOP/s (the faster of {before['flops_per_second'] / 1e12:.3f} "
          f"before and {after['flops_per_second'] / 1e12:.3f} after the train steps)")
    if len(results) == 2:
        print(f"manual / autodiff step time: {results[0]['step_seconds'] / results[1]['step_seconds']:.3f}")
    if args.json:
        folder = os.path.dirname(os.path.abspath(args.json))
        os.makedirs(folder, exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"device": cli.device_description(), "platform": platform, "sizes": sizes,
                       "batch": batch, "steps_per_call": steps, "repeats": args.repeats,
                       "precision": policy.name, "compute_dtype": str(policy.compute_dtype),
                       "matmul": mm, "matmul_before": before, "matmul_after": after,
                       "results": results}, f, indent=1)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
