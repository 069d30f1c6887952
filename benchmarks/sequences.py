"""Hand-written backprop against jax.grad for recurrent and attention networks: agreement, time, memory.

The sequence part of the manual-vs-autodiff benchmark (`python -m benchmarks.grads
--family sequence`), measured as benchmarks.convs measures convolutions: the
jitted gradient program and the jitted train step (Adam) of both methods in
interleaved rounds, XLA's compiled peak memory of each, and both gradients
against a float64 jax.grad.

A configuration is a float input (batch, T, features) through

    recurrent:  GRU / LSTM(hidden, return_sequences=True) → GlobalAvgPool → Dense(10)
    attention:  MultiHeadAttention(heads, causal or not) → GlobalAvgPool → Dense(10)

and softmax cross-entropy. The recurrent grid sweeps T = 16–256; the attention
grid T = 64–1024 with 1, 4 and 8 heads, with and without the causal mask. Where
attention's T ≥ 512 the manual gradient's peak memory is also held to 0.5× of
autodiff's: its backward recomputes the probabilities from the saved
log-sum-exp, a block of queries at a time, where jax.grad of the same forward
keeps every block's (block × T) probabilities.

    python -m benchmarks.sequences [--quick] [--json PATH]
"""
import argparse
import sys
from typing import NamedTuple

import jax

import fnn

from benchmarks.common import device_info
from benchmarks.convs import report, row, run_config, run_grid, summarize
from benchmarks.grads import FULL_TIMING, QUICK_TIMING

GOALS = dict(time_median=1.00, time_worst=1.10, memory=1.00, attention_memory_long=0.5)
LONG = 512          # attention at T ≥ LONG: the manual gradient's peak ≤ 0.5× autodiff's
KINDS = ("gru", "lstm", "attention")


class SequenceConfig(NamedTuple):
    """One benchmarked sequence network and its batch."""
    kind: str          # "gru", "lstm" or "attention"
    length: int        # T
    width: int         # hidden size, or d_model
    batch: int
    heads: int = 1     # attention only
    causal: bool = False

    @property
    def name(self):
        if self.kind == "attention":
            return (f"attn-T{self.length}-d{self.width}-h{self.heads}-b{self.batch}"
                    f"{'-causal' if self.causal else ''}")
        return f"{self.kind}-T{self.length}-h{self.width}-b{self.batch}"

    def model(self):
        if self.kind == "attention":
            core = fnn.MultiHeadAttention(self.heads, causal=self.causal)
        else:
            core = {"gru": fnn.GRU, "lstm": fnn.LSTM}[self.kind](self.width, return_sequences=True)
        return fnn.serial(core, fnn.GlobalAvgPool(), fnn.Dense(10))

    @property
    def input_shape(self):
        return (-1, self.length, self.width if self.kind == "attention" else 8)


def default_grid(quick=False):
    """GRU and LSTM over T = 16–256; attention over T = 64–1024, 1/4/8 heads, causal or not."""
    if quick:
        return [SequenceConfig("gru", 16, 8, 4), SequenceConfig("lstm", 16, 8, 4),
                SequenceConfig("attention", 32, 16, 2, heads=2, causal=True)]
    grid = [SequenceConfig(kind, T, 64, 32) for kind in ("gru", "lstm") for T in (16, 64, 256)]
    grid += [SequenceConfig("attention", T, 64, 8, heads=4, causal=True) for T in (64, 256, 512, 1024)]
    grid += [SequenceConfig("attention", 512, 64, 8, heads=h, causal=c)
             for h, c in ((1, True), (8, True), (4, False))]
    grid += [SequenceConfig("attention", 1024, 64, 8, heads=4, causal=False)]
    return grid


def summarize_sequences(records):
    """convs.summarize, plus the long-attention memory goal."""
    s = summarize(records)
    long = [r["memory"]["grad"]["ratio"] for r in records
            if r["config"]["kind"] == "attention" and r["config"]["length"] >= LONG
            and r["memory"]["grad"]["ratio"] is not None]
    s["attention_long_memory_worst"] = max(long) if long else None
    s["goals"]["attention_memory_long"] = (None if not long else
                                           max(long) <= GOALS["attention_memory_long"])
    return s


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="a small grid and short timing (a smoke test)")
    p.add_argument("--json", metavar="PATH", help="write every figure to this JSON file")
    args = p.parse_args(argv)
    timing = QUICK_TIMING if args.quick else FULL_TIMING
    print(f"device: {device_info()['description']}")
    records = run_grid(default_grid(args.quick), timing,
                       lambda r: row(r) + f"  grad memory {r['memory']['grad']['ratio']:.3f}")
    s = summarize_sequences(records)
    print(f"attention at T ≥ {LONG}: gradient peak memory ratio worst {s['attention_long_memory_worst']}")
    report(s, GOALS, records, timing, args.json)
    return 0

if __name__ == "__main__":
    sys.exit(main())
