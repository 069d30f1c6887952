"""The old name of fnn.check (gradient checking), kept for existing imports; new code imports fnn.check."""
from fnn.check import FD_EPS
from fnn.check import TOL_AUTODIFF
from fnn.check import TOL_FD
from fnn.check import GradCheckResult
from fnn.check import LayerCheckResult
from fnn.check import LeafError
from fnn.check import check_gradients
from fnn.check import check_layer
from fnn.check import relative_error

__all__ = [
    "TOL_AUTODIFF",
    "TOL_FD",
    "FD_EPS",
    "relative_error",
    "LeafError",
    "GradCheckResult",
    "check_gradients",
    "LayerCheckResult",
    "check_layer",
]
