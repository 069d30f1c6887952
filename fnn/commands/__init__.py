"""The `fnn` command: train, evaluate, predict, summary, gradcheck, report.

    fnn train [flags]                    train a model (default: MNIST-1D) into a new run folder
    fnn evaluate RUN --data FILE         loss and accuracy of a saved run on a labelled file
    fnn predict RUN --input FILE         predictions for raw inputs, as CSV or .npz
    fnn summary RUN                      architecture, shapes, parameters, preprocessing, results
    fnn gradcheck [RUN]                  hand-written backprop vs jax.grad and finite differences
    fnn report RUN                       write (or re-write) RUN/report.html

Installed as a console script by `pip install`; `python -m fnn` is the same.
Every subcommand has --help with its defaults. A user's mistake is one line on
stderr and exit code 2.
"""
import sys

from fnn import cli

__all__ = ["main", "console", "COMMANDS"]

COMMANDS = ("train", "evaluate", "predict", "summary", "gradcheck", "report")
PROG = "fnn"


def _parser():
    from fnn.commands import gradcheck, report, use
    from fnn.commands import train as train_command
    p = cli.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, add, run, what in (
            ("train", train_command.add_arguments, None, "train a model into a run folder"),
            ("evaluate", use.add_evaluate, use.evaluate, "loss and accuracy of a run on a labelled file"),
            ("predict", use.add_predict, use.predict, "predictions of a run for raw inputs"),
            ("summary", use.add_summary, use.summary, "architecture, parameters and results of a run"),
            ("gradcheck", gradcheck.add_gradcheck, gradcheck.gradcheck,
             "hand-written backprop vs jax.grad and finite differences, float64"),
            ("report", report.add_report, report.report, "write or re-write a run's report.html")):
        doc = sys.modules[(add.__module__)].__doc__.split("\n")[0]
        sp = sub.add_parser(name, help=what, description=doc, formatter_class=cli.DefaultsHelpFormatter)
        add(sp)
        sp.set_defaults(handler=run)
    return p


def main(argv=None):
    """Run the fnn command line `argv` (default sys.argv[1:]); returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "train":          # its own parser: flags checked as scripts/train.py checks them
        from fnn.commands import train as train_command
        return train_command.main(argv[1:], prog=f"{PROG} train")
    args = _parser().parse_args(argv)
    return args.handler(args)


def console():
    """The console-script entry point: `fnn ...`."""
    sys.exit(cli.run(main, prog=PROG))
