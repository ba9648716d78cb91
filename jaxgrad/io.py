"""Files that are never half-written: write to a temporary name, fsync, rename into place.

``write_atomic`` is what the checkpoints of ``jaxgrad.train``, the landscape scans and the
experiment runner write their results with. A file it writes gets the permissions a plain
``open(path, "w")`` would give (``0o666`` less the process umask), not the private
``0o600`` of the temporary file it starts as.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["write_atomic", "default_file_mode", "default_dir_mode", "current_umask"]

_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask (read by setting it and setting it back, under a lock)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def default_file_mode() -> int:
    """``0o666 & ~umask``: the mode ``open(path, "w")`` gives a new file."""
    return 0o666 & ~current_umask()


def default_dir_mode() -> int:
    """``0o777 & ~umask``: the mode ``os.mkdir`` gives a new folder."""
    return 0o777 & ~current_umask()


def write_atomic(path: str | os.PathLike, data: bytes | Callable[[BinaryIO], None]) -> Path:
    """Write ``data`` (bytes, or a function writing to a binary file) to ``path`` atomically.

    The file is written under a temporary name in the same folder and renamed over
    ``path`` with ``os.replace``, so a reader sees the old file or the new one, never a
    partial one; on any error (an interrupt included) the temporary file is removed. The
    file ends up with mode ``0o666 & ~umask``, as ``open`` would give it.

    Arguments:
        path: the file to (re)place; its folder must exist.
        data: the bytes, or ``data(fh)`` writing them to the open binary file ``fh``.

    Returns:
        ``Path(path)``.

    Example:
        >>> import json
        >>> path = write_atomic("summary.json", json.dumps({"loss": 0.5}).encode())
        >>> path.read_text()
        '{"loss": 0.5}'
        >>> write_atomic("data.npz", lambda fh: np.savez(fh, x=np.arange(3))).name
        'data.npz'
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            os.chmod(tmp, default_file_mode())
            if callable(data):
                data(fh)
            else:
                fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
