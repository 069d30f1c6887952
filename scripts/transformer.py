"""A small decoder-only transformer, trained with hand-written backprop on sorting and addition.

Each task (fnn.data.sequences) is a prompt followed by its answer: eight digits
then the same digits sorted; two 3-digit numbers then their sum, least
significant digit first. The model (fnn.layers.gpt: token and position
embeddings, pre-norm blocks of causal multi-head attention and a GELU MLP,
LayerNorm, logits) learns to predict each next token, trained on the answer's
tokens only. It is scored on held-out prompts by greedy decoding: the answer is
generated one token at a time, each argmax fed back as the next input, and a
sequence counts only if every answer token is right (exact match).

    python scripts/transformer.py [--task sort|add|both] [--grad manual|autodiff]
                                  [--steps N] [--seed S] [--json PATH] [--figure PATH]
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import fnn  # noqa: E402
from fnn import cli, optim  # noqa: E402
from fnn.data import sequences  # noqa: E402

# The model and its training, per task. d_model ≤ 128, a few layers and heads.
MODEL = dict(d_model=64, heads=4, layers=2, mlp_ratio=4)
RECIPES = {
    "sort": dict(task=dict(length=8), n_train=20000, n_test=1000, steps=1000, batch_size=128,
                 learning_rate=3e-3),
    "add": dict(task=dict(digits=3), n_train=40000, n_test=1000, steps=2000, batch_size=128,
                learning_rate=3e-3),
}
TARGETS = {"sort": 0.99, "add": 0.95}     # exact match on held-out prompts
LOSS = "softmax_cross_entropy"


def parse_args(argv):
    p = cli.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--task", choices=("sort", "add", "both"), default="both", help="which task (default both)")
    p.add_argument("--grad", choices=fnn.grads.METHODS, default="manual",
                   help="gradients: manual (hand-written backprop, the default) or autodiff (jax.grad)")
    p.add_argument("--steps", type=cli.positive_int, default=None,
                   help="training steps per task instead of the recipe's (for a quick look)")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed of the data, init and shuffling (default 0)")
    p.add_argument("--json", metavar="PATH", help="write the figures of every task to this JSON file")
    p.add_argument("--figure", metavar="PATH",
                   help="draw the attention of every head for one held-out sort example to this PNG")
    args = p.parse_args(argv)
    if args.seed < 0:
        p.error(f"--seed must be a non-negative integer, got {args.seed}")
    for flag in ("json", "figure"):
        path = getattr(args, flag)
        if path is not None:
            folder = os.path.dirname(os.path.abspath(path))
            if os.path.isdir(path) or not os.path.isdir(folder):
                p.error(f"--{flag} {path!r}: expected a file path in an existing folder")
    return args


def make_model(task):
    return fnn.layers.gpt(task.vocab, task.x.shape[1], MODEL["d_model"], MODEL["heads"], MODEL["layers"],
                          mlp_ratio=MODEL["mlp_ratio"])


def greedy_decode(model, params, prompts, answer_length):
    """The answers (n, A) a model generates for prompts (n, P), one argmax token at a time.

    The input has the training length T = P + A − 1; at step i the model reads the prompt and
    the i tokens it generated, and position P − 1 + i's logits give the next token. The later
    positions still hold 0, which causal attention keeps from reaching position P − 1 + i.
    """
    prompts = jnp.asarray(prompts, jnp.int32)
    n, P = prompts.shape
    x = jnp.concatenate([prompts, jnp.zeros((n, answer_length - 1), jnp.int32)], axis=1)
    out = []
    for i in range(answer_length):
        token = jnp.argmax(model.apply(params, x)[:, P - 1 + i], axis=-1).astype(jnp.int32)
        out.append(token)
        if i < answer_length - 1:
            x = x.at[:, P + i].set(token)
    return jnp.stack(out, axis=1)


def exact_match(model, params, task, batch=500):
    """(exact-match accuracy, per-token accuracy) of greedy answers on the task's sequences."""
    decode = jax.jit(lambda p, prompts: greedy_decode(model, p, prompts, task.answer_length))
    answers = np.concatenate([np.asarray(decode(params, task.prompts[i:i + batch]))
                              for i in range(0, task.n, batch)])
    right = answers == task.answers
    return float(right.all(axis=1).mean()), float(right.mean())


def train_task(name, key, grad, steps=None):
    """Train and score one task; a dict of its figures, the model, params and test set."""
    recipe = RECIPES[name]
    steps = recipe["steps"] if steps is None else steps
    k_data, k_init, k_fit = jax.random.split(key, 3)
    task = sequences.get_sequence_task(name, k_data, recipe["n_train"] + recipe["n_test"], **recipe["task"])
    train, test = sequences.split_task(task, recipe["n_test"])
    model = make_model(train)
    _, params = model.init(k_init, (-1, train.x.shape[1]))
    schedule = optim.schedules.cosine_decay(recipe["learning_rate"], steps)
    start = time.perf_counter()
    result = fnn.fit(model, LOSS, optim.adam(schedule), params, train.x, sequences.answer_targets(train),
                     key=k_fit, steps=steps, batch_size=recipe["batch_size"], progress=False,
                     config=fnn.StepConfig(method=grad))
    seconds = time.perf_counter() - start
    exact, per_token = exact_match(model, result.params, test)
    figures = dict(task=name, grad=grad, steps=result.steps, train_examples=train.n, test_examples=test.n,
                   final_train_loss=float(result.history["train_loss"][-1]), test_exact_match=exact,
                   test_token_accuracy=per_token, target=TARGETS[name], train_seconds=round(seconds, 2),
                   parameters=int(sum(np.size(p) for p in jax.tree.leaves(params))), model=MODEL,
                   recipe=recipe)
    return figures, model, result.params, test


def attention_maps(model, params, x):
    """Per attention layer, the probabilities (batch, heads, T, T) its forward used on x.

    Recomputed from what MultiHeadAttention saves, P = exp(Q Kᵀ/√d − lse) on the allowed pairs,
    as its backward does.
    """
    _, saved = model.forward(params, x)
    maps = []

    def walk(layer, s):
        if layer.kind == "attention":
            _, q, k, _, _, lse, _ = s
            scores = jnp.einsum("bhid,bhjd->bhij", q, k) / jnp.sqrt(q.shape[-1])
            T = q.shape[2]
            causal = jnp.tril(jnp.ones((T, T), bool))
            maps.append(jnp.where(causal, jnp.exp(scores - lse[..., None]), 0.0))
        for sub, ss in zip(layer.layers, s if layer.layers else ()):
            walk(sub, ss)
    walk(model, saved)
    return [np.asarray(m) for m in maps]


def draw_attention(path, model, params, test):
    """One held-out sort example: every head's attention (rows: queries, columns: keys)."""
    import io
    from fnn.viz.figures import figure
    x = test.x[:1]
    maps = attention_maps(model, params, jnp.asarray(x))
    layers, heads = len(maps), maps[0].shape[1]
    labels = [str(t) for t in x[0]]
    fig = figure(figsize=(2.6 * heads, 3.0 * layers + 0.4))
    axes = fig.subplots(layers, heads, squeeze=False)
    for l, m in enumerate(maps):
        for h in range(heads):
            ax = axes[l][h]
            ax.imshow(m[0, h], cmap="viridis", vmin=0, vmax=1)
            ax.set_title(f"layer {l + 1}, head {h + 1}", fontsize=9)
            ax.set_xticks(range(len(labels)), labels, fontsize=6)
            ax.set_yticks(range(len(labels)), labels, fontsize=6)
            ax.axhline(test.prompt_length - 1.5, color="white", lw=0.6)
            ax.axvline(test.prompt_length - 0.5, color="white", lw=0.6)
    fig.suptitle(f"Attention while sorting {' '.join(labels[:test.prompt_length])} "
                 "(rows: the position predicting, columns: what it reads)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.96), h_pad=1.5)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, facecolor="white")
    cli.write_file(path, buffer.getvalue())


def main(argv=None):
    args = parse_args(argv)
    print(f"device: {cli.device_description()}")
    names = ("sort", "add") if args.task == "both" else (args.task,)
    runs = []
    for i, name in enumerate(names):
        figures, model, params, test = train_task(name, jax.random.fold_in(jax.random.key(args.seed), i),
                                                  args.grad, args.steps)
        runs.append(figures)
        print(f"{name}: exact match {figures['test_exact_match']:.4f} on {figures['test_examples']} held-out "
              f"prompts (per token {figures['test_token_accuracy']:.4f}; target ≥ {figures['target']}); "
              f"{figures['steps']} steps in {figures['train_seconds']:.1f} s, train loss "
              f"{figures['final_train_loss']:.4f}, {figures['parameters']} params, {args.grad} gradients",
              flush=True)
        if name == "sort" and args.figure:
            draw_attention(args.figure, model, params, test)
            print(f"wrote {args.figure}")
    if args.json is not None:
        cli.write_file(args.json, json.dumps({"device": cli.device_description(), "seed": args.seed,
                                              "runs": runs}, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
