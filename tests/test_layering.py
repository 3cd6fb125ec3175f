"""The layering ARCHITECTURE.md describes, checked on the source: what each layer may import,
no import circle, no class grown into a god class, no shared object's correlations swapped."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "gateway"
MAX_CLASS_LINES = 450


def modules() -> dict[str, ast.Module]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = ast.parse(path.read_text(encoding="utf-8"), str(path))
    return out


def imports(tree: ast.Module, known: set[str]) -> set[str]:
    """The gateway modules a module imports, at any level (a deferred import is one too),
    except those only a type checker reads."""
    found: set[str] = set()
    checking: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            checking |= {id(n) for n in ast.walk(node)}
    for node in ast.walk(tree):
        if id(node) in checking:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gateway"):
            found |= {f"{node.module}.{a.name}" for a in node.names} & known
            if node.module in known:
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names} & known
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports(tree, known) for name, tree in mods.items()}


def test_each_layer_imports_only_what_it_may() -> None:
    g = graph()
    forbidden = {
        # The ISO layer reads, builds and validates ISO 20022; which messages exist and
        # what they mean is the registry's and the adapters'.
        "gateway.iso20022": ("gateway.messages", "gateway.adapters", "gateway.codec"),
        # The state and the settlement domain know nothing of translation.
        "gateway.state": ("gateway.translation", "gateway.flows", "gateway.decisions"),
        "gateway.settlement": ("gateway.translation", "gateway.state", "gateway.cycles"),
    }
    wrong = [
        f"{name} imports {target}"
        for name, targets in g.items()
        for layer, banned in forbidden.items()
        if name.startswith(layer)
        for target in targets
        if target.startswith(banned)
    ]
    assert wrong == []


def test_there_is_no_import_circle() -> None:
    g = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    circles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in g:
        if v not in index:
            visit(v)
    assert circles == []


def test_no_class_is_longer_than_450_lines() -> None:
    long = [
        f"{name}.{node.name}: {node.end_lineno - node.lineno + 1}"
        for name, tree in modules().items()
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES
    ]
    assert long == []


def test_correlations_are_passed_not_swapped() -> None:
    """Correctness may not depend on call order: nothing but a constructor sets an object's
    correlations."""
    setters: defaultdict[str, list[int]] = defaultdict(list)
    for name, tree in modules().items():
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef) or fn.name == "__init__":
                continue
            for node in ast.walk(fn):
                targets = node.targets if isinstance(node, ast.Assign) else []
                if isinstance(node, ast.AnnAssign | ast.AugAssign):
                    targets = [node.target]
                for t in targets:
                    if isinstance(t, ast.Attribute) and t.attr == "correlations":
                        setters[name].append(node.lineno)
    assert dict(setters) == {}
