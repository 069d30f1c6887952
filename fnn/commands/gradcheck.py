"""fnn gradcheck: hand-written backprop against jax.grad and finite differences, in float64, on a model or a saved run.

    fnn gradcheck                       the MNIST-1D MLP (40-100-100-10 relu), fresh params
    fnn gradcheck --model gru           any of the MNIST-1D table's models
    fnn gradcheck runs/latest           a trained run's model at its trained params

Inputs are N(0, 1), the scale of standardized data; targets are drawn for the
task. Finite differences cover `--fd-per-leaf` elements of each leaf (all of
a leaf that has fewer). Exit code 1 if a leaf is past the tolerances.
"""
import jax
import jax.numpy as jnp
import numpy as np

from fnn import cli, data, models
from fnn.check import FD_EPS, TOL_AUTODIFF, TOL_FD, check_gradients
from fnn.losses import get_loss
from fnn.runs.config import MAX_SEED
from fnn.runs.run import load_run

__all__ = ["add_gradcheck", "gradcheck"]

MNIST1D_SHAPE = (40, 10)       # features, classes


def add_gradcheck(p):
    p.add_argument("run", metavar="RUN", nargs="?", help="a run folder written by fnn train (default: none, "
                                                         "check --model with fresh params)")
    p.add_argument("--model", choices=sorted(models.MNIST1D_MODELS), default="mlp",
                   help="without RUN: the MNIST-1D model to check (default mlp)")
    p.add_argument("--batch", type=cli.int_in_range(1, 4096), default=8, help="examples in the batch (default 8)")
    p.add_argument("--fd-per-leaf", type=cli.int_in_range(1, 2**31 - 1), default=32,
                   help="finite differences on at most this many elements of each leaf (default 32)")
    p.add_argument("--seed", type=cli.int_in_range(0, MAX_SEED), default=0,
                   help="PRNG seed for params, inputs and the elements differenced (default 0)")
    return p


def _targets(task, key, batch, outputs):
    if task == "classification":
        return jax.random.randint(key, (batch,), 0, outputs)
    if task == "binary":
        return jax.random.bernoulli(key, 0.5, (batch,)).astype(jnp.float64)
    return jax.random.normal(key, (batch, outputs), jnp.float64)


def gradcheck(args):
    """Run the check and print one line per parameter leaf; exit code 0 if every leaf passes, else 1."""
    key = jax.random.key(args.seed)
    k_params, k_x, k_y, k_drop, k_fd = jax.random.split(key, 5)
    run = None if args.run is None else load_run(args.run)      # restored in its own dtypes
    with jax.enable_x64(True):
        if run is not None:
            model, params, state, task = run.model, run.params, run.model_state, run.task
            features, outputs = run.data["in_features"], run.data["out_features"]
            what = f"the run in {args.run} at step {run.step:,}"
        else:
            model = models.mnist1d_model(args.model)
            features, outputs = MNIST1D_SHAPE
            _, params = model.init(k_params, (-1, features), jnp.float64)
            state, task = None, "classification"
            what = f"--model {args.model} (fresh params)"
        loss = get_loss(data.TASK_LOSS[task])
        x = jax.random.normal(k_x, (args.batch, features), jnp.float64)
        y = _targets(task, k_y, args.batch, outputs)
        result = check_gradients(model, loss, params, x, y, key=k_drop if model.stochastic else None,
                                 state=state or None, max_fd_per_leaf=args.fd_per_leaf, fd_key=k_fd, eps=FD_EPS)
    print(f"gradient check of {what}: {model.name}, loss {loss.name}, batch {args.batch}, float64")
    print(f"{'leaf':<36} {'manual vs jax.grad':>19} {'manual vs fd':>13} {'jax.grad vs fd':>15}")
    for leaf in result.leaves:
        print(f"{leaf.path:<36} {leaf.manual_vs_autodiff:>19.2e} {leaf.manual_vs_fd:>13.2e} "
              f"{leaf.autodiff_vs_fd:>15.2e}")
    ok = result.ok()
    print(f"max: manual vs jax.grad {result.max_manual_vs_autodiff:.2e} (tolerance {TOL_AUTODIFF:.0e}), "
          f"vs finite differences {result.max_manual_vs_fd:.2e} (tolerance {TOL_FD:.0e}): "
          + ("pass" if ok else "FAIL"))
    if not ok and np.isfinite(result.max_manual_vs_autodiff) and result.max_manual_vs_autodiff <= TOL_AUTODIFF:
        print("manual and jax.grad agree; finite differences disagree with both, which on a relu network "
              "means a step crossed a kink: try another --seed")
    return 0 if ok else 1
