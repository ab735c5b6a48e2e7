"""What ``predict`` returns: one input's row (``Prediction``) and a whole run's (``PredictResult``), with the
columns of the predictions CSV. Plain data with views of it (a table, dicts for a DataFrame, a JSON summary);
the predictor (``mmfer.inference.predictor``) makes them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmfer.text import safe_text, terminal_text
from mmfer.inference.segments import Segment
from mmfer.labels import EMOTIONS, NUM_CLASSES
from mmfer.scores import is_uniform

# ``predicted`` is the predicted class; ``label`` is only ever a known truth (written after ``predicted`` when
# ``labels_from`` gives one), as in every score CSV: one column name, one meaning.
PREDICTION_COLUMNS: tuple[str, ...] = ("path", "clip_id", "predicted", *EMOTIONS, "face_ratio", "modalities", "warning")


@dataclass
class Prediction:
    """One input's row: fused probabilities (None for an error row), what was used, and why not the rest."""

    path: str
    clip_id: str
    kind: str  # video | image | audio | error
    probs: np.ndarray | None = None
    face_ratio: float | None = None
    modalities: str = ""
    warning: str = ""
    seconds: float = 0.0
    branches: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # each branch's own probabilities
    timeline: dict[str, np.ndarray] | None = field(default=None, repr=False)  # for --plots (videos)
    segments: list[Segment] | None = field(default=None, repr=False)  # videos and sound files, in time order
    # seconds in each stage of a streamed analysis (decode, detect, landmarks, face_model, audio) and the
    # seconds of the file analysed, for ``mmfer bench``
    stages: dict[str, float] = field(default_factory=dict, repr=False)
    truth: str | None = None  # the true class, where ``predict(labels_from=...)`` read one from the path

    @property
    def ok(self) -> bool:
        return self.probs is not None

    @property
    def predicted(self) -> str:
        """The top class; empty for error rows and for uniform rows (nothing was seen, so nothing is predicted)."""
        if self.probs is None or is_uniform(self.probs):
            return ""
        return EMOTIONS[int(np.argmax(self.probs))]

    @property
    def label(self) -> str:
        """Gone: it was the predicted class, while ``label`` is a true class everywhere else (every CSV), so code
        that compared it with a truth measured nothing. A clear error, not a quiet answer of the other meaning."""
        raise AttributeError("Prediction.label was the prediction's old name and is gone: the predicted class is "
                             "Prediction.predicted, the true one (with predict(labels_from=...)) Prediction.truth")

    def csv_row(self, truth: str | None = None, *, with_truth: bool = False) -> list[str]:
        probs = [f"{p:.6f}" for p in self.probs] if self.probs is not None else [""] * NUM_CLASSES
        ratio = "" if self.face_ratio is None else f"{self.face_ratio:.3f}"
        known = [truth or ""] if with_truth else []
        return [safe_text(self.path), self.clip_id, self.predicted, *known, *probs, ratio, self.modalities,
                safe_text(self.warning)]


@dataclass
class PredictResult:
    """What ``predict`` did: one :class:`Prediction` per input, in input order, and the files it wrote."""

    predictions: list[Prediction]
    model: str
    load_seconds: float
    out: Path | None = None
    plots: list[Path] = field(default_factory=list)
    submission: dict[str, Any] | None = None
    frames: Path | None = None
    report: Path | None = None
    segments: Path | None = None

    @property
    def errors(self) -> list[Prediction]:
        return [p for p in self.predictions if not p.ok]

    @property
    def classes(self) -> tuple[str, ...]:
        """The class order of ``probs`` (and of every probability in mmfer)."""
        return tuple(EMOTIONS)

    @property
    def labels(self) -> tuple[str, ...]:
        """Gone: it was the class order, while ``labels`` are true classes everywhere else (``ScoreTable.labels``,
        every CSV's ``label`` column). A clear error, not a quiet answer of the other meaning."""
        raise AttributeError("PredictResult.labels was the class order and is gone: the class order is "
                             "PredictResult.classes, the true classes (with predict(labels_from=...)) "
                             "PredictResult.truths")

    @property
    def truths(self) -> list[str | None]:
        """Each input's true class where ``predict(labels_from=...)`` read one from its path, else None."""
        return [p.truth for p in self.predictions]

    @property
    def probs(self) -> np.ndarray:
        """(inputs, classes) fused probabilities in input order, columns in ``classes`` order; NaN rows for
        errors."""
        return np.stack([p.probs if p.ok else np.full(NUM_CLASSES, np.nan) for p in self.predictions]) \
            if self.predictions else np.zeros((0, NUM_CLASSES))

    def rows(self) -> list[dict[str, Any]]:
        """One dict per input with the columns of the predictions CSV (``PREDICTION_COLUMNS``, and ``label`` where a
        truth is known), numbers as numbers (None where empty): ``pandas.DataFrame(result.rows())``."""
        with_truth = any(p.truth for p in self.predictions)
        out = []
        for p in self.predictions:
            row: dict[str, Any] = {"path": p.path, "clip_id": p.clip_id, "predicted": p.predicted}
            if with_truth:
                row["label"] = p.truth
            row.update({c: (float(v) if p.probs is not None else None)
                        for c, v in zip(EMOTIONS, p.probs if p.probs is not None else [None] * NUM_CLASSES)})
            row.update(face_ratio=p.face_ratio, modalities=p.modalities, warning=p.warning)
            out.append(row)
        return out

    def summary(self) -> dict[str, Any]:
        """Counts, the error rows and the files written, in plain types (``predict --json``); ``ok`` is False
        where any input got an error row."""
        n, bad = len(self.predictions), len(self.errors)
        named = sum(1 for p in self.predictions if p.ok and p.predicted)
        return {"ok": not bad, "inputs": n, "predicted": named, "without_prediction": n - bad - named,
                "errors": bad, "error_rows": [{"path": safe_text(p.path), "warning": safe_text(p.warning)}
                                              for p in self.errors],
                "model": self.model, "load_seconds": self.load_seconds,
                **{k: (str(v) if v is not None else None) for k in ("out", "frames", "segments", "report")
                   for v in [getattr(self, k)]},
                "plots": [str(p) for p in self.plots], "submission": self.submission}

    def __repr__(self) -> str:  # the dataclass's would print every row with its arrays
        n, bad = len(self.predictions), len(self.errors)
        wrote = [f"{k}={str(v)!r}" for k in ("out", "frames", "segments", "report") if (v := getattr(self, k))]
        return (f"PredictResult({n} input(s), {n - bad} analysed, {bad} error(s), model={self.model!r}"
                + "".join(f", {w}" for w in wrote) + ")")

    def __str__(self) -> str:
        return self.table()

    def table(self, *, width: int = 60) -> str:
        """A readable table: clip id (the path where two inputs share one), predicted, confidence (the top probability), modalities,
        warning; then a summary line."""
        ids = [p.clip_id for p in self.predictions]
        by_path = len(set(ids)) < len(ids)  # long.mp4 beside long.mkv: the paths tell them apart
        rows = [("path" if by_path else "clip_id", "predicted", "confidence", "modalities", "warning")]
        for p in self.predictions:
            top = f"{float(np.max(p.probs)):.2f}" if p.ok else ""
            warning = terminal_text(p.warning, newlines=False)
            warn = warning if len(warning) <= width else warning[: width - 3] + "..."
            rows.append((terminal_text(p.path, newlines=False) if by_path else p.clip_id, p.predicted or ("error" if not p.ok else "-"),
                         top, p.modalities, warn))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4] for r in rows]
        lines = [ln.rstrip() for ln in lines]
        counts = self.summary()
        n, named, bad = counts["inputs"], counts["predicted"], counts["errors"]
        blank = counts["without_prediction"]  # read but nothing to go on (silence, no face): no class named
        done = [f"{n} input(s): {named} predicted, " + (f"{blank} without a prediction, " if blank else "")
                + f"{bad} error(s)"]
        wrote = (("wrote {}", self.out), ("{} plot(s)", len(self.plots)),
                 ("submission {}", self.submission and self.submission["zip"]), ("per-frame rows in {}", self.frames),
                 ("segments in {}", self.segments), ("report {}", self.report))
        done += [text.format(value) for text, value in wrote if value]
        return "\n".join([*lines, "; ".join(done)])
