"""Layers as bundles of pure functions over parameter pytrees, backward beside forward.

    core         the Layer type, serial composition, model state (init_state, update_state)
    summary      fnn.summary: output shapes and parameter counts, layer by layer
    dense        Dense (Z = XW + b) and mlp
    elementwise  Activation, Dropout
    conv         Conv, 1-D (NWC) and 2-D (NHWC), with strides, dilation, padding, groups
    pooling      MaxPool, AvgPool, GlobalAvgPool
    shape        Flatten, Reshape
    window       the window arithmetic (output lengths, padding) of conv and pooling
    norm         LayerNorm, BatchNorm (with running statistics as model state)
    combinators  residual (y = x + f(x)), parallel (branches summed or concatenated)
    embedding    Embedding (token ids → vectors), PositionalEmbedding, SinusoidalPositions
    attention    MultiHeadAttention; attention_forward/backward (query blocks, lse recomputation)
    masking      masked sequences (x, key_mask): pass_mask, DropMask
    transformer  TransformerBlock (pre-norm), gpt (a decoder-only language model)
    recurrent    RNN, GRU, LSTM over (batch, T, features): stacked, bidirectional, BPTT by hand
    cells        the recurrences of those three cells, forward and backward scans
"""
from fnn.layers.attention import MultiHeadAttention
from fnn.layers.attention import attention_backward
from fnn.layers.attention import attention_forward
from fnn.layers.combinators import parallel
from fnn.layers.combinators import residual
from fnn.layers.conv import Conv
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
from fnn.layers.embedding import Embedding
from fnn.layers.embedding import PositionalEmbedding
from fnn.layers.embedding import SinusoidalPositions
from fnn.layers.masking import DropMask
from fnn.layers.masking import pass_mask
from fnn.layers.norm import BatchNorm
from fnn.layers.norm import LayerNorm
from fnn.layers.pooling import AvgPool
from fnn.layers.pooling import GlobalAvgPool
from fnn.layers.pooling import MaxPool
from fnn.layers.recurrent import GRU
from fnn.layers.recurrent import LSTM
from fnn.layers.recurrent import RNN
from fnn.layers.shape import Flatten
from fnn.layers.shape import Reshape
from fnn.layers.summary import Summary
from fnn.layers.summary import summary
from fnn.layers.transformer import TransformerBlock
from fnn.layers.transformer import gpt

__all__ = [
    "Activation",
    "AvgPool",
    "BatchNorm",
    "Conv",
    "Dense",
    "DropMask",
    "Dropout",
    "Embedding",
    "Flatten",
    "GRU",
    "GlobalAvgPool",
    "Layer",
    "LSTM",
    "LayerNorm",
    "MISSING_KEY",
    "MISSING_STATE",
    "MaxPool",
    "MultiHeadAttention",
    "PositionalEmbedding",
    "RNN",
    "Reshape",
    "SinusoidalPositions",
    "Summary",
    "TransformerBlock",
    "attention_backward",
    "attention_forward",
    "gpt",
    "init_state",
    "mlp",
    "parallel",
    "pass_mask",
    "residual",
    "serial",
    "summary",
    "update_state",
]
