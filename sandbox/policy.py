"""The Python-level policy: which modules untrusted code may import, and which code may share a
worker process with other checks.

This is not the security boundary (the kernel layers and the two-stage shape in
`sandbox.worker` are). It does two things:

1. `runtime_builtins()` / `import_module()`: untrusted code sees a builtins dict without
   `open`/`input`/`breakpoint`, and `import` yields read-only views of an allowlist of pure
   computational modules (public names only: `typing.sys` or `random._os` are not there). Other
   imports raise ImportError, so honest code gets a clear error instead of a kernel EPERM.
2. `isolation_reason()`: a conservative lint. Code that touches nothing but plain computation
   may run in a worker that runs other checks of the same stage before and after it (this is
   what makes thousands of checks a second possible). Code that uses any introspection or
   dynamic feature (dunder or private attributes, frames, `eval`/`getattr`/`vars`, attribute
   stores on anything but `self`, non-allowlisted imports, format strings that look up
   attributes...) runs alone in a fresh process instead: it is not rejected, only isolated.
"""

from __future__ import annotations

import ast
import builtins
import string
import sys
import types

ALLOWED_MODULES = (
    "math", "cmath", "itertools", "collections", "collections.abc", "heapq", "functools", "re",
    "string", "fractions", "decimal", "bisect", "operator", "random", "typing", "statistics",
    "copy", "numbers", "datetime", "calendar", "textwrap", "unicodedata", "array", "sys",
)
"""Modules `f` and `g` may import. `sys` is a small shim (recursion limit, maxsize...)."""

_HIDDEN_BUILTINS = ("open", "input", "breakpoint", "help", "exit", "quit", "copyright",
                    "credits", "license")

# Names whose use sends code to a process of its own.
_DYNAMIC_NAMES = frozenset((
    "eval", "exec", "compile", "getattr", "setattr", "delattr", "globals", "locals", "vars",
    "dir", "memoryview", "object", "type", "super", "classmethod", "staticmethod", "property",
    "attrgetter", "methodcaller", "Formatter", "register", "setcontext", "localcontext",
) + _HIDDEN_BUILTINS)
# Attributes of frames, generators, coroutines, tracebacks and code objects: the way from any
# object to the interpreter's internals without a dunder.
_INTERNAL_ATTR_PREFIXES = ("gi_", "cr_", "ag_", "f_", "tb_", "co_")
_DYNAMIC_ATTRS = frozenset(("format", "format_map", "mro", "seed", "setstate", "getstate",
                            "traps", "flags")) | _DYNAMIC_NAMES
_SAFE_DUNDER_DEFS = frozenset((
    "__init__", "__repr__", "__str__", "__eq__", "__ne__", "__lt__", "__le__", "__gt__",
    "__ge__", "__hash__", "__len__", "__iter__", "__next__", "__getitem__", "__contains__",
    "__add__", "__sub__", "__mul__", "__bool__", "__call__"))


def isolation_reason(*sources: str) -> str | None:
    """Why this code must run in a process of its own; None when it may share a batch worker."""
    for source in sources:
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return "does not parse"
        try:
            reason = _first_dynamic_feature(tree)
        except RecursionError:
            return "deeply nested code"
        if reason:
            return reason
    return None


def _first_dynamic_feature(tree: ast.AST) -> str | None:
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            if node.id.startswith("__") or node.id in _DYNAMIC_NAMES:
                return f"uses name {node.id!r}"
        elif isinstance(node, ast.Attribute):
            attr = node.attr
            if (attr.startswith("_") or attr in _DYNAMIC_ATTRS
                    or attr.startswith(_INTERNAL_ATTR_PREFIXES)):
                if attr == "format" and _plain_format_string(node.value):
                    continue
                return f"uses attribute {attr!r}"
            if isinstance(node.ctx, (ast.Store, ast.Del)) and not (
                    isinstance(node.value, ast.Name) and node.value.id == "self"):
                return f"sets attribute {attr!r} of something other than self"
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            if isinstance(node, ast.ImportFrom) and (node.level or node.module is None):
                return "relative import"
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [
                node.module]
            for module in modules:
                if module not in ALLOWED_MODULES:
                    return f"imports {module}"
            for alias in node.names:
                if alias.name.startswith("_") or alias.name == "*" or \
                        alias.name in _DYNAMIC_NAMES:
                    return f"imports name {alias.name!r}"
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if node.name.startswith("__") and node.name not in _SAFE_DUNDER_DEFS:
                return f"defines {node.name}"
        elif isinstance(node, ast.ClassDef):
            if node.keywords:
                return "class with keywords (metaclass)"
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if "__" in node.value or any(p in node.value for p in (
                    "gi_frame", "f_back", "f_globals", "tb_frame", "co_code")):
                return "string constant naming interpreter internals"
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            if any(n.startswith("__") for n in node.names):
                return "global dunder"
        elif isinstance(node, (ast.AsyncFunctionDef, ast.Await, ast.AsyncFor, ast.AsyncWith)):
            return "async code"
    return None


def _plain_format_string(node: ast.expr) -> bool:
    """`"{} {:>3}".format(...)`: a literal whose fields look up no attributes or items."""
    if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
        return False
    try:
        for _text, field, spec, _conv in string.Formatter().parse(node.value):
            for part in (field or "", spec or ""):
                if "." in part or "[" in part or "{" in part:
                    return False
    except ValueError:
        return False
    return True


class _SysShim(types.ModuleType):
    """What honest checkers use from `sys`, without `sys.modules` and friends."""


def _make_sys_shim(recursion_cap: int) -> types.ModuleType:
    shim = _SysShim("sys")
    real = sys

    def setrecursionlimit(limit: int) -> None:
        real.setrecursionlimit(max(100, min(int(limit), recursion_cap)))

    shim.setrecursionlimit = setrecursionlimit
    shim.getrecursionlimit = real.getrecursionlimit
    shim.set_int_max_str_digits = lambda maxdigits: None
    shim.get_int_max_str_digits = lambda: 0
    for name in ("maxsize", "float_info", "int_info", "version_info", "byteorder", "hexversion",
                 "maxunicode", "float_repr_style", "hash_info"):
        setattr(shim, name, getattr(real, name))
    return shim


def _public_view(module: types.ModuleType, views: dict) -> types.ModuleType:
    """A fresh module holding only the public API of `module` (no modules, no `_` names)."""
    view = types.ModuleType(module.__name__)
    names = getattr(module, "__all__", None) or [n for n in dir(module) if not n.startswith("_")]
    for name in names:
        value = getattr(module, name, None)
        if value is None and not hasattr(module, name):
            continue
        if isinstance(value, types.ModuleType):
            value = views.get(value.__name__)
            if value is None:
                continue
        setattr(view, name, value)
    return view


class ModulePolicy:
    """Allowlisted module views and a builtins dict for untrusted code, built once per server.

    The real modules are imported here (before any untrusted code runs, and before Landlock
    forbids reading the standard library), so importing them later needs no file access.
    """

    def __init__(self, recursion_cap: int = 100_000):
        import importlib

        self.views: dict[str, types.ModuleType] = {}
        for name in sorted(ALLOWED_MODULES, key=lambda n: -n.count(".")):  # submodules first
            if name == "sys":
                self.views[name] = _make_sys_shim(recursion_cap)
                continue
            self.views[name] = _public_view(importlib.import_module(name), self.views)
        for name in ALLOWED_MODULES:
            if "." in name:
                parent, child = name.rsplit(".", 1)
                setattr(self.views[parent], child, self.views[name])
        self._builtins = {k: v for k, v in vars(builtins).items() if k not in _HIDDEN_BUILTINS}
        self._builtins["__import__"] = self.import_module

    def import_module(self, name, globals=None, locals=None, fromlist=(), level=0):
        if level:
            raise ImportError("relative imports are not allowed in the sandbox")
        view = self.views.get(name)
        if view is None:
            raise ImportError(f"module {name!r} is not allowed in the sandbox "
                              f"(allowed: {', '.join(ALLOWED_MODULES)})", name=name)
        if fromlist or "." not in name:
            return view
        return self.views[name.split(".", 1)[0]]

    def runtime_builtins(self) -> dict:
        """A fresh copy per check, so that one check's changes never reach the next."""
        return dict(self._builtins)
