"""Which untrusted code may share a worker process with other checks: a decision taken on the
source as written (its AST, annotations and decorators included), never on bytecode alone.

Sharing a process is what makes thousands of checks a second possible, and it is the one place
where one check could reach another: code that gets at frames, module internals or attributes
of objects it did not create could rewrite a neighbour's verdict or read a neighbour's data.
So only plain computation shares. Two gates, both on the source:

1. RestrictedPython's compile-time policy (`RestrictingNodeTransformer`): no names or
   attributes starting with `_`, no `exec`/`eval`, no metaclasses, no AST node it does not
   know. Its refusals of `a[i] += 1`, `self.n += 1`, `nonlocal` and `x: int = 0` exist only
   because its *run-time* guards cannot wrap them; we never run its transformed code (the
   kernel layers are the boundary, not run-time guards), so those are plain computation here.
2. The project's own checks, for what RestrictedPython allows but a shared process must not:
   the introspective builtins (`getattr`, `vars`, `type`, ...), stdlib helpers that set
   attributes for you (`functools.update_wrapper`, `dataclass` applied to something else than
   the class it decorates), anything that evaluates annotation strings (`get_type_hints`),
   imports outside the allowlist, attribute stores on anything but `self`, strings that name
   interpreter internals, annotations that are more than type expressions (annotations
   are kept as strings and could be evaluated later), and defining `__eq__` or `__hash__`:
   caches the interpreter keeps for every check of a process (struct's formats, `re`'s
   patterns, `_strptime`'s regexes, typing's aliases) find an entry by hash and equality, so
   an object whose equality lies (a `str` subclass equal to everything, hashing like `"<I"`)
   plants an entry that an honest neighbour's lookup then gets (`struct.unpack("<I", ...)`
   decoding as `">I"`). Without our own `__eq__` a key compares as the builtin it is.

Code refused by either gate is not rejected: it runs alone, in a fresh process forked from a
clean zygote (see `sandbox.server`). And whatever the gates say, a `pass` is only reported after
the pair ran end to end alone, so a gate that misses something can at worst make a neighbour
fail, never pass. One known miss: a method of the code's own class called through the class
with a foreign object (`A.m(collections.Counter)`) sets attributes on that object, which later
checks in the same worker see. Another: equality inherited from the standard library over state
the code can change (a `collections.UserString` subclass that sets `self.data`) can leave a
stale key in a cache that accepts such keys (typing's); `sandbox.worker` clears the caches
named above between the checks of a worker, whatever the gate let through.
"""

from __future__ import annotations

import ast

from RestrictedPython.transformer import RestrictingNodeTransformer

from sandbox.policy import ALLOWED_MODULES

# Builtins and stdlib names that introspect, evaluate, or set attributes on objects the code
# did not create. Using one anywhere sends the code to a process of its own.
DYNAMIC_NAMES = frozenset((
    "eval", "exec", "compile", "getattr", "setattr", "delattr", "hasattr", "globals", "locals",
    "vars", "dir", "memoryview", "object", "type", "super", "classmethod", "staticmethod",
    "property", "attrgetter", "methodcaller", "Formatter", "register", "setcontext",
    "localcontext", "format", "format_map", "mro", "seed", "setstate", "getstate", "traps",
    "flags", "update_wrapper", "wraps", "get_type_hints", "ForwardRef", "make_dataclass",
    "singledispatch", "singledispatchmethod", "open", "input", "breakpoint", "help",
    "exit", "quit", "copyright", "credits", "license", "modules", "settrace", "setprofile",
    "gc", "weakref", "ctypes", "inspect",
))
# Class decorators that set attributes on the class they decorate: fine on one's own class.
CLASS_DECORATORS = frozenset(("dataclass", "total_ordering"))
FUNCTION_DECORATORS = frozenset(("lru_cache", "cache"))
# Attributes of frames, generators, coroutines, tracebacks and code objects: the way from any
# object to the interpreter's internals without a dunder.
INTERNAL_ATTR_PREFIXES = ("gi_", "cr_", "ag_", "f_", "tb_", "co_")
INTERNAL_STRINGS = ("__", "gi_frame", "f_back", "f_globals", "f_locals", "tb_frame", "co_code",
                    "f_builtins", "gi_code")
# Dunders that defining in one's own class is plain code (RestrictedPython allows a few of
# them too; these are the ones honest puzzles and solutions use).
SAFE_DUNDERS = frozenset((
    "__init__", "__repr__", "__str__", "__eq__", "__ne__", "__lt__", "__le__", "__gt__",
    "__ge__", "__hash__", "__len__", "__iter__", "__next__", "__getitem__", "__contains__",
    "__add__", "__sub__", "__mul__", "__bool__", "__call__", "__future__"))
CUSTOM_EQUALITY = frozenset(("__eq__", "__hash__"))
"""Names whose definition sends code to a process of its own (see the module docstring)."""
_TYPE_EXPRESSION_NODES = (ast.Name, ast.Attribute, ast.Subscript, ast.Tuple, ast.List,
                          ast.Constant, ast.BinOp, ast.expr_context, ast.BitOr)


class _Gate(RestrictingNodeTransformer):
    """RestrictedPython's policy, minus the refusals that only exist for its run-time guards."""

    def visit_AugAssign(self, node):
        target = node.target
        if isinstance(target, ast.Subscript) or _is_self_attribute(target):
            return self.node_contents_visit(node)
        return super().visit_AugAssign(node)

    def visit_Nonlocal(self, node):
        return self.node_contents_visit(node)

    def visit_AnnAssign(self, node):
        # Unknown to RestrictedPython (so refused); its annotation is held to a type
        # expression by our own check, and its target is checked like any assignment's.
        return self.node_contents_visit(node)

    def check_name(self, node, name, allow_magic_methods=False):
        if name in SAFE_DUNDERS or name == "print":  # print goes to /dev/null in a worker
            return
        super().check_name(node, name, allow_magic_methods)


def isolation_reason(tree: ast.Module) -> str | None:
    """Why the code must run in a process of its own; None when it may share a worker.

    `tree` is the module as it will be compiled, and it is spent: RestrictedPython's
    transformer rewrites it in place, after our own checks have read it. Compile it first (a
    second parse for RestrictedPython would cost a third of the gate)."""
    return _own_reason(tree) or _restricted_python_reason(tree)


def _restricted_python_reason(tree: ast.Module) -> str | None:
    """RestrictedPython's first refusal of the code, or None if it accepts it."""
    errors: list[str] = []
    try:
        _Gate(errors=errors, warnings=[], used_names={}).visit(tree)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
        return f"RestrictedPython cannot transform it: {type(e).__name__}"
    if errors:
        return "RestrictedPython: " + errors[0].split(": ", 1)[-1]
    return None


def _own_reason(tree: ast.Module) -> str | None:
    decorating: set[int] = set()  # ids of Name/Attribute nodes used as allowed decorators
    own_stores: set[int] | None = None  # found on the first attribute store (most code has none)
    for node in ast.walk(tree):
        reason = _custom_equality_reason(node)
        if reason:
            return reason
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            allowed = CLASS_DECORATORS if isinstance(node, ast.ClassDef) else \
                FUNCTION_DECORATORS
            for deco in node.decorator_list:
                head = deco.func if isinstance(deco, ast.Call) else deco
                name = _dotted_tail(head)
                if name not in allowed:
                    return f"decorator {ast.unparse(head)[:40]!r}"
                decorating.add(id(head))
            if not isinstance(node, ast.ClassDef):
                reason = _annotations_reason(node.args, node.returns)
                if reason:
                    return reason
            elif node.keywords:
                return "class keywords (metaclass)"
        elif isinstance(node, ast.AnnAssign):
            if not _is_type_expression(node.annotation):
                return "annotation that is not a type expression"
        elif isinstance(node, ast.Name):
            reason = _name_reason(node.id, id(node) in decorating)
            if reason:
                return reason
        elif isinstance(node, ast.Attribute):
            reason = _name_reason(node.attr, id(node) in decorating)
            if reason:
                return reason
            if isinstance(node.ctx, (ast.Store, ast.Del)):
                if own_stores is None:
                    own_stores = _method_self_stores(tree)
                if id(node) not in own_stores:
                    return f"sets attribute {node.attr!r} of something other than self"
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            reason = _import_reason(node)
            if reason:
                return reason
        elif isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)):
            text = node.value if isinstance(node.value, str) else node.value.decode("latin-1")
            if any(p in text for p in INTERNAL_STRINGS):
                return "string constant naming interpreter internals"
    return None


def _custom_equality_reason(node: ast.AST) -> str | None:
    """Whether `node` binds `__eq__` or `__hash__`, in whatever way a class body can: a def,
    an assignment (any target, walrus, for, with), an import alias, an except name."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        bound = node.name
    elif isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
        bound = node.id
    elif isinstance(node, ast.alias):
        bound = node.asname or node.name
    elif isinstance(node, ast.ExceptHandler):
        bound = node.name
    else:
        return None
    if bound in CUSTOM_EQUALITY:
        return f"defines {bound} (a lying one can poison caches every check of a worker uses)"
    return None


def _name_reason(name: str, as_decorator: bool) -> str | None:
    if name.startswith("__") and name not in SAFE_DUNDERS:
        return f"uses {name!r}"
    if name.startswith("_") and name != "_":
        return f"uses private name {name!r}"
    if name in DYNAMIC_NAMES or name.startswith(INTERNAL_ATTR_PREFIXES):
        return f"uses {name!r}"
    if name in CLASS_DECORATORS and not as_decorator:
        return f"uses {name!r} other than as a class decorator"
    return None


def _import_reason(node: ast.Import | ast.ImportFrom) -> str | None:
    if isinstance(node, ast.ImportFrom):
        if node.level:
            return "relative import"
        if node.module == "__future__":
            return None
        if node.module not in ALLOWED_MODULES:
            return f"imports {node.module}"
        if any(a.name == "*" for a in node.names):
            return "star import"
        for alias in node.names:
            reason = _name_reason(alias.name, alias.name in CLASS_DECORATORS)
            if reason:
                return reason
        return None
    for alias in node.names:
        if alias.name not in ALLOWED_MODULES:
            return f"imports {alias.name}"
    return None


def _annotations_reason(args: ast.arguments, returns) -> str | None:
    annotations = [a.annotation for a in (*args.posonlyargs, *args.args, *args.kwonlyargs,
                                           args.vararg, args.kwarg) if a is not None]
    for annotation in (*annotations, returns):
        if annotation is not None and not _is_type_expression(annotation):
            return "annotation that is not a type expression"
    return None


def _is_type_expression(node: ast.AST) -> bool:
    """Names, dotted names, subscripts, `|` unions and constants: what a type hint is made of.
    A string must itself be a type expression (it is evaluated as one by get_type_hints)."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            try:
                inner = ast.parse(sub.value, mode="eval").body
            except (SyntaxError, ValueError, RecursionError, MemoryError):
                return False
            if not _is_type_expression(inner):
                return False
        elif isinstance(sub, ast.BinOp) and not isinstance(sub.op, ast.BitOr):
            return False
        elif not isinstance(sub, _TYPE_EXPRESSION_NODES):
            return False
    return True


def _method_self_stores(tree: ast.Module) -> set[int]:
    """Ids of `self.x = ...` (and `del self.x`) nodes inside methods of classes this code
    defines, whose first parameter is `self`. A plain function's `self` could be a class from a
    module view (`def h(self): self.most_common = ...; h(Counter)`), which every later check in
    the worker would see."""
    stores: set[int] = set()
    for cls in ast.walk(tree):
        if not isinstance(cls, ast.ClassDef):
            continue
        for method in cls.body:
            if not isinstance(method, ast.FunctionDef):
                continue
            args = method.args.posonlyargs + method.args.args
            if not args or args[0].arg != "self":
                continue
            for node in ast.walk(method):
                if (isinstance(node, ast.Attribute) and _is_self_attribute(node)
                        and isinstance(node.ctx, (ast.Store, ast.Del))):
                    stores.add(id(node))
    return stores


def _is_self_attribute(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            and node.value.id == "self")


def _dotted_tail(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None
