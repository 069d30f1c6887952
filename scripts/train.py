"""Train a model with fnn's hand-written backprop: the same as `fnn train` (fnn/commands/train.py)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fnn import cli  # noqa: E402
from fnn.commands.train import *  # noqa: E402,F401,F403  (the script's names, for code that imports it)
from fnn.commands.train import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(cli.run(main))
