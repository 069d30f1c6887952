"""Backpropagation on a computational graph, one hand-written local derivative per operation.

Seed 002 draws y = (a + b)(b − c) as a graph: inputs a, b, c; nodes
d = a + b, e = b − c, y = d·e. `backprop(fn, *args)` builds that graph from
any small Python function of scalars (or of same-shaped arrays, elementwise),
evaluates it forward recording every node's value, then walks it backward:

    ḡ_y = 1                               the output's gradient w.r.t. itself
    ḡ_x += ḡ_y · ∂y/∂x                    for each operation y and each input x of y

so a node used twice (b above) adds up the gradient of both paths. The graph
is traced with jax.make_jaxpr; the local derivatives ∂y/∂x are written out
below (`_RULES`), not taken from JAX.

    r = backprop(lambda a, b, c: (a + b) * (b - c), 2.0, 3.0, 1.0)
    r.value  # 10.0
    r.grads  # (2.0, 7.0, -5.0) = (b − c, (b − c) + (a + b), −(a + b))
    r.nodes  # a, b, c, d = add(a, b), e = sub(b, c), f = mul(d, e)
"""
import inspect
import string
from typing import Any, NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp
from jax.extend.core import Literal

from fnn.errors import InputError, InputTypeError

__all__ = ["Node", "GraphResult", "backprop", "SUPPORTED_PRIMITIVES"]


class Node(NamedTuple):
    """One value of the graph: an input, a constant, or the result of one operation.

    name: unique within the graph ("a", "b", ... as in seed 002).
    op: "input", "const", or the operation ("add", "mul", "tanh", ...).
    inputs: names of the nodes the operation reads, in order.
    value: the forward value.
    grad: ∂output/∂node summed over every path (None for boolean/integer nodes).
    params: the operation's parameters, e.g. {"y": 2} for integer_pow.
    """
    name: str
    op: str
    inputs: Tuple[str, ...]
    value: Any
    grad: Any
    params: dict


class GraphResult(NamedTuple):
    """backprop's answer: the output, one gradient per input, and the graph itself."""
    value: Any
    grads: Tuple[Any, ...]
    nodes: Tuple[Node, ...]
    output: str

    def node(self, name):
        """The node called `name`."""
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(f"no node named {name!r}; nodes are {', '.join(n.name for n in self.nodes)}")


# ---------------------------------------------------------------------------
# Local derivatives. Each rule maps (g, y, *x, **params) to g·∂y/∂x_k for each
# input x_k of y = op(*x), where g = ∂output/∂y. None: no gradient flows there.
# ---------------------------------------------------------------------------

def _balanced(x, y, other):
    """[x = y] / (1 + [other = y]): max/min send g to the winner, half each on a tie (as jax.grad)."""
    return (x == y).astype(y.dtype) / (1 + (other == y).astype(y.dtype))


def _integer_pow(g, y, a, *, y_exp):
    """y = aⁿ:  ∂y/∂a = n·aⁿ⁻¹  (0 for n = 0)."""
    del y
    if y_exp == 0:
        return (jnp.zeros_like(g),)
    return (g * y_exp * jax.lax.integer_pow(a, y_exp - 1),)


def _pow(g, y, a, b):
    """y = aᵇ:  ∂y/∂a = b·aᵇ⁻¹,  ∂y/∂b = aᵇ·log a  (log taken as 0 where a = 0, as jax.grad)."""
    return g * b * a ** (b - 1), g * y * jnp.log(jnp.where(a == 0, jnp.ones_like(a), a))


def _reduce_sum(g, y, a, *, axes):
    """y = Σ_axes a:  ∂y/∂a = 1, so g is broadcast back over the summed axes."""
    del y
    return (jnp.broadcast_to(jnp.expand_dims(g, tuple(axes)), a.shape),)


def _broadcast_in_dim(g, y, a, *, shape, broadcast_dimensions):
    """y = a copied along new axes:  ∂/∂a sums g over the copies."""
    del y, shape
    new_axes = tuple(i for i in range(g.ndim) if i not in broadcast_dimensions)
    g = jnp.sum(g, axis=new_axes)
    return (_unbroadcast(g, a.shape),)


def _select_n(g, y, which, *cases):
    """y = cases[which]:  g goes to the case that was picked, elementwise."""
    del y
    which = which.astype(jnp.int32)
    return (None,) + tuple(
        jnp.where(which == i, g, jnp.zeros_like(g)) for i in range(len(cases)))


def _no_grad(g, y, *xs):
    """Comparisons: a boolean output carries no gradient."""
    del g, y
    return (None,) * len(xs)


_RULES = {
    "add": lambda g, y, a, b: (g, g),                          # y = a + b
    "sub": lambda g, y, a, b: (g, -g),                         # y = a − b
    "mul": lambda g, y, a, b: (g * b, g * a),                  # y = a·b
    "div": lambda g, y, a, b: (g / b, -g * y / b),             # y = a/b: ∂y/∂b = −a/b² = −y/b
    "neg": lambda g, y, a: (-g,),                              # y = −a
    "exp": lambda g, y, a: (g * y,),                           # y = eᵃ: ∂y/∂a = eᵃ = y
    "log": lambda g, y, a: (g / a,),                           # y = log a: 1/a
    "log1p": lambda g, y, a: (g / (1 + a),),                   # y = log(1 + a): 1/(1 + a)
    "expm1": lambda g, y, a: (g * (y + 1),),                   # y = eᵃ − 1: eᵃ = y + 1
    "tanh": lambda g, y, a: (g * (1 - y * y),),                # y = tanh a: 1 − y²
    "logistic": lambda g, y, a: (g * y * (1 - y),),            # y = σ(a): y(1 − y)
    "sin": lambda g, y, a: (g * jnp.cos(a),),                  # y = sin a: cos a
    "cos": lambda g, y, a: (-g * jnp.sin(a),),                 # y = cos a: −sin a
    "sqrt": lambda g, y, a: (g * 0.5 / y,),                    # y = √a: 1/(2√a)
    "rsqrt": lambda g, y, a: (g * -0.5 * y / a,),              # y = a^−½: −½ a^−³ᐟ² = −½ y/a
    "square": lambda g, y, a: (g * 2 * a,),                    # y = a²: 2a
    "abs": lambda g, y, a: (g * jnp.sign(a),),                 # y = |a|: sign a
    "integer_pow": _integer_pow,
    "pow": _pow,
    "max": lambda g, y, a, b: (g * _balanced(a, y, b), g * _balanced(b, y, a)),
    "min": lambda g, y, a, b: (g * _balanced(a, y, b), g * _balanced(b, y, a)),
    "convert_element_type": lambda g, y, a: (g,),              # y = a in another dtype
    "copy": lambda g, y, a: (g,),
    "copy_p": lambda g, y, a: (g,),
    "reduce_sum": _reduce_sum,
    "broadcast_in_dim": _broadcast_in_dim,
    "select_n": _select_n,
    "gt": _no_grad, "ge": _no_grad, "lt": _no_grad, "le": _no_grad, "eq": _no_grad, "ne": _no_grad,
}

# The parameters each rule reads (integer_pow's exponent is renamed: y is the output here).
_RULE_PARAMS = {
    "integer_pow": {"y": "y_exp"},
    "reduce_sum": {"axes": "axes"},
    "broadcast_in_dim": {"shape": "shape", "broadcast_dimensions": "broadcast_dimensions"},
}

# Calls of a sub-function (jit inside jnp.where, custom_jvp in jax.nn.relu): their body is
# inlined into the graph and differentiated operation by operation. A custom derivative
# rule is not used, e.g. relu'(0) is ½ here (the max tie rule) where jax.grad gives 0.
_INLINE = {"jit": "jaxpr", "pjit": "jaxpr", "closed_call": "call_jaxpr",
           "core_call": "call_jaxpr", "custom_jvp_call": "call_jaxpr"}

SUPPORTED_PRIMITIVES = tuple(sorted(_RULES)) + tuple(sorted(_INLINE))

_NOT_SUPPORTED = (
    "examples.graph.backprop: operation {op!r} has no local derivative rule here; "
    "supported operations: {supported}")


def _unbroadcast(ct, shape):
    """Sum a cotangent down to `shape`, undoing scalar/size-1 broadcasting (y = a·b, a scalar)."""
    if ct.shape == tuple(shape):
        return ct
    lead = ct.ndim - len(shape)
    ct = jnp.sum(ct, axis=tuple(range(lead)))
    ones = tuple(i for i, n in enumerate(shape) if n == 1 and ct.shape[i] != 1)
    return jnp.sum(ct, axis=ones, keepdims=True).reshape(shape)


def _is_float(x):
    return jnp.issubdtype(x.dtype, jnp.floating)


def _as_input(i, arg):
    """A float array from an argument; Python numbers become the default float dtype."""
    if isinstance(arg, bool):
        raise InputTypeError(f"examples.graph.backprop: argument {i} is the bool {arg!r}; expected a float or float array")
    if isinstance(arg, (int, float)):
        return jnp.asarray(float(arg))
    try:
        x = jnp.asarray(arg)
    except TypeError as e:
        raise InputTypeError(f"examples.graph.backprop: argument {i} ({type(arg).__name__}) is not an array: {e}") from None
    if not _is_float(x):
        raise InputTypeError(
            f"examples.graph.backprop: argument {i} has dtype {x.dtype}; expected a floating dtype")
    return x


def _input_names(fn, n):
    """The function's parameter names (a, b, c for lambda a, b, c: ...), else x0, x1, ..."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        params = []
    positional = [p.name for p in params
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) >= n:
        return positional[:n]
    return [f"x{i}" for i in range(n)]


class _Builder:
    """Evaluates a jaxpr forward, one graph node per operation, inlining sub-calls."""

    def __init__(self, input_names):
        self.nodes = []          # dicts: name, op, inputs (indices), value, params
        self.taken = set(input_names)
        self.letters = (c for c in string.ascii_lowercase)
        self.count = 0

    def _fresh(self, prefix=None):
        if prefix is None:
            for c in self.letters:
                if c not in self.taken:
                    self.taken.add(c)
                    return c
            prefix = "v"
        while f"{prefix}{self.count}" in self.taken:
            self.count += 1
        name = f"{prefix}{self.count}"
        self.taken.add(name)
        return name

    def add(self, name, op, inputs, value, params=None):
        self.nodes.append(dict(name=name, op=op, inputs=tuple(inputs), value=value,
                               params=dict(params or {})))
        return len(self.nodes) - 1

    def const(self, value):
        return self.add(self._fresh("const"), "const", (), jnp.asarray(value))

    def read(self, env, var):
        if isinstance(var, Literal):
            return self.const(var.val)
        return env[var]

    def run(self, closed, in_ids):
        """Node ids of the jaxpr's outputs, given node ids for its inputs."""
        jaxpr = closed.jaxpr
        env = {v: self.const(c) for v, c in zip(jaxpr.constvars, closed.consts)}
        env.update(zip(jaxpr.invars, in_ids))
        for eqn in jaxpr.eqns:
            ids = [self.read(env, v) for v in eqn.invars]
            op = eqn.primitive.name
            if op in _INLINE:
                out_ids = self.run(eqn.params[_INLINE[op]], ids)
            elif op in _RULES:
                vals = [self.nodes[i]["value"] for i in ids]
                out = eqn.primitive.bind(*vals, **eqn.params)
                out_ids = [self.add(self._fresh(), op, ids, out, eqn.params)]
            else:
                raise NotImplementedError(
                    _NOT_SUPPORTED.format(op=op, supported=", ".join(SUPPORTED_PRIMITIVES)))
            env.update(zip(eqn.outvars, out_ids))
        return [self.read(env, v) for v in jaxpr.outvars]


def _rule_kwargs(op, params):
    return {new: params[old] for old, new in _RULE_PARAMS.get(op, {}).items()}


def _backward(nodes, out_id):
    """∂output/∂node for every node, in reverse topological (= reverse creation) order."""
    out_value = nodes[out_id]["value"]
    cts = [None] * len(nodes)
    cts[out_id] = jnp.ones_like(out_value)
    for i in reversed(range(len(nodes))):
        node, g = nodes[i], cts[i]
        if g is None or node["op"] in ("input", "const"):
            continue
        xs = [nodes[j]["value"] for j in node["inputs"]]
        local = _RULES[node["op"]](g, node["value"], *xs, **_rule_kwargs(node["op"], node["params"]))
        for j, ct in zip(node["inputs"], local):
            x = nodes[j]["value"]
            if ct is None or not _is_float(x):
                continue
            ct = _unbroadcast(ct, x.shape).astype(x.dtype)
            cts[j] = ct if cts[j] is None else cts[j] + ct
    return [ct if ct is not None or not _is_float(n["value"]) else jnp.zeros_like(n["value"])
            for n, ct in zip(nodes, cts)]


def backprop(fn, *args, output_name: Optional[str] = None) -> GraphResult:
    """Value and gradients of fn(*args) by backpropagation on its computational graph.

    The output's gradient is seeded with ones, so for an array output (an
    elementwise function) `grads` are the gradients of its sum, i.e. the
    elementwise derivatives.

    Args:
      fn: a function of float scalars (or same-shaped float arrays) returning one array.
      *args: its arguments; Python numbers become the default float dtype.
      output_name: a name for the output node (e.g. "y"); by default the next letter.
    Returns:
      GraphResult(value, grads, nodes, output): grads[i] = ∂fn/∂args[i]; nodes
      in evaluation order (inputs first), each with its value and its gradient.
    Raises:
      NotImplementedError: fn uses an operation with no rule here (the message names it).
      TypeError, ValueError: fn is not callable, an argument is not a float, or fn
        does not return exactly one array.
    """
    if not callable(fn):
        raise InputTypeError(f"examples.graph.backprop: fn must be callable, got {type(fn).__name__}")
    if not args:
        raise InputError("examples.graph.backprop: expected at least one argument to differentiate against")
    xs = [_as_input(i, a) for i, a in enumerate(args)]
    closed = jax.make_jaxpr(fn)(*xs)
    if len(closed.jaxpr.outvars) != 1:
        raise InputError(
            f"examples.graph.backprop: fn must return one array, got {len(closed.jaxpr.outvars)} outputs")
    names = _input_names(fn, len(xs))
    b = _Builder(names)
    in_ids = [b.add(name, "input", (), x) for name, x in zip(names, xs)]
    (out_id,) = b.run(closed, in_ids)
    if output_name is not None and b.nodes[out_id]["op"] not in ("input", "const"):
        if output_name in b.taken - {b.nodes[out_id]["name"]}:
            raise InputError(f"examples.graph.backprop: output_name {output_name!r} is already a node name")
        b.nodes[out_id]["name"] = output_name
    grads = _backward(b.nodes, out_id)
    by_id = [n["name"] for n in b.nodes]
    nodes = tuple(Node(n["name"], n["op"], tuple(by_id[j] for j in n["inputs"]), n["value"], g,
                       n["params"]) for n, g in zip(b.nodes, grads))
    return GraphResult(b.nodes[out_id]["value"], tuple(grads[i] for i in in_ids), nodes,
                       by_id[out_id])
