"""The epoch: one shuffled pass of a train step over the data, as one compiled loop.

Every training loop in fnn (make_epoch, fit, fnn.train.ensemble) runs its
epochs through `run_epoch`:

    key', perm_key = split(state.key)                      # epoch_keys: the chain of epoch keys
    idx = batch_indices(perm_key, n, batch_size)           # (steps, batch): one permutation
    for j in range(n_steps):                               # n_steps ≤ steps, may be traced
        state, m = step(state, x[idx[j]], y[idx[j]])
        record = record.add(j, m)

A record folds the step metrics: `StepRecord` keeps every step's loss and
accuracy, `MeanRecord` their sums (fit's per-epoch means, NaN-skipping) and
whether every loss was finite. Small data is permuted once per epoch and
each step slices its batch from the copy (copy_data=True); larger data, or
data shared by many vmapped models, is gathered step by step with no copy.
"""
from typing import Any, Callable, NamedTuple, Tuple, Union

import jax
import jax.numpy as jnp

from fnn.data import batch_indices
from fnn.layers.core import Layer
from fnn.losses import Loss, get_loss
from fnn.train.step import StepConfig, StepMetrics, TrainState, make_step
from fnn.typing import Optimizer
from fnn.validate import check_positive_int

__all__ = ["COPY_EPOCH_BYTES", "StepRecord", "MeanRecord", "epoch_keys", "epoch_indices",
           "epoch_batches", "run_epoch", "make_epoch", "copies_data"]

# Up to this size (x and y together) an epoch copies its data in permuted order once,
# instead of gathering each minibatch (benchmarks/RESULTS.md, finding 7). Read by
# copies_data() where a run starts (fit), never inside a compiled program.
COPY_EPOCH_BYTES = 64 * 2**20


def copies_data(x, y, limit=None):
    """Whether an epoch over (x, y) should permute a copy of the data (small data) or gather per step.

    limit: bytes of x and y together; None for COPY_EPOCH_BYTES as it is at the call.
    """
    return x.nbytes + y.nbytes <= (COPY_EPOCH_BYTES if limit is None else limit)


class StepRecord(NamedTuple):
    """Every step's loss and accuracy, (steps,) each; NaN for steps not run."""
    losses: jax.Array
    accuracies: jax.Array

    @classmethod
    def empty(cls, steps: int) -> "StepRecord":
        """A record of `steps` steps, all NaN (none run yet).

        Args:
          steps: the number of steps the epoch may run.

        Returns:
          StepRecord of two (steps,) float32 arrays of NaN.
        """
        nan = jnp.full((steps,), jnp.nan, jnp.float32)
        return cls(nan, nan)

    def add(self, j: Any, m: StepMetrics) -> "StepRecord":
        """The record with step j's loss and accuracy written in.

        Args:
          j: the step's index in the epoch (an int or a traced int).
          m: the step's StepMetrics.

        Returns:
          A new StepRecord.
        """
        return StepRecord(self.losses.at[j].set(m.loss), self.accuracies.at[j].set(m.accuracy))


class MeanRecord(NamedTuple):
    """Sums and counts of the steps' non-NaN losses and accuracies, and whether every loss was finite."""
    sums: jax.Array         # (2,): loss, accuracy
    counts: jax.Array       # (2,)
    finite: jax.Array       # bool scalar

    @classmethod
    def empty(cls) -> "MeanRecord":
        """A record of no steps: sums and counts 0, finite True.

        Returns:
          MeanRecord of zeros.
        """
        zeros = jnp.zeros(2, jnp.float32)
        return cls(zeros, zeros, jnp.ones((), bool))

    def add(self, j: Any, m: StepMetrics) -> "MeanRecord":
        """The record with step j's metrics added; NaN values (regression accuracy) are not counted.

        Args:
          j: the step's index (unused: a MeanRecord keeps no order; the signature is StepRecord.add's).
          m: the step's StepMetrics.

        Returns:
          A new MeanRecord.
        """
        del j
        values = jnp.stack([m.loss, m.accuracy])                  # (2,)
        seen = ~jnp.isnan(values)
        return MeanRecord(self.sums + jnp.where(seen, values, 0), self.counts + seen,
                          self.finite & jnp.isfinite(m.loss))

    def means(self) -> Tuple[jax.Array, jax.Array]:
        """(mean loss, mean accuracy): NaN where no step had a value (regression accuracy).

        Returns:
          Two float32 scalars.
        """
        mean = self.sums / self.counts
        return mean[0], mean[1]


def epoch_keys(key, epochs):
    """(keys, perm_keys), each (epochs,): epoch e draws its permutation from perm_keys[e], leaves keys[e].

    The chain key → split → (key', perm_key) that epochs run one after another, drawn at once.
    """
    def next_key(key, _):
        key, perm_key = jax.random.split(key)
        return key, (key, perm_key)

    _, (keys, perm_keys) = jax.lax.scan(next_key, key, None, length=epochs)
    return keys, perm_keys


def epoch_indices(perm_keys, n, batch_size):
    """(epochs, n // batch_size, batch_size) minibatch indices, one permutation per key, in one sort."""
    return jax.vmap(lambda k: batch_indices(k, n, batch_size))(perm_keys)


def epoch_batches(x, y, idx, copy_data):
    """batch(j) -> (x, y) of the epoch's j-th minibatch, for idx of shape (steps, batch_size)."""
    if copy_data:
        xs, ys = x[idx], y[idx]                                  # (steps, batch, ...)
        return lambda j: (xs[j], ys[j])
    return lambda j: (x[idx[j]], y[idx[j]])


def run_epoch(step: Callable[..., Tuple[TrainState, StepMetrics]], state: TrainState,
              batch: Callable[[Any], Tuple[jax.Array, jax.Array]], n_steps: Union[int, jax.Array],
              record: Union[StepRecord, MeanRecord]) -> Tuple[TrainState, Union[StepRecord, MeanRecord]]:
    """n_steps of `step` on batch(0), batch(1), ...; each step's metrics folded into `record`.

    Args:
      step: step(state, x, y) -> (state, StepMetrics), e.g. from make_step.
      state: the TrainState to start from.
      batch: batch(j) -> (x, y) of the j-th minibatch (epoch_batches).
      n_steps: how many steps to run; traced (a while loop with that many turns, no
        per-step branch) or an int (a scan).
      record: the empty record to fold the metrics into: StepRecord.empty(steps) or
        MeanRecord.empty().

    Returns:
      (state, record) after the n_steps steps.
    """
    def body(j, carry):
        s, r = carry
        s, m = step(s, *batch(j))
        return s, r.add(j, m)

    start = 0 if isinstance(n_steps, int) else jnp.zeros((), jnp.asarray(n_steps).dtype)
    return jax.lax.fori_loop(start, n_steps, body, (state, record))


def make_epoch(model: Layer, loss: Union[str, Loss], optimizer: Optimizer, batch_size: int,
               config: StepConfig = StepConfig(), *,
               copy_data: bool = True) -> Callable[..., Tuple[TrainState, StepRecord]]:
    """A jitted epoch(state, x, y) -> (state, StepRecord): every full minibatch once.

    Draws one permutation of the examples from the state's key (epoch_keys) and
    runs the train step over its n // batch_size minibatches (the last partial
    batch is dropped).

    Args:
      model, loss, optimizer: an fnn Layer, a Loss (or its name), an optimizer (init, update).
      batch_size: the minibatch size, a positive int.
      config: a StepConfig (method, on_nonfinite, precision, mesh).
      copy_data: permute a copy of the data once (small data) or gather each batch
        (see the module docstring; copies_data(x, y) decides as fit does).

    Returns:
      epoch(state, x, y) -> (TrainState, StepRecord), jitted; it donates `state`.

    Raises:
      InputError / InputTypeError: for a batch_size that is not a positive int, or a
      config or loss fnn does not know.
    """
    batch_size = check_positive_int("batch_size", batch_size)
    step = make_step(model, get_loss(loss), optimizer, config)

    def epoch(state, x, y):
        keys, perm_keys = epoch_keys(state.key, 1)
        idx = epoch_indices(perm_keys, x.shape[0], batch_size)[0]          # (steps, batch)
        steps = idx.shape[0]
        return run_epoch(step, state._replace(key=keys[0]), epoch_batches(x, y, idx, copy_data),
                         steps, StepRecord.empty(steps))

    return jax.jit(epoch, donate_argnums=0)
