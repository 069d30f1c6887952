"""Layers as bundles of pure functions over parameter pytrees, backward beside forward.

    core         the Layer type, serial composition, model state (init_state, update_state)
    summary      fnn.summary: output shapes and parameter counts, layer by layer
    dense        Dense (Z = XW + b) and mlp
    elementwise  Activation, Dropout
    norm         LayerNorm, BatchNorm (with running statistics as model state)
    combinators  residual (y = x + f(x)), parallel (branches summed or concatenated)
"""
from fnn.layers.combinators import parallel
from fnn.layers.combinators import residual
from fnn.layers.core import MISSING_KEY
from fnn.layers.core import MISSING_STATE
from fnn.layers.core import Layer
from fnn.layers.core import init_state
from fnn.layers.core import serial
from fnn.layers.core import update_state
from fnn.layers.dense import Dense
from fnn.layers.dense import mlp
from fnn.layers.elementwise import Activation
from fnn.layers.elementwise import Dropout
from fnn.layers.norm import BatchNorm
from fnn.layers.norm import LayerNorm
from fnn.layers.summary import Summary
from fnn.layers.summary import summary

__all__ = [
    "Activation",
    "BatchNorm",
    "Dense",
    "Dropout",
    "Layer",
    "LayerNorm",
    "MISSING_KEY",
    "MISSING_STATE",
    "Summary",
    "init_state",
    "mlp",
    "parallel",
    "residual",
    "serial",
    "summary",
    "update_state",
]
