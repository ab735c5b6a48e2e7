"""Output paths, checked before any work starts, so a long run never ends in a traceback because its result
cannot be written (an existing folder where a file goes, a read-only disk, a file where a folder goes).

Every command's library function calls these on each of its outputs first: ``check_output_file`` for a
file it will write, ``check_output_dir`` for a folder it will fill. Both raise ``MmferError`` naming the
option, the path and what to do; the CLI turns that into exit code 2 with one line on stderr. Whether a
place is writable is found out by creating (and removing) a hidden probe file there, not from permission
bits, so it is right for root, read-only mounts and full quota alike.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

from mmfer.errors import MmferError, csv_errors


def _nearest_existing(path: Path) -> Path:
    p = path
    while not os.path.lexists(p):
        parent = p.parent
        if parent == p:
            break
        p = parent
    return p


def _probe(folder: Path) -> str:
    """Why ``folder`` cannot take a new file, or "" when it can. The folder's times are put back afterwards, so
    a check leaves no trace (a resumed run that has nothing to do changes nothing)."""
    try:
        before = os.stat(folder)
    except OSError as e:
        return e.strerror or type(e).__name__
    try:
        fd, name = tempfile.mkstemp(prefix=".mmfer-probe-", dir=folder)
    except OSError as e:
        return e.strerror or type(e).__name__
    os.close(fd)
    try:
        os.unlink(name)
        os.utime(folder, ns=(before.st_atime_ns, before.st_mtime_ns))
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


def check_output_file(path: str | Path, *, option: str, suffixes: Iterable[str] | None = None,
                      inputs: Iterable[str | Path] = (), default_suffix: str | None = None) -> Path:
    """``path`` when a file can be written there; otherwise an error naming ``option``. With ``default_suffix``, a
    name without an extension gets it (the path returned is the one to write), unless it names a folder.

    Refused: an existing folder, a path below a file, a place where no file can be created, (with
    ``suffixes``) another extension than those given, and one of the command's own ``inputs``, which the output
    would replace; a name ending in a slash (a folder) and a device, pipe or socket (``/dev/stdout``: the file
    would be renamed over it, as over a link)."""
    given = str(path)
    path = Path(path)
    if str(path) in ("", "-"):
        raise MmferError(f"{option} {str(path)!r}: give a file name (writing to stdout is not supported)")
    if given.endswith(("/", os.sep)) and not path.is_dir():
        raise MmferError(f"{option} {given}: ends in a slash, so it names a folder; give a file name, e.g. "
                         f"{path / 'out'}")
    _check_not_special(path, option)  # /dev/full is refused, not turned into /dev/full.zip
    if default_suffix is not None and not path.suffix and not path.is_dir():
        path = path.with_name(path.name + default_suffix)
        _check_not_special(path, option)
    if path.exists() and any(Path(p).name == path.name and Path(p).exists() and os.path.samefile(p, path)
                             for p in inputs):  # by name first: a folder of 100k inputs costs no stat each
        raise MmferError(f"{option} {path}: is one of this command's inputs, which writing it would replace; "
                         "write it to another file")
    if path.is_dir():
        raise MmferError(f"{option} {path}: is a folder; give a file name inside it, e.g. {path / 'out'}")
    if suffixes is not None:
        allowed = tuple(s.lower() for s in suffixes)
        if path.suffix.lower() not in allowed:
            raise MmferError(f"{option} {path}: expected a file ending in {' or '.join(allowed)}")
    _check_parent(path, option)  # files are written beside their final name and renamed into place
    return path


def _check_not_special(path: Path, option: str) -> None:
    """Files are written beside their name and renamed over it: over a device, pipe or socket (or a link to one,
    as /dev/stdout is) that would replace it with a plain file, and nothing would reach its reader."""
    if path.exists() and not path.is_file() and not path.is_dir():
        raise MmferError(f"{option} {path}: is not a regular file (a device, pipe or socket); mmfer writes whole "
                         "files and renames them into place, so give a file name (and read or `cat` the file)")


def check_output_dir(path: str | Path, *, option: str, writes: Iterable[str] = (),
                     inputs: Iterable[str | Path] = ()) -> Path:
    """``path`` when it is (or can become) a folder that takes new files; otherwise an error naming ``option``.
    ``writes``: the names the command writes in it (a name ending in "/" stands for every file in that
    subfolder), refused where one of them is one of the command's ``inputs``, which the output would replace."""
    path = Path(path)
    for given in inputs:
        if not Path(given).exists():
            continue
        for name in writes:
            target = path / name
            hit = (is_inside(target, given) if name.endswith("/") else
                   target.exists() and os.path.samefile(given, target))
            if hit:
                raise MmferError(f"{option} {path}: {given} is one of this command's inputs, and the command writes "
                                 f"{target}{' (its own files there)' if name.endswith('/') else ''}; write to another "
                                 "folder, or move the input out of it first")
    if os.path.lexists(path) and not path.is_dir():
        raise MmferError(f"{option} {path}: is a file, not a folder; give a folder (it is created when missing)")
    if path.is_dir():
        why = _probe(path)
        if why:
            raise MmferError(f"{option} {path}: cannot write in this folder ({why}); choose a writable place")
        return path
    _check_parent(path, option)
    return path


# ---------------------------------------------------------------- writes that never follow a link
def is_inside(root: str | Path, path: str | Path) -> bool:
    """Whether ``path``, links resolved, lies in ``root`` (links resolved too)."""
    root_real = os.path.realpath(root)
    real = os.path.realpath(path)
    return real == root_real or real.startswith(root_real.rstrip(os.sep) + os.sep)


def check_inside(root: str | Path, path: str | Path, *, what: str) -> Path:
    """``path`` when no symbolic link on its way leads out of ``root``; an error naming the link otherwise."""
    path = Path(path)
    if not is_inside(root, path):
        link = next((p for p in [path, *path.parents] if os.path.islink(p)), path)
        raise MmferError(f"{link}: a symbolic link to {os.path.realpath(link)}, outside {root}; mmfer never writes "
                         f"{what} through a link out of its output folder. Replace the link with a real folder or "
                         "file, or choose another output folder")
    return path


def open_new(path: str | Path, mode: str = "w", **kwargs):
    """A new file at ``path`` opened for writing, never through a link: whatever stands at that name (a stale
    temporary file, a link planted there) is removed first, then the file is created exclusively, links not
    followed. For temporary files that are renamed into place (``os.replace`` replaces a link, never
    writes through it)."""
    path = Path(path)
    if os.path.islink(path) or path.is_file():
        os.unlink(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, 0o644)
    try:
        return os.fdopen(fd, mode, **kwargs)
    except BaseException:
        os.close(fd)
        raise


@contextlib.contextmanager
def atomic_path(path: str | Path, *, suffix: str = "") -> Iterator[Path]:
    """A temporary name beside ``path`` (``.NAME.tmp<pid><suffix>``, in the same folder, so the rename is
    atomic) for a writer that wants a file name (``torch.save``, ``cv2.imwrite``, which picks the format by
    ``suffix``): when the block ends, the file written there replaces ``path``; on any exception it is removed
    and ``path`` is left as it was. The file is flushed to the disk before the rename, so a power cut leaves the
    old file or the new one, never an empty one. A stale file or a link at the temporary name is removed first,
    and so are those a killed process left beside ``path``."""
    path = Path(path)
    _check_not_special(path, "output")  # every writer, also those that did not check their option first
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}{suffix}")
    if os.path.islink(tmp) or tmp.is_file():
        os.unlink(tmp)
    _remove_stale_temporaries(path)
    try:
        yield tmp
        _flush_to_disk(tmp)
        keep_mode(path, tmp)
        os.replace(tmp, path)  # replaces a link at ``path``, never writes through it
    except OSError as e:
        if e.filename is None or str(e.filename) == str(tmp):  # a full disk met in write/flush/close: name the file
            raise OSError(e.errno, e.strerror or str(e), str(path)) from e
        raise
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def keep_mode(path: str | Path, tmp: str | Path) -> None:
    """Give the file about to replace ``path`` the permissions ``path`` has: an output its owner made private
    (``chmod 600``) stays so when the next run (or predict's save every minute) replaces it. A new file gets what
    the umask allows."""
    import stat

    try:
        st = os.lstat(path)
        if stat.S_ISREG(st.st_mode):
            os.chmod(tmp, stat.S_IMODE(st.st_mode))
    except OSError:
        pass


def _flush_to_disk(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # not written (a writer that failed quietly): the rename says so
        return
    try:
        os.fsync(fd)
    except OSError:  # a file system without fsync (some network ones)
        pass
    finally:
        os.close(fd)


# .NAME.tmp<pid>[.ext], as atomic_path and CsvStream name their temporaries; nothing else is ever removed
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.tmp(?P<pid>[1-9][0-9]{0,8})(\.[A-Za-z0-9]{1,8})?$")
_FOUND: dict[str, dict[str, list[tuple[str, int]]]] = {}  # folder -> file name -> temporaries of it seen there
STALE_AFTER_S = 6 * 3600  # untouched this long: no writer of ours (a shared folder's other machines too) holds it


def _remove_stale_temporaries(path: Path) -> None:
    """The temporaries of ``path`` itself (``.NAME.tmp<pid>``) that a killed process left: its pid no longer runs
    here and the file has not changed for STALE_AFTER_S (a process id says nothing of another machine's
    writers). A folder is listed once per process (a folder of 100k plots is not listed per plot)."""
    import time

    from mmfer.signals import process_alive

    folder = os.path.abspath(path.parent)
    found = _FOUND.get(folder)
    if found is None:
        found = _FOUND[folder] = {}
        try:
            names = os.listdir(folder)
        except OSError:
            names = []
        for name in names:
            m = _TEMPORARY.match(name)
            if m:
                found.setdefault(m["name"], []).append((name, int(m["pid"])))
    for name, pid in found.pop(path.name, []):
        if pid != os.getpid() and not process_alive(pid):
            stale = os.path.join(folder, name)
            with contextlib.suppress(OSError):
                if time.time() - os.lstat(stale).st_mtime > STALE_AFTER_S:
                    os.unlink(stale)


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w", **open_kwargs: Any) -> Iterator[IO[Any]]:
    """Write ``path`` whole or not at all: the block writes to a file opened (with ``open_new``, never
    through a link) on a temporary name beside it, renamed over ``path`` when the block ends; on any exception
    the temporary file is removed. ``mode`` "w" or "wb", and ``open``'s keyword arguments (encoding, newline)."""
    with atomic_path(path) as tmp, open_new(tmp, mode, **open_kwargs) as f:
        yield f


def write_file(path: str | Path, data: str | bytes, *, encoding: str = "utf-8") -> Path:
    """Write ``data`` to ``path`` whole or not at all (a temporary file beside it, then a rename): a link at
    ``path`` is replaced by the file, never written through."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        with atomic_write(path, "wb") as f:
            f.write(data)
    else:
        with atomic_write(path, "w", encoding=encoding, newline="") as f:
            f.write(data)
    return path


def read_csv_table(path: str | Path, columns: Iterable[str], *, kind: str,
                   explain_missing=None) -> list[dict[str, str]]:
    """Rows of a CSV this package wrote, as dicts of text; an error naming the file if it is missing or lacks one
    of ``columns``. ``explain_missing(missing, fieldnames)`` may return a better message (e.g. an older format)."""
    import csv

    path = Path(path)
    if not path.is_file():
        raise MmferError(f"{path}: {kind} file not found")
    with open(path, newline="", encoding="utf-8-sig") as f, csv_errors(path):
        reader = csv.DictReader(f)
        fields = reader.fieldnames or []
        missing = [c for c in columns if c not in fields]
        if missing:
            why = explain_missing(missing, fields) if explain_missing else None
            raise MmferError(f"{path}: " + (why or f"not a {kind} CSV (missing {', '.join(missing)})"))
        return list(reader)


class CsvStream:
    """A CSV written row by row as work goes (``tail -f`` works), on a temporary name beside ``path`` that
    becomes ``path`` at ``close``. ``commit`` marks the rows so far as whole (a finished file of a run over
    many); ``close(keep_partial=False)`` after an interruption drops the rows after the last commit;
    ``abort`` (a failed run) leaves nothing."""

    def __init__(self, path: str | Path, header: Iterable[str]):
        import csv

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{self.path.name}.tmp{os.getpid()}")
        _remove_stale_temporaries(self.path)
        self._f = open_new(self._tmp, "w", newline="", encoding="utf-8")
        self._w = csv.writer(self._f)
        self._w.writerow(list(header))
        self.commit()

    def writerow(self, row: Iterable[Any]) -> None:
        self._w.writerow(row)

    def commit(self) -> None:
        self._f.flush()
        self._committed = self._f.tell()

    def close(self, *, keep_partial: bool = True) -> Path:
        if not keep_partial:
            self._f.flush()
            self._f.truncate(self._committed)
        self._f.close()
        keep_mode(self.path, self._tmp)
        try:
            os.replace(self._tmp, self.path)
        except OSError as e:  # (Windows: the file open in a spreadsheet) said of the file, as atomic_path says it
            self._tmp.unlink(missing_ok=True)
            raise OSError(e.errno, e.strerror or str(e), str(self.path)) from e
        return self.path

    def abort(self) -> None:
        try:
            self._f.close()  # writing what it buffered can fail again (a full disk): the file goes all the same
        except OSError:
            pass
        self._tmp.unlink(missing_ok=True)


def private_matplotlib_config() -> str | None:
    """Where matplotlib cannot write its config and font cache (``~/.config/matplotlib``, ``~/.cache/matplotlib``:
    a container whose HOME is read-only or unset), a temporary folder of this process's own is set as
    ``MPLCONFIGDIR`` before matplotlib loads: it warned twice and rebuilt its font cache on every plot, and its own
    temporary folder was left behind by a killed command. Nothing is created to find out. Returns that folder
    (the caller removes it), or None where nothing was needed."""
    import sys
    import tempfile

    if "MPLCONFIGDIR" in os.environ or "matplotlib" in sys.modules:
        return None

    def writable(place: str) -> bool:  # the folder, or the nearest one above it that exists
        while not os.path.exists(place):
            parent = os.path.dirname(place)
            if parent == place:
                return False
            place = parent
        return os.path.isdir(place) and os.access(place, os.W_OK)

    try:
        home = str(Path.home())
    except RuntimeError:  # HOME unset and no user entry: matplotlib cannot find one either
        home = ""
    places = [os.path.join(os.environ.get(var) or os.path.join(home, sub), "matplotlib")
              for var, sub in (("XDG_CONFIG_HOME", ".config"), ("XDG_CACHE_HOME", ".cache"))]
    if os.path.isabs(home) and all(os.path.isabs(p) and writable(p) for p in places):
        return None
    os.environ["MPLCONFIGDIR"] = own = tempfile.mkdtemp(prefix="mmfer-mpl-")
    return own


def source_date() -> int | None:
    """``SOURCE_DATE_EPOCH`` (the reproducible-builds convention: the time an output states instead of now) where it
    is set to a whole number of seconds, else None (another value is warned about, once, and left aside). Outputs
    that state a time use it, so two runs can match byte for byte."""
    value = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not value:
        return None
    if value.isascii() and value.isdigit() and len(value) <= 12:  # up to year 33658: any time gmtime can write
        return int(value)
    if value not in _WARNED_DATES:
        _WARNED_DATES.add(value)
        logging.getLogger(__name__).warning("SOURCE_DATE_EPOCH=%r is not a whole number of seconds since 1970: "
                                            "left aside (outputs state the time they are written)", value[:40])
    return None


_WARNED_DATES: set[str] = set()
