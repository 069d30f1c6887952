"""Graph combinators: a residual connection and parallel branches, backward by the graph's two rules.

Seed 002's backpropagation on a graph needs only two rules: along a chain,
multiply (serial: each layer's backward feeds the one before); where two
paths leave one value, add what comes back along each (the gradients of the
paths are added together). residual and parallel are the second rule:

    residual   y = x + f(x)              dx = dx_f + dy
    parallel   y = Σ_b f_b(x)             dx = Σ_b dx_b         (combine="sum")
               y = concat_b f_b(x)        dx = Σ_b dx_b(dy_b)   (combine="concat": dy split per branch)

params, state and saved of parallel are tuples with one entry per branch;
residual's are those of serial(*layers). Keys are split per branch, so each
branch's dropout draws its own mask.
"""
import jax
import jax.numpy as jnp

from fnn.errors import InputError, InputTypeError
from fnn.layers.core import Layer, _states, combination, init_state, serial, update_state
from fnn.layers.masking import values, with_values
from fnn.validate import check_choice

__all__ = ["residual", "parallel", "COMBINE"]

COMBINE = ("sum", "concat")


def _check_layers(where, layers):
    if not layers or not all(isinstance(l, Layer) for l in layers):
        raise InputTypeError(f"{where} expects one or more fnn Layers, got {layers!r}")


def residual(*layers: Layer) -> Layer:
    """A residual (skip) connection around serial(*layers):  y = x + f(x),  f = serial(*layers).

    The input takes two paths, through f and around it, and the gradients that
    come back along them are added together (seed 002's two paths):
        dx = dx_f + dy,   dx_f, dparams = f.backward(params, saved, dy)
    f must give an output of the input's shape (InputError at init otherwise).
    params, state and saved are f's: a tuple with one entry per layer.
    A masked sequence (x, key_mask) (fnn.layers.masking) gives (x + f(x), key_mask):
    the values are added, the mask passed on.

    Args:
      *layers: the fnn Layers of f, in order.

    Returns:
      A Layer of kind "residual", stochastic or stateful if f is.

    Raises:
      InputTypeError: for no layers, or an argument that is not a Layer.
    """
    _check_layers("residual", layers)
    f = serial(*layers)
    name = "residual(" + ", ".join(l.name for l in layers) + ")"

    def check_shapes(x_shape, y_shape):
        if tuple(x_shape) != tuple(y_shape):
            raise InputError(f"{name}: the branch maps input shape {tuple(x_shape)} to {tuple(y_shape)}; "
                             "y = x + f(x) needs f's output shape to equal its input shape")

    def init(key, input_shape, dtype=jnp.float32):
        out_shape, params = f.init(key, input_shape, dtype)
        check_shapes(input_shape, out_shape)
        return tuple(input_shape), params

    def forward(params, x, *, key=None, train=False, state=None):
        fx, saved = f.forward(params, x, key=key, train=train, state=state)
        check_shapes(values(x).shape, values(fx).shape)
        return with_values(fx, values(x) + values(fx)), saved

    def backward(params, saved, dy):
        dparams, dx_f = f.backward(params, saved, dy)
        return dparams, with_values(dx_f, values(dx_f) + values(dy))   # the two paths' gradients added

    return Layer(name, init, forward, backward, tuple(layers), kind="residual",
                 stochastic=f.stochastic, init_state=f.init_state, update_state=f.update_state)


def _widths_marker(ys, axis):
    """One empty (width, 0) int8 array per branch: its static shape keeps the branch's width
    along `axis` for the backward's split, as an array (any saved value must be one under jit)."""
    return tuple(jnp.zeros((y.shape[axis], 0), jnp.int8) for y in ys)


def parallel(*branches: Layer, combine: str = "sum", axis: int = -1) -> Layer:
    """Branches that all read the input x, combined by a sum or a concatenation.

        combine="sum":     y = Σ_b f_b(x)                    (every branch's output shape the same)
        combine="concat":  y = concatenate([f_b(x)], axis)   (the same shape but along axis)

    x fans out to every branch, so its gradient is the sum of what each branch
    sends back (the two-paths rule, once per branch):
        sum:     dx = Σ_b dx_b(dy)
        concat:  dx = Σ_b dx_b(dy_b),  dy_b the slice of dy along axis that f_b produced
    params, state and saved are tuples, one entry per branch; the key is split per branch.

    Args:
      *branches: fnn Layers (use serial(...) for a branch of several layers).
      combine: "sum" or "concat".
      axis: the concatenation axis (combine="concat"), e.g. -1 for the features.

    Returns:
      A Layer of kind "parallel", stochastic or stateful if a branch is.

    Raises:
      InputError / InputTypeError: for no branches, an argument that is not a Layer, an
      unknown combine, or an axis that is not an int.
    """
    _check_layers("parallel", branches)
    combine = check_choice("parallel combine", combine, COMBINE)
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise InputTypeError(f"parallel: axis must be an int such as -1, got {axis!r}")
    n = len(branches)
    name = "parallel(" + ", ".join(b.name for b in branches) + f", combine={combine!r})"

    def combined_shape(shapes):
        if combine == "sum":
            if any(s != shapes[0] for s in shapes):
                raise InputError(f"{name}: combine='sum' needs every branch's output shape to be the same, "
                                 f"got {list(shapes)}")
            return shapes[0]
        rank = len(shapes[0])
        if not -rank <= axis < rank:
            raise InputError(f"{name}: axis {axis} is out of range for branch outputs of rank {rank}")
        a = axis % rank
        rest = [s[:a] + s[a + 1:] for s in shapes]
        if any(len(s) != rank for s in shapes) or any(r != rest[0] for r in rest):
            raise InputError(f"{name}: combine='concat' along axis {axis} needs the branch output shapes "
                             f"to agree on every other axis, got {list(shapes)}")
        if a == 0 and any(s[0] == -1 for s in shapes):
            raise InputError(f"{name}: combine='concat' along the batch axis (axis {axis}) is not supported")
        return shapes[0][:a] + (sum(s[a] for s in shapes),) + shapes[0][a + 1:]

    def init(key, input_shape, dtype=jnp.float32):
        shapes, params = [], []
        for b, k in zip(branches, jax.random.split(key, n)):
            shape, p = b.init(k, input_shape, dtype)
            shapes.append(tuple(shape))
            params.append(p)
        return combined_shape(shapes), tuple(params)

    def _check(params):
        if not isinstance(params, (tuple, list)) or len(params) != n:
            got = len(params) if isinstance(params, (tuple, list)) else type(params).__name__
            raise InputError(f"{name}: params must be a tuple with one entry per branch ({n}), got {got}")

    def forward(params, x, *, key=None, train=False, state=None):
        _check(params)
        keys = [None] * n if key is None else list(jax.random.split(key, n))
        ys, saved = [], []
        for b, p, k, st in zip(branches, params, keys, _states(name, n, state)):
            y, s = b.forward(p, x, key=k, train=train, state=st)
            ys.append(y)
            saved.append(s)
        combined_shape([tuple(y.shape) for y in ys])
        if combine == "sum":
            return sum(ys[1:], ys[0]), tuple(saved)
        return jnp.concatenate(ys, axis=axis), (tuple(saved), _widths_marker(ys, axis))

    def backward(params, saved, dy):
        _check(params)
        if combine == "sum":
            dys = [dy] * n
        else:
            saved, widths = saved
            cuts = [0]
            for w in widths:
                cuts.append(cuts[-1] + w.shape[0])
            dys = [jax.lax.slice_in_dim(dy, cuts[i], cuts[i + 1], axis=axis % dy.ndim) for i in range(n)]
        dparams, dx = [], None
        for b, p, s, d in zip(branches, params, saved, dys):
            g, dx_b = b.backward(p, s, d)
            dparams.append(g)
            dx = dx_b if dx is None else dx + dx_b                  # x fanned out: the branches' dx add
        return tuple(dparams), dx

    def init_state_(input_shape, dtype=jnp.float32):
        return tuple(init_state(b, input_shape, dtype) for b in branches)

    def update_state_(state, saved):
        if combine == "concat":
            saved = saved[0]
        return tuple(update_state(b, s, sv) for b, s, sv in zip(branches, _states(name, n, state), saved))

    return combination(name, init, forward, backward, branches, "parallel", init_state_, update_state_,
                       integer_input=all(b.integer_input for b in branches))
