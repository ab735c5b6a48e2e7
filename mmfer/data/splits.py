"""How clips are divided for training and validation: the held-out part of Train when a source has no Val
split (``holdout_split``), and the speaker-disjoint or leave-one-corpus-out folds of ``mmfer train --folds``
(``speaker_folds``, ``corpus_folds``, ``fold_records``). Pure functions of the clip records and a seed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mmfer.data.cache import ClipRecord
from mmfer.errors import MmferError


def holdout_seed(config: Any) -> int:
    """The held-out draw's seed (``config`` a TrainConfig): data.holdout_seed where set (ensemble members share it), else the run's seed."""
    return config.seed if config.data.holdout_seed is None else config.data.holdout_seed


def holdout_split(records: list[ClipRecord], *, fraction: float, seed: int,
                  by_speaker: bool = True) -> tuple[list[ClipRecord], list[ClipRecord]]:
    """Seeded split of Train into (train, held-out) when the data has no Val split. Where every clip names its
    speaker (a speech list, RAVDESS or CREMA-D names) whole speakers are held out, about ``fraction`` of the
    clips, so the figure is of voices never heard (a clip split put every held-out speaker in training too);
    otherwise, or with ``by_speaker=False`` (the rule of runs trained before 2026-12-05's evening), a split
    stratified by class (FER2013's faces, caches of clips whose names say no speaker)."""
    rng = np.random.default_rng(seed)
    speakers = [speaker_of(r) for r in records] if by_speaker else []
    names = sorted(set(speakers)) if speakers and all(speakers) else []
    if len(names) >= 2:
        held_names: set[str] = set()
        count = {n: speakers.count(n) for n in names}
        for name in rng.permutation(names).tolist():
            if held_names and sum(count[h] for h in held_names) >= fraction * len(records):
                break
            if len(held_names) == len(names) - 1:  # at least one speaker trains
                break
            held_names.add(name)
        return ([r for r, sp in zip(records, speakers) if sp not in held_names],
                [r for r, sp in zip(records, speakers) if sp in held_names])
    by_label: dict[str | None, list[int]] = {}
    for i, r in enumerate(records):
        by_label.setdefault(r.label, []).append(i)
    held: set[int] = set()
    for label in sorted(by_label, key=str):
        idx = by_label[label]
        if label is None or len(idx) < 2:
            continue
        n = max(1, int(round(fraction * len(idx))))
        held.update(rng.permutation(idx)[:n].tolist())
    return [r for i, r in enumerate(records) if i not in held], [r for i, r in enumerate(records) if i in held]


FER2013_HELDOUT = {"fraction": 0.1, "seed": 0}  # the shipped FER2013 models' draw (data.holdout_fraction, data.holdout_seed)


def fer2013_heldout(root: str | Path) -> list[ClipRecord]:
    """The faces of a FER2013 folder's Train that every shipped face model held out (a stratified, seeded 10%):
    the photos the tools measure held-out figures on, never trained on."""
    from mmfer.data.sources import media_folder_records

    return holdout_split(media_folder_records(root, "Train", "face_image"), **FER2013_HELDOUT)[1]


def speaker_of(record: ClipRecord) -> str | None:
    """The speaker of a clip: a speech list's ``speaker`` column (with its corpus in front when the name does
    not carry it), else read from a RAVDESS or CREMA-D file name (clip id or path); None if neither."""
    from mmfer.labels import cremad_actor, ravdess_actor

    speaker = getattr(record, "speaker", "")
    if speaker:
        corpus = getattr(record, "corpus", "")
        return speaker if not corpus or speaker.startswith(corpus) else f"{corpus}:{speaker}"

    for name in (Path(record.clip_id).name, Path(record.path or "").stem):
        for parse, corpus in ((ravdess_actor, "ravdess"), (cremad_actor, "cremad")):
            try:
                return f"{corpus}:{parse(name)}"
            except MmferError:
                continue
    return None


def speaker_folds(records: list[ClipRecord], k: int) -> list[list[str]]:
    """Speakers dealt to k folds in sorted order (fold i gets speakers i, i+k, ...): deterministic, and each
    fold holds about the same number of speakers. Every record needs a speaker."""
    if k < 2:
        raise MmferError(f"--folds must be at least 2, got {k}")
    if not records:  # said as such, not as "only 0 speaker (none)"
        raise MmferError(f"--folds {k}: no clips to deal to folds (the data's Train and Val splits hold none "
                         "of this input kind); check --data")
    # a clip preprocess could not read (or whose source is gone) is in no fold's data: it needs no speaker
    unknown = [r.clip_id for r in records if speaker_of(r) is None and getattr(r, "status", "ok") == "ok"]
    if unknown:
        raise MmferError(
            f"--folds needs the speaker of every clip, from a CSV list's speaker column or RAVDESS or CREMA-D "
            f"file names; {len(unknown)} "
            f"clip(s) have none (e.g. {', '.join(unknown[:3])})")
    records = [r for r in records if speaker_of(r) is not None]
    speakers = sorted({speaker_of(r) for r in records})
    if len(speakers) < 2:  # one speaker cannot be held out from itself: no --folds fits
        raise MmferError(f"--folds {k}: only {len(speakers)} speaker ({', '.join(speakers) or 'none'}); speaker "
                         "folds need at least 2 speakers")
    if len(speakers) < k:
        raise MmferError(f"--folds {k}: only {len(speakers)} speakers ({', '.join(speakers)}); use at most that many folds")
    return [speakers[i::k] for i in range(k)]


def corpus_folds(records: list[ClipRecord]) -> list[list[str]]:
    """Leave-one-corpus-out (``--folds corpus``): one fold per corpus of a speech list, in sorted order."""
    unknown = [r.clip_id for r in records if not getattr(r, "corpus", "")]
    if unknown:
        raise MmferError(f"--folds corpus needs a CSV list with a corpus column filled for every clip; {len(unknown)} "
                         f"clip(s) have none (e.g. {', '.join(unknown[:3])})")
    corpora = sorted({r.corpus for r in records})  # type: ignore[attr-defined]
    if len(corpora) < 2:
        raise MmferError(f"--folds corpus: only one corpus ({', '.join(corpora)}); leave-one-corpus-out needs two or more")
    return [[c] for c in corpora]


def corpus_records(records: list[ClipRecord], corpus: str) -> list[ClipRecord]:
    """The clips of one corpus of a speech list (``--folds K --folds-within CORPUS`` deals only its speakers to
    the folds; the other corpora's clips join every fold's training)."""
    named = sorted({getattr(r, "corpus", "") for r in records} - {""})
    if not named:
        raise MmferError(f"--folds-within {corpus}: needs a CSV list with a corpus column; these clips have none")
    spelt = [n for n in named if n.casefold() == corpus.strip().casefold()]  # as the list matches corpus names
    if not spelt:
        raise MmferError(f"--folds-within {corpus!r}: no such corpus in the list; it has {', '.join(named)}")
    if len(named) < 2:
        raise MmferError(f"--folds-within {corpus}: the list holds no other corpus to train on beside it; "
                         "leave out --folds-within")
    return [r for r in records if getattr(r, "corpus", "") == spelt[0]]


def fold_records(records: list[ClipRecord], folds: list[list[str]], index: int, *,
                 by: str = "speaker") -> tuple[list[ClipRecord], list[ClipRecord]]:
    """(train, val) of fold ``index``: val holds that fold's speakers (or corpora), train everyone else. Clips
    preprocess could not read (no speaker needed, see ``speaker_folds``) are in neither."""
    records = [r for r in records if getattr(r, "status", "ok") == "ok"]
    held = set(folds[index])
    key = (lambda r: getattr(r, "corpus", "")) if by == "corpus" else speaker_of
    return [r for r in records if key(r) not in held], [r for r in records if key(r) in held]


def labels_digest(records: list[ClipRecord]) -> str:
    """A short digest of which clips carry which label: a fold's fold.json keeps it, so a list whose labels were
    corrected since a fold trained (same speakers, same counts) is not summarised with that fold's old scores."""
    import hashlib

    text = "\n".join(sorted(f"{r.split}/{r.clip_id}\t{r.label or ''}" for r in records))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def parse_folds(value: str | int) -> int | str:
    """``--folds`` K (an integer of at least 2) or ``corpus``."""
    if isinstance(value, int) or str(value).strip().isdigit():
        return int(value)
    if str(value).strip().lower() == "corpus":
        return "corpus"
    raise MmferError(f"--folds {value!r}: expected a number of speaker-disjoint folds (e.g. 5) or 'corpus'")
