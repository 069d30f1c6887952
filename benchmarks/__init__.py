"""fnn's benchmarks: manual against autodiff gradients (benchmarks.grads), fnn against its peers (benchmarks.peers).

    python -m benchmarks.grads --quick
    python -m benchmarks.grads --json grads.json --md grads.md --plots plots/
    python -m benchmarks.peers --json peers.json --md peers.md
"""
