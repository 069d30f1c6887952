"""fit(): minibatch training, several epochs per compiled program, one host sync per chunk.

A chunk is one jitted program of `epochs_per_chunk` epochs:

    for each epoch (a lax.scan over the chunk's epochs):
        if steps are left and the run has not halted:
            run the epoch with the unchecked step                      (fnn.train.epoch)
            if a loss, or the params, optimizer state or model state after it, are not finite:
                run it again from the same start with the checked step
        evaluate the validation set; update the early-stopping record

The checked step is pure overhead when nothing goes wrong, so it runs only to
find the step that went wrong; the result is always that of the checked step.
It keeps no step whose loss, gradients, updates, new params or new optimizer
state hold a NaN/inf (fnn.train.step), and fit starts only from finite params,
state and model state with learning rates that are finite and >= 0 at every step
(fnn.optim.check_learning_rates), so the params fit returns, and every state
its callback sees (e.g. to checkpoint), are finite.
The number of steps left is a traced value, so the last, shorter chunk does
not recompile; the program is keyed on (model, loss, optimizer, ChunkConfig),
so a second fit with the same objects and shapes compiles nothing.
"""
import functools
import math
import time
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import jax
import jax.numpy as jnp
import numpy as np

from fnn.errors import InputError, InputTypeError
from fnn.layers.core import Layer
from fnn.losses import Loss, get_loss
from fnn.numerics import all_finite, nonfinite_leaves
from fnn.optim.schedules import check_learning_rates
from fnn.train.epoch import (MeanRecord, copies_data, epoch_batches, epoch_indices, epoch_keys,
                             run_epoch)
from fnn.layers.core import init_state as init_model_state
from fnn.train.evaluate import check_inputs, evaluate_batch
from fnn.train.step import StepConfig, TrainState, init_state, make_step, training_optimizer
from fnn.typing import ArrayLike, ModelState, Optimizer, Params, PRNGKey
from fnn.validate import (MAX_STEPS, check_bool, check_callable, check_key, check_model, check_model_state,
                          check_number, check_optional_positive_int, check_positive_int)

__all__ = ["FitResult", "ChunkConfig", "EarlyStop", "EpochMetrics", "HISTORY_KEYS", "fit"]

HISTORY_KEYS = ("epoch", "step", "train_loss", "train_accuracy", "val_loss", "val_accuracy")


class FitResult(NamedTuple):
    """What fit() returns: final (or best) params, the final state and the history.

    model_state is the model's non-trainable state that goes with `params` (the best
    epoch's under early stopping, else state.model_state); () for a stateless model.
    steps is the run's step counter (a resumed run's included), steps_trained this
    call's steps. steps_per_second excludes compilation: it is measured over the chunks
    after the first, which compiles; compile_seconds is the first chunk's time beyond
    its steps at that rate. With a single chunk nothing separates the two:
    steps_per_second then includes compilation and compile_seconds is None.
    """
    params: Any
    state: TrainState
    history: Dict[str, List[float]]
    stopped_early: bool
    nonfinite_step: Optional[int]
    steps: int
    wall_seconds: float
    steps_per_second: float
    model_state: Any = ()
    steps_trained: int = 0
    compile_seconds: Optional[float] = None


class ChunkConfig(NamedTuple):
    """What a compiled chunk depends on besides the model, loss and optimizer (static, hashable)."""
    batch_size: int
    epochs_per_chunk: int
    patience: Optional[int]
    copy_data: bool               # permute a copy of the data once per epoch (fnn.train.epoch)
    step: StepConfig


class EarlyStop(NamedTuple):
    """Early stopping's record: best validation loss so far, its params and model state, epochs since, stopped."""
    best_loss: jax.Array
    best_params: Any
    wait: jax.Array
    stopped: jax.Array
    best_model_state: Any = ()


class EpochMetrics(NamedTuple):
    """One epoch's entry of the history, as float32 scalars (NaN where none), and its step count."""
    train_loss: jax.Array
    train_accuracy: jax.Array
    val_loss: jax.Array
    val_accuracy: jax.Array
    steps: jax.Array


class _Chunk(NamedTuple):
    """What every epoch of a compiled chunk reads: its two steps, the model and loss, the data."""
    fast_step: Callable           # the train step without the per-step non-finite check
    checked_step: Callable        # and with it
    model: Any
    loss: Any
    config: ChunkConfig
    x: jax.Array
    y: jax.Array
    x_val: Optional[jax.Array]
    y_val: Optional[jax.Array]


def _train_epoch(c, state, key, idx, n_steps):
    """n_steps of the unchecked step; again with the checked step if anything came out non-finite."""
    batch = epoch_batches(c.x, c.y, idx, c.config.copy_data)     # (permuted only for an epoch that runs)
    start = state._replace(key=key)
    fast_state, fast_record = run_epoch(c.fast_step, start, batch, n_steps, MeanRecord.empty())
    clean = fast_record.finite & all_finite((fast_state.params, fast_state.opt_state, fast_state.model_state))
    return jax.lax.cond(clean, lambda: (fast_state, fast_record),
                        lambda: run_epoch(c.checked_step, start, batch, n_steps, MeanRecord.empty()))


def _halted(state, early, config):
    """Whether the run has stopped: a non-finite step under "stop", or early stopping."""
    bad = state.nonfinite_step >= 0 if config.step.on_nonfinite == "stop" else jnp.zeros((), bool)
    return bad | early.stopped


def _early_stop(early, active, val_loss, state, patience):
    """The early-stopping record after an epoch (unchanged for an epoch that did not run)."""
    better = active & (val_loss < early.best_loss)
    wait = jnp.where(better, 0, early.wait + active.astype(early.wait.dtype))
    keep = lambda new, best: jax.tree.map(lambda p, b: jnp.where(better, p, b), new, best)
    return EarlyStop(jnp.where(better, val_loss, early.best_loss), keep(state.params, early.best_params),
                     wait, early.stopped | (wait >= patience), keep(state.model_state, early.best_model_state))


def _one_epoch(c, carry, epoch):
    """One epoch of a chunk, if steps are left and the run has not halted; its EpochMetrics."""
    state, early, left = carry
    key, idx = epoch                                             # idx: (steps, batch)
    active = (left > 0) & ~_halted(state, early, c.config)      # True for a prefix of the epochs
    n_run = jnp.where(active, jnp.minimum(left, idx.shape[0]), 0)
    state, record = jax.lax.cond(active, lambda s: _train_epoch(c, s, key, idx, n_run),
                                 lambda s: (s, MeanRecord.empty()), state)
    train_loss, train_accuracy = record.means()                 # NaN for an epoch that did not run
    nan = jnp.full((), jnp.nan, jnp.float32)
    val_loss, val_accuracy = (nan, nan) if c.x_val is None else evaluate_batch(
        c.model, c.loss, state.params, c.x_val, c.y_val, state.model_state)
    if c.config.patience is not None:
        early = _early_stop(early, active, val_loss, state, c.config.patience)
    return (state, early, left - n_run), EpochMetrics(train_loss, train_accuracy, val_loss, val_accuracy, n_run)


def _chunk(model, loss, optimizer, config, state, early, x, y, x_val, y_val, steps_left):
    """config.epochs_per_chunk epochs, at most steps_left steps: (state, early, EpochMetrics of (epochs,))."""
    c = _Chunk(make_step(model, loss, optimizer, config.step, checked=False),
               make_step(model, loss, optimizer, config.step), model, loss, config, x, y, x_val, y_val)
    keys, perm_keys = epoch_keys(state.key, config.epochs_per_chunk)      # (epochs,) each
    all_idx = epoch_indices(perm_keys, x.shape[0], config.batch_size)     # (epochs, steps, batch)
    (state, early, _), metrics = jax.lax.scan(functools.partial(_one_epoch, c), (state, early, steps_left),
                                              (keys, all_idx))
    return state, early, metrics


_chunk_program = jax.jit(_chunk, static_argnums=(0, 1, 2, 3), donate_argnums=(4, 5))


def _check_finite_start(start, what=None):
    """ValueError naming the first leaf of the params (or TrainState, or model_state) given to fit that holds NaN/inf."""
    bad = nonfinite_leaves(start)
    if bad:
        what = what or ("state" if isinstance(start, TrainState) else "params")
        path, count = bad[0]
        raise InputError(f"fit: {what}{path} holds {count} NaN/inf value(s) ({len(bad)} leaf(s) in all); "
                         "training starts from finite parameters, optimizer state and model state only")


def _split_validation(key, x, y, fraction):
    n = x.shape[0]
    n_val = int(round(n * fraction))
    if not 0 < n_val < n:
        raise InputError(f"validation_split={fraction!r} leaves {n_val} of {n} examples for validation; "
                         "expected a fraction that keeps both parts non-empty")
    perm = np.asarray(jax.random.permutation(key, n))
    return (x[perm[n_val:]], y[perm[n_val:]]), (x[perm[:n_val]], y[perm[:n_val]])


def _check_parts(model, optimizer):
    """InputTypeError unless model is an fnn Layer and optimizer an (init, update) pair."""
    check_model(model, "fit")
    if not (callable(getattr(optimizer, "init", None)) and callable(getattr(optimizer, "update", None))):
        raise InputTypeError("fit: optimizer must be an fnn.optim optimizer (init, update) such as "
                             "fnn.optim.adam(1e-3) or fnn.get_optimizer('adam', learning_rate=1e-3), "
                             f"got {_short(optimizer)}")


def _check_settings(key, steps, epochs, batch_size, patience, chunk_steps, validation_split,
                    validation_data, state, history, callback, progress, model_state=None):
    """fit's scalar settings, normalised (Python ints/floats), or an FnnError naming the one that is wrong."""
    key = check_key("fit: key", key)
    if (epochs is None) == (steps is None):
        raise InputError(f"fit needs exactly one of epochs or steps, got epochs={epochs!r}, steps={steps!r}")
    if steps is not None:
        steps = check_positive_int("steps", steps, maximum=MAX_STEPS)
    else:
        epochs = check_positive_int("epochs", epochs, maximum=MAX_STEPS)
    batch_size = check_positive_int("batch_size", batch_size)
    patience = check_optional_positive_int("patience", patience)
    chunk_steps = check_positive_int("chunk_steps", chunk_steps)
    validation_split = 0.0 if validation_split is None else check_number(
        "validation_split", validation_split, 0, 1, high_open=True)
    if validation_split and validation_data is not None:
        raise InputError(f"fit got both validation_data and validation_split={validation_split!r}; "
                         "expected at most one of them")
    if validation_data is not None and not (isinstance(validation_data, (tuple, list))
                                            and len(validation_data) == 2):
        raise InputTypeError(f"validation_data must be a pair (x_val, y_val), got {_short(validation_data)}")
    if state is not None and not isinstance(state, TrainState):
        raise InputTypeError(f"state must be a fnn.TrainState (e.g. FitResult.state, or restored with "
                             f"fnn.checkpoint.load), got {_short(state)}")
    if state is not None and model_state is not None:
        raise InputError("fit got both state and model_state; a resumed run's model state is "
                         "state.model_state: give at most one of them")
    if history is not None and not (isinstance(history, dict)
                                    and all(isinstance(v, (list, tuple)) for v in history.values())):
        raise InputTypeError(f"history must be a dict of lists such as FitResult.history, got {_short(history)}")
    check_callable("callback", callback)
    check_bool("progress", progress)
    return key, steps, epochs, batch_size, patience, chunk_steps, validation_split


def _short(value, limit=80):
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({type(value).__name__})"


def _progress_bar(total, done):
    """tqdm's bar, imported only here: fit without a progress bar does not need tqdm."""
    from tqdm.auto import tqdm
    # no tqdm rate: its own counts compilation; the postfix gives the rate after the first chunk
    return tqdm(total=total, initial=done, unit="step", leave=False,
                bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]")


class _NoBar:
    """The bar of fit(progress=False): tqdm's update, set_postfix and close, doing nothing."""
    update = set_postfix = close = lambda self, *args, **kwargs: None


def _record(history, metrics, done):
    """Append a chunk's epochs that ran to the history; the step count after them."""
    for e in range(len(metrics.steps)):
        if metrics.steps[e] == 0:
            continue
        done += int(metrics.steps[e])
        history["epoch"].append(len(history["epoch"]) + 1)
        history["step"].append(done)
        for name in HISTORY_KEYS[2:]:
            value = float(getattr(metrics, name)[e])
            history[name].append(None if math.isnan(value) and name != "train_loss" else value)
    return done


def fit(model: Layer, loss: Union[str, Loss], optimizer: Optimizer, params: Params, x: ArrayLike, y: ArrayLike, *,
        key: PRNGKey,
        steps: Optional[int] = None, epochs: Optional[int] = None, batch_size: int = 32,
        validation_data: Optional[Tuple[ArrayLike, ArrayLike]] = None, validation_split: float = 0.0,
        patience: Optional[int] = None,
        config: StepConfig = StepConfig(), model_state: Optional[ModelState] = None,
        state: Optional[TrainState] = None, history: Optional[Dict[str, Sequence[Any]]] = None,
        callback: Optional[Callable[[TrainState, Dict[str, List[Any]]], Any]] = None, progress: bool = True,
        chunk_steps: int = 2000) -> FitResult:
    """Train `model` on (x, y) with minibatch `optimizer` steps, several epochs per compiled program.

    Args:
      model, loss, optimizer: an fnn Layer, Loss (or name) and optimizer (init, update).
      params: initial parameters (ignored when `state` is given).
      x, y: training inputs and targets.
      key: PRNG key for shuffling, the validation split and dropout.
      steps / epochs: how long to train (exactly one of them; steps may end
        mid-epoch). At most MAX_STEPS = 2**31 - 1 steps in all (the int32 step
        counter), epochs × batches per epoch included. With `state`, they count
        from step 0, so a resumed run ends where an uninterrupted one would.
      batch_size: minibatch size (≤ the number of training examples); each epoch
        is one random permutation, the last partial batch dropped.
      validation_data: (x_val, y_val), scored after every epoch (not with validation_split).
      validation_split: a fraction in [0, 1) of (x, y) held out for validation instead.
      patience: None, or a positive integer: stop after this many epochs without a
        lower validation loss and return the parameters of the best epoch.
      config: a StepConfig: gradient method ("manual"/"autodiff"), on_nonfinite
        ("stop": end the run, keep the last finite params; "skip": drop bad steps),
        precision (None, "bf16", "fp16": the optimizer is then wrapped in
        dynamic_loss_scale), mesh (data parallel; batch_size a multiple of its devices).
      model_state: the model's initial non-trainable state (BatchNorm's running
        statistics); None for fnn.init_state(model, (-1,) + x.shape[1:]) in the dtype of
        params (() for a stateless model). Not with `state`, which holds its own.
      state, history: a TrainState and history to resume from (see fnn.checkpoint).
      callback: called as callback(state, history) after every chunk (e.g. to checkpoint).
        The state is donated to the next chunk: copy (e.g. jax.device_get) what you keep.
      progress: True or False: show a tqdm progress bar, updated once per compiled chunk.
      chunk_steps: a positive integer, about how many steps one compiled chunk (and one
        host sync) covers.

    Raises:
      InputError / InputTypeError naming the setting, before any training, for a
      setting out of range or of the wrong type (a key that is not a PRNG key included).

    Returns:
      FitResult; history has per-epoch lists epoch, step, train_loss,
      train_accuracy (batch averages), val_loss and val_accuracy (in inference
      mode, with the model state after each epoch); model_state is the one that goes
      with params (the best epoch's under early stopping).
    """
    loss = get_loss(loss)
    config = StepConfig.checked(config)
    _check_parts(model, optimizer)
    key, steps, epochs, batch_size, patience, chunk_steps, validation_split = _check_settings(
        key, steps, epochs, batch_size, patience, chunk_steps, validation_split, validation_data,
        state, history, callback, progress, model_state)
    start_params = params if state is None else state.params
    x, y = check_inputs(model, loss, start_params, x, y, "fit")
    model_state = _start_model_state(model, start_params, x, model_state if state is None else state.model_state,
                                     "fit: state" if state is not None else "fit")
    if validation_data is not None:
        validation_data = check_inputs(model, loss, start_params, *validation_data, "fit: validation_data",
                                       model_state)
    if validation_split:
        key, split_key = jax.random.split(key)
        (x, y), validation_data = _split_validation(split_key, x, y, validation_split)
    n = x.shape[0]
    if not 0 < batch_size <= n:
        raise InputError(f"batch_size={batch_size!r} must be between 1 and the {n} training examples")
    per_epoch = n // batch_size
    total = steps if steps is not None else epochs * per_epoch
    if total > MAX_STEPS:
        raise InputError(f"epochs={epochs!r} of {per_epoch} batches each is {total} steps, more than the "
                         f"{MAX_STEPS} an int32 step counter holds; expected at most "
                         f"{MAX_STEPS // per_epoch} epochs")
    x_val, y_val = (None, None) if validation_data is None else map(jnp.asarray, validation_data)
    if patience is not None and x_val is None:
        raise InputError("patience (early stopping) needs validation_data or validation_split")
    if config.mesh is not None:
        from fnn.train.parallel import check_batch_size
        check_batch_size(batch_size, config.mesh)
    _check_finite_start(params if state is None else state)
    _check_finite_start(model_state, "model_state")
    check_learning_rates(optimizer, total)

    # fit donates its state to the compiled chunk: copy so the caller's arrays stay valid.
    state = (init_state(params, training_optimizer(optimizer, config), key, model_state) if state is None
             else state)
    state = jax.tree.map(jnp.copy, state)
    best = lambda tree: jax.tree.map(jnp.copy, tree) if patience is not None else ()
    early = EarlyStop(jnp.full((), jnp.inf, jnp.float32), best(state.params),
                      jnp.zeros((), jnp.int32), jnp.zeros((), bool), best(state.model_state))
    if config.mesh is not None:                         # every device holds all of them
        from fnn.train.parallel import replicate
        state, early, x, y, x_val, y_val = replicate((state, early, x, y, x_val, y_val), config.mesh)
    history = {k: list(v) for k, v in (history or {}).items()}
    for name in HISTORY_KEYS:
        history.setdefault(name, [])
    chunk = ChunkConfig(batch_size, max(1, min(math.ceil(total / per_epoch), chunk_steps // per_epoch)),
                        patience, bool(copies_data(x, y)), config)

    done = first_step = int(state.step)
    bar = _progress_bar(total, done) if progress else _NoBar()
    start, compute_seconds, timed_steps, first = time.perf_counter(), 0.0, 0, True
    first_seconds, first_steps = 0.0, 0
    while done < total:
        t0 = time.perf_counter()
        state, early, m = _chunk_program(model, loss, optimizer, chunk, state, early, x, y, x_val, y_val,
                                         jnp.asarray(total - done, jnp.int32))
        m = jax.device_get(m)                            # one host sync per chunk
        dt = time.perf_counter() - t0
        ran = int(m.steps.sum())
        if first:                                        # the first chunk includes compilation
            first_seconds, first_steps = dt, ran
        else:
            compute_seconds, timed_steps = compute_seconds + dt, timed_steps + ran
        first = False
        done = _record(history, m, done)
        bar.update(ran)
        if history["train_loss"]:
            rate = f"{timed_steps / compute_seconds:,.0f}" if compute_seconds > 0 else "(compiling)"
            bar.set_postfix(loss=f"{history['train_loss'][-1]:.4f}", steps_per_s=rate)
        if callback is not None:
            callback(state, history)
        if ran == 0 or bool(early.stopped) or (config.on_nonfinite == "stop" and int(state.nonfinite_step) >= 0):
            break
    bar.close()
    wall = time.perf_counter() - start
    stopped_early = bool(early.stopped)
    bad = int(state.nonfinite_step)
    rate = timed_steps / compute_seconds if compute_seconds > 0 else (
        (done - first_step) / wall if wall > 0 else 0.0)     # this call's steps, not a resumed run's
    compile_seconds = max(0.0, first_seconds - first_steps / rate) if compute_seconds > 0 else None
    return FitResult(early.best_params if stopped_early else state.params, state, history, stopped_early,
                     bad if bad >= 0 else None, done, wall, rate,
                     early.best_model_state if stopped_early else state.model_state,
                     done - first_step, compile_seconds)


def _start_model_state(model, params, x, model_state, where):
    """The model state a run starts from: the one given (checked) or fnn.init_state in params' dtype."""
    if model_state is None:
        floats = [l.dtype for l in jax.tree.leaves(params) if jnp.issubdtype(l.dtype, jnp.floating)]
        model_state = init_model_state(model, (-1,) + tuple(x.shape[1:]), floats[0] if floats else x.dtype)
    check_model_state(model, model_state, x.shape, where)
    return model_state
