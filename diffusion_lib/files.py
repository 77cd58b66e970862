"""Writing files safely: every file the library writes appears whole or not at all."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Union

__all__ = ["atomic_write_bytes", "check_output_path", "check_output_folder"]


def atomic_write_bytes(path: Union[str, os.PathLike], data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder, then rename.

    A reader never sees a half-written file, and an interrupted write leaves the old file as it
    was. The folder must exist.

    Raises:
        FileNotFoundError: the folder does not exist.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(f"path's folder does not exist: {str(folder)!r}")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def check_output_path(option: str, value: str, suffix: str) -> Path:
    """Check, before any work, that the file ``value`` can be written: its suffix is ``suffix``
    (e.g. ``".npz"``, any case), it is not a folder, and its folder exists and is writable.

    Raises:
        ValueError: one line naming ``option`` (e.g. ``"--out"``) and what is wrong.
    """
    path = Path(value)
    if path.suffix.lower() != suffix:
        raise ValueError(f"{option} must be a {suffix} file, got {value!r}")
    if path.is_dir():
        raise ValueError(f"{option} must be a file, got the folder {value!r}")
    _check_folder(option, value, path.parent)
    return path


def check_output_folder(option: str, value: str) -> Path:
    """Check, before any work, that files can be written into the folder ``value``: it exists
    and is writable, or it does not exist and its parent does (it is created when written to).

    Raises:
        ValueError: one line naming ``option`` (e.g. ``"--wav"``) and what is wrong.
    """
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{option} must be a folder, got the file {value!r}")
    _check_folder(option, value, path if path.is_dir() else path.parent)
    return path


def _check_folder(option: str, value: str, folder: Path) -> None:
    if not folder.is_dir():
        raise ValueError(f"{option} {value!r}: its folder {str(folder)!r} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {value!r}: its folder {str(folder)!r} is not writable")
