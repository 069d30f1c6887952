"""benchmarks.gpu's results (its gpu.json) as Markdown: one function, to paste into RESULTS.md.

    python -m benchmarks.gpu_report gpu-results/gpu.json     # prints the Markdown
"""
import json
import sys

from fnn import cli
from fnn.errors import InputError

from benchmarks.common import format_bytes, format_seconds

__all__ = ["to_markdown"]

FAMILY_TITLES = {"mlp": "MLP", "cnn": "CNN", "gru": "GRU", "attention": "Attention"}


def _table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return out + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def _ok(results, section):
    return [i for i in results["sections"][section]["items"] if i["status"] == "ok"]


def _num(v, spec=".3f"):
    return "n/a" if v is None else format(v, spec)


def _peak(record, program, method):
    """Peak bytes: benchmarks.grads keeps XLA's whole analysis per method, benchmarks.convs the peak only."""
    v = record["memory"][program][method]
    return v.get("peak_bytes") if isinstance(v, dict) else v


def _header(results):
    d = results["device"]
    lines = [f"## fnn on one device: `python -m benchmarks.gpu` ({results['mode']} run)", "",
             f"- device: {d['description']}" + (f", {d['cpu_model']}, {d['cpu_count']} cores"
                                                 if d["platform"] == "cpu" else ""),
             f"- date: {results['date']}; JAX {d['jax_version']} (jaxlib {d['jaxlib_version']}), "
             f"Python {d['python_version']}; float32 matmul precision: JAX's default "
             f"(jax_default_matmul_precision={results['matmul_precision']})",
             f"- {results['seconds']:.0f} s of a {results['budget_seconds']:g} s budget"
             + ("" if results["complete"] else "; the run did not finish (these are the sections it completed)")]
    if results["mode"] == "small":
        lines.append("- a small run: tiny problems and 2–3 timed rounds, a check that the code runs, "
                     "not a measurement")
    if results.get("data"):
        lines.append(f"- MNIST-1D: {results['data']['source']}"
                     + (f" (sha256 {results['data']['sha256'][:16]}…)" if "sha256" in results["data"] else ""))
    if results.get("command"):
        lines.append(f"- command: `{results['command']}`")
    rows = []
    for name, s in results["sections"].items():
        skipped = [i for i in s["items"] if i["status"] == "skipped"]
        failed = [i for i in s["items"] if i["status"] == "error"]
        counts = ([f"{len(skipped)} of {len(s['items'])} skipped"] if skipped else []) + (
            [f"{len(failed)} failed"] if failed else [])
        note = s.get("note") or "; ".join(counts)
        rows.append((name, s["status"], f"{s['seconds']:.1f}" if "seconds" in s else "",
                     f"{s['allowance_seconds']:.0f}" if "allowance_seconds" in s else "", note))
    header = ["section", "status", "seconds", "budget share (s)", "note"]
    return lines + ["", "### Sections", ""] + _table(header, rows)


def _matmul(results):
    rows = [(i["name"], i["result"]["n"], format_seconds(i["result"]["time"]["median"]),
             f"{i['result']['flops_per_second'] / 1e12:.3g}") for i in _ok(results, "matmul")]
    return ["### Matmul rate ((n, n) @ (n, n) jnp.dot, median)", "",
            "At JAX's default matmul precision, as the train steps run (on recent NVIDIA GPUs float32 "
            "matmuls may then use TF32 tensor cores): each step is compared with the rate of its own dtype.",
            ""] + _table(
        ["dtype", "n", "median time", "TFLOP/s"], rows)


def _agreement(results):
    rows = []
    for item in _ok(results, "agreement"):
        for r in item["result"]["rows"]:
            if r["status"] == "skipped":
                rows.append((item["name"], r["dtype"], "", "", "", "", f"skipped: {r['note']}"))
                continue
            rows.append((item["name"], r["dtype"], _num(r["manual_vs_autodiff"], ".1e"),
                         _num(r["manual_vs_reference"], ".1e"), _num(r["autodiff_vs_reference"], ".1e"),
                         f"{r['bound']:.0e}", r["status"]))
    return ["### Gradient agreement on the device", "",
            "Relative errors, the largest over the leaves: ‖a − b‖∞ / max(‖a‖∞, ‖b‖∞).",
            "Met: float64, manual within the bound of jax.grad; float32 and bfloat16, manual's error "
            "against float64 jax.grad at most twice jax.grad's own, or within the bound.", ""] + _table(
        ["network", "dtype", "manual vs jax.grad", "manual vs float64", "jax.grad vs float64", "bound",
         "status"], rows)


def _families(results):
    out = ["### Manual against jax.grad: time and peak memory (medians; ratio = manual / autodiff)", "",
           "Peak memory: XLA's compiled memory analysis (arguments + outputs − donated + temporaries)."]
    for family, title in FAMILY_TITLES.items():
        recs = [i["result"] for i in _ok(results, family)]
        if not recs:
            continue
        rows = [(r["name"], format_seconds(r["time"]["grad"]["manual"]["median"]),
                 format_seconds(r["time"]["grad"]["autodiff"]["median"]), _num(r["time"]["grad"]["ratio"]),
                 format_seconds(r["time"]["step"]["manual"]["median"]),
                 format_seconds(r["time"]["step"]["autodiff"]["median"]), _num(r["time"]["step"]["ratio"]),
                 format_bytes(_peak(r, "step", "manual")), format_bytes(_peak(r, "step", "autodiff")),
                 _num(r["memory"]["step"]["ratio"]), _num(r["memory"]["grad"]["ratio"]),
                 _num(r["agreement"]["manual_vs_reference"], ".1e"), r["repeats"]) for r in recs]
        out += ["", f"#### {title}", ""] + _table(
            ["config", "grad manual", "grad autodiff", "ratio", "step manual", "step autodiff", "ratio",
             "step peak manual", "step peak autodiff", "ratio", "grad peak ratio", "manual vs float64",
             "rounds"], rows)
    return out


def _flops(results):
    rows = []
    for family in FAMILY_TITLES:
        for r in (i["result"] for i in _ok(results, family)):
            fps, frac = r["flops_per_second"] or {}, r["matmul_fraction"] or {}
            tera = lambda v: None if v is None else v / 1e12
            rows.append((r["name"], _num(None if r["flops_per_step"] is None else r["flops_per_step"] / 1e9, ".3g"),
                         _num(tera(fps.get("manual")), ".3g"), _num(tera(fps.get("autodiff")), ".3g"),
                         _num(tera(r["matmul_rate"]), ".3g") + f" ({r['dtype']})",
                         _num(frac.get("manual"), ".1%"), _num(frac.get("autodiff"), ".1%")))
    return ["### Achieved TFLOP/s of the train step (matmul FLOPs / median step time)", "",
            "FLOPs as benchmarks/gpu_grid.py counts them: matmuls and convolutions of the forward and "
            "backward, the same for both methods; attention's T × T counted in full, causal or not. "
            "The rate is the matmul section's, same dtype, same run.", ""] + _table(
        ["config", "GFLOP/step", "manual TFLOP/s", "autodiff TFLOP/s", "matmul TFLOP/s", "manual / matmul",
         "autodiff / matmul"], rows)


def _peers(results):
    s = results["sections"]["peers"]
    ratios = s.get("summary", {}).get("ratios", {})
    rows = []
    for item in s["items"]:
        if item["status"] != "ok":
            rows.append((item["name"], item["status"], item.get("note") or item.get("error", "")) + ("",) * 6)
            continue
        p, r = item["result"], ratios.get(item["name"])
        rows.append((p["name"], p["device"], p["message"], p["steps"], f"{p['steps_per_second']:,.0f}",
                     f"{p['train_seconds']:.2f}", f"{p['wall_seconds']:.2f}", f"{p['test_accuracy']:.4f}",
                     "" if r is None else f"{r['fnn_speedup']:.2f}"))
    return ["### Peers: the MNIST-1D MLP (40-100-100-10, Adam, batch 100)", "",
            "steps/s and train s exclude compilation; wall includes it. fnn ×: fnn-manual's steps/s "
            "over the peer's, on the same kind of device.", ""] + _table(
        ["peer", "device", "what", "steps", "steps/s", "train s", "wall s", "test accuracy", "fnn ×"], rows)


def _problems(results):
    lines = [f"- {name}/{i['name']}: {i.get('note') or i.get('error')}"
             for name, s in results["sections"].items() for i in s["items"] if i["status"] != "ok"]
    return ["### Skipped and failed", ""] + (lines or ["- none"])


def to_markdown(results):
    """The whole run as Markdown: device and sections, then one table per section's figures."""
    parts = [_header(results), _matmul(results), _agreement(results), _families(results), _flops(results),
             _peers(results), _problems(results)]
    return "\n".join("\n".join(p) + "\n" for p in parts).rstrip("\n")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        raise InputError("usage: python -m benchmarks.gpu_report GPU_JSON")
    try:
        with open(argv[0]) as f:
            results = json.load(f)
    except (OSError, ValueError) as e:
        raise InputError(f"{argv[0]!r}: cannot read the results ({cli.os_reason(e)})") from None
    print(to_markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
