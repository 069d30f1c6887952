"""Training: a jitted train step, an epoch as one compiled program, fit(), evaluate(), predict().

One step is forward → loss → backward (hand-written or jax.grad) → optimizer
update, compiled once. An epoch is `lax.scan` of that step over a shuffled
permutation of the data, so a small network runs as one XLA program per epoch
instead of one Python dispatch per step. Non-finite losses or gradients are
caught inside the compiled step (no host synchronisation per step): the
offending update is not applied, and its step number is recorded.

fit() runs several epochs per program (make_chunk). Each epoch runs first
without the per-step check, the one part of the step that is pure overhead
when nothing goes wrong; if any of its losses, or the parameters or optimizer
state after it, are not finite, the epoch runs again from its start with the
checked step, so the result is always that of the checked step.
"""
import functools
import math
import time
from typing import Any, Callable, Dict, List, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from fnn.data import batch_indices
from fnn.grads import make_value_and_grad
from fnn.parallel import check_batch_size, data_parallel, replicate
from fnn.precision import dynamic_loss_scale, get_policy, loss_scale
from fnn.precision import make_value_and_grad as mixed_value_and_grad
from fnn.losses import get_loss
from fnn.numerics import all_finite
from fnn.validate import check_data, check_params, check_positive_int, check_targets

__all__ = ["TrainState", "FitResult", "init_state", "make_step", "make_epoch", "make_chunk", "fit",
           "evaluate", "predict", "accuracy", "ON_NONFINITE"]

ON_NONFINITE = ("stop", "skip")


class TrainState(NamedTuple):
    """Everything a run needs to continue: params, optimizer state, PRNG key, step count.

    nonfinite_step is the first step whose loss or gradients were NaN/inf (-1 if none).
    """
    params: Any
    opt_state: Any
    key: jax.Array
    step: jax.Array
    nonfinite_step: jax.Array


def init_state(params, optimizer, key):
    """A fresh TrainState at step 0."""
    return TrainState(params, optimizer.init(params), key,
                      jnp.zeros((), jnp.int32), jnp.full((), -1, jnp.int32))


def _all_finite(value, grads):
    """Whether the loss and every gradient entry are finite."""
    return jnp.isfinite(value) & all_finite(grads)


def make_step(model, loss, optimizer, method="manual", on_nonfinite="stop", precision=None, mesh=None):
    """step(state, x, y) -> (state, (loss, accuracy)): one minibatch update, pure and jittable.

    A step whose loss or gradients are not finite leaves params and optimizer
    state unchanged; with on_nonfinite="stop" every later step does too, so the
    state holds the last finite parameters. accuracy is NaN for regression losses.
    Stochastic layers (dropout) draw from jax.random.fold_in(state.key, state.step);
    the step leaves state.key as it is (each epoch splits it for its permutation).

    precision: None (float32), or "bf16"/"fp16"/a fnn.precision.Policy: float32
      params, forward and backward in the compute dtype. "fp16" reads its loss
      scale from the optimizer state (fnn.precision.dynamic_loss_scale), which
      skips steps whose gradients overflow.
    mesh: a Mesh from fnn.parallel.make_mesh: each batch split over its devices,
      the gradients all-reduced (fnn.parallel.data_parallel).
    """
    return _make_step(model, loss, optimizer, method, on_nonfinite, precision, mesh, checked=True)


def _make_step(model, loss, optimizer, method, on_nonfinite, precision, mesh, checked):
    """make_step's step; with checked=False, without the per-step non-finite check.

    The unchecked step applies every update. Where the checked step would
    have changed nothing (all finite), the two give the same state; make_chunk
    runs an epoch unchecked first and repeats it checked only if the epoch's
    losses or the state after it are not all finite.
    """
    if on_nonfinite not in ON_NONFINITE:
        raise ValueError(f"on_nonfinite must be one of {', '.join(ON_NONFINITE)}, got {on_nonfinite!r}")
    loss = get_loss(loss)
    value_and_grad = make_value_and_grad(model, loss, method, with_output=True)
    policy = None if precision is None else get_policy(precision)
    if policy is not None:
        value_and_grad = mixed_value_and_grad(model, loss, method, policy)
    if mesh is not None:
        value_and_grad = data_parallel(value_and_grad, mesh)
    scaled = policy is not None and policy.loss_scaling

    def step(state, x, y):
        # The step's own key is fold_in(key, step): nothing is computed for it unless a
        # layer draws from it (dropout), and the state's key moves on once per epoch.
        sub = jax.random.fold_in(state.key, state.step)
        scale = (loss_scale(state.opt_state),) if scaled else ()
        (value, out), grads = value_and_grad(state.params, x, y, sub, *scale)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = jax.tree.map(lambda p, u: (p + u).astype(p.dtype), state.params, updates)
        if not checked:
            state = TrainState(params, opt_state, state.key, state.step + 1, state.nonfinite_step)
            return state, _metrics(loss, value, out, y)
        # float16: overflowing gradients are skipped by the loss scale, not counted as non-finite
        finite = jnp.isfinite(value) if scaled else _all_finite(value, grads)
        ok = finite if on_nonfinite == "skip" else finite & (state.nonfinite_step < 0)
        keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)
        bad = jnp.where((state.nonfinite_step < 0) & ~finite, state.step, state.nonfinite_step)
        state = TrainState(keep(params, state.params), keep(opt_state, state.opt_state),
                           state.key, state.step + 1, bad)
        return state, _metrics(loss, value, out, y)

    return step


def _evaluate(model, loss, params, x, y):
    """(loss, accuracy) of the model in inference mode on (x, y)."""
    out = model.apply(params, x)
    return _metrics(loss, loss.fn(out, y), out, y)


def _metrics(loss, value, out, y):
    """(loss, accuracy) as float32 scalars; accuracy NaN where it does not apply."""
    acc = accuracy(loss, out, y)
    acc = jnp.full((), jnp.nan, jnp.float32) if acc is None else acc.astype(jnp.float32)
    return value.astype(jnp.float32), acc


class _EarlyStop(NamedTuple):
    best_loss: jax.Array
    best_params: Any
    wait: jax.Array
    stopped: jax.Array


def _shuffled_batches(key, n, batch_size):
    """(n // batch_size, batch_size) example indices of one random permutation."""
    return batch_indices(key, n, batch_size, drop_remainder=True)


# Up to this size (x and y together) an epoch gathers its shuffled minibatches in one
# go, a copy of the data in permuted order, instead of one small gather per step.
GATHER_EPOCH_BYTES = 64 * 2**20


def _epoch_batches(x, y, idx):
    """batch(j) -> (x, y) of the epoch's j-th minibatch, for idx of shape (steps, batch_size).

    Small data is permuted once per epoch and each step slices its batch from
    the copy; larger data is gathered step by step, with no copy.
    """
    if x.nbytes + y.nbytes <= GATHER_EPOCH_BYTES:
        xs, ys = x[idx], y[idx]
        return lambda j: (xs[j], ys[j])
    return lambda j: (x[idx[j]], y[idx[j]])


def make_epoch(model, loss, optimizer, batch_size, method="manual", on_nonfinite="stop",
               precision=None, mesh=None):
    """A jitted epoch(state, x, y) -> (state, (losses, accuracies)), each (n // batch_size,).

    Draws one permutation of the examples from the state's key and scans the
    train step over its minibatches (the last partial batch is dropped).
    """
    step = make_step(model, loss, optimizer, method, on_nonfinite, precision, mesh)

    def epoch(state, x, y):
        key, perm_key = jax.random.split(state.key)
        idx = _shuffled_batches(perm_key, x.shape[0], batch_size)   # (steps, batch)
        batch = _epoch_batches(x, y, idx)
        return jax.lax.scan(lambda s, j: step(s, *batch(j)), state._replace(key=key),
                            jnp.arange(idx.shape[0]))

    return jax.jit(epoch, donate_argnums=0)


@functools.lru_cache(maxsize=32)
def make_chunk(model, loss, optimizer, batch_size, epochs_per_chunk, method="manual",
               on_nonfinite="stop", patience=None, precision=None, mesh=None):
    """A jitted chunk of `epochs_per_chunk` epochs, with per-epoch metrics, as one program.

    chunk(state, early, x, y, x_val, y_val, steps_left) -> (state, early, metrics)
    trains at most `steps_left` more steps (a dynamic value, so the last chunk
    does not recompile), evaluates the validation set after every epoch and,
    with `patience`, stops early and keeps the best parameters inside the
    program. metrics is a dict of (epochs_per_chunk,) arrays: train_loss and
    train_accuracy (averaged over the epoch's batches), val_loss, val_accuracy,
    steps (run in that epoch). Cached: fit() calls with the same model, loss,
    optimizer and settings reuse one compiled program. precision and mesh as in make_step.
    """
    step = make_step(model, loss, optimizer, method, on_nonfinite, precision, mesh)
    fast_step = _make_step(model, loss, optimizer, method, on_nonfinite, precision, mesh, checked=False)
    loss = get_loss(loss)
    nan = jnp.full((), jnp.nan, jnp.float32)

    def halted(state, early):
        bad = state.nonfinite_step >= 0 if on_nonfinite == "stop" else jnp.zeros((), bool)
        return bad | early.stopped

    def chunk(state, early, x, y, x_val, y_val, steps_left):
        # Every epoch's permutation at once (vmapped: one sort for all of them), from the
        # chain of keys the epochs would split one after another: epoch e leaves key[e].
        def next_key(key, _):
            key, perm_key = jax.random.split(key)
            return key, (key, perm_key)

        _, (keys, perm_keys) = jax.lax.scan(next_key, state.key, None, length=epochs_per_chunk)
        all_idx = jax.vmap(lambda k: _shuffled_batches(k, x.shape[0], batch_size))(perm_keys)

        def train_epoch(state, left, key, idx):
            """min(left, steps per epoch) steps, as a loop with that many turns (no per-step branch).

            The epoch runs without the per-step non-finite check first. Only if a
            loss, or the parameters or optimizer state after it, are not finite,
            it runs again from the same start with the check, which then finds
            the step, keeps the last finite state and records nonfinite_step.
            """
            batch = _epoch_batches(x, y, idx)
            n_run = jnp.minimum(left, idx.shape[0])
            start = state._replace(key=key)

            def run(step_fn):
                def body(j, carry):                  # the epoch's loss and accuracy: NaN-skipping sums
                    s, sums, counts, finite = carry
                    s, metrics = step_fn(s, *batch(j))
                    metrics = jnp.stack(metrics)
                    seen = ~jnp.isnan(metrics)
                    return (s, sums + jnp.where(seen, metrics, 0), counts + seen,
                            finite & jnp.isfinite(metrics[0]))

                zeros = jnp.zeros(2, jnp.float32)
                return jax.lax.fori_loop(jnp.zeros((), n_run.dtype), n_run, body,
                                         (start, zeros, zeros, jnp.ones((), bool)))

            fast = run(fast_step)
            clean = fast[3] & all_finite((fast[0].params, fast[0].opt_state))
            state, sums, counts, _ = jax.lax.cond(clean, lambda: fast, lambda: run(step))
            mean = sums / counts                     # NaN where no step had a value (regression accuracy)
            return state, (mean[0], mean[1], n_run)

        def one(carry, epoch):
            state, early, left = carry
            key, idx = epoch
            active = (left > 0) & ~halted(state, early)       # True for a prefix of the epochs
            state, (tl, ta, n_run) = jax.lax.cond(
                active, train_epoch, lambda s, l, k, i: (s, (nan, nan, jnp.zeros((), l.dtype))),
                state, left, key, idx)
            vl, va = (nan, nan) if x_val is None else _evaluate(model, loss, state.params, x_val, y_val)
            if patience is not None:
                better = active & (vl < early.best_loss)
                wait = jnp.where(better, 0, early.wait + active.astype(early.wait.dtype))
                early = _EarlyStop(
                    jnp.where(better, vl, early.best_loss),
                    jax.tree.map(lambda p, b: jnp.where(better, p, b), state.params, early.best_params),
                    wait, early.stopped | (wait >= patience))
            metrics = {"train_loss": tl, "train_accuracy": ta, "val_loss": vl, "val_accuracy": va,
                       "steps": jnp.where(active, n_run, 0)}
            return (state, early, left - metrics["steps"]), metrics

        (state, early, _), metrics = jax.lax.scan(one, (state, early, steps_left), (keys, all_idx))
        return state, early, metrics

    return jax.jit(chunk, donate_argnums=(0, 1))


def accuracy(loss, out, y):
    """Fraction correct for classification losses; None for regression losses (Loss.accuracy)."""
    return get_loss(loss).accuracy(out, y)


@functools.lru_cache(maxsize=64)
def _evaluator(model, loss):
    loss = get_loss(loss)

    return jax.jit(functools.partial(_evaluate, model, loss))


def _check_inputs(model, loss, params, x, y, where):
    """Arrays (x, y) after the checks every public entry makes: lengths, finiteness, params, targets."""
    x, y = check_data(x, y, where)
    check_params(model, params, x.shape)
    check_targets(loss, jax.eval_shape(lambda: model.apply(params, x)).shape, y)
    return x, y


def evaluate(model, loss, params, x, y):
    """{"loss": L, "accuracy": a or None} on (x, y), in inference mode (dropout off)."""
    loss = get_loss(loss)
    x, y = _check_inputs(model, loss, params, x, y, "evaluate")
    value, acc = _evaluator(model, loss)(params, x, y)
    return {"loss": float(value), "accuracy": None if np.isnan(acc) else float(acc)}


@functools.lru_cache(maxsize=64)
def _predictor(model):
    return jax.jit(lambda params, x: model.apply(params, x))


def predict(model, params, x):
    """The model's output on x in inference mode (dropout off)."""
    x = jnp.asarray(x)
    check_params(model, params, x.shape)
    return _predictor(model)(params, x)


class FitResult(NamedTuple):
    """What fit() returns: final (or best) params, the final state and the history."""
    params: Any
    state: TrainState
    history: Dict[str, List[float]]
    stopped_early: bool
    nonfinite_step: Optional[int]
    steps: int
    wall_seconds: float
    steps_per_second: float


def _split_validation(key, x, y, fraction):
    n = x.shape[0]
    n_val = int(round(n * fraction))
    if not 0 < n_val < n:
        raise ValueError(f"validation_split={fraction!r} leaves {n_val} of {n} examples for validation; "
                         "expected a fraction that keeps both parts non-empty")
    perm = np.asarray(jax.random.permutation(key, n))
    return (x[perm[n_val:]], y[perm[n_val:]]), (x[perm[:n_val]], y[perm[:n_val]])


def fit(model, loss, optimizer, params, x, y, *, key, epochs=None, steps=None, batch_size=32,
        method="manual", validation_data=None, validation_split=0.0, patience=None,
        progress=True, on_nonfinite="stop", state=None, history=None, chunk_steps=2000,
        callback: Optional[Callable] = None, precision=None, mesh=None):
    """Train `model` on (x, y) with minibatch `optimizer` steps, several epochs per compiled program.

    Args:
      model, loss, optimizer: an fnn Layer, Loss (or name) and optimizer (init, update).
      params: initial parameters (ignored when `state` is given).
      x, y: training inputs and targets.
      key: PRNG key for shuffling, the validation split and dropout.
      epochs / steps: how long to train (exactly one of them; steps may end
        mid-epoch). With `state`, they count from step 0, so a resumed run ends
        where an uninterrupted one would.
      batch_size: minibatch size (≤ the number of training examples); each epoch
        is one random permutation, the last partial batch dropped.
      method: "manual" (hand-written backprop) or "autodiff" (jax.grad).
      validation_data: (x_val, y_val), or validation_split: a fraction of (x, y) held out.
      patience: stop after this many epochs without a lower validation loss and
        return the parameters of the best epoch.
      progress: show a tqdm progress bar, updated once per compiled chunk.
      on_nonfinite: "stop" (end the run, keep the last finite params) or "skip" (drop bad steps).
      state, history: a TrainState and history to resume from (see fnn.checkpoint).
      chunk_steps: about how many steps one compiled chunk (and one host sync) covers.
      callback: called as callback(state, history) after every chunk (e.g. to checkpoint).
        The state is donated to the next chunk: copy (e.g. jax.device_get) what you keep.
      precision: None (float32) or "bf16"/"fp16" (fnn.precision): float32 params, forward and
        backward in 16 bits; for "fp16" the optimizer is wrapped in dynamic_loss_scale.
      mesh: a Mesh from fnn.parallel.make_mesh(n): data parallel over its devices
        (batch_size a multiple of n; params, optimizer state and data replicated).
    Returns:
      FitResult; history has per-epoch lists epoch, step, train_loss,
      train_accuracy (batch averages), val_loss and val_accuracy.
    """
    loss = get_loss(loss)
    if (epochs is None) == (steps is None):
        raise ValueError(f"fit needs exactly one of epochs or steps, got epochs={epochs!r}, steps={steps!r}")
    check_positive_int("epochs" if steps is None else "steps", epochs if steps is None else steps)
    check_positive_int("batch_size", batch_size)
    x, y = _check_inputs(model, loss, params if state is None else state.params, x, y, "fit")
    if validation_data is not None:
        validation_data = _check_inputs(model, loss, params if state is None else state.params,
                                        *validation_data, "fit: validation_data")
    if validation_split:
        key, split_key = jax.random.split(key)
        (x, y), validation_data = _split_validation(split_key, x, y, validation_split)
    n = x.shape[0]
    if not 0 < batch_size <= n:
        raise ValueError(f"batch_size={batch_size!r} must be between 1 and the {n} training examples")
    per_epoch = n // batch_size
    total = steps if steps is not None else epochs * per_epoch
    x_val, y_val = (None, None) if validation_data is None else map(jnp.asarray, validation_data)
    if patience is not None and x_val is None:
        raise ValueError("patience (early stopping) needs validation_data or validation_split")

    if precision is not None and get_policy(precision).loss_scaling:
        optimizer = dynamic_loss_scale(optimizer)       # float16: the loss scale is optimizer state
    if mesh is not None:
        check_batch_size(batch_size, mesh)

    # fit donates its state to the compiled chunk: copy so the caller's arrays stay valid.
    state = init_state(params, optimizer, key) if state is None else state
    state = jax.tree.map(jnp.copy, state)
    early = _EarlyStop(jnp.full((), jnp.inf, jnp.float32),
                       jax.tree.map(jnp.copy, state.params) if patience is not None else (),
                       jnp.zeros((), jnp.int32), jnp.zeros((), bool))
    if mesh is not None:                                # every device holds all of them
        state, early, x, y, x_val, y_val = replicate((state, early, x, y, x_val, y_val), mesh)
    history = {k: list(v) for k, v in (history or {}).items()}
    for name in ("epoch", "step", "train_loss", "train_accuracy", "val_loss", "val_accuracy"):
        history.setdefault(name, [])
    epochs_per_chunk = max(1, min(math.ceil(total / per_epoch), chunk_steps // per_epoch))
    chunk = make_chunk(model, loss, optimizer, batch_size, epochs_per_chunk, method,
                       on_nonfinite, patience, precision, mesh)

    from tqdm.auto import tqdm
    done = int(state.step)
    bar = tqdm(total=total, initial=done, unit="step", disable=not progress, leave=False)
    start, compute_seconds, timed_steps, first = time.perf_counter(), 0.0, 0, True
    while done < total:
        t0 = time.perf_counter()
        state, early, m = chunk(state, early, x, y, x_val, y_val, jnp.asarray(total - done, jnp.int32))
        m = jax.device_get(m)                            # one host sync per chunk
        dt = time.perf_counter() - t0
        ran = int(m["steps"].sum())
        if not first:                                    # the first chunk includes compilation
            compute_seconds, timed_steps = compute_seconds + dt, timed_steps + ran
        first = False
        for e in range(epochs_per_chunk):
            if m["steps"][e] == 0:
                continue
            done += int(m["steps"][e])
            history["epoch"].append(len(history["epoch"]) + 1)
            history["step"].append(done)
            for name in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
                value = float(m[name][e])
                history[name].append(None if math.isnan(value) and name != "train_loss" else value)
        bar.update(ran)
        if history["train_loss"]:
            bar.set_postfix(loss=f"{history['train_loss'][-1]:.4f}", steps_per_s=f"{ran / dt:,.0f}")
        if callback is not None:
            callback(state, history)
        if ran == 0 or bool(early.stopped) or (on_nonfinite == "stop" and int(state.nonfinite_step) >= 0):
            break
    bar.close()
    wall = time.perf_counter() - start
    stopped_early = bool(early.stopped)
    params = early.best_params if stopped_early else state.params
    bad = int(state.nonfinite_step)
    rate = timed_steps / compute_seconds if compute_seconds > 0 else (done / wall if wall > 0 else 0.0)
    return FitResult(params, state, history, stopped_early, bad if bad >= 0 else None,
                     done, wall, rate)
