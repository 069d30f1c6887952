"""What benchmarks.gpu runs: its configurations (full and --small) and their matmul FLOPs per train step.

FLOPs count the matrix multiplications and convolutions of one train step, as
benchmarks.grads.flops_per_step does for MLPs: 2 per multiply-add in the
forward, and the same again for each weight gradient and each input gradient,
less the input gradient of the network's first layer (nothing needs it; XLA
removes it). Elementwise work, normalization and the optimizer are left out.
Both methods are credited with the same FLOPs: what the manual backward
recomputes (attention's probabilities) is not counted.
"""
import math

from benchmarks.convs import C_IN, CLASSES, ConvConfig
from benchmarks.grads import Config, flops_per_step as mlp_flops
from benchmarks.sequences import SequenceConfig

__all__ = ["FAMILIES", "TIMED_DTYPES", "family_grid", "timed_dtypes", "agreement_grid", "flops_per_step",
           "problem_shapes", "FULL_TIMING", "SMALL_TIMING", "MATMUL_N"]

FAMILIES = ("mlp", "cnn", "gru", "attention")
FULL_TIMING = dict(seconds=1.0, min_repeats=5, max_repeats=200, warmup_seconds=0.2)
SMALL_TIMING = dict(seconds=0.005, min_repeats=2, max_repeats=3, warmup_seconds=0.0)
MATMUL_N = {"full": 8192, "small": 128}
SEQUENCE_FEATURES = 8                   # a recurrent configuration's input width (benchmarks.sequences)


def _mlp(depth, width, batch, dtype="float32"):
    return Config(depth, width, batch, "relu", "softmax_cross_entropy", dtype)


# Each family's configurations, the largest first: when the time budget runs out, what
# was measured is what says most about the device's rate.
_FULL = {
    "mlp": [_mlp(2, 4096, 4096), _mlp(4, 1024, 1024), _mlp(2, 256, 256)],
    "cnn": [ConvConfig(2, 32, 128, 2, 3, 1, 128, "none"), ConvConfig(2, 32, 64, 2, 3, 1, 128, "batch"),
            ConvConfig(1, 1024, 128, 2, 5, 1, 64, "layer")],
    "gru": [SequenceConfig("gru", 128, 512, 128), SequenceConfig("gru", 256, 128, 64)],
    "attention": [SequenceConfig("attention", 2048, 256, 16, heads=8, causal=True),
                  SequenceConfig("attention", 1024, 128, 32, heads=4, causal=False)],
}
_SMALL = {
    "mlp": [_mlp(1, 8, 4)],
    "cnn": [ConvConfig(1, 6, 3, 2, 3, 2, 2, "batch")],
    "gru": [SequenceConfig("gru", 5, 3, 2)],
    "attention": [SequenceConfig("attention", 6, 4, 2, heads=2, causal=True)],
}
# Gradient agreement: one network of each kind, BatchNorm and LayerNorm, an LSTM beside the GRU.
_AGREEMENT_FULL = [_mlp(2, 256, 64), ConvConfig(2, 16, 16, 2, 3, 1, 8, "batch"),
                   ConvConfig(1, 64, 16, 2, 5, 2, 8, "layer"), SequenceConfig("gru", 32, 32, 8),
                   SequenceConfig("lstm", 32, 32, 8), SequenceConfig("attention", 128, 64, 4, heads=4, causal=True)]
_AGREEMENT_SMALL = [_mlp(1, 8, 4)]
# The dtypes each family is timed in. --small is a check that the code runs, not a
# measurement: a CPU takes seconds to compile each train step, so each dtype runs in the
# MLP and in some of the other families (all of them use the same code).
TIMED_DTYPES = ("float32", "bfloat16")
_SMALL_DTYPES = {"mlp": TIMED_DTYPES, "cnn": ("bfloat16",), "gru": ("float32",), "attention": ("bfloat16",)}


def family_grid(family, small=False):
    """The configurations of one family (mlp, cnn, gru, attention); MLP configurations carry float32."""
    return list((_SMALL if small else _FULL)[family])


def timed_dtypes(family, small=False):
    """The dtypes a family's configurations are timed in."""
    return _SMALL_DTYPES[family] if small else TIMED_DTYPES


def agreement_grid(small=False):
    """The networks whose gradients the agreement section compares, one of each kind."""
    return list(_AGREEMENT_SMALL if small else _AGREEMENT_FULL)


def problem_shapes(config):
    """(input shape with -1 for the batch, batch) of any configuration."""
    if isinstance(config, Config):
        return (-1, config.width), config.batch
    return config.input_shape, config.batch


def flops_per_step(config):
    """Matmul and convolution FLOPs of one train step (module docstring), or None for a kind not counted."""
    if isinstance(config, Config):
        return mlp_flops(config)
    if isinstance(config, ConvConfig):
        return _conv_flops(config)
    if isinstance(config, SequenceConfig) and config.kind in ("gru", "lstm"):
        return _recurrent_flops(config, gates=3 if config.kind == "gru" else 4)
    if isinstance(config, SequenceConfig) and config.kind == "attention":
        return _attention_flops(config)
    return None


def _conv_flops(c):
    """Per Conv: 2·B·(output positions)·k^dims·C_in·C_out forward, ×3 with dW and dX (×2 for the first);
    then Dense(C → 10)."""
    total, c_in, length = 0, C_IN, c.length
    for i in range(c.depth):
        length = math.ceil(length / (c.stride if i == 0 else 1))          # SAME padding
        forward = 2 * c.batch * length ** c.dims * c.kernel ** c.dims * c_in * c.channels
        total += forward * (2 if i == 0 else 3)
        c_in = c.channels
    return total + 6 * c.batch * c.channels * CLASSES


def _recurrent_flops(c, gates):
    """x W_x (F → G·H) and h W_h (H → G·H) at every step, ×3 (W_x: ×2, no dX), then Dense(H → 10)."""
    bt, h = c.batch * c.length, c.width
    return (2 * 2 * bt * SEQUENCE_FEATURES * gates * h + 3 * 2 * bt * h * gates * h
            + 6 * c.batch * h * CLASSES)


def _attention_flops(c):
    """Q, K, V, O projections (d → d) and the (T × T) scores and weighted sum, the T × T counted in full.

    Forward: 4 · 2BTd² + 2 · 2BT²d. Backward: the four dW and dO (5 · 2BTd², no dx of the
    input), dP, dV, dQ, dK (4 · 2BT²d). Then Dense(d → 10).
    """
    b, t, d = c.batch, c.length, c.width
    return 9 * 2 * b * t * d * d + 6 * 2 * b * t * t * d + 6 * b * d * CLASSES
