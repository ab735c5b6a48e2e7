"""Finding clips: an AFEW-style folder, a CSV list, or any folder of videos -> ``ClipEntry`` rows.

Indexing is separate from decoding so that every later stage (preprocess, datasets, predict)
agrees on one ``clip_id`` per file, and so that mistakes in a corpus layout (a typo in an
emotion folder, two files with the same id) are reported before hours of decoding start.
"""

from __future__ import annotations

import csv
import logging
import os
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from mmfer.errors import MmferError, csv_errors
from mmfer.data.cache import check_clip_id, clip_id_from_name
from mmfer.labels import canonical, cremad_label, ravdess_label

log = logging.getLogger(__name__)

# what cameras, phones and browsers write (FFmpeg decodes them all); ".ts" is left out: in a folder it is more often
# TypeScript than an MPEG transport stream (camcorders' .mts and .m2ts are in)
VIDEO_EXTENSIONS: tuple[str, ...] = (".avi", ".mp4", ".mkv", ".flv", ".webm", ".mov", ".m4v", ".3gp", ".mpg",
                                     ".mpeg", ".mts", ".m2ts", ".wmv", ".ogv")
AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".flac", ".mp3", ".ogg", ".m4a", ".opus", ".aac", ".wma")
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
SPLITS: tuple[str, ...] = ("Train", "Val", "Test")
LABELLED_SPLITS: tuple[str, ...] = ("Train", "Val")
LABEL_SOURCES: tuple[str, ...] = ("folder", "ravdess", "cremad")


@dataclass(frozen=True)
class ClipEntry:
    """One clip to process: its id (file name without extension), split, canonical label or None, and file."""

    clip_id: str
    split: str
    label: str | None
    path: Path


def is_video(path: str | Path) -> bool:
    """True for a file name with one of ``VIDEO_EXTENSIONS`` (case-insensitive)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def is_audio(path: str | Path) -> bool:
    return Path(path).suffix.lower() in AUDIO_EXTENSIONS


def is_image(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def case_key(name: str) -> str:
    """One key for names that are one file on Windows and macOS: letter case aside, an accent composed or not."""
    return unicodedata.normalize("NFC", name).casefold()


def loose_clip_id(cid: str) -> str:
    """A clip id without a media file's extension, letter case aside: how two systems' ids of one clip differ."""
    stem, dot, ext = cid.rpartition(".")
    if dot and f".{ext.lower()}" in (*VIDEO_EXTENSIONS, *AUDIO_EXTENSIONS, *IMAGE_EXTENSIONS):
        cid = stem
    return case_key(cid)


def loosely_matched(unmatched: Iterable[str], wanted: Iterable[str]) -> list[tuple[str, str]]:
    """(id of ``unmatched``, id of ``wanted``) pairs that are one clip up to an extension or letter case: ids
    compared exactly would each count as missing (``clip00.mp4`` in scores, ``clip00`` in the labels)."""
    by_loose = {loose_clip_id(u): u for u in unmatched}
    return [(by_loose[loose_clip_id(w)], w) for w in wanted if loose_clip_id(w) in by_loose]


def _parent_folder_label(path: Path) -> str | None:
    try:
        return canonical(path.parent.name)
    except MmferError as e:
        raise MmferError(f"{path}: parent folder is not an emotion name ({e})") from None


# How a file's label is read, for each ``labels_from``; ``auto`` tries them in this order.
_LABEL_PARSERS: dict[str, Callable[[Path], str | None]] = {
    "folder": _parent_folder_label,
    "ravdess": ravdess_label,
    "cremad": cremad_label,
}


def file_label(path: str | Path, labels_from: str = "auto") -> tuple[bool, str | None]:
    """(known, label) of one file: from its parent folder's emotion name (any case or alias), a RAVDESS or a
    CREMA-D file name, or with ``auto`` the first of these that fits.

    A known out-of-set emotion (RAVDESS calm, a ``Contempt`` folder) is ``(True, None)``. A file the named
    source cannot read is an error naming it; with ``auto`` it is ``(False, None)`` instead, so callers
    decide whether an unlabelled file is fine.
    """
    path = Path(path)
    if labels_from != "auto":
        if labels_from not in _LABEL_PARSERS:
            raise MmferError(f"labels_from={labels_from!r}; expected auto or one of {', '.join(LABEL_SOURCES)}")
        return True, _LABEL_PARSERS[labels_from](path)
    for parse in _LABEL_PARSERS.values():
        try:
            return True, parse(path)
        except MmferError:
            continue
    return False, None


def _within(path: str, folder: str) -> bool:
    """``path`` is ``folder`` or below it (real paths; ``/`` holds everything)."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _reached_by_walking(target: str, reached: set[str]) -> bool:
    """``target`` lies in a folder reached already, on a way the walk takes (no hidden folder between)."""
    for r in reached:
        if _within(target, r) and not any(p.startswith(".") for p in target[len(r):].split(os.sep) if p):
            return True
    return False


def walk_files(folder: Path) -> Iterator[Path]:
    """Every file below ``folder``, hidden folders left out, and through linked folders too (``Path.rglob`` does
    not follow them before Python 3.13), each folder once. A link is followed only to a folder outside ``folder``
    that neither holds ``folder`` or the link itself (a loop) nor lies in a folder reached already; a folder
    reached already is not searched again, however it is reached; a folder that cannot be read, or a link to
    nothing, is said and left out."""
    root = os.path.realpath(folder)
    reached = {root}
    stack = [(Path(folder), root)]
    while stack:
        top, real = stack.pop()
        try:
            entries = sorted(os.scandir(top), key=lambda e: e.name)
        except OSError as e:
            log.warning("%s: not searched (%s)", top, e.strerror or e)
            continue
        below: list[tuple[Path, str]] = []
        for e in entries:
            try:
                is_dir = e.is_dir()
            except OSError as err:  # a link to itself, a loop of links
                log.warning("%s: not searched (%s)", e.path, err.strerror or err)
                continue
            if is_dir:
                if e.name.startswith("."):
                    continue
                target = os.path.realpath(e.path)
                if e.is_symlink():
                    if (_within(target, root) or _within(root, target) or _within(real, target)
                            or _reached_by_walking(target, reached)):
                        continue  # inside the tree (searched anyway), a loop, or inside a folder reached already
                elif target in reached:
                    continue  # a real folder of a linked one, which another link reached already
                reached.add(target)
                below.append((Path(e.path), target))
            elif e.is_file():
                yield Path(e.path)
            elif e.is_symlink() and not e.name.startswith("."):
                log.warning("%s: a link to %s, %s: left out", e.path, os.readlink(e.path),
                            "which is neither a file nor a folder" if os.path.exists(e.path) else "which is not there")
            elif not e.name.startswith("."):
                log.warning("%s: not a regular file (a pipe, socket or device): left out", e.path)
        stack.extend(reversed(below))


def iter_files(folder: Path, keep: Callable[[Path], bool]) -> Iterator[Path]:
    """Files below ``folder`` (recursive, sorted) that ``keep`` accepts; hidden files and folders are skipped
    (a hidden media file with a warning: ``..flv`` or ``.clip.mp4`` is left out, not lost silently)."""
    for p in sorted(walk_files(folder)):
        if not keep(p):
            continue
        parts = p.relative_to(folder).parts
        if any(part.startswith(".") for part in parts[:-1]):
            continue
        if parts[-1].startswith("."):
            _warn_hidden(p)
            continue
        yield p


def _warn_hidden(path: Path) -> None:
    if path.name.startswith("._"):  # macOS's AppleDouble companion of a file copied off a Mac: never media
        log.debug("%s: left out (a macOS metadata file)", path)
        return
    log.warning("%s: left out, its name starts with '.' (a hidden file); rename it to include it", path)


def split_name(name: str, *, where: str = "splits") -> str:
    """The canonical spelling of a split name (``train`` -> ``Train``); unknown names are an error."""
    for s in SPLITS:
        if name.strip().lower() == s.lower():
            return s
    raise MmferError(f"{where}: unknown split {name!r}; expected one of {', '.join(SPLITS)}")


def _normalise_splits(splits: Iterable[str] | str | None, *, where: str = "splits") -> tuple[str, ...] | None:
    if splits is None:
        return None
    if isinstance(splits, str):
        splits = [s for s in splits.split(",") if s.strip()]
    out: list[str] = []
    for s in splits:
        c = split_name(s, where=where)
        if c not in out:
            out.append(c)
    if not out:
        raise MmferError(f"{where}: no split given; expected some of {', '.join(SPLITS)}")
    return tuple(out)


def check_out_not_read_as_data(out: str | Path, source: str | Path, *, what: str, example: str) -> None:
    """An output folder that is the data folder ``source`` itself, or lies in its split or emotion folders, is
    refused: what is written there (``what``) would be read as data on the next run."""
    from mmfer.labels import EMOTIONS

    if not Path(source).is_dir():
        return
    root, place = Path(source).resolve(), Path(out).resolve()
    read_as_data = {d.name.lower() for d in find_split_dirs(root).values()} | {e.lower() for e in EMOTIONS}
    if place == root or (place.is_relative_to(root) and place.relative_to(root).parts[0].lower() in read_as_data):
        where = "the data folder itself" if place == root else f"inside {source}'s split or emotion folders"
        raise MmferError(f"--out {out}: {where}, where {what} would be read as data on the next run; choose a "
                         f"folder beside it or another one inside it (e.g. {Path(source) / example})")


def find_split_dirs(root: Path) -> dict[str, Path]:
    """Split folders directly under ``root``, matched case-insensitively (train/TRAIN/Train)."""
    found: dict[str, Path] = {}
    if not root.is_dir():
        return found
    for child in sorted(root.iterdir()):
        if not child.is_dir():
            continue
        for s in SPLITS:
            if child.name.lower() == s.lower():
                if s in found:
                    raise MmferError(
                        f"{root}: two folders for split {s}: {found[s].name!r} and {child.name!r}; keep one"
                    )
                found[s] = child
    return found


def _warn_not_videos(split_dir: Path, others: Sequence[Path], *, holds: str = "an AFEW split holds videos") -> None:
    """Sound and image files in an AFEW split (or a folder preprocessed) are left out; said once per folder,
    since predict would score them (and put them in a --submission zip that `submit --check --index` then calls
    extra)."""
    if others:
        names = sorted(p.relative_to(split_dir).as_posix() for p in others)
        log.warning("%s: %d sound or image file(s) left out, %s (e.g. %s)", split_dir, len(names), holds,
                    ", ".join(names[:3]))


def _media(p: Path) -> bool:
    """A file a folder scan counts: a video, or a sound or image file that is not hidden (said as left out where
    only videos are read; a hidden one is not worth a word)."""
    return is_video(p) or (is_audio(p) or is_image(p)) and not p.name.startswith(".")


def _videos_below(folder: Path, others: list[Path]) -> list[Path]:
    """Every video below ``folder``, its sub-folders and linked folders included (``iter_files``: a link to
    nothing, a loop and a folder that cannot be read are said, never silently missing); its sound and image files
    are added to ``others``."""
    videos = []
    for p in iter_files(folder, _media):
        (videos if is_video(p) else others).append(p)
    return videos


def _entries_of(folder: Path) -> list[os.DirEntry]:
    """The entries directly in a split folder; one that cannot be read is an error naming it."""
    try:
        return sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as e:
        raise MmferError(f"{folder}: cannot be read ({e.strerror or e}); check its permissions") from None


def _is_dir(e: os.DirEntry) -> bool:
    try:
        return e.is_dir()
    except OSError:  # a link to itself: not a folder, and said by the scan of files
        return False


def _check_duplicates(entries: Sequence[ClipEntry], *, where_of: dict[int, str] | None = None,
                      folders: bool = False) -> None:
    """Two clips with the same id in one split would overwrite each other in the cache: refuse. With ``folders``
    (the cache's clip folders), ids that differ only in letter case or in how an accent is written (``Clip1``,
    ``clip1``) are refused too: one folder on macOS and Windows, wherever the cache is made."""
    seen: dict[tuple[str, str], int] = {}
    for i, e in enumerate(entries):
        key = (case_key(e.split), case_key(e.clip_id)) if folders else (e.split, e.clip_id)
        if key in seen:
            j = seen[key]
            a = where_of.get(j, str(entries[j].path)) if where_of else str(entries[j].path)
            b = where_of.get(i, str(e.path)) if where_of else str(e.path)
            other = entries[j].clip_id
            what = (f"duplicate clip_id {e.clip_id!r}" if other == e.clip_id else
                    f"clip ids {ascii(other)} and {ascii(e.clip_id)}, one name where letter case or the way an accent "
                    "is written is not told apart (macOS, Windows),")
            raise MmferError(
                f"{what} in split {e.split}: {a} and {b}; "
                "rename one of the files (clip ids are file names without extension)"
            )
        seen[key] = i


def same_content(entries: Sequence[ClipEntry]) -> list[list[ClipEntry]]:
    """Groups of two or more clips whose files hold the same bytes (a copy, a link, the same file listed twice).

    Why: a clip under two emotions teaches both, and a Val or Test clip that is also in Train makes the Val
    figures read high; neither shows in the figures themselves. One file on disk (a link, a path listed twice)
    is known by its inode without reading it; only distinct files of equal size are read, their first 64 KiB
    first and the whole where those agree, so a folder of distinct videos costs one ``stat`` per file."""
    files: dict[tuple[int, int], list[ClipEntry]] = {}  # (device, inode) -> its clips
    sizes: dict[tuple[int, int], int] = {}
    for e in entries:
        try:
            st = os.stat(e.path)
        except OSError:  # missing or unreadable: processing names it
            continue
        if not st.st_size:  # empty files hold no clip: processing names each, not as copies of one another
            continue
        files.setdefault((st.st_dev, st.st_ino), []).append(e)
        sizes[(st.st_dev, st.st_ino)] = st.st_size
    by_size: dict[int, list[tuple[int, int]]] = {}
    for f in files:
        by_size.setdefault(sizes[f], []).append(f)
    groups: dict[Any, list[ClipEntry]] = {}
    for size, same_size in by_size.items():
        keys: dict[tuple[int, int], Any] = {f: f for f in same_size}
        if len(same_size) > 1:
            keys = {f: _digest_or_none(files[f][0].path, limit=1 << 16) for f in same_size}
            heads = Counter(k for k in keys.values() if k is not None)
            for f, head in keys.items():
                if head is not None and size > 1 << 16 and heads[head] > 1:
                    keys[f] = _digest_or_none(files[f][0].path)
        for f, key in keys.items():
            if key is not None:
                groups.setdefault((size, key), []).extend(files[f])
    return [g for g in groups.values() if len(g) > 1]


def _digest_or_none(path: str | Path, *, limit: int | None = None) -> str | None:
    try:
        return _content_digest(path, limit=limit)
    except OSError:  # unreadable: processing names it
        return None


def _content_digest(path: str | Path, *, limit: int | None = None) -> str:
    """SHA-1 of a file's bytes (its first ``limit`` bytes)."""
    import hashlib

    digest, left = hashlib.sha1(), limit
    with open(path, "rb") as f:
        while left is None or left > 0:
            block = f.read(1 << 20 if left is None else min(1 << 20, left))
            if not block:
                break
            digest.update(block)
            left = None if left is None else left - len(block)
    return digest.hexdigest()


def index_afew(root: str | Path, *, splits: Iterable[str] | str | None = SPLITS) -> list[ClipEntry]:
    """Clips of an AFEW-style tree: ``root/{Train,Val}/<Emotion>/<clip>.<ext>`` and ``root/Test/<clip>.<ext>``
    (sub-folders of Test/ included, as when the Test folder itself is indexed).

    ``splits=None`` takes whichever splits are present. Out-of-set emotion folders (calm, contempt) are
    skipped with a log line; an unrecognised folder name is an error, so typos do not silently vanish.
    """
    root = Path(root)
    if not root.is_dir():
        raise MmferError(f"{root}: not a folder; expected an AFEW-style root with Train/, Val/ or Test/ inside")
    dirs = find_split_dirs(root)
    wanted = _normalise_splits(splits)
    if wanted is None:
        wanted = tuple(s for s in SPLITS if s in dirs)
        if not wanted:
            raise MmferError(f"{root}: no Train/, Val/ or Test/ folder inside; is this an AFEW-style root?")
    for s in wanted:
        if s not in dirs:
            present = ", ".join(d.name for d in dirs.values()) or "none"
            raise MmferError(
                f"{root}: split folder {s}/ not found (split folders present: {present}); "
                f"create it or leave {s} out of --splits"
            )
    entries: list[ClipEntry] = []
    for s in wanted:
        sdir = dirs[s]
        split_entries: list[ClipEntry] = []
        others: list[Path] = []
        if s in LABELLED_SPLITS:
            children = _entries_of(sdir)
            loose = [e for e in children if not e.name.startswith(".") and is_video(Path(e.name)) and not _is_dir(e)]
            if loose:
                log.warning("%s: %d video(s) directly in %s/ are ignored (expected %s/<Emotion>/<clip>)",
                            root, len(loose), sdir.name, sdir.name)
            for edir in (Path(e.path) for e in children if _is_dir(e) and not e.name.startswith(".")):
                try:
                    label = canonical(edir.name)
                except MmferError as e:
                    raise MmferError(f"{edir}: emotion folder name not recognised ({e})") from None
                if label is None:
                    log.info("%s: out-of-set emotion %r, skipped", edir, edir.name)
                    continue
                videos = _videos_below(edir, others)  # links to nothing, loops, unreadable folders: said
                nested = [p for p in videos if p.parent != edir]
                if nested:  # not a clip of the emotion: `--labels-from folder` reads a file's own folder
                    log.warning("%s: %d video(s) in sub-folders of %s/ are ignored (expected %s/%s/<clip>; e.g. %s)",
                                root, len(nested), edir.name, sdir.name, edir.name,
                                ", ".join(p.relative_to(edir).as_posix() for p in nested[:3]))
                for p in videos:
                    if p.parent == edir:
                        split_entries.append(ClipEntry(clip_id_from_name(p.stem), s, label, p))
        else:
            # every video under Test/, sub-folders included: the same clips as indexing the Test folder itself
            # (index_folder), so `submit --index AFEW` and `--index AFEW/Test` agree on one zip
            _entries_of(sdir)  # an unreadable Test folder is an error naming it, as Train and Val are
            for p in _videos_below(sdir, others):
                split_entries.append(ClipEntry(clip_id_from_name(p.stem), s, None, p))
        _warn_not_videos(sdir, others)
        if not split_entries:
            log.warning("%s: no video files (%s) in %s/", root, " ".join(VIDEO_EXTENSIONS), sdir.name)
        split_entries.sort(key=lambda e: (e.clip_id, str(e.path)))
        entries.extend(split_entries)
    _check_duplicates(entries)
    return entries


@dataclass
class ListRow:
    """One row of a CSV list: its line, its file (relative paths resolved against the list's folder), its label
    (canonical; None unknown; ``out_of_set`` for a row of another emotion, such as calm) and its other values."""

    lineno: int
    path: Path
    label: str | None
    out_of_set: bool
    values: dict[str, str]

    def get(self, column: str) -> str:
        """The row's value in ``column`` (stripped), "" where the list has no such column."""
        return self.values.get(column, "")


def list_rows(csv_path: str | Path, *, columns: str) -> Iterator[ListRow]:
    """The rows of a CSV list with a header holding ``path`` and ``label`` (any order, any letter case; other
    columns kept in ``values``): the one reader of the clip lists of ``preprocess`` and ``train`` and of speech
    lists. Blank rows are skipped; a row with too few values, an empty path or an unknown label is an error naming
    its line. ``columns`` is the header the error messages suggest. Files are not opened here."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise MmferError(f"{csv_path}: CSV list not found")
    with open(csv_path, newline="", encoding="utf-8-sig") as f, csv_errors(csv_path):
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise MmferError(f"{csv_path}: empty file; expected a header line {columns!r}")
        cols = [h.strip().lower() for h in header]
        if "path" not in cols or "label" not in cols:
            raise MmferError(f"{csv_path}:1: header {','.join(header)!r} lacks column 'path' or 'label'; "
                             f"expected {columns!r}")
        for lineno, row in enumerate(reader, start=2):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) < len(cols):
                raise MmferError(f"{csv_path}:{lineno}: {len(row)} value(s) for {len(cols)} column(s) ({','.join(cols)})")
            values = {c: v.strip() for c, v in zip(cols, row)}
            if not values["path"]:
                raise MmferError(f"{csv_path}:{lineno}: empty path")
            p = Path(values["path"]).expanduser()
            if not p.is_absolute():
                p = csv_path.parent / p
            label: str | None = None
            if values["label"]:
                try:
                    label = canonical(values["label"])
                except MmferError as e:
                    raise MmferError(f"{csv_path}:{lineno}: {e}") from None
            yield ListRow(lineno, p, label, bool(values["label"]) and label is None, values)


def index_csv(csv_path: str | Path, *, splits: Iterable[str] | str | None = None) -> list[ClipEntry]:
    """Clips listed in a CSV with columns ``path,label[,split][,clip_id]``.

    Relative paths resolve against the CSV's folder, so a list travels with its clips. Without a
    ``split`` column every row is Test; an empty label means unknown; an out-of-set label (calm)
    drops the row with a log line. Files are not opened here: a missing file becomes a failed clip
    in ``mmfer preprocess`` instead of stopping a whole corpus.
    """
    csv_path = Path(csv_path)
    wanted = _normalise_splits(splits, where=f"{csv_path}: splits")
    entries: list[ClipEntry] = []
    where_of: dict[int, str] = {}
    has_split = False
    for row in list_rows(csv_path, columns="path,label[,split][,clip_id]"):
        has_split = has_split or "split" in row.values
        if row.out_of_set:
            log.info("%s:%d: out-of-set label %r, row skipped", csv_path, row.lineno, row.get("label"))
            continue
        where = f"{csv_path}:{row.lineno}"
        split = split_name(row.get("split"), where=where) if row.get("split") else "Test"
        clip_id = (check_clip_id(row.get("clip_id"), where=where) if row.get("clip_id")
                   else clip_id_from_name(row.path.stem))
        if wanted is not None and split not in wanted:
            continue
        where_of[len(entries)] = f"{row.path} ({csv_path.name}:{row.lineno})"
        entries.append(ClipEntry(clip_id, split, row.label, row.path))
    if wanted is not None:
        missing = [s for s in wanted if not any(e.split == s for e in entries)]
        if missing:
            raise MmferError(f"{csv_path}: no rows of split(s) {', '.join(missing)}; leave them out of --splits")
    _check_duplicates(entries, where_of=where_of)
    labelled = sum(1 for e in entries if e.label)
    if not has_split and labelled:  # labels that no training would see: Test is never learnt from
        log.warning("%s: no split column, so all %d rows are Test, %d of them labelled; to train on them give a "
                    "split column (Train, Val or Test per row)", csv_path, len(entries), labelled)
    return entries


def index_folder(folder: str | Path, *, split: str = "Test", labels_from: str | None = None) -> list[ClipEntry]:
    """Every video under ``folder`` (recursively) as one split; labels from the parent folder name,
    a RAVDESS or a CREMA-D file name, or none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MmferError(f"{folder}: not a folder")
    split = split_name(split, where="index_folder split")
    if labels_from is not None and labels_from not in LABEL_SOURCES:
        raise MmferError(f"labels_from={labels_from!r}; expected None or one of {', '.join(LABEL_SOURCES)}")
    entries: list[ClipEntry] = []
    others: list[Path] = []
    for p in _videos_below(folder, others):
        label = None
        if labels_from is not None:
            _, label = file_label(p, labels_from)
            if label is None:
                log.info("%s: out-of-set emotion, skipped", p)
                continue
        entries.append(ClipEntry(clip_id_from_name(p.stem), split, label, p))
    _warn_not_videos(folder, others, holds="only videos are read as clips here")
    if not entries:
        log.warning("%s: no video files (%s) found", folder, " ".join(VIDEO_EXTENSIONS))
    _check_duplicates(entries)
    return entries


def index_source(source: str | Path, *, splits: Iterable[str] | str | None = None) -> list[ClipEntry]:
    """Whatever the user pointed at: a ``.csv`` list, an AFEW-style root, a plain folder (Test) or one video (Test)."""
    source = Path(source)
    if not source.exists():
        raise MmferError(f"{source}: no such file or folder; expected a CSV list, an AFEW-style root or a video")
    if source.is_file():
        if source.suffix.lower() == ".csv":
            return index_csv(source, splits=splits)
        if is_video(source):
            entries = [ClipEntry(clip_id_from_name(source.stem), "Test", None, source)]
        else:
            raise MmferError(
                f"{source}: neither a .csv list nor a video ({' '.join(VIDEO_EXTENSIONS)}); "
                "point at a CSV, an AFEW-style root folder or a video file"
            )
    elif find_split_dirs(source):
        return index_afew(source, splits=splits)
    else:
        entries = index_folder(source, split="Test")
    wanted = _normalise_splits(splits)
    if wanted is not None and "Test" not in wanted:
        raise MmferError(
            f"{source}: a plain folder or single video is indexed as split Test, but --splits asks for "
            f"{', '.join(wanted)}; use an AFEW-style root or a CSV with a split column"
        )
    return entries
