"""What the benchmarks share: the device record, timing, compiled-memory figures, the matmul rate.

Timing follows one rule everywhere: compile first (timed on its own), warm
up, then call each variant repeatedly, interleaved with the variant it is
compared with, blocking on the result with jax.block_until_ready; report the
median. Two variants are compared as the ratio of their medians, measured in
the same process and the same loop.
"""
import datetime
import math
import os
import platform
import re
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from fnn.errors import InputError

__all__ = [
    "DTYPES", "device_info", "dtype_supported", "dtype_context", "compile_timed",
    "memory_figures", "hlo_summary", "time_interleaved", "choose_repeats", "summarize_times",
    "matmul_rate", "reference_matmul", "ratio", "format_bytes", "format_seconds",
]

DTYPES = ("float32", "bfloat16", "float64")


def device_info():
    """The device, software and moment a run comes from, as a JSON-ready dict."""
    import jaxlib
    devices = jax.devices()
    d = devices[0]
    try:
        stats = d.memory_stats()
    except Exception:  # noqa: BLE001 - not every backend implements it
        stats = None
    return {
        "platform": d.platform,
        "device_kind": d.device_kind,
        "device_count": len(devices),
        "description": f"{d.platform} ({d.device_kind}) x{len(devices)}",
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "jax_version": jax.__version__,
        "jaxlib_version": jaxlib.__version__,
        "python_version": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "memory_stats": _jsonable(stats),
    }


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _jsonable(stats):
    if stats is None:
        return None
    return {k: (int(v) if isinstance(v, (int, np.integer)) else str(v)) for k, v in stats.items()}


def dtype_context(dtype):
    """The context a dtype runs in: float64 needs jax's 64-bit mode, the others the default."""
    return jax.enable_x64(True) if dtype == "float64" else jax.enable_x64(False)


def dtype_supported(dtype):
    """True if the default device compiles and runs a matmul and its gradient in `dtype`."""
    if dtype not in DTYPES:
        raise InputError(f"unknown dtype {dtype!r}; expected one of {', '.join(DTYPES)}")
    try:
        with dtype_context(dtype):
            a = jnp.ones((8, 8), dtype)
            if a.dtype != jnp.dtype(dtype):
                return False
            g = jax.jit(jax.grad(lambda w: jnp.sum(jnp.tanh(a @ w))))(a)
            return bool(np.isfinite(np.asarray(g, np.float64)).all())
    except Exception:  # noqa: BLE001 - any failure means "not supported here"
        return False


def compile_timed(fn, *args, donate_argnums=()):
    """(compiled program, seconds spent tracing, lowering and compiling it)."""
    t0 = time.perf_counter()
    compiled = jax.jit(fn, donate_argnums=donate_argnums).lower(*args).compile()
    return compiled, time.perf_counter() - t0


def memory_figures(compiled):
    """XLA's compiled memory analysis of a program, in bytes.

    peak_bytes = arguments + outputs − aliased (donated) buffers + temporaries:
    every buffer the program's buffer assignment needs at once, at most. XLA's
    own peak_memory_in_bytes is kept as reported (on CPU it leaves out the
    temporaries), as is None where the backend gives no analysis.
    """
    try:
        m = compiled.memory_analysis()
    except Exception:  # noqa: BLE001
        m = None
    if m is None:
        return None
    fig = {name: int(getattr(m, name, 0) or 0) for name in (
        "argument_size_in_bytes", "output_size_in_bytes", "alias_size_in_bytes",
        "temp_size_in_bytes", "generated_code_size_in_bytes", "peak_memory_in_bytes")}
    fig["peak_bytes"] = (fig["argument_size_in_bytes"] + fig["output_size_in_bytes"]
                         - fig["alias_size_in_bytes"] + fig["temp_size_in_bytes"])
    return fig


_HLO_OP = re.compile(r"^\s*(?:ROOT\s+)?%\S+\s*=\s*.*?\s([a-z][a-z0-9_\-]*)\(", re.M)


def hlo_summary(compiled):
    """Instruction counts of the optimized program's entry computation, by opcode."""
    try:
        text = compiled.as_text()
    except Exception:  # noqa: BLE001
        return None
    entry = text[text.find("\nENTRY"):] if "\nENTRY" in text else text
    entry = entry[: entry.find("\n}") + 1] if "\n}" in entry else entry
    counts = {}
    for op in _HLO_OP.findall(entry):
        counts[op] = counts.get(op, 0) + 1
    counts["total"] = sum(counts.values())
    return counts


def time_interleaved(calls, repeats, seed=0, cpu_times=None):
    """{name: [wall-clock seconds, ...]} for `repeats` rounds of every call, blocking on each result.

    Each round runs every call once, in a fresh random order (seeded), so that
    a drift of the machine (load, clocks) and any effect of the position in a
    round fall on all variants alike. If `cpu_times` is a dict, it receives
    the process CPU seconds (all threads) of each call as well: on a shared
    machine, CPU time does not count the time other processes held the cores.
    """
    names = list(calls)
    times = {name: [] for name in names}
    if cpu_times is not None:
        cpu_times.update({name: [] for name in names})
    rng = np.random.default_rng(seed)
    for _ in range(repeats):
        for i in rng.permutation(len(names)):
            c0, t0 = time.process_time(), time.perf_counter()
            jax.block_until_ready(calls[names[i]]())
            times[names[i]].append(time.perf_counter() - t0)
            if cpu_times is not None:
                cpu_times[names[i]].append(time.process_time() - c0)
    return times


def choose_repeats(seconds_per_round, budget_seconds, minimum, maximum):
    """Rounds that fit the time budget, clamped to [minimum, maximum]."""
    if seconds_per_round <= 0:
        return maximum
    return int(min(maximum, max(minimum, math.ceil(budget_seconds / seconds_per_round))))


def summarize_times(seconds):
    """Median, quartiles and extremes of a list of durations."""
    s = sorted(seconds)
    q = statistics.quantiles(s, n=4) if len(s) >= 2 else [s[0]] * 3
    return {"median": statistics.median(s), "q1": q[0], "q3": q[2], "min": s[0], "max": s[-1], "n": len(s)}


def ratio(a, b):
    """a / b, or None when either is missing or b is 0."""
    if a is None or b is None or b == 0:
        return None
    return a / b


def reference_matmul(dtype, n):
    """(call, flops): a compiled (n, n) @ (n, n) jnp.dot on random operands, to time beside other calls.

    Call it inside dtype_context(dtype).
    """
    ka, kb = jax.random.split(jax.random.key(0))
    a = jax.random.normal(ka, (n, n), dtype)
    b = jax.random.normal(kb, (n, n), dtype)
    compiled = jax.jit(jnp.dot).lower(a, b).compile()
    return (lambda: compiled(a, b)), 2.0 * n ** 3


def matmul_rate(dtype, n, budget_seconds=1.0, minimum=3, maximum=50):
    """The device's dense matrix-multiply rate: an (n, n) @ (n, n) jnp.dot, timed as above.

    Returns a dict with the rate in FLOP/s (2n³ / median time), n, dtype and the raw times.
    """
    with dtype_context(dtype):
        ka, kb = jax.random.split(jax.random.key(0))
        a = jax.random.normal(ka, (n, n), dtype)
        b = jax.random.normal(kb, (n, n), dtype)
        compiled, compile_seconds = compile_timed(jnp.dot, a, b)
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(a, b))                      # warm-up
        first = time.perf_counter() - t0
        repeats = choose_repeats(first, budget_seconds, minimum, maximum)
        times = time_interleaved({"dot": lambda: compiled(a, b)}, repeats)["dot"]
    flops = 2.0 * n ** 3
    summary = summarize_times(times)
    return {"dtype": dtype, "n": n, "flops": flops, "flops_per_second": flops / summary["median"],
            "compile_seconds": compile_seconds, "times": times, "time": summary}


def format_bytes(n):
    """1536 -> '1.5 KiB'."""
    if n is None:
        return "n/a"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024.0


def format_seconds(s):
    """0.000123 -> '123 µs'."""
    if s is None:
        return "n/a"
    if s < 1e-3:
        return f"{s * 1e6:.0f} µs"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"
