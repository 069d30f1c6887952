"""The JAX-ecosystem contender of benchmarks.family_peers: the three models in Equinox, as its documentation has them.

    equinox   eqx.nn layers in an eqx.Module (each called on one example, jax.vmap over the batch),
              eqx.filter_value_and_grad, an eqx.filter_jit step per minibatch sliced on the host
              (benchmarks.jax_peers' loop), optax.adam

The CNN is eqx.nn.Conv1d on (channels, length), its Flatten channel-major as
PyTorch's (the Dense's rows permuted to match fnn's); the GRU two eqx.nn.GRUCell
run over time by lax.scan, forward and reversed (Equinox's recurrent example),
with fnn's b_x and the r, z blocks of b_h in `bias` and b_h's n block in `bias_n`;
the transformer eqx.nn.MultiheadAttention (query, value and output biases, no key
bias, as fnn's) in pre-norm blocks with eqx.nn.LayerNorm and eqx.nn.Linear. Every
module starts from fnn's initial params (eqx.tree_at). Benchmark-only: a missing
package is a PeerUnavailable naming the extra to install.
"""
import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.family_tasks import IGNORE, Trainer, cnn_parts, gpt_parts, gru_parts
from benchmarks.jax_peers import _allowing_broadcasts, _host_batches, _import
from benchmarks.peer_runners import cpu_threads

__all__ = ["prepare"]


def _cnn(eqx, task, key):
    c = task.settings["channels"]
    convs, (W, b) = cnn_parts(task.params)
    length = W.shape[0] // c
    keys = jax.random.split(key, 4)

    class CNN(eqx.Module):
        convs: list
        linear: eqx.nn.Linear

        def __init__(self):
            self.convs = [eqx.nn.Conv1d(1, c, 5, stride=2, padding=1, key=keys[0]),
                          eqx.nn.Conv1d(c, c, 3, stride=2, padding=1, key=keys[1]),
                          eqx.nn.Conv1d(c, c, 3, stride=2, padding=1, key=keys[2])]
            self.linear = eqx.nn.Linear(c * length, W.shape[1], key=keys[3])

        def __call__(self, x):                          # (40,): one signal, one channel
            h = x[None]
            for conv in self.convs:
                h = jax.nn.relu(conv(h))
            return self.linear(h.ravel())

    model = CNN()
    def where(m):
        return [a for conv in m.convs for a in (conv.weight, conv.bias)] + [m.linear.weight, m.linear.bias]
    values = [a for (Wc, bc), conv in zip(convs, model.convs)
              for a in (Wc.transpose(2, 1, 0), bc.reshape(conv.bias.shape))]
    values += [W.reshape(length, c, -1).transpose(2, 1, 0).reshape(W.shape[1], -1), b]
    return eqx.tree_at(where, model, [jnp.asarray(v) for v in values])


def _gru(eqx, task, key):
    hidden = task.settings["hidden"]
    cells, (W, b) = gru_parts(task.params)
    k_f, k_r, k_l = jax.random.split(key, 3)

    class BiGRU(eqx.Module):
        forward: eqx.nn.GRUCell
        reverse: eqx.nn.GRUCell
        linear: eqx.nn.Linear

        def __init__(self):
            self.forward = eqx.nn.GRUCell(1, hidden, key=k_f)
            self.reverse = eqx.nn.GRUCell(1, hidden, key=k_r)
            self.linear = eqx.nn.Linear(W.shape[0], W.shape[1], key=k_l)

        def __call__(self, x):                          # (T,): one feature per position
            xs = x[:, None]

            def run(cell, xs):
                def step(h, x_t):
                    h = cell(x_t, h)
                    return h, h
                _, hs = jax.lax.scan(step, jnp.zeros(hidden), xs)
                return hs
            hs = jnp.concatenate([run(self.forward, xs), run(self.reverse, xs[::-1])[::-1]], axis=-1)
            return self.linear(hs.ravel())              # (T, 2 hidden) position-major, as fnn's Flatten

    model = BiGRU()
    def where(m):
        return [a for cell in (m.forward, m.reverse)
                for a in (cell.weight_ih, cell.weight_hh, cell.bias, cell.bias_n)] + [m.linear.weight, m.linear.bias]
    values = []
    for cell in cells:
        b_rz = np.concatenate([cell["b_h"][:2 * hidden], np.zeros(hidden, np.float32)])
        values += [cell["W_x"].T, cell["W_h"].T, cell["b_x"] + b_rz, cell["b_h"][2 * hidden:]]
    return eqx.tree_at(where, model, [jnp.asarray(v) for v in values + [W.T, b]])


def _transformer(eqx, task, key):
    s = task.settings
    d, T, vocab, layers = s["d_model"], s["sequence_length"], s["vocab"], s["layers"]
    keys = iter(jax.random.split(key, 4 * layers + 2))

    class Block(eqx.Module):
        ln1: eqx.nn.LayerNorm
        attn: eqx.nn.MultiheadAttention
        ln2: eqx.nn.LayerNorm
        mlp1: eqx.nn.Linear
        mlp2: eqx.nn.Linear

        def __init__(self):
            self.ln1, self.ln2 = eqx.nn.LayerNorm(d, eps=1e-5), eqx.nn.LayerNorm(d, eps=1e-5)
            self.attn = eqx.nn.MultiheadAttention(s["heads"], d, use_query_bias=True, use_key_bias=False,
                                                  use_value_bias=True, use_output_bias=True, key=next(keys))
            self.mlp1 = eqx.nn.Linear(d, s["mlp_ratio"] * d, key=next(keys))
            self.mlp2 = eqx.nn.Linear(s["mlp_ratio"] * d, d, key=next(keys))

        def __call__(self, h, mask):                    # (T, d)
            a = jax.vmap(self.ln1)(h)
            h = h + self.attn(a, a, a, mask=mask)
            m = jax.nn.gelu(jax.vmap(self.mlp1)(jax.vmap(self.ln2)(h)), approximate=False)
            return h + jax.vmap(self.mlp2)(m)

    class GPT(eqx.Module):
        tok: eqx.nn.Embedding
        pos: jax.Array
        blocks: list
        ln: eqx.nn.LayerNorm
        head: eqx.nn.Linear

        def __init__(self):
            self.tok = eqx.nn.Embedding(vocab, d, key=next(keys))
            self.pos = jnp.zeros((T, d))
            self.blocks = [Block() for _ in range(layers)]
            self.ln = eqx.nn.LayerNorm(d, eps=1e-5)
            self.head = eqx.nn.Linear(d, vocab, key=next(keys))

        def __call__(self, ids):                        # (T,) token ids
            n = ids.shape[0]
            h = jax.vmap(self.tok)(ids) + self.pos[:n]
            mask = jnp.tril(jnp.ones((n, n), bool))
            for block in self.blocks:
                h = block(h, mask)
            return jax.vmap(self.head)(jax.vmap(self.ln)(h))

    model, p = GPT(), gpt_parts(task.params, layers)

    def where(m):
        out = [m.tok.weight, m.pos]
        for blk in m.blocks:
            a = blk.attn
            out += [blk.ln1.weight, blk.ln1.bias, a.query_proj.weight, a.query_proj.bias, a.key_proj.weight,
                    a.value_proj.weight, a.value_proj.bias, a.output_proj.weight, a.output_proj.bias,
                    blk.ln2.weight, blk.ln2.bias, blk.mlp1.weight, blk.mlp1.bias, blk.mlp2.weight, blk.mlp2.bias]
        return out + [m.ln.weight, m.ln.bias, m.head.weight, m.head.bias]
    values = [p["tok"], p["pos"][:T]]
    for blk in p["blocks"]:
        values += [*blk["ln1"], blk["W_q"].T, blk["b_q"], blk["W_k"].T, blk["W_v"].T, blk["b_v"], blk["W_o"].T,
                   blk["b_o"], *blk["ln2"], blk["mlp1"][0].T, blk["mlp1"][1], blk["mlp2"][0].T, blk["mlp2"][1]]
    values += [*p["ln"], p["head"][0].T, p["head"][1]]
    return eqx.tree_at(where, model, [jnp.asarray(v) for v in values])


def _loss(optax, name):
    if name != "transformer":
        return lambda logits, y: optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    def answer_tokens(logits, y):                       # summed over the answer, over every position (fnn's)
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.maximum(y, 0))
        return jnp.sum(jnp.where(y != IGNORE, ce, 0.0)) / y.size
    return answer_tokens


def prepare(name, task, *, unavailable):
    """The Trainer of the Equinox contender for `task`; `unavailable` is raised if a package is missing."""
    del name
    optax = _import("optax", unavailable)
    eqx = _import("equinox", unavailable)
    s = task.settings
    model0 = {"cnn": _cnn, "gru": _gru, "transformer": _transformer}[task.name](
        eqx, task, jax.random.key(s["seed"]))
    schedule = (optax.cosine_decay_schedule(s["learning_rate"], s["steps"]) if s["schedule"] == "cosine"
                else s["learning_rate"])
    tx = optax.adam(schedule)
    loss = _loss(optax, task.name)

    def loss_fn(model, x, y):
        return loss(jax.vmap(model)(x), y)

    @eqx.filter_jit
    def make_step(model, opt_state, x, y):
        value, grads = eqx.filter_value_and_grad(loss_fn)(model, x, y)
        updates, opt_state = tx.update(grads, opt_state, eqx.filter(model, eqx.is_array))
        return eqx.apply_updates(model, updates), opt_state, value

    data = _Data(task.x_train, task.y_train)

    def train():
        model, opt_state = model0, tx.init(eqx.filter(model0, eqx.is_array))
        for xb, yb in _host_batches(data, s["steps"], s["batch_size"], s["seed"]):
            model, opt_state, _ = make_step(model, opt_state, xb, yb)
        return jax.block_until_ready(model)

    logits = eqx.filter_jit(lambda model, x: jax.vmap(model)(x))
    device = jax.devices()[0].platform
    return Trainer("equinox", f"Equinox {eqx.__version__}: eqx.nn layers, eqx.filter_jit step per minibatch, "
                              f"optax {optax.__version__} adam", device, _allowing_broadcasts(train),
                   _allowing_broadcasts(lambda m: task.score(lambda x: np.asarray(logits(m, x)))), s["steps"],
                   cpu_threads() if device == "cpu" else None)


class _Data:
    """The training arrays as benchmarks.jax_peers' host loop reads them (x_train, y_train)."""

    def __init__(self, x, y):
        self.x_train, self.y_train = x, y

