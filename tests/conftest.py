"""Shared test setup and helpers: silent broadcasting is an error, float64 only where asked.

Helpers used by several test files (import them with `from conftest import ...`):
random arrays and parameters, tree comparison in float64, dropout keys,
deliberately wrong backward passes that the checks must catch, and
`load_script` (a script of scripts/ as a module, to call its main() in-process).
"""
import importlib.util
import os
import tempfile

# Without the dev extra, pytest would stop at pyproject's addopts ("unrecognized arguments: -n")
# or at the first `import hypothesis`; pytest_addoption and pytest_configure below say what to
# install instead.
DEV_EXTRA = ("fnn's tests need the dev extra, and {missing} {verb} missing{why}: install it with\n"
             "    python -m pip install -e \".[dev]\"")
try:
    import hypothesis  # noqa: F401
    HYPOTHESIS_MISSING = False
except ImportError:
    HYPOTHESIS_MISSING = True

# One persistent XLA compilation cache for the run, set before jax is imported: the tests,
# the xdist workers and the scripts the tests start as subprocesses (which inherit the
# environment) compile the same programs many times over, and a script's run then takes about
# half as long. Entries are keyed on the program, the jax version and the compile options, so a
# cached program is the program XLA would build; a file that cannot be read is compiled anew.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), "fnn-tests-xla-cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
# fnn's own disk cache (MNIST-1D, fnn.data.disk_cache) likewise lives in one temporary folder for
# the run, never in the user's home; tests of the cache itself point FNN_CACHE_DIR at tmp_path.
os.environ.setdefault("FNN_CACHE_DIR", os.path.join(tempfile.gettempdir(), "fnn-tests-cache"))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

# (n,) against (n, 1) is the classic hand-written-gradient bug: make it raise.
jax.config.update("jax_numpy_rank_promotion", "raise")


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pytest_addoption(parser, pluginmanager):
    """Accept pytest-xdist's -n and --dist when its plugin is missing, so that pytest_configure can say so."""
    if not pluginmanager.hasplugin("xdist"):
        group = parser.getgroup("xdist", "distributed testing (pytest-xdist, not loaded)")
        group._addoption("-n", "--numprocesses", dest="numprocesses", default=None)   # as xdist spells it
        group.addoption("--dist", dest="dist", default="no")


def pytest_configure(config):
    """A usage error naming the missing dev packages, instead of pytest's "unrecognized arguments: -n"."""
    missing = []
    if not config.pluginmanager.hasplugin("xdist") and config.getoption("numprocesses") is not None:
        missing.append("pytest-xdist")
    if HYPOTHESIS_MISSING:
        missing.append("hypothesis")
    if missing:
        why = (" (pyproject's addopts pass pytest-xdist's -n auto --dist loadfile)"
               if "pytest-xdist" in missing else "")
        raise pytest.UsageError(DEV_EXTRA.format(missing=" and ".join(missing),
                                                 verb="are" if len(missing) > 1 else "is", why=why))


def load_script(name, module_name=None):
    """scripts/NAME.py as a fresh module (not registered in sys.modules), under module_name."""
    spec = importlib.util.spec_from_file_location(module_name or f"{name}_script",
                                                  os.path.join(ROOT, "scripts", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def x64():
    """Run the test body with float64 enabled (and only that test)."""
    with jax.enable_x64(True):
        yield


def dropout_key(seed):
    """A key for dropout inside compiled tests: "rbg" compiles far faster than threefry on CPU."""
    return jax.random.key(seed, impl="rbg")


def normal(seed, shape):
    """N(0, 1) values of `shape` from NumPy's generator (float64 under x64, else float32)."""
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape))


def init_shape(in_shape):
    """The shape passed to init: -1 for the batch dimension, if there is one."""
    return (-1,) + tuple(in_shape[1:]) if len(in_shape) > 1 else tuple(in_shape)


def random_params(model, in_shape, seed, dtype=jnp.float64):
    """Parameters shaped as model.init makes them for inputs of in_shape, filled with N(0, ½²) values.

    seed: an int, or a numpy Generator to draw from (and leave advanced).
    jax.eval_shape only traces init, which saves compiling a random generator per shape.
    """
    shapes = jax.eval_shape(lambda key: model.init(key, init_shape(in_shape), dtype)[1],
                            jax.random.key(0))                 # traced only: no numbers drawn
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda s: jnp.asarray(0.5 * rng.standard_normal(s.shape), s.dtype), shapes)


def assert_trees_close(a, b, rtol=1e-10, atol=1e-12):
    """Same tree structure, shapes and dtypes, and values within rtol/atol leaf by leaf."""
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert u.shape == v.shape and u.dtype == v.dtype
        np.testing.assert_allclose(u, v, rtol=rtol, atol=atol)


def wrong_backward(layer, *, dparams=lambda g: g, dx=lambda d: d):
    """The layer with a deliberately wrong backward: its (dparams, dx) passed through the given maps.

    e.g. wrong_backward(dense, dparams=lambda g: {**g, "W": 1.01 * g["W"]}) scales dW only.
    """
    def backward(params, saved, dy):
        g, d = layer.backward(params, saved, dy)
        return dparams(g), dx(d)
    return layer.replace(backward=backward)
