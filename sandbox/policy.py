"""The Python-level policy: which modules untrusted code may import, and which code may share a
worker process with other checks.

This is not the security boundary (the kernel layers and the two-stage shape in
`sandbox.worker` are). It does two things:

1. `ModulePolicy`: untrusted code sees a builtins dict without `open`/`input`/`breakpoint`,
   and `import` yields views of an allowlist of computational modules (public names only:
   `typing.sys` or `random._os` are not there). Other imports raise ImportError, so honest
   code gets a clear error instead of a kernel EPERM.
2. `isolation_reason()`: a conservative lint on the compiled code. Code that does nothing but
   plain computation may run in a worker that also runs other checks of the same stage (this
   is what makes thousands of checks a second possible). Code that uses any introspection or
   dynamic feature (dunder or private names, frames, `eval`/`getattr`/`vars`/`type`, `format`,
   attribute stores on anything but `self`, imports outside the allowlist, strings naming
   interpreter internals...) runs alone in a fresh process instead: isolated, not rejected.
"""

from __future__ import annotations

import __future__
import ast
import builtins
import dis
import sys
import types
import warnings

ALLOWED_MODULES = (
    "math", "cmath", "itertools", "collections", "collections.abc", "heapq", "functools", "re",
    "string", "fractions", "decimal", "bisect", "operator", "random", "typing", "statistics",
    "copy", "numbers", "datetime", "calendar", "textwrap", "unicodedata", "array", "time",
    "hashlib", "json", "dataclasses", "enum", "abc", "struct", "base64", "sys",
)
"""Modules `f` and `g` may import. `sys` is a small shim (recursion limit, maxsize...)."""

_PRELOADED_CODECS = (
    "utf_8", "utf_8_sig", "ascii", "latin_1", "utf_16", "utf_16_le", "utf_16_be", "utf_32",
    "utf_32_le", "utf_32_be", "utf_7", "cp1252", "cp437", "unicode_escape", "raw_unicode_escape",
    "idna", "punycode", "hex_codec", "base64_codec", "rot_13", "charmap")
_HIDDEN_BUILTINS = ("open", "input", "breakpoint", "help", "exit", "quit", "copyright",
                    "credits", "license")

COMPILE_FLAGS = __future__.annotations.compiler_flag  # `x: List[int]` needs no import

# Names (global names or attribute names) whose use sends code to a process of its own.
_DYNAMIC = frozenset((
    "eval", "exec", "compile", "getattr", "setattr", "delattr", "globals", "locals", "vars",
    "dir", "memoryview", "object", "type", "super", "classmethod", "staticmethod", "property",
    "attrgetter", "methodcaller", "Formatter", "register", "setcontext", "localcontext",
    "format", "format_map", "mro", "seed", "setstate", "getstate", "traps", "flags",
) + _HIDDEN_BUILTINS)
# Attributes of frames, generators, coroutines, tracebacks and code objects: the way from any
# object to the interpreter's internals without a dunder.
_INTERNAL_ATTR_PREFIXES = ("gi_", "cr_", "ag_", "f_", "tb_", "co_")
_SAFE_DUNDERS = frozenset((  # defining these in one's own classes is plain code
    "__init__", "__repr__", "__str__", "__eq__", "__ne__", "__lt__", "__le__", "__gt__",
    "__ge__", "__hash__", "__len__", "__iter__", "__next__", "__getitem__", "__contains__",
    "__add__", "__sub__", "__mul__", "__bool__", "__call__"))
_CLASS_BODY_NAMES = frozenset(("__name__", "__module__", "__qualname__"))
_INTERNAL_STRINGS = ("gi_frame", "f_back", "f_globals", "f_locals", "tb_frame", "co_code")
_CO_OPTIMIZED = 0x1
_OP = dis.opmap
_IMPORT_NAME, _IMPORT_STAR = _OP["IMPORT_NAME"], _OP["IMPORT_STAR"]
_STORE_ATTR, _DELETE_ATTR, _LOAD_FAST = _OP["STORE_ATTR"], _OP["DELETE_ATTR"], _OP["LOAD_FAST"]
_EXTENDED_ARG, _CACHE = _OP["EXTENDED_ARG"], _OP.get("CACHE", -1)
_WATCHED_OPS = (_IMPORT_NAME, _IMPORT_STAR, _STORE_ATTR, _DELETE_ATTR)


def compile_check(source: str | ast.Module, name: str):
    """Compile untrusted source the way the worker runs it (annotations stay unevaluated).

    Compiler warnings (e.g. SyntaxWarning for `x is 1`) are the model's business, not the
    user's terminal's: they are silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return compile(source, f"<{name}>", "exec", flags=COMPILE_FLAGS, dont_inherit=True)


def isolation_reason(code: types.CodeType) -> str | None:
    """Why this compiled code must run in a process of its own; None when it may share a
    batch worker with other checks of the same stage.

    Works on bytecode rather than the AST: every global name, attribute name and imported
    module of the code and of its nested functions, lambdas, comprehensions and classes is in
    some `co_names`, so the check is a few set operations instead of a tree walk.
    """
    stack = [code]
    while stack:
        co = stack.pop()
        allowed = _CLASS_BODY_NAMES if not co.co_flags & _CO_OPTIMIZED else ()
        for name in co.co_names:
            if name in allowed:
                continue
            if name.startswith("__") and name not in _SAFE_DUNDERS:
                return f"uses {name!r}"
            if name.startswith("_") and not name.startswith("__"):
                return f"uses private name {name!r}"
            if name in _DYNAMIC or name.startswith(_INTERNAL_ATTR_PREFIXES):
                return f"uses {name!r}"
        for const in co.co_consts:
            if isinstance(const, types.CodeType):
                stack.append(const)
            elif isinstance(const, str) and _suspicious_string(const):
                return "string constant naming interpreter internals"
            elif isinstance(const, tuple) and any(
                    isinstance(c, str) and (_suspicious_string(c) or c == "metaclass")
                    for c in const):
                return "string constant naming interpreter internals"
        reason = _opcode_reason(co)
        if reason:
            return reason
    return None


def _suspicious_string(text: str) -> bool:
    return "__" in text or any(p in text for p in _INTERNAL_STRINGS)


def _opcode_reason(co: types.CodeType) -> str | None:
    raw = co.co_code
    ops = raw[::2]
    if not any(op in ops for op in _WATCHED_OPS):
        return None
    prev_op, prev_arg = -1, 0
    ext = 0
    for i in range(0, len(raw), 2):
        op, arg = raw[i], raw[i + 1] | ext
        ext = arg << 8 if op == _EXTENDED_ARG else 0
        if op == _EXTENDED_ARG or op == _CACHE:
            continue
        if op == _IMPORT_STAR:
            return "star import"
        if op == _IMPORT_NAME and co.co_names[arg] not in ALLOWED_MODULES:
            return f"imports {co.co_names[arg]}"
        if op in (_STORE_ATTR, _DELETE_ATTR) and not (
                prev_op == _LOAD_FAST and co.co_varnames[prev_arg] == "self"):
            return f"sets attribute {co.co_names[arg]!r} of something other than self"
        prev_op, prev_arg = op, arg
    return None


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
        import codecs
        import importlib

        for codec in _PRELOADED_CODECS:  # codecs load lazily, from files Landlock will hide
            codecs.lookup(codec)
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
        self.imported: set[str] = set()  # since the last reset, see sandbox.worker

    def import_module(self, name, globals=None, locals=None, fromlist=(), level=0):
        self.imported.add(name)
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
