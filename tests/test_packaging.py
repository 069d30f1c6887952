"""What the package ships and declares: the license, py.typed, the dev extra, and a clear error without it."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Run pytest as on a machine where the dev extra's test packages were never installed: their
# modules cannot be imported and their distributions (the pytest plugins' entry points) are not seen.
WITHOUT_DEV_EXTRA = r'''
import importlib.abc, importlib.metadata, sys
MODULES = {"xdist", "hypothesis", "_hypothesis_pytestplugin", "_hypothesis_globals"}
DISTRIBUTIONS = {"pytest-xdist", "hypothesis"}

class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in MODULES:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, NotInstalled())
_distributions = importlib.metadata.distributions
importlib.metadata.distributions = lambda **kw: (
    d for d in _distributions(**kw)
    if (d.metadata["Name"] or "").lower().replace("_", "-") not in DISTRIBUTIONS)
import pytest
sys.argv[0] = "pytest"
raise SystemExit(pytest.console_main())
'''


def _pyproject():
    tomllib = pytest.importorskip("tomllib")              # Python 3.11+
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)


def test_pytest_without_the_dev_extra_says_to_install_it(tmp_path):
    harness = tmp_path / "without_dev_extra.py"
    harness.write_text(WITHOUT_DEV_EXTRA)
    run = subprocess.run([sys.executable, str(harness), "-q", "-p", "no:cacheprovider",
                          "tests/test_packaging.py"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    out = run.stdout + run.stderr
    assert run.returncode != 0, out
    assert "unrecognized arguments" not in out
    assert "pytest-xdist and hypothesis are missing" in out, out
    assert 'python -m pip install -e ".[dev]"' in out


def test_license_is_mit_in_spdx_form_and_shipped():
    project = _pyproject()["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    text = open(os.path.join(ROOT, "LICENSE"), encoding="utf-8").read()
    assert text.startswith("MIT License\n") and "Copyright (c) 2026 the fnn authors" in text
    assert any(r.replace(" ", "") == "setuptools>=77" for r in _pyproject()["build-system"]["requires"])


def test_py_typed_is_package_data():
    assert os.path.isfile(os.path.join(ROOT, "fnn", "py.typed"))
    assert "py.typed" in _pyproject()["tool"]["setuptools"]["package-data"]["fnn"]


def test_dev_extra_has_the_test_packages_and_fnn_never_imports_them():
    dev = " ".join(_pyproject()["project"]["optional-dependencies"]["dev"])
    for package in ("pytest", "pytest-xdist", "hypothesis", "optax", "safetensors"):
        assert package in dev, package
    for folder, _, files in os.walk(os.path.join(ROOT, "fnn")):
        for name in files:
            if name.endswith(".py"):
                source = open(os.path.join(folder, name), encoding="utf-8").read()
                assert "import optax" not in source and "import safetensors" not in source, name
