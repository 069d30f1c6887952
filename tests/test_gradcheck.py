"""Gradient checking (fnn.check): agreement on correct models, detection of wrong backwards,
the key conventions, the grid (examples/gradcheck_grid.py) and scripts/gradcheck.py."""
import json
import math
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from conftest import load_script, wrong_backward
from examples import gradcheck_grid as grid
from fnn import check

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "gradcheck.py")


def problem(sizes, batch, seed=0):
    """A float32 tanh mlp with its params, inputs and integer labels."""
    k_init, k_x, k_y = jax.random.split(jax.random.key(seed), 3)
    model = fnn.mlp(sizes, activation="tanh")
    _, params = model.init(k_init, (-1, sizes[0]))
    x = jax.random.normal(k_x, (batch, sizes[0]))
    y = jax.random.randint(k_y, (batch,), 0, sizes[-1])
    return model, params, x, y


def with_scaled_dW(layer, factor):
    """A Dense layer whose backward returns factor · dW (a wrong gradient)."""
    return wrong_backward(layer, dparams=lambda g: {**g, "W": factor * g["W"]})


# tanh with a term missing from its derivative: 1 − y instead of 1 − y².
BAD_TANH = fnn.ActivationFn("bad_tanh", jnp.tanh, lambda z, y, dy: dy * (1 - y))


@jax.custom_jvp
def _tanh_with_twice_its_jvp(z):
    return jnp.tanh(z)


@_tanh_with_twice_its_jvp.defjvp
def _twice_jvp(primals, tangents):
    (z,), (t,) = primals, tangents
    y = jnp.tanh(z)
    return y, 2 * (1 - y * y) * t


# tanh whose backward and whose jax.grad rule are wrong in the same way: only
# finite differences can tell.
TWICE_TANH = fnn.ActivationFn("twice_tanh", _tanh_with_twice_its_jvp,
                              lambda z, y, dy: 2 * dy * (1 - y * y))


@pytest.fixture(scope="module")
def script_quick(tmp_path_factory):
    """`scripts/gradcheck.py --quick --json PATH`, started first so it runs beside the tests before it."""
    path = tmp_path_factory.mktemp("gradcheck") / "quick.json"
    proc = subprocess.Popen([sys.executable, SCRIPT, "--quick", "--json", str(path)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    yield proc, path
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


@pytest.fixture(scope="module")
def mlp_result(script_quick):
    """A 3-4-2 tanh mlp at batch 1 (the grid covers batches 3 and 8); the script starts first."""
    del script_quick
    model, params, x, y = problem([3, 4, 2], batch=1)
    return check.check_gradients(model, "softmax_cross_entropy", params, x, y)


@pytest.fixture(scope="module")
def quick_grid():
    """One Grid for the in-process grid tests: their cases share its compiled layers."""
    return grid.Grid()


@pytest.fixture(scope="module")
def quick_report(script_quick):
    """The script's JSON report of the quick grid (the grid runs once, in the script's process)."""
    proc, path = script_quick
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    return stdout, json.loads(path.read_text())


def test_tolerances_match_the_spec():
    assert check.TOL_AUTODIFF == 1e-10
    assert check.TOL_FD == 1e-6


def test_old_name_fnn_gradcheck_is_fnn_check():
    # The old module's names, each the same object as fnn.check's (which has precision_check too).
    assert set(fnn.gradcheck.__all__) == set(check.__all__) - {"precision_check"}
    assert all(getattr(fnn.gradcheck, name) is getattr(check, name) for name in fnn.gradcheck.__all__)
    assert (fnn.check_gradients, fnn.check_layer, fnn.relative_error) == (
        check.check_gradients, check.check_layer, check.relative_error)


def test_relative_error_definition():
    assert check.relative_error([1.0, 2.0], [1.0, 2.5]) == pytest.approx(0.5 / 2.5)
    assert check.relative_error(np.zeros(3), np.zeros(3)) == 0.0
    assert check.relative_error([0.0, 0.0], [0.0, 1e-300]) == 1.0
    assert check.relative_error([1.0, np.nan], [1.0, 1.0]) == math.inf
    with pytest.raises(ValueError, match=r"\(2,\) vs \(3,\)"):
        check.relative_error(np.ones(2), np.ones(3))


def test_correct_mlp_agrees_per_leaf(mlp_result):
    r = mlp_result                     # float32 params and inputs, checked in float64
    assert [l.path for l in r.leaves] == ["[0]['W']", "[0]['b']", "[2]['W']", "[2]['b']"]
    assert [l.shape for l in r.leaves] == [(3, 4), (4,), (4, 2), (2,)]
    assert [l.fd_count for l in r.leaves] == [12, 4, 8, 2]
    assert r.max_manual_vs_autodiff <= 1e-10
    assert r.max_manual_vs_fd <= 1e-6
    assert r.max_autodiff_vs_fd <= 1e-6
    assert r.max_manual_vs_fd == max(l.manual_vs_fd for l in r.leaves)
    assert r.ok() and r.ok(1e-10, 1e-6)
    assert math.isfinite(r.loss) and r.loss > 0


def test_float64_stays_inside_the_check(mlp_result):
    assert mlp_result.leaves                     # a check has run in this process
    assert jnp.zeros(1).dtype == jnp.float32


def test_batch_one_other_data():
    model, params, x, y = problem([3, 4, 2], batch=1, seed=1)
    r = check.check_gradients(model, "softmax_cross_entropy", params, x, y)
    assert x.shape == (1, 3)
    assert r.max_manual_vs_autodiff <= 1e-10 and r.max_manual_vs_fd <= 1e-6
    assert r.ok()


def test_detects_scaled_dW():
    model, params, x, y = problem([3, 4, 2], batch=1)
    wrong = fnn.serial(model.layers[0], model.layers[1], with_scaled_dW(model.layers[2], 1.01))
    r = check.check_gradients(wrong, "softmax_cross_entropy", params, x, y)
    assert not r.ok()
    errors = {l.path: l for l in r.leaves}
    assert errors["[2]['W']"].manual_vs_autodiff == pytest.approx(0.01 / 1.01, rel=1e-6)
    assert errors["[2]['W']"].manual_vs_fd > 1e-3
    assert errors["[2]['W']"].autodiff_vs_fd <= 1e-6          # the references still agree
    assert errors["[0]['W']"].manual_vs_autodiff <= 1e-10     # dW scaling does not reach dx


def test_detects_missing_derivative_term():
    model, params, x, y = problem([3, 4, 2], batch=1)
    wrong = fnn.serial(model.layers[0], fnn.Activation(BAD_TANH), model.layers[2])
    r = check.check_gradients(wrong, "softmax_cross_entropy", params, x, y)
    assert not r.ok()
    bad = {l.path for l in r.leaves if l.manual_vs_autodiff > 1e-10 or l.manual_vs_fd > 1e-6}
    assert bad == {"[0]['W']", "[0]['b']"}                    # only the layers before it


def test_finite_differences_catch_what_jax_grad_shares():
    model, params, x, y = problem([3, 4, 2], batch=1)
    wrong = fnn.serial(model.layers[0], fnn.Activation(TWICE_TANH), model.layers[2])
    r = check.check_gradients(wrong, "softmax_cross_entropy", params, x, y)
    assert r.max_manual_vs_autodiff <= 1e-10
    assert r.max_manual_vs_fd > 0.1 and r.max_autodiff_vs_fd > 0.1
    assert not r.ok()


def test_samples_fd_elements_per_leaf():
    model, params, x, y = problem([3, 4, 2], batch=1)
    r = check.check_gradients(model, "softmax_cross_entropy", params, x, y,
                                  max_fd_per_leaf=5, fd_key=jax.random.key(3))
    assert [l.fd_count for l in r.leaves] == [5, 4, 5, 2]
    assert r.ok()
    full = check.check_gradients(model, "softmax_cross_entropy", params, x, y)
    assert r.leaves[1].manual_vs_fd == full.leaves[1].manual_vs_fd    # b: all 4 elements either way


def test_bad_arguments_raise():
    model, params, x, y = problem([3, 4, 2], batch=1)
    with pytest.raises(ValueError, match="eps must be a finite number"):
        check.check_gradients(model, "mse", params, x, y, eps=0.0)
    with pytest.raises(ValueError, match="max_fd_per_leaf must be a positive integer"):
        check.check_gradients(model, "mse", params, x, y, max_fd_per_leaf=0, fd_key=jax.random.key(0))
    with pytest.raises(TypeError, match="fnn.Layer"):
        check.check_gradients(lambda p, x: x, "mse", params, x, y)


def test_missing_keys_raise_type_errors_showing_the_call():
    model, params, x, y = problem([3, 4, 2], batch=1)
    dropout = fnn.mlp([3, 4, 2], "tanh", dropout=0.5)
    dropout_params = (params[0], (), (), params[2])
    with pytest.raises(TypeError, match=r"Dropout\(0.5\).*key=jax.random.key\(0\)"):
        check.check_gradients(dropout, "softmax_cross_entropy", dropout_params, x, y)
    with pytest.raises(TypeError, match=r"max_fd_per_leaf=5, fd_key=jax.random.key\(0\)"):
        check.check_gradients(model, "softmax_cross_entropy", params, x, y, max_fd_per_leaf=5)
    with pytest.raises(TypeError, match=r"fd_key must be a PRNG key such as jax.random.key\(0\), got 3"):
        check.check_gradients(model, "softmax_cross_entropy", params, x, y, max_fd_per_leaf=5, fd_key=3)
    with pytest.raises(TypeError, match="key"):
        check.check_layer(fnn.Dense(4), params[0], x)                       # key is required
    with pytest.raises(TypeError, match=r"key must be a PRNG key such as jax.random.key\(0\), got None"):
        check.check_layer(fnn.Dense(4), params[0], x, key=None)
    with pytest.raises(TypeError, match="layer must be an fnn.Layer"):
        check.check_layer(lambda p, x: x, params[0], x, key=jax.random.key(0))
    case = grid.default_cases(quick=True)[0]
    for call in (lambda: grid.run_case(grid.Grid(), case), lambda: grid.run_cases(grid.Grid(), [case])):
        with pytest.raises(TypeError, match="key"):
            call()
    with pytest.raises(TypeError, match="key must be a PRNG key"):
        grid.make_problem(grid.Grid(), case, key=0)


def test_check_layer_dense_and_dropout():
    dense = fnn.Dense(4)
    _, params = dense.init(jax.random.key(0), (-1, 3))
    x = jax.random.normal(jax.random.key(1), (1, 3))              # batch 1
    r = check.check_layer(dense, params, x, key=jax.random.key(4))
    assert [path for path, _ in r.leaves] == ["['W']", "['b']"]
    assert r.max_error <= 1e-10 and r.ok()
    dropout = fnn.Dropout(0.5)
    r = check.check_layer(dropout, (), jnp.ones((1, 4)), key=jax.random.key(2))
    assert r.leaves == () and r.dx <= 1e-10


def test_check_layer_detects_wrong_backward():
    dense = with_scaled_dW(fnn.Dense(4), 1.01)
    _, params = dense.init(jax.random.key(0), (-1, 3))
    r = check.check_layer(dense, params, jax.random.normal(jax.random.key(1), (1, 3)), key=jax.random.key(4))
    assert dict(r.leaves)["['W']"] == pytest.approx(0.01 / 1.01, rel=1e-6)
    assert r.dx <= 1e-10 and not r.ok()
    r = check.check_layer(fnn.Activation(BAD_TANH), (), jnp.linspace(-2.0, 2.0, 4).reshape(1, 4),
                          key=jax.random.key(4))
    assert r.dx > 0.1 and not r.ok()


def test_default_grid_covers_every_combination():
    cases = grid.default_cases()
    activations = {c.activation for c in cases} - {"-"}
    assert activations == {"identity", "sigmoid", "tanh", "relu", "leaky_relu", "gelu",
                           "gelu_tanh", "swish", "softplus", "softmax"}   # linear, silu: aliases
    combos = {(c.layers, c.activation, c.loss_label) for c in cases}
    assert len(combos) == 7 + 4 * 10 * 7 + 6 * 3 * 7   # MLP variants; conv, pool, norm, graph, recurrent, attention
    assert {c.activation for c in cases if c.layers in grid.ARCHITECTURES} == {"tanh", "relu", "gelu"}
    assert {c.batch for c in cases} == {1, 3, 8}
    assert len(cases) == 3 * len(combos)


def test_quick_grid_passes_and_covers_every_layer_activation_loss(quick_report):
    _, report = quick_report
    cases = [grid.Case(c["layers"], c["activation"], c["loss"], c["targets"], c["batch"], tuple(c["sizes"]))
             for c in report["cases"]]
    assert cases == grid.default_cases(quick=True)
    full = grid.default_cases()
    assert {c.activation for c in cases} == {c.activation for c in full}
    assert {c.loss_label for c in cases} == {c.loss_label for c in full}
    assert {c.layers for c in cases} == set(grid.LAYER_VARIANTS)
    assert 1 in {c.batch for c in cases}
    norm = [grid.build_model(grid.Grid(), c) for c in cases if c.layers == "norm"]
    assert any("BatchNorm" in m.name for m in norm)               # the quick norm case has BatchNorm
    failed = [c for c in report["cases"] if not c["pass"]]
    assert failed == [] and report["failed"] == 0
    assert max(c["max_rel_err_autodiff"] for c in report["cases"]) <= 1e-10
    assert max(c["max_rel_err_fd"] for c in report["cases"]) <= 1e-6


def test_grid_problems_are_reproducible(quick_grid):
    case = grid.default_cases(quick=True)[0]
    a = grid.make_problem(quick_grid, case, key=jax.random.key(5))
    b = grid.make_problem(grid.Grid(), case, key=jax.random.key(5))
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.params[0]["W"], b.params[0]["W"])
    c = grid.make_problem(quick_grid, case, key=jax.random.key(6))
    assert not np.array_equal(a.x, c.x)


def test_grid_cases_share_the_grids_compiled_layers(quick_grid):
    cases = [grid.Case("dense+act", "tanh", "mse", "float", 3, (2, 4, 1)),
             grid.Case("dropout", "tanh", "l1", "float", 1, (3, 4, 2))]
    a, b = (grid.build_model(quick_grid, c) for c in cases)
    assert [l.name for l in a.layers] == ["Dense(4)", "tanh", "Dense(1)"]          # mlp's structure
    assert [l.name for l in b.layers] == ["Dense(4)", "tanh", "Dropout(0.25)", "Dense(2)"]
    assert a.layers[0] is b.layers[0] and a.layers[1] is b.layers[1]               # one Dense(4), one tanh
    assert quick_grid.loss("mse") is quick_grid.loss("mse")
    assert b.stochastic and not a.stochastic
    other = grid.build_model(grid.Grid(), cases[0])
    assert other.layers[0] is not a.layers[0]                                      # a new Grid, new code


def run_script(*args):
    return subprocess.run([sys.executable, SCRIPT, *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def test_script_quick_json(quick_report):
    stdout, report = quick_report
    assert "device:" in stdout and "PASS" in stdout and "FAIL" not in stdout
    assert report["tolerances"] == {"autodiff": 1e-10, "fd": 1e-6}
    assert report["failed"] == 0
    cases = report["cases"]
    assert len(cases) == len(grid.default_cases(quick=True)) == report["passed"]
    assert all(c["pass"] for c in cases)
    assert all(c["max_rel_err_autodiff"] is not None and c["max_rel_err_fd"] is not None for c in cases)


@pytest.fixture(scope="module")
def script():
    """scripts/gradcheck.py as a module, to call main() in this process."""
    return load_script("gradcheck", "gradcheck_script")


def test_script_bad_argument_exits_2_without_traceback():
    proc = run_script("--eps", "0")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "gradcheck.py: error: argument --eps: expected a positive finite number, got '0'"]


@pytest.mark.parametrize("args", [["--bogus"], ["--eps", "nan"], ["--seed", "x"], ["--seed", "-1"],
                                  ["--json", "/no/such/folder/x.json"]])
def test_script_bad_arguments_exit_2(script, capsys, args):
    with pytest.raises(SystemExit) as exit_info:
        script.main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("gradcheck.py: error:")


def test_script_exits_1_on_a_failure(script, tmp_path, monkeypatch, capsys):
    case = grid.Case("dense", "-", "mse", "float", 1, (2, 3, 2))
    result = check.GradCheckResult(1.0, (), 1e-3, math.inf, 0.0, 1e-5)

    def run_cases(grid_, cases, *, key, callback, **kwargs):
        assert isinstance(grid_, grid.Grid)
        fnn.validate.check_key("key", key)                      # the script passes a real key
        results = [grid.CaseResult(case, result, result.ok())]
        for r in results:
            callback(r)
        return results
    monkeypatch.setattr(script.gradcheck_grid, "default_cases", lambda quick: [case])
    monkeypatch.setattr(script.gradcheck_grid, "run_cases", run_cases)
    path = tmp_path / "fail.json"
    assert script.main(["--json", str(path)]) == 1
    out = capsys.readouterr()
    assert "FAIL" in out.out and "0/1 cases pass" in out.out
    assert out.err.strip() == "FAIL dense - mse B=1 2-3-2"
    record = json.loads(path.read_text())["cases"][0]
    assert record["pass"] is False and record["max_rel_err_fd"] is None   # inf → null
