"""The seeds' pictures, drawn with fnn.viz: course material, not part of the library.

Some of them train small networks first (the house-price neuron, the XOR
networks), so they live here rather than in fnn.viz.

    figs = seed_figures(key=jax.random.key(0))           # {name: Figure}
    save_seed_figures("plots", key=jax.random.key(0))     # plots/NAME.png
"""
import os

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.ticker import FuncFormatter

from examples import seeds
from examples.graph import backprop
from examples.graph_plot import plot_computational_graph
from fnn.errors import InputError
from fnn.layers import Dense, mlp
from fnn.losses import get_loss
from fnn.train import predict
from fnn.validate import check_choice, check_key, check_number
from fnn.viz import (POSITIVE, descent_path, figure, plot_activations, plot_architecture,
                     plot_decision_boundary, plot_loss_1d, plot_loss_surface, save_figure)

__all__ = ["SEED_FIGURES", "seed_figures", "save_seed_figures", "xor_models"]

SEED_FIGURES = ("house_prices", "xor_boundaries", "gradient_descent", "loss_surface",
                "activations", "computational_graph", "architecture")


def _house_prices_figure(key):
    r = seeds.house_prices(key=key)
    fig = figure((6, 4))
    ax = fig.add_subplot()
    sizes = np.linspace(800, 2700, 50)
    per, icpt = r["price_per_sqft"], r["intercept"]
    sign = "+" if icpt >= 0 else "−"
    ax.plot(sizes, per * sizes + icpt, color=POSITIVE, lw=2, gid="fit",
            label=f"fitted: price = \\${per:.1f} per sq ft × size {sign} \\${abs(icpt):,.0f}")
    ax.scatter(r["sizes_sqft"], r["prices"], s=60, color="k", zorder=3, label="training houses", gid="data")
    ax.scatter([r["query_sqft"]], [r["predicted_price"]], s=140, marker="*", color="#ff7f0e", zorder=3,
               edgecolors="k", label=f"{r['query_sqft']:,.0f} sq ft → \\${r['predicted_price']:,.0f}",
               gid="query")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"\\${v / 1000:,.0f}k"))
    ax.set_xlabel("size (sq ft)")
    ax.set_ylabel("price")
    ax.set_title("Seed 000: one linear neuron learns price from size", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return fig


def xor_models(*, key, steps=2000, lr=1.0, hidden=4):
    """(neuron, neuron params, net, net params) trained on XOR by gradient descent on BCE.

    Args:
      key: PRNG key for both models' initial weights.
      steps, lr: gradient-descent settings; hidden: the net's hidden width (2-hidden-1 tanh).
    """
    check_key("key", key)
    x = jnp.asarray(seeds.XOR_INPUTS, jnp.float32)
    y = jnp.asarray(seeds.XOR_TARGETS, jnp.float32)
    bce = get_loss("binary_cross_entropy")
    k_neuron, k_net = jax.random.split(key)
    neuron, net = Dense(1), mlp([2, hidden, 1], activation="tanh")
    _, p_neuron = neuron.init(k_neuron, (-1, 2))
    _, p_net = net.init(k_net, (-1, 2))
    p_neuron, _ = seeds.gradient_descent(neuron, bce, p_neuron, x, y, lr, steps)
    p_net, _ = seeds.gradient_descent(net, bce, p_net, x, y, lr, steps)
    return neuron, p_neuron, net, p_net


def _xor_figure(trained):
    neuron, p_neuron, net, p_net = trained
    x = np.asarray(seeds.XOR_INPUTS)
    y = np.asarray(seeds.XOR_TARGETS)
    fig = figure((10, 4.4))
    for i, (model, params, name) in enumerate(((neuron, p_neuron, "one logistic neuron"),
                                               (net, p_net, "one hidden layer, 2-4-1 tanh"))):
        ax = fig.add_subplot(1, 2, i + 1)
        logits = np.asarray(predict(model, params, x)).reshape(-1)
        correct = int(np.sum((logits > 0) == (y > 0.5)))
        unsure = ", p ≈ ½ at every point" if np.max(np.abs(logits)) < 0.1 else ""
        plot_decision_boundary(model, params, x, y, ax=ax, margin=0.3,
                               title=f"XOR, {name}: {correct}/4 correct{unsure}")
    fig.suptitle("Seeds 003/004: a line cannot separate XOR; a hidden layer bends the boundary", fontsize=11)
    fig.tight_layout()
    return fig


def _dense_value_and_grad(x, y):
    """value_and_grad((w, b)) of L = ½·mean((w·x + b − y)²) by fnn's hand-written Dense backward."""
    dense, loss = Dense(1), get_loss("half_squared_error")
    xs = jnp.asarray(x, jnp.float32).reshape(-1, 1)
    ys = jnp.asarray(y, jnp.float32).reshape(-1, 1)

    def value_and_grad(wb):
        params = {"W": jnp.full((1, 1), wb[0], jnp.float32), "b": jnp.full((1,), wb[1], jnp.float32)}
        out, saved = dense.forward(params, xs)
        grads, _ = dense.backward(params, saved, loss.grad(out, ys))
        return float(loss.fn(out, ys)), np.array([float(grads["W"][0, 0]), float(grads["b"][0])])

    return value_and_grad


def _gradient_descent_figure():
    # Seed 002: y_hat = w·x with x = 1, y = 2, w₀ = 0, b fixed at 0: L(w) = ½(w − 2)².
    vg = _dense_value_and_grad([1.0], [2.0])
    only_w = lambda w: (lambda v, g: (v, g[:1]))(*vg(np.array([w[0], 0.0])))
    loss = lambda w: 0.5 * (np.asarray(w) * 1.0 - 2.0) ** 2
    fig = figure((6.4, 4.2))
    ax = fig.add_subplot()
    slow, _ = descent_path(only_w, [0.0], 0.5, 6)
    fast, _ = descent_path(only_w, [0.0], 1.8, 6)
    plot_loss_1d(loss, slow[:, 0], ax=ax, w_range=(-0.6, 4.6), label="α = 0.5: steady descent")
    plot_loss_1d(loss, fast[:, 0], ax=ax, color="#ff7f0e", curve=False,
                 label="α = 1.8: overshoots, zig-zags across")
    ax.set_title("Seed 002: loss vs weight, L(w) = ½(w·x − y)² with x = 1, y = 2, from w = 0",
                 fontsize=10)
    ax.legend(fontsize=8)
    return fig


def _loss_surface_figure():
    # Seed 000's houses: x = size − 1500 sq ft in 1000s, y = price in $100k, so y = 2x + 3.
    # L(w, b) = ½·mean((w·x + b − y)²); b's direction is 6× steeper than w's, so the path bends.
    x, y = np.array([-0.5, 0.0, 0.5]), np.array([2.0, 3.0, 4.0])
    path, _ = descent_path(_dense_value_and_grad(x, y), [-1.0, 0.5], 0.9, 30)

    def loss(w, b):
        w, b = np.asarray(w)[..., None], np.asarray(b)[..., None]
        return 0.5 * np.mean((w * x + b - y) ** 2, axis=-1)

    fig = figure((7, 5.6))
    ax = fig.add_subplot(projection="3d")
    plot_loss_surface(loss, path, ax=ax, w_range=(-1.5, 4.5), b_range=(0.0, 5.0))
    ax.view_init(elev=30, azim=-60)
    ax.set_title("Seed 002: the loss surface over a weight and a bias, 30 gradient-descent steps "
                 "(α = 0.9)\nseed 000's houses, size − 1500 sq ft in 1000s, price in $100k; "
                 "minimum at w = 2, b = 3", fontsize=9)
    return fig


def _graph_figure():
    g = backprop(lambda a, b, c: (a + b) * (b - c), 2.0, 3.0, 1.0, output_name="y")
    ax = plot_computational_graph(g, title="Seed 002: y = (a + b)(b − c) at a = 2, b = 3, c = 1")
    return ax.figure


def _architecture_figure(trained, key):
    _, _, net, p_net = trained
    big = mlp([40, 100, 100, 10], activation="relu")
    p_big = jax.jit(lambda k: big.init(k, (-1, 40))[1])(key)
    fig = figure((11, 4.6))
    ax1 = fig.add_subplot(1, 2, 1)
    ax2 = fig.add_subplot(1, 2, 2)
    plot_architecture(p_net, model=net, ax=ax1, input_names=("x₁", "x₂"), output_names=("ŷ",),
                      title="The XOR network after training (seed 003)")
    plot_architecture(p_big, model=big, ax=ax2, title="MNIST-1D's 40-100-100-10 MLP at initialization")
    fig.tight_layout()
    return fig


def seed_figures(*, key, names=SEED_FIGURES):
    """The seeds' pictures as {name: Figure}, in the order of `names`.

    Args:
      key: PRNG key for the house-price neuron, the XOR networks and the wide MLP's weights.
      names: which pictures, from SEED_FIGURES:


    house_prices         seed 000: the houses and the fitted line, with the 2,500 sq ft prediction
    xor_boundaries       seeds 003/004: the lone logistic neuron fails, the hidden layer succeeds
    gradient_descent     seed 002: the parabola L(w) with gradient-descent paths
    loss_surface         seed 002: L(w, b) in 3-D with the path
    activations          seeds 001/004: the activation menu and hand-written derivatives
    computational_graph  seed 002: y = (a + b)(b − c) with values and gradients
    architecture         seed 001: the trained XOR network and a wide MLP
    """
    check_key("key", key)
    for name in names:
        check_choice("seed figure", name, SEED_FIGURES)
    k_house, k_xor, k_big = jax.random.split(key, 3)
    trained = xor_models(key=k_xor) if {"xor_boundaries", "architecture"} & set(names) else None
    makers = {
        "house_prices": lambda: _house_prices_figure(k_house),
        "xor_boundaries": lambda: _xor_figure(trained),
        "gradient_descent": _gradient_descent_figure,
        "loss_surface": _loss_surface_figure,
        "activations": lambda: plot_activations(),
        "computational_graph": _graph_figure,
        "architecture": lambda: _architecture_figure(trained, k_big),
    }
    return {name: makers[name]() for name in names}


def save_seed_figures(directory, *, key, names=SEED_FIGURES, dpi=100):
    """Write the seeds' pictures as DIRECTORY/NAME.png (the folder is created).

    Args:
      directory: the folder for the PNG files (made if missing; a file there is an error).
      key, names: as for seed_figures; dpi: pixels per inch.
    Returns:
      the paths written, in the order of `names`.
    """
    check_number("dpi", dpi, 0, low_open=True)
    directory = os.fspath(directory)
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise InputError(f"{directory} exists and is not a directory; expected a folder for the pictures")
    os.makedirs(directory, exist_ok=True)
    paths = []
    for name, fig in seed_figures(key=key, names=names).items():
        paths.append(save_figure(fig, os.path.join(directory, f"{name}.png"), dpi=dpi))
    return paths
