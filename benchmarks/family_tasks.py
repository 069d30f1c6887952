"""The models of benchmarks.family_peers, what every contender of one shares, and fnn's own two contenders.

    cnn          fnn.models.paper_cnn on MNIST-1D: three stride-2 convolutions (25 channels; kernels
                 5, 3, 3; padding 1), relu, Flatten, Dense(10)
    gru          fnn.models.paper_gru on MNIST-1D: a bidirectional GRU(6) over the 40 positions,
                 Flatten (480), Dense(10)
    transformer  scripts/transformer.py's model on its sort task: fnn.layers.gpt (d_model 64, 4 heads,
                 2 blocks, MLP ratio 4) on 8 digits followed by the same digits sorted

CNN and GRU follow the MNIST-1D table's protocol (scripts/mnist1d_table.py: Adam
1e-2, batch 100, PyTorch's default initialization, the unstandardized data), for
fewer steps than its 6000; the transformer its script's sort recipe (Adam 3e-3 on a
cosine decay, batch 128, 20000 sequences less the 1000 held-out prompts), trained
on the answer tokens only. A Task holds the data (NumPy), fnn's model and the
initial params every contender copies, and score(logits_fn): MNIST-1D's test
accuracy, or the transformer's exact match and per-token accuracy of greedy
answers on the held-out prompts (each answer token generated and fed back, as
scripts/transformer.py scores it).
"""
from typing import Any, Callable, Dict, NamedTuple, Optional

import jax
import numpy as np

import fnn
from fnn import models, optim
from fnn.data import sequences
from fnn.errors import InputError

from benchmarks import data_file
from benchmarks.peer_runners import cpu_threads

__all__ = ["MODELS", "PROTOCOLS", "QUICK", "IGNORE", "Task", "Trainer", "make_task", "fnn_trainer",
           "cnn_parts", "gru_parts", "gpt_parts"]

MODELS = ("cnn", "gru", "transformer")
# scripts/mnist1d_table.py's PROTOCOL, its 6000 steps cut so that every contender's five trainings of
# every model (cold, warm and three rounds) fit in minutes on two cores (PyTorch's GRU is the slowest).
_MNIST1D = dict(batch_size=100, learning_rate=1e-2, schedule=None, init="torch")
PROTOCOLS = {
    "cnn": dict(_MNIST1D, steps=1000, channels=25),
    "gru": dict(_MNIST1D, steps=500, hidden=6),
    # scripts/transformer.py's MODEL and RECIPES["sort"], for 200 of its 1000 steps.
    "transformer": dict(task="sort", length=8, n_train=20000, n_test=1000, steps=200, batch_size=128,
                        learning_rate=3e-3, schedule="cosine", init="fnn", d_model=64, heads=4, layers=2,
                        mlp_ratio=4),
}
# --quick: tiny shapes and data, a few steps (a smoke test, not a measurement).
QUICK = {
    "cnn": dict(steps=6, batch_size=50, channels=4, n_train=200, n_test=100),
    "gru": dict(steps=6, batch_size=50, hidden=3, n_train=200, n_test=100),
    "transformer": dict(steps=6, batch_size=16, length=3, n_train=300, n_test=40, d_model=8, heads=2, layers=1,
                        mlp_ratio=2),
}
IGNORE = -1          # the transformer's labels on prompt positions: not trained on


class Task(NamedTuple):
    """One model's shared protocol: settings, NumPy data, fnn's model and initial params, the scoring."""
    name: str
    settings: Dict[str, Any]
    x_train: np.ndarray
    y_train: np.ndarray          # labels (n,); the transformer's next tokens (n, T), IGNORE on the prompt
    x_test: np.ndarray
    y_test: np.ndarray           # labels; the transformer's answers (n, A) (x_test holds the prompts)
    model: Any                   # the fnn Layer
    params: Any                  # fnn's initial params: every contender starts from them
    key: Any                     # fnn.fit's shuffling key
    score: Callable              # score(logits_fn) -> {"accuracy": ..., ...}; logits_fn(x numpy) -> numpy


class Trainer(NamedTuple):
    """A prepared contender: train() runs every step from the initial params, score(trained) its accuracy."""
    name: str
    description: str
    device: str
    train: Callable[[], Any]
    score: Callable[[Any], Dict[str, float]]
    steps: int
    threads: Optional[int] = None             # CPU threads (fnn, Equinox: the cores XLA's CPU client uses)
    note: Callable[[], str] = lambda: ""      # after the first train(): what it found (torch.compile's graphs)


def make_task(name, *, seed=0, steps=None, quick=False):
    """The Task of model `name` (one of MODELS); steps overrides the protocol's, quick shrinks everything."""
    if name not in MODELS:
        raise InputError(f"unknown model {name!r}; expected one of {', '.join(MODELS)}")
    settings = dict(PROTOCOLS[name], **(QUICK[name] if quick else {}))
    if steps is not None:
        settings["steps"] = steps
    k_data, k_init, k_torch, k_fit = jax.random.split(jax.random.key(seed), 4)
    settings["seed"] = seed
    if name == "transformer":
        return _sort_task(settings, k_data, k_init, k_fit)
    ds, source = _mnist1d()
    if quick:
        ds = ds._replace(x_train=ds.x_train[:settings["n_train"]], y_train=ds.y_train[:settings["n_train"]],
                         x_test=ds.x_test[:settings["n_test"]], y_test=ds.y_test[:settings["n_test"]])
    settings.update(data=source, train_examples=len(ds.x_train), test_examples=len(ds.x_test))
    model = (models.paper_cnn(channels=settings["channels"]) if name == "cnn"
             else models.paper_gru(hidden=settings["hidden"]))
    _, params = model.init(k_init, (-1, ds.in_features))
    params = models.torch_init(k_torch, params)
    settings["parameters"] = int(sum(np.size(p) for p in jax.tree.leaves(params)))
    x_test, y_test = np.asarray(ds.x_test, np.float32), np.asarray(ds.y_test)

    def score(logits_fn):
        return {"accuracy": float(np.mean(np.argmax(logits_fn(x_test), axis=-1) == y_test))}
    return Task(name, settings, np.asarray(ds.x_train, np.float32), np.asarray(ds.y_train, np.int32),
                x_test, y_test, model, params, k_fit, score)


def _mnist1d():
    """(MNIST-1D unstandardized, as the table trains on it, and its source): the repository's .npz, else fnn.data."""
    try:
        return data_file.read_dataset(data_file.DEFAULT_PATH), "benchmarks/data/mnist1d.npz"
    except (InputError, OSError):
        return fnn.data.mnist1d(), "fnn.data.mnist1d()"


def _sort_task(settings, k_data, k_init, k_fit):
    task = sequences.get_sequence_task("sort", k_data, settings["n_train"] + settings["n_test"],
                                       length=settings["length"])
    train, test = sequences.split_task(task, settings["n_test"])
    model = fnn.layers.gpt(train.vocab, train.x.shape[1], settings["d_model"], settings["heads"],
                           settings["layers"], mlp_ratio=settings["mlp_ratio"])
    _, params = model.init(k_init, (-1, train.x.shape[1]))
    settings.update(data="fnn.data.sequences.sort_digits", train_examples=train.n, test_examples=test.n,
                    vocab=train.vocab, sequence_length=int(train.x.shape[1]),
                    parameters=int(sum(np.size(p) for p in jax.tree.leaves(params))))
    prompts, answers = test.prompts, test.answers

    def score(logits_fn):
        right = _greedy(logits_fn, prompts, test.answer_length) == answers
        return {"accuracy": float(right.all(axis=1).mean()), "token_accuracy": float(right.mean())}
    labels = np.where(train.mask, train.y, IGNORE).astype(np.int32)
    return Task("transformer", settings, train.x, labels, prompts, answers, model, params, k_fit, score)


def _greedy(logits_fn, prompts, answer_length):
    """(n, A) answers generated one argmax token at a time (scripts/transformer.py's greedy_decode, in NumPy)."""
    n, P = prompts.shape
    x = np.concatenate([prompts, np.zeros((n, answer_length - 1), np.int32)], axis=1).astype(np.int32)
    out = []
    for i in range(answer_length):
        token = np.argmax(np.asarray(logits_fn(x))[:, P - 1 + i], axis=-1).astype(np.int32)
        out.append(token)
        if i < answer_length - 1:
            x[:, P + i] = token
    return np.stack(out, axis=1)


def learning_rate(settings):
    """fnn's rate: a constant, or a cosine decay to 0 over the steps."""
    if settings["schedule"] is None:
        return settings["learning_rate"]
    return optim.schedules.cosine_decay(settings["learning_rate"], settings["steps"])


# ------------------------------------------------------------------ fnn's contenders

def fnn_trainer(task, method):
    """fnn.fit with `method` gradients ("manual" or "autodiff"); model, loss and optimizer made once, so
    every train() after the first reuses the compiled program."""
    s = task.settings
    loss, opt = fnn.get_loss("softmax_cross_entropy"), optim.adam(learning_rate(s))
    y = task.y_train
    if task.name == "transformer":         # one-hot answer targets, zero rows on the prompt: out of the loss
        y = np.eye(s["vocab"], dtype=np.float32)[np.maximum(y, 0)] * (y != IGNORE)[..., None]
    config = fnn.StepConfig(method=method)

    def train():
        result = fnn.fit(task.model, loss, opt, task.params, task.x_train, y, key=task.key, steps=s["steps"],
                         batch_size=s["batch_size"], config=config, progress=False)
        return jax.block_until_ready(result.params)
    apply = jax.jit(task.model.apply)
    device = jax.devices()[0].platform
    return Trainer(f"fnn-{method}", f"fnn {fnn.__version__} fit, {method} gradients, compiled epochs", device,
                   train, lambda params: task.score(lambda x: np.asarray(apply(params, x))), s["steps"],
                   cpu_threads() if device == "cpu" else None)


# ------------------------------------------------------------------ fnn's params, by part, for the peers

def cnn_parts(params):
    """[(W (k, C_in, C_out), b)] of the three convolutions and (W, b) of the Dense, as NumPy arrays."""
    convs = [(np.asarray(p["W"]), np.asarray(p["b"])) for p in params if p and np.ndim(p["W"]) == 3]
    dense = params[-1]
    return convs, (np.asarray(dense["W"]), np.asarray(dense["b"]))


def gru_parts(params):
    """The forward and reverse cells' {"W_x", "W_h", "b_x", "b_h"} and the Dense's (W, b), as NumPy arrays."""
    (forward, reverse), = params[1]
    cells = [{k: np.asarray(v) for k, v in cell.items()} for cell in (forward, reverse)]
    return cells, (np.asarray(params[-1]["W"]), np.asarray(params[-1]["b"]))


def gpt_parts(params, layers):
    """fnn.layers.gpt's params as a flat dict of NumPy arrays: tok, pos, blocks (a list), ln, head."""
    a = lambda v: np.asarray(v)  # noqa: E731
    blocks = []
    for ((ln1,), attn), ((ln2, d1, _, d2),) in params[2:2 + layers]:
        blocks.append(dict(ln1=(a(ln1["scale"]), a(ln1["offset"])), ln2=(a(ln2["scale"]), a(ln2["offset"])),
                           **{k: a(v) for k, v in attn.items()},
                           mlp1=(a(d1["W"]), a(d1["b"])), mlp2=(a(d2["W"]), a(d2["b"]))))
    ln, head = params[2 + layers], params[3 + layers]
    return dict(tok=a(params[0]["W"]), pos=a(params[1]["W"]), blocks=blocks,
                ln=(a(ln["scale"]), a(ln["offset"])), head=(a(head["W"]), a(head["b"])))

