"""Mixed precision: 16-bit forward and hand-written backward, float32 master params, loss scaling."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn import data, optim, precision
from fnn.train import StepConfig, fit, init_state, make_step

SCE = "softmax_cross_entropy"


@pytest.fixture(scope="module")
def mnist1d():
    ds, _ = data.standardize_dataset(data.mnist1d())
    return ds


def test_policies_by_name():
    bf16 = precision.get_policy("bf16")
    assert (bf16.param_dtype, bf16.compute_dtype, bf16.output_dtype) == (jnp.float32, jnp.bfloat16, jnp.float32)
    assert precision.get_policy("fp16").loss_scaling and not bf16.loss_scaling
    assert precision.get_policy(bf16) is bf16
    with pytest.raises(ValueError, match="unknown precision 'fp8'; expected one of fp32, bf16, fp16"):
        precision.get_policy("fp8")


@pytest.mark.parametrize("name, dtype, method", [("bf16", jnp.bfloat16, "manual"), ("fp16", jnp.float16, "autodiff")])
def test_matmuls_run_in_the_compute_dtype_and_grads_come_back_float32(name, dtype, method):
    model = fnn.mlp([8, 16, 3], "tanh")
    _, params = model.init(jax.random.key(0), (-1, 8))
    x, y = jax.random.normal(jax.random.key(1), (4, 8)), jnp.array([0, 1, 2, 0])
    fn = lambda p, x, y: fnn.forward_backward(model, SCE, p, x, y, method=method, precision=name)
    jaxpr = jax.make_jaxpr(fn)(params, x, y)
    dots = [e for e in jaxpr.eqns if e.primitive.name == "dot_general"]
    assert len(dots) >= 4                                     # forward and backward matmuls
    assert all(v.aval.dtype == dtype for e in dots for v in e.invars)
    value, out, grads, _ = jax.jit(fn)(params, x, y)
    assert value.dtype == out.dtype == jnp.float32
    assert all(g.dtype == jnp.float32 for g in jax.tree.leaves(grads))


@pytest.mark.parametrize("name, sizes, activation, loss", [
    ("fp32", [40, 100, 100, 10], "relu", SCE),
    ("bf16", [40, 100, 100, 10], "relu", SCE),
    ("fp16", [40, 100, 100, 10], "relu", SCE),
    ("bf16", [40, 32, 1], "tanh", "binary_cross_entropy"),
])
def test_gradient_check_within_the_tolerance_of_each_dtype(mnist1d, name, sizes, activation, loss):
    model = fnn.mlp(sizes, activation)
    _, params = model.init(jax.random.key(0), (-1, 40))
    x = jnp.asarray(mnist1d.x_train[:100])
    y = jnp.asarray(mnist1d.y_train[:100])
    if loss == "binary_cross_entropy":
        y = (y >= 5).astype(jnp.float32).reshape(-1, 1)
    check = fnn.check.precision_check(model, loss, params, x, y, precision=name)
    assert check["vs_autodiff"] <= precision.GRAD_TOLERANCE[name], check
    assert check["vs_float32"] <= precision.FLOAT32_TOLERANCE[name], check
    if name != "fp32":                                        # really computed in 16 bits
        assert check["vs_float32"] > 1e-4, check


def test_dynamic_loss_scale_skips_overflow_and_adapts():
    opt = precision.dynamic_loss_scale(optim.sgd(0.1), initial_scale=8.0, growth_interval=2)
    assert precision.dynamic_loss_scale(opt) is opt
    params = {"w": jnp.ones(3)}
    state = opt.init(params)
    g = {"w": jnp.array([1.0, 2.0, 3.0])}
    u, state = opt.update(g, state, params)
    np.testing.assert_allclose(u["w"], [-0.1, -0.2, -0.3], rtol=1e-6)
    assert (float(state.scale), int(state.good_steps)) == (8.0, 1)
    u, state = opt.update(g, state, params)
    assert (float(state.scale), int(state.good_steps)) == (16.0, 0)        # 2 finite steps: doubled
    count = int(state.inner[0].count)
    u, state = opt.update({"w": jnp.array([1.0, jnp.inf, 3.0])}, state, params)
    assert np.all(np.asarray(u["w"]) == 0)                                 # skipped
    assert (float(state.scale), int(state.good_steps)) == (8.0, 0)         # halved
    assert int(state.inner[0].count) == count                              # inner state unchanged
    with pytest.raises(ValueError, match="backoff_factor"):
        precision.dynamic_loss_scale(optim.sgd(0.1), backoff_factor=2.0)


def test_fp16_training_backs_off_an_overflowing_scale_and_learns():
    # Spirals, 2-64-64-2 ReLU, 600 Adam steps, from a loss scale of 2^40 that overflows float16.
    # One seed's accuracy depends on the CPU's rounding as on the seed (0.97-1.00 per seed here,
    # 0.945 was seen for one seed on another CPU), so the claims are about means over 6 seeds,
    # float16 against float32 on the same data, inits and batches: measured 0.984 and 0.986.
    model = fnn.mlp([2, 64, 64, 2], "relu")
    opt = optim.adam(1e-2)
    fp16 = precision.dynamic_loss_scale(opt, initial_scale=2.0 ** 40)
    accuracy = {"fp32": [], "fp16": []}
    for key in jax.random.split(jax.random.key(0), 6):
        data_key, init_key, train_key = jax.random.split(key, 3)
        ds = data.spirals(data_key, n=200)
        _, params = model.init(init_key, (-1, 2))
        for name, optimizer, config in (("fp32", opt, StepConfig()), ("fp16", fp16, StepConfig(precision="fp16"))):
            result = fit(model, SCE, optimizer, params, ds.x_train, ds.y_train, key=train_key, steps=600,
                         batch_size=50, config=config, progress=False)
            assert result.nonfinite_step is None and result.steps == 600
            if name == "fp16":          # |dL/dout| ~ 1e-2 · 2^40 overflows 65504: the scale backed off
                assert 1.0 <= float(result.state.opt_state.scale) <= 2.0 ** 23
            accuracy[name].append(fnn.evaluate(model, SCE, result.params, ds.x_train, ds.y_train)["accuracy"])
    mean = {name: float(np.mean(a)) for name, a in accuracy.items()}
    assert mean["fp16"] >= 0.96 and mean["fp16"] >= mean["fp32"] - 0.02, accuracy


def test_fp16_step_needs_the_loss_scaled_optimizer_state():
    model = fnn.mlp([2, 3, 2])
    _, params = model.init(jax.random.key(0), (-1, 2))
    step = make_step(model, SCE, optim.sgd(0.1), StepConfig(precision="fp16"))
    state = init_state(params, optim.sgd(0.1), jax.random.key(1))
    with pytest.raises(TypeError, match="dynamic_loss_scale"):
        step(state, jnp.ones((2, 2)), jnp.array([0, 1]))


def test_bf16_mnist1d_reaches_float32_accuracy_within_one_point(mnist1d):
    """40-100-100-10 ReLU, Adam 1e-2, batch 100, as the float32 test in test_train.py, 1500 steps.

    One run's test accuracy moves by about ±2 points with the seed alone: the
    bf16 − float32 difference of one seed has a standard deviation of 2.3–2.9
    points (measured over 16 seeds at 3000 steps, twice, and at 1500 steps, twice:
    the same spread, with means −0.2, +0.02, +0.15 and −0.19 points). So the claim
    is about the mean over the same 16 seeds (same inits, same batches) in both
    precisions, whose standard error is about 0.6 points; over 6 seeds (1.0
    points) a 1-point tolerance failed on a mere change of the shuffling stream.
    """
    model = fnn.mlp([40, 100, 100, 10], "relu")
    opt = optim.adam(1e-2)                                  # one object: one compiled program per precision
    accuracy = {None: [], "bf16": []}
    for key in jax.random.split(jax.random.key(0), 16):
        init_key, train_key = jax.random.split(key)
        _, params = model.init(init_key, (-1, 40))
        for name in accuracy:
            r = fit(model, SCE, opt, params, mnist1d.x_train, mnist1d.y_train, key=train_key, steps=1500,
                    batch_size=100, config=StepConfig(precision=name), progress=False)
            accuracy[name].append(fnn.evaluate(model, SCE, r.params, mnist1d.x_test, mnist1d.y_test)["accuracy"])
    mean = {name: float(np.mean(a)) for name, a in accuracy.items()}
    assert mean[None] >= 0.62 and mean["bf16"] >= 0.62, accuracy           # measured 0.643 and 0.645
    assert mean["bf16"] >= mean[None] - 0.01, accuracy
