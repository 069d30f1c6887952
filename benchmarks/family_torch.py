"""The PyTorch contenders of benchmarks.family_peers: the same three models as nn.Modules, eager and torch.compile'd.

    torch          the nn.Module in eager mode: a plain Python loop of forward, cross-entropy,
                   backward and torch.optim.Adam, each epoch one torch.randperm (as PyTorch's tutorials)
    torch-compile  the same loop through torch.compile(module) (mode default); where compiling fails
                   here (no C++ compiler, an unsupported platform) the contender is recorded as
                   "unavailable: ..." with the reason, and the others still run

Both run on one CPU thread unless told otherwise (threads=, the command's
--threads): these models' operations are small, and on a shared machine
PyTorch's OpenMP pool waits at every operation for threads the scheduler has
given to other processes, many times slower than one thread.

Each module starts from fnn's initial params (copied in, transposed to PyTorch's
layouts): nn.Conv1d's weight is (C_out, C_in, k) where fnn's W is (k, C_in, C_out),
and its Flatten reads channels before positions, so the Dense's rows are permuted
to match; nn.GRU's weight_ih_l0 is fnn's W_xᵀ (the same gate order r, z, n);
the transformer is nn.TransformerEncoderLayer (norm_first, GELU, no dropout) with
nn.MultiheadAttention's key bias started at 0, as fnn has none. Benchmark-only:
a missing torch is a PeerUnavailable naming the extra to install.
"""
import numpy as np

from fnn.cli import one_line

from benchmarks.family_tasks import IGNORE, Trainer, cnn_parts, gpt_parts, gru_parts
from benchmarks.peer_runners import PEERS_EXTRA, PeerUnavailable

__all__ = ["TORCH_PEERS", "THREADS", "prepare"]

TORCH_PEERS = ("torch", "torch-compile")
THREADS = 1


def _import_torch():
    try:
        import torch
    except ImportError:
        raise PeerUnavailable(f"PyTorch is not installed: {PEERS_EXTRA}") from None
    return torch


def _t(torch, a):
    return torch.from_numpy(np.array(a, np.float32))      # a copy: writable, contiguous


def _cnn(torch, task):
    nn, s = torch.nn, task.settings
    c = s["channels"]
    convs, (W, b) = cnn_parts(task.params)
    length = W.shape[0] // c                                  # positions after the last convolution
    model = nn.Sequential(nn.Conv1d(1, c, 5, stride=2, padding=1), nn.ReLU(),
                          nn.Conv1d(c, c, 3, stride=2, padding=1), nn.ReLU(),
                          nn.Conv1d(c, c, 3, stride=2, padding=1), nn.ReLU(),
                          nn.Flatten(), nn.Linear(c * length, W.shape[1]))
    with torch.no_grad():
        for conv, (Wc, bc) in zip([m for m in model if isinstance(m, nn.Conv1d)], convs):
            conv.weight.copy_(_t(torch, Wc.transpose(2, 1, 0)))
            conv.bias.copy_(_t(torch, bc))
        # fnn flattens (L, C) position-major, nn.Flatten (C, L) channel-major
        model[-1].weight.copy_(_t(torch, W.reshape(length, c, -1).transpose(2, 1, 0).reshape(W.shape[1], -1)))
        model[-1].bias.copy_(_t(torch, b))
    return model, lambda x: torch.from_numpy(np.array(x, np.float32)[:, None, :])


def _gru(torch, task):
    nn, hidden = torch.nn, task.settings["hidden"]

    class GRUNet(nn.Module):
        def __init__(self, length):
            super().__init__()
            self.gru = nn.GRU(1, hidden, batch_first=True, bidirectional=True)
            self.fc = nn.Linear(length * 2 * hidden, 10)

        def forward(self, x):                                  # (batch, T, 1)
            out, _ = self.gru(x)                               # (batch, T, 2 hidden)
            return self.fc(out.flatten(1))

    model = GRUNet(task.x_train.shape[1])
    cells, (W, b) = gru_parts(task.params)
    with torch.no_grad():
        for suffix, cell in zip(("", "_reverse"), cells):
            getattr(model.gru, f"weight_ih_l0{suffix}").copy_(_t(torch, cell["W_x"].T))
            getattr(model.gru, f"weight_hh_l0{suffix}").copy_(_t(torch, cell["W_h"].T))
            getattr(model.gru, f"bias_ih_l0{suffix}").copy_(_t(torch, cell["b_x"]))
            getattr(model.gru, f"bias_hh_l0{suffix}").copy_(_t(torch, cell["b_h"]))
        model.fc.weight.copy_(_t(torch, W.T))
        model.fc.bias.copy_(_t(torch, b))
    return model, lambda x: torch.from_numpy(np.array(x, np.float32)[:, :, None])


def _transformer(torch, task):
    nn, s = torch.nn, task.settings
    d, T, vocab = s["d_model"], s["sequence_length"], s["vocab"]

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok = nn.Embedding(vocab, d)
            self.pos = nn.Parameter(torch.zeros(T, d))
            layer = nn.TransformerEncoderLayer(d, s["heads"], s["mlp_ratio"] * d, dropout=0.0, activation="gelu",
                                               batch_first=True, norm_first=True)
            self.blocks = nn.TransformerEncoder(layer, s["layers"], enable_nested_tensor=False)
            self.norm = nn.LayerNorm(d)
            self.head = nn.Linear(d, vocab)
            self.register_buffer("causal", nn.Transformer.generate_square_subsequent_mask(T), persistent=False)

        def forward(self, ids):                                # (batch, T) token ids
            h = self.tok(ids) + self.pos[:ids.shape[1]]
            h = self.blocks(h, mask=self.causal, is_causal=True)
            return self.head(self.norm(h))

    model = GPT()
    p = gpt_parts(task.params, s["layers"])
    with torch.no_grad():
        model.tok.weight.copy_(_t(torch, p["tok"]))
        model.pos.copy_(_t(torch, p["pos"][:T]))
        for layer, blk in zip(model.blocks.layers, p["blocks"]):
            attn = layer.self_attn
            attn.in_proj_weight.copy_(_t(torch, np.concatenate([blk["W_q"].T, blk["W_k"].T, blk["W_v"].T])))
            attn.in_proj_bias.copy_(_t(torch, np.concatenate([blk["b_q"], np.zeros_like(blk["b_q"]), blk["b_v"]])))
            attn.out_proj.weight.copy_(_t(torch, blk["W_o"].T))
            attn.out_proj.bias.copy_(_t(torch, blk["b_o"]))
            for norm, (scale, offset) in ((layer.norm1, blk["ln1"]), (layer.norm2, blk["ln2"])):
                norm.weight.copy_(_t(torch, scale))
                norm.bias.copy_(_t(torch, offset))
            for lin, (W, b) in ((layer.linear1, blk["mlp1"]), (layer.linear2, blk["mlp2"])):
                lin.weight.copy_(_t(torch, W.T))
                lin.bias.copy_(_t(torch, b))
        model.norm.weight.copy_(_t(torch, p["ln"][0]))
        model.norm.bias.copy_(_t(torch, p["ln"][1]))
        model.head.weight.copy_(_t(torch, p["head"][0].T))
        model.head.bias.copy_(_t(torch, p["head"][1]))
    return model, lambda x: torch.from_numpy(np.array(x, np.int64))


def prepare(name, task, *, threads=None):
    """The Trainer of PyTorch contender `name` ("torch" or "torch-compile") for `task`, on `threads` CPU
    threads (default THREADS)."""
    torch = _import_torch()
    threads = threads or THREADS
    torch.set_num_threads(threads)
    torch.manual_seed(task.settings["seed"])
    model, to_input = {"cnn": _cnn, "gru": _gru, "transformer": _transformer}[task.name](torch, task)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    forward = torch.compile(model) if name == "torch-compile" else model
    s = task.settings
    x, y = to_input(task.x_train), torch.from_numpy(np.array(task.y_train, np.int64))
    n, per_epoch, batch = x.shape[0], x.shape[0] // s["batch_size"], s["batch_size"]
    F = torch.nn.functional

    def loss_fn(logits, labels):
        if task.name != "transformer":
            return F.cross_entropy(logits, labels)
        # the answer tokens' cross-entropy, summed, over every position of the batch (fnn's scaling)
        return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE,
                               reduction="sum") / labels.numel()

    def train():
        model.load_state_dict(initial)                         # in place: torch.compile's program is kept
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=s["learning_rate"])
        sched = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=s["steps"])
                 if s["schedule"] == "cosine" else None)
        gen = torch.Generator().manual_seed(s["seed"])
        for step in range(s["steps"]):
            j = step % per_epoch
            if j == 0:
                perm = torch.randperm(n, generator=gen)
            idx = perm[j * batch:(j + 1) * batch]
            loss = loss_fn(forward(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
        return model

    def score(trained):
        trained.eval()
        with torch.no_grad():
            return task.score(lambda xs: trained(to_input(xs)).numpy())

    description = f"PyTorch {torch.__version__} eager, nn.Module + torch.optim.Adam loop, {threads} thread(s)"
    if name == "torch-compile":
        description = (f"PyTorch {torch.__version__}: torch.compile(module), mode default, the same loop, "
                       f"{threads} thread(s)")
        train, note = _compiled(torch, train)
        return Trainer(name, description, "cpu", train, score, s["steps"], threads, note)
    return Trainer(name, description, "cpu", train, score, s["steps"], threads)


def _compiled(torch, train):
    """(train, note) for torch.compile: a failure of the first call (the compilation) becomes
    PeerUnavailable("unavailable: why"); note() then says what Dynamo compiled, and where it fell back
    to eager (a graph break: e.g. nn.GRU, which Dynamo does not trace by default)."""
    from torch._dynamo.utils import counters
    state = {"note": None}

    def call():
        if state["note"] is not None:
            return train()
        counters.clear()
        try:
            out = train()
        except Exception as e:  # noqa: BLE001 - whatever stops torch.compile here is recorded, not raised
            raise PeerUnavailable(f"unavailable: {type(e).__name__}: {one_line(str(e))[:300]}") from e
        state["note"] = _dynamo_note(counters)
        return out
    return call, lambda: state["note"] or ""


def _dynamo_note(counters):
    graphs = counters["stats"].get("unique_graphs", 0)
    breaks = sum(counters["graph_break"].values()) + sum(counters["unimplemented"].values())
    reasons = [one_line(r).split(" Explanation:")[0] for r in list(counters["unimplemented"])
               + list(counters["graph_break"])]
    note = f"{graphs} graph(s) compiled, {breaks} graph break(s)"
    if graphs == 0:
        note += ", so it ran eager"
    return note + (f" ({'; '.join(dict.fromkeys(reasons))})" if reasons else "")
