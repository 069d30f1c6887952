"""What fnn's scripts share: a one-line error for a user's mistake, the device line."""
import argparse
import sys

import jax

from fnn.errors import FnnError
from fnn.validate import check_number, check_positive_int

__all__ = ["ArgumentParser", "USER_ERRORS", "run", "device_description", "positive_int", "positive_float"]

# A user's mistake, which fnn raised on purpose (fnn.errors): one line on stderr, exit code 2,
# no traceback. Any other exception is a bug and keeps its traceback.
USER_ERRORS = (FnnError,)


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line (exit 2) instead of usage + error."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def run(main, argv=None):
    """Call main(argv); a user error becomes one stderr line and exit code 2."""
    prog = (sys.argv[0].rsplit("/", 1)[-1]) if sys.argv else "fnn"
    try:
        return main(argv)
    except USER_ERRORS as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def device_description():
    """e.g. 'cpu (TFRT_CPU_0)' or 'gpu (NVIDIA H100 80GB HBM3) x1'."""
    devices = jax.devices()
    d = devices[0]
    return f"{d.platform} ({d.device_kind}) x{len(devices)}"


def _argument_type(parse, check, expected):
    """An argparse type: the text parsed, then checked by an fnn.validate function."""
    def convert(text):
        try:
            return check("value", parse(text))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    convert.__doc__ = f"argparse type: {expected}."
    return convert


positive_int = _argument_type(int, check_positive_int, "a positive integer")
positive_float = _argument_type(float, lambda name, v: check_number(name, v, 0, low_open=True),
                                "a positive finite number")
