"""The peers of benchmarks.peers that are not JAX-ecosystem libraries: fnn itself, PyTorch eager, scikit-learn.

Each run_* trains the MNIST-1D MLP once and returns a PeerResult; a peer that
cannot run here raises PeerUnavailable naming what to install.
"""
import math
import os
import time
import warnings
from typing import NamedTuple, Optional

import jax
import numpy as np

import fnn

__all__ = ["SIZES", "LEARNING_RATE", "BATCH_SIZE", "STEPS", "SEED", "PEERS_EXTRA", "PeerResult", "PeerUnavailable",
           "cpu_threads", "load_mnist1d", "run_fnn", "run_fnn_scan", "run_torch", "run_sklearn"]

# MNIST-1D's published MLP: 40-100-100-10, ReLU, Adam, batch 100; 6000 steps = 150 epochs of 4000.
SIZES = (40, 100, 100, 10)
LEARNING_RATE = 1e-2
BATCH_SIZE = 100
STEPS = 6000
SEED = 0
PEERS_EXTRA = "pip install 'fnn[peers]'  (torch, scikit-learn)"


class PeerResult(NamedTuple):
    """One framework's run: throughput, time and test accuracy, or why it was skipped."""
    name: str
    status: str                      # "ok" or "skipped"
    message: str = ""
    device: str = ""
    steps: int = 0
    steps_per_second: Optional[float] = None     # excluding compilation
    train_seconds: Optional[float] = None        # the training loop, excluding compilation
    wall_seconds: Optional[float] = None         # model set-up, compilation and training
    test_accuracy: Optional[float] = None
    threads: Optional[int] = None


class PeerUnavailable(Exception):
    """A peer that cannot run here (not installed, no device); the message says why."""


def cpu_threads():
    """The cores this process may use (what XLA's CPU client uses)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def load_mnist1d():
    """MNIST-1D (fnn.data.mnist1d), features standardized by the training set's statistics."""
    ds, _ = fnn.data.standardize_dataset(fnn.data.get_dataset("mnist1d"))
    return ds


def _initial_params(seed, sizes):
    model = fnn.mlp(list(sizes), activation="relu")
    k_init, k_train = jax.random.split(jax.random.key(seed))
    _, params = model.init(k_init, (-1, sizes[0]))
    return model, params, k_train


# ------------------------------------------------------------------ the peers

def run_fnn(ds, method, *, steps, batch_size, lr, seed, sizes=SIZES, cpu=False):
    """fnn.fit (compiled multi-epoch chunks), run twice: cold (with compilation), then warm.

    The warm run reuses the compiled program and repeats the cold run exactly;
    its time is the training time without compilation.
    """
    if cpu:
        with jax.default_device(jax.devices("cpu")[0]):
            return run_fnn(ds, method, steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                           sizes=sizes)._replace(name=f"fnn-{method}-cpu")
    model, params, key = _initial_params(seed, sizes)
    loss, opt = fnn.get_loss("softmax_cross_entropy"), fnn.optim.adam(lr)
    runs = []
    for _ in range(2):
        t0 = time.perf_counter()
        result = fnn.fit(model, loss, opt, params, ds.x_train, ds.y_train, key=key, steps=steps,
                         batch_size=batch_size, config=fnn.StepConfig(method=method),
                         progress=False)
        jax.block_until_ready(result.params)
        runs.append((time.perf_counter() - t0, result))
    (cold, _), (warm, result) = runs
    acc = fnn.evaluate(model, loss, result.params, ds.x_test, ds.y_test)["accuracy"]
    device = next(iter(jax.tree.leaves(result.params)[0].devices())).platform
    return PeerResult(f"fnn-{method}", "ok", "fnn.fit, compiled epochs", device, result.steps,
                      result.steps / warm, warm, cold, acc,
                      cpu_threads() if device == "cpu" else None)


def run_fnn_scan(ds, *, steps, batch_size, lr, seed, sizes=SIZES, method="manual"):
    """The floor under fnn.fit: fnn's value_and_grad and Adam in a bare lax.scan.

    What a user writes by hand from fnn's functions: the same model, initial
    parameters, gradients and optimizer, with none of fit's per-step work (the
    loss and accuracy of every step, the non-finite check) and every epoch's
    shuffled batches gathered before the timed loop. fit's figure against this
    one is the cost of what fit adds. Cold, then warm, as run_fnn.
    """
    model, params, key = _initial_params(seed, sizes)
    loss, opt = fnn.get_loss("softmax_cross_entropy"), fnn.optim.adam(lr)
    value_and_grad = fnn.grads.make_value_and_grad(model, loss, method)
    x, y = jax.numpy.asarray(ds.x_train), jax.numpy.asarray(ds.y_train)
    n = x.shape[0]
    epochs = math.ceil(steps / (n // batch_size))
    idx = jax.numpy.concatenate([fnn.data.batch_indices(k, n, batch_size)
                                 for k in jax.random.split(key, epochs)])[:steps]
    xs, ys = x[idx], y[idx]                                   # (steps, batch, ...)

    @jax.jit
    def train(params, xs, ys):
        def body(carry, batch):
            p, s = carry
            _, grads = value_and_grad(p, *batch)
            updates, s = opt.update(grads, s, p)
            return (fnn.optim.apply_updates(p, updates), s), None
        (params, _), _ = jax.lax.scan(body, (params, opt.init(params)), (xs, ys))
        return params

    runs = []
    for _ in range(2):
        t0 = time.perf_counter()
        trained = jax.block_until_ready(train(params, xs, ys))
        runs.append(time.perf_counter() - t0)
    cold, warm = runs
    acc = fnn.evaluate(model, loss, trained, ds.x_test, ds.y_test)["accuracy"]
    device = next(iter(jax.tree.leaves(trained)[0].devices())).platform
    return PeerResult("fnn-scan", "ok", "fnn value_and_grad + adam in a bare lax.scan (no fit)", device,
                      steps, steps / warm, warm, cold, acc, cpu_threads() if device == "cpu" else None)


def run_torch(ds, device="cpu", *, steps, batch_size, lr, seed, sizes=SIZES, init_params=None,
              threads=None):
    """PyTorch eager: a plain Python loop of forward, cross-entropy, backward, torch.optim.Adam."""
    try:
        import torch
    except ImportError:
        raise PeerUnavailable(f"PyTorch is not installed: {PEERS_EXTRA}") from None
    if device == "cuda" and not torch.cuda.is_available():
        raise PeerUnavailable("no CUDA device for PyTorch")
    threads = threads or cpu_threads()
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    t_start = time.perf_counter()
    layers = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(fan_in, fan_out))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    if init_params is not None:                        # the same initial weights as fnn
        linears = [l for l in layers if isinstance(l, torch.nn.Linear)]
        with torch.no_grad():
            for lin, p in zip(linears, [p for p in init_params if p]):
                lin.weight.copy_(torch.from_numpy(np.asarray(p["W"]).T.copy()))
                lin.bias.copy_(torch.from_numpy(np.asarray(p["b"]).copy()))
    model = model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    x = torch.from_numpy(np.asarray(ds.x_train, np.float32)).to(device)
    y = torch.from_numpy(np.asarray(ds.y_train, np.int64)).to(device)
    n, gen = x.shape[0], torch.Generator().manual_seed(seed)
    per_epoch = n // batch_size
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for step in range(steps):
        j = step % per_epoch
        if j == 0:
            perm = torch.randperm(n, generator=gen).to(device)
        idx = perm[j * batch_size:(j + 1) * batch_size]
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync()
    train = time.perf_counter() - t0
    wall = time.perf_counter() - t_start
    with torch.no_grad():
        xt = torch.from_numpy(np.asarray(ds.x_test, np.float32)).to(device)
        pred = model(xt).argmax(dim=1).cpu().numpy()
    acc = float(np.mean(pred == np.asarray(ds.y_test)))
    return PeerResult(f"torch-{device}", "ok", f"PyTorch {torch.__version__} eager", device, steps,
                      steps / train, train, wall, acc, threads if device == "cpu" else None)


def run_sklearn(ds, *, steps, batch_size, lr, seed, sizes=SIZES, threads=None):
    """scikit-learn's MLPClassifier (hand-written NumPy backprop), Adam, whole epochs.

    threads limits NumPy's BLAS thread pool (threadpoolctl) during the fit.
    """
    try:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier
        from threadpoolctl import threadpool_limits
        import sklearn
    except ImportError:
        raise PeerUnavailable(f"scikit-learn is not installed: {PEERS_EXTRA}") from None
    threads = threads or cpu_threads()
    n = len(ds.x_train)
    per_epoch = math.ceil(n / batch_size)                # sklearn keeps the last partial batch
    epochs = max(1, math.ceil(steps / per_epoch))
    clf = MLPClassifier(hidden_layer_sizes=tuple(sizes[1:-1]), activation="relu", solver="adam",
                        alpha=0.0, batch_size=batch_size, learning_rate_init=lr, max_iter=epochs,
                        shuffle=True, random_state=seed, tol=0.0, n_iter_no_change=epochs + 1,
                        early_stopping=False)
    t0 = time.perf_counter()
    with warnings.catch_warnings(), threadpool_limits(limits=threads):
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(np.asarray(ds.x_train, np.float32), np.asarray(ds.y_train))
    train = time.perf_counter() - t0
    acc = float(clf.score(np.asarray(ds.x_test, np.float32), np.asarray(ds.y_test)))
    done = clf.n_iter_ * per_epoch
    return PeerResult("sklearn", "ok", f"scikit-learn {sklearn.__version__} MLPClassifier", "cpu", done,
                      done / train, train, train, acc, threads)
