"""A deterministic description of the Python objects that define a training run.

A checkpoint may only be resumed by the run that wrote it. The run is defined by more
than its parameter shapes: the loss function (its code, the constants in it, the values
it closes over, the arguments bound by ``functools.partial``, its defaults), the optax
optimiser (whose hyper-parameters live in the closures of its ``init``/``update``
functions), the regulariser, the monitor and the batch source (its sampling function
and its data). ``identify(obj)`` walks such an object and returns a JSON-able tree:

- numbers, strings, ``None`` by value (floats exactly, by ``float.hex``);
- arrays by dtype, shape and the SHA-256 of their bytes;
- tuples, lists, dicts, named tuples, dataclasses by their type and contents;
- a function defined outside an installed package by its bytecode, constants, names,
  defaults, closure values and the module globals it reads (recursively);
- a function of an installed package (jax, optax, numpy, the standard library) by its
  module, qualified name and package version, plus its defaults and closure values
  (so ``optax.adam(1e-3)`` and ``optax.adam(1e-2)`` differ);
- ``functools.partial``, bound methods and ``jax.jit``-wrapped functions by what they wrap.

Anything else (an open file, a lock, an object with no inspectable state) cannot be
identified: it is described by its type only and its location is listed in
``Identity.unidentified``, so the caller can refuse to trust it.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import importlib.metadata
import json
import sys
import sysconfig
import types
from pathlib import Path
from typing import Any

import jax
import numpy as np

_LIBRARY_ROOTS = tuple(
    {str(Path(p).resolve()) for p in (sysconfig.get_paths()["purelib"],
                                      sysconfig.get_paths()["platlib"],
                                      sysconfig.get_paths()["stdlib"]) if p}
)


@functools.cache
def _library_version(top: str) -> str | None:
    """The version of an installed top-level package, ``None`` for user code."""
    if top in sys.builtin_module_names or top in sys.stdlib_module_names:
        return f"python-{sys.version_info[0]}.{sys.version_info[1]}"
    module = sys.modules.get(top)
    file = getattr(module, "__file__", None)
    if file is None:
        return None
    path = str(Path(file).resolve())
    if not any(path.startswith(root) for root in _LIBRARY_ROOTS):
        return None
    try:
        return importlib.metadata.version(top)
    except importlib.metadata.PackageNotFoundError:
        return getattr(module, "__version__", "installed")


def _library(module_name: str | None) -> str | None:
    if not module_name:
        return None
    return _library_version(module_name.split(".", 1)[0])


def _names_in(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names_in(const)
    return names


class Identity:
    """Walks objects into JSON-able identities; collects what it could not identify."""

    def __init__(self) -> None:
        self.unidentified: list[str] = []
        self._memo: dict[int, Any] = {}
        self._keep: list[Any] = []  # objects memoised by id stay alive meanwhile
        self._active: set[int] = set()

    def digest(self, obj: Any, where: str) -> str:
        """SHA-256 of ``identify(obj)``."""
        text = json.dumps(self.identify(obj, where), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def identify(self, obj: Any, where: str) -> Any:
        if obj is None or isinstance(obj, (bool, int, str)):
            return [type(obj).__name__, obj]
        if isinstance(obj, float):
            return ["float", obj.hex()]
        if isinstance(obj, complex):
            return ["complex", obj.real.hex(), obj.imag.hex()]
        if isinstance(obj, bytes):
            return ["bytes", hashlib.sha256(obj).hexdigest()]
        key = id(obj)
        if key in self._memo:
            return self._memo[key]
        if key in self._active:
            return ["cycle", type(obj).__qualname__, getattr(obj, "__qualname__", "")]
        self._active.add(key)
        try:
            out = self._identify(obj, where)
        except RecursionError:  # an object graph too deep to walk
            out = self._unknown(obj, where)
        finally:
            self._active.discard(key)
        self._memo[key] = out
        self._keep.append(obj)
        return out

    # ------------------------------------------------------------------ cases

    def _identify(self, obj: Any, where: str) -> Any:
        if type(obj) is object:
            return ["sentinel"]  # a bare `object()`, e.g. a default-argument marker
        if isinstance(obj, enum.Enum):
            return ["enum", self._type(type(obj), where), obj.name]
        if isinstance(obj, jax.Array) and jax.dtypes.issubdtype(obj.dtype, jax.dtypes.prng_key):
            return ["key", str(obj.dtype), self.identify(jax.random.key_data(obj), where)]
        if isinstance(obj, (np.ndarray, np.generic, jax.Array)):
            if isinstance(obj, jax.core.Tracer):
                return self._unknown(obj, where)
            arr = np.asarray(obj)
            if arr.dtype.hasobject:
                return ["object-array", list(arr.shape),
                        [self.identify(v, f"{where}[{i}]") for i, v in enumerate(arr.ravel())]]
            return ["array", str(arr.dtype), list(arr.shape),
                    hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()]
        if isinstance(obj, tuple) and hasattr(type(obj), "_fields"):
            return ["namedtuple", self._type(type(obj), where),
                    {f: self.identify(v, f"{where}.{f}") for f, v in zip(obj._fields, obj)}]
        if isinstance(obj, (tuple, list)):
            return [type(obj).__name__, self._type(type(obj), where)
                    if type(obj) not in (tuple, list) else None,
                    [self.identify(v, f"{where}[{i}]") for i, v in enumerate(obj)]]
        if isinstance(obj, dict):
            items = [(self.identify(k, f"{where} key"), self.identify(v, f"{where}[{k!r}]"))
                     for k, v in obj.items()]
            items.sort(key=lambda kv: json.dumps(kv[0], sort_keys=True))
            return ["dict", self._type(type(obj), where) if type(obj) is not dict else None,
                    items]
        if isinstance(obj, (set, frozenset)):
            members = sorted(json.dumps(self.identify(v, f"{where} member"), sort_keys=True)
                             for v in obj)
            return ["set", members]
        if isinstance(obj, functools.partial):
            return ["partial", self._type(type(obj), where),
                    self.identify(obj.func, f"{where}.func"),
                    self.identify(obj.args, f"{where}.args"),
                    self.identify(obj.keywords, f"{where}.keywords")]
        if isinstance(obj, types.MethodType):
            return ["method", self.identify(obj.__func__, f"{where}.__func__"),
                    self.identify(obj.__self__, f"{where}.__self__")]
        if isinstance(obj, types.FunctionType):
            return self._function(obj, where)
        if isinstance(obj, types.ModuleType):
            return ["module", obj.__name__, _library(obj.__name__)]
        if isinstance(obj, type):
            return self._type(obj, where)
        if isinstance(obj, types.CodeType):
            return self._code(obj, where)
        if isinstance(obj, (types.BuiltinFunctionType, np.ufunc)):
            owner = getattr(obj, "__self__", None)
            bound = (None if owner is None or isinstance(owner, types.ModuleType)
                     else self.identify(owner, f"{where}.__self__"))
            module = getattr(obj, "__module__", None) or type(owner).__module__
            return ["builtin", module, getattr(obj, "__qualname__", obj.__name__),
                    _library(module), bound]
        wrapped = getattr(obj, "__wrapped__", None)
        if callable(obj) and wrapped is not None and wrapped is not obj:
            # jax.jit, functools.wraps-style wrappers: the wrapper type and what it wraps.
            return ["wrapped", self._type(type(obj), where),
                    self.identify(wrapped, f"{where}.__wrapped__")]
        if dataclasses.is_dataclass(obj):
            return ["dataclass", self._type(type(obj), where),
                    {f.name: self.identify(getattr(obj, f.name), f"{where}.{f.name}")
                     for f in dataclasses.fields(obj)}]
        state = getattr(obj, "__dict__", None)
        if isinstance(state, dict) and not isinstance(obj, type):
            return ["object", self._type(type(obj), where), self.identify(state, where)]
        return self._unknown(obj, where)

    def _unknown(self, obj: Any, where: str) -> Any:
        name = f"{type(obj).__module__}.{type(obj).__qualname__}"
        self.unidentified.append(f"{where} ({name})")
        return ["unidentified", name]

    def _type(self, cls: type, where: str) -> Any:
        version = _library(cls.__module__)
        if version is not None or cls.__module__ == "builtins":
            return ["type", cls.__module__, cls.__qualname__, version]
        key = id(cls)
        if key in self._memo:
            return self._memo[key]
        if key in self._active:
            return ["cycle-type", cls.__module__, cls.__qualname__]
        self._active.add(key)
        try:
            # A user-defined class: its own methods and constants (inherited ones from
            # library bases are pinned by the bases' names and versions).
            body = {}
            for name, value in sorted(vars(cls).items()):
                if isinstance(value, (staticmethod, classmethod)):
                    value = value.__func__
                elif isinstance(value, property):
                    value = (value.fget, value.fset, value.fdel)
                elif not isinstance(value, (types.FunctionType, bool, int, float, str,
                                            type(None))):
                    continue  # slot/field descriptors, docstrings' neighbours, caches
                body[name] = self.identify(value, f"{cls.__qualname__}.{name}")
            out = ["type", cls.__module__, cls.__qualname__, None,
                   [self._type(base, where) for base in cls.__bases__], body]
        finally:
            self._active.discard(key)
        self._memo[key] = out
        self._keep.append(cls)
        return out

    def _code(self, code: types.CodeType, where: str) -> Any:
        consts = [self._code(c, where) if isinstance(c, types.CodeType)
                  else self.identify(c, f"{where} constant") for c in code.co_consts]
        return ["code", hashlib.sha256(code.co_code).hexdigest(), consts,
                list(code.co_names), list(code.co_varnames), list(code.co_freevars),
                list(code.co_cellvars), code.co_argcount, code.co_posonlyargcount,
                code.co_kwonlyargcount, code.co_flags]

    def _function(self, fn: types.FunctionType, where: str) -> Any:
        module = fn.__module__
        version = _library(module)
        here = f"{where} ({module}.{fn.__qualname__})"
        closure = []
        for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or (), strict=True):
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell
                closure.append([name, ["empty-cell"]])
                continue
            closure.append([name, self.identify(value, f"{here} closure `{name}`")])
        head = ["function", module, fn.__qualname__, version,
                self.identify(fn.__defaults__, f"{here} defaults"),
                self.identify(fn.__kwdefaults__, f"{here} keyword defaults"), closure]
        if version is not None:
            # Installed code is pinned by its package version; its closure holds the
            # values it was built with (an optax optimiser's hyper-parameters).
            return head
        used = sorted(n for n in _names_in(fn.__code__) if n in fn.__globals__)
        globals_ = [[n, self.identify(fn.__globals__[n], f"{here} global `{n}`")] for n in used]
        return head + [self._code(fn.__code__, here), globals_]


def python_version() -> str:
    return f"{sys.implementation.name}-{sys.version_info[0]}.{sys.version_info[1]}"
