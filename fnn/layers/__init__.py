"""Layers as bundles of pure functions over parameter pytrees, backward beside forward.

    core         the Layer type, serial composition, summary
    dense        Dense (Z = XW + b) and mlp
    elementwise  Activation, Dropout
"""
from fnn.layers.core import MISSING_KEY
from fnn.layers.core import Layer
from fnn.layers.core import Summary
from fnn.layers.core import serial
from fnn.layers.core import summary
from fnn.layers.dense import Dense
from fnn.layers.dense import mlp
from fnn.layers.elementwise import Activation
from fnn.layers.elementwise import Dropout

__all__ = ["Layer", "Dense", "Activation", "Dropout", "serial", "mlp", "summary", "Summary", "MISSING_KEY"]
