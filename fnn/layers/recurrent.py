"""Recurrent layers RNN, GRU and LSTM over channels-last sequences (batch, T, features).

Each direction of each stacked layer runs one cell (fnn.layers.cells) over time:

    xp = X W_x + b_x                       all T steps in one matmul, (T, B, G·H)
    hs, aux = scan of the cell over xp     lax.scan, only the recurrence h_{t−1} W_h + b_h inside
    y = hs                                 (B, T, H), or the last state (B, H)

The backward is backpropagation through time written out: a reverse lax.scan
carries dh (and dc) from step T down to 1 and yields the pre-activation
gradients dxp_t, dhp_t; the rest is one contraction each over (T, B):

    dW_h = Σ_t h_{t−1}ᵀ dhp_t,  db_h = Σ dhp_t,  dW_x = Σ_t x_tᵀ dxp_t,  db_x = Σ dxp_t,
    dX_t = dxp_t W_xᵀ,  dh0 = Σ_batch ∂L/∂h_0 (and dc0) for a learned initial state.

A reverse direction runs the same cell on the sequence reversed in time
(xp_T first) and its states are put back in time order. A bidirectional layer
concatenates the two directions' states on the feature axis (2H); with
return_sequences=False its output is [forward h_T, reverse h_1], PyTorch's h_n.
In a stack, each layer reads the full output sequence of the one below.

Params: a tuple with one entry per layer, each a tuple with one dict per
direction (forward, then reverse): params[layer][direction] =
    {"W_x": (F, G·H), "W_h": (H, G·H), "b_x": (G·H,), "b_h": (G·H,)}
        (+ "h0": (H,), and "c0": (H,) for the LSTM, with initial_state="learned"),
F the layer's input width (the features for layer 0, H or 2H above it) and the
G gate blocks of H columns in PyTorch's order: RNN (h), GRU (r, z, n), LSTM
(i, f, g, o). PyTorch's weight_ih_l{k}[_reverse] is W_xᵀ, weight_hh W_hᵀ,
bias_ih b_x, bias_hh b_h.
"""
import math
from typing import Optional, Union

import jax
import jax.numpy as jnp

from fnn.errors import InputError
from fnn.initializers import get_initializer, uniform
from fnn.layers.cells import ELMAN, GRU_CELL, LSTM_CELL
from fnn.layers.core import Layer
from fnn.typing import Initializer
from fnn.validate import check_bool, check_choice, check_number, check_positive_int

__all__ = ["RNN", "GRU", "LSTM", "INITIAL_STATES"]

INITIAL_STATES = ("zeros", "learned")

Init = Optional[Union[str, Initializer]]     # None: PyTorch's U(−1/√H, 1/√H)


def RNN(hidden: int, *, return_sequences: bool = True, bidirectional: bool = False, num_layers: int = 1,
        initial_state: str = "zeros", W_init: Init = None, W_h_init: Init = None, b_init: Init = None) -> Layer:
    """Elman RNN:  h_t = tanh(x_t W_x + b_x + h_{t−1} W_h + b_h)  (PyTorch's nn.RNN, tanh).

    BPTT, with dh_t the gradient reaching h_t (from the output and from step t + 1):
        da_t = dh_t ⊙ (1 − h_t²),   dh_{t−1} += da_t W_hᵀ,   dxp_t = dhp_t = da_t.
    Options and params as in fnn.layers.recurrent (the module): one gate block, "h".
    """
    return _recurrent(ELMAN, hidden, return_sequences, bidirectional, num_layers, initial_state,
                      W_init, W_h_init, b_init)


def GRU(hidden: int, *, return_sequences: bool = True, bidirectional: bool = False, num_layers: int = 1,
        initial_state: str = "zeros", W_init: Init = None, W_h_init: Init = None, b_init: Init = None) -> Layer:
    """GRU in PyTorch's convention (nn.GRU), the reset gate applied after the recurrent matmul:

        r = σ(x W_ir + b_ir + h W_hr + b_hr),   z = σ(x W_iz + b_iz + h W_hz + b_hz)
        n = tanh(x W_in + b_in + r ⊙ (h W_hn + b_hn)),   h' = (1 − z) ⊙ n + z ⊙ h

    with W_x = [W_ir, W_iz, W_in], b_x = [b_ir, b_iz, b_in], W_h and b_h likewise.
    The two bias sets are kept (b_hn sits inside r ⊙ ·), so PyTorch's weights map one to one.
    BPTT, with dh the gradient reaching h' and hp_n = h W_hn + b_hn:
        dn = dh ⊙ (1 − z),  da_n = dn ⊙ (1 − n²),  da_z = dh ⊙ (h − n) ⊙ z(1 − z),
        da_r = da_n ⊙ hp_n ⊙ r(1 − r);  dxp = [da_r, da_z, da_n],  dhp = [da_r, da_z, da_n ⊙ r],
        dh_prev = dh ⊙ z + dhp W_hᵀ.
    """
    return _recurrent(GRU_CELL, hidden, return_sequences, bidirectional, num_layers, initial_state,
                      W_init, W_h_init, b_init)


def LSTM(hidden: int, *, return_sequences: bool = True, bidirectional: bool = False, num_layers: int = 1,
         initial_state: str = "zeros", forget_bias: float = 0.0, W_init: Init = None, W_h_init: Init = None,
         b_init: Init = None) -> Layer:
    """LSTM in PyTorch's convention (nn.LSTM), gates i, f, g, o:

        [a_i, a_f, a_g, a_o] = x W_x + b_x + h W_h + b_h
        i, f, o = σ(a_i), σ(a_f), σ(a_o),  g = tanh(a_g)
        c' = f ⊙ c + i ⊙ g,   h' = o ⊙ tanh(c')

    BPTT, with dh, dc the gradients reaching h' and c' from later steps and the output:
        do = dh ⊙ tanh(c'),  dc̃ = dc + dh ⊙ o ⊙ (1 − tanh²(c')),
        di = dc̃ ⊙ g,  df = dc̃ ⊙ c,  dg = dc̃ ⊙ i,  dc_prev = dc̃ ⊙ f,
        dxp = dhp = [di ⊙ i(1 − i), df ⊙ f(1 − f), dg ⊙ (1 − g²), do ⊙ o(1 − o)],  dh_prev = dhp W_hᵀ.
    forget_bias is added to the forget block of b_x at init (PyTorch's default 0; 1 is a common choice).
    With initial_state="learned" both h0 and c0 are params.
    """
    forget_bias = check_number("LSTM: forget_bias", forget_bias)
    return _recurrent(LSTM_CELL, hidden, return_sequences, bidirectional, num_layers, initial_state,
                      W_init, W_h_init, b_init, forget_bias)


_OPTIONS_DOC = """
    Args:
      hidden: H, the size of the hidden state.
      return_sequences: True, every h_t (batch, T, D·H); False, the last (batch, D·H).
      bidirectional: a forward and a reverse-time pass, concatenated (D = 2).
      num_layers: stacked layers, each reading the full output sequence of the one below.
      initial_state: "zeros" (h_0 = 0) or "learned" (trainable h0, and c0, per layer and direction).{extra}
      W_init, W_h_init, b_init: initializer names or callables (key, shape, dtype) for W_x, W_h
        (default: W_init's) and both biases; default PyTorch's U(−1/√H, 1/√H) for all.

    Returns:
      A Layer of kind "recurrent" over (batch, T, features); params as in the module docstring.

    Raises:
      InputError / InputTypeError: for a setting out of range or of the wrong type (named),
      or an unknown initializer.
"""
_FORGET_BIAS_DOC = "\n      forget_bias: added to the forget block of b_x at init."
for _f, _extra in ((RNN, ""), (GRU, ""), (LSTM, _FORGET_BIAS_DOC)):
    _f.__doc__ += _OPTIONS_DOC.format(extra=_extra)


def _name(cell, hidden, return_sequences, bidirectional, num_layers, initial_state, forget_bias):
    extras = [f"{key}={value!r}" for key, value, default in (
        ("return_sequences", return_sequences, True), ("bidirectional", bidirectional, False),
        ("num_layers", num_layers, 1), ("initial_state", initial_state, "zeros"),
        ("forget_bias", forget_bias, 0.0)) if value != default]
    return f"{cell.name}({', '.join([str(hidden)] + extras)})"


def _recurrent(cell, hidden, return_sequences, bidirectional, num_layers, initial_state,
               W_init, W_h_init, b_init, forget_bias=0.0):
    """The Layer running `cell` as described in the module docstring."""
    hidden = check_positive_int(f"{cell.name}: hidden (the size of the hidden state)", hidden)
    return_sequences = check_bool(f"{cell.name}: return_sequences", return_sequences)
    bidirectional = check_bool(f"{cell.name}: bidirectional", bidirectional)
    num_layers = check_positive_int(f"{cell.name}: num_layers", num_layers)
    initial_state = check_choice(f"{cell.name} initial_state", initial_state, INITIAL_STATES)
    default = uniform(1 / math.sqrt(hidden))                   # PyTorch: U(±1/√H) for every weight and bias
    W_init = default if W_init is None else get_initializer(W_init)
    W_h_init = W_init if W_h_init is None else get_initializer(W_h_init)
    b_init = default if b_init is None else get_initializer(b_init)
    name = _name(cell, hidden, return_sequences, bidirectional, num_layers, initial_state, forget_bias)
    H, G, D = hidden, len(cell.gates), 2 if bidirectional else 1
    learned = initial_state == "learned"

    def init_cell(key, fan_in, dtype):
        k_x, k_h, k_bx, k_bh = jax.random.split(key, 4)
        p = {"W_x": W_init(k_x, (fan_in, G * H), dtype),      # (F, G·H)
             "W_h": W_h_init(k_h, (H, G * H), dtype),          # (H, G·H)
             "b_x": b_init(k_bx, (G * H,), dtype),              # (G·H,)
             "b_h": b_init(k_bh, (G * H,), dtype)}
        if forget_bias:
            p["b_x"] = p["b_x"].at[H:2 * H].add(forget_bias)   # the LSTM's f block
        if learned:
            p.update({s + "0": jnp.zeros((H,), dtype) for s in cell.states})
        return p

    def init(key, input_shape, dtype=jnp.float32):
        shape = tuple(input_shape)
        if len(shape) != 3:
            raise InputError(f"{name}: input shape {shape}; expected (batch, time, features), 3 axes")
        check_positive_int(f"{name}: the time steps (axis 1) of input shape {shape}", shape[1])
        check_positive_int(f"{name}: the features (axis 2) of input shape {shape}", shape[2])
        keys = iter(jax.random.split(key, num_layers * D))
        params = tuple(tuple(init_cell(next(keys), shape[2] if l == 0 else D * H, dtype) for _ in range(D))
                       for l in range(num_layers))
        return ((shape[0], shape[1], D * H) if return_sequences else (shape[0], D * H)), params

    def _check(params, x):
        if (not isinstance(params, (tuple, list)) or len(params) != num_layers
                or not all(isinstance(p, (tuple, list)) and len(p) == D for p in params)):
            raise InputError(f"{name}: params must be a tuple with one entry per layer ({num_layers}), "
                             f"each a tuple with one dict per direction ({D}); build them with init")
        F = params[0][0]["W_x"].shape[0]
        if getattr(x, "ndim", None) != 3 or x.shape[1] < 1 or x.shape[2] != F:
            raise InputError(f"{name}: input of shape {getattr(x, 'shape', None)}; expected "
                             f"(batch, time, features) with time ≥ 1 and {F} features")

    def state0(p, batch, dtype):
        if learned:
            return tuple(jnp.broadcast_to(p[s + "0"], (batch, H)) for s in cell.states)
        return tuple(jnp.zeros((batch, H), dtype) for _ in cell.states)

    def direction_forward(p, x_tm, reverse):
        """One direction over x_tm (T, B, F): its states in time order, and what its backward needs."""
        xp = jnp.einsum("tbf,fg->tbg", x_tm, p["W_x"]) + p["b_x"][None, None]   # (T, B, G·H)
        s0 = state0(p, x_tm.shape[1], xp.dtype)
        hs, aux = cell.forward(p["W_h"], p["b_h"], xp[::-1] if reverse else xp, s0)   # scan order
        return (hs[::-1] if reverse else hs), (hs, aux, s0)

    def forward(params, x, *, key=None, train=False):
        del key, train
        _check(params, x)
        seq, saved = jnp.swapaxes(x, 0, 1), []                              # (T, B, F)
        for layer_params in params:
            outs, layer_saved = zip(*(direction_forward(p, seq, reverse=d == 1)
                                      for d, p in enumerate(layer_params)))
            saved.append((seq, layer_saved))
            seq = jnp.concatenate(outs, axis=-1)                            # (T, B, D·H)
        if return_sequences:
            return jnp.swapaxes(seq, 0, 1), tuple(saved)                    # (B, T, D·H)
        last = [saved[-1][1][d][0][-1] for d in range(D)]                   # each direction's final h
        return jnp.concatenate(last, axis=-1), tuple(saved)                 # (B, D·H)

    def direction_backward(p, x_tm, saved, dseq, reverse):
        """(dparams, dx_tm) of one direction, dseq (T, B, H) in time order."""
        hs, aux, s0 = saved                                                 # scan order
        h_prev = jnp.concatenate([s0[0][None], hs[:-1]], axis=0)           # (T, B, H)
        dxp, dhp, ds0 = cell.backward(p["W_h"], aux, hs, h_prev, dseq[::-1] if reverse else dseq, s0)
        dxp = dxp[::-1] if reverse else dxp                                 # time order
        grads = {"W_x": jnp.einsum("tbf,tbg->fg", x_tm, dxp), "b_x": jnp.sum(dxp, axis=(0, 1)),
                 "W_h": jnp.einsum("tbh,tbg->hg", h_prev, dhp), "b_h": jnp.sum(dhp, axis=(0, 1))}
        if learned:
            grads.update({s + "0": jnp.sum(d, axis=0) for s, d in zip(cell.states, ds0)})
        grads = {k: g.astype(p[k].dtype) for k, g in grads.items()}
        return grads, jnp.einsum("tbg,fg->tbf", dxp, p["W_x"])

    def backward(params, saved, dy):
        T, B = saved[0][0].shape[:2]
        if return_sequences:
            dseq = jnp.swapaxes(dy, 0, 1)                                   # (T, B, D·H)
        else:                                          # dy reaches forward's h_T and reverse's h_1
            dseq = jnp.zeros((T, B, D * H), dy.dtype).at[-1, :, :H].set(dy[:, :H])
            if D == 2:
                dseq = dseq.at[0, :, H:].set(dy[:, H:])
        dparams = [None] * num_layers
        for l in reversed(range(num_layers)):
            seq, layer_saved = saved[l]
            grads, dxs = zip(*(direction_backward(params[l][d], seq, layer_saved[d],
                                                  dseq[..., d * H:(d + 1) * H], reverse=d == 1)
                               for d in range(D)))
            dparams[l] = tuple(grads)
            dseq = sum(dxs[1:], dxs[0])                                     # (T, B, F): both directions read seq
        return tuple(dparams), jnp.swapaxes(dseq, 0, 1).astype(saved[0][0].dtype)

    return Layer(name, init, forward, backward, kind="recurrent")
