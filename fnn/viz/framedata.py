"""The numbers a report's frames show, computed once per snapshot: metrics, outputs, gradients.

For each snapshot of the parameters one compiled program evaluates the model
on the training data and on the report's split (loss and accuracy), runs it on
the inputs of the frame's main picture (a decision-boundary grid, the split's
examples, a 1-D curve's grid), and backpropagates the loss of a fixed batch of
training examples by fnn's hand-written backward, giving each layer's gradient
norm ‖∂L/∂θ_l‖₂ (vanishing and exploding gradients over training) and, for a
small network, the gradient itself (the backward pass drawn on the network).

    gradient_norms(model, loss, params, x, y)   {layer: ‖∂L/∂θ_l‖₂}, by manual backprop
    ReportData(model, loss, dataset)            .add(snapshot) per frame, .ranges() for the axes
"""
import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fnn.errors import InputError, InputTypeError
from fnn.grads import value_and_grad
from fnn.layers import init_state as init_model_state
from fnn.losses import get_loss
from fnn.train.evaluate import check_inputs, evaluate_batch
from fnn.validate import check_positive_int
from fnn.viz.architecture import dense_layers
from fnn.viz.predictions import decision_grid
from fnn.viz.scales import log_range
from fnn.viz.snapshots import Snapshot

__all__ = ["FRAME_KINDS", "frame_kind", "FrameData", "ReportData", "gradient_norms", "layer_groups",
           "BACKWARD_MAX_HIDDEN"]

FRAME_KINDS = ("boundary", "confusion", "fit", "scatter")
BACKWARD_MAX_HIDDEN = 64      # the backward pass is drawn on networks with at most this many hidden units
GRAD_BATCH = 256              # training examples whose gradient each frame shows
_MAX_POINTS = 600             # training points drawn under a decision boundary
_FIT_POINTS = 200             # grid points of a 1-D regression's curve
SAMPLES = 8                   # sample predictions shown for classification without 2-D inputs


def frame_kind(dataset):
    """Which picture a frame shows for `dataset`: one of FRAME_KINDS (by its task and widths)."""
    if dataset.task in ("classification", "binary"):
        return "boundary" if dataset.in_features == 2 else "confusion"
    return "fit" if dataset.in_features == 1 and dataset.out_features == 1 else "scatter"


def layer_groups(model, params):
    """[(label, paths)]: each layer with parameters, named from the model, with its leaves' paths.

    A layer is a dict of arrays in the params tree ({'W', 'b'} of Dense, {'scale', 'offset'}
    of a norm); its label is its position among them and the model's name for it, e.g.
    "2: Dense(8)".
    """
    groups = {}
    for path, _ in jax.tree_util.tree_flatten_with_path(params)[0]:
        groups.setdefault(path[:-1], []).append(path)
    labels = []
    for k, parent in enumerate(groups, start=1):
        layer, name = model, None
        for entry in parent:
            i = getattr(entry, "idx", None)
            if i is None or not layer.layers or i >= len(layer.layers):
                break
            layer = layer.layers[i]
            name = layer.name
        labels.append((f"{k}: {name or jax.tree_util.keystr(parent) or model.name}", groups[parent]))
    return labels


def _norms(grads, groups):
    """(‖g_l‖₂ for each layer group) of a gradient tree."""
    leaves = dict(jax.tree_util.tree_flatten_with_path(grads)[0])
    return tuple(jnp.sqrt(sum(jnp.sum(jnp.square(leaves[p].astype(jnp.float32))) for p in paths))
                 for _, paths in groups)


def _grad_key(model):
    return jax.random.key(0) if model.stochastic else None


def gradient_norms(model, loss, params, x, y, *, model_state=None):
    """Each layer's gradient norm ‖∂L/∂θ_l‖₂ on the batch (x, y), by fnn's hand-written backprop.

    ‖∂L/∂θ_l‖₂ = sqrt(Σ over the layer's arrays of Σ g²), g = fnn.value_and_grad(...,
    method="manual"). Dropout uses the fixed key jax.random.key(0).

    Args:
      model, loss: an fnn Layer and its Loss (or loss name); params: its parameters.
      x, y: the batch.
      model_state: a stateful model's state (BatchNorm: the forward uses batch statistics).
    Returns:
      {layer label (layer_groups): norm as a float}, in the layers' order.
    """
    groups = layer_groups(model, params)
    _, grads = value_and_grad(model, get_loss(loss), params, x, y, key=_grad_key(model),
                              state=model_state or None, method="manual")
    return {label: float(n) for (label, _), n in zip(groups, _norms(grads, groups))}


@functools.lru_cache(maxsize=16)
def _frame_program(model, loss, groups, keep_grads):
    """The compiled numbers of one frame, shared by every report of the same model and loss.

    Returns:
      f(params, state, x_train, y_train, x_eval, y_eval, x_main, xb, yb) -> ((train loss, acc),
      (split loss, acc), the output on x_main, per-group gradient norms on (xb, yb), the
      gradients or None).
    """
    key, groups = _grad_key(model), [(None, paths) for paths in groups]

    def numbers(params, state, x_train, y_train, x_eval, y_eval, x_main, xb, yb):
        train = evaluate_batch(model, loss, params, x_train, y_train, state)
        test = evaluate_batch(model, loss, params, x_eval, y_eval, state)
        out = model.apply(params, x_main, state=state)
        _, grads = value_and_grad(model, loss, params, xb, yb, key=key, state=state or None, method="manual")
        return train, test, out, _norms(grads, groups), grads if keep_grads else None

    return jax.jit(numbers)


class FrameData(NamedTuple):
    """What frame i shows, from its snapshot."""
    step: int
    epoch: int
    train: dict              # {"loss", "accuracy"} on the training set
    test: dict               # the same on the report's split
    output: np.ndarray       # the model's output on the main picture's inputs
    grad_norms: tuple        # ‖∂L/∂θ_l‖₂ per layer group on the fixed batch
    grads: Any = None        # ∂L/∂params on that batch (kept when the backward pass is drawn)
    weights: Any = None      # the Dense layers' W (kept when the network is drawn neuron by neuron)


def _metric(loss_value, acc):
    loss_value, acc = float(loss_value), float(acc)
    return {"loss": loss_value, "accuracy": None if math.isnan(acc) else acc}


def _nice_ceil(v):
    """The smallest 1, 2 or 5 × 10^k at or above v (v > 0)."""
    e = 10.0 ** math.floor(math.log10(v))
    return next(m * e for m in (1, 2, 5, 10) if m * e >= v * (1 - 1e-9))


class ReportData:
    """The report's run: per-snapshot FrameData, the history, and the axis ranges they need.

    Args:
      model, loss: the fnn Layer and its Loss (or loss name).
      dataset: the fnn.data.Dataset it trains on.
      split: the name of the dataset's test split in the report, the same name as the
        history's val_* entries when fit() was given that split as validation_data.
      resolution: decision-boundary grid points per axis.
      epochs: the run's length in epochs when known (fixes the curves' x-axis from frame 0).
    """

    def __init__(self, model, loss, dataset, *, split="test", resolution=100, epochs=None):
        if not hasattr(dataset, "task") or not hasattr(dataset, "x_train"):
            raise InputTypeError(f"a training report needs an fnn.data.Dataset, got {type(dataset).__name__}")
        if not isinstance(split, str) or not split:
            raise InputTypeError(f"split must be the name of the report's test split (a string), got {split!r}")
        self.model, self.loss, self.ds = model, get_loss(loss), dataset
        self.kind = frame_kind(dataset)
        self.resolution = check_positive_int("resolution", resolution)
        self.epochs = None if epochs is None else check_positive_int("epochs", epochs)
        has_test = len(dataset.x_test) > 0
        self.x_eval, self.y_eval = ((dataset.x_test, dataset.y_test) if has_test
                                    else (dataset.x_train, dataset.y_train))
        self.split = split if has_test else "train"
        self.frames, self.history = [], {}
        self._program = None
        self._prepare_inputs()

    def _prepare_inputs(self):
        ds, x = self.ds, np.asarray(self.ds.x_train, np.float64)
        self.points = self.labels = self.grid = None
        if self.kind == "boundary":
            keep = np.linspace(0, len(x) - 1, min(len(x), _MAX_POINTS)).astype(int)
            self.points, self.labels = x[keep], np.asarray(ds.y_train)[keep]
            lo, hi = x.min(axis=0), x.max(axis=0)
            pad = (0.3 if len(x) <= 20 else 0.15) * np.where(hi > lo, hi - lo, 1.0)
            limits = ((lo[0] - pad[0], hi[0] + pad[0]), (lo[1] - pad[1], hi[1] + pad[1]))
            self.grid = decision_grid(x, self.resolution, limits=limits)
            x_main = np.stack([g.ravel() for g in self.grid], axis=1)             # (r², 2)
        elif self.kind == "fit":
            keep = np.linspace(0, len(x) - 1, min(len(x), _MAX_POINTS)).astype(int)
            self.points, self.labels = x[keep, 0], np.asarray(ds.y_train, np.float64).reshape(len(x))[keep]
            self.grid = np.linspace(x.min(), x.max(), _FIT_POINTS)
            x_main = self.grid.reshape(-1, 1)                                     # (points, 1)
        else:
            x_main = self.x_eval
        self.x_main = jnp.asarray(x_main, jnp.asarray(ds.x_train).dtype)
        n = min(GRAD_BATCH, len(ds.x_train))
        self.arrays = tuple(jnp.asarray(a) for a in (ds.x_train, ds.y_train, self.x_eval, self.y_eval,
                                                     self.x_main, ds.x_train[:n], ds.y_train[:n]))

    def _state(self, snap):
        """A snapshot's model state: its own; the initial state for a stateful model's snapshot
        without one (the parameters before training); () for a stateless model."""
        state = getattr(snap, "model_state", ())
        if jax.tree.leaves(state):
            return state
        if self.model.stateful:
            return init_model_state(self.model, (-1,) + tuple(self.ds.x_train.shape[1:]))
        return ()

    def _compile(self, snap):
        model, loss, state = self.model, self.loss, self._state(snap)
        check_inputs(model, loss, snap.params, self.ds.x_train, self.ds.y_train, "training report", state)
        check_inputs(model, loss, snap.params, self.x_eval, self.y_eval, "training report", state)
        self.groups = layer_groups(model, snap.params)
        try:
            dense = dense_layers(snap.params)
        except (TypeError, ValueError):
            dense = []
        self.drawable = bool(dense)
        self.sizes = [dense[0][0].shape[0]] + [W.shape[1] for W, _ in dense] if dense else None
        self.backward = self.drawable and sum(self.sizes[1:-1]) <= BACKWARD_MAX_HIDDEN
        self._program = _frame_program(model, loss, tuple(tuple(p) for _, p in self.groups), self.backward)

    def add(self, snap):
        """Compute and keep the FrameData of one Snapshot; returns it."""
        if not isinstance(snap, Snapshot):
            snap = Snapshot(*snap)
        if self._program is None:
            self._compile(snap)
        state = self._state(snap)
        train, test, out, norms, grads = jax.device_get(self._program(snap.params, state, *self.arrays))
        frame = FrameData(int(snap.step), int(snap.epoch), _metric(*train), _metric(*test),
                          np.asarray(out), tuple(float(n) for n in norms),
                          jax.tree.map(np.asarray, grads) if self.backward else None,
                          [np.asarray(W) for W, _ in dense_layers(snap.params)] if self.drawable else None)
        self.frames.append(frame)
        return frame

    def extend(self, snapshots, history=None):
        """Add the snapshots not yet added (those after len(self.frames)) and take the history."""
        snaps = list(snapshots)
        if not snaps and not self.frames:
            raise InputError("the report needs at least one snapshot of the parameters; pass "
                             "Snapshots(params) as fit()'s callback")
        for snap in snaps[len(self.frames):]:
            self.add(snap)
        self.history = dict(history or {})
        return self

    @property
    def layer_labels(self):
        return [label for label, _ in self.groups]

    @staticmethod
    def _headroom(log_bounds, final):
        """While the run goes on, two more decades under the values so far (losses and gradient
        norms mostly fall), so that the live curves are laid out anew rarely."""
        low, high = log_bounds
        return (low, high) if final else (low / 100, high)

    def ranges(self, final=True):
        """The axis ranges every frame shares, from all frames and the history so far.

        Args:
          final: the run is over: the epoch axis ends at its last epoch. While it runs (False)
            the axis ends at `epochs` when known, else the last epoch rounded up to 1, 2 or
            5 × 10^k, and log axes reach two decades lower, so that they change rarely.
        Returns:
          {"epoch": (0, E), "loss": (scale, low, high), "grad": (low, high), "blame": (low, high)
          or None}; log ranges are whole decades. "blame", the colour scale of the backward
          pass, is the four decades under the first frame's largest gradient (larger ones later
          get its darkest colour).
        """
        h = self.history
        last = max([f.epoch for f in self.frames] + list(h.get("epoch") or []) + [1])
        if final:
            epochs = last
        elif self.epochs:
            epochs = max(self.epochs, last)
        else:
            epochs = _nice_ceil(last)
        losses = [v for k in ("train_loss", "val_loss") for v in h.get(k) or [] if v is not None]
        losses += [getattr(f, s)["loss"] for f in self.frames for s in ("train", "test")]
        finite = [v for v in losses if math.isfinite(v)]
        if finite and min(finite) <= 0:
            top = max(finite)
            loss = ("linear", min(0.0, min(finite)), _nice_ceil(top) if top > 0 else 1.0)
        else:
            loss = ("log", *self._headroom(log_range(finite), final))
        grad = self._headroom(log_range([n for f in self.frames for n in f.grad_norms]), final)
        blame = None
        if self.backward:              # from frame 0 alone, so that no frame depends on later ones
            top = max(float(np.max(np.abs(g))) for g in jax.tree.leaves(self.frames[0].grads))
            _, hi = log_range([top])
            blame = (hi * 1e-4, hi)
        return {"epoch": (0, epochs), "loss": loss, "grad": grad, "blame": blame}
