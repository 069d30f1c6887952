"""Training: a jitted train step, the epoch loop every trainer shares, fit(), evaluation.

    step       TrainState, StepConfig (method, on_nonfinite, precision, mesh), make_step
    epoch      run_epoch: one shuffled pass of a step over the data; make_epoch
    fit        fit(): several epochs per compiled program, validation, early stopping
    evaluate   evaluate, predict, accuracy
    ensemble   many models trained in one program (vmap over params and optimizer state)
    parallel   data parallelism over a device mesh

Mixed precision (Policy, loss scaling) is fnn.precision; the gradients themselves fnn.grads.
"""
from fnn.train import ensemble
from fnn.train import parallel
from fnn.train.epoch import COPY_EPOCH_BYTES
from fnn.train.epoch import MeanRecord
from fnn.train.epoch import StepRecord
from fnn.train.epoch import make_epoch
from fnn.train.epoch import run_epoch
from fnn.train.evaluate import accuracy
from fnn.train.evaluate import evaluate
from fnn.train.evaluate import predict
from fnn.train.fit import FitResult
from fnn.train.fit import fit
from fnn.train.step import ON_NONFINITE
from fnn.train.step import StepConfig
from fnn.train.step import StepMetrics
from fnn.train.step import TrainState
from fnn.train.step import init_state
from fnn.train.step import make_step

__all__ = [
    "COPY_EPOCH_BYTES",
    "FitResult",
    "MeanRecord",
    "ON_NONFINITE",
    "StepConfig",
    "StepMetrics",
    "StepRecord",
    "TrainState",
    "accuracy",
    "ensemble",
    "evaluate",
    "fit",
    "init_state",
    "make_epoch",
    "make_step",
    "parallel",
    "predict",
    "run_epoch",
]
