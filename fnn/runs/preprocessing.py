"""What a run does to raw data before the model sees it, saved with the run and applied again at predict time.

Training standardizes each feature by the training split's mean and std, and for
regression the targets too; classification labels are class indices, named by
`class_names` where the data had names (a CSV label column of words). A saved
run keeps all of it, so `fnn.load_run(DIR).predict(x)` takes raw inputs:

    pre = Preprocessing.fit(dataset)          # at training time, from the training split
    z = pre.inputs(x_raw)                     # what the model is trained and evaluated on
    y = pre.outputs(model_output)             # regression outputs back in the data's units

The arrays travel in the checkpoint (`arrays()` / `from_arrays`), the rest in its
JSON config (`config()`); neither is ever pickled.
"""
from typing import NamedTuple, Optional, Tuple

import numpy as np

from fnn.data.standardization import Standardizer, standardize_dataset
from fnn.errors import InputError

__all__ = ["Preprocessing"]


class Preprocessing(NamedTuple):
    """Feature (and regression target) standardization, the task and the class names of a run."""
    task: str                                  # "classification", "binary" or "regression"
    x: Standardizer                            # features: z = (x − mean) / std
    y: Optional[Standardizer] = None           # regression targets, if they were standardized
    class_names: Optional[Tuple[str, ...]] = None

    @classmethod
    def fit(cls, ds):
        """(standardized dataset, Preprocessing) from a Dataset's training split."""
        scaled, stats = standardize_dataset(ds, targets=ds.task == "regression")
        names = getattr(ds, "class_names", None)
        return scaled, cls(ds.task, stats["x"], stats["y"], None if names is None else tuple(names))

    @property
    def in_features(self):
        return int(self.x.mean.shape[0])

    def inputs(self, x, where="x"):
        """Raw features (n, in_features) → what the model takes, float32."""
        x = np.asarray(x, np.float32)
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise InputError(f"{where} has shape {x.shape}; the run takes (n, {self.in_features}) raw features")
        return np.asarray(self.x(x), np.float32)

    def targets(self, y):
        """Raw regression targets → the standardized ones the loss was trained on (others unchanged)."""
        if self.y is None:
            return y
        y = np.asarray(y, np.float32)
        return np.asarray(self.y(y.reshape(len(y), -1)), np.float32)

    def outputs(self, out):
        """Regression outputs → the data's units (the inverse of `targets`); others unchanged."""
        return out if self.y is None else np.asarray(self.y.inverse(np.asarray(out, np.float32)), np.float32)

    def labels(self, indices):
        """Class indices → class names where the data had them, else the indices."""
        indices = np.asarray(indices)
        if self.class_names is None:
            return indices
        return np.asarray(self.class_names, dtype=object)[indices]

    def config(self):
        """The JSON part: task, class names, whether targets are standardized."""
        return {"task": self.task, "class_names": None if self.class_names is None else list(self.class_names),
                "standardized_targets": self.y is not None}

    def arrays(self):
        """The array part, a dict for fnn.checkpoint: x_mean, x_std (and y_mean, y_std)."""
        arrays = {"x_mean": self.x.mean, "x_std": self.x.std}
        if self.y is not None:
            arrays.update(y_mean=self.y.mean, y_std=self.y.std)
        return arrays

    @staticmethod
    def template(config):
        """Arrays of the shapes `arrays()` has, to restore a checkpoint into; config: the saved data
        description (in_features, out_features, standardized_targets)."""
        in_features, out_features = config["in_features"], config["out_features"]
        template = {"x_mean": np.zeros(in_features, np.float32), "x_std": np.ones(in_features, np.float32)}
        if config["standardized_targets"]:
            template.update(y_mean=np.zeros(out_features, np.float32), y_std=np.ones(out_features, np.float32))
        return template

    @classmethod
    def from_arrays(cls, config, arrays):
        """The Preprocessing of `config()` and `arrays()` read back."""
        arrays = {k: np.asarray(v, np.float32) for k, v in arrays.items()}
        y = Standardizer(arrays["y_mean"], arrays["y_std"]) if config["standardized_targets"] else None
        names = config["class_names"]
        return cls(config["task"], Standardizer(arrays["x_mean"], arrays["x_std"]), y,
                   None if names is None else tuple(names))
