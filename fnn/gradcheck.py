"""The old name of fnn.check (gradient checking), kept for existing imports; new code imports fnn.check."""
from fnn import check as _check
from fnn.check import FD_EPS  # noqa: F401
from fnn.check import TOL_AUTODIFF  # noqa: F401
from fnn.check import TOL_FD  # noqa: F401
from fnn.check import GradCheckResult  # noqa: F401
from fnn.check import LayerCheckResult  # noqa: F401
from fnn.check import LeafError  # noqa: F401
from fnn.check import check_gradients  # noqa: F401
from fnn.check import check_layer  # noqa: F401
from fnn.check import relative_error  # noqa: F401

__all__ = [name for name in _check.__all__ if name != "precision_check"]   # the old module's names
