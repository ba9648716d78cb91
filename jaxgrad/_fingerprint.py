"""A deterministic fingerprint of a callable and of everything its results depend on.

A checkpoint may only be resumed by the computation that wrote it: a loss-landscape scan
(``scan_landscape(checkpoint=...)``) by the same ``loss_fn``, a training run
(``fit(checkpoint_dir=...)``) by the same loss, optimiser, batch source, regulariser
and monitor. ``identify(obj, where)`` walks such an object and returns an ``Identity``:
a SHA-256 that is the same in every Python process that builds the same objects, and
the places where the walk met an object it could not identify. It follows

- numbers, strings, bytes, ``None`` by value (floats exactly, by ``float.hex``);
- arrays (NumPy, JAX) by dtype, shape and bytes; PRNG keys by their implementation and
  key data; arrays of Python objects element by element;
- tuples, lists, named tuples, dicts, sets, dataclasses by their type and contents; enum
  members by their type, name and value;
- a function of the user (a script, a notebook's ``__main__``, any module outside an
  installed package) by its bytecode, constants, names, defaults, closure cells and the
  module globals its code reads, recursively; a user's class by its bases, methods and
  constants;
- code of jaxgrad, the standard library and installed packages by module, qualified name
  and version (jaxgrad's version includes a hash of its source files), plus the
  defaults and closure cells of its functions (so ``optax.adam(1e-3)`` and
  ``optax.adam(1e-2)`` differ);
- ``functools.partial``, bound methods, ``jax.jit``/``functools.wraps``-style wrappers and
  ``jax.custom_jvp``/``custom_vjp`` by what they wrap.

Anything else (an open file, a lock, a random generator, an object whose state is not
inspectable, a traced value, an array spread over several processes, a structure nested
deeper than ``MAX_DEPTH``) is not identified: it counts by its type only and
``Identity.unidentified`` says where it was found. The callers apply their own policy:
a scan refuses to checkpoint such a loss, a training run warns and resumes it only when
the user vouches for the run with ``config=``.
"""

from __future__ import annotations

import dataclasses
import dis
import enum
import functools
import hashlib
import importlib.metadata
import os
import sys
import sysconfig
import types
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

#: How deep the walk follows containers, functions and closures before giving up.
MAX_DEPTH = 64
_SCALARS = (type(None), type(Ellipsis), type(NotImplemented), bool, int, str, bytes)
_GLOBAL_LOADS = ("LOAD_GLOBAL", "LOAD_NAME", "LOAD_FROM_DICT_OR_GLOBALS")


class Identity(NamedTuple):
    """What ``identify`` found.

    Attributes:
        digest: hex SHA-256 of the walk.
        unidentified: one ``"<where> is <what>"`` per object that could not be
            identified (``"`loss_fn` closure cell 'lock' is a _thread.lock"``).
    """

    digest: str
    unidentified: tuple[str, ...]


def identify(obj: Any, where: str) -> Identity:
    """The fingerprint of ``obj``; ``where`` names it in ``Identity.unidentified``."""
    walk = _Walk()
    try:
        walk.add(obj, where)
    except RecursionError:  # a graph deeper than the interpreter's stack allows
        walk.unknown(where, "nested too deeply to walk")
    return Identity(walk.hash.hexdigest(), tuple(walk.unidentified))


def python_version() -> str:
    """``cpython-3.11``: bytecode, and so a user function's fingerprint, depends on it."""
    return f"{sys.implementation.name}-{sys.version_info[0]}.{sys.version_info[1]}"


# ------------------------------------------------------------------- library code


@functools.cache
def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    return tuple(os.path.realpath(paths[k]) + os.sep
                 for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths)


def _is_library(module_name: Any) -> bool:
    """True for code of jaxgrad, the standard library and installed packages: identified by
    name and version, not by content (their code does not change between two runs)."""
    if not isinstance(module_name, str) or module_name.startswith("__"):
        return False  # "__main__": a script's or a notebook's code
    top = module_name.partition(".")[0]
    if top == "jaxgrad" or top in sys.builtin_module_names:
        return True
    module = sys.modules.get(module_name) or sys.modules.get(top)
    file = getattr(module, "__file__", None)
    return file is not None and os.path.realpath(file).startswith(_library_roots())


@functools.cache
def _version(module_name: str) -> str:
    """The version of the package a library module belongs to."""
    top = module_name.partition(".")[0]
    if top == "jaxgrad":  # its version string does not move with every edit: hash the code
        package = Path(__file__).parent
        code = hashlib.sha256()
        for file in sorted(package.rglob("*.py")):
            code.update(str(file.relative_to(package)).encode() + b"\0" + file.read_bytes())
        return f"{getattr(sys.modules.get(top), '__version__', '')}+{code.hexdigest()[:16]}"
    if top in sys.builtin_module_names or top in sys.stdlib_module_names:
        return python_version()
    try:
        return importlib.metadata.version(top)
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return str(getattr(sys.modules.get(top), "__version__", ""))


def _by_name(obj: Any) -> tuple[str, str] | None:
    """``(module, name)`` when that name in a library module leads back to ``obj``: a
    library's function, class, ufunc, or a stateless module-level object (a sentinel)."""
    module_name = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    if isinstance(qualname, str) and _is_library(module_name):
        found = sys.modules.get(module_name)
        for part in qualname.split("."):
            found = getattr(found, part, None)
        if found is obj:
            return module_name, qualname
    module_name = type(obj).__module__
    module = sys.modules.get(module_name)
    if module is not None and getattr(obj, "__dict__", None) == {} and _is_library(module_name):
        for name, value in vars(module).items():
            if value is obj:
                return module_name, name
    return None


def _type_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


# ---------------------------------------------------------------------------- walk


class _Walk:
    """Feeds a SHA-256 with length-prefixed tokens describing an object graph."""

    def __init__(self) -> None:
        self.hash = hashlib.sha256()
        self.unidentified: list[str] = []
        self.seen: dict[int, int] = {}  # id -> order of first visit (cycles, sharing)
        self.alive: list[Any] = []  # keeps visited objects (and so their ids) alive

    def put(self, *tokens: Any) -> None:
        for token in tokens:
            data = token if isinstance(token, bytes) else str(token).encode()
            self.hash.update(len(data).to_bytes(8, "little") + data)

    def unknown(self, where: str, what: str) -> None:
        self.unidentified.append(f"{where} is {what}")
        self.put("unidentified", what)

    def sub(self, obj: Any, where: str, depth: int) -> bytes:
        """The digest of ``obj`` on its own (set elements, dict keys: sorted by it)."""
        walk = _Walk()
        walk.add(obj, where, depth)
        self.unidentified += walk.unidentified
        return walk.hash.digest()

    def add(self, obj: Any, where: str, depth: int = 0) -> None:
        if type(obj) in _SCALARS:
            self.put(type(obj).__name__, obj if isinstance(obj, bytes) else repr(obj))
            return
        if type(obj) is float:
            self.put("float", obj.hex())
            return
        if type(obj) is complex:
            self.put("complex", obj.real.hex(), obj.imag.hex())
            return
        if depth > MAX_DEPTH:
            self.unknown(where, f"nested more than {MAX_DEPTH} levels deep")
            return
        if id(obj) in self.seen:
            self.put("seen", self.seen[id(obj)])
            return
        self.seen[id(obj)] = len(self.seen)
        self.alive.append(obj)
        self._add(obj, where, depth + 1)

    def _add(self, obj: Any, where: str, depth: int) -> None:
        add, put = self.add, self.put
        if type(obj) is object:
            put("sentinel")  # a bare `object()`, e.g. a default-argument marker
        elif isinstance(obj, enum.Enum):
            put("enum", _type_name(type(obj)), obj.name)
            add(obj.value, f"{where}.value", depth)
        elif isinstance(obj, (np.ndarray, np.generic, jax.Array)):
            self._array(obj, where, depth)
        elif isinstance(obj, (tuple, list)):
            put("sequence", len(obj), getattr(obj, "_fields", None))
            add(type(obj), f"{where} type", depth - 1)
            for i, item in enumerate(obj):
                add(item, f"{where}[{i}]", depth)
        elif isinstance(obj, dict):
            put("dict", len(obj))
            add(type(obj), f"{where} type", depth - 1)
            items = [(self.sub(key, f"{where} key {key!r:.40}", depth), key, value)
                     for key, value in obj.items()]
            for digest, key, value in sorted(items, key=lambda t: t[0]):
                put(digest)
                add(value, f"{where}[{key!r:.40}]", depth)
        elif isinstance(obj, (set, frozenset)):
            digests = sorted(self.sub(item, f"{where} element", depth) for item in obj)
            put(_type_name(type(obj)), *digests)
        elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            put("dataclass")
            add(type(obj), f"{where} type", depth - 1)
            for field in dataclasses.fields(obj):
                put(field.name)
                add(getattr(obj, field.name), f"{where}.{field.name}", depth)
        elif isinstance(obj, types.FunctionType):
            self._function(obj, where, depth)
        elif isinstance(obj, functools.partial):
            put("partial")
            add(type(obj), f"{where} type", depth - 1)
            add(obj.func, f"{where}.func", depth)
            add(obj.args, f"{where}.args", depth)
            add(obj.keywords, f"{where}.keywords", depth)
        elif isinstance(obj, types.MethodType):
            put("method")
            add(obj.__func__, f"{where}.__func__", depth)
            add(obj.__self__, f"{where}.__self__", depth)
        elif isinstance(obj, types.ModuleType):
            library = _is_library(obj.__name__)
            put("module", obj.__name__, _version(obj.__name__) if library else "")
        elif isinstance(obj, types.CodeType):
            self._code(obj, where, depth)
        elif isinstance(obj, type):
            self._class(obj, where, depth)
        elif isinstance(obj, (np.dtype, slice, range)):
            put(_type_name(type(obj)), repr(obj))
        elif (name := _by_name(obj)) is not None:  # a library's function, ufunc, object
            put("library", *name, _version(name[0]))
        elif isinstance(obj, types.BuiltinMethodType) and not isinstance(
                obj.__self__, (types.ModuleType, type(None))):
            put("bound builtin", obj.__name__)  # e.g. `list.append` of one list
            add(obj.__self__, f"{where}.__self__", depth)
        elif isinstance(obj, (jax.custom_jvp, jax.custom_vjp)):
            put("custom derivative", _type_name(type(obj)))  # the function and its rules
            for key, value in sorted(vars(obj).items()):
                if not key.startswith("_"):
                    put(key)
                    add(value, f"{where}.{key}", depth)
        elif hasattr(obj, "__wrapped__"):  # jax.jit, functools.wraps, lru_cache, ...
            put("wrapper", _type_name(type(obj)))
            add(obj.__wrapped__, f"{where}.__wrapped__", depth)
        else:
            self.unknown(where, f"a {_type_name(type(obj))}")

    def _array(self, obj: Any, where: str, depth: int) -> None:
        if isinstance(obj, jax.core.Tracer):
            return self.unknown(where, "a traced value")
        if isinstance(obj, jax.Array):
            if not obj.is_fully_addressable:
                return self.unknown(where, "an array spread over several processes")
            if jax.dtypes.issubdtype(obj.dtype, jax.dtypes.prng_key):
                self.put("key", str(obj.dtype))
                obj = jax.random.key_data(obj)
        arr = np.ascontiguousarray(obj)
        self.put("array", str(arr.dtype), arr.dtype.str, arr.shape)
        if arr.dtype.hasobject:
            for i, item in enumerate(arr.reshape(-1)):
                self.add(item, f"{where}.flat[{i}]", depth)
        else:
            self.hash.update(arr.reshape(-1).view(np.uint8))

    def _function(self, fn: types.FunctionType, where: str, depth: int) -> None:
        put, add = self.put, self.add
        if _is_library(fn.__module__):
            put("library", fn.__module__, fn.__qualname__, _version(fn.__module__))
        else:
            put("function", fn.__module__, fn.__qualname__)
            self._code(fn.__code__, f"{where}.__code__", depth)
            # The globals its code (or a nested function's, lambda's, comprehension's) names.
            names, stack = [], [fn.__code__]
            while stack:
                code = stack.pop()
                names.extend(ins.argval for ins in dis.get_instructions(code)
                             if ins.opname in _GLOBAL_LOADS)
                stack.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
            for name in dict.fromkeys(names):
                if name in fn.__globals__:
                    put("global", name)
                    add(fn.__globals__[name], f"{where} global {name!r}", depth)
        add(fn.__defaults__, f"{where}.__defaults__", depth)
        add(fn.__kwdefaults__, f"{where}.__kwdefaults__", depth)
        for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or ()):
            try:
                value = cell.cell_contents
            except ValueError:  # a cell not yet filled
                put("empty cell", name)
                continue
            put("cell", name)
            add(value, f"{where} closure cell {name!r}", depth)

    def _code(self, code: types.CodeType, where: str, depth: int) -> None:
        self.put("code", code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount,
                 code.co_flags, code.co_code, getattr(code, "co_exceptiontable", b""),
                 code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars,
                 len(code.co_consts))
        for i, const in enumerate(code.co_consts):
            self.add(const, f"{where} constant {i}", depth)

    def _class(self, cls: type, where: str, depth: int) -> None:
        if cls.__module__ == "builtins" or _is_library(cls.__module__):
            self.put("class", cls.__module__, cls.__qualname__, _version(cls.__module__))
            return
        # A user's class: its bases, methods and constants (not its docstring, not the
        # descriptors of its fields or slots: the fields are walked with the instance).
        self.put("class", cls.__module__, cls.__qualname__, len(cls.__bases__))
        for base in cls.__bases__:
            self.add(base, f"{where} base", depth)
        for name, value in sorted(vars(cls).items()):
            if isinstance(value, (staticmethod, classmethod)):
                value = value.__func__
            elif isinstance(value, property):
                value = (value.fget, value.fset, value.fdel)
            elif not isinstance(value, types.FunctionType) and (
                    name.startswith("__") or hasattr(type(value), "__get__")):
                continue
            self.put("attribute", name)
            self.add(value, f"{where}.{name}", depth)
