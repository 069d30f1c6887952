"""The JAX-ecosystem peers of benchmarks.peers: the same MNIST-1D MLP, each written the way its documentation writes it.

    optax-step      plain JAX + optax: a jax.jit train step called once per minibatch (the loop most
                    JAX users write: host-side shuffling, the batch sliced in NumPy and sent each step)
    optax-scan      JAX + optax with each epoch inside one jitted lax.scan (the expert loop)
    equinox         eqx.nn.MLP, eqx.filter_value_and_grad, eqx.filter_jit per step, optax
    flax-nnx        Flax NNX: an nnx.Module of nnx.Linear, nnx.Optimizer, nnx.jit per step
    flax-nnx-split  the same model under plain jax.jit through nnx.split / nnx.merge, the faster form
                    Flax's performance guide documents for small steps

Each is benchmark-only (never needed by fnn, its tests or CI); a missing
package is a PeerUnavailable naming what to install. Each peer is a Trainer:
`prepare(...)` builds the model and compiles nothing; `trainer.train()` runs
every step and returns the trained model; `trainer.accuracy(model)` scores it
on the test split. benchmarks.peers times the first train() (compilation
included) and then the rounds.
"""
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["JAX_PEERS", "Trainer", "prepare"]

JAX_PEERS = ("optax-step", "optax-scan", "equinox", "flax-nnx", "flax-nnx-split")
EXTRA = "pip install 'fnn[jax-peers]'  (optax, equinox, flax)"


class Trainer(NamedTuple):
    """A prepared peer: train() runs the whole training; accuracy(model) is its test accuracy."""
    name: str
    description: str
    train: Callable[[], Any]
    accuracy: Callable[[Any], float]
    steps: int


def _import(name, unavailable):
    try:
        return __import__(name)
    except ImportError:
        raise unavailable(f"{name} is not installed: {EXTRA}") from None


def _host_batches(ds, steps, batch_size, seed):
    """`steps` minibatches (x, y) sliced in NumPy, one permutation per epoch, as a host-side loop draws them."""
    x, y = np.asarray(ds.x_train), np.asarray(ds.y_train)
    rng, per_epoch, done = np.random.default_rng(seed), len(x) // batch_size, 0
    while done < steps:
        order = rng.permutation(len(x))
        for j in range(min(per_epoch, steps - done)):
            idx = order[j * batch_size:(j + 1) * batch_size]
            yield x[idx], y[idx]
        done += min(per_epoch, steps - done)


def _mlp_apply(params, x):
    for W, b in params[:-1]:
        x = jax.nn.relu(x @ W + b)
    W, b = params[-1]
    return x @ W + b


def _params_from(init_params):
    """fnn's initial params [{'W', 'b'}, (), ...] as [(W, b), ...]: every JAX peer starts from them."""
    return [(jnp.asarray(p["W"]), jnp.asarray(p["b"])) for p in init_params if p]


def _optax_step(ds, steps, batch_size, lr, seed, init_params, optax):
    tx = optax.adam(lr)

    def loss_fn(params, x, y):
        return optax.softmax_cross_entropy_with_integer_labels(_mlp_apply(params, x), y).mean()

    @jax.jit
    def step(params, opt_state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    def train():
        params = _params_from(init_params)
        opt_state = tx.init(params)
        for xb, yb in _host_batches(ds, steps, batch_size, seed):
            params, opt_state, _ = step(params, opt_state, xb, yb)
        return jax.block_until_ready(params)
    return train, lambda p: _accuracy(_mlp_apply(p, jnp.asarray(ds.x_test)), ds.y_test)


def _optax_scan(ds, steps, batch_size, lr, seed, init_params, optax):
    tx = optax.adam(lr)
    x, y = jnp.asarray(ds.x_train), jnp.asarray(ds.y_train)
    n, per_epoch = x.shape[0], x.shape[0] // batch_size

    def loss_fn(params, xb, yb):
        return optax.softmax_cross_entropy_with_integer_labels(_mlp_apply(params, xb), yb).mean()

    @jax.jit
    def epoch(params, opt_state, key):
        perm = jax.random.permutation(key, n)[:per_epoch * batch_size].reshape(per_epoch, batch_size)

        def body(carry, idx):
            params, opt_state = carry
            loss, grads = jax.value_and_grad(loss_fn)(params, x[idx], y[idx])
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss
        (params, opt_state), losses = jax.lax.scan(body, (params, opt_state), perm)
        return params, opt_state, losses

    epochs = steps // per_epoch          # whole epochs: the steps are a multiple of them below

    def train():
        params = _params_from(init_params)
        opt_state = tx.init(params)
        for key in jax.random.split(jax.random.key(seed), epochs):
            params, opt_state, _ = epoch(params, opt_state, key)
        return jax.block_until_ready(params)
    return train, lambda p: _accuracy(_mlp_apply(p, jnp.asarray(ds.x_test)), ds.y_test), epochs * per_epoch


def _equinox(ds, steps, batch_size, lr, seed, sizes, optax, eqx):
    tx = optax.adam(lr)

    def loss_fn(model, x, y):
        logits = jax.vmap(model)(x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    @eqx.filter_jit
    def make_step(model, opt_state, x, y):
        loss, grads = eqx.filter_value_and_grad(loss_fn)(model, x, y)
        updates, opt_state = tx.update(grads, opt_state, eqx.filter(model, eqx.is_array))
        return eqx.apply_updates(model, updates), opt_state, loss

    def train():
        model = eqx.nn.MLP(sizes[0], sizes[-1], sizes[1], len(sizes) - 2, activation=jax.nn.relu,
                           key=jax.random.key(seed))
        opt_state = tx.init(eqx.filter(model, eqx.is_array))
        for xb, yb in _host_batches(ds, steps, batch_size, seed):
            model, opt_state, _ = make_step(model, opt_state, xb, yb)
        return jax.block_until_ready(model)
    return train, lambda m: _accuracy(jax.vmap(m)(jnp.asarray(ds.x_test)), ds.y_test)


def _flax_model(nnx, sizes, seed):
    class MLP(nnx.Module):
        def __init__(self, rngs):
            self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:])])

        def __call__(self, x):
            for layer in self.layers[:-1]:
                x = jax.nn.relu(layer(x))
            return self.layers[-1](x)
    return MLP(nnx.Rngs(seed))


def _flax(ds, steps, batch_size, lr, seed, sizes, optax, nnx, split):
    def loss_fn(model, x, y):
        return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()

    @nnx.jit
    def train_step(model, optimizer, x, y):
        loss, grads = nnx.value_and_grad(loss_fn)(model, x, y)
        optimizer.update(model, grads)
        return loss

    def batches():
        return _host_batches(ds, steps, batch_size, seed)

    def train():
        model = _flax_model(nnx, sizes, seed)
        optimizer = nnx.Optimizer(model, optax.adam(lr), wrt=nnx.Param)
        if not split:
            for xb, yb in batches():
                train_step(model, optimizer, xb, yb)
            return jax.block_until_ready(model)
        graphdef, state = nnx.split((model, optimizer))

        @jax.jit
        def step(state, xb, yb):
            model, optimizer = nnx.merge(graphdef, state)
            loss, grads = nnx.value_and_grad(loss_fn)(model, xb, yb)
            optimizer.update(model, grads)
            return nnx.state((model, optimizer)), loss
        for xb, yb in batches():
            state, _ = step(state, xb, yb)
        nnx.update((model, optimizer), state)
        return jax.block_until_ready(model)
    return train, lambda m: _accuracy(m(jnp.asarray(ds.x_test)), ds.y_test)


def _accuracy(logits, labels):
    return float(np.mean(np.asarray(jnp.argmax(logits, axis=-1)) == np.asarray(labels)))


def _allowing_broadcasts(fn):
    """fn under numpy rank promotion "allow": the peers broadcast biases as their documentation does,
    also where the caller (fnn's tests) makes implicit rank promotion an error."""
    def call(*args):
        with jax.numpy_rank_promotion("allow"):
            return fn(*args)
    return call


def prepare(name, ds, *, steps, batch_size, lr, seed, sizes, init_params, unavailable):
    """The Trainer of JAX peer `name`; `unavailable` (an exception class) is raised if its package is missing."""
    t = _prepare(name, ds, steps, batch_size, lr, seed, sizes, init_params, unavailable)
    return t._replace(train=_allowing_broadcasts(t.train), accuracy=_allowing_broadcasts(t.accuracy))


def _prepare(name, ds, steps, batch_size, lr, seed, sizes, init_params, unavailable):
    optax = _import("optax", unavailable)
    if name == "optax-step":
        train, acc = _optax_step(ds, steps, batch_size, lr, seed, init_params, optax)
        return Trainer(name, f"JAX {jax.__version__} + optax {optax.__version__}: jax.jit step per minibatch",
                       train, acc, steps)
    if name == "optax-scan":
        train, acc, done = _optax_scan(ds, steps, batch_size, lr, seed, init_params, optax)
        return Trainer(name, f"JAX + optax {optax.__version__}: each epoch one jitted lax.scan", train, acc, done)
    if name == "equinox":
        eqx = _import("equinox", unavailable)
        train, acc = _equinox(ds, steps, batch_size, lr, seed, sizes, optax, eqx)
        return Trainer(name, f"Equinox {eqx.__version__}: eqx.nn.MLP, eqx.filter_jit per step, optax",
                       train, acc, steps)
    if name in ("flax-nnx", "flax-nnx-split"):
        flax = _import("flax", unavailable)
        from flax import nnx
        split = name.endswith("split")
        train, acc = _flax(ds, steps, batch_size, lr, seed, sizes, optax, nnx, split)
        how = "jax.jit over nnx.split/merge" if split else "nnx.jit per step"
        return Trainer(name, f"Flax {flax.__version__} NNX: {how}, optax", train, acc, steps)
    raise ValueError(f"unknown JAX peer {name!r}")
