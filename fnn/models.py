"""Ready-made models: the MNIST-1D paper's baselines, and fnn's best MNIST-1D network.

Greydanus, "Scaling down deep learning" (2020), trains these on MNIST-1D
(40 inputs, 10 classes) with Adam at learning rate 1e-2, batch 100, 6000 steps:

    logistic   Dense(10)                                              paper: 32%
    mlp        h = relu(Dense(100) x);  h = h + relu(Dense(100) h);  Dense(10)   68%
    cnn        Conv(25, 5, stride 2, pad 1) → relu → Conv(25, 3, stride 2, pad 1) → relu
               → Conv(25, 3, stride 2, pad 1) → relu → Flatten (5 × 25 = 125) → Dense(10)   94%
    gru        bidirectional GRU(6) over the 40 positions, one feature each → Flatten (40 × 2 × 6 = 480)
               → Dense(10)                                                                     91%

and `best_cnn` ("fnn-best") is fnn's own: BatchNorm'd SAME convolutions, max
pooling and global average pooling, past the human expert's 96%.

Every model here takes a batch of flat signals, shape (batch, 40); the
convolutional ones start with Reshape((40, 1)) (length 40, one channel).
`paper_lstm` is the same recurrent network with an LSTM in the GRU's place.
`torch_init` redraws the weights as PyTorch's nn.Linear / nn.Conv1d do by
default, U(−1/√fan_in, 1/√fan_in) for W and b, the initialization the paper
used (fan_in = in_features, or kernel size × in_channels / groups), and a
recurrent layer's as nn.GRU / nn.LSTM do, U(−1/√H, 1/√H) for all four.

`gpt` (fnn.layers.transformer) is a small decoder-only language model on token ids.
"""
import math

import jax
import jax.numpy as jnp

from fnn.errors import InputError
from fnn.typing import Params, PRNGKey
from fnn.layers import (GRU, LSTM, Activation, BatchNorm, Conv, Dense, Flatten, GlobalAvgPool, MaxPool,
                        Layer, Reshape, residual, serial)
from fnn.layers.embedding import PositionalEmbedding
from fnn.layers.norm import LayerNorm
from fnn.layers.transformer import TransformerBlock, gpt

__all__ = ["MNIST1D_MODELS", "mnist1d_model", "logistic", "paper_mlp", "paper_cnn", "paper_gru", "paper_lstm",
           "patch_transformer", "best_cnn", "torch_init", "gpt"]


def logistic(classes: int = 10) -> Layer:
    """Logistic (softmax) regression: one Dense layer, logits out.

    Args:
      classes: the number of classes.

    Returns:
      A serial Layer for inputs (batch, features), logits (batch, classes) out.
    """
    return serial(Dense(classes))


def paper_mlp(hidden: int = 100, classes: int = 10) -> Layer:
    """The paper's MLP: relu(Dense(hidden)), a residual relu(Dense(hidden)) block, Dense(classes).

    Args:
      hidden: the width of the hidden layers.
      classes: the number of classes.

    Returns:
      A serial Layer for inputs (batch, features), logits (batch, classes) out.
    """
    return serial(Dense(hidden), Activation("relu"),
                  residual(Dense(hidden), Activation("relu")),
                  Dense(classes))


def paper_cnn(length: int = 40, channels: int = 25, classes: int = 10) -> Layer:
    """The paper's CNN: three stride-2 convolutions (kernels 5, 3, 3; padding 1), relu, Flatten, Dense.

    Args:
      length: the signal's length (its features), read as one channel per position.
      channels: the channels of each convolution.
      classes: the number of classes.

    Returns:
      A serial Layer for inputs (batch, length), logits (batch, classes) out.
    """
    return serial(Reshape((length, 1)),
                  Conv(channels, 5, stride=2, padding=1), Activation("relu"),
                  Conv(channels, 3, stride=2, padding=1), Activation("relu"),
                  Conv(channels, 3, stride=2, padding=1), Activation("relu"),
                  Flatten(), Dense(classes))


def paper_gru(length: int = 40, hidden: int = 6, classes: int = 10) -> Layer:
    """The paper's GRU: a bidirectional GRU(hidden) reads one feature per position, every state kept,
    Flatten (length × 2 × hidden), Dense(classes).

    5,134 params at the defaults: PyTorch's nn.GRU(1, 6, bidirectional=True) has
    2 × (3·6·1 + 3·6·6 + 2·3·6) = 324, the Dense(480 → 10) 480·10 + 10 = 4,810.

    Args:
      length: the signal's length T, one feature per position.
      hidden: the GRU's hidden size per direction.
      classes: the number of classes.

    Returns:
      A serial Layer for inputs (batch, length), logits (batch, classes) out.
    """
    return serial(Reshape((length, 1)), GRU(hidden, bidirectional=True), Flatten(), Dense(classes))


def paper_lstm(length: int = 40, hidden: int = 6, classes: int = 10) -> Layer:
    """paper_gru with a bidirectional LSTM(hidden): 2 × (4·6·1 + 4·6·6 + 2·4·6) = 432 + 4,810 = 5,242 params.

    Args:
      length: the signal's length T, one feature per position.
      hidden: the LSTM's hidden size per direction.
      classes: the number of classes.

    Returns:
      A serial Layer for inputs (batch, length), logits (batch, classes) out.
    """
    return serial(Reshape((length, 1)), LSTM(hidden, bidirectional=True), Flatten(), Dense(classes))


def _conv_block(channels, kernel):
    """Conv (SAME, no bias: BatchNorm's offset takes its place) → BatchNorm → relu."""
    return [Conv(channels, kernel, padding="SAME", use_bias=False), BatchNorm(), Activation("relu")]


def best_cnn(length: int = 40, channels: int = 16, classes: int = 10) -> Layer:
    """fnn's MNIST-1D network: five Conv → BatchNorm → relu blocks (16, 16, 32, 32, 64 channels,
    SAME padding, max-pooled by 2 after the second and fourth), global average pooling, Dense.

    Trained with Adam 3e-3 on a cosine decay, batch 100, 3000 steps (scripts/mnist1d_table.py).

    Args:
      length: the signal's length, read as one channel per position.
      channels: the first blocks' channels (16); the later ones have 2× and 4× as many.
      classes: the number of classes.

    Returns:
      A serial Layer for inputs (batch, length), logits (batch, classes) out; stateful
      (BatchNorm): its model state comes from fnn.init_state.
    """
    c = channels
    return serial(Reshape((length, 1)),
                  *_conv_block(c, 5), *_conv_block(c, 3), MaxPool(2),
                  *_conv_block(2 * c, 3), *_conv_block(2 * c, 3), MaxPool(2),
                  *_conv_block(4 * c, 3), GlobalAvgPool(), Dense(classes))


def patch_transformer(length: int = 40, patch: int = 4, d_model: int = 32, heads: int = 4, layers: int = 2,
                      classes: int = 10) -> Layer:
    """A small transformer encoder over patches of the signal (ViT's idea, in 1-D):

        (batch, 40) → 10 patches of 4 positions → Dense(d_model) + learned positions
        → TransformerBlock(d_model, heads, not causal) × layers → LayerNorm → mean over patches → Dense

    Attention between single positions (patch 1, 40 tokens of one value) learns far worse
    and slower on MNIST-1D (about 61% after 3,000 steps against 85% for patches of 4).

    Args:
      length: the signal's length.
      patch: positions per patch (token); must divide length.
      d_model: the width of each token.
      heads: attention heads per block.
      layers: the number of transformer blocks.
      classes: the number of classes.

    Returns:
      A serial Layer for inputs (batch, length), logits (batch, classes) out.

    Raises:
      InputError: if patch does not divide length.
    """
    if length % patch:
        raise InputError(f"patch_transformer: length {length} is not divisible by patch {patch}")
    tokens = length // patch
    return serial(Reshape((tokens, patch)), Dense(d_model), PositionalEmbedding(tokens),
                  *[TransformerBlock(d_model, heads, causal=False) for _ in range(layers)],
                  LayerNorm(), GlobalAvgPool(), Dense(classes))


MNIST1D_MODELS = {"logistic": logistic, "mlp": paper_mlp, "cnn": paper_cnn, "gru": paper_gru, "lstm": paper_lstm,
                  "transformer": patch_transformer, "fnn-best": best_cnn}


def mnist1d_model(name: str) -> Layer:
    """The MNIST-1D model called `name` (a key of MNIST1D_MODELS).

    Args:
      name: "logistic", "mlp", "cnn", "gru", "lstm", "transformer" or "fnn-best".

    Returns:
      The model at its defaults (40 features, 10 classes).

    Raises:
      InputError: for a name not in MNIST1D_MODELS.
    """
    if name not in MNIST1D_MODELS:
        raise InputError(f"unknown MNIST-1D model {name!r}; expected one of {', '.join(MNIST1D_MODELS)}")
    return MNIST1D_MODELS[name]()


def torch_init(key: PRNGKey, params: Params) -> Params:
    """params with every Dense/Conv weight W (and its bias b, if any) redrawn as PyTorch's default:
    U(−1/√fan_in, 1/√fan_in); and every recurrent cell's W_x, W_h, b_x, b_h as nn.RNN/GRU/LSTM's,
    U(−1/√H, 1/√H) with H the hidden size.

    fan_in is the product of W's shape but its last axis (in for Dense (in, out),
    kernel size × in / groups for Conv (k..., in / groups, out)). Other leaves
    (normalization scales and offsets, a learned initial state h0, c0) are kept;
    an LSTM's forget_bias is redrawn away, as PyTorch has none.

    Args:
      key: PRNG key the new weights are drawn from.
      params: a model's params, e.g. from model.init.

    Returns:
      params of the same structure and dtypes.
    """
    leaves, treedef = jax.tree_util.tree_flatten(params, is_leaf=_redrawn)
    keys = jax.random.split(key, max(len(leaves), 1))
    out = []
    for leaf, k in zip(leaves, keys):
        if _is_weight_pair(leaf):
            leaf = _redraw(k, leaf, ("W", "b"), 1.0 / math.sqrt(math.prod(leaf["W"].shape[:-1])))
        elif _is_recurrent_cell(leaf):
            leaf = _redraw(k, leaf, ("W_x", "W_h", "b_x", "b_h"), 1.0 / math.sqrt(leaf["W_h"].shape[0]))
        out.append(leaf)
    return jax.tree_util.tree_unflatten(treedef, out)


def _redraw(key, leaf, names, bound):
    """leaf with each of `names` it holds drawn anew from U(−bound, bound)."""
    keys_of = dict(zip(names, jax.random.split(key, len(names))))
    return dict(leaf, **{name: jax.random.uniform(keys_of[name], leaf[name].shape, leaf[name].dtype,
                                                  -bound, bound)
                         for name in names if name in leaf})


def _redrawn(node):
    return _is_weight_pair(node) or _is_recurrent_cell(node)


def _is_weight_pair(node):
    """A Dense or Conv layer's params: {"W"} or {"W", "b"}, W at least 2-D."""
    return isinstance(node, dict) and "W" in node and jnp.ndim(node["W"]) >= 2


def _is_recurrent_cell(node):
    """One direction of a recurrent layer's params: {"W_x", "W_h", "b_x", "b_h"} (+ h0, c0)."""
    return isinstance(node, dict) and {"W_x", "W_h", "b_x", "b_h"} <= set(node) and jnp.ndim(node["W_h"]) == 2
