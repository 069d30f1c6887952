"""Interleaved rounds for benchmarks.peers: every contender once per round, in a fresh random order, with
the machine's load during each run measured, so quiet and loaded rounds can be reported apart.

A shared machine's other processes slow whoever runs at that moment. Running
each contender once per round, in a shuffled order, spreads that over all of
them; measuring what the rest of the machine used during each run (the busy
CPU time in /proc/stat, less this process's own) tells a quiet run
(others < QUIET_CORES) from a loaded one. Ratios are taken within a round,
fnn against each contender, so both sides saw the same machine.
"""
import os
import random
import statistics
import time

__all__ = ["QUIET_CORES", "busy_seconds", "LoadMeter", "run_rounds", "round_summary"]

QUIET_CORES = 0.1        # a run is quiet when other processes used fewer cores than this on average


def busy_seconds():
    """CPU seconds every process has used since boot (/proc/stat: all but idle and iowait), or None."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class LoadMeter:
    """Around one run: `with LoadMeter() as m: ...`, then m.other_cores (None where /proc/stat is absent)."""

    def __enter__(self):
        self.t0, self.busy0, self.own0 = time.perf_counter(), busy_seconds(), _own_seconds()
        return self

    def __exit__(self, *exc):
        wall = time.perf_counter() - self.t0
        busy = busy_seconds()
        self.other_cores = None
        if busy is not None and self.busy0 is not None and wall > 0:
            others = (busy - self.busy0) - (_own_seconds() - self.own0)
            self.other_cores = max(0.0, others / wall)
        return False


def _own_seconds():
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def run_rounds(calls, rounds, *, seed=0, log=None):
    """{name: [{"round", "steps_per_second", "other_cores"}, ...]}: calls[name]() → steps/s, `rounds` times.

    Each round runs every call once, in an order drawn from `seed`.
    """
    rng = random.Random(seed)
    out = {name: [] for name in calls}
    names = list(calls)
    for r in range(rounds):
        rng.shuffle(names)
        for name in names:
            with LoadMeter() as meter:
                rate = calls[name]()
            out[name].append({"round": r, "steps_per_second": rate, "other_cores": meter.other_cores})
        if log:
            log(f"round {r + 1}/{rounds}: " + ", ".join(
                f"{n} {out[n][-1]['steps_per_second']:,.0f}" for n in calls))
    return out


def _stats(values):
    if not values:
        return None
    q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return {"median": statistics.median(values), "q1": q[0], "q3": q[2], "n": len(values)}


def round_summary(rounds, reference):
    """Per contender: steps/s medians (all, quiet, loaded rounds) and reference's same-round ratio to it."""
    summary = {}
    ref = {e["round"]: e for e in rounds.get(reference, [])}
    for name, entries in rounds.items():
        def split(keep):
            return [e for e in entries if keep(e)]
        quiet = split(lambda e: e["other_cores"] is not None and e["other_cores"] < QUIET_CORES)
        loaded = split(lambda e: e["other_cores"] is None or e["other_cores"] >= QUIET_CORES)
        row = {"all": _stats([e["steps_per_second"] for e in entries]),
               "quiet": _stats([e["steps_per_second"] for e in quiet]),
               "loaded": _stats([e["steps_per_second"] for e in loaded]),
               "other_cores": _stats([e["other_cores"] for e in entries if e["other_cores"] is not None])}
        if name != reference and ref:
            def ratios(group):
                return [ref[e["round"]]["steps_per_second"] / e["steps_per_second"] for e in group
                        if e["round"] in ref and (group is entries or _quiet_pair(ref[e["round"]], e))]
            row["fnn_ratio"] = {"all": _stats(ratios(entries)), "quiet": _stats(ratios(quiet))}
        summary[name] = row
    return summary


def _quiet_pair(a, b):
    """Both runs of a same-round ratio were quiet."""
    return all(e["other_cores"] is not None and e["other_cores"] < QUIET_CORES for e in (a, b))
