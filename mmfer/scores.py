"""The score CSV that branches, fusion, predict and evaluate all exchange.

Format: ``clip_id,label,Angry,Disgust,Fear,Happy,Neutral,Sad,Surprise`` (class columns in
``EMOTIONS`` order when written), probabilities summing to 1, ``label`` empty when unknown.
Readers map class columns by name, so a file with reordered or extra columns still reads right.

One name, one meaning: ``label`` is always a known truth, never a prediction. ``mmfer predict`` writes its
predicted class in a ``predicted`` column (and a ``label`` column only for a truth it was given).
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from mmfer.data.cache import REFUSED_STARTS
from mmfer.text import safe_text
from mmfer.errors import MmferError, csv_errors
from mmfer.labels import EMOTIONS, canonical

log = logging.getLogger(__name__)

SCORE_COLUMNS: tuple[str, ...] = ("clip_id", "label", *EMOTIONS)


@dataclass
class ScoreTable:
    """Per-clip class probabilities; ``labels[i]`` is ``None`` when the true label is unknown."""

    clip_ids: list[str]
    labels: list[str | None]
    probs: np.ndarray  # (N, 7) float64, columns in EMOTIONS order
    extra: dict[str, list[str]] | None = None  # other columns, by name, as text
    # False when the file had no ``label`` column at all (a predictions file): no truth in it
    has_label_column: bool = True

    def __post_init__(self) -> None:
        self.probs = np.asarray(self.probs, dtype=np.float64)
        n = len(self.clip_ids)
        if self.probs.shape != (n, len(EMOTIONS)):
            raise MmferError(f"scores: expected probabilities of shape ({n}, {len(EMOTIONS)}), got {self.probs.shape}")
        if len(self.labels) != n:
            raise MmferError(f"scores: {len(self.labels)} labels for {n} clips")

    def __len__(self) -> int:
        return len(self.clip_ids)

    @property
    def label_indices(self) -> np.ndarray:
        """True class index per clip, -1 where unknown."""
        return np.array([EMOTIONS.index(l) if l else -1 for l in self.labels], dtype=np.int64)

    @property
    def predictions(self) -> list[str]:
        """Each row's top class; empty where nothing was predicted (an error row's NaN, a uniform row), as the
        ``predicted`` column of ``mmfer predict`` has it."""
        none = ~np.all(np.isfinite(self.probs), axis=1)
        none[~none] = is_uniform(self.probs[~none])
        return ["" if n else EMOTIONS[i] for n, i in zip(none, np.nan_to_num(self.probs).argmax(axis=1))]

    def reindex(self, clip_ids: Sequence[str]) -> "ScoreTable":
        """The rows for ``clip_ids``, in that order; a missing clip is an error naming it."""
        pos = {c: i for i, c in enumerate(self.clip_ids)}
        missing = [c for c in clip_ids if c not in pos]
        if missing:
            raise MmferError(f"scores: no row for clip(s) {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
        idx = [pos[c] for c in clip_ids]
        return ScoreTable(list(clip_ids), [self.labels[i] for i in idx], self.probs[idx])


# A row whose largest and smallest probability differ by no more than this is uniform: no prediction (the model
# or branch saw nothing). Score CSVs hold 6 decimals, so a written row is exactly uniform or at least 1e-6 apart.
UNIFORM_SPREAD = 1e-9


def is_uniform(probs: np.ndarray, axis: int = -1) -> np.ndarray:
    """Whether each row (along ``axis``) is uniform, i.e. no prediction: the one test evaluate, fuse, submit and
    predict share."""
    return np.ptp(np.asarray(probs, dtype=np.float64), axis=axis) <= UNIFORM_SPREAD


def normalise_rows(probs: np.ndarray) -> np.ndarray:
    """Negatives clipped to 0, rows (the last axis) scaled to sum to 1; an all-zero row becomes uniform."""
    probs = np.clip(np.asarray(probs, dtype=np.float64), 0.0, None)
    s = probs.sum(axis=-1, keepdims=True)
    return np.where(s > 0, probs / np.where(s > 0, s, 1.0), 1.0 / probs.shape[-1])


def write_scores(
    path: str | Path,
    clip_ids: Sequence[str],
    labels: Sequence[str | None],
    probs: np.ndarray,
    *,
    extra: dict[str, Sequence[object]] | None = None,
) -> Path:
    """Write a score CSV atomically (temporary file, then rename). ``extra`` columns go after the classes."""
    path = Path(path)
    table = ScoreTable(list(clip_ids), list(labels), normalise_rows(probs))
    extra = extra or {}
    for name, col in extra.items():
        if len(col) != len(table):
            raise MmferError(f"{path}: extra column {name!r} has {len(col)} values for {len(table)} clips")
    path.parent.mkdir(parents=True, exist_ok=True)
    from mmfer.outputs import atomic_write

    with atomic_write(path, "w", newline="", encoding="utf-8") as f:  # never through a link
        w = csv.writer(f)
        w.writerow([*SCORE_COLUMNS, *extra])
        for i, cid in enumerate(table.clip_ids):
            w.writerow(
                [safe_text(cid), table.labels[i] or "", *(f"{p:.6f}" for p in table.probs[i]), *(safe_text(v) if isinstance(v, str) else v for v in (extra[k][i] for k in extra))]
            )
    return path


def read_scores(path: str | Path, *, for_evaluate: bool = False) -> ScoreTable:
    """Read a score CSV, mapping class columns by name; errors name the file, row and problem.

    The ``label`` column may be absent (no truth in the file, as in a predictions CSV of ``mmfer predict``:
    ``has_label_column`` is False). ``for_evaluate`` reads what ``mmfer evaluate`` scores: a row without
    a prediction (empty class scores, or an empty ``predicted`` column: an unreadable input, or neither face
    nor sound) gets NaN probabilities and counts as wrong, and a clip id may repeat where a ``path`` column
    tells the rows apart (files of the same name in different folders).
    """
    path = Path(path)
    if path.is_dir():
        if (path / "weights.json").is_file():  # a fusion's folder: its files are the CSVs
            raise MmferError(f"{path}: a folder of `mmfer fuse`, not a score CSV: evaluate {path / 'fused_Val_cv.csv'} "
                             f"(the cross-validated Val scores, the figure to report) or {path / 'fused_Test.csv'}")
        if (path / "scores_Val.csv").is_file():  # a run's folder
            raise MmferError(f"{path}: a run folder, not a score CSV: evaluate {path / 'scores_Val.csv'}")
        raise MmferError(f"{path}: a folder, not a score or predictions CSV (for a folder of videos, images or sound, "
                         f"run `mmfer predict {path} --out p.csv` first and evaluate p.csv)")
    if not path.is_file():
        raise MmferError(f"{path}: score file not found")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f, csv_errors(path):  # a spreadsheet's BOM is read past
            return _read_score_rows(path, f, for_evaluate=for_evaluate)
    except UnicodeDecodeError as e:
        raise MmferError(f"{path}: not UTF-8 text (byte {e.start}: {e.object[e.start:e.start + 1]!r}); "
                         "save the file as UTF-8 (CSV UTF-8 in a spreadsheet)") from None


def _read_score_rows(path: Path, f, *, for_evaluate: bool = False) -> ScoreTable:
    reader = csv.DictReader(f)
    header = reader.fieldnames or []
    kind = ("segments" if {"start", "end"} <= set(header) else
            "frames" if {"modality", "time"} <= set(header) or {"source", "time"} <= set(header) else None)
    if kind:  # several rows per file: read as scores, its second row of a file would be "clip appears twice"
        raise MmferError(f"{path}: a {kind} CSV of `mmfer predict` (rows within each file); score files and "
                         "evaluate take the predictions CSV (`--out`), one row per file")
    has_label = "label" in header
    missing = [c for c in SCORE_COLUMNS if c not in header and c != "label"]  # no label column: no truth known
    if missing:
        raise MmferError(
            f"{path}: not a score CSV: missing column(s) {', '.join(missing)} "
            f"(expected {','.join(SCORE_COLUMNS)}){_header_hint(header)}"
        )
    others = [c for c in header if c not in SCORE_COLUMNS]
    _warn_class_like_columns(path, others)
    clip_ids: list[str] = []
    labels: list[str | None] = []
    rows: list[list[float]] = []
    extra: dict[str, list[str]] = {c: [] for c in others}
    seen: set[str] = set()
    unseen: list[str] = []  # predict's error rows, read as uniform outside evaluate
    by_path = for_evaluate and "path" in header
    sums: list[float] = []  # each scored row's sum, before it is scaled to 1
    for line_no, row in enumerate(reader, start=2):
        if None in row:  # more cells than the header has names: a shifted row would be read wrong
            raise MmferError(f"{path}:{line_no}: {len(header) + len(row[None])} cells for {len(header)} columns in "
                             "the header; each row has one cell per column")
        cid = (row["clip_id"] or "").strip()
        if not cid:
            raise MmferError(f"{path}:{line_no}: empty clip_id")
        if cid.startswith(REFUSED_STARTS):  # it would go on into fused CSVs and submissions as it is
            raise MmferError(f"{path}:{line_no}: clip id {cid!r} starts with {cid[0]!r} (a spreadsheet opening this "
                             "or a CSV made from it would run it as a formula); rename it")
        key = (cid, (row.get("path") or "").strip()) if by_path else cid
        if key in seen:
            raise MmferError(f"{path}:{line_no}: clip {cid!r} appears twice"
                             + (f" with the same path {key[1]!r}" if by_path else ""))
        seen.add(key)
        raw_label = (row["label"] or "").strip() if has_label else ""
        try:
            label = canonical(raw_label) if raw_label else None
        except MmferError as e:
            raise MmferError(f"{path}:{line_no}: {e}") from None
        cells = [(row[e] or "").strip() for e in EMOTIONS]
        no_prediction = for_evaluate and (not any(cells) or ("predicted" in header and not (row["predicted"] or "").strip()))
        if no_prediction:  # an error row or a row where nothing was seen: counted wrong, never as a class
            values = [float("nan")] * len(EMOTIONS)
        elif "predicted" in header and not any(cells):  # predict's error row, in fusion: no information, as a
            values = [1.0] * len(EMOTIONS)  # branch scores a clip it cannot see (uniform)
            unseen.append(cid)
        else:
            try:
                values = [float(c) for c in cells]
            except (TypeError, ValueError):
                raise MmferError(f"{path}:{line_no}: class scores must be numbers, got {cells}") from None
            if not np.all(np.isfinite(values)) or min(values) < 0:
                raise MmferError(f"{path}:{line_no}: class scores must be finite and non-negative, got {values} "
                                 "(probabilities; logits go through a softmax first)")
            sums.append(float(sum(values)))
        clip_ids.append(cid)
        labels.append(label)
        rows.append(values)
        for c in others:
            extra[c].append(row[c])
    if unseen:
        log.warning("%s: %d error row(s) of `mmfer predict` (no prediction; e.g. %s) read as uniform scores, as a "
                    "branch scores a clip it cannot see", path, len(unseen), ", ".join(unseen[:3]))
    _warn_unnormalised(path, np.asarray(sums))
    probs = np.array(rows, dtype=np.float64).reshape(-1, len(EMOTIONS))
    none = ~np.all(np.isfinite(probs), axis=1)
    probs = normalise_rows(np.where(none[:, None], 0.0, probs))
    probs[none] = np.nan
    return ScoreTable(clip_ids, labels, probs, extra or None, has_label_column=has_label)


def _header_hint(header: Sequence[str]) -> str:
    """Why a header lacks the columns, where it can be told: another separator, class names spelt otherwise,
    spaces around names."""
    if len(header) == 1 and any(sep in header[0] for sep in (";", "\t", "|")):
        sep = next(sep for sep in (";", "\t", "|") if sep in header[0])
        return f"; the header reads as one column {header[0][:60]!r}: its separator is {sep!r}, a score CSV's is ','"
    hints = []
    for c in header:
        for want in ("clip_id", "label", *EMOTIONS):
            if c != want and c.strip().casefold() == want.casefold():
                hints.append(f"{c!r} for {want!r}")
    return f"; write {', '.join(hints[:4])} (column names are matched exactly)" if hints else ""


def _warn_class_like_columns(path: Path, others: Sequence[str]) -> None:
    """A column named after an emotion outside the seven (Contempt, Calm) is left out of the scores, and its
    rows' other seven renormalised: said, since a clip it predicts is then read as another class."""
    from mmfer.labels import OUT_OF_SET

    named = [c for c in others if c.strip().casefold() in OUT_OF_SET]
    if named:
        log.warning("%s: column(s) %s are emotions outside the seven and are left out; each row's seven scores are "
                    "scaled to sum to 1 without them", path, ", ".join(named))


def _warn_unnormalised(path: Path, sums: np.ndarray) -> None:
    """Rows whose scores do not sum to 1 are scaled to; said where that may change a branch's weight in
    fusion (logits, or scores of mixed scales), not for percentages."""
    if not len(sums) or np.allclose(sums, 1.0, atol=0.01) or np.allclose(sums, 100.0, atol=1.0):
        return
    log.warning("%s: the class scores of %d row(s) do not sum to 1 (sums %.3g to %.3g): each row is scaled to "
                "sum to 1; if they are logits, pass them through a softmax first, or in fusion their branch's vote "
                "is flattened", path, int(np.sum(~np.isclose(sums, 1.0, atol=0.01))), sums.min(), sums.max())


def uniform_scores(n: int) -> np.ndarray:
    """Scores for clips a branch could not see (e.g. failed preprocessing): no preference."""
    return np.full((n, len(EMOTIONS)), 1.0 / len(EMOTIONS))
