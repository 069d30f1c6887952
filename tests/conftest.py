"""Shared test setup: silent broadcasting is an error, float64 only where asked."""
import jax
import pytest

# (n,) against (n, 1) is the classic hand-written-gradient bug: make it raise.
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def x64():
    """Run the test body with float64 enabled (and only that test)."""
    with jax.enable_x64(True):
        yield
