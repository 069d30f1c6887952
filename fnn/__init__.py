"""fnn: neural networks as pure JAX functions with hand-written backpropagation."""
from fnn import activations
from fnn import check
from fnn import checkpoint
from fnn import data
from fnn import errors
from fnn import export
from fnn import gradcheck   # the old name of fnn.check
from fnn import initializers
from fnn import losses
from fnn import models
from fnn import numerics
from fnn import optim
from fnn import precision
from fnn.optim import schedules
from fnn import train
from fnn.train import ensemble
from fnn.train import parallel
from fnn.activations import ACTIVATIONS
from fnn.activations import ActivationFn
from fnn.activations import get_activation
from fnn.data import DATASETS
from fnn.data import get_dataset
from fnn.check import check_gradients
from fnn.check import check_layer
from fnn.check import relative_error
from fnn.errors import FnnError
from fnn.errors import InputError
from fnn.errors import InputTypeError
from fnn.export import flat_names
from fnn.export import load_params
from fnn.export import save_params
from fnn.grads import Backprop
from fnn.grads import differentiable
from fnn.grads import differentiable_loss
from fnn.grads import forward_backward
from fnn.grads import grad
from fnn.grads import loss_value
from fnn.grads import make_value_and_grad
from fnn.grads import value_and_grad
from fnn.initializers import get_initializer
from fnn.layers import Activation
from fnn.layers import AvgPool
from fnn.layers import BatchNorm
from fnn.layers import Conv
from fnn.layers import Dense
from fnn.layers import Dropout
from fnn.layers import Embedding
from fnn.layers import Flatten
from fnn.layers import GRU
from fnn.layers import GlobalAvgPool
from fnn.layers import Layer
from fnn.layers import LSTM
from fnn.layers import LayerNorm
from fnn.layers import MaxPool
from fnn.layers import MultiHeadAttention
from fnn.layers import PositionalEmbedding
from fnn.layers import RNN
from fnn.layers import Reshape
from fnn.layers import SinusoidalPositions
from fnn.layers import TransformerBlock
from fnn.layers import init_state
from fnn.layers import mlp
from fnn.layers import residual
from fnn.layers import serial
from fnn.layers import summary
from fnn.layers import update_state
# The parallel-branches combinator is fnn.layers.parallel: fnn.parallel is data parallelism
# (fnn.train.parallel).
from fnn.losses import LOSSES
from fnn.losses import Loss
from fnn.losses import get_loss
from fnn.numerics import log_softmax
from fnn.numerics import logsumexp
from fnn.numerics import softmax
from fnn.optim import OPTIMIZERS
from fnn.optim import get_optimizer
from fnn.train import StepConfig
from fnn.train import TrainState
from fnn.train import evaluate
from fnn.train import fit
from fnn.train import predict

__version__ = "0.2.0"

# matplotlib-backed: imported on first use, not with fnn (and not by `from fnn import *`).
# fnn.plotting and fnn.report are the earlier names of fnn.viz and fnn.viz.report.
_LAZY = ("viz", "plotting", "report")


def __getattr__(name):
    if name in _LAZY:
        import importlib
        return importlib.import_module(f"fnn.{name}")
    raise AttributeError(f"module 'fnn' has no attribute {name!r}")

from fnn.runs.run import Run  # noqa: E402  (last: it builds on the rest)
from fnn.runs.run import load_run  # noqa: E402

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "ActivationFn",
    "AvgPool",
    "Backprop",
    "BatchNorm",
    "Conv",
    "DATASETS",
    "Dense",
    "Dropout",
    "Embedding",
    "Flatten",
    "FnnError",
    "GRU",
    "GlobalAvgPool",
    "InputError",
    "InputTypeError",
    "LOSSES",
    "LSTM",
    "Layer",
    "LayerNorm",
    "Loss",
    "MaxPool",
    "MultiHeadAttention",
    "OPTIMIZERS",
    "PositionalEmbedding",
    "RNN",
    "Reshape",
    "Run",
    "SinusoidalPositions",
    "StepConfig",
    "TrainState",
    "TransformerBlock",
    "activations",
    "check",
    "check_gradients",
    "check_layer",
    "checkpoint",
    "data",
    "differentiable",
    "differentiable_loss",
    "ensemble",
    "errors",
    "evaluate",
    "export",
    "fit",
    "flat_names",
    "forward_backward",
    "get_activation",
    "get_dataset",
    "get_initializer",
    "get_loss",
    "get_optimizer",
    "grad",
    "gradcheck",
    "init_state",
    "initializers",
    "load_params",
    "log_softmax",
    "logsumexp",
    "load_run",
    "loss_value",
    "losses",
    "make_value_and_grad",
    "mlp",
    "models",
    "numerics",
    "optim",
    "parallel",
    "precision",
    "predict",
    "relative_error",
    "residual",
    "save_params",
    "schedules",
    "serial",
    "softmax",
    "summary",
    "train",
    "update_state",
    "value_and_grad",
]
