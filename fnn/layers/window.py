"""Window arithmetic shared by convolution and pooling: sizes, strides, padding, output lengths.

Along one spatial axis of length L, a window of k taps spaced d apart (its
dilated span K = d(k − 1) + 1) moves in steps of s over the input padded by
(p_lo, p_hi) positions:

    output length  O = ⌊(L + p_lo + p_hi − K) / s⌋ + 1
    leftover       r = (L + p_lo + p_hi − K) mod s     (padded positions after the last window)

Padding is "VALID" (none), "SAME" (O = ⌈L / s⌉, with the total
max((O − 1)·s + K − L, 0) split p_lo = ⌊total / 2⌋, p_hi = total − p_lo: the
extra one at the end, as lax.conv_general_dilated and TensorFlow do), an int p
(p on both sides of every axis, as PyTorch's padding=p), a tuple of ints (one
per axis), or a tuple of (p_lo, p_hi) pairs (one per axis; an int entry
stands for (p, p)).
"""
import numbers
from typing import NamedTuple, Sequence, Tuple, Union

from fnn.errors import InputError

__all__ = ["PADDING_HELP", "check_sizes", "check_padding", "per_axis", "Geometry", "geometry",
           "spatial_letters"]

# What kernel_size, window, stride and dilation take: an int, or one per spatial axis.
Sizes = Union[int, Sequence[int]]
# What padding takes: "VALID", "SAME", an int, or per axis an int or a (lo, hi) pair.
Padding = Union[str, int, Sequence[Union[int, Tuple[int, int]]]]

PADDING_HELP = ('"SAME", "VALID", an int >= 0 (both sides of every axis), a tuple of ints '
                '(one per spatial axis) or a tuple of (lo, hi) pairs (one per spatial axis)')

_SPATIAL_LETTERS = {1: "W", 2: "HW"}      # lax dimension-number letters: NWC (1-D), NHWC (2-D)


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def spatial_letters(where, rank):
    """"W" for 1-D, "HW" for 2-D inputs; InputError for another number of spatial axes."""
    if rank not in _SPATIAL_LETTERS:
        raise InputError(f"{where}: inputs must be (batch, length, channels) for 1-D or "
                         f"(batch, height, width, channels) for 2-D, got {rank} spatial axes")
    return _SPATIAL_LETTERS[rank]


def check_sizes(name, value):
    """value as an int ≥ 1 or a tuple of them (one per spatial axis); InputError naming the value."""
    if _is_int(value) and value >= 1:
        return int(value)
    if (isinstance(value, (tuple, list)) and len(value) > 0
            and all(_is_int(v) and v >= 1 for v in value)):
        return tuple(int(v) for v in value)
    raise InputError(f"{name} must be a positive integer or a tuple of positive integers "
                     f"(one per spatial axis), got {value!r}")


def _is_pair(value):
    return isinstance(value, (tuple, list)) and len(value) == 2 and all(map(_is_int, value))


def check_padding(name, padding):
    """padding as "SAME", "VALID", an int or a tuple of ints and (lo, hi) pairs; InputError otherwise."""
    if isinstance(padding, str):
        if padding in ("SAME", "VALID"):
            return padding
    elif _is_int(padding):
        if padding < 0:
            raise InputError(f"{name} must be {PADDING_HELP}; pads must be >= 0, got {padding!r}")
        return int(padding)
    elif (isinstance(padding, (tuple, list)) and len(padding) > 0
          and all(_is_int(p) or _is_pair(p) for p in padding)):
        entries = tuple(int(p) if _is_int(p) else (int(p[0]), int(p[1])) for p in padding)
        if any(min(p if isinstance(p, tuple) else (p,)) < 0 for p in entries):
            raise InputError(f"{name} must be {PADDING_HELP}; pads must be >= 0, got {padding!r}")
        return entries
    raise InputError(f"{name} must be {PADDING_HELP}, got {padding!r}")


def per_axis(name, value, rank, hint=""):
    """An int or tuple setting as a tuple of `rank` entries; InputError if a tuple has another length."""
    if not isinstance(value, tuple):
        return (value,) * rank
    if len(value) != rank:
        axes = "1 spatial axis" if rank == 1 else f"{rank} spatial axes"
        raise InputError(f"{name} {value!r} has {len(value)} entries, but the input has {axes}; "
                         f"expected an int or a tuple of {rank}{hint}")
    return value


class Geometry(NamedTuple):
    """One window's placement on every spatial axis of one input: tuples with an entry per axis."""
    in_sizes: Tuple[int, ...]      # L
    window: Tuple[int, ...]        # k, the taps
    stride: Tuple[int, ...]        # s
    dilation: Tuple[int, ...]      # d
    pads: Tuple[Tuple[int, int], ...]   # (p_lo, p_hi)
    out_sizes: Tuple[int, ...]     # O

    @property
    def span(self):
        """K = d(k − 1) + 1 per axis: the input positions one window covers."""
        return tuple(d * (k - 1) + 1 for k, d in zip(self.window, self.dilation))

    @property
    def leftover(self):
        """r = (L + p_lo + p_hi − K) mod s per axis: padded positions after the last window."""
        return tuple((L + lo + hi - K) % s
                     for L, (lo, hi), K, s in zip(self.in_sizes, self.pads, self.span, self.stride))


def _resolve_pads(name, padding, in_sizes, spans, strides):
    """(p_lo, p_hi) per axis for inputs of in_sizes, windows spanning `spans`, and strides."""
    rank = len(in_sizes)
    if padding == "VALID":
        return ((0, 0),) * rank
    if padding == "SAME":
        pads = []
        for L, K, s in zip(in_sizes, spans, strides):
            total = max((-(-L // s) - 1) * s + K - L, 0)
            pads.append((total // 2, total - total // 2))
        return tuple(pads)
    hint = " (one (lo, hi) pair per axis, e.g. ((1, 2),) in 1-D)"
    return tuple(p if isinstance(p, tuple) else (p, p) for p in per_axis(name, padding, rank, hint))


def geometry(where, in_sizes, window, stride, dilation, padding, window_name="window"):
    """The Geometry of a window on inputs of spatial sizes in_sizes; InputError if no window fits.

    window, stride, dilation: ints or tuples (per_axis); padding as check_padding returns it.
    where, window_name: how messages name the layer and its window (e.g. "kernel_size").
    """
    rank = len(in_sizes)
    window = per_axis(f"{where}: {window_name}", window, rank)
    stride = per_axis(f"{where}: stride", stride, rank)
    dilation = per_axis(f"{where}: dilation", dilation, rank)
    spans = tuple(d * (k - 1) + 1 for k, d in zip(window, dilation))
    pads = _resolve_pads(f"{where}: padding", padding, in_sizes, spans, stride)
    out_sizes = []
    for axis, (L, K, s, (lo, hi)) in enumerate(zip(in_sizes, spans, stride, pads)):
        if L + lo + hi < K:
            raise InputError(
                f"{where}: {window_name} {window[axis]}"
                f"{f' with dilation {dilation[axis]}' if dilation[axis] > 1 else ''} spans {K} "
                f"positions on spatial axis {axis}, but the input has {L} there ({L + lo + hi} with "
                f"padding {(lo, hi)}): no window fits; expected a padded size of at least {K}")
        out_sizes.append((L + lo + hi - K) // s + 1)
    return Geometry(tuple(in_sizes), window, stride, dilation, pads, tuple(out_sizes))
