"""Optimizers and schedules: tree structure, convergence, equality with jax.example_libraries."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.example_libraries import optimizers as ref

import fnn
from fnn import optim
from fnn import schedules

NAMES = sorted(optim.OPTIMIZERS)


MODEL = fnn.mlp([3, 4, 2], activation="tanh")


@functools.cache
def _mlp_params_numpy():
    _, params = MODEL.init(jax.random.key(0), (-1, 3))
    return jax.tree.map(np.asarray, params)


def mlp_params(dtype=jnp.float32):
    """fnn params of the form ({"W": (3, 4), "b": (4,)}, (), {"W": (4, 2), "b": (2,)})."""
    return jax.tree.map(lambda w: jnp.asarray(w, dtype), _mlp_params_numpy())


def fake_grads(params, t):
    """A gradient that depends on the parameters and on the step: 0.5 w + noise_t."""
    leaves, tree = jax.tree.flatten(params)
    rng = np.random.default_rng(100 + t)
    noise = [rng.standard_normal(w.shape).astype(w.dtype) for w in leaves]
    return jax.tree.unflatten(tree, [0.5 * w + n for w, n in zip(leaves, noise)])


def leaves_close(a, b, rtol, atol):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


# ---------------------------------------------------------------- tree structure

@pytest.mark.parametrize("name", NAMES)
def test_tree_structure_shapes_and_dtypes_preserved(name):
    params = mlp_params()
    assert params[1] == ()                  # the Activation layer's empty params
    opt = optim.get_optimizer(name, learning_rate=0.1)
    state = opt.init(params)
    updates, new_state = opt.update(fake_grads(params, 0), state, params)
    new_params = optim.apply_updates(params, updates)
    for tree in (updates, new_params):
        assert jax.tree.structure(tree) == jax.tree.structure(params)
        for p, x in zip(jax.tree.leaves(params), jax.tree.leaves(tree)):
            assert x.shape == p.shape and x.dtype == p.dtype
    assert jax.tree.structure(new_state) == jax.tree.structure(state)
    for s, s2 in zip(jax.tree.leaves(state), jax.tree.leaves(new_state)):
        assert s.shape == s2.shape and s.dtype == s2.dtype
    counts = [s.count for s in new_state]
    assert all(c.dtype == jnp.int32 and int(c) == 1 for c in counts)
    assert not any(bool(jnp.all(a == b)) for a, b in
                   zip(jax.tree.leaves(params), jax.tree.leaves(new_params)))


def test_apply_updates_keeps_parameter_dtype():
    params = {"w": jnp.ones(3, jnp.bfloat16), "b": ()}
    new = optim.apply_updates(params, {"w": jnp.full(3, 0.5, jnp.float32), "b": ()})
    assert new["w"].dtype == jnp.bfloat16 and new["b"] == ()
    np.testing.assert_allclose(np.asarray(new["w"], np.float32), 1.5)


# ---------------------------------------------------------------- convergence

A = jnp.array([[5.5, 4.5], [4.5, 5.5]])        # eigenvalues 1 and 10, not axis-aligned
X_STAR = jnp.array([1.0, -2.0])
X0_QUAD = jnp.zeros(2)
X0_ROSEN = jnp.array([-1.2, 1.0])              # the classic start; minimum at (1, 1)


def quadratic_grad(x):
    """f(x) = ½ (x − x*)ᵀ A (x − x*);  ∇f = A (x − x*)."""
    return A @ (x - X_STAR)


def rosenbrock_grad(x):
    """f(x, y) = (1 − x)² + 100 (y − x²)²;

    ∇f = (−2(1 − x) − 400 x (y − x²),  200 (y − x²)).
    """
    r = x[1] - x[0] ** 2
    return jnp.stack([-2 * (1 - x[0]) - 400 * x[0] * r, 200 * r])


def test_rosenbrock_grad_matches_autodiff():
    f = lambda x: (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2
    for x in (X0_ROSEN, jnp.array([0.3, -0.7])):
        np.testing.assert_allclose(rosenbrock_grad(x), jax.grad(f)(x), rtol=1e-6)


def descend(opt, grad_fn, x0, steps, jit):
    """x after `steps` updates: a Python loop (eager) or one jitted fori_loop."""
    def body(i, carry):
        x, state = carry
        updates, state = opt.update(grad_fn(x), state, x)
        return optim.apply_updates(x, updates), state

    if jit:
        return jax.jit(lambda x: jax.lax.fori_loop(0, steps, body, (x, opt.init(x)))[0])(x0)
    carry = (x0, opt.init(x0))
    for i in range(steps):
        carry = body(i, carry)
    return carry[0]


# (optimizer, steps): ‖x − x*‖ < 1e-3 after `steps` updates, from x0 = 0.
QUADRATIC = {
    "sgd": (optim.sgd(0.15), 100),
    "momentum": (optim.momentum(0.05, beta=0.5), 100),
    "nesterov": (optim.nesterov(0.05, beta=0.5), 100),
    "adagrad": (optim.adagrad(1.0), 150),
    "rmsprop": (optim.rmsprop(schedules.exponential_decay(0.1, 0.5, 20)), 150),
    "adam": (optim.adam(schedules.cosine_decay(0.3, 200)), 200),
    "adamw": (optim.adamw(schedules.cosine_decay(0.3, 200), weight_decay=1e-5), 200),
}

# (optimizer, steps): ‖x − (1, 1)‖ < 1e-3 after `steps` updates, from (−1.2, 1).
ROSENBROCK = {
    "sgd": (optim.sgd(1.5e-3), 16000),
    "momentum": (optim.momentum(2e-3, beta=0.9), 1000),
    "nesterov": (optim.nesterov(1e-3, beta=0.9), 3000),
    "adagrad": (optim.adagrad(1.0), 16000),
    "rmsprop": (optim.rmsprop(schedules.exponential_decay(1e-2, 0.5, 1000)), 8000),
    "adam": (optim.adam(schedules.cosine_decay(0.05, 4000)), 4000),
    "adamw": (optim.adamw(schedules.cosine_decay(0.05, 4000), weight_decay=1e-5), 4000),
}


def test_convergence_tables_cover_every_optimizer():
    assert sorted(QUADRATIC) == sorted(ROSENBROCK) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_quadratic_converges_eager_and_jitted(name):
    opt, steps = QUADRATIC[name]
    x_jit = descend(opt, quadratic_grad, X0_QUAD, steps, jit=True)
    x_eager = descend(opt, quadratic_grad, X0_QUAD, steps, jit=False)
    assert float(jnp.linalg.norm(x_jit - X_STAR)) < 1e-3
    assert float(jnp.linalg.norm(x_eager - X_STAR)) < 1e-3
    np.testing.assert_allclose(x_eager, x_jit, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_rosenbrock_converges_jitted(name):
    opt, steps = ROSENBROCK[name]
    x = descend(opt, rosenbrock_grad, X0_ROSEN, steps, jit=True)
    assert float(jnp.linalg.norm(x - 1.0)) < 1e-3
    # and not already there at a tenth of the steps: the valley is a real test
    early = descend(opt, rosenbrock_grad, X0_ROSEN, steps // 10, jit=True)
    assert float(jnp.linalg.norm(early - 1.0)) > 1e-3


def test_rosenbrock_converges_eager():
    opt, steps = ROSENBROCK["momentum"]
    x = descend(opt, rosenbrock_grad, X0_ROSEN, steps, jit=False)
    assert float(jnp.linalg.norm(x - 1.0)) < 1e-3


# ---------------------------------------------------------------- equality with the reference

# ours, theirs: the same algorithm with the same hyper-parameters. The learning
# rate is a schedule so that the step indexing (ours: count 0 at the first
# update; theirs: i = 0) is checked too.
LR_OURS = schedules.exponential_decay(0.05, 0.5, 3)
LR_REF = ref.exponential_decay(0.05, 3, 0.5)
REFERENCE_PAIRS = {
    "sgd": (optim.sgd(LR_OURS), ref.sgd(LR_REF)),
    "momentum": (optim.momentum(LR_OURS, beta=0.8), ref.momentum(LR_REF, mass=0.8)),
    "nesterov": (optim.nesterov(LR_OURS, beta=0.8), ref.nesterov(LR_REF, mass=0.8)),
    "adagrad": (optim.adagrad(LR_OURS, initial_accumulator=0.0, eps=0.0, momentum=0.9),
                ref.adagrad(LR_REF, momentum=0.9)),
    "adagrad_no_momentum": (optim.adagrad(LR_OURS, initial_accumulator=0.0, eps=0.0),
                            ref.adagrad(LR_REF, momentum=0.0)),
    "rmsprop": (optim.rmsprop(LR_OURS, decay=0.8, eps=1e-6),
                ref.rmsprop(LR_REF, gamma=0.8, eps=1e-6)),
    "adam": (optim.adam(LR_OURS, b1=0.8, b2=0.95, eps=1e-6),
             ref.adam(LR_REF, b1=0.8, b2=0.95, eps=1e-6)),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(REFERENCE_PAIRS))
def test_equal_to_jax_example_libraries(name, dtype):
    ours, theirs = REFERENCE_PAIRS[name]
    with jax.enable_x64(dtype == "float64"):
        params = mlp_params(jnp.dtype(dtype))
        state, ref_state = ours.init(params), theirs.init_fn(params)
        for t in range(6):
            updates, state = ours.update(fake_grads(params, t), state, params)
            params = optim.apply_updates(params, updates)
            ref_state = theirs.update_fn(t, fake_grads(theirs.params_fn(ref_state), t), ref_state)
            tol = dict(rtol=1e-5, atol=1e-6) if dtype == "float32" else dict(rtol=1e-12, atol=1e-13)
            leaves_close(params, theirs.params_fn(ref_state), **tol)
            assert all(x.dtype == jnp.dtype(dtype) for x in jax.tree.leaves(params))


def test_clip_by_global_norm_matches_reference_and_caps_the_norm():
    clip = optim.clip_by_global_norm(1.0)
    params = mlp_params()
    big = fake_grads(params, 0)                                 # norm ≈ 6
    small = jax.tree.map(lambda g: g * 0.01, big)
    assert float(optim.global_norm(big)) > 2
    clipped, _ = clip.update(big, clip.init(params))
    np.testing.assert_allclose(optim.global_norm(clipped), 1.0, rtol=1e-6)
    leaves_close(clipped, ref.clip_grads(big, 1.0), rtol=1e-6, atol=1e-7)
    # direction kept: clipped = big · (1 / ‖big‖)
    leaves_close(clipped, jax.tree.map(lambda g: g / optim.global_norm(big), big), 1e-6, 1e-7)
    unchanged, _ = clip.update(small, clip.init(params))
    leaves_close(unchanged, small, 0, 0)


# ---------------------------------------------------------------- penalties and weight decay

def test_weight_decay_is_the_l2_penalty_for_sgd_but_not_for_adam():
    """SGD: decoupled decay = L2 penalty. Adam: L2's term is divided by sqrt(v̂), the decay is not."""
    lr, lam = 0.1, 0.5
    w = {"w": jnp.array([2.0, -0.5, 0.0]), "act": ()}
    zero = {"w": jnp.zeros(3), "act": ()}

    def step(opt, grads):
        updates, _ = opt.update(grads, opt.init(w), w)
        return optim.apply_updates(w, updates)["w"]

    sgd_l2 = step(optim.chain(optim.add_l2_penalty(lam), optim.sgd(lr)), zero)
    sgd_decay = step(optim.chain(optim.add_decayed_weights(lam), optim.sgd(lr)), zero)
    np.testing.assert_allclose(sgd_l2, sgd_decay, rtol=0)
    np.testing.assert_allclose(sgd_l2, w["w"] * (1 - lr * lam), rtol=1e-6)

    # AdamW with zero loss gradient: m = v = 0, only the decay moves w, by the factor (1 − α λ).
    adamw = step(optim.adamw(lr, weight_decay=lam), zero)
    np.testing.assert_allclose(adamw, w["w"] * (1 - lr * lam), rtol=1e-6)
    # Adam + L2: the gradient λ w is normalised away, every nonzero weight moves by α sign(w).
    adam_l2 = step(optim.chain(optim.add_l2_penalty(lam), optim.adam(lr)), zero)
    np.testing.assert_allclose(adam_l2, w["w"] - lr * jnp.sign(w["w"]), rtol=1e-5, atol=1e-6)
    assert not np.allclose(adamw, adam_l2)


def test_l1_penalty_adds_lambda_sign_w():
    w = {"w": jnp.array([2.0, -0.5, 0.0])}
    g = {"w": jnp.array([1.0, 1.0, 1.0])}
    l1 = optim.add_l1_penalty(0.25)
    out, state = l1.update(g, l1.init(w), w)
    np.testing.assert_allclose(out["w"], [1.25, 0.75, 1.0])
    assert int(state.count) == 1


def test_transforms_that_read_params_need_them():
    w = {"w": jnp.ones(2)}
    for t in (optim.add_decayed_weights(0.1), optim.add_l2_penalty(0.1), optim.add_l1_penalty(0.1)):
        with pytest.raises(ValueError, match="update\\(grads, state, params\\)"):
            t.update(w, t.init(w))


# ---------------------------------------------------------------- schedules

def test_schedule_values():
    np.testing.assert_allclose(schedules.constant(0.3)(7), 0.3)
    step = schedules.step_decay(0.1, 0.5, 10)
    np.testing.assert_allclose([step(t) for t in (0, 9, 10, 25)], [0.1, 0.1, 0.05, 0.025], rtol=1e-6)
    expo = schedules.exponential_decay(1.0, 0.5, 4)
    np.testing.assert_allclose([expo(t) for t in (0, 2, 4, 8)], [1, 2 ** -0.5, 0.5, 0.25], rtol=1e-6)
    cos = schedules.cosine_decay(1.0, 10, alpha=0.1)
    np.testing.assert_allclose([cos(t) for t in (0, 5, 10, 50)], [1.0, 0.55, 0.1, 0.1], rtol=1e-6)
    warm = schedules.linear_warmup(0.4, 4, then=schedules.cosine_decay(0.4, 10))
    np.testing.assert_allclose([warm(t) for t in (0, 1, 3, 4, 9, 14, 20)],
                               [0, 0.1, 0.3, 0.4, 0.2, 0, 0], rtol=1e-6, atol=1e-7)
    flat = schedules.linear_warmup(0.4, 4, start=0.2)
    np.testing.assert_allclose([flat(t) for t in (0, 2, 4, 100)], [0.2, 0.3, 0.4, 0.4], rtol=1e-6)
    joined = schedules.join([schedules.constant(1.0), schedules.step_decay(0.5, 0.1, 2)], [3])
    np.testing.assert_allclose([joined(t) for t in (0, 2, 3, 4, 5)], [1, 1, 0.5, 0.5, 0.05], rtol=1e-6)


def test_schedules_work_traced_and_match_reference_exponential_decay():
    counts = jnp.arange(12, dtype=jnp.int32)
    ours = schedules.exponential_decay(0.05, 0.5, 3)
    np.testing.assert_allclose(jax.jit(jax.vmap(ours))(counts),
                               [LR_REF(int(t)) for t in counts], rtol=1e-6)
    warm = schedules.linear_warmup(1.0, 5, then=schedules.cosine_decay(1.0, 6))
    np.testing.assert_allclose(jax.jit(jax.vmap(warm))(counts), [warm(int(t)) for t in counts],
                               rtol=1e-6, atol=1e-7)


def test_current_lr_is_readable_from_the_state_and_equals_the_schedule():
    schedule = schedules.linear_warmup(0.1, 3, then=schedules.exponential_decay(0.1, 0.5, 2))
    opt = optim.chain(optim.clip_by_global_norm(1.0), optim.adam(schedule))
    params = mlp_params()
    state = opt.init(params)
    assert float(optim.current_lr(state)) == float(schedule(0))
    update = jax.jit(opt.update)
    for k in range(1, 8):
        _, state = update(fake_grads(params, k), state, params)
        # after k updates the state holds the rate of update k, schedule(k − 1)
        np.testing.assert_allclose(optim.current_lr(state), schedule(k - 1), rtol=1e-6)
    assert float(optim.current_lr(state)) < 0.1
    with pytest.raises(ValueError, match="no learning rate"):
        optim.current_lr(optim.clip_by_global_norm(1.0).init(params))


# ---------------------------------------------------------------- jit and vmap

@pytest.mark.parametrize("name", NAMES)
def test_jitted_update_does_not_recompile(name):
    traces = []
    opt = optim.get_optimizer(name, learning_rate=schedules.cosine_decay(0.1, 10))

    @jax.jit
    def train_step(params, state, t):
        traces.append(1)                      # runs only while tracing
        grads = jax.tree.map(lambda w: w * t, params)
        updates, state = opt.update(grads, state, params)
        return optim.apply_updates(params, updates), state

    params = mlp_params()
    state = opt.init(params)
    for t in range(3):
        params, state = train_step(params, state, jnp.float32(t + 1))
    assert len(traces) == 1
    assert int(state[0].count) == 3


def test_vmap_over_many_models_matches_one_at_a_time():
    stacked = jax.tree.map(lambda w: jnp.stack([w, 2 * w - 0.5, -w]), mlp_params())  # 3 models
    opt = optim.adamw(schedules.linear_warmup(0.1, 2), weight_decay=0.01)

    @jax.jit
    def steps(params, state):
        for t in range(3):
            grads = jax.tree.map(lambda w: jnp.sin(w) + 0.1 * t, params)
            updates, state = opt.update(grads, state, params)
            params = optim.apply_updates(params, updates)
        return params, state

    states = jax.vmap(opt.init)(stacked)
    batched, batched_state = jax.vmap(steps)(stacked, states)
    assert optim.current_lr(batched_state).shape == (3,)
    for i in range(3):
        one = jax.tree.map(lambda x: x[i], stacked)
        p, s = steps(one, opt.init(one))
        leaves_close(jax.tree.map(lambda x: x[i], batched), p, rtol=1e-6, atol=1e-7)
        assert int(s[0].count) == int(batched_state[0].count[i]) == 3


def test_vmap_over_learning_rates():
    def first_step(lr, w):
        opt = optim.sgd(lr)
        updates, state = opt.update(w, opt.init(w), w)
        return updates, optim.current_lr(state)

    updates, lrs = jax.vmap(first_step, (0, None))(jnp.array([0.1, 0.2]), jnp.ones(2))
    np.testing.assert_allclose(updates, [[-0.1, -0.1], [-0.2, -0.2]], rtol=1e-6)
    np.testing.assert_allclose(lrs, [0.1, 0.2], rtol=1e-6)


def test_step_count_saturates_instead_of_wrapping():
    opt = optim.sgd(0.1)
    state = (optim.ScaleByLearningRateState(jnp.array(2 ** 31 - 1, jnp.int32), jnp.float32(0.1)),)
    _, state = opt.update(jnp.ones(2), state)
    assert int(state[0].count) == 2 ** 31 - 1


# ---------------------------------------------------------------- bad input

def test_get_optimizer_and_registry():
    assert set(NAMES) == {"sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw"}
    opt = optim.adam(0.1)
    assert optim.get_optimizer(opt) is opt
    with pytest.raises(ValueError, match="unknown optimizer 'adamax'.*adagrad, adam, adamw"):
        optim.get_optimizer("adamax", learning_rate=0.1)
    with pytest.raises(TypeError):
        optim.get_optimizer(opt, learning_rate=0.1)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("lr", [0.0, -0.01])
def test_non_positive_learning_rate_raises(name, lr):
    with pytest.raises(ValueError, match=f"learning_rate must be > 0.*got {lr}"):
        optim.get_optimizer(name, learning_rate=lr)


def test_bad_hyper_parameters_raise():
    with pytest.raises(TypeError, match="learning_rate"):
        optim.sgd("0.1")
    with pytest.raises(ValueError, match="beta must be in \\[0, 1\\), got 1.0"):
        optim.momentum(0.1, beta=1.0)
    with pytest.raises(ValueError, match="b2"):
        optim.adam(0.1, b2=-0.5)
    with pytest.raises(ValueError, match="max_norm must be > 0, got 0"):
        optim.clip_by_global_norm(0)
    with pytest.raises(ValueError, match="coefficient must be >= 0, got -1"):
        optim.add_l2_penalty(-1)
    with pytest.raises(TypeError, match="argument 1"):
        optim.chain(optim.sgd(0.1), "adam")
    for bad in (lambda: schedules.constant(0), lambda: schedules.step_decay(0.1, 2.0, 10),
                lambda: schedules.exponential_decay(0.1, 100, 0.5),
                lambda: schedules.cosine_decay(0.1, 0), lambda: schedules.linear_warmup(0.1, 2.5),
                lambda: schedules.join([schedules.constant(1.0)] * 2, [5, 6])):
        with pytest.raises(ValueError):
            bad()


def test_mismatched_gradient_tree_raises():
    opt = optim.adam(0.1)
    params = mlp_params()
    state = opt.init(params)
    with pytest.raises(ValueError, match="gradient tree does not match"):
        opt.update(params[:1], state, params[:1])
    with pytest.raises(ValueError, match="expected a tuple of 2 states"):
        opt.update(params, state[0], params)
