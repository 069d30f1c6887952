"""Axis ranges that stay fixed over a report's frames, and tick labels that read.

A report's frames share their axes: each range is decided once from every
value the frames will show, so moving the slider shows the curves change, not
the axes rescale. Log ranges are whole decades, so a live report (whose values
arrive as training runs) changes its ranges rarely.

    log_range(values)        (10^⌊log10 min⌋, 10^⌈log10 max⌉) of the positive values
    log_ticks(low, high)     ticks for a log axis: the decades, or 1-2-5 within one decade
    tick_label(v)            "0.02", "1", "300", "1e-5": short, and distinct for distinct ticks
    set_log_axis(axis, lo, hi)   a log axis with those ticks and labels, minor ticks unlabelled
"""
import math

import numpy as np
from matplotlib.ticker import FixedFormatter, FixedLocator, LogLocator, NullFormatter, NullLocator

__all__ = ["log_range", "log_ticks", "tick_label", "set_log_axis", "LOG_FLOOR"]

LOG_FLOOR = 1e-12           # the lowest value a log range reaches (0 is drawn at the range's floor)
_MAX_TICKS = 6
_MINOR_DECADES = 3          # minor ticks (2, 3, ... 9 × 10^k) on log axes of at most this many decades


def _steps(e):
    return [m * 10.0 ** e for m in (1, 2, 5)]


def log_range(values, *, decades=1, floor=LOG_FLOOR, tight=False):
    """The whole decades around the positive finite `values`, at least `decades` wide.

    Args:
      values: any numbers; zero, negative and non-finite ones are passed over.
      decades: the narrowest range, in decades.
      floor: the lowest value the range reaches.
      tight: bounds at 1, 2 or 5 × 10^k instead of powers of ten (a range for one plot,
        not one that must hold as values arrive).
    Returns:
      (low, high) with low ≤ min and high ≥ max of the values; (0.1, 1) when there is
      no positive finite value.
    """
    v = np.asarray([x for x in np.ravel(np.asarray(values, dtype=np.float64))
                    if math.isfinite(x) and x > 0], np.float64)
    if v.size == 0:
        return 0.1, 1.0
    if tight:
        low, high = max(v.min(), floor), max(v.max(), floor)
        e0, e1 = math.floor(math.log10(low)), math.floor(math.log10(high))
        lo = max(t for t in _steps(e0) if t <= low * (1 + 1e-9))
        hi = min(t for t in _steps(e1) + _steps(e1 + 1) if t >= high * (1 - 1e-9))
        return (lo, hi) if hi > lo else (lo, min(t for t in _steps(e1) + _steps(e1 + 1) if t > lo))
    lo = math.floor(math.log10(max(v.min(), floor)) + 1e-9)
    hi = math.ceil(math.log10(max(v.max(), floor)) - 1e-9)
    if hi - lo < decades:
        hi = lo + decades
    return 10.0 ** lo, 10.0 ** hi


def log_ticks(low, high):
    """Major ticks of a log axis from `low` to `high`: powers of ten (every k-th when many),
    or 1, 2, 5 times a power of ten when the range is one decade or less."""
    if not (0 < low < high):
        raise ValueError(f"log_ticks needs 0 < low < high, got {low!r}, {high!r}")
    a, b = math.floor(math.log10(low) + 1e-9), math.ceil(math.log10(high) - 1e-9)
    if b - a <= 1:
        ticks = [m * 10.0 ** e for e in range(a, b + 1) for m in (1, 2, 5)]
    else:
        every = math.ceil((b - a + 1) / _MAX_TICKS)
        ticks = [10.0 ** e for e in range(a, b + 1) if (e - a) % every == 0]
    return [t for t in ticks if low * (1 - 1e-9) <= t <= high * (1 + 1e-9)]


def tick_label(v):
    """A short label for a tick value: plain decimals from 0.001 to 99,999 ("0.02", "300"), else
    mantissa and exponent ("1e-5", "2e6")."""
    if v == 0:
        return "0"
    if 1e-3 <= abs(v) < 1e5:
        return f"{v:.4g}"
    mantissa, exponent = f"{v:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def set_log_axis(axis, low, high):
    """Make `axis` (ax.yaxis or ax.xaxis) a log axis fixed to [low, high], its log_ticks labelled
    by tick_label and its minor ticks unlabelled.

    Returns:
      the major ticks.
    """
    ax, y = axis.axes, axis is axis.axes.yaxis
    (ax.set_yscale if y else ax.set_xscale)("log")
    (ax.set_ylim if y else ax.set_xlim)(low, high)
    (ax.set_autoscaley_on if y else ax.set_autoscalex_on)(False)
    ticks = log_ticks(low, high)
    axis.set_major_locator(FixedLocator(ticks))
    axis.set_major_formatter(FixedFormatter([tick_label(t) for t in ticks]))
    few = math.log10(high / low) <= _MINOR_DECADES      # minor ticks where they can be told apart
    axis.set_minor_locator(LogLocator(subs=np.arange(2, 10)) if few else NullLocator())
    axis.set_minor_formatter(NullFormatter())
    return ticks
