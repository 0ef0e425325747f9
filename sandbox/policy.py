"""The Python-level policy: which modules untrusted code may import, and what it sees of them.

This is not the security boundary (the kernel layers, the zygote process model and the
two-stage shape in `sandbox.worker` are), and it does not decide who may share a worker (that is
`sandbox.sharing`). `ModulePolicy`: untrusted code sees a builtins dict without
`open`/`input`/`breakpoint`, and `import` yields read-only views of an allowlist of
computational modules (public names only: `typing.sys` or `random._os` are not there). Other
imports raise ImportError, so honest code gets a clear error instead of a kernel EPERM.
"""

from __future__ import annotations

import __future__
import ast
import builtins
import sys
import types
import warnings

from puzzles.format import bound_tree, recursion_headroom

ALLOWED_MODULES = (
    "math", "cmath", "itertools", "collections", "collections.abc", "heapq", "functools", "re",
    "string", "fractions", "decimal", "bisect", "operator", "random", "typing", "statistics",
    "copy", "numbers", "datetime", "calendar", "textwrap", "unicodedata", "array", "time",
    "hashlib", "json", "dataclasses", "enum", "abc", "struct", "base64", "sys", "io", "queue",
    "graphlib", "__future__",
)
"""Modules `f` and `g` may import. `sys` is a small shim (recursion limit, streams that discard
what is written...), `io` only its in-memory streams. `__future__` is here because the runtime
half of `from __future__ import annotations` is an ordinary import (the compile-time half is
always on, see COMPILE_FLAGS): its view holds only inert feature descriptions."""

_ONLY_NAMES = {"io": ("StringIO", "BytesIO", "SEEK_SET", "SEEK_CUR", "SEEK_END"),
               "__future__": tuple(__future__.all_feature_names)}
"""Modules of which untrusted code sees these names only: `io.open`, `io.FileIO` and friends
would be file access; `__future__.all_feature_names` is a list one check could append to."""

_IMPORTED_BY_THE_INTERPRETER = ("_strptime",)
"""Modules that C code imports on untrusted code's behalf: `datetime.strptime` and
`time.strptime` call `PyImport_Import("_strptime")`, which goes through the caller's
`__import__` (ours) and then takes the real module from `sys.modules`. They are imported in
`ModulePolicy.__init__`, and importing them by name yields an empty view."""

_HIDDEN_BUILTINS = ("open", "input", "breakpoint", "help", "exit", "quit", "copyright",
                    "credits", "license")

COMPILE_FLAGS = __future__.annotations.compiler_flag  # `x: List[int]` needs no import


def compile_check(source: str | ast.Module, name: str, *, bounded: bool = False):
    """Compile untrusted source the way the worker runs it (annotations stay unevaluated).

    This runs on the host, outside every sandbox limit, so the tree is bounded first
    (puzzles.format.bound_tree: its depth, and the bytes of constants CPython's optimiser would
    fold, which it does without a size limit; `bounded`: the tree comes from puzzles.format's
    parser, which bounded it already) and compiled with the recursion headroom that depth
    needs; PuzzleError says which bound it broke. Compiler warnings (e.g. SyntaxWarning for
    `x is 1`) are the model's business, not the user's terminal's: they are silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tree = ast.parse(source) if isinstance(source, str) else source
        if not bounded:
            bound_tree(tree, name)
        with recursion_headroom():
            return compile(tree, f"<{name}>", "exec", flags=COMPILE_FLAGS, dont_inherit=True)


class _ReadOnlyModule(types.ModuleType):
    """A module view that untrusted code cannot change. Views are shared by every check a
    worker runs, so a check that rebinds `math.pi` (e.g. `def h(self): self.pi = 3` applied to
    `math`) must not change what the next check sees. Its `__dict__` stays writable, but
    reaching it takes a dunder or `vars`, which send code to a process of its own."""

    def __setattr__(self, name, value):
        raise AttributeError(f"module {self.__name__!r} is read-only in the sandbox")

    def __delattr__(self, name):
        raise AttributeError(f"module {self.__name__!r} is read-only in the sandbox")


def _read_only_module(name: str, attributes: dict) -> _ReadOnlyModule:
    view = _ReadOnlyModule(name)
    vars(view).update(attributes)  # past our own __setattr__
    return view


class _Discard:
    """`sys.stdout`/`sys.stderr` for untrusted code: accepts text like a stream and drops it.
    Honest code prints progress; what it prints never reaches a verdict or the real streams
    (which are /dev/null in a worker anyway). No instance attributes, so nothing to change."""

    __slots__ = ()
    encoding = "utf-8"

    def write(self, text) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        return len(text)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        pass

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False


def _make_sys_shim(recursion_cap: int) -> types.ModuleType:
    """What honest checkers use from `sys`, without `sys.modules`, `_getframe`, `settrace`..."""
    real = sys

    def setrecursionlimit(limit: int) -> None:
        real.setrecursionlimit(max(100, min(int(limit), recursion_cap)))

    attributes = {
        "setrecursionlimit": setrecursionlimit, "getrecursionlimit": real.getrecursionlimit,
        "set_int_max_str_digits": lambda maxdigits: None, "get_int_max_str_digits": lambda: 0,
        "stdout": _Discard(), "stderr": _Discard(),
        # The exception being handled: what an `except` clause already binds, and its
        # traceback is reachable from it anyway (`e.__traceback__`).
        "exc_info": real.exc_info, "getsizeof": real.getsizeof}
    # Immutable facts about the interpreter that honest code branches on (`sys.platform ==
    # "linux"`, `sys.maxsize`): strings, ints and struct sequences, nothing a check can change.
    for name in ("platform", "version", "api_version", "maxsize", "float_info", "int_info",
                 "version_info", "byteorder", "hexversion", "maxunicode", "float_repr_style",
                 "hash_info", "exception"):
        if hasattr(real, name):  # sys.exception is new in 3.11
            attributes[name] = getattr(real, name)
    return _read_only_module("sys", attributes)


def _public_view(module: types.ModuleType, views: dict) -> types.ModuleType:
    """A fresh, read-only module holding only the public API of `module` (no modules, no `_`
    names; for the modules in _ONLY_NAMES, just those names)."""
    names = (_ONLY_NAMES.get(module.__name__) or getattr(module, "__all__", None)
             or [n for n in dir(module) if not n.startswith("_")])
    attributes = {}
    for name in names:
        value = getattr(module, name, None)
        if value is None and not hasattr(module, name):
            continue
        if isinstance(value, types.ModuleType):
            value = views.get(value.__name__)
            if value is None:
                continue
        attributes[name] = value
    return _read_only_module(module.__name__, attributes)


def _preload_codecs() -> None:
    """Look up every codec of the `encodings` package now: `str.encode("cp1251")` imports its
    codec module on first use, from files Landlock will hide. A module already imported needs
    no file access, so every later lookup (and alias) works in a worker."""
    import codecs
    import encodings
    import os

    # A directory listing, not pkgutil: importing and running pkgutil costs ~8 ms per start.
    names = {entry[:-3] for path in encodings.__path__ for entry in os.listdir(path)
             if entry.endswith(".py") and not entry.startswith("_")}
    for name in sorted(names):
        try:
            codecs.lookup(name)
        except (LookupError, ImportError):  # `aliases` is no codec; `mbcs` is Windows-only
            pass


class ModulePolicy:
    """Allowlisted module views and a builtins dict for untrusted code, built once per server.

    The real modules are imported here (before any untrusted code runs, and before Landlock
    forbids reading the standard library), so importing them later needs no file access.
    """

    def __init__(self, recursion_cap: int = 100_000):
        import importlib

        _preload_codecs()
        self.views: dict[str, types.ModuleType] = {}
        for name in sorted(ALLOWED_MODULES, key=lambda n: -n.count(".")):  # submodules first
            if name == "sys":
                self.views[name] = _make_sys_shim(recursion_cap)
                continue
            self.views[name] = _public_view(importlib.import_module(name), self.views)
        for name in ALLOWED_MODULES:
            if "." in name:
                parent, child = name.rsplit(".", 1)
                vars(self.views[parent])[child] = self.views[name]
        for name in _IMPORTED_BY_THE_INTERPRETER:
            importlib.import_module(name)
            self.views[name] = _read_only_module(name, {})
        self._builtins = {k: v for k, v in vars(builtins).items() if k not in _HIDDEN_BUILTINS}
        self._builtins["__import__"] = self.import_module
        self._spare: dict | None = None
        self.prepare_fork()
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
        """A fresh copy per check, so that one check's changes never reach the next. The first
        check of a process forked after `prepare_fork` gets the copy made then: copying here
        writes the reference count of ~150 objects spread over the heap, some 60 copy-on-write
        page faults in a fresh worker."""
        spare, self._spare = self._spare, None
        return spare if spare is not None else dict(self._builtins)

    def prepare_fork(self) -> None:
        """Make the copy the first check of each process forked from this one will get."""
        self._spare = dict(self._builtins)
