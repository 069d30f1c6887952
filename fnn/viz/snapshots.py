"""The report's frames, captured during fit(): parameter snapshots and the chunk size that paces them.

Parameters are captured during fit() by a `Snapshots` callback; `chunk_steps`
picks fit()'s chunk size so that the callback runs about `frames` times:

    snapshots = Snapshots(params)
    result = fit(model, loss, opt, params, x, y, key=key, epochs=50,
                 chunk_steps=chunk_steps(len(x), 32, epochs=50), callback=snapshots)
"""
import math
from typing import Any, Callable, NamedTuple, Optional

import jax
import numpy as np

from fnn.errors import InputError
from fnn.validate import check_positive_int

__all__ = ["REPORT_FRAMES", "Snapshot", "Snapshots", "chunk_steps"]

REPORT_FRAMES = 30           # about how many frames a report's run is cut into


class Snapshot(NamedTuple):
    """The parameters (host NumPy arrays) after `step` steps, `epoch` whole epochs, and the
    model state that goes with them (BatchNorm's running statistics; () for most models)."""
    step: int
    epoch: int
    params: Any
    model_state: Any = ()


def _host_copy(params):
    return jax.tree.map(lambda a: np.array(a, copy=True), params)


class Snapshots:
    """A fit() callback that keeps a copy of the parameters each time it is called.

    fit() calls its callback after every compiled chunk (see `chunk_steps`).

    Args:
      start: the parameters before training (recorded as frame 0), or the
        TrainState a run resumes from; None to record only during training.
      history: the history being resumed, for the starting epoch.
      then: another callback to call afterwards, e.g. one that writes a checkpoint.
    """

    def __init__(self, start=None, *, history=None, then: Optional[Callable] = None):
        self.frames = []
        self.then = then
        if start is not None:
            if hasattr(start, "params") and hasattr(start, "step"):       # a TrainState
                epoch = len((history or {}).get("epoch") or [])
                self.add(start.params, int(start.step), epoch, getattr(start, "model_state", ()))
            else:
                self.add(start, 0, 0)

    def add(self, params, step, epoch, model_state=()):
        """Record `params` (and the model state with them) as the frame for `step` and `epoch`."""
        self.frames.append(Snapshot(int(step), int(epoch), _host_copy(params), _host_copy(model_state)))

    def __call__(self, state, history):
        epochs = history.get("epoch") or [0]
        self.add(state.params, int(state.step), epochs[-1], getattr(state, "model_state", ()))
        if self.then is not None:
            self.then(state, history)

    def __len__(self):
        return len(self.frames)

    def __iter__(self):
        return iter(self.frames)

    def __getitem__(self, i):
        return self.frames[i]


def chunk_steps(n_train, batch_size, *, epochs=None, steps=None, frames=REPORT_FRAMES):
    """fit()'s chunk_steps for about `frames` snapshots: a whole number of epochs per chunk.

    With E = ⌈total steps / steps per epoch⌉ epochs in the run, each chunk is
    ⌈E / frames⌉ epochs, so fit() calls its callback at most `frames` times.
    Snapshots are taken at chunk ends, so a run shorter than `frames` epochs
    gets one frame per epoch.

    Args:
      n_train: the number of training examples; batch_size: fit()'s batch size.
      epochs / steps: the run's length, as given to fit() (exactly one).
      frames: about how many frames to capture.
    Returns:
      the chunk size in steps, a multiple of the steps per epoch ⌊n_train / batch_size⌋.
    """
    n_train = check_positive_int("n_train", n_train)
    batch_size = check_positive_int("batch_size", batch_size)
    frames = check_positive_int("frames", frames)
    if batch_size > n_train:
        raise InputError(f"chunk_steps: batch_size {batch_size} is larger than the {n_train} examples")
    if (epochs is None) == (steps is None):
        raise InputError(f"chunk_steps needs exactly one of epochs or steps, got epochs={epochs!r}, "
                         f"steps={steps!r}")
    per_epoch = n_train // batch_size
    if epochs is not None:
        total_epochs = check_positive_int("epochs", epochs)
    else:
        total_epochs = math.ceil(check_positive_int("steps", steps) / per_epoch)
    return math.ceil(total_epochs / frames) * per_epoch
