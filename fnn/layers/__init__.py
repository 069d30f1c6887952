"""Layers as bundles of pure functions over parameter pytrees, backward beside forward.

    core         the Layer type, serial composition, summary
    dense        Dense (Z = XW + b) and mlp
    elementwise  Activation, Dropout
    conv         Conv, 1-D (NWC) and 2-D (NHWC), with strides, dilation, padding, groups
    pooling      MaxPool, AvgPool, GlobalAvgPool
    shape        Flatten, Reshape
    window       the window arithmetic (output lengths, padding) of conv and pooling
"""
from fnn.layers.core import MISSING_KEY
from fnn.layers.core import Layer
from fnn.layers.core import Summary
from fnn.layers.core import serial
from fnn.layers.core import summary
from fnn.layers.conv import Conv
from fnn.layers.dense import Dense
from fnn.layers.dense import mlp
from fnn.layers.elementwise import Activation
from fnn.layers.elementwise import Dropout
from fnn.layers.pooling import AvgPool
from fnn.layers.pooling import GlobalAvgPool
from fnn.layers.pooling import MaxPool
from fnn.layers.shape import Flatten
from fnn.layers.shape import Reshape

__all__ = ["Layer", "Dense", "Activation", "Dropout", "Conv", "MaxPool", "AvgPool", "GlobalAvgPool",
           "Flatten", "Reshape", "serial", "mlp", "summary", "Summary", "MISSING_KEY"]
