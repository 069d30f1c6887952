"""A run's data, model and optimizer, built from its configuration: at training time and again at load time.

`fnn train` builds a new run from its flags; `fnn.load_run` rebuilds the same
model from the configuration saved in the checkpoint, without the data (the
saved preprocessing stands in for it). Sizes are checked against the limits
before anything is allocated.
"""
import re

import jax

import fnn
from fnn import data, models, optim
from fnn.errors import InputError
from fnn.runs.config import hidden_sizes, check_params, LIMITS
from fnn.runs.preprocessing import Preprocessing

__all__ = ["CNN_MIN_LENGTH", "load_dataset", "prepare_data", "build_model", "build_optimizer", "describe"]

CNN_MIN_LENGTH = 3         # paper_cnn: (L + 2 − 5) // 2 + 1 ≥ 1
# A file's Limits field → the flag of `fnn train` that raises it.
FLAG_OF_LIMIT = {"max_file_bytes": "--max-data-bytes", "max_array_bytes": "--max-data-bytes",
                 "max_classes": "--max-classes"}


def file_limits(limits):
    """The data.Limits of the command's --max-data-bytes and --max-classes."""
    return data.Limits(max_file_bytes=limits["max_data_bytes"], max_array_bytes=limits["max_data_bytes"],
                       max_classes=limits["max_classes"])


def flag_message(error):
    """A DataFileError's text with its `limits=fnn.data.Limits(...)` hint turned into the flag that
    raises the limit, or None if it has no such hint."""
    hint = re.search(r"if the file is trusted, raise it with load_file\(\.\.\., "
                     r"limits=fnn\.data\.Limits\((\w+)=\.\.\.\)\)", str(error))
    if hint is None or hint.group(1) not in FLAG_OF_LIMIT:
        return None
    return str(error)[:hint.start()] + f"if the file is trusted, raise it with {FLAG_OF_LIMIT[hint.group(1)]}"


def load_dataset(name, seed, limits, **kwargs):
    """get_dataset with the command's limits; a file's limit message names the flag that raises it."""
    try:
        return data.get_dataset(name, key=jax.random.key(seed), limits=file_limits(limits), **kwargs)
    except data.DataFileError as e:
        message = flag_message(e)
        if message is None:
            raise
        raise InputError(message) from None


def prepare_data(config, limits=LIMITS):
    """(standardized dataset, Preprocessing) of the run's dataset, the class count checked."""
    name = config["dataset"]
    ds = load_dataset(name, config["seed"], limits)
    ds, preprocessing = Preprocessing.fit(ds)
    if ds.task != "regression" and ds.out_features > limits["max_classes"]:
        raise InputError(f"--dataset {name!r} has {ds.out_features:,} classes, more than --max-classes "
                         f"{limits['max_classes']:,} (raise the flag to allow it)")
    return ds, preprocessing


def build_model(config, in_features, out_features, limits=LIMITS, name=None):
    """(model, sizes) of the run: an MLP of config's hidden widths (sizes its widths), or the paper CNN
    (sizes None). name: the dataset's, for messages."""
    name = config["dataset"] if name is None else name
    if config["model"] == "cnn":
        return cnn_model(name, in_features, out_features, limits), None
    sizes = [in_features] + hidden_sizes(config["hidden"]) + [out_features]
    check_params(sizes, limits)
    return fnn.mlp(sizes, activation=config["activation"], dropout=config["dropout"]), sizes


def cnn_model(name, length, classes, limits):
    """fnn.models.paper_cnn for the input length and classes; InputError if it cannot be built."""
    if length < CNN_MIN_LENGTH:
        raise InputError(f"--model cnn needs examples of at least {CNN_MIN_LENGTH} features (its first "
                         f"convolution has kernel 5, stride 2, padding 1); --dataset {name!r} has {length}")
    model = models.paper_cnn(length=length, classes=classes)
    table = fnn.summary(model, (-1, length))                     # from shapes: nothing allocated
    convs = [row for layer, row in zip(model.layers, table.rows[1:]) if layer.kind == "conv"]
    for flag, size, what in (("--max-layers", len(convs), "convolutions"),
                             ("--max-width", max(row.output_shape[-1] for row in convs), "channels"),
                             ("--max-params", table.total_params, "parameters")):
        limit = limits[flag[2:].replace("-", "_")]
        if size > limit:
            raise InputError(f"--model cnn on --dataset {name!r} has {size:,} {what}, more than {flag} "
                             f"{limit:,} (raise the flag to allow it)")
    return model


def build_optimizer(config):
    """The run's optimizer; --weight-decay λ > 0 decays the weights as AdamW does (decoupled, scaled by
    the learning rate) for adam and adamw, and adds λ·w to the gradient (L2) for the others."""
    name, lr, decay = config["optimizer"], config["lr"], config["weight_decay"]
    if decay and name in ("adam", "adamw"):
        return optim.adamw(lr, weight_decay=decay)
    optimizer = optim.get_optimizer(name, learning_rate=lr)
    if decay:
        return optim.chain(optim.add_decayed_weights(decay), optimizer)
    return optimizer


def describe(config, sizes, model):
    """How the run names its model: '40-100-100-10 relu', or the CNN's layers."""
    if sizes is None:
        return f"cnn {model.name}"
    dropout = f", dropout {config['dropout']:g}" if config["dropout"] else ""
    return f"{'-'.join(map(str, sizes))} {config['activation']}{dropout}"
