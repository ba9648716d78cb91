"""Where a scan's results go: memory, or a checkpoint folder shared by all processes.

A store holds named fields, each ``(n,) + shape`` of one dtype (the last one ``finite``,
bool), written chunk by chunk, and the first non-finite points in grid order. A
checkpoint folder holds one ``.npy`` file per field and ``progress.json`` (the scan's
identity by parts, the finished chunks and a checksum of each chunk's rows in every
file); with several processes (``jax.distributed``) process 0 alone opens, checks and
writes it and tells the others what it found.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from pathlib import Path
from typing import Any

import jax
import numpy as np

from .._fingerprint import identify
from ..io import write_atomic


def blank(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """What a point not yet computed holds: NaN, or 0 (False) for integer and bool
    fields."""
    dtype = np.dtype(dtype)
    if dtype.kind in "fc":
        return np.full(shape, np.nan, dtype)
    return np.zeros(shape, dtype)


class MemoryStore:
    """Fields ``{name: (shape, dtype)}`` (``finite`` last) of ``n`` points in memory."""

    def __init__(self, n: int, fields: dict[str, tuple[tuple[int, ...], Any]]):
        self.arrays = {name: blank((n, *shape), dtype) for name, (shape, dtype) in
                       fields.items()}
        self.done: set[int] = set()
        self.nonfinite: list[int] = []
        self.num_nonfinite = 0

    def write(self, chunk: int, start: int, values: dict[str, np.ndarray],
              bad: np.ndarray, max_reported: int) -> None:
        for name, v in values.items():
            self.arrays[name][start:start + len(v)] = v
        self._record(chunk, bad, max_reported)

    def _record(self, chunk: int, bad: np.ndarray, max_reported: int) -> None:
        # The first max_reported in grid order, also when chunks come out of order (a
        # damaged chunk of a checkpoint folder recomputed after the later ones).
        merged = self.nonfinite + [int(i) for i in bad[:max_reported]]
        self.nonfinite = sorted(merged)[:max_reported]
        self.num_nonfinite += int(bad.size)
        self.done.add(chunk)

    def result_arrays(self) -> dict[str, np.ndarray]:
        return self.arrays


class DiskStore(MemoryStore):
    """One ``{name}.npy`` per field (``loss.npy``, ..., ``finite.npy``) written
    chunk by chunk with plain file writes (resident memory stays one chunk), and
    ``progress.json`` (the scan's identity, the finished chunks and a checksum of every
    finished chunk's rows in every file) replaced atomically after each chunk: a chunk
    counts as finished only once its data are on disk.

    Opening a folder reads every finished chunk back and checks it (``_verify``): a chunk
    whose bytes differ from its checksum is recomputed, a missing file or one of the wrong
    header or size is recreated and every chunk recomputed, each with a warning that names
    the file; a ``progress.json`` that cannot be read is refused (ValueError naming it):
    without it the folder's scan cannot be identified.

    With several processes (``jax.distributed``) the folder is shared: process 0 alone
    opens, checks, allocates and writes it, and sends what it found (the finished chunks
    and warnings, or the error) to every process, so that all run the same chunks and
    raise or warn together.
    """

    def __init__(self, folder: Path, n: int, fields: dict[str, tuple[tuple[int, ...], Any]],
                 chunk: int, parts: dict[str, str], max_reported: int,
                 function_part: str = "loss_fn"):
        self.folder = folder
        self.fields = tuple(fields)
        self.function_part = function_part
        self.n, self.chunk, self.n_chunks = n, chunk, -(-n // chunk)
        self.parts = parts
        self.spec_hash = digest(parts)
        self.max_reported = max_reported
        self.checksums: dict[int, list[str]] = {}
        self.shapes = {name: (n, *shape) for name, (shape, _) in fields.items()}
        self.dtypes = {name: np.dtype(dtype) for name, (_, dtype) in fields.items()}
        self.rows = {name: math.prod(self.shapes[name][1:]) * self.dtypes[name].itemsize
                     for name in self.shapes}
        self.offsets: dict[str, int] = {}
        self.writer = jax.process_index() == 0
        state, error = None, None
        if self.writer:
            try:
                state = self._open()
            except Exception as e:  # every process must learn of it, or the others hang
                error = e
                state = {"error": type(e).__name__, "message": str(e)}
        state = _from_process_0(state)
        if error is not None:
            raise error
        if "error" in state:
            kind = ValueError if state["error"] == "ValueError" else RuntimeError
            raise kind(f"{state['message']} (raised by process 0 on the `checkpoint` folder)")
        for message in state["warnings"]:
            warnings.warn(message, RuntimeWarning, stacklevel=3)
        self.done = set(state["done"])
        self.nonfinite = list(state["nonfinite"])
        self.num_nonfinite = int(state["num_nonfinite"])
        if jax.process_count() > 1:
            _check_shared(folder, self.spec_hash)

    def _open(self) -> dict[str, Any]:
        """Check or create the folder (process 0); return its progress state."""
        folder = self.folder
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"`checkpoint` must be a folder, got {str(folder)!r}, which is "
                             "an existing file")
        folder.mkdir(parents=True, exist_ok=True)
        progress = folder / "progress.json"
        self.done, self.checksums, self.nonfinite, self.num_nonfinite = set(), {}, [], 0
        if progress.is_file():
            self._read_progress(progress)
        bad = [f"{name}.npy {why}" for name in self.fields if (why := self._check_file(name))]
        notes = []
        if bad or not progress.is_file():
            if self.done:
                notes.append(
                    f"`checkpoint` folder {str(folder)!r}: {'; '.join(bad)}; recreating its "
                    f"files and recomputing all {len(self.done)} finished chunk(s)"
                )
            self.done, self.checksums = set(), {}
            for name in self.fields:
                self._allocate(name, folder / f"{name}.npy")
            self._save_progress()
        else:
            notes = self._verify()
        return {"done": sorted(self.done), "nonfinite": self.nonfinite,
                "num_nonfinite": self.num_nonfinite, "warnings": notes}

    def _read_progress(self, progress: Path) -> None:
        """The finished chunks and their checksums from ``progress.json``; raises unless
        the file is intact and describes this scan."""

        def damaged(why: str) -> ValueError:
            return ValueError(
                f"`checkpoint` file {str(progress)!r} is damaged ({why}), so the scan and "
                "the finished chunks in its folder cannot be identified; delete the folder "
                "(or only this file, to recompute every chunk there) and run again"
            )

        try:
            state = json.loads(progress.read_bytes())
        except (OSError, ValueError) as e:  # JSONDecodeError, UnicodeDecodeError
            raise damaged(f"{type(e).__name__}: {e}") from None
        if not isinstance(state, dict) or not isinstance(state.get("spec"), str):
            raise damaged("no scan identity in it")
        if state.get("version") != 2:
            raise ValueError(
                f"`checkpoint` folder {str(self.folder)!r} holds a scan written by an older "
                "jaxgrad, without checksums; use a new folder or delete this one"
            )
        if state["spec"] != self.spec_hash:
            old = state.get("parts") if isinstance(state.get("parts"), dict) else {}
            differ = [part for part in {**old, **self.parts}
                      if old.get(part) != self.parts.get(part)]
            if not differ:
                raise damaged("its scan identity does not match its parts")
            what = ", ".join(f"`{part}`" for part in differ)
            hint = (" (its code, constants, defaults, closure cells, partial arguments, "
                    "referenced globals, or `fingerprint`)" if self.function_part in differ
                    else "")
            raise ValueError(
                f"`checkpoint` folder {str(self.folder)!r} holds a different scan: its "
                f"{what} differ(s){hint}; use a new folder or delete this one"
            )
        done, sums = state.get("done"), state.get("checksums")
        if not (isinstance(done, list) and isinstance(sums, dict)
                and all(type(c) is int and 0 <= c < self.n_chunks for c in done)
                and len(set(done)) == len(done) and set(sums) == {str(c) for c in done}
                and all(isinstance(v, list) and len(v) == len(self.fields)
                        and all(isinstance(x, str) for x in v) for v in sums.values())):
            raise damaged("its finished chunks and their checksums do not agree")
        self.done = set(done)
        self.checksums = {int(c): v for c, v in sums.items()}

    def _check_file(self, name: str) -> str | None:
        """Why ``name.npy`` cannot hold this scan's output (None when it can)."""
        path = self.folder / f"{name}.npy"
        if not path.is_file():
            return "is missing"
        try:
            with open(path, "rb") as fh:
                version = np.lib.format.read_magic(fh)
                read = {(1, 0): np.lib.format.read_array_header_1_0,
                        (2, 0): np.lib.format.read_array_header_2_0}[version]
                shape, fortran_order, dtype = read(fh)
                self.offsets[name] = fh.tell()
        except Exception as e:  # a damaged header: ValueError, KeyError, SyntaxError...
            return f"has a damaged header ({type(e).__name__})"
        if shape != self.shapes[name] or dtype != self.dtypes[name] or fortran_order:
            return (f"holds shape {shape} {dtype}, expected {self.shapes[name]} "
                    f"{self.dtypes[name]}")
        size = self.offsets[name] + self.n * self.rows[name]
        if path.stat().st_size != size:
            return f"has {path.stat().st_size} bytes, expected {size} (truncated or damaged)"
        return None

    def _region(self, c: int) -> tuple[int, int]:
        start = c * self.chunk
        return start, min(self.chunk, self.n - start)

    def _verify(self) -> list[str]:
        """Read every chunk back (process 0, on opening): a finished chunk whose bytes in
        any file differ from its checksum is reset and dropped from the finished ones
        (recomputed, with a warning naming the file); an unfinished chunk's rows are reset
        to NaN (False) unless they are (an interrupted write, damage). The non-finite
        points are counted anew from the checked ``finite`` rows."""
        damaged: dict[str, list[int]] = {}
        reset = []
        handles = {name: open(self.folder / f"{name}.npy", "rb") for name in self.fields}
        try:
            for c in range(self.n_chunks):
                start, count = self._region(c)
                data, intact = {}, True
                for i, name in enumerate(self.fields):
                    fh = handles[name]
                    fh.seek(self.offsets[name] + start * self.rows[name])
                    data[name] = fh.read(count * self.rows[name])
                    if c in self.done and _checksum(data[name]) != self.checksums[c][i]:
                        damaged.setdefault(name, []).append(c)
                        intact = False
                if c in self.done and intact:
                    finite = np.frombuffer(data["finite"], bool)
                    self._record(c, start + np.flatnonzero(~finite), self.max_reported)
                    continue
                empty = all(self._is_blank(name, v) for name, v in data.items())
                if c in self.done or not empty:
                    reset.append(c)
        finally:
            for fh in handles.values():
                fh.close()
        for c in reset:
            self.done.discard(c)
            self.checksums.pop(c, None)
            for name in self.fields:
                self._fill(name, c)
        if damaged:
            self._save_progress()
        return [f"`checkpoint` file {str(self.folder / f'{name}.npy')!r}: chunk(s) "
                f"{chunks} do not match their checksums (damaged on disk); recomputing them"
                for name, chunks in damaged.items()]

    def _is_blank(self, name: str, data: bytes) -> bool:
        """Whether rows read from ``name.npy`` hold what ``blank`` writes there."""
        values = np.frombuffer(data, self.dtypes[name])
        return bool(np.isnan(values).all() if self.dtypes[name].kind in "fc"
                    else not values.any())

    def _fill(self, name: str, c: int) -> None:
        """Reset chunk ``c``'s rows of ``name.npy`` to NaN (False)."""
        start, count = self._region(c)
        fill = blank((count, *self.shapes[name][1:]), self.dtypes[name])
        self._write_rows(name, start, fill.tobytes())

    def _write_rows(self, name: str, start: int, data: bytes) -> None:
        with open(self.folder / f"{name}.npy", "r+b") as fh:
            fh.seek(self.offsets[name] + start * self.rows[name])
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())

    def _allocate(self, name: str, path: Path) -> None:
        """A new file of NaN (False); replaced atomically, so that a memory map of the old
        file (an earlier result, on any process) keeps its data."""
        shape, dtype = self.shapes[name], self.dtypes[name]

        def fill_file(fh):
            np.lib.format.write_array_header_1_0(
                fh, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                     "shape": shape})
            self.offsets[name] = fh.tell()
            block = blank((min(1 << 20, math.prod(shape)),), dtype)
            remaining = math.prod(shape)
            while remaining > 0:
                m = min(remaining, block.size)
                fh.write(block[:m].tobytes())
                remaining -= m

        write_atomic(path, fill_file)

    def _save_progress(self) -> None:
        if not self.writer:
            return
        done = sorted(self.done)
        state = {"version": 2, "spec": self.spec_hash, "parts": self.parts, "done": done,
                 "checksums": {str(c): self.checksums[c] for c in done}}
        write_atomic(self.folder / "progress.json", json.dumps(state).encode())

    def write(self, chunk: int, start: int, values: dict[str, np.ndarray],
              bad: np.ndarray, max_reported: int) -> None:
        if self.writer:
            sums = []
            for name in self.fields:
                data = np.ascontiguousarray(values[name], self.dtypes[name]).tobytes()
                self._write_rows(name, start, data)
                sums.append(_checksum(data))
            self.checksums[chunk] = sums
        self._record(chunk, bad, max_reported)
        self._save_progress()

    def result_arrays(self) -> dict[str, np.ndarray]:
        if jax.process_count() == 1:
            return {name: np.load(self.folder / f"{name}.npy", mmap_mode="r")
                    for name in self.fields}
        from jax.experimental import multihost_utils

        # Open the files once process 0 has written everything, and return only once
        # every process has opened them (before process 0 can touch the folder again).
        multihost_utils.sync_global_devices("jaxgrad.scan_landscape: written")
        arrays = {name: np.load(self.folder / f"{name}.npy", mmap_mode="r")
                  for name in self.fields}
        multihost_utils.sync_global_devices("jaxgrad.scan_landscape: opened")
        return arrays


def _checksum(data: bytes) -> str:
    """A chunk's rows in one file: SHA-256, 64 bits of it (damage, not an adversary)."""
    return hashlib.sha256(data).hexdigest()[:16]


def _from_process_0(state: Any) -> Any:
    """Process 0's JSON-able ``state`` on every process (``jax.distributed``)."""
    if jax.process_count() == 1:
        return state
    from jax.experimental import multihost_utils

    data = np.frombuffer(json.dumps(state).encode(), np.uint8) \
        if jax.process_index() == 0 else np.zeros((0,), np.uint8)
    size = int(multihost_utils.broadcast_one_to_all(np.int32(data.size)))
    if jax.process_index() != 0:
        data = np.zeros((size,), np.uint8)
    data = multihost_utils.broadcast_one_to_all(data)
    return json.loads(np.asarray(data, np.uint8).tobytes().decode())


def _check_shared(folder: Path, spec_hash: str) -> None:
    """Raise on every process unless every process sees process 0's checkpoint folder."""
    from jax.experimental import multihost_utils

    try:
        seen = json.loads((folder / "progress.json").read_text()).get("spec") == spec_hash
    except (OSError, ValueError):
        seen = False
    seen_by = np.asarray(multihost_utils.process_allgather(np.int32(seen))).ravel()
    if not seen_by.all():
        missing = [int(i) for i in np.flatnonzero(seen_by == 0)]
        raise ValueError(
            f"`checkpoint` folder {str(folder)!r} must be shared by all processes (one "
            f"filesystem path), but process(es) {missing} do not see the progress file "
            "that process 0 wrote there"
        )


def digest(*parts: Any) -> str:
    """A short hash of arrays (by dtype, shape and bytes) and JSON-able values."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            h.update(f"{part.dtype.str}{part.shape}".encode())
            h.update(np.ascontiguousarray(part).tobytes())
        else:
            h.update(json.dumps(part, sort_keys=True).encode())
    return h.hexdigest()[:32]


def function_identity(fn: Any, fingerprint: str | bytes | None, argument: str) -> str:
    """The part of a scan's identity that stands for its function ``fn`` (named
    ``argument`` in messages): the user's ``fingerprint``, or ``fn``'s own."""
    if fingerprint is not None:
        data = fingerprint.encode() if isinstance(fingerprint, str) else bytes(fingerprint)
        return "fingerprint " + hashlib.sha256(data).hexdigest()[:32]
    identity = identify(fn, f"`{argument}`")
    if identity.unidentified:
        raise ValueError(
            f"`checkpoint` needs the identity of `{argument}`, which cannot be established: "
            f"{identity.unidentified[0]}, which has no deterministic fingerprint (arrays, "
            "numbers, strings, containers, dataclasses and functions of these have one). "
            "Pass `fingerprint=` (a str or bytes that changes whenever the function does) "
            "to identify it yourself"
        )
    return identity.digest[:32]
