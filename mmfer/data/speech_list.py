"""Speech of several corpora from one CSV list: ``mmfer train CONFIG --data list.csv`` for the audio branches.

Columns (read by name): ``path,label`` required; ``speaker``, ``corpus``, ``split``, ``use`` and ``clip_id``
optional, others ignored (``/work/shared/data/speech/metadata.csv`` has ``path,label,speaker,corpus,language,use``).
Paths are relative to the CSV. A row goes to its ``split`` (Train when there is none); a row whose ``use``
is "evaluation only" (TESS; also "evaluation", "eval", "test") goes to Test, so it is scored by every run and
never trained on; any other ``use`` than those and "train" is an error, and TESS rows put in training are
warned about (its licence forbids derived works). A missing file is reported by name and left out here; one that does not decode is reported and
left out by the dataset that reads it. Labels take the canonical names and their aliases; out-of-set labels
(calm) are left out and counted.

Why the corpus column matters: pooled corpora differ in size and in their classes (nEMO has no Disgust).
:func:`class_masks` tells training which classes each corpus has, so that a corpus without a class never
teaches the model that the class does not occur (its clips give that class's logit no gradient:
``mmfer.engine.losses.MaskedCrossEntropy``); :func:`balanced_weights` lets each corpus, and each class
within a corpus, be drawn equally often, so the largest corpus does not drown the others.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from mmfer.data.cache import ClipRecord, check_clip_id
from mmfer.errors import MmferError
from mmfer.labels import EMOTIONS, NUM_CLASSES, index_of

log = logging.getLogger(__name__)

TRAIN_USES = ("", "train")
EVALUATION_USES = ("evaluation only", "evaluation", "eval", "test")  # scored, never trained on
# corpora whose licence forbids derived works (TESS): training on their rows is said, loudly
EVALUATION_ONLY_CORPORA = {"tess": "its licence forbids derivative works"}


@dataclass
class SpeechRecord(ClipRecord):
    """A clip of a speech list: a ClipRecord with its speaker and corpus."""

    speaker: str = ""
    corpus: str = ""


def is_speech_list(data: str | Path) -> bool:
    """True when ``--data`` is a CSV list (a file ending in .csv)."""
    p = Path(data)
    return p.suffix.lower() == ".csv" and p.is_file()


_CACHE: dict[tuple, list[SpeechRecord]] = {}


def read_speech_list(csv_path: str | Path) -> list[SpeechRecord]:
    """Every usable row of the list, in file order (read once per process while the file is unchanged)."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise MmferError(f"{csv_path}: CSV list not found")
    st = csv_path.stat()
    key = (str(csv_path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _CACHE:
        if len(_CACHE) > 8:
            _CACHE.clear()
        _CACHE[key] = _read(csv_path)
    return list(_CACHE[key])


def _read(csv_path: Path) -> list[SpeechRecord]:
    from mmfer.data.index import list_rows, split_name

    records: list[SpeechRecord] = []
    missing: list[str] = []
    out_of_set = 0
    evaluation_only: dict[str, int] = {}  # corpus -> rows of an evaluation-only corpus put in training
    seen: dict[tuple[str, str], int] = {}
    names = _Spellings()  # a corpus or speaker spelt with other capitals is the same one
    for row in list_rows(csv_path, columns="path,label[,speaker][,corpus][,split][,use][,clip_id]"):
        lineno, p, label, get = row.lineno, row.path, row.label, row.get
        if row.out_of_set:
            out_of_set += 1
            continue
        if not p.is_file():
            missing.append(f"{p} ({csv_path.name}:{lineno}){': a folder, not a file' if p.is_dir() else ''}")
            continue
        corpus = names.one("corpus", get("corpus"), lineno)
        use = get("use").lower()
        if use not in TRAIN_USES + EVALUATION_USES:  # a typo must not quietly take a row out of training
            raise MmferError(f"{csv_path}:{lineno}: use {get('use')!r}; expected 'train' (or empty) or "
                             "'evaluation only'")
        split = split_name(get("split"), where=f"{csv_path}:{lineno}") if get("split") else "Train"
        if use not in TRAIN_USES:
            split = "Test"  # evaluation only: scored, never trained on
        elif split != "Test" and corpus.lower() in EVALUATION_ONLY_CORPORA:
            evaluation_only[corpus] = evaluation_only.get(corpus, 0) + 1
        clip_id = (check_clip_id(get("clip_id"), where=f"{csv_path}:{lineno}") if get("clip_id")
                   else _safe_id(p.stem))
        if (split, clip_id) in seen:
            raise MmferError(f"{csv_path}:{lineno}: clip id {clip_id!r} of {p} is already used in {split} by "
                             f"line {seen[(split, clip_id)]}; give the rows distinct clip_id values")
        seen[(split, clip_id)] = lineno
        speaker = names.one(f"speaker of {corpus or 'no corpus'}", get("speaker"), lineno)
        records.append(SpeechRecord(clip_id=clip_id, split=split, label=label, path=str(p), status="ok",
                                    speaker=speaker, corpus=corpus))
    names.report(csv_path)
    for corpus, n in evaluation_only.items():
        log.warning("%s: %d row(s) of corpus %s are training data, but %s is for evaluation only (%s); mark them "
                    "use 'evaluation only', as speech/metadata.csv does", csv_path, n, corpus, corpus,
                    EVALUATION_ONLY_CORPORA[corpus.lower()])
    for m in missing:
        log.warning("%s; left out", m if m.endswith("not a file") else f"{m}: file not found")
    if missing:
        log.warning("%s: %d listed file(s) not found and left out", csv_path, len(missing))
    if out_of_set:
        log.info("%s: %d row(s) with out-of-set labels (e.g. calm) left out", csv_path, out_of_set)
    if not records:
        raise MmferError(f"{csv_path}: no usable rows (files present, labels in {', '.join(EMOTIONS)} or empty)")
    return records


class _Spellings:
    """The first spelling of each corpus and speaker name, case aside: "SAVEE" on one line and "savee" on another
    made two corpora, so leave-one-corpus-out trained on half of SAVEE and validated on the other half, and one
    speaker landed in two folds."""

    def __init__(self) -> None:
        self.first: dict[tuple[str, str], tuple[str, int]] = {}
        self.merged: dict[tuple[str, str, str], int] = {}  # (what, spelling, first spelling) -> rows

    def one(self, what: str, name: str, lineno: int) -> str:
        if not name:
            return name
        first, _ = self.first.setdefault((what, name.casefold()), (name, lineno))
        if first != name:
            self.merged[(what, name, first)] = self.merged.get((what, name, first), 0) + 1
        return first

    def report(self, csv_path: Path) -> None:
        for (what, name, first), n in self.merged.items():
            log.warning("%s: %s %r on %d row(s) read as %r (line %d): names are matched without regard to case",
                        csv_path, what, name, n, first, self.first[(what, first.casefold())][1])


def _safe_id(stem: str) -> str:
    from mmfer.data.cache import clip_id_from_name

    return clip_id_from_name(stem)


def image_source(data: str | Path) -> str:
    """``"image"``, where a face-image model's files come from; a CSV list given as its data must list images (a
    list of sound files was read file by file as broken images, after the run had started)."""
    if is_speech_list(data):
        from mmfer.data.index import is_image

        records = read_speech_list(data)
        if records and not any(is_image(r.path) for r in records):
            raise MmferError(f"{data}: a CSV list of {Path(records[0].path).suffix or 'extensionless'} files, not "
                             "images; a face-image model reads an image folder tree ROOT/<split>/<Emotion>/*.png "
                             "(FER2013's layout)")
    return "image"


def speech_list_splits(csv_path: str | Path) -> set[str]:
    return {r.split for r in read_speech_list(csv_path)}


def speech_list_records(csv_path: str | Path, split: str) -> list[SpeechRecord]:
    return [r for r in read_speech_list(csv_path) if r.split == split]


# ------------------------------------------------------------------ corpora and their classes
def corpus_of(record: ClipRecord) -> str:
    return getattr(record, "corpus", "") or ""


def classes_by_corpus(records: Sequence[ClipRecord]) -> dict[str, set[str]]:
    """The labelled classes each corpus has among ``records`` (corpus "" for records without one)."""
    out: dict[str, set[str]] = {}
    for r in records:
        if r.label:
            out.setdefault(corpus_of(r), set()).add(r.label)
    return out


def check_classes(records: Sequence[ClipRecord], *, where: str) -> None:
    """A class that no training corpus has could never be learnt: an error naming it (and the corpora)."""
    by = classes_by_corpus(records)
    have = set().union(*by.values()) if by else set()
    absent = [c for c in EMOTIONS if c not in have]
    if absent:
        names = ", ".join(sorted(k or "(no corpus)" for k in by)) or "none"
        raise MmferError(f"{where}: class(es) {', '.join(absent)} absent from every training corpus ({names}); "
                         "the model could never learn them: add a corpus that has them to the list")


def class_masks(records: Sequence[ClipRecord]) -> np.ndarray | None:
    """(N, 7) bool: the classes the corpus of each record has (among ``records``), or None when every corpus
    has every class present anywhere in ``records`` (then masking changes nothing)."""
    by = classes_by_corpus(records)
    have = set().union(*by.values()) if by else set()
    if all(v == have for v in by.values()):
        return None
    rows = {}
    for corpus, classes in by.items():
        m = np.zeros(NUM_CLASSES, dtype=bool)
        m[[index_of(c) for c in classes]] = True
        rows[corpus] = m
    full = np.ones(NUM_CLASSES, dtype=bool)
    return np.stack([rows.get(corpus_of(r), full) for r in records]) if records else None


def balanced_weights(records: Sequence[ClipRecord]) -> np.ndarray:
    """Drawing probabilities that give each corpus the same share, and each class the same share within its
    corpus: 1 / (corpora * classes of the corpus * clips of that corpus and class). Sums to 1."""
    if records and not any(corpus_of(r) for r in records):
        log.warning("data.balance corpus_class: no training clip names a corpus (a speech list's corpus column), so "
                    "the draws balance the classes only")
    cells: dict[tuple[str, str | None], int] = {}
    for r in records:
        cells[(corpus_of(r), r.label)] = cells.get((corpus_of(r), r.label), 0) + 1
    per_corpus: dict[str, int] = {}
    for corpus, _ in cells:
        per_corpus[corpus] = per_corpus.get(corpus, 0) + 1
    w = np.array([1.0 / (len(per_corpus) * per_corpus[corpus_of(r)] * cells[(corpus_of(r), r.label)])
                  for r in records], dtype=np.float64)
    return w / w.sum()
