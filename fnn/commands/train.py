"""Train an MLP or the MNIST-1D paper's CNN with fnn's hand-written backprop (default: MNIST-1D) and report test accuracy."""
import io
import math
import os
import re
import secrets
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax.flatten_util import ravel_pytree  # noqa: E402

import fnn  # noqa: E402
from fnn import checkpoint, cli, data, models, optim, parallel, precision  # noqa: E402
from fnn.errors import InputError  # noqa: E402
from fnn.viz import report  # noqa: E402
from fnn.check import precision_check, relative_error  # noqa: E402
from fnn.train import fit, evaluate, init_state  # noqa: E402
from fnn.train.step import training_optimizer  # noqa: E402
from fnn.runs.config import (DEFAULT_BATCH, DEFAULTS, LIMITS, MAX_INT32, MAX_SEED,  # noqa: E402
                             check_params, check_resume_flags, flag_config, hidden_sizes, new_config,
                             saved_config)
from fnn.runs.history import HISTORY, HistoryLog, read_history, strict_json  # noqa: E402

CHECKPOINT, METRICS, PLOT, REPORT = "checkpoint.npz", "metrics.json", "loss.png", "report.html"
CNN_MIN_LENGTH = 3         # paper_cnn: (L + 2 − 5) // 2 + 1 ≥ 1
OUTPUTS = (CHECKPOINT, HISTORY, METRICS, PLOT, REPORT, cli.LOCK_FILE)


def parse_args(argv):
    p = cli.ArgumentParser(description=__doc__)
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
    p.add_argument("--out", default=None, help=f"output folder (default {DEFAULTS['out']}, or --resume's); "
                                               "locked for the run")
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
    return p.parse_args(argv)


# ---- the run's configuration: from the flags, or from the checkpoint being resumed -------------

# ---- data, model, and the checks that need them -----------------------------------------------

FLAG_OF_LIMIT = {"max_file_bytes": "--max-data-bytes", "max_array_bytes": "--max-data-bytes",
                 "max_classes": "--max-classes"}


def load_dataset(name, seed, limits):
    """get_dataset with the CLI's limits; a file's limit message names the flag that raises it."""
    file_limits = data.Limits(max_file_bytes=limits["max_data_bytes"], max_array_bytes=limits["max_data_bytes"],
                              max_classes=limits["max_classes"])
    try:
        return data.get_dataset(name, key=jax.random.key(seed), limits=file_limits)
    except data.DataFileError as e:
        hint = re.search(r"if the file is trusted, raise it with load_file\(\.\.\., "
                         r"limits=fnn\.data\.Limits\((\w+)=\.\.\.\)\)", str(e))
        if hint is None or hint.group(1) not in FLAG_OF_LIMIT:
            raise
        message = str(e)[:hint.start()] + f"if the file is trusted, raise it with {FLAG_OF_LIMIT[hint.group(1)]}"
        raise InputError(message) from None


def build(config, limits=LIMITS):
    """(dataset, sizes, model, loss, optimizer) for a configuration; sizes checked against the limits."""
    name = config["dataset"]
    ds = load_dataset(name, config["seed"], limits)
    ds, _ = data.standardize_dataset(ds, targets=ds.task == "regression")
    if ds.task != "regression" and ds.out_features > limits["max_classes"]:
        raise InputError(f"--dataset {name!r} has {ds.out_features:,} classes, more than --max-classes "
                         f"{limits['max_classes']:,} (raise the flag to allow it)")
    if config["model"] == "cnn":
        model, sizes = cnn_model(name, ds, limits), None
    else:
        sizes = [ds.in_features] + hidden_sizes(config["hidden"]) + [ds.out_features]
        check_params(sizes, limits)
        model = fnn.mlp(sizes, activation=config["activation"])
    loss = fnn.get_loss(data.TASK_LOSS[ds.task])
    optimizer = optim.get_optimizer(config["optimizer"], learning_rate=config["lr"])
    return ds, sizes, model, loss, optimizer


def cnn_model(name, ds, limits):
    """fnn.models.paper_cnn for the dataset's input length and classes; InputError if it cannot be built."""
    length = ds.in_features
    if length < CNN_MIN_LENGTH:
        raise InputError(f"--model cnn needs examples of at least {CNN_MIN_LENGTH} features (its first "
                         f"convolution has kernel 5, stride 2, padding 1); --dataset {name!r} has {length}")
    model = models.paper_cnn(length=length, classes=ds.out_features)
    table = fnn.summary(model, (-1, length))                     # from shapes: nothing allocated
    convs = [row for layer, row in zip(model.layers, table.rows[1:]) if layer.kind == "conv"]
    for flag, size, what in (("--max-layers", len(convs), "convolutions"),
                             ("--max-width", max(row.output_shape[-1] for row in convs), "channels"),
                             ("--max-params", table.total_params, "parameters")):
        limit = limits[flag[2:].replace("-", "_")]
        if size > limit:
            raise InputError(f"--model cnn on --dataset {name!r} has {size:,} {what}, more than {flag} "
                             f"{limit:,} (raise the flag to allow it)")
    return model


def describe(config, sizes, model):
    """How the run names its model: '40-100-100-10 relu', or the CNN's layers."""
    if sizes is None:
        return f"cnn {model.name}"
    return f"{'-'.join(map(str, sizes))} {config['activation']}"


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
    _, manual = fnn.value_and_grad(model, loss, params, x, y, method="manual")
    _, auto = fnn.value_and_grad(model, loss, params, x, y, method="autodiff")
    return relative_error(ravel_pytree(manual)[0], ravel_pytree(auto)[0])


def plot_png(history, title):
    """The loss (and accuracy) curves of the run, train and test, against the step, as PNG bytes."""
    from fnn import viz
    fig = viz.plot_history(history, x="step")
    fig.suptitle(title)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight", facecolor="white")
    return buffer.getvalue()


def checked_flags(argv):
    """(args, limits, given): the flags parsed and checked; nothing read or written yet."""
    args = parse_args(argv)
    limits = {k: getattr(args, k) for k in LIMITS}
    return args, limits, flag_config(args, limits)


def main(argv=None):
    args, limits, given = checked_flags(argv)
    out = args.out if args.out is not None else (args.resume or DEFAULTS["out"])
    cli.output_folder(out)
    with cli.lock_folder(out):
        cli.check_regular_files(out, OUTPUTS)
        return train(args, given, limits, out)


def resumed(args, given, limits):
    """(config, history, step, run_id) of the run in --resume DIR, checked against the flags given."""
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
    ds, sizes, model, loss, optimizer = build(config, limits)
    n_train = ds.x_train.shape[0]
    if config["batch_size"] is None:
        config["batch_size"] = min(DEFAULT_BATCH, n_train)
    total = total_steps(config, n_train)
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
        check = precision_check(*check_args, precision=policy)
        rel = check["vs_autodiff"]
        print(f"gradient check (one batch, {policy.compute_dtype}): hand-written vs jax.grad max relative "
              f"error {rel:.2e} (expected below {check['tolerance']:.0e}); vs float32 jax.grad "
              f"{check['vs_float32']:.2e} (expected below {check['float32_tolerance']:.0e})")

    log = HistoryLog(os.path.join(out, HISTORY), run_id)

    def save(state, history):
        """The history first, then the checkpoint: a crash between them leaves extra history lines,
        which the next resume drops, never a checkpoint whose epochs the history lacks."""
        log.sync(history)
        path = os.path.join(out, CHECKPOINT)
        # a failed write (a full disk) is a CheckpointError, the previous checkpoint left whole
        checkpoint.save(path, {"state": state}, step=int(state.step),
                        config={"run": config, "history_log": {"run_id": run_id,
                                                               "epochs": len(history["epoch"])}})

    snapshots, fit_kwargs = None, dict(callback=save)
    if args.report:   # the parameters every few epochs: the report's frames
        snapshots = report.Snapshots(params if state is None else state, history=history, then=save)
        fit_kwargs = dict(callback=snapshots, chunk_steps=report.chunk_steps(
            n_train, batch, epochs=config["epochs"], steps=config["steps"]))
    result = fit(model, loss, optimizer, params, ds.x_train, ds.y_train, key=train_key,
                 epochs=config["epochs"], steps=config["steps"], batch_size=batch,
                 validation_data=(ds.x_test, ds.y_test), config=step_config,
                 progress=not args.no_progress, state=state, history=history, **fit_kwargs)
    rate = result.steps_per_second
    if saved_step and result.wall_seconds > 0 and math.isclose(rate, result.steps / result.wall_seconds):
        # fit's rate when no chunk ran apart from the compiling one counts the resumed steps too
        rate = (result.steps - saved_step) / result.wall_seconds
    test = evaluate(model, loss, result.params, ds.x_test, ds.y_test, model_state=result.model_state)
    train = evaluate(model, loss, result.params, ds.x_train, ds.y_train, model_state=result.model_state)
    wall = time.perf_counter() - t_start
    metrics = {
        "dataset": config["dataset"], "device": cli.device_description(), "grad": config["grad"],
        "model": "-".join(map(str, sizes)) if sizes else model.name, "architecture": config["model"],
        "activation": config["activation"] if sizes else None,
        "optimizer": config["optimizer"], "lr": config["lr"], "batch_size": batch,
        "seed": config["seed"], "steps": result.steps, "epochs": len(result.history["epoch"]),
        "wall_seconds": wall, "train_seconds": result.wall_seconds,
        "steps_per_second": rate, "resumed_from_step": saved_step,
        "train_loss": train["loss"], "train_accuracy": train["accuracy"],
        "test_loss": test["loss"], "test_accuracy": test["accuracy"],
        "grad_check_rel_err": rel, "nonfinite_step": result.nonfinite_step,
        "precision": policy.name, "devices": 1 if mesh is None else int(mesh.devices.size),
    }
    cli.write_file(os.path.join(out, METRICS), strict_json(metrics))
    cli.write_file(os.path.join(out, PLOT), plot_png(
        result.history, f"{config['dataset']} {metrics['model'] if sizes else 'cnn (MNIST-1D paper)'} "
                        f"({config['grad']} gradients)"))
    if result.nonfinite_step is not None:
        print(f"stopped: non-finite loss or gradient at step {result.nonfinite_step}; "
              "kept the last finite parameters")
    acc = "" if test["accuracy"] is None else f", test accuracy {test['accuracy']:.4f}"
    print(f"trained {result.steps} steps in {result.wall_seconds:.1f} s "
          f"({rate:,.0f} steps/s); train loss {train['loss']:.4f}, "
          f"test loss {test['loss']:.4f}{acc}")
    print(f"wrote {out}/{METRICS}, {out}/{CHECKPOINT}, {out}/{HISTORY}, {out}/{PLOT}  (total {wall:.1f} s)")
    if snapshots is not None:
        path = os.path.join(out, REPORT)
        cli.write_file(path, report.training_report(model, loss, ds, snapshots, result.history, summary=metrics))
        print(f"wrote {path} ({len(snapshots)} frames)")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
