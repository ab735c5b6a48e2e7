"""The preprocessed clip cache every branch reads: layout, atomic writes, manifest, memory-mapped reads.

Layout::

    CACHE/manifest.jsonl                 one JSON object per processed clip (append-only, last line wins)
    CACHE/<split>/<clip_id>/faces.npy    uint8 (T, S, S, 3) aligned RGB face crops, zeros where no face
    CACHE/<split>/<clip_id>/landmarks.npy float32 (T, 68, 2) iBUG-68 points in source-frame pixels, NaN where no face
    CACHE/<split>/<clip_id>/boxes.npy    float32 (T, 5) x0, y0, x1, y1, detector score; NaN where no face
    CACHE/<split>/<clip_id>/mask.npy     bool (T,) True where frame t has a face
    CACHE/<split>/<clip_id>/audio.npy    float32 (N,) mono audio at settings.sample_rate, length 0 without audio
    CACHE/<split>/<clip_id>/meta.json    fps, frame count, source size, label, label map, settings

Frame index t is the (possibly resampled) video frame index: no-face frames are kept in place.
A clip directory is written under a temporary name and renamed, so a killed run never leaves a
half-written clip that looks finished; the manifest line is appended only after the rename.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from mmfer.errors import MmferError
from mmfer.labels import EMOTIONS
from mmfer.signals import process_alive
from mmfer.text import SURROGATES, fs_name, safe_text  # noqa: F401 - safe_text importable from here, as before

MANIFEST = "manifest.jsonl"
ARRAYS = ("faces", "landmarks", "boxes", "mask", "audio")
# Bump when the meaning of cached data changes, so old caches are redone instead of misread.
CACHE_VERSION = 1


@dataclass(frozen=True)
class PreprocessSettings:
    """Everything that changes what lands in the cache; its hash decides whether a clip is redone."""

    face_backend: str = "dlib"  # a name in mmfer.faces.backends.BACKENDS (dlib, mtcnn, dlib_mtcnn, insightface, none,
    #                            or one registered with register_backend)
    crop_size: int = 112  # aligned face crops are crop_size x crop_size RGB
    fps: float | None = None  # None keeps the native frame rate; otherwise frames are resampled
    sample_rate: int = 16000
    detect_max_side: int = 320  # whole frames are downscaled to this longest side for face detection
    detect_every: int = 10  # run the detector every k frames (near the tracked face), carry the box by landmarks between
    # fit landmarks every k frames and interpolate between two fits of the same face (3: every 100-120 ms at
    # 25-30 fps); 1 fits every frame. In frames, so lower it when --fps resamples to a low rate.
    fit_every: int = 3
    max_frames: int | None = None  # cap on frames per clip (long movies); None keeps all

    def __post_init__(self) -> None:  # "DLIB" is dlib: one name, one hash, the clips cached with it reused
        object.__setattr__(self, "face_backend", str(self.face_backend).strip().lower())

    def check(self) -> "PreprocessSettings":
        """These settings, if a new clip may be made with them (preprocess's options; settings read back from a
        cache are never refused: older mmfer took fps 0 for the native rate)."""
        for name, unset in (("crop_size", None), ("detect_every", None), ("fit_every", None),
                            ("detect_max_side", None), ("max_frames", "all frames"), ("fps", "the native rate")):
            value = getattr(self, name)
            if (value is None and unset) or (value is not None and value > 0):
                continue
            rule = f"must be positive (or left out for {unset})" if unset else "must be at least 1"
            raise MmferError(f"{name} (--{name.replace('_', '-')}) {value}: {rule}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"cache_version": CACHE_VERSION, **dataclasses.asdict(self)}

    @property
    def hash(self) -> str:
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:12]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PreprocessSettings":
        d = {k: v for k, v in d.items() if k != "cache_version"}
        d.setdefault("fit_every", 1)  # settings stored before fit_every existed: every frame was fitted
        from mmfer.config import from_dict

        return from_dict(cls, d, where="preprocess settings")

    def differences(self, other: "PreprocessSettings") -> list[str]:
        """Human-readable list of fields that differ, for 'cache made with other settings' errors."""
        a, b = dataclasses.asdict(self), dataclasses.asdict(other)
        return [f"{k}: {a[k]!r} != {b[k]!r}" for k in a if a[k] != b[k]]


@dataclass
class ClipRecord:
    """One manifest line: what happened to one clip."""

    clip_id: str
    split: str
    label: str | None
    path: str
    status: str  # "ok" | "failed" | "removed" (its source left the source folder or list; not read as a clip)
    reason: str = ""
    frames: int = 0
    face_frames: int = 0
    audio_seconds: float = 0.0
    fps: float = 0.0
    settings_hash: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    source_size: int = -1
    source_mtime: float = -1.0
    seconds: float = 0.0  # processing wall time
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=False)

    @classmethod
    def from_json(cls, line: str) -> "ClipRecord":
        """A record from one manifest line; anything but an object with a safe clip id and a split is a
        ValueError (a hand-edited or foreign line must not crash every reader)."""
        d = json.loads(line)
        if not isinstance(d, dict):
            raise ValueError(f"not a JSON object: {line[:60]!r}")
        known = {f.name for f in dataclasses.fields(cls)}
        rec = cls(**{k: v for k, v in d.items() if k in known})
        if not isinstance(rec.split, str) or clip_id_problem(rec.clip_id) or clip_id_problem(rec.split):
            raise ValueError(f"bad clip id or split: {line[:60]!r}")
        return rec


@dataclass
class CachedClip:
    """A clip's arrays, memory-mapped where possible so loaders do not copy whole clips."""

    clip_id: str
    split: str
    faces: np.ndarray
    landmarks: np.ndarray
    boxes: np.ndarray
    mask: np.ndarray
    audio: np.ndarray
    meta: dict[str, Any]

    @property
    def label(self) -> str | None:
        return self.meta.get("label")

    @property
    def fps(self) -> float:
        return float(self.meta.get("fps", 0.0))

    @property
    def num_frames(self) -> int:
        return int(self.mask.shape[0])


# A clip id names a folder in the cache and an entry in a submission zip, so it can never name a path:
# no separators, no control characters (NUL included), not empty, and no leading "." (".", "..", and the
# hidden .tmp-/.old- folders that write_clip uses). It also lands in CSVs that people open in spreadsheets,
# so it never starts with "=", "+", "-" or "@" (formula injection).
_UNSAFE_ID_CHARS = re.compile(r"[/\\\x00-\x1f\x7f-\x9f]")  # C1 too: \x9b is a terminal's CSI
# spaces at either end of a name: CSV readers (and people) strip them, so in an id they become '_'
_EDGE_SPACE = re.compile(r"^\s+|\s+$")


# what a spreadsheet reads as the start of a formula (``-2+3`` is computed, ``-dash`` shows #NAME?): an id made
# from a file name never starts with one. An id given explicitly (a CSV list, a cache written before '-' was
# added) may start with '-', which reads as a number's sign as often: refusing it would drop such clips.
FORMULA_STARTS = ("=", "+", "-", "@")
REFUSED_STARTS = ("=", "+", "@")


def clip_id_problem(clip_id: str) -> str:
    """Why ``clip_id`` cannot be used as a clip id, or "" when it can."""
    if not isinstance(clip_id, str) or not clip_id:
        return "is empty"
    if clip_id.startswith("."):
        return "starts with '.' (it could name the folder itself, its parent or a hidden file)"
    if clip_id.startswith(REFUSED_STARTS):
        return f"starts with {clip_id[0]!r} (a spreadsheet opening the CSVs would run it as a formula)"
    bad = _UNSAFE_ID_CHARS.search(clip_id)
    if bad:
        return f"holds {bad.group()!r} (path separators and control characters cannot be in a clip id)"
    if len(clip_id.encode("utf-8", "surrogateescape")) > 200:
        return "is longer than 200 bytes"
    return ""


def check_clip_id(clip_id: str, *, where: str) -> str:
    """``clip_id`` when it is safe; an error naming ``where`` otherwise (ids given explicitly are never rewritten)."""
    problem = clip_id_problem(clip_id)
    if problem:
        raise MmferError(f"{where}: clip id {clip_id!r} {problem}; rename it")
    return clip_id


def _undecodable(m: re.Match) -> str:
    code = ord(m.group())
    # a byte that was not UTF-8 (b'caf\xe9' read on a UTF-8 system): read as Latin-1 ('café'); C1 controls '_'
    return chr(code - 0xDC00) if 0xDCA0 <= code <= 0xDCFF else "_"


def clip_id_from_name(stem: str) -> str:
    """The clip id of a file: its name without extension, with unsafe characters replaced by '_' and a
    leading '.', '=', '+', '-' or '@' prefixed with '_' (``..flv`` gives ``_.``), spaces at either end replaced by '_'
    (``" happy .mp3"`` gives ``_happy_``: CSV readers strip them); two files that end up with the
    same id are caught as duplicates by the index. A name whose bytes are not UTF-8 (``b'caf\\xe9.avi'``) gets
    an id that is: those bytes are read as Latin-1 (``café``), so the id can be written to every CSV and zip. A
    UTF-8 name that Python read as undecodable bytes (``LC_ALL=C`` with ``PYTHONUTF8=0``) gets the id it gets
    in any other locale."""
    if SURROGATES.search(stem):  # the bytes that make UTF-8 read as such, whatever the locale listed them in
        try:
            stem = stem.encode("utf-8", "surrogateescape").decode("utf-8", "surrogateescape")
        except UnicodeEncodeError:  # a lone surrogate that held no byte
            pass
        stem = SURROGATES.sub(_undecodable, stem)
    cid = _edge_spaces_out(_UNSAFE_ID_CHARS.sub("_", stem)) or "_"
    if cid.startswith((".", *FORMULA_STARTS)):
        cid = "_" + cid
    if clip_id_problem(cid):  # too long: cut to 200 bytes, and a space the cut left at the end becomes '_' too
        cid = _edge_spaces_out(cid.encode("utf-8", "surrogateescape")[:200].decode("utf-8", "ignore"))
    return cid


def _edge_spaces_out(text: str) -> str:
    return _EDGE_SPACE.sub(lambda m: "_" * len(m.group()), text)


def clip_dir(cache: str | Path, split: str, clip_id: str) -> Path:
    """CACHE/<split>/<clip_id>; an id or split that could name another path is an error."""
    check_clip_id(clip_id, where=f"{cache}/{split}")
    check_clip_id(split, where=f"{cache}: split")
    return Path(cache) / fs_name(split) / fs_name(clip_id)


@dataclass(frozen=True)
class SpooledNpy:
    """An ``.npy`` file that NpyAppender finished: where it is, its shape and dtype, and no file held open (on
    Windows a folder holding an open or memory-mapped file cannot be renamed, and the staged clip folder is).
    As an array (``np.asarray``, ``load()``) it is the file memory-mapped read-only."""

    path: Path
    shape: tuple[int, ...]
    dtype: np.dtype

    def load(self) -> np.ndarray:
        return np.load(self.path, mmap_mode="r", allow_pickle=False)

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def __getitem__(self, index: Any) -> np.ndarray:
        return np.array(self.load()[index])  # a copy: no map of the file outlives the call

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        a = self.load()
        return a if dtype is None else a.astype(dtype)


class NpyAppender:
    """Writes an ``.npy`` file batch by batch, so a clip's face crops go to disk as they are made and memory
    holds one batch whatever the clip's length. The header, written last, is padded to a fixed size."""

    HEADER_BYTES = 128

    def __init__(self, path: str | Path, *, dtype: Any, item_shape: tuple[int, ...]) -> None:
        self.path, self.dtype, self.item_shape = Path(path), np.dtype(dtype), tuple(int(v) for v in item_shape)
        self.count = 0
        self._fh = open(self.path, "wb")
        self._fh.write(b"\0" * self.HEADER_BYTES)

    def append(self, batch: np.ndarray) -> None:
        batch = np.ascontiguousarray(batch, dtype=self.dtype)
        if batch.shape[1:] != self.item_shape:
            raise ValueError(f"{self.path}: batch of shape {batch.shape}, items must be {self.item_shape}")
        self._fh.write(memoryview(batch.reshape(-1)).cast("B"))
        self.count += len(batch)

    def close(self) -> SpooledNpy | np.ndarray:
        """Finish the file; returns where it is, with its shape (an empty array in memory when nothing came)."""
        shape = (self.count, *self.item_shape)
        header = repr({"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": shape})
        body = header.encode("latin1").ljust(self.HEADER_BYTES - 10 - 1) + b"\n"
        if len(body) != self.HEADER_BYTES - 10:
            raise ValueError(f"{self.path}: npy header for shape {shape} does not fit {self.HEADER_BYTES} bytes")
        self._fh.seek(0)
        self._fh.write(b"\x93NUMPY\x01\x00" + len(body).to_bytes(2, "little") + body)
        self._fh.close()
        if self.count == 0:
            return np.zeros(shape, self.dtype)
        return SpooledNpy(self.path, shape, self.dtype)

    def abort(self) -> None:
        self._fh.close()


def staging_dir(cache: str | Path, split: str, clip_id: str) -> Path:
    """A fresh, empty ``.tmp-<clip>-<pid>`` folder beside the clip's final one: ``write_clip(staged=...)``
    renames it into place, so arrays streamed into it while the clip is processed are never copied."""
    from mmfer.outputs import check_inside

    final = check_inside(cache, clip_dir(cache, split, clip_id), what="cached clips")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = check_inside(cache, final.parent / f".tmp-{final.name}-{os.getpid()}", what="cached clips")
    if os.path.islink(tmp):
        os.unlink(tmp)
    elif tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    return tmp


def _already_in(arr: Any, path: Path) -> bool:
    """True when ``arr`` is the file ``path`` itself (streamed there while processing)."""
    return isinstance(arr, SpooledNpy) and os.path.abspath(arr.path) == os.path.abspath(path)


def _dtype(arr: Any) -> np.dtype:
    return arr.dtype if isinstance(arr, (np.ndarray, SpooledNpy)) else np.asarray(arr).dtype


def write_clip(
    cache: str | Path,
    split: str,
    clip_id: str,
    arrays: dict[str, np.ndarray],
    meta: dict[str, Any],
    *,
    staged: Path | None = None,
) -> Path:
    """Write one clip's arrays atomically: a temporary directory, then a rename over the old one.

    ``staged`` is that temporary directory when the caller made it with ``staging_dir`` and streamed arrays
    into it already (memory maps of its files are left where they are, not rewritten)."""
    from mmfer.outputs import check_inside

    missing = [a for a in ARRAYS if a not in arrays]
    if missing:
        raise ValueError(f"write_clip: missing arrays {missing}")
    final = check_inside(cache, clip_dir(cache, split, clip_id), what="cached clips")
    tmp = staged if staged is not None else staging_dir(cache, split, clip_id)
    try:
        for name in ARRAYS:
            if not _already_in(arrays[name], tmp / f"{name}.npy"):
                np.save(tmp / f"{name}.npy", np.ascontiguousarray(arrays[name]), allow_pickle=False)
        # shapes and dtypes, so a resumed run can tell a complete clip from a truncated one
        meta = {**meta, "labels": list(EMOTIONS),
                "arrays": {n: {"shape": list(np.shape(arrays[n])), "dtype": str(_dtype(arrays[n]))} for n in ARRAYS}}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    except BaseException:  # a full disk, Ctrl-C: no half-written folder is left behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        old = final.parent / f".old-{final.name}-{os.getpid()}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
    return final


def _staged_by_live_process(d: Path) -> bool:
    """Whether a ``.tmp-<clip>-<pid>`` / ``.old-<clip>-<pid>`` folder belongs to another process still running."""
    pid = d.name.rsplit("-", 1)[-1]
    return pid.isdigit() and int(pid) != os.getpid() and process_alive(int(pid))


def remove_stale_temporaries(cache: str | Path) -> list[Path]:
    """Delete the ``.tmp-<clip>-<pid>`` / ``.old-<clip>-<pid>`` folders that a killed run left in the split
    folders (never those of a process still running). Returns what was removed."""
    from mmfer.outputs import is_inside

    removed = []
    for d in Path(cache).glob("*/.*-*-*"):
        if not d.is_dir() or not d.name.startswith((".tmp-", ".old-")):
            continue
        if d.parent.is_symlink() or d.is_symlink() or not is_inside(cache, d):  # never through a link, out of it
            continue
        if _staged_by_live_process(d):
            continue
        shutil.rmtree(d, ignore_errors=True)
        removed.append(d)
    return removed


def remove_clip(cache: str | Path, split: str, clip_id: str) -> None:
    """Delete a cached clip's folder; a link (or a folder reached through one) is never followed out of the cache."""
    from mmfer.outputs import is_inside

    d = clip_dir(cache, split, clip_id)
    if os.path.islink(d):
        os.unlink(d)
    elif is_inside(cache, d):
        shutil.rmtree(d, ignore_errors=True)


def clip_problem(cache: str | Path, split: str, clip_id: str) -> str:
    """Why the cached clip is incomplete or damaged ("" when it is whole): meta.json unreadable, an array
    missing, or one whose header disagrees with the shape meta.json recorded (a truncated write)."""
    d = clip_dir(cache, split, clip_id)
    try:
        meta = json.loads((d / "meta.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"{d / 'meta.json'}: missing"
    except (OSError, ValueError) as e:
        return f"{d / 'meta.json'}: unreadable ({type(e).__name__})"
    if not isinstance(meta, dict):
        return f"{d / 'meta.json'}: not a JSON object"
    expected = meta.get("arrays") if isinstance(meta.get("arrays"), dict) else {}
    for name in ARRAYS:
        f = d / f"{name}.npy"
        try:
            with open(f, "rb") as fh:
                version = np.lib.format.read_magic(fh)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, _, dtype = read_header(fh)
                need = int(np.prod(shape)) * dtype.itemsize
                have = os.fstat(fh.fileno()).st_size - fh.tell()
        except FileNotFoundError:
            return f"{f}: missing"
        except (OSError, ValueError) as e:
            return f"{f}: unreadable ({type(e).__name__}: {e})"
        if have < need:
            return f"{f}: truncated ({have} of {need} bytes)"
        want = expected.get(name)
        if isinstance(want, dict) and list(shape) != list(want.get("shape", shape)):
            return f"{f}: shape {list(shape)}, meta.json says {want.get('shape')}"
    return ""


def load_clip(cache: str | Path, split: str, clip_id: str, *, mmap: bool = True) -> CachedClip:
    """Read one cached clip; ``mmap`` maps arrays instead of reading them (fast random windows). A damaged
    clip is an error naming the file and the repair (`mmfer preprocess` redoes incomplete clips)."""
    d = clip_dir(cache, split, clip_id)
    meta_path = d / "meta.json"
    if not meta_path.is_file():
        raise MmferError(f"{d}: no cached clip here (run `mmfer preprocess` first, or check --data)")
    problem = clip_problem(cache, split, clip_id)
    if problem:
        raise MmferError(f"{problem}: the cached clip is damaged; run `mmfer preprocess` on the same source "
                         "again, which redoes damaged clips")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    mode = "r" if mmap else None
    arrays = {}
    for name in ARRAYS:
        try:
            arrays[name] = np.load(d / f"{name}.npy", mmap_mode=mode, allow_pickle=False)
        except ValueError:
            # np.load cannot memory-map zero-size arrays (e.g. a clip without audio)
            arrays[name] = np.load(d / f"{name}.npy", allow_pickle=False)
    return CachedClip(clip_id=clip_id, split=split, meta=meta, **arrays)


def append_manifest(cache: str | Path, record: ClipRecord) -> None:
    """Append one record; a single small write with O_APPEND, flushed, so concurrent shards interleave whole lines."""
    path = Path(cache) / MANIFEST
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (record.to_json() + "\n").encode()
    check_manifest_writable(cache)
    try:  # never through a link: O_NOFOLLOW, and the check above names one
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
                     | getattr(os, "O_BINARY", 0), 0o644)  # (Windows: no newline translation)
    except OSError as e:
        raise MmferError(f"{path}: cannot append to the manifest ({e.strerror or e}); check it is a plain file "
                         "you can write") from None
    try:
        size = os.fstat(fd).st_size
        if size and _last_byte(fd, size) != b"\n":  # a torn last line (a kill mid-write) stays alone
            data = b"\n" + data
        written = os.write(fd, data)
        if written != len(data):
            os.ftruncate(fd, size)  # no torn line of our own either
            raise MmferError(f"{path}: only {written} of {len(data)} bytes written (disk full?); free space and "
                             "run again (clips already written are kept)")
        os.fsync(fd)
    finally:
        os.close(fd)


def _last_byte(fd: int, size: int) -> bytes:
    """The file's last byte (os.pread where there is one; Windows has none, and O_APPEND writes go to the end
    wherever the offset stands)."""
    if hasattr(os, "pread"):
        return os.pread(fd, 1, size - 1)
    os.lseek(fd, size - 1, os.SEEK_SET)
    return os.read(fd, 1)


def check_manifest_writable(cache: str | Path) -> None:
    """The manifest must be a plain file in the cache (or not exist yet): a link is never written through
    (it could lead anywhere), and a folder of that name cannot take records. Errors say what to do."""
    path = Path(cache) / MANIFEST
    if os.path.islink(path):
        raise MmferError(f"{path}: a symbolic link (to {os.path.realpath(path)}); mmfer never appends through a link "
                         "out of the cache. Replace it with the file itself (cp --remove-destination) or use "
                         "another --out")
    if path.exists() and not path.is_file():
        raise MmferError(f"{path}: not a file (a folder?); move it away so the manifest can be written, or use "
                         "another --out")


def iter_manifest(cache: str | Path) -> Iterator[ClipRecord]:
    """Every record in file order; a torn last line (killed mid-write) is skipped."""
    path = Path(cache) / MANIFEST
    if not path.is_file():
        return
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                yield ClipRecord.from_json(line)
            except (ValueError, TypeError, AttributeError):  # JSONDecodeError is a ValueError
                continue


def prune_removed(cache: str | Path) -> list[tuple[str, str]]:
    """Erase the clips whose latest record says "removed" (their source was deleted or renamed): their folders
    (faces, landmarks, audio) and every manifest line that names them (path, label), so that nothing of a deleted
    recording stays in the cache. Other lines are kept byte for byte (fields of a newer mmfer, lines this one
    cannot read). Refused while another process stages clips here, since the manifest is rewritten whole; a
    folder that cannot be deleted keeps its lines and is an error naming it. Returns the (split, clip_id) erased."""
    from mmfer.outputs import write_file

    path = Path(cache) / MANIFEST
    if not path.is_file():
        return []
    for d in Path(cache).glob("*/.tmp-*-*"):
        if _staged_by_live_process(d):
            raise MmferError(f"{d}: process {d.name.rsplit('-', 1)[-1]} is preprocessing into {cache}; prune when it "
                             "has finished (pruning rewrites the manifest it appends to)")
    lines = path.read_bytes().splitlines(keepends=True)
    keys: list[tuple[str, str] | None] = []
    latest: dict[tuple[str, str], str] = {}
    for line in lines:
        try:
            rec = ClipRecord.from_json(line.decode("utf-8"))
        except (ValueError, TypeError, AttributeError):  # kept as it is
            keys.append(None)
            continue
        keys.append((rec.split, rec.clip_id))
        latest[keys[-1]] = rec.status
    erased, stuck = [], []
    for split, clip_id in sorted(k for k, status in latest.items() if status == "removed"):
        remove_clip(cache, split, clip_id)
        d = clip_dir(cache, split, clip_id)
        (stuck if os.path.lexists(d) else erased).append((split, clip_id))
    if erased:
        gone = set(erased)
        write_file(path, b"".join(line for line, key in zip(lines, keys) if key not in gone))
    if stuck:
        raise MmferError(f"{clip_dir(cache, *stuck[0])}: could not be deleted (a file open in another program? no "
                         f"permission?); {len(stuck)} removed clip(s) keep their arrays and manifest lines: delete "
                         f"the folder yourself, or run --prune again ({len(erased)} erased)")
    return erased


def read_manifest(cache: str | Path) -> dict[tuple[str, str], ClipRecord]:
    """The latest record per (split, clip_id), leaving out clips whose latest record says "removed"."""
    latest: dict[tuple[str, str], ClipRecord] = {}
    for rec in iter_manifest(cache):
        latest[(rec.split, rec.clip_id)] = rec
    return {k: r for k, r in latest.items() if r.status != "removed"}


def split_records(cache: str | Path, split: str) -> list[ClipRecord]:
    """Latest records of one split, sorted by clip_id; an absent split is an error naming the ones present."""
    if not (Path(cache) / MANIFEST).is_file():
        raise MmferError(f"{cache}: no {MANIFEST} here; is this a cache made by `mmfer preprocess`?")
    latest = read_manifest(cache)
    records = sorted((r for (s, _), r in latest.items() if s == split), key=lambda r: r.clip_id)
    if not records:
        present = sorted({s for s, _ in latest})
        raise MmferError(f"{cache}: no clips of split {split!r} in the cache (splits present: {', '.join(present) or 'none'})")
    return records


def cache_settings(cache: str | Path, split: str | None = None) -> PreprocessSettings:
    """The one set of settings the (split of the) cache was made with; mixed settings are an error."""
    latest = read_manifest(cache)
    records = [r for (s, _), r in latest.items() if split is None or s == split]
    hashes = {r.settings_hash: r.settings for r in records}
    if not hashes:
        if not Path(cache).exists():
            raise MmferError(f"{cache}: no such file or folder")
        present = sorted({s for s, _ in latest})
        if split is not None and present:  # the manifest is there: say what it holds
            raise MmferError(f"{cache}: no clips of split {split!r} in the cache (splits present: {', '.join(present)}); "
                             "a CSV list without a split column makes every row Test")
        raise MmferError(f"{cache}: empty or missing manifest; run `mmfer preprocess` first")
    fix = (f"re-run `mmfer preprocess SOURCE --out {cache}` with this mmfer (it redoes those clips), or use the "
           "mmfer version that made the cache")
    for r in records:  # the version first: another version's arrays may mean something else
        version = r.settings.get("cache_version") if isinstance(r.settings, dict) else None
        if version != CACHE_VERSION:
            raise MmferError(f"{cache}: clip {r.split}/{r.clip_id} was cached with cache_version {version!r}, and this "
                             f"mmfer reads cache_version {CACHE_VERSION}; {fix}")
        if _settings_hash(r.settings) != r.settings_hash:
            raise MmferError(f"{cache}: clip {r.split}/{r.clip_id}: the manifest's preprocessing settings do not "
                             f"match their hash {r.settings_hash!r} (edited, or written by another program); {fix}")
    if len(hashes) > 1:
        raise MmferError(
            f"{cache}: clips were made with {len(hashes)} different preprocessing settings; "
            "re-run `mmfer preprocess` with one set of settings"
        )
    try:
        return PreprocessSettings.from_dict(next(iter(hashes.values())))
    except MmferError as e:
        raise MmferError(f"{cache}: preprocessing settings this mmfer does not know ({e}); {fix}") from None


def _settings_hash(settings: dict[str, Any]) -> str:
    """``PreprocessSettings.hash`` of a stored settings dict (its cache_version included)."""
    return hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
