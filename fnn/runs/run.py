"""A saved run, loaded and used: `run = fnn.load_run(DIR)`, then `run.predict(x_raw)` and `run.evaluate(x, y)`.

A run folder written by `fnn train` holds checkpoint.npz (the params, the
optimizer state, the preprocessing's arrays; its JSON config the run's flags
and the data's description), history.jsonl and metrics.json. load_run rebuilds
the model from the saved configuration alone (no dataset is read or generated)
and restores the arrays into it, checked as fnn.checkpoint checks them: a
corrupt, truncated or mismatched file is refused, nothing is unpickled.

    run = fnn.load_run("runs/latest")
    run.predict(x)            # class labels (or names), or regression values in the data's units
    run.predict_proba(x)      # class probabilities (n, classes)
    run.evaluate(x, y)        # {"loss", "accuracy", ...} with the run's own preprocessing
    run.model, run.params, run.model_state, run.config, run.preprocessing, run.metrics, run.history
"""
import hashlib
import json
import os
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import jax
import jax.numpy as jnp
import numpy as np

import fnn
from fnn import checkpoint, data, precision
from fnn.data import Dataset, Limits
from fnn.errors import InputError
from fnn.layers import Layer
from fnn.runs.build import build_model, build_optimizer
from fnn.runs.config import LIMITS, check_saved_config
from fnn.runs.history import HISTORY, read_history
from fnn.runs.preprocessing import Preprocessing
from fnn.train import evaluate as evaluate_model, init_state, predict as predict_model
from fnn.train.step import StepConfig, TrainState, training_optimizer
from fnn.typing import ArrayLike, ModelState, Optimizer, OptState, Params

__all__ = ["CHECKPOINT", "METRICS", "Run", "load_run", "data_config", "run_templates"]

CHECKPOINT, METRICS = "checkpoint.npz", "metrics.json"
_DIGEST_CHUNK = 1 << 20


def _file_digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_DIGEST_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def data_config(config: Dict[str, Any], ds: Dataset, preprocessing: Preprocessing) -> Dict[str, Any]:
    """The checkpoint's description of the run's data: shapes, task, preprocessing, and where it came from.

    Args:
      config: the run's configuration (its "dataset": a name in fnn.data.DATASETS or a file path).
      ds: the Dataset the run trains on.
      preprocessing: the run's Preprocessing.

    Returns:
      A dict of JSON values: in/out features, n_classes, n_train, n_test, the source (a
      file's absolute path and SHA-256 digest) and the preprocessing's configuration.
    """
    name = config["dataset"]
    source = {"name": name}
    if data.DATASETS.get(name) is None:                     # a file: its path and digest
        source.update(path=os.path.abspath(name), sha256=_file_digest(name))
    return {"in_features": int(ds.in_features), "out_features": int(ds.out_features),
            "n_classes": ds.n_classes, "n_train": int(ds.x_train.shape[0]), "n_test": int(ds.x_test.shape[0]),
            "source": source, **preprocessing.config()}


def _check_data_config(saved, where):
    d = saved.get("data")
    ints = ("in_features", "out_features", "n_train", "n_test")
    if (not isinstance(d, dict) or any(isinstance(d.get(k), bool) or not isinstance(d.get(k), int)
                                       or d[k] < 0 for k in ints)
            or d.get("task") not in data.TASKS or not isinstance(d.get("standardized_targets"), bool)
            or not (d.get("class_names") is None or (isinstance(d["class_names"], list)
                                                     and all(isinstance(n, str) for n in d["class_names"])))):
        raise InputError(f"{where} has no valid description of its data (field 'data'); it was written "
                         "before runs saved their preprocessing: train it again to use it with load_run")
    if d["class_names"] is not None and len(d["class_names"]) != (d["n_classes"] if d["task"] == "classification"
                                                                  else 2):
        raise InputError(f"{where}: field 'data' has {len(d['class_names'])} class names for "
                         f"{d['n_classes']} classes")
    return d


def run_templates(config: Dict[str, Any], data_cfg: Dict[str, Any],
                  limits: Mapping[str, int] = LIMITS) -> Tuple[Layer, Optimizer, StepConfig, Dict[str, Any]]:
    """(model, optimizer, step config, templates) to restore a checkpoint of this run into.

    Args:
      config: the run's checked configuration.
      data_cfg: the description of its data (data_config's).
      limits: the size limits the model is built within (fnn.runs.config.LIMITS).

    Returns:
      (model, optimizer, step_config, templates): templates {"state": a TrainState,
      "preprocessing": its arrays} of zeros, in the shapes and dtypes of the saved ones.

    Raises:
      InputError: for a configuration that builds no model within the limits.
    """
    model, _ = build_model(config, data_cfg["in_features"], data_cfg["out_features"], limits,
                           name=data_cfg["source"]["name"] if "source" in data_cfg else None)
    optimizer = build_optimizer(config)
    policy = precision.get_policy(config["precision"])
    step_config = fnn.StepConfig(method=config["grad"], precision=policy if policy.mixed else None)
    key = jax.random.key(config["seed"])
    init_key, train_key = jax.random.split(key)
    input_shape = (-1, data_cfg["in_features"])
    _, params = jax.eval_shape(lambda k: model.init(k, input_shape), init_key)     # shapes only
    params = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), params)
    state = init_state(params, training_optimizer(optimizer, step_config), train_key,
                       fnn.init_state(model, input_shape))
    templates = {"state": state,
                 "preprocessing": Preprocessing.template(data_cfg)}
    return model, optimizer, step_config, templates


class Run:
    """A trained run: its model and params, ready for raw inputs. Made by load_run."""

    def __init__(self, folder: str, config: Dict[str, Any], data_cfg: Dict[str, Any], model: Layer,
                 optimizer: Optimizer, state: TrainState, preprocessing: Preprocessing, step: int,
                 metrics: Optional[Dict[str, Any]], history: Dict[str, list]) -> None:
        self.folder = folder
        self.config: Dict[str, Any] = config
        self.data: Dict[str, Any] = data_cfg
        self.model = model
        self.optimizer = optimizer
        self.state = state
        self.preprocessing: Preprocessing = preprocessing
        self.step: int = step
        self.metrics: Optional[Dict[str, Any]] = metrics
        self.history: Dict[str, list] = history
        self.loss = fnn.get_loss(data.TASK_LOSS[preprocessing.task])

    @property
    def params(self) -> Params:
        """the trained params (the best epoch's under early stopping)"""
        return self.state.params

    @property
    def model_state(self) -> ModelState:
        """non-trainable state (BatchNorm's statistics)"""
        return self.state.model_state

    @property
    def opt_state(self) -> OptState:
        """the optimizer's state"""
        return self.state.opt_state

    @property
    def task(self) -> str:
        """the task, "classification", "binary" or "regression", of the data the run trained on"""
        return self.preprocessing.task

    @property
    def class_names(self) -> Optional[Tuple[str, ...]]:
        """the name of each class where the data named them, else None"""
        return self.preprocessing.class_names

    def __repr__(self):
        return (f"Run({self.folder!r}: {self.config['model']} on {self.config['dataset']}, {self.task}, "
                f"step {self.step:,})")

    def outputs(self, x: ArrayLike) -> np.ndarray:
        """The model's raw outputs (logits, or regression values in the data's units) for raw inputs x.

        Args:
          x: raw inputs (n, features), before the run's standardization.

        Returns:
          A numpy array (n, outputs).

        Raises:
          InputError / InputTypeError: for inputs that do not fit the model.
        """
        out = predict_model(self.model, self.params, self.preprocessing.inputs(x), model_state=self.model_state)
        return self.preprocessing.outputs(np.asarray(out))

    def predict_proba(self, x: ArrayLike) -> np.ndarray:
        """Class probabilities (n, classes) for raw inputs x; binary: (n, 2), P(0) and P(1).

        Args:
          x: raw inputs (n, features).

        Returns:
          A numpy array of probabilities, each row summing to 1.

        Raises:
          InputError: for a regression run, or inputs that do not fit the model.
        """
        out = self.outputs(x)
        if self.task == "classification":
            return np.asarray(jax.nn.softmax(out, axis=-1))
        if self.task == "binary":
            p = np.asarray(jax.nn.sigmoid(out.reshape(-1)))
            return np.stack([1 - p, p], axis=1)
        raise InputError(f"predict_proba: the run in {self.folder!r} is a regression; use predict")

    def predict(self, x: ArrayLike) -> np.ndarray:
        """Class labels (the data's names where it had them) or regression values, for raw inputs x.

        Args:
          x: raw inputs (n, features).

        Returns:
          (n,) labels (ints, or str names), or (n, outputs) values in the data's units.

        Raises:
          InputError / InputTypeError: for inputs that do not fit the model.
        """
        if self.task == "regression":
            return self.outputs(x)
        return self.preprocessing.labels(np.argmax(self.predict_proba(x), axis=-1))

    def evaluate(self, x: ArrayLike, y: ArrayLike) -> Dict[str, Optional[float]]:
        """{"loss", "accuracy"} on raw (x, y), as training measured them; regression adds "rmse" and "mae"
        in the data's units.

        Args:
          x: raw inputs (n, features).
          y: class indices (names are mapped by load_file and load_data), 0/1, or targets.

        Returns:
          {"loss": float, "accuracy": float or None} (+ "rmse" and "mae" for regression).

        Raises:
          InputError / InputTypeError: for inputs or targets that do not fit the model.
        """
        z = self.preprocessing.inputs(x)
        targets = self.preprocessing.targets(y)
        result = evaluate_model(self.model, self.loss, self.params, z, targets, model_state=self.model_state)
        if self.task == "regression":
            error = self.outputs(x) - np.asarray(y, np.float32).reshape(len(z), -1)
            result.update(rmse=float(np.sqrt(np.mean(error ** 2))), mae=float(np.mean(np.abs(error))))
        return result

    def load_data(self, path: Union[str, os.PathLike],
                  limits: Optional[Limits] = None) -> Tuple[np.ndarray, np.ndarray]:
        """A .csv/.npz file of labelled examples read as the run's training data was (its task, its
        class names); every row kept (no test split).

        Args:
          path: the .csv or .npz file.
          limits: a fnn.data.Limits (default DEFAULT_LIMITS).

        Returns:
          (x, y) raw, for evaluate.

        Raises:
          DataFileError / InputError: for a file load_file refuses, or one whose width is not
          the run's.
        """
        ds = data.load_file(path, task=self.task, test_fraction=0, class_names=self.class_names,
                            limits=limits, n_classes=self.data["n_classes"] if self.task == "classification"
                            and self.class_names is None else None)
        if ds.in_features != self.data["in_features"]:
            raise InputError(f"{path!r} has {ds.in_features} features per example; the run was trained on "
                             f"{self.data['in_features']}")
        x = np.concatenate([ds.x_train, ds.x_test])
        y = np.concatenate([ds.y_train, ds.y_test])
        return x, y


def load_run(folder: Union[str, os.PathLike], *, limits: Optional[Mapping[str, int]] = None) -> Run:
    """The run saved in `folder` by `fnn train`, rebuilt from its checkpoint and ready to use.

    Args:
      folder: a run folder (checkpoint.npz inside; metrics.json and history.jsonl read if present).
      limits: the size limits the saved configuration is checked against (default
        fnn.runs.config.LIMITS, as `fnn train` uses).

    Returns:
      a Run.

    Raises:
      CheckpointError / InputError: no checkpoint, a corrupt or truncated file, or one whose
        arrays do not match the architecture its configuration describes.
    """
    folder = os.fspath(folder)
    limits = dict(LIMITS if limits is None else limits)
    path = os.path.join(folder, CHECKPOINT)
    if not os.path.isfile(path):
        raise InputError(f"{folder!r} is not a run folder: it has no {CHECKPOINT} (train one with fnn train)")
    saved, step = checkpoint.read_config(path)
    where = f"checkpoint {path!r}"
    config, meta = check_saved_config(saved, where, limits)
    data_cfg = _check_data_config(saved, where)
    model, optimizer, _, templates = run_templates(config, data_cfg, limits)
    trees, _ = checkpoint.load(path, templates)
    preprocessing = Preprocessing.from_arrays(data_cfg, trees["preprocessing"])
    metrics = None
    metrics_path = os.path.join(folder, METRICS)
    if os.path.isfile(metrics_path):
        try:
            with open(metrics_path, encoding="utf-8") as f:
                metrics = json.load(f)
        except (OSError, ValueError) as e:
            raise InputError(f"{metrics_path!r} is not readable JSON ({e})") from None
    history = read_history(folder, meta, step) if os.path.isfile(os.path.join(folder, HISTORY)) else {}
    return Run(folder, config, data_cfg, model, optimizer, trees["state"], preprocessing, step, metrics, history)
