"""Hand-written backprop against jax.grad for convolutional networks: agreement, time, memory.

The convolutional part of the manual-vs-autodiff benchmark (benchmarks.grads
is the MLP grid), measured the same way: for each configuration the jitted
gradient program and the jitted train step (forward, loss, backward, Adam;
state donated) of both methods, timed in interleaved rounds after warm-up
(medians; the ratio is manual / autodiff), XLA's peak memory of each
compiled program, and both gradients against a float64 jax.grad.

A configuration is a 1-D (batch, L, C_in) or 2-D (batch, H, W, C_in) input,
`depth` × [Conv(channels, kernel, stride, SAME) → norm → relu], then
GlobalAvgPool → Dense(10) and softmax cross-entropy; norm is "none",
"batch" (BatchNorm, its running statistics carried as model state) or
"layer" (LayerNorm).

    python -m benchmarks.convs [--quick] [--json PATH]
"""
import argparse
import json
import statistics
import sys
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import fnn
from fnn.grads import METHODS
from fnn.train import StepConfig, init_state, make_step

from benchmarks.common import (compile_timed, device_info, dtype_context, memory_figures, ratio,
                               summarize_times, time_interleaved)
from benchmarks.grads import FULL_TIMING, QUICK_TIMING, _leaf_errors, _reference_grads, _Stepper, _warm_up

GOALS = dict(time_median=1.00, time_worst=1.10, memory=1.00)
C_IN, CLASSES = 4, 10
NORMS = ("none", "batch", "layer")


class ConvConfig(NamedTuple):
    """One benchmarked convolutional network and its batch."""
    dims: int          # 1: (batch, L, C_in); 2: (batch, L, L, C_in)
    length: int
    channels: int
    depth: int
    kernel: int
    stride: int
    batch: int
    norm: str

    @property
    def name(self):
        return (f"{self.dims}d-L{self.length}-c{self.channels}-d{self.depth}-k{self.kernel}-"
                f"s{self.stride}-b{self.batch}-{self.norm}")

    def model(self):
        layers = []
        for i in range(self.depth):
            layers.append(fnn.Conv(self.channels, self.kernel, stride=self.stride if i == 0 else 1,
                                   padding="SAME", use_bias=self.norm == "none"))
            layers += {"none": [], "batch": [fnn.BatchNorm()], "layer": [fnn.LayerNorm()]}[self.norm]
            layers.append(fnn.Activation("relu"))
        return fnn.serial(*layers, fnn.GlobalAvgPool(), fnn.Dense(CLASSES))

    @property
    def input_shape(self):
        return (-1,) + (self.length,) * self.dims + (C_IN,)


def default_grid(quick=False):
    """1-D and 2-D, widths, kernels, strides and batches around a base, with and without normalization."""
    if quick:
        base1, base2 = ConvConfig(1, 32, 16, 2, 3, 1, 16, "none"), ConvConfig(2, 8, 8, 2, 3, 1, 8, "none")
        sweeps = dict(norm=NORMS[1:], stride=(2,))
    else:
        base1, base2 = ConvConfig(1, 128, 64, 2, 3, 1, 64, "none"), ConvConfig(2, 16, 32, 2, 3, 1, 32, "none")
        sweeps = dict(channels=(16, 128), kernel=(5,), stride=(2,), batch=(8, 256), norm=NORMS[1:])
    grid = [base1, base2]
    for base in (base1, base2):
        for field, values in sweeps.items():
            grid += [base._replace(**{field: v}) for v in values]
    return list(dict.fromkeys(grid))


def run_config(config, *, key, timing, dtype="float32"):
    """The figures of one configuration, manual and autodiff side by side.

    dtype: the parameters', inputs' and model state's dtype (one of
    benchmarks.common.DTYPES; float64 runs in jax's 64-bit mode).
    """
    loss = fnn.get_loss("softmax_cross_entropy")
    opt = fnn.optim.adam(1e-3)
    model = config.model()
    k_init, k_x, k_y = jax.random.split(key, 3)
    dt = jnp.dtype(dtype)
    with dtype_context(dtype):
        _, params = model.init(k_init, config.input_shape, dt)
        x = jax.random.normal(k_x, (config.batch,) + config.input_shape[1:], dt)
        y = jax.random.randint(k_y, (config.batch,), 0, CLASSES, jnp.int32)
        model_state = fnn.init_state(model, config.input_shape, dt)
        given = model_state if model.stateful else None
        compiled, calls = {}, {}
        for m in METHODS:
            vg = fnn.make_value_and_grad(model, loss, m)
            compiled["grad", m], _ = compile_timed(lambda p, xx, yy, vg=vg: vg(p, xx, yy, state=given),
                                                   params, x, y)
            state = init_state(jax.tree.map(jnp.copy, params), opt, jax.random.fold_in(key, METHODS.index(m)),
                               jax.tree.map(jnp.copy, model_state))
            compiled["step", m], _ = compile_timed(make_step(model, loss, opt, StepConfig(method=m)), state, x,
                                                   y, donate_argnums=0)
            calls["grad", m] = lambda c=compiled["grad", m]: c(params, x, y)
            calls["step", m] = _Stepper(compiled["step", m], state, x, y)
        first, repeats = _warm_up(calls, timing)
        times = time_interleaved(calls, repeats)
    grads = {m: jax.device_get(first["grad", m][1]) for m in METHODS}
    record = {"config": config._asdict(), "name": config.name, "dtype": dtype, "repeats": repeats,
              "parameters": int(sum(np.size(p) for p in jax.tree.leaves(params))),
              "agreement": _leaf_errors(grads["manual"], grads["autodiff"],
                                        _reference_grads(model, loss, params, x, y, given)),
              "time": {}, "memory": {}}
    for p in ("grad", "step"):
        s = {m: summarize_times(times[p, m]) for m in METHODS}
        mem = {m: memory_figures(compiled[p, m]) for m in METHODS}
        peak = {m: mem[m]["peak_bytes"] if mem[m] else None for m in METHODS}
        record["time"][p] = dict(s, ratio=ratio(s["manual"]["median"], s["autodiff"]["median"]))
        record["memory"][p] = dict(peak, ratio=ratio(peak["manual"], peak["autodiff"]))
    return record


def summarize(records):
    """Median and worst manual/autodiff ratios over the configurations, per program, and the goals."""
    out = {}
    for p in ("grad", "step"):
        t = [r["time"][p]["ratio"] for r in records]
        mem = [r["memory"][p]["ratio"] for r in records if r["memory"][p]["ratio"] is not None]
        out[p] = {"time_median": statistics.median(t), "time_worst": max(t),
                  "worst_config": max(records, key=lambda r: r["time"][p]["ratio"])["name"],
                  "memory_worst": max(mem) if mem else None}
    step = out["step"]
    out["goals"] = {"time_median": step["time_median"] <= GOALS["time_median"],
                    "time_worst": step["time_worst"] <= GOALS["time_worst"],
                    "memory": step["memory_worst"] is not None and step["memory_worst"] <= GOALS["memory"]}
    out["max_manual_vs_reference"] = max(r["agreement"]["manual_vs_reference"] for r in records)
    return out


def row(r):
    t, m = r["time"], r["memory"]
    return (f"{r['name']:<34} grad {t['grad']['ratio']:.3f}  step {t['step']['ratio']:.3f}  "
            f"memory {m['step']['ratio']:.3f}  manual {t['step']['manual']['median'] * 1e3:8.3f} ms  "
            f"vs f64 {r['agreement']['manual_vs_reference']:.1e}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="a small grid and short timing (a smoke test)")
    p.add_argument("--json", metavar="PATH", help="write every figure to this JSON file")
    args = p.parse_args(argv)
    timing = QUICK_TIMING if args.quick else FULL_TIMING
    print(f"device: {device_info()['description']}")
    records = run_grid(default_grid(args.quick), timing)
    report(summarize(records), GOALS, records, timing, args.json)
    return 0


def run_grid(grid, timing, describe=row):
    """run_config for every configuration of the grid, each key folded from key(0), a line printed per one."""
    records = []
    for i, config in enumerate(grid):
        records.append(run_config(config, key=jax.random.fold_in(jax.random.key(0), i), timing=timing))
        print(describe(records[-1]), flush=True)
    return records


def report(s, goals, records, timing, json_path=None):
    """Print the summary's ratios and every goal (met: True/False, None where nothing measured it);
    write every figure to json_path if given."""
    for prog in ("grad", "step"):
        print(f"{prog}: time ratio median {s[prog]['time_median']:.3f}, worst {s[prog]['time_worst']:.3f} "
              f"({s[prog]['worst_config']}); peak memory ratio worst {s[prog]['memory_worst']}")
    print("goals: " + "; ".join(f"{name} ≤ {goals[name]}: {met}" for name, met in s["goals"].items()))
    if json_path:
        with open(json_path, "w") as f:
            json.dump({"device": device_info(), "timing": timing, "goals": goals, "records": records,
                       "summary": s}, f, indent=1, default=float)

if __name__ == "__main__":
    sys.exit(main())
