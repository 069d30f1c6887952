"""Where runs go: a new timestamped folder under runs/ per run, and runs/latest pointing at the newest.

`fnn train` without --out never overwrites an earlier run: it makes
runs/YYYYMMDD-HHMMSS (with -2, -3, ... if that exists) and points the symbolic
link runs/latest at it, replaced atomically. --out DIR that already holds a run
is refused unless --overwrite is given.
"""
import datetime
import os

from fnn.cli import os_reason
from fnn.errors import InputError

__all__ = ["RUNS", "LATEST", "new_run_folder", "point_latest", "resolve", "check_not_a_run"]

RUNS = "runs"
LATEST = "latest"


def new_run_folder(root=RUNS, now=None):
    """A path root/YYYYMMDD-HHMMSS that does not exist yet (-2, -3, ... appended if needed)."""
    stamp = (now or datetime.datetime.now()).strftime("%Y%m%d-%H%M%S")
    path, n = os.path.join(root, stamp), 1
    while os.path.lexists(path):
        n += 1
        path = os.path.join(root, f"{stamp}-{n}")
    return path


def point_latest(folder):
    """Make FOLDER's parent/latest a symbolic link to FOLDER, atomically; leave alone a real folder or
    file named latest (a run from before the links), and a folder whose parent is not runs/."""
    parent, name = os.path.split(os.path.normpath(folder))
    if os.path.basename(os.path.abspath(parent or ".")) != RUNS or name == LATEST:
        return None
    link = os.path.join(parent, LATEST)
    if os.path.lexists(link) and not os.path.islink(link):
        return None
    temporary = os.path.join(parent, f".{LATEST}-{os.getpid()}")
    try:
        if os.path.lexists(temporary):
            os.unlink(temporary)
        os.symlink(name, temporary)
        os.replace(temporary, link)
    except OSError as e:
        raise InputError(f"cannot point {link!r} at {folder!r} ({os_reason(e)})") from None
    return link


def resolve(folder):
    """FOLDER with a runs/latest-style link resolved, so a run is locked and named by its real path."""
    return os.path.relpath(os.path.realpath(folder)) if os.path.islink(folder) else folder


def check_not_a_run(folder, checkpoint_name):
    """InputError if FOLDER already holds a run's checkpoint (so --out would replace it)."""
    if os.path.exists(os.path.join(folder, checkpoint_name)):
        raise InputError(f"--out {folder!r} already holds a run ({checkpoint_name}); give --overwrite to "
                         f"replace it, --resume {folder} to continue it, or leave --out out for a new folder")
