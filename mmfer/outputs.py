"""Output paths, checked before any work starts, so a long run never ends in a traceback because its result
cannot be written (an existing folder where a file goes, a read-only disk, a file where a folder goes).

Every command's library function calls these on each of its outputs first: ``check_output_file`` for a
file it will write, ``check_output_dir`` for a folder it will fill. Both raise ``MmferError`` naming the
option, the path and what to do; the CLI turns that into exit code 2 with one line on stderr. Whether a
place is writable is found out by creating (and removing) a hidden probe file there, not from permission
bits, so it is right for root, read-only mounts and full quota alike.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterable

from mmfer.errors import MmferError


def _nearest_existing(path: Path) -> Path:
    p = path
    while not os.path.lexists(p):
        parent = p.parent
        if parent == p:
            break
        p = parent
    return p


def _probe(folder: Path) -> str:
    """Why ``folder`` cannot take a new file, or "" when it can."""
    try:
        fd, name = tempfile.mkstemp(prefix=".mmfer-probe-", dir=folder)
    except OSError as e:
        return e.strerror or type(e).__name__
    os.close(fd)
    try:
        os.unlink(name)
    except OSError:
        pass
    return ""


def _check_parent(path: Path, option: str) -> None:
    parent = path.parent if str(path.parent) else Path(".")
    base = _nearest_existing(parent)
    if not base.is_dir():
        raise MmferError(f"{option} {path}: {base} is a file, so no folder can be made there; choose another path")
    why = _probe(base)
    if why:
        raise MmferError(f"{option} {path}: cannot write in {base} ({why}); choose a writable place")


def check_output_file(path: str | Path, *, option: str, suffixes: Iterable[str] | None = None) -> Path:
    """``path`` when a file can be written there; otherwise an error naming ``option``.

    Refused: an existing folder, a path below a file, a place where no file can be created and (with
    ``suffixes``) another extension than those given."""
    path = Path(path)
    if str(path) in ("", "-"):
        raise MmferError(f"{option} {str(path)!r}: give a file name (writing to stdout is not supported)")
    if path.is_dir():
        raise MmferError(f"{option} {path}: is a folder; give a file name inside it, e.g. {path / 'out'}")
    if suffixes is not None:
        allowed = tuple(s.lower() for s in suffixes)
        if path.suffix.lower() not in allowed:
            raise MmferError(f"{option} {path}: expected a file ending in {' or '.join(allowed)}")
    _check_parent(path, option)  # files are written beside their final name and renamed into place
    return path


def check_output_dir(path: str | Path, *, option: str) -> Path:
    """``path`` when it is (or can become) a folder that takes new files; otherwise an error naming ``option``."""
    path = Path(path)
    if os.path.lexists(path) and not path.is_dir():
        raise MmferError(f"{option} {path}: is a file, not a folder; give a folder (it is created when missing)")
    if path.is_dir():
        why = _probe(path)
        if why:
            raise MmferError(f"{option} {path}: cannot write in this folder ({why}); choose a writable place")
        return path
    _check_parent(path, option)
    return path
