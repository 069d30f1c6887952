"""Check every hand-written gradient against jax.grad and finite differences, in float64."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402

import fnn  # noqa: E402
from examples import gradcheck_grid  # noqa: E402
from fnn import check, cli, validate  # noqa: E402

# Settings: tolerances and step from fnn.check; the grid is examples.gradcheck_grid.default_cases.
TOL_AUTODIFF = check.TOL_AUTODIFF   # manual vs jax.grad
TOL_FD = check.TOL_FD               # manual and jax.grad vs central differences
EPS = check.FD_EPS                  # central-difference step
SEED = 0

COLUMNS = (("layers", 10), ("activation", 10), ("loss", 29), ("shape", 11),
           ("vs autodiff", 11), ("vs FD", 9), ("result", 6))


def parse_args(argv):
    parser = cli.ArgumentParser(prog="gradcheck.py", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="reduced grid: every layer type, activation and loss at least once")
    parser.add_argument("--json", metavar="PATH", help="write one record per case, with the tolerances, here")
    parser.add_argument("--seed", type=int, default=SEED, help=f"PRNG seed for the random problems (default {SEED})")
    parser.add_argument("--eps", type=cli.positive_float, default=EPS,
                        help=f"finite-difference step (default {EPS:g})")
    args = parser.parse_args(argv)
    try:
        validate.check_non_negative_int("--seed", args.seed)
    except ValueError as e:
        parser.error(str(e))
    if args.json is not None:
        folder = os.path.dirname(os.path.abspath(args.json))
        if not os.path.isdir(folder):
            parser.error(f"--json: folder {folder!r} does not exist")
        if os.path.isdir(args.json):
            parser.error(f"--json: {args.json!r} is a folder; expected a file path")
    return args


def row(cells):
    return "  ".join(f"{str(c):<{w}}" for c, (_, w) in zip(cells, COLUMNS))


def case_row(r):
    c, res = r.case, r.result
    return row((c.layers, c.activation, c.loss_label, c.shape_label,
                f"{res.max_manual_vs_autodiff:.1e}", f"{res.max_manual_vs_fd:.1e}",
                "PASS" if r.passed else "FAIL"))


def write_json(path, results, args, seconds):
    report = {
        "tolerances": {"autodiff": TOL_AUTODIFF, "fd": TOL_FD},
        "eps": args.eps,
        "seed": args.seed,
        "quick": args.quick,
        "device": cli.device_description(),
        "seconds": round(seconds, 2),
        "passed": sum(r.passed for r in results),
        "failed": sum(not r.passed for r in results),
        "cases": [r.record() for r in results],
    }
    with open(path, "w") as f:
        json.dump(report, f, indent=1, allow_nan=False)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    print(f"device: {cli.device_description()}  fnn {fnn.__version__}  float64, eps={args.eps:g}")
    print(f"tolerances: manual vs jax.grad <= {TOL_AUTODIFF:g}, vs finite differences <= {TOL_FD:g}")
    cases = gradcheck_grid.default_cases(quick=args.quick)
    print(row(name for name, _ in COLUMNS))
    print(row("-" * w for _, w in COLUMNS))
    start = time.perf_counter()
    results = gradcheck_grid.run_cases(gradcheck_grid.Grid(), cases, key=jax.random.key(args.seed),
                                       eps=args.eps, callback=lambda r: print(case_row(r), flush=True))
    seconds = time.perf_counter() - start
    failed = [r for r in results if not r.passed]
    worst_ad = max(r.result.max_manual_vs_autodiff for r in results)
    worst_fd = max(max(r.result.max_manual_vs_fd, r.result.max_autodiff_vs_fd) for r in results)
    print(f"{len(results) - len(failed)}/{len(results)} cases pass in {seconds:.1f} s; "
          f"worst relative error vs jax.grad {worst_ad:.1e}, vs finite differences {worst_fd:.1e}")
    for r in failed:
        print(f"FAIL {r.case.label}", file=sys.stderr)
    if args.json is not None:
        try:
            write_json(args.json, results, args, seconds)
        except OSError as e:
            print(f"gradcheck.py: error: cannot write --json {args.json!r}: {e.strerror}", file=sys.stderr)
            return 2
        print(f"wrote {args.json}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
