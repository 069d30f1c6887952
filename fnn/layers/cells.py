"""Recurrent cells (Elman RNN, GRU, LSTM): the recurrence over time, forward and backward by hand.

A cell's input projection xp_t = x_t W_x + b_x is done for every step at once
outside the recurrence (fnn.layers.recurrent); what is left is the part that
must run step by step, with hp_t = h_{t−1} W_h + b_h:

    forward(W_h, b_h, xp, state0) -> (hs, aux)
        xp (T, B, G·H) time-major, state0 a tuple ((h0,), or (h0, c0) for the LSTM, each (B, H));
        hs (T, B, H) the hidden states h_1..h_T, aux what the backward needs (gates, cell states).
    backward(W_h, aux, hs, h_prev, dhs, state0) -> (dxp, dhp, dstate0)
        dhs (T, B, H) the gradient reaching each h_t from outside the recurrence (the layer's
        output, or the layer above), h_prev = (h_0..h_{T−1}). Backpropagation through time is a
        reverse lax.scan carrying dh (and dc) from step t to t − 1; it returns the gradients of
        the pre-activations, dxp = ∂L/∂xp and dhp = ∂L/∂hp (T, B, G·H), and of state0.

The weight gradients are then one contraction each over (T, B), outside the scan:
    dW_h = Σ_t h_{t−1}ᵀ dhp_t,  db_h = Σ_{t,b} dhp_t,  dW_x = Σ_t x_tᵀ dxp_t,  db_x = Σ dxp_t,
    dx_t = dxp_t W_xᵀ.
Gate blocks are laid out along the last axis of W_x (F, G·H), W_h (H, G·H), b_x, b_h (G·H,)
in PyTorch's order (weight_ih_l0 = W_xᵀ, weight_hh_l0 = W_hᵀ, bias_ih_l0 = b_x, bias_hh_l0 = b_h).
σ is the logistic sigmoid, ⊙ the elementwise product.
"""
from typing import Callable, NamedTuple, Tuple

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["Cell", "ELMAN", "GRU_CELL", "LSTM_CELL"]


class Cell(NamedTuple):
    """A recurrent cell: its gate blocks (G = len(gates)), its states, and its two scans."""
    name: str
    gates: Tuple[str, ...]          # the blocks of H columns of W_x, W_h, b_x, b_h, in order
    states: Tuple[str, ...]         # ("h",) or ("h", "c"): the carried state
    forward: Callable
    backward: Callable


def _sigmoid(a):
    return jax.nn.sigmoid(a)


def _split(a, n):
    return jnp.split(a, n, axis=-1)


# --------------------------------------------------------------------------- Elman

def _elman_forward(W_h, b_h, xp, state0):
    """h_t = tanh(xp_t + h_{t−1} W_h + b_h)."""
    def step(h, xp_t):
        h = jnp.tanh(xp_t + h @ W_h + b_h[None])                      # (B, H)
        return h, h
    _, hs = lax.scan(step, state0[0], xp)
    return hs, ()


def _elman_backward(W_h, aux, hs, h_prev, dhs, state0):
    """da_t = (dhs_t + dh_t) ⊙ (1 − h_t²),   dh_{t−1} = da_t W_hᵀ;   dxp_t = dhp_t = da_t."""
    del aux, h_prev

    def step(dh, inputs):                                       # dh: ∂L/∂h_t through h_{t+1}
        h_t, dy_t = inputs
        da = (dy_t + dh) * (1 - h_t * h_t)                      # (B, H)
        return da @ W_h.T, da
    dh0, da = lax.scan(step, jnp.zeros_like(state0[0]), (hs, dhs), reverse=True)
    return da, da, (dh0,)


ELMAN = Cell("RNN", ("h",), ("h",), _elman_forward, _elman_backward)


# --------------------------------------------------------------------------- GRU

def _gru_forward(W_h, b_h, xp, state0):
    """r, z = σ(xp_r + hp_r), σ(xp_z + hp_z);  n = tanh(xp_n + r ⊙ hp_n);  h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}."""
    def step(h, xp_t):
        x_r, x_z, x_n = _split(xp_t, 3)
        h_r, h_z, h_n = _split(h @ W_h + b_h[None], 3)                # (B, H) each
        r, z = _sigmoid(x_r + h_r), _sigmoid(x_z + h_z)
        n = jnp.tanh(x_n + r * h_n)
        h = (1 - z) * n + z * h
        return h, (h, (r, z, n, h_n))
    _, (hs, aux) = lax.scan(step, state0[0], xp)
    return hs, aux


def _gru_backward(W_h, aux, hs, h_prev, dhs, state0):
    """With dh = dhs_t + (carried ∂L/∂h_t):
        dn = dh ⊙ (1 − z),  dz = dh ⊙ (h_{t−1} − n),  da_n = dn ⊙ (1 − n²)
        da_r = da_n ⊙ hp_n ⊙ r(1 − r),  da_z = dz ⊙ z(1 − z),  dhp_n = da_n ⊙ r
        dxp_t = [da_r, da_z, da_n],  dhp_t = [da_r, da_z, dhp_n]
        dh_{t−1} = dh ⊙ z + dhp_t W_hᵀ
    """
    del hs

    def step(dh, inputs):
        (r, z, n, h_n), h_p, dy_t = inputs
        dh = dh + dy_t
        dn = dh * (1 - z)
        da_n = dn * (1 - n * n)
        da_r = da_n * h_n * r * (1 - r)
        da_z = dh * (h_p - n) * z * (1 - z)
        dxp = jnp.concatenate([da_r, da_z, da_n], axis=-1)      # (B, 3H)
        dhp = jnp.concatenate([da_r, da_z, da_n * r], axis=-1)  # (B, 3H)
        return dh * z + dhp @ W_h.T, (dxp, dhp)
    dh0, (dxp, dhp) = lax.scan(step, jnp.zeros_like(state0[0]), (aux, h_prev, dhs), reverse=True)
    return dxp, dhp, (dh0,)


GRU_CELL = Cell("GRU", ("r", "z", "n"), ("h",), _gru_forward, _gru_backward)


# --------------------------------------------------------------------------- LSTM

def _lstm_forward(W_h, b_h, xp, state0):
    """[a_i, a_f, a_g, a_o] = xp_t + h_{t−1} W_h + b_h;  i, f, o = σ(a_i, a_f, a_o), g = tanh(a_g);
    c_t = f ⊙ c_{t−1} + i ⊙ g,  h_t = o ⊙ tanh(c_t)."""
    def step(carry, xp_t):
        h, c = carry
        a_i, a_f, a_g, a_o = _split(xp_t + h @ W_h + b_h[None], 4)    # (B, H) each
        i, f, g, o = _sigmoid(a_i), _sigmoid(a_f), jnp.tanh(a_g), _sigmoid(a_o)
        c = f * c + i * g
        h = o * jnp.tanh(c)
        return (h, c), (h, (c, jnp.concatenate([i, f, g, o], axis=-1)))
    _, (hs, aux) = lax.scan(step, tuple(state0), xp)
    return hs, aux                                              # aux: cs (T, B, H), gates (T, B, 4H)


def _lstm_backward(W_h, aux, hs, h_prev, dhs, state0):
    """With dh = dhs_t + (carried ∂L/∂h_t) and dc_t carried from step t + 1:
        do = dh ⊙ tanh(c_t),  dc = dc_t + dh ⊙ o ⊙ (1 − tanh²(c_t))
        di = dc ⊙ g,  df = dc ⊙ c_{t−1},  dg = dc ⊙ i,  dc_{t−1} = dc ⊙ f
        dxp_t = dhp_t = [di ⊙ i(1 − i), df ⊙ f(1 − f), dg ⊙ (1 − g²), do ⊙ o(1 − o)]
        dh_{t−1} = dhp_t W_hᵀ
    """
    del hs, h_prev
    cs, gates = aux
    c_prev = jnp.concatenate([state0[1][None], cs[:-1]], axis=0)   # (T, B, H): c_0..c_{T−1}

    def step(carry, inputs):
        dh, dc = carry
        c_t, c_p, gates_t, dy_t = inputs
        i, f, g, o = _split(gates_t, 4)
        dh = dh + dy_t
        tc = jnp.tanh(c_t)
        dc = dc + dh * o * (1 - tc * tc)
        da = jnp.concatenate([dc * g * i * (1 - i), dc * c_p * f * (1 - f),
                              dc * i * (1 - g * g), dh * tc * o * (1 - o)], axis=-1)   # (B, 4H)
        return (da @ W_h.T, dc * f), da
    zeros = jnp.zeros_like(state0[0])
    ds0, da = lax.scan(step, (zeros, zeros), (cs, c_prev, gates, dhs), reverse=True)
    return da, da, ds0


LSTM_CELL = Cell("LSTM", ("i", "f", "g", "o"), ("h", "c"), _lstm_forward, _lstm_backward)
