"""Old name of fnn.viz.report, kept so existing code runs: `fnn.report.Snapshots` is `fnn.viz.Snapshots`.

New code imports fnn.viz (or fnn.viz.report).
"""
from fnn.viz.report import *  # noqa: F401,F403
from fnn.viz.report import __all__  # noqa: F401
