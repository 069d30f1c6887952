"""Train an MLP with fnn's hand-written backprop (default: MNIST-1D) and report test accuracy."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax.flatten_util import ravel_pytree  # noqa: E402

import fnn  # noqa: E402
from fnn import checkpoint, cli, data, optim, parallel, precision  # noqa: E402
from fnn.errors import InputError  # noqa: E402
from fnn.viz import report  # noqa: E402
from fnn.check import precision_check, relative_error  # noqa: E402
from fnn.train import fit, evaluate, init_state  # noqa: E402
from fnn.train.step import training_optimizer  # noqa: E402
from fnn.validate import parse_int_list  # noqa: E402

# Defaults: MNIST-1D, MLP 40-100-100-10 ReLU, Adam, batch 100 (the dataset's published MLP setup).
DEFAULTS = dict(dataset="mnist1d", hidden="100,100", activation="relu", optimizer="adam",
                lr=1e-2, batch_size=100, steps=6000, grad="manual", seed=0, out="runs/latest")
CHECKPOINT = "checkpoint.npz"
CONFIG_KEYS = ("dataset", "hidden", "activation", "optimizer", "lr", "batch_size", "epochs",
               "steps", "grad", "seed", "precision")


def parse_args(argv):
    p = cli.ArgumentParser(description=__doc__)
    p.add_argument("--dataset", default=DEFAULTS["dataset"],
                   help=f"one of {', '.join(data.DATASETS)}, or a .npz/.csv file")
    p.add_argument("--hidden", default=DEFAULTS["hidden"], help="hidden widths, e.g. 100,100 ('' for none)")
    p.add_argument("--activation", default=DEFAULTS["activation"], help=f"one of {', '.join(fnn.ACTIVATIONS)}")
    p.add_argument("--optimizer", default=DEFAULTS["optimizer"], help=f"one of {', '.join(optim.OPTIMIZERS)}")
    p.add_argument("--lr", type=cli.positive_float, default=DEFAULTS["lr"], help="learning rate")
    p.add_argument("--batch-size", type=cli.positive_int, default=None,
                   help=f"minibatch size (default {DEFAULTS['batch_size']}, or the whole set if smaller)")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=cli.positive_int, help="train this many epochs")
    length.add_argument("--steps", type=cli.positive_int, help=f"train this many steps (default {DEFAULTS['steps']})")
    p.add_argument("--grad", choices=fnn.grads.METHODS, default=DEFAULTS["grad"],
                   help="manual: hand-written backprop; autodiff: jax.grad")
    p.add_argument("--seed", type=int, default=DEFAULTS["seed"], help="PRNG seed for init, shuffling and dropout")
    p.add_argument("--precision", choices=precision.PRECISIONS, default="fp32",
                   help="fp32; bf16: bfloat16 forward and backward, float32 master params; "
                        "fp16: float16 with dynamic loss scaling")
    p.add_argument("--devices", type=cli.positive_int, default=None,
                   help="data parallel over this many devices: each batch split over them, gradients all-reduced")
    p.add_argument("--out", default=None, help=f"output folder (default {DEFAULTS['out']}, or --resume's)")
    p.add_argument("--resume", metavar="DIR", help=f"continue the run whose {CHECKPOINT} is in DIR")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--report", action="store_true",
                   help="also write OUT/report.html: the training as frames with a slider")
    return p.parse_args(argv)


def run_config(args):
    """The run's configuration: from the flags, or from the checkpoint being resumed."""
    given = {k: getattr(args, k) for k in CONFIG_KEYS}
    if args.resume:
        saved, _ = checkpoint.read_config(os.path.join(args.resume, CHECKPOINT))
        config = dict(saved["run"])
        config.setdefault("precision", "fp32")              # checkpoints from before --precision
        if args.epochs or args.steps:                       # a new target length is allowed
            config.update(epochs=args.epochs, steps=args.steps)
        return config
    if not (given["epochs"] or given["steps"]):
        given["steps"] = DEFAULTS["steps"]
    return given


def hidden_sizes(text):
    """--hidden's widths: '100,100' -> [100, 100], '' -> [] (no hidden layer)."""
    return parse_int_list("--hidden", text)


def build(config):
    """(dataset, model, loss, optimizer) for a configuration."""
    ds = data.get_dataset(config["dataset"], key=jax.random.key(config["seed"]))
    ds, _ = data.standardize_dataset(ds, targets=ds.task == "regression")
    sizes = [ds.in_features] + hidden_sizes(config["hidden"]) + [ds.out_features]
    model = fnn.mlp(sizes, activation=config["activation"])
    loss = fnn.get_loss(data.TASK_LOSS[ds.task])
    optimizer = optim.get_optimizer(config["optimizer"], learning_rate=config["lr"])
    return ds, sizes, model, loss, optimizer


def grad_check(model, loss, params, x, y):
    """‖g_manual − g_jax‖∞ / ‖g‖∞ over all parameters, on one batch in the run's own dtype.

    One scale for the whole gradient: a leaf whose true gradient is 0 (an output
    bias on balanced data) would make a per-leaf ratio of float32 round-off meaningless.
    """
    _, manual = fnn.value_and_grad(model, loss, params, x, y, method="manual")
    _, auto = fnn.value_and_grad(model, loss, params, x, y, method="autodiff")
    return relative_error(ravel_pytree(manual)[0], ravel_pytree(auto)[0])


def save_plot(history, path, title):
    """The loss (and accuracy) curves of the run, train and test, against the step."""
    from fnn import viz
    fig = viz.plot_history(history, x="step")
    fig.suptitle(title)
    viz.save_figure(fig, path)


def main(argv=None):
    args = parse_args(argv)
    t_start = time.perf_counter()
    mesh = None if args.devices is None else parallel.make_mesh(args.devices)
    config = run_config(args)
    policy = precision.get_policy(config["precision"])
    out = args.out or args.resume or DEFAULTS["out"]
    os.makedirs(out, exist_ok=True)
    ds, sizes, model, loss, optimizer = build(config)
    if config["batch_size"] is None:
        config["batch_size"] = min(DEFAULTS["batch_size"], ds.x_train.shape[0])
    if config["batch_size"] > ds.x_train.shape[0]:
        raise InputError(f"--batch-size {config['batch_size']} is larger than the "
                         f"{ds.x_train.shape[0]} training examples of {config['dataset']}")
    if mesh is not None:
        parallel.check_batch_size(config["batch_size"], mesh)
    step_config = fnn.StepConfig(method=config["grad"], precision=policy if policy.mixed else None,
                                 mesh=mesh)
    template_optimizer = training_optimizer(optimizer, step_config)   # float16: its state holds the loss scale
    print(f"device: {cli.device_description()}")
    if mesh is not None:
        n = mesh.devices.size
        print(f"data parallel: each batch of {config['batch_size']} split over {n} devices "
              f"({config['batch_size'] // n} each), gradients all-reduced")
    if policy.mixed:
        print(f"precision: {policy.name}: float32 master parameters, forward and backward in "
              f"{policy.compute_dtype}" + (", dynamic loss scaling" if policy.loss_scaling else ""))
    print(f"data: {ds!r}")
    print(f"model: {'-'.join(map(str, sizes))} {config['activation']}, loss {loss.name}, "
          f"{config['optimizer']} lr {config['lr']}, gradients: {config['grad']}")

    key = jax.random.key(config["seed"])
    init_key, train_key = jax.random.split(key)
    _, params = model.init(init_key, (-1, ds.in_features))
    state, history = None, None
    if args.resume:
        template = init_state(params, template_optimizer, train_key)
        trees, meta = checkpoint.load(os.path.join(args.resume, CHECKPOINT), {"state": template})
        state, history = trees["state"], meta["config"]["history"]
        print(f"resumed from {args.resume} at step {int(state.step)}")

    batch = config["batch_size"]
    check_args = (model, loss, params if state is None else state.params,
                  jnp.asarray(ds.x_train[:batch]), jnp.asarray(ds.y_train[:batch]))
    if not policy.mixed:
        rel = grad_check(*check_args)
        print(f"gradient check (one batch, float32): hand-written vs jax.grad max relative error {rel:.2e}")
    else:
        check = precision_check(*check_args, precision=policy)
        rel = check["vs_autodiff"]
        print(f"gradient check (one batch, {policy.compute_dtype}): hand-written vs jax.grad max relative "
              f"error {rel:.2e} (expected below {check['tolerance']:.0e}); vs float32 jax.grad "
              f"{check['vs_float32']:.2e} (expected below {check['float32_tolerance']:.0e})")

    def save(state, history):
        checkpoint.save(os.path.join(out, CHECKPOINT), {"state": state}, step=int(state.step),
                        config={"run": config, "history": history})

    snapshots, fit_kwargs = None, dict(callback=save)
    if args.report:   # the parameters every few epochs: the report's frames
        snapshots = report.Snapshots(params if state is None else state, history=history, then=save)
        fit_kwargs = dict(callback=snapshots, chunk_steps=report.chunk_steps(
            len(ds.x_train), batch, epochs=config["epochs"], steps=config["steps"]))
    result = fit(model, loss, optimizer, params, ds.x_train, ds.y_train, key=train_key,
                 epochs=config["epochs"], steps=config["steps"], batch_size=batch,
                 validation_data=(ds.x_test, ds.y_test), config=step_config,
                 progress=not args.no_progress, state=state, history=history, **fit_kwargs)
    test = evaluate(model, loss, result.params, ds.x_test, ds.y_test)
    train = evaluate(model, loss, result.params, ds.x_train, ds.y_train)
    wall = time.perf_counter() - t_start
    metrics = {
        "dataset": config["dataset"], "device": cli.device_description(), "grad": config["grad"],
        "model": "-".join(map(str, sizes)), "activation": config["activation"],
        "optimizer": config["optimizer"], "lr": config["lr"], "batch_size": batch,
        "seed": config["seed"], "steps": result.steps, "epochs": len(result.history["epoch"]),
        "wall_seconds": wall, "train_seconds": result.wall_seconds,
        "steps_per_second": result.steps_per_second,
        "train_loss": train["loss"], "train_accuracy": train["accuracy"],
        "test_loss": test["loss"], "test_accuracy": test["accuracy"],
        "grad_check_rel_err": rel, "nonfinite_step": result.nonfinite_step,
        "precision": policy.name, "devices": 1 if mesh is None else int(mesh.devices.size),
    }
    with open(os.path.join(out, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    save_plot(result.history, os.path.join(out, "loss.png"),
              f"{config['dataset']} {metrics['model']} ({config['grad']} gradients)")
    if result.nonfinite_step is not None:
        print(f"stopped: non-finite loss or gradient at step {result.nonfinite_step}; "
              "kept the last finite parameters")
    acc = "" if test["accuracy"] is None else f", test accuracy {test['accuracy']:.4f}"
    print(f"trained {result.steps} steps in {result.wall_seconds:.1f} s "
          f"({result.steps_per_second:,.0f} steps/s); train loss {train['loss']:.4f}, "
          f"test loss {test['loss']:.4f}{acc}")
    print(f"wrote {out}/metrics.json, {out}/{CHECKPOINT}, {out}/loss.png  (total {wall:.1f} s)")
    if snapshots is not None:
        path = report.write_report(os.path.join(out, "report.html"), model, loss, ds, snapshots,
                                   result.history, summary=metrics)
        print(f"wrote {path} ({len(snapshots)} frames)")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
