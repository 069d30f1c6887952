"""The worked examples of seeds 000, 002, 003 and 004, computed with fnn's layers and backprop.

Each function returns a dict of plain Python numbers (JSON-ready):

    house_prices(key=...)    seed 000: price from size with one linear neuron
    single_neuron()          seed 002: one gradient-descent step, ŷ = w·x + b
    two_layer_linear()       seed 002: forward, backward and one step through two linear layers
    computational_graph()    seed 002: y = (a + b)(b − c) and its three partial derivatives
    xor(key=...)             seeds 003/004: a hidden layer solves XOR, a single neuron cannot
    all_examples(key=...)    all of them, keyed by name

Gradients come from the hand-written backward passes (model.forward, then
loss.grad, then model.backward); parameters move by the seeds' plain rule
w ← w − α·∂L/∂w (`gradient_descent_step`).
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np

import fnn
from fnn.validate import check_key, check_positive_int
from examples.graph import backprop

__all__ = [
    "gradient_descent_step", "gradient_descent", "accuracy", "house_prices", "single_neuron",
    "two_layer_linear", "computational_graph", "xor", "linear_xor_grid_search", "all_examples",
    "XOR_INPUTS", "XOR_TARGETS",
]

XOR_INPUTS = ((0.0, 0.0), (0.0, 1.0), (1.0, 0.0), (1.0, 1.0))
XOR_TARGETS = (0.0, 1.0, 1.0, 0.0)


def gradient_descent_step(params, grads, lr):
    """One step of plain gradient descent on every leaf:  w ← w − α·∂L/∂w."""
    return jax.tree.map(lambda p, g: p - lr * g, params, grads)


@functools.partial(jax.jit, static_argnames=("model", "loss", "steps"))
def gradient_descent(model, loss, params, x, y, lr, steps):
    """`steps` gradient-descent steps on one full batch, by hand-written backprop.

    Returns:
      (params after the last step, losses: (steps,) the loss before each step).
    """
    value_and_grad = fnn.make_value_and_grad(model, loss, method="manual")

    def step(p, _):
        L, grads = value_and_grad(p, x, y)
        return gradient_descent_step(p, grads, lr), L

    return jax.lax.scan(step, params, None, length=steps)


def accuracy(logits, targets):
    """Fraction of points where [logit > 0] (i.e. σ(logit) > ½) equals the 0/1 target."""
    predicted = (logits.reshape(-1) > 0).astype(jnp.float32)
    return jnp.mean(predicted == jnp.asarray(targets, jnp.float32).reshape(-1))


def _f(x):
    return float(x)


def _list(x):
    return np.asarray(x, dtype=np.float64).tolist()


# ---------------------------------------------------------------------------
# Seed 000: house prices
# ---------------------------------------------------------------------------

HOUSE_SIZES = (1000.0, 1500.0, 2000.0)     # sq ft
HOUSE_PRICES = (200_000.0, 300_000.0, 400_000.0)
HOUSE_QUERY = 2500.0


def house_prices(*, key, lr=0.1, steps=200):
    """Seed 000: one linear neuron, price = w·size + b, fit by gradient descent on MSE.

    Sizes and prices are standardized (z = (v − mean)/std) so one learning rate
    suits both; the fitted neuron is mapped back to dollars per square foot.

    Args:
      key: PRNG key for the neuron's initial weight.
      lr, steps: gradient-descent settings.
    Returns:
      dict with the fitted price_per_sqft and intercept (dollars), the prediction
      at 2,500 sq ft, the training predictions and the first/last loss.
    """
    check_positive_int("steps", steps)
    sizes, prices = jnp.asarray(HOUSE_SIZES), jnp.asarray(HOUSE_PRICES)
    x_mean, x_std = jnp.mean(sizes), jnp.std(sizes)
    y_mean, y_std = jnp.mean(prices), jnp.std(prices)
    x = ((sizes - x_mean) / x_std).reshape(-1, 1)          # (3, 1)
    y = (prices - y_mean) / y_std                          # (3,)
    model = fnn.Dense(1)
    _, params = model.init(key, (-1, 1))
    params, losses = gradient_descent(model, fnn.get_loss("mse"), params, x, y, lr, steps)

    def predict(size):
        z = (jnp.asarray(size).reshape(-1, 1) - x_mean) / x_std
        return (model.apply(params, z) * y_std + y_mean).reshape(-1)

    w, b = params["W"][0, 0], params["b"][0]
    per_sqft = w * y_std / x_std
    return {
        "sizes_sqft": list(HOUSE_SIZES), "prices": list(HOUSE_PRICES),
        "lr": lr, "steps": steps,
        "loss_first": _f(losses[0]), "loss_last": _f(losses[-1]),
        "price_per_sqft": _f(per_sqft),
        "intercept": _f(y_mean + b * y_std - per_sqft * x_mean),
        "fitted_prices": _list(predict(sizes)),
        "query_sqft": HOUSE_QUERY,
        "predicted_price": _f(predict(HOUSE_QUERY)[0]),
    }


# ---------------------------------------------------------------------------
# Seed 002: a single neuron, a two-layer linear network, a computational graph
# ---------------------------------------------------------------------------

def _scalar_dense(w, b):
    """Params of a 1 → 1 Dense layer: W (1, 1), b (1,)."""
    return {"W": jnp.array([[w]], jnp.float32), "b": jnp.array([b], jnp.float32)}


def single_neuron(*, x=1.0, y=2.0, w=0.0, b=0.0, lr=0.5):
    """Seed 002's training example: ŷ = w·x + b, L = ½(ŷ − y)², one step of gradient descent.

        ∂L/∂ŷ = ŷ − y,   ∂L/∂w = (ŷ − y)·x,   ∂L/∂b = ŷ − y
    """
    model, loss = fnn.Dense(1), fnn.get_loss("half_squared_error")
    params = _scalar_dense(w, b)
    xs, ys = jnp.array([[x]], jnp.float32), jnp.array([[y]], jnp.float32)   # (1, 1)
    y_hat, saved = model.forward(params, xs)
    dL_dyhat = loss.grad(y_hat, ys)
    grads, _ = model.backward(params, saved, dL_dyhat)
    new = gradient_descent_step(params, grads, lr)
    y_hat_after = model.apply(new, xs)
    return {
        "x": x, "y": y, "w0": w, "b0": b, "lr": lr,
        "prediction": _f(y_hat[0, 0]), "loss": _f(loss.fn(y_hat, ys)),
        "dL_dyhat": _f(dL_dyhat[0, 0]),
        "dL_dw": _f(grads["W"][0, 0]), "dL_db": _f(grads["b"][0]),
        "w1": _f(new["W"][0, 0]), "b1": _f(new["b"][0]),
        "prediction_after": _f(y_hat_after[0, 0]),
        "loss_after": _f(loss.fn(y_hat_after, ys)),
    }


# What seed 002's "Summary of Gradients" states; ∂J/∂a1 = 2 × 2 there should be 2 × w2 = 2 × 3.
SEED_002_GRADIENT_SUMMARY = {"dJ_da1": 4.0, "dJ_dw1": 4.0, "dJ_db1": 4.0, "dJ_dw2": 4.0, "dJ_db2": 2.0}


def two_layer_linear(*, x=1.0, y=5.0, w1=2.0, b1=0.0, w2=3.0, b2=1.0, lr=0.1, more_steps=25):
    """Seed 002's network: a1 = w1·x + b1, a2 = w2·a1 + b2, J = ½(a2 − y)².

    Backward, layer by layer (each Dense.backward returns ∂J/∂params and ∂J/∂input):
        ∂J/∂a2 = a2 − y
        ∂J/∂w2 = ∂J/∂a2 · a1,   ∂J/∂b2 = ∂J/∂a2,   ∂J/∂a1 = ∂J/∂a2 · w2
        ∂J/∂w1 = ∂J/∂a1 · x,    ∂J/∂b1 = ∂J/∂a1
    Then one step w ← w − α·∂J/∂w, and the loss after `more_steps` steps.
    """
    check_positive_int("more_steps", more_steps)
    model = fnn.serial(fnn.Dense(1), fnn.Dense(1))
    layer1, layer2 = model.layers
    loss = fnn.get_loss("half_squared_error")
    params = (_scalar_dense(w1, b1), _scalar_dense(w2, b2))
    xs, ys = jnp.array([[x]], jnp.float32), jnp.array([[y]], jnp.float32)   # (1, 1)

    a1, saved1 = layer1.forward(params[0], xs)
    a2, saved2 = layer2.forward(params[1], a1)
    dJ_da2 = loss.grad(a2, ys)
    grads2, dJ_da1 = layer2.backward(params[1], saved2, dJ_da2)
    grads1, _ = layer1.backward(params[0], saved1, dJ_da1)
    new = gradient_descent_step(params, (grads1, grads2), lr)
    _, losses = gradient_descent(model, loss, params, xs, ys, lr, more_steps + 1)
    return {
        "x": x, "y": y, "w1": w1, "b1": b1, "w2": w2, "b2": b2, "lr": lr,
        "a1": _f(a1[0, 0]), "a2": _f(a2[0, 0]), "loss": _f(loss.fn(a2, ys)),
        "dJ_da2": _f(dJ_da2[0, 0]),
        "dJ_dw2": _f(grads2["W"][0, 0]), "dJ_db2": _f(grads2["b"][0]),
        "dJ_da1": _f(dJ_da1[0, 0]),
        "dJ_dw1": _f(grads1["W"][0, 0]), "dJ_db1": _f(grads1["b"][0]),
        "w1_new": _f(new[0]["W"][0, 0]), "b1_new": _f(new[0]["b"][0]),
        "w2_new": _f(new[1]["W"][0, 0]), "b2_new": _f(new[1]["b"][0]),
        "a2_after_step": _f(model.apply(new, xs)[0, 0]),
        "loss_after_step": _f(losses[1]),
        "more_steps": more_steps,
        "loss_after_more_steps": _f(losses[-1]),
        "seed_gradient_summary": dict(SEED_002_GRADIENT_SUMMARY),
    }


def computational_graph(*, a=2.0, b=3.0, c=1.0):
    """Seed 002's graph y = (a + b)(b − c) = d·e, backpropagated node by node.

        ∂y/∂a = e,   ∂y/∂b = e + d (b feeds both d and e),   ∂y/∂c = −d
    Returns the value, the partials and every node (name, op, inputs, value, grad).
    """
    r = backprop(lambda a, b, c: (a + b) * (b - c), a, b, c, output_name="y")
    nodes = [{"name": n.name, "op": n.op, "inputs": list(n.inputs),
              "value": _f(n.value), "grad": _f(n.grad)} for n in r.nodes]
    return {
        "a": a, "b": b, "c": c,
        "d": _f(r.node("d").value), "e": _f(r.node("e").value), "y": _f(r.value),
        "dy_da": _f(r.grads[0]), "dy_db": _f(r.grads[1]), "dy_dc": _f(r.grads[2]),
        "nodes": nodes,
    }


# ---------------------------------------------------------------------------
# Seeds 003/004: XOR
# ---------------------------------------------------------------------------

def linear_xor_grid_search(*, limit=3.0, points=61):
    """Best XOR accuracy of any linear classifier [w1·x1 + w2·x2 + b > 0] on a (w1, w2, b) grid.

    No training, plain NumPy. The grid confirms what algebra shows: 4/4 needs
    b ≤ 0, w2 + b > 0, w1 + b > 0 and w1 + w2 + b ≤ 0; the middle two sum to
    w1 + w2 + 2b > 0, so w1 + w2 + b > −b ≥ 0, a contradiction.

    Returns:
      dict: the number of classifiers tried, the best accuracy, and how many
      reach 3/4 and 4/4.
    """
    v = np.linspace(-limit, limit, points)
    w1, w2, b = (a.reshape(-1) for a in np.meshgrid(v, v, v, indexing="ij"))
    W = np.stack([w1, w2])                                   # (2, k)
    logits = np.asarray(XOR_INPUTS) @ W + b.reshape(1, -1)   # (4, k)
    correct = (logits > 0) == (np.asarray(XOR_TARGETS).reshape(-1, 1) > 0.5)
    acc = np.mean(correct, axis=0)                           # (k,)
    return {
        "classifiers": int(acc.size), "grid_limit": limit, "grid_points": points,
        "best_accuracy": _f(np.max(acc)),
        "count_3_of_4": int(np.sum(acc == 0.75)), "count_4_of_4": int(np.sum(acc == 1.0)),
    }


def _fit_many(model, in_width, keys, x, y, lr, steps):
    """Train one copy of `model` per key (vmapped); (accuracy per key, final loss per key, params)."""
    loss = fnn.get_loss("binary_cross_entropy")

    def one(key):
        _, params = model.init(key, (-1, in_width))
        params, losses = gradient_descent(model, loss, params, x, y, lr, steps)
        return accuracy(model.apply(params, x), y), loss.fn(model.apply(params, x), y), params

    return jax.jit(jax.vmap(one))(keys)


def xor(*, key, inits=8, lr=1.0, steps=2000, hidden=4):
    """Seeds 003/004: XOR with a hidden layer, with one neuron, and with one neuron plus φ = x1·x2.

    All three minimize binary cross-entropy on the logits by gradient descent,
    each from `inits` random initializations:
      hidden layer:  2 → hidden (tanh) → 1
      logistic regression:  one neuron on (x1, x2), never above 3/4
      with the hand-made feature:  one neuron on (x1, x2, x1·x2)
    Also a grid search over linear classifiers, independent of training.
    """
    for name, value in (("inits", inits), ("steps", steps), ("hidden", hidden)):
        check_positive_int(name, value)
    x = jnp.asarray(XOR_INPUTS, jnp.float32)                   # (4, 2)
    y = jnp.asarray(XOR_TARGETS, jnp.float32)                  # (4,)
    x_phi = jnp.concatenate([x, x[:, :1] * x[:, 1:]], axis=1)  # (4, 3): x1, x2, x1·x2
    k_mlp, k_lr, k_phi = jax.random.split(key, 3)
    mlp = fnn.mlp([2, hidden, 1], activation="tanh")
    neuron = fnn.Dense(1)

    acc_mlp, loss_mlp, p_mlp = _fit_many(mlp, 2, jax.random.split(k_mlp, inits), x, y, lr, steps)
    acc_lr, loss_lr, _ = _fit_many(neuron, 2, jax.random.split(k_lr, inits), x, y, lr, steps)
    acc_phi, loss_phi, p_phi = _fit_many(neuron, 3, jax.random.split(k_phi, inits), x_phi, y, lr, steps)

    first = lambda tree: jax.tree.map(lambda a: a[0], tree)
    sigmoid = fnn.get_activation("sigmoid").fn
    probs_mlp = sigmoid(mlp.apply(first(p_mlp), x)).reshape(-1)
    probs_phi = sigmoid(neuron.apply(first(p_phi), x_phi)).reshape(-1)
    return {
        "inputs": [list(p) for p in XOR_INPUTS], "targets": list(XOR_TARGETS),
        "lr": lr, "steps": steps, "inits": inits, "hidden": hidden,
        "hidden_layer": {"accuracies": _list(acc_mlp), "losses": _list(loss_mlp),
                         "probabilities": _list(probs_mlp)},
        "logistic_regression": {"accuracies": _list(acc_lr), "losses": _list(loss_lr),
                                "best_accuracy": _f(jnp.max(acc_lr))},
        "logistic_regression_phi": {"accuracies": _list(acc_phi), "losses": _list(loss_phi),
                                    "probabilities": _list(probs_phi),
                                    "weights": _list(first(p_phi)["W"].reshape(-1)),
                                    "bias": _f(first(p_phi)["b"][0])},
        "linear_grid_search": linear_xor_grid_search(),
    }


def all_examples(*, key):
    """Every example, keyed by name; `key` seeds the two that train from random weights."""
    k_house, k_xor = jax.random.split(check_key("all_examples: key", key))
    return {
        "house_prices": house_prices(key=k_house),
        "single_neuron": single_neuron(),
        "two_layer_linear": two_layer_linear(),
        "computational_graph": computational_graph(),
        "xor": xor(key=k_xor),
    }
