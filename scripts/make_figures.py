"""Regenerate the README's pictures in docs/images: the seeds' figures, a gradient check, a report frame."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402

import fnn  # noqa: E402
from examples.seed_figures import save_seed_figures  # noqa: E402
from fnn import cli, data, optim, viz  # noqa: E402

OUT = "docs/images"
SEED = 0
DPI = 90
# The report still: spirals, a 2-32-32-2 tanh MLP trained with Adam.
SPIRALS = dict(hidden=(32, 32), activation="tanh", lr=0.01, batch_size=40, epochs=200, frames=20)


def parse_args(argv):
    p = cli.ArgumentParser(description=__doc__)
    p.add_argument("--out", default=OUT, help=f"output folder (default {OUT})")
    p.add_argument("--seed", type=int, default=SEED, help=f"PRNG seed (default {SEED})")
    p.add_argument("--dpi", type=cli.positive_int, default=DPI, help=f"pixels per inch (default {DPI})")
    return p.parse_args(argv)


def gradient_check_figure(key):
    """Hand-written vs jax.grad vs finite differences, per parameter of a 4-8-8-3 tanh MLP."""
    model = fnn.mlp([4, 8, 8, 3], activation="tanh")
    k_init, k_x, k_y = jax.random.split(key, 3)
    _, params = model.init(k_init, (-1, 4))
    x = jax.random.normal(k_x, (16, 4))
    y = jax.random.randint(k_y, (16,), 0, 3)
    check = fnn.check_gradients(model, "softmax_cross_entropy", params, x, y)
    ax = viz.plot_gradient_agreement(
        check, title="Gradient check, 4-8-8-3 tanh MLP, softmax cross-entropy (float64)")
    return ax.figure


def report_frame_figure(key, dpi):
    """The last frame of a training report on the spirals."""
    s = SPIRALS
    ds, _ = data.standardize_dataset(data.get_dataset("spirals", key=key))
    sizes = [ds.in_features, *s["hidden"], ds.out_features]
    model = fnn.mlp(sizes, activation=s["activation"])
    k_init, k_fit = jax.random.split(jax.random.fold_in(key, 1))
    _, params = model.init(k_init, (-1, ds.in_features))
    loss = data.TASK_LOSS[ds.task]
    snapshots = viz.Snapshots(params)
    result = fnn.fit(model, loss, optim.get_optimizer("adam", learning_rate=s["lr"]), params,
                     ds.x_train, ds.y_train, key=k_fit, epochs=s["epochs"], batch_size=s["batch_size"],
                     validation_data=(ds.x_test, ds.y_test), progress=False, callback=snapshots,
                     chunk_steps=viz.chunk_steps(len(ds.x_train), s["batch_size"],
                                                 epochs=s["epochs"], frames=s["frames"]))
    return viz.frame_figure(model, loss, ds, snapshots, result.history, dpi=dpi,
                            title=f"spirals, {'-'.join(map(str, sizes))} {s['activation']}")


def main(argv=None):
    args = parse_args(argv)
    print(f"device: {cli.device_description()}")
    key = jax.random.key(args.seed)
    k_seeds, k_check, k_report = jax.random.split(key, 3)
    paths = save_seed_figures(args.out, key=k_seeds, dpi=args.dpi)
    for name, fig in (("gradient_check", gradient_check_figure(k_check)),
                      ("report_frame", report_frame_figure(k_report, args.dpi))):
        paths.append(viz.save_figure(fig, os.path.join(args.out, f"{name}.png"), dpi=args.dpi))
    for path in paths:
        print(f"wrote {path} ({os.path.getsize(path) / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
