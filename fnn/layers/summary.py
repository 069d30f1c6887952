"""fnn.summary: the layers of a model with their output shapes and parameter counts."""
import math
from typing import NamedTuple, Tuple

import jax
import jax.numpy as jnp

from fnn.errors import InputTypeError
from fnn.layers.core import Layer, _check_input_shape
from fnn.typing import DTypeLike, Shape

__all__ = ["summary", "Summary", "SummaryRow"]


class SummaryRow(NamedTuple):
    """One line of a summary: the layer, its depth in the tree, output shape, parameter count."""
    depth: int
    name: str
    output_shape: Tuple[int, ...]
    params: int


class Summary(NamedTuple):
    """fnn.summary's result: one row per layer (combinators first, then their parts), and totals."""
    rows: Tuple[SummaryRow, ...]
    input_shape: Tuple[int, ...]
    output_shape: Tuple[int, ...]
    total_params: int

    def __str__(self):
        names = ["  " * r.depth + r.name for r in self.rows]
        shapes = [str(r.output_shape) for r in self.rows]
        counts = [f"{r.params:,}" for r in self.rows]
        w = (max(map(len, names + ["layer"])), max(map(len, shapes + ["output shape"])),
             max(map(len, counts + ["params"])))
        line = lambda a, b, c: f"{a:<{w[0]}}  {b:<{w[1]}}  {c:>{w[2]}}"
        rule = "-" * (sum(w) + 4)
        body = [line(*cells) for cells in zip(names, shapes, counts)]
        return "\n".join([line("layer", "output shape", "params"), rule, *body, rule,
                          f"input {self.input_shape} -> output {self.output_shape}, "
                          f"{self.total_params:,} parameters"])


def _count(tree):
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(tree))


def summary(model: Layer, input_shape: Shape, dtype: DTypeLike = jnp.float32) -> Summary:
    """The layers of `model`, with each one's output shape and parameter count, for inputs of input_shape.

    Nothing is computed on arrays: shapes come from jax.eval_shape of each
    layer's init. A serial model lists its layers in order, nested
    combinators (serial, residual, parallel) indented; print() the result for a table.

        >>> print(fnn.summary(fnn.mlp([40, 100, 10]), (-1, 40)))

    Args:
      model: an fnn Layer.
      input_shape: the model's input shape, -1 for the batch, e.g. (-1, 40).
      dtype: the dtype the layers' inits are given.

    Returns:
      A Summary: its rows (depth, name, output shape, parameter count), the input and
      output shapes, and the total parameter count.

    Raises:
      InputTypeError: for a model that is not a Layer or a shape that is not a tuple of ints.
      InputError: where a layer's init refuses the shape it is given (named by the layer).
    """
    if not isinstance(model, Layer):
        raise InputTypeError(f"summary expects an fnn Layer, got {type(model).__name__}")
    _check_input_shape(f"summary({model.name}, input_shape)", input_shape)
    rows = []

    def visit(layer, shape, depth):
        shapes = []

        def init(key):                     # the output shape is a Python tuple: kept, not traced
            out, params = layer.init(key, shape, dtype)
            shapes.append(tuple(out))
            return params

        params = jax.eval_shape(init, jax.random.key(0))
        out_shape = shapes[0]
        rows.append(SummaryRow(depth, layer.name if not layer.layers else layer.kind, out_shape,
                               _count(params)))
        if layer.kind in ("serial", "residual"):              # a chain: each layer feeds the next
            sub_shape = shape
            for sub in layer.layers:
                sub_shape = visit(sub, sub_shape, depth + 1)
        elif layer.kind == "parallel":                         # branches: each sees the input
            for sub in layer.layers:
                visit(sub, shape, depth + 1)
        return out_shape

    input_shape = tuple(input_shape)
    output_shape = visit(model, input_shape, 0)
    return Summary(tuple(rows), input_shape, output_shape, rows[0].params)
