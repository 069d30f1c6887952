"""Old name of fnn.viz, kept so existing code runs: `fnn.plotting.plot_history` is `fnn.viz.plot_history`.

New code imports fnn.viz. The seeds' figures (seed_figures, save_seed_figures)
moved to examples/seed_figures.py and plot_computational_graph to
examples/graph_plot.py: course material, not library code.
"""
from fnn.viz import *  # noqa: F401,F403
from fnn.viz import __all__  # noqa: F401
