"""The pre-norm transformer block and a small decoder-only language model built from it.

    TransformerBlock   x = x + MHA(LayerNorm(x));  x = x + Dense(GELU(Dense(LayerNorm(x))))
    gpt                Embedding + positions + blocks + LayerNorm + Dense(vocab): logits (batch, T, vocab)

Everything is made of fnn layers with their own hand-written backwards
(LayerNorm, Dense, Activation("gelu"), MultiHeadAttention) joined by residual,
whose backward adds the gradients of the two paths. A padding mask rides along
as a masked sequence (x, key_mask) (fnn.layers.masking): pass_mask runs the
mask-blind layers on the values, residual adds the values and keeps the mask.
"""
from typing import Optional

from fnn.layers.attention import DEFAULT_BLOCK_SIZE, MultiHeadAttention
from fnn.layers.combinators import residual
from fnn.layers.core import Layer, serial
from fnn.layers.dense import Dense
from fnn.layers.elementwise import Activation
from fnn.layers.embedding import Embedding, PositionalEmbedding, SinusoidalPositions
from fnn.layers.masking import DropMask, pass_mask
from fnn.layers.norm import LayerNorm
from fnn.validate import check_choice, check_positive_int

__all__ = ["POSITIONS", "TransformerBlock", "gpt"]

POSITIONS = ("learned", "sinusoidal")


def TransformerBlock(d_model: int, heads: int, *, mlp_ratio: int = 4, causal: bool = True,
                     head_dim: Optional[int] = None, block_size: int = DEFAULT_BLOCK_SIZE,
                     eps: float = 1e-5) -> Layer:
    """A pre-norm transformer block on (batch, T, d_model) or a masked sequence (x, key_mask):

        x = x + MHA(LayerNorm(x))
        x = x + Dense_2(GELU(Dense_1(LayerNorm(x))))      Dense_1: d_model → mlp_ratio·d_model

    Backward: each residual adds the branch's dx to dy (fnn.layers.combinators.residual);
    the branches are serial chains of the layers' own backwards. params are
    ((LayerNorm, MHA), (LayerNorm, Dense_1, gelu, Dense_2)), as serial nests them.

    Args:
      d_model: the width of x (the MLP's output width, which must be known here).
      heads, head_dim, causal, block_size: MultiHeadAttention's.
      mlp_ratio: the MLP's hidden width is mlp_ratio · d_model.
      eps: the LayerNorms' eps.

    Returns:
      A serial Layer of two residual blocks.

    Raises:
      InputError / InputTypeError: for a setting that is not a positive int (named).
    """
    d_model = check_positive_int("TransformerBlock: d_model", d_model)
    mlp_ratio = check_positive_int("TransformerBlock: mlp_ratio", mlp_ratio)
    attention = MultiHeadAttention(heads, head_dim=head_dim, causal=causal, block_size=block_size)
    return serial(
        residual(pass_mask(LayerNorm(eps=eps)), attention),
        residual(pass_mask(LayerNorm(eps=eps), Dense(mlp_ratio * d_model, in_features=d_model),
                           Activation("gelu"), Dense(d_model))))


def gpt(vocab: int, max_len: int, d_model: int, heads: int, layers: int, *, mlp_ratio: int = 4,
        positions: str = "learned", pad_id: Optional[int] = None, block_size: int = DEFAULT_BLOCK_SIZE) -> Layer:
    """A decoder-only language model: token ids (batch, T ≤ max_len) → next-token logits (batch, T, vocab).

        h = Embedding(ids) + positions;  h = TransformerBlock(h) × layers (causal);
        logits = Dense(vocab)(LayerNorm(h))

    Train it with softmax_cross_entropy on the ids shifted by one (labels (batch, T));
    float one-hot targets with zero rows leave those positions (padding) out of the loss.

    Args:
      vocab, max_len: the number of tokens and the longest sequence.
      d_model, heads, layers, mlp_ratio: the width, heads per block, blocks, MLP ratio.
      positions: "learned" (PositionalEmbedding(max_len)) or "sinusoidal".
      pad_id: None, or the padding token: keys holding it get no attention weight.
      block_size: attention's queries per block.

    Returns:
      A serial Layer with integer_input True.

    Raises:
      InputError / InputTypeError: for a setting out of range (named), an unknown positions.
    """
    check_choice("gpt positions", positions, POSITIONS)
    check_positive_int("gpt: layers (the number of blocks)", layers)
    position = PositionalEmbedding(max_len) if positions == "learned" else SinusoidalPositions()
    blocks = [TransformerBlock(d_model, heads, mlp_ratio=mlp_ratio, causal=True, block_size=block_size)
              for _ in range(layers)]
    end = [DropMask()] if pad_id is not None else []
    return serial(Embedding(vocab, d_model, pad_id=pad_id), position, *blocks, *end,
                  LayerNorm(), Dense(vocab))
