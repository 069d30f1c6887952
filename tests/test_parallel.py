"""Data parallelism: 4 CPU devices give the parameters of 1 device; scripts/train.py --devices."""
import json
import os
import socket
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

import fnn
from fnn import data, optim, parallel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FOUR_DEVICES = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4")

# Run with 4 host devices (XLA_FLAGS must be set before jax is imported): train the same
# networks on 1 device and data-parallel on 4, and report what the test checks.
FOUR_DEVICE_PROGRAM = textwrap.dedent("""
    import json
    import jax, jax.numpy as jnp, numpy as np
    from jax.flatten_util import ravel_pytree
    import fnn
    from fnn import data, optim, parallel
    from fnn.train import init_state, make_step

    ds = data.spirals(jax.random.key(0), n=200)
    out = {"devices": len(jax.devices())}

    def max_diff(a, b):
        return max(float(np.max(np.abs(np.asarray(u) - np.asarray(v))))
                   for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)))

    for name, model, method in (("relu", fnn.mlp([2, 32, 32, 2], "relu"), "manual"),
                                ("dropout", fnn.mlp([2, 32, 32, 2], "tanh", dropout=0.2), "autodiff")):
        _, params = model.init(jax.random.key(1), (-1, 2))
        kw = dict(key=jax.random.key(2), steps=100, batch_size=40, progress=False)
        one = fnn.fit(model, "softmax_cross_entropy", optim.adam(1e-2), params, ds.x_train, ds.y_train,
                      config=fnn.StepConfig(method=method), **kw)
        four = fnn.fit(model, "softmax_cross_entropy", optim.adam(1e-2), params, ds.x_train, ds.y_train,
                       config=fnn.StepConfig(method=method, mesh=parallel.make_mesh(4)), **kw)
        w = four.params[0]["W"]
        if name == "relu":                            # the reference of the two-process test
            out["relu_one_device_params"] = np.asarray(ravel_pytree(one.params)[0]).tolist()
        out[f"{name}/{method}"] = {
            "max_abs_diff": max_diff(one.params, four.params),
            "max_abs_param": max(float(np.max(np.abs(np.asarray(p)))) for p in jax.tree.leaves(one.params)),
            "param_devices": len(w.sharding.device_set),
            "replicated": bool(w.sharding.is_fully_replicated)}

    # BatchNorm: its batch statistics are means over the sharded batch, i.e. of the global batch
    model = fnn.serial(fnn.Dense(16), fnn.BatchNorm(), fnn.Activation("relu"), fnn.Dense(2))
    _, params = model.init(jax.random.key(1), (-1, 2))
    kw = dict(key=jax.random.key(2), steps=30, batch_size=40, progress=False)
    runs = [fnn.fit(model, "softmax_cross_entropy", optim.sgd(0.1), params, ds.x_train, ds.y_train,
                    config=fnn.StepConfig(mesh=mesh), **kw) for mesh in (None, parallel.make_mesh(4))]
    one, four = [(r.params, r.model_state) for r in runs]
    out["batchnorm/manual"] = {
        "max_abs_diff": max_diff(one, four),
        "max_abs_param": max(float(np.max(np.abs(np.asarray(p)))) for p in jax.tree.leaves(one)),
        "param_devices": len(runs[1].model_state[1]["mean"].sharding.device_set),
        "replicated": bool(runs[1].model_state[1]["mean"].sharding.is_fully_replicated),
        "state_moved": max_diff(one[1], fnn.init_state(model, (-1, 2)))}

    model = fnn.mlp([2, 32, 32, 2], "relu")
    _, params = model.init(jax.random.key(1), (-1, 2))
    mesh = parallel.make_mesh(4)
    step = make_step(model, "softmax_cross_entropy", optim.sgd(0.1), fnn.StepConfig(mesh=mesh))
    state = parallel.replicate(init_state(params, optim.sgd(0.1), jax.random.key(0)), mesh)
    x, y = parallel.replicate((jnp.asarray(ds.x_train[:40]), jnp.asarray(ds.y_train[:40])), mesh)
    hlo = jax.jit(step).lower(state, x, y).compile().as_text()
    out["all_reduce"] = hlo.count("all-reduce(")
    out["all_gather"] = hlo.count("all-gather(")
    try:
        step(state, x[:38], y[:38])
    except ValueError as e:
        out["odd_batch_error"] = str(e)

    # The train command on these 4 devices, called as scripts/train.py calls it (its exit code,
    # stdout and stderr), in this process rather than in one more JAX process each.
    import contextlib, io, sys
    from fnn import cli
    from fnn.commands.train import main as train
    out["train"] = []
    for argv in TRAIN_RUNS:
        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = cli.run(train, [*argv, "--no-progress", "--out", sys.argv[1] + "/" + str(len(out["train"]))],
                           prog="train.py")
        out["train"].append({"code": code, "stdout": stdout.getvalue(), "stderr": stderr.getvalue()})
    print("RESULT " + json.dumps(out))
""")

# The train command's runs in that program: one that trains on the 4 devices, then two refused.
TRAIN_RUNS = [
    ["--dataset", "xor", "--hidden", "4", "--activation", "tanh", "--optimizer", "sgd", "--lr", "1",
     "--steps", "600", "--devices", "4"],
    ["--dataset", "moons", "--batch-size", "100", "--devices", "3", "--steps", "5"],
    ["--devices", "8", "--steps", "5"],
]


@pytest.fixture(scope="module")
def four_devices(tmp_path_factory):
    program = f"TRAIN_RUNS = {TRAIN_RUNS!r}\n{FOUR_DEVICE_PROGRAM}"
    folder = tmp_path_factory.mktemp("four-devices")
    r = subprocess.run([sys.executable, "-c", program, str(folder)], capture_output=True, text=True,
                       timeout=300, env=FOUR_DEVICES, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    line = next(l for l in r.stdout.splitlines() if l.startswith("RESULT "))
    return dict(json.loads(line[len("RESULT "):]), folder=folder)


@pytest.mark.parametrize("case", ["relu/manual", "dropout/autodiff", "batchnorm/manual"])
def test_four_devices_give_the_parameters_of_one_device(four_devices, case):
    r = four_devices[case]
    assert four_devices["devices"] == 4
    assert r["param_devices"] == 4 and r["replicated"]
    assert r["max_abs_diff"] <= 1e-5 * max(1.0, r["max_abs_param"]), r    # float32 reassociation only
    if case == "batchnorm/manual":     # BatchNorm's running statistics too (global-batch statistics)
        assert r["state_moved"] > 1e-2, r


def test_the_step_all_reduces_gradients_and_never_gathers_the_batch(four_devices):
    assert four_devices["all_reduce"] >= 1
    assert four_devices["all_gather"] == 0
    assert "batch size 38 is not divisible by the 4 devices" in four_devices["odd_batch_error"]


# One of two processes (2 host devices each) joined by jax.distributed.initialize: the same
# script, the same data, a mesh over the 4 global devices; the relu/manual training above.
TWO_PROCESS_PROGRAM = textwrap.dedent("""
    import json, sys
    import jax
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=sys.argv[1], num_processes=2, process_id=int(sys.argv[2]))
    import numpy as np
    from jax.flatten_util import ravel_pytree
    import fnn
    from fnn import data, optim, parallel

    ds = data.spirals(jax.random.key(0), n=200)
    model = fnn.mlp([2, 32, 32, 2], "relu")
    _, params = model.init(jax.random.key(1), (-1, 2))
    mesh = parallel.make_mesh()
    r = fnn.fit(model, "softmax_cross_entropy", optim.adam(1e-2), params, ds.x_train, ds.y_train,
                key=jax.random.key(2), steps=100, batch_size=40, progress=False,
                config=fnn.StepConfig(mesh=mesh))
    local = jax.tree.map(lambda a: np.asarray(a.addressable_shards[0].data), r.params)
    print("RESULT " + json.dumps({"global_devices": len(jax.devices()), "local_devices": len(jax.local_devices()),
                                  "mesh_devices": int(mesh.devices.size),
                                  "params": np.asarray(ravel_pytree(local)[0]).tolist()}))
""")


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_processes_with_jax_distributed_train_like_one_device(four_devices):
    if not hasattr(jax.config, "jax_cpu_collectives_implementation"):
        pytest.skip("this jax has no CPU collectives for multi-process runs")
    address = f"localhost:{_free_port()}"
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    procs = [subprocess.Popen([sys.executable, "-c", TWO_PROCESS_PROGRAM, address, str(i)], env=env, cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in outputs]
    results = [json.loads(next(l for l in out.splitlines() if l.startswith("RESULT "))[len("RESULT "):])
               for out, _ in outputs]
    reference = np.asarray(four_devices["relu_one_device_params"])     # the same training on 1 device
    for r in results:
        assert (r["global_devices"], r["local_devices"], r["mesh_devices"]) == (4, 2, 4)
        np.testing.assert_allclose(r["params"], reference, rtol=1e-5, atol=1e-5)


def test_train_script_runs_data_parallel_on_four_devices(four_devices):
    r = four_devices["train"][0]
    assert r["code"] == 0, r["stderr"]
    assert "device: cpu (cpu) x4" in r["stdout"]
    assert "split over 4 devices (1 each), gradients all-reduced" in r["stdout"]
    m = json.loads((four_devices["folder"] / "0" / "metrics.json").read_text())
    assert m["devices"] == 4 and m["steps"] == 600
    assert m["test_accuracy"] == 1.0


@pytest.mark.parametrize("run, message", [
    (1, "batch size 100 is not divisible by the 3 devices"),
    (2, "8 devices requested, but only 4 cpu device(s) are available"),
])
def test_train_script_device_errors_are_one_line(four_devices, run, message):
    r = four_devices["train"][run]
    assert r["code"] == 2
    assert message in r["stderr"]
    assert len(r["stderr"].strip().splitlines()) == 1, r["stderr"]
    assert r["stderr"].startswith("train.py: error:")


def test_make_mesh_and_batch_checks():
    n = len(jax.devices())
    assert parallel.make_mesh().devices.size == n
    assert parallel.make_mesh(1).axis_names == (parallel.BATCH_AXIS,)
    with pytest.raises(ValueError, match="xla_force_host_platform_device_count"):
        parallel.make_mesh(n + 1)
    with pytest.raises(ValueError, match="must be >= 1"):
        parallel.make_mesh(0)
    with pytest.raises(TypeError, match="1-D jax.sharding.Mesh"):
        parallel.batch_sharding("batch")
    mesh = parallel.make_mesh(1)
    parallel.check_batch_size(7, mesh)                         # anything splits over one device


def test_fit_on_a_one_device_mesh_equals_fit_without_one():
    ds = data.moons(jax.random.key(0), n=64)
    model = fnn.mlp([2, 8, 2], "tanh")
    _, params = model.init(jax.random.key(0), (-1, 2))
    kw = dict(key=jax.random.key(1), steps=50, batch_size=16, progress=False)
    plain = fnn.fit(model, "softmax_cross_entropy", optim.adam(1e-2), params, ds.x_train, ds.y_train, **kw)
    meshed = fnn.fit(model, "softmax_cross_entropy", optim.adam(1e-2), params, ds.x_train, ds.y_train,
                     config=fnn.StepConfig(mesh=parallel.make_mesh(1)), **kw)
    for a, b in zip(jax.tree.leaves(plain.params), jax.tree.leaves(meshed.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
