"""fnn train: train an MLP or the MNIST-1D paper's CNN with fnn's hand-written backprop (default: MNIST-1D).

Writes a self-contained run folder: checkpoint.npz (params, optimizer state,
the preprocessing), history.jsonl, metrics.json, loss.png (and report.html),
which `fnn evaluate`, `fnn predict`, `fnn summary` and `fnn.load_run` read.
"""
import io
import math
import os
import secrets
import sys
import time

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

import fnn
from fnn import checkpoint, cli, data, models, optim, parallel, precision
from fnn.errors import InputError
from fnn.viz import live as live_report, report
from fnn.check import precision_check, relative_error
from fnn.train import fit, evaluate, init_state
from fnn.train.step import training_optimizer
from fnn.runs import folders
from fnn.runs.build import CNN_MIN_LENGTH, build_model, build_optimizer, describe, prepare_data
from fnn.runs.config import (DEFAULT_BATCH, DEFAULTS, LIMITS, MAX_INT32, MAX_SEED,
                             check_resume_flags, flag_config, new_config, saved_config)
from fnn.runs.history import HISTORY, HistoryLog, read_history, strict_json
from fnn.runs.run import CHECKPOINT, METRICS, data_config
from fnn.commands.report import SNAPSHOTS, save_snapshots

PLOT, REPORT = "loss.png", "report.html"
OUTPUTS = (CHECKPOINT, HISTORY, METRICS, PLOT, REPORT, live_report.DATA_FILE, SNAPSHOTS, cli.LOCK_FILE)


def add_arguments(p):
    """The flags of `fnn train` on the ArgumentParser `p`."""
    p.add_argument("--dataset", help=f"one of {', '.join(data.DATASETS)}, or a .npz/.csv file "
                                     f"(default {DEFAULTS['dataset']})")
    p.add_argument("--model", help="mlp: an MLP of --hidden widths and --activation (the default); cnn: the "
                                   "MNIST-1D paper's CNN (three stride-2 convolutions, 25 channels, relu), "
                                   f"PyTorch's default initialization, for {CNN_MIN_LENGTH} or more features; "
                                   "its layers are fixed, so --hidden and --activation are refused with it")
    p.add_argument("--hidden", help=f"hidden widths, e.g. 100,100 ('' for none; default {DEFAULTS['hidden']}; "
                                    "--model mlp only)")
    p.add_argument("--activation", help=f"one of {', '.join(fnn.ACTIVATIONS)} (default {DEFAULTS['activation']}; "
                                        "--model mlp only)")
    p.add_argument("--optimizer", help=f"one of {', '.join(optim.OPTIMIZERS)} (default {DEFAULTS['optimizer']})")
    p.add_argument("--lr", type=cli.positive_float, help=f"learning rate (default {DEFAULTS['lr']})")
    p.add_argument("--batch-size", type=cli.int_in_range(1, MAX_INT32),
                   help=f"minibatch size (default {DEFAULT_BATCH}, or the whole set if smaller)")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=cli.int_in_range(1, MAX_INT32),
                        help=f"train this many epochs (epochs x steps per epoch at most {MAX_INT32:,})")
    length.add_argument("--steps", type=cli.int_in_range(1, MAX_INT32),
                        help=f"train this many steps, at most {MAX_INT32:,} (default {DEFAULTS['steps']})")
    p.add_argument("--grad", choices=fnn.grads.METHODS,
                   help=f"manual: hand-written backprop; autodiff: jax.grad (default {DEFAULTS['grad']})")
    p.add_argument("--seed", type=cli.int_in_range(0, MAX_SEED),
                   help=f"PRNG seed for init, shuffling and dropout, 0 to {MAX_SEED:,} (default 0)")
    p.add_argument("--precision", choices=precision.PRECISIONS,
                   help="fp32 (default); bf16: bfloat16 forward and backward, float32 master params; "
                        "fp16: float16 with dynamic loss scaling")
    p.add_argument("--devices", type=cli.int_in_range(1, 65_536), default=None,
                   help="data parallel over this many devices: each batch split over them, gradients all-reduced")
    g = p.add_argument_group("regularization", "a held-out validation split for early stopping, dropout, "
                                               "weight decay (each 0 to turn it off)")
    g.add_argument("--validation-split", type=cli.fraction,
                   help=f"fraction of the training examples held out to validate on (default "
                        f"{DEFAULTS['validation_split']:g}); the test split is never used for training decisions")
    g.add_argument("--patience", type=cli.int_in_range(0, MAX_INT32),
                   help=f"stop after this many epochs without a lower validation loss and keep the best "
                        f"epoch's params (default {DEFAULTS['patience']}; 0: train every step)")
    g.add_argument("--dropout", type=cli.fraction,
                   help=f"dropout rate after each hidden layer (default {DEFAULTS['dropout']:g}; --model mlp only)")
    g.add_argument("--weight-decay", type=cli.non_negative_float,
                   help=f"weight decay λ (default {DEFAULTS['weight_decay']:g}): decoupled, as AdamW, for "
                        "adam and adamw; added to the gradient (L2) for the other optimizers")
    p.add_argument("--out", default=None,
                   help=f"output folder (default: a new folder {folders.RUNS}/YYYYMMDD-HHMMSS, with "
                        f"{folders.RUNS}/{folders.LATEST} pointing at it; or --resume's); locked for the run")
    p.add_argument("--overwrite", action="store_true",
                   help="allow --out to name a folder that already holds a run (its files are replaced)")
    p.add_argument("--resume", metavar="DIR", help=f"continue the run whose {CHECKPOINT} is in DIR; "
                   "flags other than --steps/--epochs/--out/--no-progress/--report must match it")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--report", action="store_true",
                   help="also write OUT/report.html: the training as frames with a slider")
    g = p.add_argument_group("limits", "checked before anything is allocated; raise them to go bigger")
    limit = cli.int_in_range(1, 2**62)
    g.add_argument("--max-width", type=limit, default=LIMITS["max_width"],
                   help=f"widest layer, or the CNN's channels (default {LIMITS['max_width']:,})")
    g.add_argument("--max-layers", type=limit, default=LIMITS["max_layers"],
                   help=f"most hidden layers, or the CNN's convolutions (default {LIMITS['max_layers']:,})")
    g.add_argument("--max-params", type=limit, default=LIMITS["max_params"],
                   help=f"most parameters in the model (default {LIMITS['max_params']:,} = 2**28)")
    g.add_argument("--max-classes", type=limit, default=LIMITS["max_classes"],
                   help=f"most classes in a dataset (default {LIMITS['max_classes']:,})")
    g.add_argument("--max-data-bytes", type=limit, default=LIMITS["max_data_bytes"],
                   help=f"largest dataset file, and array read from it (default {LIMITS['max_data_bytes']:,} = 256 MiB)")
    return p


def parse_args(argv, prog=None):
    return add_arguments(cli.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])).parse_args(argv)


def total_steps(config, n_train):
    """The run's length in steps; InputError past the int32 step counter or for a batch too large."""
    batch = config["batch_size"]
    if batch > n_train:
        raise InputError(f"--batch-size {batch} is larger than the {n_train} training examples of "
                         f"{config['dataset']}")
    if config["steps"] is not None:
        return config["steps"]
    per_epoch = n_train // batch
    total = config["epochs"] * per_epoch
    if total > MAX_INT32:
        raise InputError(f"--epochs {config['epochs']:,} x {per_epoch:,} steps per epoch is {total:,} steps, "
                         f"more than the maximum {MAX_INT32:,}")
    return total


def grad_check(model, loss, params, x, y):
    """‖g_manual − g_jax‖∞ / ‖g‖∞ over all parameters, on one batch in the run's own dtype.

    One scale for the whole gradient: a leaf whose true gradient is 0 (an output
    bias on balanced data) would make a per-leaf ratio of float32 round-off meaningless.
    """
    key = jax.random.key(0) if model.stochastic else None      # one dropout mask for both
    _, manual = fnn.value_and_grad(model, loss, params, x, y, key=key, method="manual")
    _, auto = fnn.value_and_grad(model, loss, params, x, y, key=key, method="autodiff")
    return relative_error(ravel_pytree(manual)[0], ravel_pytree(auto)[0])


def plot_png(history, title, split="test"):
    """The loss (and accuracy) curves of the run, train and `split`, against the step, as PNG bytes."""
    from fnn import viz
    fig = viz.plot_history(history, x="step", val_label=split)
    fig.suptitle(title)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight", facecolor="white")
    return buffer.getvalue()


def checked_flags(argv, prog=None):
    """(args, limits, given): the flags parsed and checked; nothing read or written yet."""
    args = parse_args(argv, prog)
    limits = {k: getattr(args, k) for k in LIMITS}
    return args, limits, flag_config(args, limits)


def main(argv=None, prog=None):
    """`fnn train` with the flags in argv (sys.argv[1:] by default); the exit code."""
    args, limits, given = checked_flags(argv, prog)
    if args.resume is not None and args.resume.strip():
        args.resume = folders.resolve(args.resume)
    new = args.out is None and args.resume is None
    out = args.out if args.out is not None else (args.resume or folders.new_run_folder())
    cli.output_folder(out)
    with cli.lock_folder(out):
        cli.check_regular_files(out, OUTPUTS)
        continuing = args.resume is not None and os.path.realpath(out) == os.path.realpath(args.resume)
        if not (new or continuing or args.overwrite):      # a run already there would be replaced
            folders.check_not_a_run(out, CHECKPOINT)
        if new or args.out is not None:
            folders.point_latest(out)
        return train(args, given, limits, out)


def resumed(args, given, limits):
    """(config, history, step, run_id, checkpoint config) of the run in --resume DIR, checked against the flags."""
    cli.check_regular_files(args.resume, (CHECKPOINT, HISTORY))
    path = os.path.join(args.resume, CHECKPOINT)
    config, meta, step = saved_config(path, limits)
    check_resume_flags(given, config, path)
    if given["epochs"] or given["steps"]:                 # a new target length is allowed
        config.update(epochs=given["epochs"], steps=given["steps"])
    history = read_history(args.resume, meta, step)
    return config, history, step, meta.get("run_id") or secrets.token_hex(8)


def train(args, given, limits, out):
    t_start = time.perf_counter()
    mesh = None if args.devices is None else parallel.make_mesh(args.devices)
    if args.resume:
        config, history, saved_step, run_id = resumed(args, given, limits)
    else:
        config, history, saved_step, run_id = new_config(given), None, 0, secrets.token_hex(8)
    policy = precision.get_policy(config["precision"])
    ds, preprocessing = prepare_data(config, limits)
    model, sizes = build_model(config, ds.in_features, ds.out_features, limits)
    loss = fnn.get_loss(data.TASK_LOSS[ds.task])
    optimizer = build_optimizer(config)
    n_train = ds.x_train.shape[0]
    n_fit = n_train - round(n_train * config["validation_split"])     # what fit trains on
    if config["batch_size"] is None:
        config["batch_size"] = min(DEFAULT_BATCH, n_fit)
    total = total_steps(config, n_fit)
    if args.resume and saved_step >= total:
        if saved_step > total:
            raise InputError(f"the run in {args.resume!r} is at step {saved_step:,}, past the {total:,} steps "
                             "asked for; give a larger --steps or --epochs")
        print(f"nothing to train: the run in {args.resume} has already done its {total:,} steps; "
              f"give a larger --steps or --epochs to continue it (nothing written)")
        return 0
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
    print(f"model: {describe(config, sizes, model)}, loss {loss.name}, "
          f"{config['optimizer']} lr {config['lr']}, gradients: {config['grad']}")
    print(f"regularization: {regularization(config, n_train)}")

    key = jax.random.key(config["seed"])
    init_key, train_key = jax.random.split(key)
    _, params = model.init(init_key, (-1, ds.in_features))
    if config["model"] == "cnn":      # the paper's initialization: PyTorch's default U(±1/√fan_in)
        params = models.torch_init(jax.random.fold_in(init_key, 1), params)
    state = None
    if args.resume:     # the model's non-trainable state too (() for an MLP)
        template = init_state(params, template_optimizer, train_key,
                              fnn.init_state(model, (-1, ds.in_features)))
        trees, _ = checkpoint.load(os.path.join(args.resume, CHECKPOINT), {"state": template})
        state = trees["state"]
        print(f"resumed from {args.resume} at step {int(state.step)}")

    batch = config["batch_size"]
    check_args = (model, loss, params if state is None else state.params,
                  jnp.asarray(ds.x_train[:batch]), jnp.asarray(ds.y_train[:batch]))
    if not policy.mixed:
        rel = grad_check(*check_args)
        print(f"gradient check (one batch, float32): hand-written vs jax.grad max relative error {rel:.2e}")
    else:
        check = precision_check(*check_args, precision=policy,
                                key=jax.random.key(0) if model.stochastic else None)
        rel = check["vs_autodiff"]
        print(f"gradient check (one batch, {policy.compute_dtype}): hand-written vs jax.grad max relative "
              f"error {rel:.2e} (expected below {check['tolerance']:.0e}); vs float32 jax.grad "
              f"{check['vs_float32']:.2e} (expected below {check['float32_tolerance']:.0e})")

    log = HistoryLog(os.path.join(out, HISTORY), run_id)
    saved_data = data_config(config, ds, preprocessing)
    split_name = "validation" if config["validation_split"] else "test"

    def save(state, history):
        """The history first, then the checkpoint: a crash between them leaves extra history lines,
        which the next resume drops, never a checkpoint whose epochs the history lacks."""
        log.sync(history)
        path = os.path.join(out, CHECKPOINT)
        # a failed write (a full disk) is a CheckpointError, the previous checkpoint left whole
        checkpoint.save(path, {"state": state, "preprocessing": preprocessing.arrays()}, step=int(state.step),
                        config={"run": config, "data": saved_data,
                                "history_log": {"run_id": run_id, "epochs": len(history["epoch"])}})

    snapshots, live, fit_kwargs = None, None, dict(callback=save)
    if args.report:   # the parameters every few epochs: the report's frames, live in OUT/report.html
        snapshots = report.Snapshots(params if state is None else state, history=history, then=save)
        live = report.LiveReport(out, model, loss, ds, epochs=math.ceil(total / (n_fit // batch)),
                                 split=split_name, progress=not args.no_progress)
        live.update(snapshots, history or {})
        print(f"report: {out}/{REPORT} shows the frames so far while the run trains (open it in a browser)")
        fit_kwargs = dict(callback=live.follow(snapshots), chunk_steps=report.chunk_steps(
            n_fit, batch, epochs=config["epochs"], steps=config["steps"]))
    if config["validation_split"]:
        fit_kwargs.update(validation_split=config["validation_split"], patience=config["patience"] or None)
    else:
        fit_kwargs.update(validation_data=(ds.x_test, ds.y_test))
    result = fit(model, loss, optimizer, params, ds.x_train, ds.y_train, key=train_key,
                 epochs=config["epochs"], steps=config["steps"], batch_size=batch, config=step_config,
                 progress=not args.no_progress, state=state, history=history, **fit_kwargs)
    if result.stopped_early:      # the checkpoint holds the best epoch's params, which the run returns
        save(result.state._replace(params=result.params, model_state=result.model_state), result.history)
    test = evaluate(model, loss, result.params, ds.x_test, ds.y_test, model_state=result.model_state)
    train = evaluate(model, loss, result.params, ds.x_train, ds.y_train, model_state=result.model_state)
    wall = time.perf_counter() - t_start
    trained = result.steps - saved_step
    metrics = {
        "dataset": config["dataset"], "device": cli.device_description(), "grad": config["grad"],
        "model": "-".join(map(str, sizes)) if sizes else model.name, "architecture": config["model"],
        "activation": config["activation"] if sizes else None,
        "optimizer": config["optimizer"], "lr": config["lr"], "batch_size": batch,
        "dropout": config["dropout"], "weight_decay": config["weight_decay"],
        "validation_split": config["validation_split"], "patience": config["patience"],
        "seed": config["seed"], "steps": result.steps, "steps_trained": trained,
        "epochs": len(result.history["epoch"]), "stopped_early": result.stopped_early,
        "best_epoch": best_epoch(result.history) if result.stopped_early else None,
        "wall_seconds": wall, "train_seconds": result.wall_seconds,
        "compile_seconds": result.compile_seconds,
        "steps_per_second": result.steps_per_second, "resumed_from_step": saved_step,
        "train_loss": train["loss"], "train_accuracy": train["accuracy"],
        "test_loss": test["loss"], "test_accuracy": test["accuracy"],
        "validation_split_name": split_name,
        "grad_check_rel_err": rel, "nonfinite_step": result.nonfinite_step,
        "precision": policy.name, "devices": 1 if mesh is None else int(mesh.devices.size),
    }
    cli.write_file(os.path.join(out, METRICS), strict_json(metrics))
    cli.write_file(os.path.join(out, PLOT), plot_png(
        result.history, f"{config['dataset']} {metrics['model'] if sizes else 'cnn (MNIST-1D paper)'} "
                        f"({config['grad']} gradients)", split_name))
    if result.nonfinite_step is not None:
        print(f"stopped: non-finite loss or gradient at step {result.nonfinite_step}; "
              "kept the last finite parameters")
    if result.stopped_early:
        print(f"stopped early at step {result.steps:,}: no lower validation loss for {config['patience']} "
              f"epochs; kept the best epoch's params (epoch {metrics['best_epoch']})")
    acc = "" if test["accuracy"] is None else f", test accuracy {test['accuracy']:.4f}"
    print(f"trained {trained:,} steps in {result.wall_seconds:.1f} s: {rate_text(result)}; "
          f"train loss {train['loss']:.4f}, test loss {test['loss']:.4f}{acc}")
    print(f"wrote {out}/{METRICS}, {out}/{CHECKPOINT}, {out}/{HISTORY}, {out}/{PLOT}  (total {wall:.1f} s)")
    if snapshots is not None:
        path = live.finish(snapshots, result.history, summary=metrics)
        save_snapshots(out, snapshots)
        print(f"wrote {path} ({len(snapshots)} frames); {out}/{SNAPSHOTS} keeps them for fnn report")
    print(f"use it: fnn evaluate {out} --data FILE; fnn predict {out} --input FILE; fnn summary {out}")
    return 0


def regularization(config, n_train):
    """One line: what the run holds out and how it regularizes."""
    parts = []
    if config["validation_split"]:
        held = round(n_train * config["validation_split"])
        stop = f", early stopping after {config['patience']} epochs without improvement" if config["patience"] else ""
        parts.append(f"{held:,} of {n_train:,} training examples held out for validation{stop}")
    else:
        parts.append("no validation split (the test split is only reported, never used to stop)")
    if config["dropout"]:
        parts.append(f"dropout {config['dropout']:g}")
    if config["weight_decay"]:
        parts.append(f"weight decay {config['weight_decay']:g}")
    return "; ".join(parts)


def best_epoch(history):
    """The epoch (1-based, as the history numbers them) with the lowest validation loss."""
    losses = history["val_loss"]
    return history["epoch"][min(range(len(losses)), key=losses.__getitem__)]


def rate_text(result):
    """'2.1 s compiling, then 8,012 steps/s (compilation excluded)', as fit measured it."""
    if result.compile_seconds is None:
        return f"{result.steps_per_second:,.0f} steps/s (one compiled chunk: compilation included)"
    return (f"{result.compile_seconds:.1f} s compiling, then {result.steps_per_second:,.0f} steps/s "
            "(compilation excluded)")


if __name__ == "__main__":
    sys.exit(cli.run(main))
