"""The errors fnn raises on purpose, for a caller's input.

Each is also the built-in a caller would expect (InputError is a
ValueError, InputTypeError a TypeError), so ``except ValueError`` keeps
working. What they add is the FnnError base: a script shortens an FnnError
to one line on stderr and exit code 2, because fnn raised it deliberately
with a message that names the value and what was expected. Any other
exception is a bug (in fnn or the caller's code) and keeps its traceback.
"""

__all__ = ["FnnError", "InputError", "InputTypeError"]


class FnnError(Exception):
    """Base of every error fnn raises deliberately for a caller's input."""


class InputError(FnnError, ValueError):
    """A value fnn cannot use: out of range, the wrong shape, not finite, unknown name."""


class InputTypeError(FnnError, TypeError):
    """A value of the wrong type: an int where a PRNG key is needed, a str where a number is."""
