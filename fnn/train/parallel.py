"""Data parallelism with JAX's own sharding: the batch split over devices, parameters replicated.

A 1-D `jax.sharding.Mesh` names the devices' axis "batch". Inside the jitted
train step every minibatch is constrained to `NamedSharding(mesh, P("batch"))`
(each device holds batch / n rows) and the gradients to `NamedSharding(mesh,
P())` (every device holds all of them). XLA's SPMD partitioner then runs the
forward and the hand-written backward on each device's rows and turns the
sums over the batch into all-reduces across devices:

    dW = Xᵀ dZ = Σ_devices X_dᵀ dZ_d         (an all-reduce of the per-device dW_d)
    L  = (1/B) Σ_rows ℓ  = Σ_devices (1/B) Σ_{rows of d} ℓ

so n devices compute the same parameters as one device, up to the order of
float32 additions. The same holds for BatchNorm: its batch mean and variance
are means over the sharded batch axis, which the partitioner also turns into
all-reduces, so each device normalizes with the statistics of the whole
global batch (synchronized batch norm), and the running statistics in the
model state come back replicated like the gradients. The parameters, optimizer state and data set are
replicated (`replicate`): each device applies the same update.

    mesh = fnn.train.parallel.make_mesh(4)
    result = fnn.fit(model, loss, opt, params, x, y, key=key, steps=1000, batch_size=128,
                     config=fnn.StepConfig(mesh=mesh))

On several hosts, call jax.distributed.initialize() in every process first:
jax.devices() then lists every host's devices, make_mesh() spans them all,
and the same program shards each global batch over all of them (every
process runs the same script on the same data).
"""
from typing import Any, Callable, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from fnn.errors import InputError, InputTypeError
from fnn.typing import PyTree

__all__ = ["BATCH_AXIS", "make_mesh", "batch_sharding", "replicated_sharding", "replicate",
           "shard_batch", "check_batch_size", "data_parallel"]

BATCH_AXIS = "batch"

TOO_MANY_DEVICES = ("{n} devices requested, but only {available} {platform} device(s) are available; "
                    "on CPU, set XLA_FLAGS=--xla_force_host_platform_device_count={n} before starting Python")
NOT_DIVISIBLE = ("batch size {batch} is not divisible by the {n} devices of the mesh; "
                 "expected a multiple of {n} (e.g. {suggestion})")


def make_mesh(devices: Union[None, int, Sequence[jax.Device]] = None, axis_name: str = BATCH_AXIS) -> Mesh:
    """A 1-D Mesh over `devices`, its one axis named axis_name.

    jax.devices() holds every process's devices after jax.distributed.initialize(),
    so the mesh spans all hosts.

    Args:
      devices: an int n (the first n of jax.devices()), a list of devices, or None (all).
      axis_name: the name of the mesh's axis.

    Returns:
      A jax.sharding.Mesh of shape (n,).

    Raises:
      InputError: for n < 1 or more devices than there are (the message says how to get
        more CPU devices).
      InputTypeError: for devices that are not an int, a list of jax devices or None.
    """
    available = jax.devices()
    if devices is None:
        devices = available
    elif isinstance(devices, int) and not isinstance(devices, bool):
        if devices < 1:
            raise InputError(f"the number of devices must be >= 1, got {devices!r}")
        if devices > len(available):
            raise InputError(TOO_MANY_DEVICES.format(n=devices, available=len(available),
                                                     platform=available[0].platform))
        devices = available[:devices]
    else:
        devices = list(devices)
        if not devices or not all(isinstance(d, jax.Device) for d in devices):
            raise InputTypeError(f"devices must be an int, a non-empty list of jax devices or None, got {devices!r}")
    return Mesh(np.array(devices), (axis_name,))


def _axis(mesh):
    if not isinstance(mesh, Mesh) or len(mesh.axis_names) != 1:
        raise InputTypeError(f"expected a 1-D jax.sharding.Mesh from fnn.parallel.make_mesh, got {mesh!r}")
    return mesh.axis_names[0]


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """NamedSharding that splits the leading (batch) dimension over the mesh's devices.

    Args:
      mesh: a 1-D Mesh from make_mesh.

    Returns:
      NamedSharding(mesh, P(axis)).

    Raises:
      InputTypeError: if mesh is not a 1-D Mesh.
    """
    return NamedSharding(mesh, P(_axis(mesh)))


def replicated_sharding(mesh: Mesh) -> NamedSharding:
    """NamedSharding that keeps a whole copy on every device of the mesh.

    Args:
      mesh: a 1-D Mesh from make_mesh.

    Returns:
      NamedSharding(mesh, P()).

    Raises:
      InputTypeError: if mesh is not a 1-D Mesh.
    """
    _axis(mesh)
    return NamedSharding(mesh, P())


def replicate(tree: PyTree, mesh: Mesh) -> PyTree:
    """Every leaf of `tree` (arrays, PRNG keys) copied onto every device of the mesh.

    Each leaf goes through host memory into jax.make_array_from_callback, which
    also builds arrays spanning other hosts' devices; every process must then
    pass the same values.

    Args:
      tree: a pytree of arrays and PRNG keys.
      mesh: a 1-D Mesh from make_mesh.

    Returns:
      The same tree, each leaf a replicated global array.
    """
    sharding = replicated_sharding(mesh)

    def put(leaf):
        if jnp.issubdtype(jnp.result_type(leaf), jax.dtypes.prng_key):
            return jax.random.wrap_key_data(put(jax.random.key_data(leaf)), impl=jax.random.key_impl(leaf))
        host = np.asarray(leaf)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree.map(put, tree)


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
    """ValueError unless the batch splits evenly over the mesh's devices.

    Args:
      batch_size: the global batch size.
      mesh: the Mesh the batch is split over.

    Raises:
      InputError: if batch_size is not a multiple of the mesh's devices (the message
        suggests one that is).
    """
    n = mesh.devices.size
    if batch_size % n:
        suggestion = max(n, batch_size - batch_size % n)
        raise InputError(NOT_DIVISIBLE.format(batch=batch_size, n=n, suggestion=suggestion))


def shard_batch(tree: PyTree, mesh: Mesh) -> PyTree:
    """Every leaf's leading dimension split over the mesh's devices (outside jit).

    Args:
      tree: a pytree of arrays with the same leading (batch) dimension.
      mesh: a 1-D Mesh from make_mesh.

    Returns:
      The tree, device_put with batch_sharding(mesh).

    Raises:
      InputError: if a leading dimension is not a multiple of the mesh's devices.
    """
    for leaf in jax.tree.leaves(tree):
        check_batch_size(leaf.shape[0], mesh)
    return jax.device_put(tree, batch_sharding(mesh))


def data_parallel(gradients: Callable[..., Any], mesh: Mesh) -> Callable[..., Any]:
    """Wrap gradients(params, x, y, *rest) -> Backprop to run data-parallel on `mesh` under jit.

    x and y are split over the devices by their leading dimension, the
    gradients (and the new model state) come back replicated: the partitioner
    all-reduces each device's Σ over its rows, for the hand-written backward as for jax.grad.

    Args:
      gradients: fn(params, x, y, *rest) -> a Backprop (grads, state, ...), e.g. a
        closure over fnn.forward_backward.
      mesh: a 1-D Mesh from make_mesh.

    Returns:
      fn(params, x, y, *rest) -> Backprop, with the same signature, to call under jit.
    """
    batch, replicated = batch_sharding(mesh), replicated_sharding(mesh)

    def fn(params, x, y, *rest):
        check_batch_size(x.shape[0], mesh)
        x, y = jax.lax.with_sharding_constraint((x, y), batch)           # (B / n, ...) per device
        r = gradients(params, x, y, *rest)
        return r._replace(grads=jax.lax.with_sharding_constraint(r.grads, replicated),  # all-reduced
                          state=jax.lax.with_sharding_constraint(r.state, replicated))

    return fn
