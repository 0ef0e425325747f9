"""The import layering of the four packages, read from the source (ast; nothing is imported).

Packages sit in layers: `puzzles` at the bottom, `sandbox` and `training` on it (neither
imports the other), `selfplay` on top. Inside `selfplay`, each wing (a subpackage, or one of
the few top-level modules) imports only wings below it in `WINGS`. An import inside a function
(lazy, to keep torch or Ray out of a light command) is an arrow like any other. A new arrow
that breaks the rule must be fixed, or named in `ALLOWED` with the reason; the list only
shrinks.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("puzzles", "sandbox", "training", "selfplay")

PACKAGE_LAYER = {"puzzles": 0, "sandbox": 1, "training": 1, "selfplay": 2}
"""A package imports only packages of a lower layer (and itself)."""

WINGS = (
    "config",      # the run's config tables, presets, TOML
    "rundir",      # a run's directory: config, lock, logs, adapters
    "compute",     # where sampling and checks run (here or on Ray), attempts at problems
    "corpus",      # human puzzles into the store: importing files, rule-based generators
    "reports",     # round summaries, data cards, audit, HTML report, trackers
    "context",     # what a stage gets: the round, config, store, models, executors
    "evaluation",  # eval sets, pass@k, bootstrap, HumanEval, evaluating a run's rounds
    "stages",      # the round's stages, each run(ctx) -> summary
    "preflight",   # the checks before a run starts
    "loop",        # rounds of stages, resume, status, export
    "learnbench",  # the learning benchmark: whole runs, self-play against a control arm
    "cli",         # the command line over all of it
    "__main__",
)
"""The wings of `selfplay`, lowest first: each imports only wings before it. The package's
own `__init__` (its public names) sits above them all."""

ALLOWED = {
    # (importer, imported): why it is allowed for now.
}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for file in sorted((ROOT / package).rglob("*.py")):
            parts = list(file.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = file
    return found


MODULES = _modules()


def _owner(name: str) -> str | None:
    """The module of ours that `name` (a module or a name in one) is found in."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, file: Path) -> set[str]:
    """The modules of the four packages that `module` imports, at any depth of its code."""
    package = module if file.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(file.read_text(), str(file))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                base = ".".join(up + ([node.module] if node.module else []))
            # `from pkg import mod` imports mod; `from mod import name` imports mod.
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                       for a in node.names]
        else:
            continue
        for target in targets:
            owner = _owner(target) if target.split(".")[0] in PACKAGES else None
            if owner is not None and owner != module:
                found.add(owner)
    return found


EDGES = {module: _imports(module, file) for module, file in MODULES.items()}


def _wing(module: str) -> str | None:
    """The wing of a `selfplay` module (None for the package's own __init__)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _wing_rank(module: str) -> int:
    wing = _wing(module)
    return len(WINGS) if wing is None else WINGS.index(wing)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan, iterative)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    counter = 0
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def _kept(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    return {a: {b for b in bs if (a, b) not in ALLOWED} for a, bs in edges.items()}


def _is_parent(a: str, b: str) -> bool:
    """A package's __init__ importing its own submodules is how it exports them."""
    return b.startswith(a + ".")


def test_the_graph_is_read():
    # Guards the reader itself: a parser that found nothing would pass every rule below.
    assert "selfplay.loop" in MODULES and "sandbox.verifier" in EDGES["sandbox"]
    assert "selfplay.context" in EDGES["selfplay.loop"]
    assert "puzzles.errors" in EDGES["training.models"]


def test_no_module_cycle():
    assert _cycles(_kept(EDGES)) == []


def test_packages_import_only_lower_layers():
    up = sorted((a, b) for a, bs in _kept(EDGES).items() for b in bs
                if a.split(".")[0] != b.split(".")[0]
                and PACKAGE_LAYER[b.split(".")[0]] >= PACKAGE_LAYER[a.split(".")[0]])
    assert up == []


def test_every_selfplay_module_has_a_wing():
    assert sorted({_wing(m) for m in MODULES if m.startswith("selfplay.")} - set(WINGS)) == []


def test_wings_import_only_lower_wings():
    up = sorted((a, b) for a, bs in _kept(EDGES).items() if a.startswith("selfplay")
                for b in bs if b.startswith("selfplay") and not _is_parent(a, b)
                and _wing(a) != _wing(b) and _wing_rank(b) >= _wing_rank(a))
    assert up == []


def test_no_wing_cycle():
    wings = defaultdict(set)
    for a, bs in _kept(EDGES).items():
        for b in bs:
            if a.startswith("selfplay.") and b.startswith("selfplay.") and _wing(a) != _wing(b):
                wings[_wing(a)].add(_wing(b))
    assert _cycles(wings) == []


def test_allowed_edges_still_exist():
    # An exception that is no longer needed is removed, so the list says what is left to fix.
    gone = sorted(edge for edge in ALLOWED if edge[1] not in EDGES.get(edge[0], ()))
    assert gone == []


def test_the_public_api_named_in_selfplay_docstring_imports():
    # The names `selfplay.__doc__` tells users to import are where it says (a module moved into
    # a wing without its docstring updated fails here).
    import importlib
    import re

    import selfplay

    lines = re.findall(r"^\s*from (\S+) import (.+)$", selfplay.__doc__, re.M)
    assert len(lines) >= 5
    for module, names in lines:
        imported = importlib.import_module(module)
        for name in names.split(","):
            assert hasattr(imported, name.strip()), f"{module}.{name.strip()}"
