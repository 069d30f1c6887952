"""Train a small MLP with a checkpoint after every epoch, resuming from OUT/checkpoint.npz if it exists.

tests/test_kill_resume.py runs this as a subprocess and kills it with SIGKILL
at random moments. Each run prints "training" once the data, model and any
checkpoint are ready, "saved <step>" after each checkpoint, and "done <step>"
when the run is complete.

    python tests/_kill_target.py OUT [--seed 0] [--epochs 60] [--snapshots FILE] [--die-in-save N]

--snapshots FILE also writes the state after every epoch to FILE (.npz, "<step>/<leaf>"),
--die-in-save N makes the process SIGKILL itself half-way through writing its
N-th checkpoint (counted from this run's start).
"""
import argparse
import io
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import fnn  # noqa: E402
from fnn import checkpoint, optim  # noqa: E402
from fnn.train import fit, init_state  # noqa: E402

CHECKPOINT = "checkpoint.npz"
SIZES = [4, 96, 96, 3]          # ~10k parameters: a checkpoint (with Adam's moments) of ~130 kB
N, BATCH = 64, 16               # 4 steps an epoch, one epoch a chunk, so one save every 4 steps


def problem(seed):
    """(model, optimizer, params, x, y, train_key), all fixed by `seed`."""
    rng = np.random.default_rng(1234)
    x = rng.standard_normal((N, SIZES[0])).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 0).astype(np.int32)       # 3 classes
    model = fnn.mlp(SIZES, "tanh")
    opt = optim.adam(1e-2)
    init_key, train_key = jax.random.split(jax.random.key(seed))
    _, params = model.init(init_key, (-1, SIZES[0]))
    return model, opt, params, x, y, train_key


def leaves(tree):
    """The tree's leaves as numpy arrays, PRNG keys as their raw key data."""
    unwrap = lambda l: jax.random.key_data(l) if jnp.issubdtype(l.dtype, jax.dtypes.prng_key) else l
    return [np.asarray(unwrap(l)) for l in jax.tree.leaves(tree)]


def die_half_way_through_savez(after):
    """Replace np.savez so that its `after`-th call writes half the file, then SIGKILLs this process."""
    real_savez, calls = np.savez, [0]

    def savez(f, **arrays):
        calls[0] += 1
        if calls[0] < after:
            return real_savez(f, **arrays)
        buf = io.BytesIO()
        real_savez(buf, **arrays)
        raw = buf.getvalue()
        f.write(raw[: len(raw) // 2])
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    np.savez = savez


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--snapshots", default=None)
    p.add_argument("--die-in-save", type=int, default=None)
    args = p.parse_args()
    model, opt, params, x, y, train_key = problem(args.seed)
    path = os.path.join(args.out, CHECKPOINT)
    state, history = None, None
    if os.path.exists(path):
        trees, meta = checkpoint.load(path, {"state": init_state(params, opt, train_key)})
        state, history = trees["state"], meta["config"]["history"]
    if args.die_in_save is not None:
        die_half_way_through_savez(args.die_in_save)

    snapshots = {}

    def save(state, history):
        step = int(state.step)
        checkpoint.save(path, {"state": state}, step=step, config={"history": history})
        print(f"saved {step}", flush=True)
        if args.snapshots:
            snapshots.update({f"{step}/{i}": leaf for i, leaf in enumerate(leaves(state))})

    print("training", flush=True)
    result = fit(model, "softmax_cross_entropy", opt, params, x, y, key=train_key, epochs=args.epochs,
                 batch_size=BATCH, progress=False, state=state, history=history,
                 chunk_steps=N // BATCH, callback=save)
    if args.snapshots:
        np.savez(args.snapshots, **snapshots)
    print(f"done {result.steps}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
