"""What predict writes: the predictions CSV, the EmotiW zip, timeline plots, the HTML report and the per-frame
CSV, each from ``Prediction`` rows."""

from __future__ import annotations

import csv
import logging
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mmfer.data.cache import ClipRecord
from mmfer.text import fs_name, safe_text
from mmfer.errors import MmferError
from mmfer.inference.predictor import check_unique_ids
from mmfer.inference.result import PREDICTION_COLUMNS, Prediction
from mmfer.labels import EMOTIONS, NUM_CLASSES
from mmfer.outputs import CsvStream, atomic_write, read_csv_table

log = logging.getLogger(__name__)


def write_predictions(path: str | Path, predictions: Sequence[Prediction],
                      truths: Sequence[str | None] | None = None) -> Path:
    """The predictions CSV (``PREDICTION_COLUMNS``), written to a temporary file and renamed. With ``truths``
    (known true labels, one per prediction; by default the predictions' own ``truth`` where any has one), a
    ``label`` column of them follows ``predicted``."""
    path = Path(path)
    if truths is None and any(p.truth for p in predictions):
        truths = [p.truth for p in predictions]
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(PREDICTION_COLUMNS)
    if truths is not None:
        columns.insert(columns.index("predicted") + 1, "label")
    with atomic_write(path, "w", newline="", encoding="utf-8") as f:  # never through a link
        w = csv.writer(f)
        w.writerow(columns)
        for i, p in enumerate(predictions):
            w.writerow(p.csv_row(truths[i] if truths is not None else None, with_truth=truths is not None))
    return path


def read_predictions(path: str | Path) -> list[dict[str, str]]:
    """Rows of a predictions CSV as dicts of text (columns by name)."""
    def older_format(missing: list[str], fields: list[str]) -> str | None:
        if missing == ["predicted"] and "label" in fields:
            return ("written by an older mmfer predict, whose label column is the predicted class; rename that "
                    "column to predicted (label now only ever holds a known truth)")
        return None

    return read_csv_table(path, PREDICTION_COLUMNS, kind="predictions", explain_missing=older_format)


def write_prediction_submission(predictions: Sequence[Prediction], out: str | Path | None = None, *,
                                out_zip: str | Path | None = None) -> dict[str, Any]:
    """An EmotiW zip ``out`` with one ``<clip_id>.txt`` per input, through ``mmfer.submission.write_submission``
    (``out_zip``: the old name of ``out``, as for ``write_submission``).

    Inputs that could not be read, and uniform rows (neither face nor audio), get write_submission's
    ``prior`` fallback: the most likely class of the mean probabilities over the predicted inputs.
    """
    from mmfer.data.cache import append_manifest
    from mmfer.scores import write_scores
    from mmfer.submission import write_submission

    from mmfer.compat import renamed_argument

    out = renamed_argument(out, out_zip, function="write_prediction_submission", new="out", old="out_zip",
                           option="--submission")
    if out is None:
        raise MmferError("write_prediction_submission: give out, the zip to write (--submission on the command line)")
    check_unique_ids([(Path(p.path), p.kind) for p in predictions])
    ok = [p for p in predictions if p.ok]
    if not ok:
        raise MmferError("--submission: no input could be predicted, so there is nothing to submit")
    with tempfile.TemporaryDirectory(prefix="mmfer-submit-") as tmp:
        scores = write_scores(Path(tmp) / "predicted_Test.csv", [p.clip_id for p in ok], [None] * len(ok),
                              np.stack([p.probs for p in ok]))
        for p in predictions:  # the index of test clips: a manifest, where failed inputs carry their reason
            append_manifest(tmp, ClipRecord(clip_id=p.clip_id, split="Test", label=None, path=p.path,
                                            status="ok" if p.ok else "failed", reason=p.warning))
        return write_submission(scores, index=tmp, out=out, fill_missing="prior")


def _timeline_args(pred: Prediction) -> tuple[dict[str, Any], str]:
    """plot_timeline's arrays and title for a video prediction made with ``timeline=True``."""
    tl = dict(pred.timeline or {})  # (no face in any frame: the face panel says so, see plot_timeline)
    keys = ("frame_times", "frame_probs", "audio_times", "audio_probs")
    title = f"{pred.clip_id}: {pred.predicted or 'no prediction'} ({pred.modalities or 'nothing seen'})"
    arrays = {k: tl[k] for k in keys if k in tl}
    if pred.segments:  # a long video is drawn by segment (see plot_timeline)
        arrays["segment_bounds"] = np.array([(s.start, s.end) for s in pred.segments])
        arrays["segment_probs"] = np.stack([s.probs for s in pred.segments])
        arrays["segment_face"] = np.array([np.nan if s.face_ratio is None else s.face_ratio for s in pred.segments])
    return arrays, title


# A clip id is at most 200 bytes; a plot's name beside it (the file's own name) must leave room for ".png" and
# the temporary name it is written under within the 255 bytes most file systems allow.
PLOT_NAME_MAX_BYTES = 200


def _plot(pred: Prediction, plots: Path, used: set[str]) -> Path:
    from mmfer.plots import plot_timeline

    def taken(n: str) -> bool:  # where file names ignore case (macOS, Windows), Long.png is long.png
        return n in used or n.casefold() in used

    name, k = pred.clip_id, 1
    by_file = safe_text(Path(pred.path).name)
    if taken(name) and len(by_file.encode()) <= PLOT_NAME_MAX_BYTES:  # long.mp4 beside long.mkv: long.mkv.png,
        name = by_file  # which says which file it is (a name too long for the disk gets a number instead)
    base = name
    while taken(name):
        k += 1
        name = f"{base}_{k}"
    used.update((name, name.casefold()))
    arrays, title = _timeline_args(pred)
    return plot_timeline(plots / fs_name(f"{name}.png"), **arrays, title=title)


def truths_from_paths(predictions: Sequence[Prediction], labels_from: str, *, warn: bool = False) -> list[str | None]:
    """The true label of each input from its path (``labels_from``: folder, ravdess, cremad); None where the
    source cannot read the name, or the emotion is outside the seven. ``warn``: say how many names could not
    be read, with an example (a misspelt folder such as ``Nuetral`` would otherwise just leave rows unlabelled)."""
    from mmfer.data.index import file_label

    unreadable: list[str] = []

    def truth(path: str) -> str | None:
        try:
            return file_label(path, labels_from)[1]
        except MmferError as e:  # a name the label source cannot read: unlabelled
            unreadable.append(str(e))
            return None

    out = [truth(p.path) for p in predictions]
    if warn and unreadable:
        log.warning("--labels-from %s: %d file(s) give no label (their label column is empty; evaluate excludes "
                    "them), e.g. %s", labels_from, len(unreadable), unreadable[0])
    return out


def write_prediction_report(out: str | Path, predictions: Sequence[Prediction], *,
                            timelines: dict[str, str] | None = None, model: str = "", labels_from: str | None = None,
                            segments: dict[str, list[dict[str, Any]]] | None = None,
                            timelines_left_out: int = 0) -> Path:
    """``--report``: the HTML page of ``mmfer.report`` for predictions; with ``labels_from`` (folder,
    ravdess, cremad) the true labels come from each file's path (by default, the predictions' own ``truth``
    where any has one) and the page shows the metrics. ``timelines_left_out``: videos past the page's cap on
    timelines, said in its note."""
    from mmfer.metrics import evaluate
    from mmfer.report import write_report

    labelled = bool(labels_from) or any(p.truth for p in predictions)
    truths = truths_from_paths(predictions, labels_from) if labels_from else [p.truth for p in predictions]
    metrics = None
    if labelled and any(truths):
        probs = np.stack([p.probs if p.ok else np.full(NUM_CLASSES, np.nan) for p in predictions])
        metrics = evaluate(truths, probs, clip_ids=[p.clip_id for p in predictions])
    rows = [{"clip_id": p.clip_id, "path": safe_text(p.path), "kind": p.kind, "predicted": p.predicted, "truth": t,
             "confidence": float(np.max(p.probs)) if p.ok and p.predicted else None, "modalities": p.modalities,
             "warning": safe_text(p.warning), "error": not p.ok} for p, t in zip(predictions, truths)]
    if not labelled:
        for r in rows:
            r.pop("truth")
    note = f"Model: {model}." if model else ""
    if timelines_left_out:
        note += (f" Timelines of the first {len(timelines or {})} videos; {timelines_left_out} more are in the table "
                 "without one (--plots draws every video's).")
    return write_report(out, rows, title="mmfer predictions", metrics=metrics, timelines=timelines,
                        segments=segments, note=note.strip())


# ---------------------------------------------------------------- per-frame output
FRAME_COLUMNS: tuple[str, ...] = ("path", "clip_id", "modality", "time", "face", "track", "x0", "y0", "x1", "y1",
                                  *EMOTIONS)


def frame_rows(pred: Prediction) -> list[dict[str, Any]]:
    """One row per analysed video frame (``modality`` "face": time in s, whether a face was found, the track id
    of the face followed (see ``FaceTrack.track``), its box in pixels of the frame, the face models' 7
    probabilities, NaN without a face) and one per audio window
    (``modality`` "audio": the window's centre time and the audio branches' fused probabilities). Needs a prediction
    made with ``timeline=True``."""
    if pred.timeline is None and pred.ok and pred.kind in ("video", "audio"):  # [] would read as "no frames"
        raise MmferError(f"{pred.path}: frame rows need a prediction made with timeline=True "
                         "(predict_file(path, timeline=True), or predict(..., frames=CSV))")
    tl = pred.timeline or {}
    rows: list[dict[str, Any]] = []
    base = {"path": pred.path, "clip_id": pred.clip_id}
    if "frame_times" in tl:
        tracks = tl.get("frame_track", np.asarray(tl["frame_face"], np.int32))
        for t, face, track, box, p in zip(tl["frame_times"], tl["frame_face"], tracks, tl["frame_boxes"],
                                          tl["frame_probs"]):
            rows.append({**base, "modality": "face", "time": float(t), "face": bool(face),
                         "track": int(track) if track > 0 else None,
                         **dict(zip(("x0", "y0", "x1", "y1"), (float(v) for v in box))),
                         **dict(zip(EMOTIONS, (float(v) for v in p)))})
    if "audio_times" in tl:
        for t, p in zip(tl["audio_times"], tl["audio_probs"]):
            rows.append({**base, "modality": "audio", "time": float(t), "face": None, "track": None,
                         **dict.fromkeys(("x0", "y0", "x1", "y1"), float("nan")),
                         **dict(zip(EMOTIONS, (float(v) for v in p)))})
    return rows


def frames_dataframe(rows: Sequence[dict[str, Any]]):
    """``frame_rows`` as a pandas DataFrame (pandas is not a dependency of mmfer: install it to use this)."""
    try:
        import pandas as pd
    except ImportError:
        raise MmferError("frames_dataframe needs pandas (pip install pandas); frame_rows gives plain dicts") from None
    return pd.DataFrame(list(rows), columns=list(FRAME_COLUMNS))


class FrameWriter(CsvStream):
    """Appends ``frame_rows`` to a CSV as predictions come, so memory stays flat over many files."""

    def __init__(self, path: str | Path):
        super().__init__(path, FRAME_COLUMNS)

    def add(self, pred: Prediction) -> None:
        for r in frame_rows(pred):
            self.writerow(["" if v is None or (isinstance(v, float) and np.isnan(v)) else
                           (f"{v:.6f}" if isinstance(v, float) else int(v) if isinstance(v, bool) else
                            safe_text(v) if isinstance(v, str) else v)
                           for v in (r[c] for c in FRAME_COLUMNS)])

    end_file = CsvStream.commit  # the rows so far are whole files: an interruption keeps them
