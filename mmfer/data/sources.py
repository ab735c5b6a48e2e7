"""Where a model's clips come from, as records: a preprocess cache, a folder tree of face images or sound files
(``<split>/<Emotion>/*``, or corpus-named files), or a CSV list of speech files. The datasets of
``mmfer.data.datasets`` then only load what these records name."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from mmfer.data.cache import ClipRecord
from mmfer.data.index import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS
from mmfer.data.kinds import KINDS
from mmfer.data.speech_list import image_source, is_speech_list, speech_list_records, speech_list_splits
from mmfer.errors import MmferError

log = logging.getLogger(__name__)

_EXTENSIONS = {"image": IMAGE_EXTENSIONS, "audio": AUDIO_EXTENSIONS}
# The kinds that read folder trees (or lists) of files: kind -> (what, extensions); from the kinds table.
FILE_SOURCES = {k: (v.files, _EXTENSIONS[v.files]) for k, v in KINDS.items() if v.files}


def file_source(data: str | Path, kind: str) -> str | None:
    """``"image"`` or ``"audio"`` when ``--data`` is a folder tree of files for this input kind, None for a cache.

    Face images always come from files; log-mel input comes from audio files when the folder is not a
    cache (no manifest.jsonl), so the audio CNN trains on speech corpora without preprocessing.
    """
    files = KINDS[kind].files if kind in KINDS else None
    if files == "image":
        return image_source(data)
    if files == "audio" and Path(data).is_dir() and not (Path(data) / "manifest.jsonl").exists():
        return "audio"
    if files == "audio" and is_speech_list(data):  # a CSV list of speech files
        return "audio"
    return None


def _media(folder: Path, exts: tuple[str, ...]):
    from mmfer.data.index import iter_files

    return iter_files(folder, lambda p: p.suffix.lower() in exts)


def media_folder_splits(root: str | Path, kind: str) -> set[str]:
    """Splits of a media folder tree: sub-folders of ROOT holding files of the kind's extensions."""
    root, exts = Path(root), FILE_SOURCES[kind][1]
    if not root.is_dir():
        return set()
    return {d.name for d in root.iterdir() if d.is_dir() and next(_media(d, exts), None) is not None}


def media_folder_records(root: str | Path, split: str, kind: str) -> list[ClipRecord]:
    """One record per file under ROOT/<split>/, labelled by its ``<Emotion>/`` folder or a RAVDESS/CREMA-D name.

    Out-of-set emotions (RAVDESS calm, a Contempt folder) are skipped; a file with no label is an error
    in Train (it would be silently dropped otherwise) and unlabelled elsewhere.
    """
    from mmfer.data.index import file_label

    what, exts = FILE_SOURCES[kind]
    d = Path(root) / split
    layout = f"{split}/<Emotion>/*{exts[0]}, or corpus-named files (RAVDESS, CREMA-D)"
    if not d.is_dir():
        raise MmferError(f"{root}: no {split}/ folder; expected {layout}")
    records, out_of_set = [], 0
    for f in _media(d, exts):
        known, label = file_label(f)
        if not known and split == "Train":
            raise MmferError(f"{f}: no emotion in its folder name or file name; expected {layout}")
        if known and label is None:
            out_of_set += 1
            continue
        clip_id = f.relative_to(d).with_suffix("").as_posix()
        records.append(ClipRecord(clip_id=clip_id, split=split, label=label, path=str(f), status="ok"))
    if out_of_set:
        log.info("%s: %d file(s) with out-of-set emotions (e.g. RAVDESS calm) left out", d, out_of_set)
    if not records:
        cache = (Path(root) / "manifest.jsonl").is_file()  # a cache of `mmfer preprocess`, which this kind cannot read
        raise MmferError(f"{d}: no {what} files ({' '.join(exts)}) with in-set emotions; expected {layout}"
                         + (f". {root} is a preprocess cache: a {kind} model reads {what} files, not a cache (for "
                            "face photos, e.g. FER2013 or the crops of tools/make_video_crops.py); to score a "
                            "split's videos with it, `mmfer predict SPLIT_FOLDER --model RUN` (docs/fusion.md, "
                            "\"A face-frame run in the fusion\")" if cache else ""))
    return records


def source_splits(data: str | Path, kind: str) -> set[str]:
    """Splits present in the data source a model of ``kind`` reads (a cache, or a folder tree of files)."""
    from mmfer.data.cache import read_manifest

    if file_source(data, kind) and is_speech_list(data):
        return speech_list_splits(data)
    return media_folder_splits(data, kind) if file_source(data, kind) else {s for s, _ in read_manifest(data)}


def source_records(data: str | Path, split: str, kind: str) -> list[ClipRecord]:
    from mmfer.data.cache import split_records

    if file_source(data, kind) and is_speech_list(data):
        return list(speech_list_records(data, split))
    return media_folder_records(data, split, kind) if file_source(data, kind) else split_records(data, split)


def pooled_records(data: str | Path, kind: str, *, splits: Sequence[str]) -> list[ClipRecord]:
    """The records of those ``splits`` that ``data`` has, in that order: what speaker or corpus folds deal."""
    if not Path(data).exists():  # else said as "no clips to deal to folds" or "only one corpus ()"
        raise MmferError(f"{data}: no such file or folder")
    have = source_splits(data, kind)
    return [r for split in splits if split in have for r in source_records(data, split, kind)]
