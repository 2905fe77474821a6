"""The import graph of convnp's subpackages follows the layer order of docs/architecture.md.

Every ``import`` / ``from ... import`` in every file of the package is read with ``ast`` — at the top of
a file, inside functions and under ``if TYPE_CHECKING`` alike — and resolved to the subpackage it reaches.
A subpackage may import its own modules and those of lower layers, never a higher or an equal layer
(equal layers are independent of each other), so the graph has no cycle.
"""
from __future__ import annotations

import ast
import pathlib
from collections import defaultdict

import pytest

import convnp

PACKAGE = pathlib.Path(convnp.__file__).parent

#: bottom to top; a unit is a subpackage (``nn``) or a top-level module (``backend``); "convnp" is __init__
LAYERS = [
    ["backend", "workspace", "utils", "_version"],
    ["accel", "cuda"],
    ["functional", "signal", "gradcheck"],
    ["nn"],
    ["optim", "models", "data"],
    ["io", "distributed"],
    ["train"],
    ["viz", "textbook"],
    ["convnp"],  # the package's __init__: re-exports the public names of everything below
    ["serve"],
    ["cli"],
    ["__main__"],  # python -m convnp: runs the CLI
]
LEVEL = {unit: i for i, units in enumerate(LAYERS) for unit in units}

#: edges that break the order today, each owned by someone who is removing it; this list only shrinks.
#: Empty now: issue 18 (the lead) removed accel/threads.py's import of nn (thread policy left nn).
KNOWN_UPWARD_EDGES_OWNED_BY_ISSUE_18: set = set()


def _unit_of_file(path: pathlib.Path) -> tuple[str, list[str]]:
    """('nn', ['convnp', 'nn', 'layers']): the unit a file belongs to and its package path."""
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    package = parts[:-1]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return (parts[1] if len(parts) > 1 else "convnp"), package


def _unit_of_module(dotted: str) -> str | None:
    """The unit that importing ``dotted`` executes ('convnp.nn.module' -> 'nn'), None outside convnp."""
    parts = dotted.split(".")
    if parts[0] != "convnp":
        return None
    if len(parts) == 1:
        return "convnp"
    head = parts[1]
    if (PACKAGE / head).is_dir() or (PACKAGE / f"{head}.py").exists():
        return head
    return "convnp"  # a name defined in convnp/__init__.py (from convnp import load)


def _imports(source: str, package: list[str]):
    """(line, dotted module) for every import statement in ``source``, relative ones resolved in ``package``."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if node.module is None or "." not in module:  # from . import nn / from convnp import nn, load
                for alias in node.names:
                    yield node.lineno, f"{module}.{alias.name}"
            else:
                yield node.lineno, module


def import_edges() -> dict:
    """{(from_unit, to_unit): ["convnp/x/y.py:12", ...]} between different units."""
    edges = defaultdict(list)
    for path in sorted(PACKAGE.rglob("*.py")):
        unit, package = _unit_of_file(path)
        for line, module in _imports(path.read_text(encoding="utf-8"), package):
            target = _unit_of_module(module)
            if target is not None and target != unit:
                edges[(unit, target)].append(f"{path.relative_to(PACKAGE.parent)}:{line}")
    return edges


def test_every_unit_has_a_layer():
    units = {_unit_of_file(p)[0] for p in PACKAGE.rglob("*.py")}
    assert units - set(LEVEL) == set(), "add the new subpackage to LAYERS here and in docs/architecture.md"


def test_imports_only_go_down_the_layers():
    bad = []
    for (src, dst), where in sorted(import_edges().items()):
        if LEVEL[dst] >= LEVEL[src] and (src, dst) not in KNOWN_UPWARD_EDGES_OWNED_BY_ISSUE_18:
            bad.append(f"{src} (layer {LEVEL[src]}) imports {dst} (layer {LEVEL[dst]}) at {', '.join(where)}")
    assert not bad, "imports against the layer order of docs/architecture.md:\n" + "\n".join(bad)


def test_known_exceptions_still_exist():
    """An exception that is gone must leave the allow-list, so the list only shrinks."""
    edges = import_edges()
    stale = [e for e in KNOWN_UPWARD_EDGES_OWNED_BY_ISSUE_18 if e not in edges]
    assert not stale, f"remove {stale} from KNOWN_UPWARD_EDGES_OWNED_BY_ISSUE_18: the edge no longer exists"


def test_graph_has_no_cycle_apart_from_the_known_exceptions():
    graph = defaultdict(set)
    for src, dst in import_edges():
        if (src, dst) not in KNOWN_UPWARD_EDGES_OWNED_BY_ISSUE_18:
            graph[src].add(dst)
    state = {}

    def visit(node, trail):
        state[node] = "open"
        for nxt in graph[node]:
            if state.get(nxt) == "open":
                raise AssertionError("import cycle: " + " -> ".join(trail + [node, nxt]))
            if nxt not in state:
                visit(nxt, trail + [node])
        state[node] = "done"

    for node in list(graph):
        if node not in state:
            visit(node, [])


@pytest.mark.parametrize("source, expected", [
    ("from ...train import Trainer\n", ("nn", "train")),
    ("def f():\n    from ...io.weights import load_weights\n", ("nn", "io")),
    ("import convnp.models\n", ("nn", "models")),
    ("from ... import load\n", ("nn", "convnp")),
])
def test_the_checker_sees_imports_inside_functions_and_relative_ones(source, expected):
    """The parser itself: ``source`` in a file of convnp/nn/layers/ yields the edge ``expected``."""
    unit, package = _unit_of_file(PACKAGE / "nn" / "layers" / "conv.py")
    targets = {_unit_of_module(m) for _, m in _imports(source, package)}
    assert (unit, expected[1]) == expected and expected[1] in targets


def test_nn_module_knows_nothing_of_training_or_files():
    """The layer base class has no Keras-style methods; models get them from convnp.train.Model."""
    from convnp import models, nn
    from convnp.train import Model
    for name in ("compile", "fit", "evaluate", "predict", "predict_proba", "save", "load_weights"):
        assert not hasattr(nn.Module, name), name
        assert hasattr(Model, name), name
    assert issubclass(nn.Sequential, Model)
    assert isinstance(models.resnet18_cifar(num_classes=3, seed=0), Model)
    assert not isinstance(nn.Conv2D(4, 3), Model)
