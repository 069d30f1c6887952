"""What a training run of the `fnn` command and scripts/train.py is made of besides fit().

    config   the run's configuration: flags checked, defaults, the saved copy, --resume conflicts
    history  OUT/history.jsonl, one JSON line per epoch, written and read back checked
"""
