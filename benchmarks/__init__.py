"""fnn's benchmarks: manual against autodiff gradients (benchmarks.grads), fnn against its peers (benchmarks.peers),
and all of it on one GPU in one command (benchmarks.gpu).

    python -m benchmarks.grads --quick
    python -m benchmarks.grads --json grads.json --md grads.md --plots plots/
    python -m benchmarks.peers --json peers.json --md peers.md
    PYTHONPATH=. python -m benchmarks.gpu --data benchmarks/data/mnist1d.npz --out gpu-results
"""
