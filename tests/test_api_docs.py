"""The public API is documented and annotated: introspection of every public callable, no arrays.

Public means reachable from fnn.__all__ and the __all__ of the public modules
below (a module in an __all__ is walked too). For every public function, and
every public method and property of a public class:

  - a docstring of its own (not the one NamedTuple or dataclass writes);
  - an "Args:" section with an entry for each parameter, if it takes any (self
    aside): a line "name: ..." or, for parameters described together, "x, y: ...";
  - a "Returns:" section unless its return annotation is None;
  - a return annotation, and an annotation on every parameter but self/cls
    (*args and **kwargs may go without); the same for the __init__ a public
    class defines (its class docstring says what to pass, or who makes it).
"""
import importlib
import inspect
import re
import types

import pytest

PUBLIC_MODULES = (
    "fnn", "fnn.optim", "fnn.optim.base", "fnn.optim.transforms", "fnn.optim.aliases",
    "fnn.optim.schedules", "fnn.train", "fnn.train.ensemble", "fnn.train.parallel", "fnn.checkpoint",
    "fnn.initializers", "fnn.losses", "fnn.activations", "fnn.numerics", "fnn.grads", "fnn.check",
    "fnn.data", "fnn.layers", "fnn.models", "fnn.export", "fnn.runs.run", "fnn.precision", "fnn.errors",
    "fnn.gradcheck", "fnn.typing",
)


def _is_function(obj):
    """A function, or a callable that wraps one (jax.custom_jvp: fnn.softmax)."""
    return not inspect.isclass(obj) and callable(obj) and inspect.isfunction(inspect.unwrap(obj))


def _public_objects():
    """{qualified name: function or class}, each object once, under the first name found."""
    found, seen, todo, walked = {}, set(), list(PUBLIC_MODULES), set()
    while todo:
        module = importlib.import_module(todo.pop(0))
        if module.__name__ in walked:
            continue
        walked.add(module.__name__)
        for name in module.__all__:
            obj = getattr(module, name)
            if isinstance(obj, types.ModuleType):
                if obj.__name__.startswith("fnn.") and hasattr(obj, "__all__"):
                    todo.append(obj.__name__)
            elif (_is_function(obj) or inspect.isclass(obj)) and id(obj) not in seen:
                seen.add(id(obj))
                found[f"{module.__name__}.{name}"] = obj
    return found


def _members(cls):
    """The public methods and properties a class defines itself (not inherited, not NamedTuple's)."""
    for name, attr in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(attr, (staticmethod, classmethod)):
            attr = attr.__func__
        if inspect.isfunction(attr) or isinstance(attr, property):
            yield name, attr


def _callables():
    """(qualified name, object) of every public function, class, method and property."""
    items = []
    for qualname, obj in sorted(_public_objects().items()):
        items.append((qualname, obj))
        if inspect.isclass(obj) and obj.__module__.startswith("fnn"):
            items += [(f"{qualname}.{name}", attr) for name, attr in _members(obj)]
    return items


def _inits():
    """(qualified name, __init__) of the public classes that define their own __init__ in fnn."""
    return [(f"{q}.__init__", vars(c)["__init__"]) for q, c in _public_objects().items()
            if inspect.isclass(c) and inspect.isfunction(vars(c).get("__init__"))
            and vars(c)["__init__"].__module__.startswith("fnn")]


CALLABLES = _callables()
FUNCTIONS = [(q, f) for q, f in CALLABLES if _is_function(f)]
INITS = sorted(_inits())
SELF = ("self", "cls")


def _own_doc(obj):
    """obj's docstring, or "" where it has none or only the generated one ("Name(field, ...)")."""
    doc = inspect.getdoc(obj) or ""
    if inspect.isclass(obj) and (obj.__doc__ is None or doc.startswith(f"{obj.__name__}(")):
        return ""
    return doc


def _params(fn):
    return [p for p in inspect.signature(fn).parameters.values() if p.name not in SELF]


def _section(doc, title):
    """The text of a Google-style section ("Args:") up to the next section, "" if there is none."""
    lines = doc.splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip() == title]
    if not starts:
        return ""
    body = []
    for line in lines[starts[0] + 1:]:
        if line and not line[0].isspace():          # the next section, or the docstring's text again
            break
        body.append(line)
    return "\n".join(body)


ENTRY = re.compile(r"^\s+(\*{0,2}\w+(?:\s*[,/]\s*\*{0,2}\w+)*)\s*:")


def _described(args):
    """The parameter names the entries of an Args: section describe."""
    names = set()
    for line in args.splitlines():
        m = ENTRY.match(line)
        if m:
            names.update(n.strip().lstrip("*") for n in re.split(r"[,/]", m.group(1)))
    return names


def test_the_walk_finds_the_public_api():
    names = {q.rsplit(".", 1)[-1] for q, _ in CALLABLES}
    for expected in ("fit", "evaluate", "predict", "adam", "scale_by_adam", "cosine_decay", "load",
                     "glorot_uniform", "get_loss", "value_and_grad", "Dense", "serial", "load_run",
                     "get_dataset", "Standardizer", "apply", "softmax"):
        assert expected in names
    assert len(FUNCTIONS) > 150
    assert "fnn.Run.__init__" in dict(INITS)


@pytest.mark.parametrize("qualname, obj", CALLABLES, ids=[q for q, _ in CALLABLES])
def test_has_a_docstring(qualname, obj):
    assert _own_doc(obj), f"{qualname} has no docstring"


@pytest.mark.parametrize("qualname, fn", FUNCTIONS, ids=[q for q, _ in FUNCTIONS])
def test_args_section_names_every_parameter(qualname, fn):
    params = _params(fn)
    if not params:
        return
    args = _section(inspect.getdoc(fn) or "", "Args:")
    assert args, f"{qualname} takes {[p.name for p in params]} but its docstring has no Args: section"
    missing = [p.name for p in params if p.name not in _described(args)]
    assert not missing, f"{qualname}: Args: has no entry for {missing}"


@pytest.mark.parametrize("qualname, fn", FUNCTIONS, ids=[q for q, _ in FUNCTIONS])
def test_returns_section_unless_it_returns_none(qualname, fn):
    returns = inspect.signature(fn).return_annotation
    if returns is None or returns is inspect.Signature.empty:     # no annotation: the next test fails
        return
    assert _section(inspect.getdoc(fn) or "", "Returns:"), f"{qualname} returns {returns} but has no Returns:"


@pytest.mark.parametrize("qualname, fn", FUNCTIONS + INITS, ids=[q for q, _ in FUNCTIONS + INITS])
def test_parameters_and_return_are_annotated(qualname, fn):
    sig = inspect.signature(fn)
    assert sig.return_annotation is not inspect.Signature.empty, f"{qualname} has no return annotation"
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    bare = [p.name for p in _params(fn) if p.annotation is inspect.Parameter.empty and p.kind not in variadic]
    assert not bare, f"{qualname}: parameters {bare} have no annotation"


def test_section_reader():
    doc = "Summary.\n\nArgs:\n  x: the input.\n    more.\n\nReturns:\n  y.\n"
    assert "x: the input." in _section(doc, "Args:") and "y." not in _section(doc, "Args:")
    assert _section(doc, "Returns:").strip() == "y."
    assert _section("Summary only.", "Args:") == ""
    args = ("  model, loss, optimizer: the parts.\n  steps / epochs: how long.\n"
            "    key: an indented line of this shape counts as an entry.\n")
    assert _described(args) == {"model", "loss", "optimizer", "steps", "epochs", "key"}
    assert _described("  *transforms: in order.\n  **kwargs: more.") == {"transforms", "kwargs"}
    assert _described("  x (the input) is described in prose.") == set()
