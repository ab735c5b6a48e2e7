"""Accuracy, mean class accuracy (UAR), per-class recall, macro-F1 and the confusion matrix.

EmotiW ranks by overall accuracy, but AFEW is imbalanced (Neutral/Angry/Happy dominate), so the
mean class accuracy tells whether a model does more than guess the big classes. Clips without a
prediction count as wrong (a submission must cover every clip) and are never taken for a class: a row
of NaN, or of uniform probabilities (nothing was seen: no face and no sound, a branch that could not see
the clip), is "no prediction", a column of its own in the confusion matrix. Clips whose true label is
outside the seven classes (RAVDESS calm) cannot be scored at all and are excluded, but counted.
"""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from mmfer.data.index import loosely_matched
from mmfer.errors import MmferError, csv_errors
from mmfer.labels import EMOTIONS, NUM_CLASSES, canonical
from mmfer.scores import ScoreTable, is_uniform, read_scores
from mmfer.text import terminal_text

log = logging.getLogger(__name__)

LABEL_SOURCES: tuple[str, ...] = ("csv-column", "folder", "ravdess", "cremad")


def _class_index(value: Any, *, where: str) -> int | None:
    """Class index of a label given as a name or an index; ``None`` for unknown / out-of-set."""
    if value is None:
        return None
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        if value < 0:
            return None
        if value >= NUM_CLASSES:
            raise MmferError(f"{where}: class index {value} outside 0..{NUM_CLASSES - 1}")
        return int(value)
    text = str(value).strip()
    if not text:
        return None
    label = canonical(text)
    return None if label is None else EMOTIONS.index(label)


def evaluate(
    labels: Sequence[Any],
    predictions: Sequence[Any] | np.ndarray,
    *,
    clip_ids: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Metrics of ``predictions`` against ``labels``.

    ``labels``: label names or class indices; ``None``/empty/-1 or an out-of-set name excludes the
    clip. ``predictions``: an (N, 7) probability array (a row of NaN = no prediction), or names /
    indices with ``None`` for no prediction. Missing predictions count as wrong and are listed by
    clip id (or position). UAR is the mean recall over classes present in the truth (as
    ``sklearn.metrics.balanced_accuracy_score``); macro-F1 averages over classes in truth or
    predictions (as ``f1_score(average="macro")``).
    """
    n_all = len(labels)
    if clip_ids is None:
        clip_ids = [str(i) for i in range(n_all)]
    if len(clip_ids) != n_all:
        raise MmferError(f"evaluate: {len(clip_ids)} clip ids for {n_all} labels")
    if isinstance(predictions, np.ndarray) and predictions.ndim == 2:
        if predictions.shape != (n_all, NUM_CLASSES):
            raise MmferError(f"evaluate: probabilities of shape {predictions.shape}, expected ({n_all}, {NUM_CLASSES})")
        # uniform probabilities say nothing was seen: no prediction, not the first class argmax would give
        valid = np.all(np.isfinite(predictions), axis=1) & ~is_uniform(np.nan_to_num(predictions), axis=1)
        arg = np.argmax(np.where(np.isfinite(predictions), predictions, -np.inf), axis=1)
        pred_idx = [int(a) if v else None for a, v in zip(arg, valid)]
    else:
        if len(predictions) != n_all:
            raise MmferError(f"evaluate: {len(predictions)} predictions for {n_all} labels")
        pred_idx = [_class_index(p, where=f"prediction of {c}") for p, c in zip(predictions, clip_ids)]

    truth: list[int] = []
    pred: list[int | None] = []
    kept_ids: list[str] = []
    excluded = 0
    for lab, p, cid in zip(labels, pred_idx, clip_ids):
        t = _class_index(lab, where=f"label of {cid}")
        if t is None:
            excluded += 1
            continue
        truth.append(t)
        pred.append(p)
        kept_ids.append(cid)
    n = len(truth)
    if n == 0:
        raise MmferError(
            f"evaluate: none of the {n_all} clips has a true label among {', '.join(EMOTIONS)}; "
            "give labels (e.g. --labels-from folder --root DIR) or check the label column"
        )
    missing = [cid for cid, p in zip(kept_ids, pred) if p is None]
    t_arr = np.array(truth)
    p_arr = np.array([-1 if p is None else p for p in pred])
    correct = t_arr == p_arr

    confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    has = p_arr >= 0
    np.add.at(confusion, (t_arr[has], p_arr[has]), 1)
    no_prediction = np.bincount(t_arr[~has], minlength=NUM_CLASSES)  # per true class: the "no prediction" column

    support = np.bincount(t_arr, minlength=NUM_CLASSES)
    predicted = np.bincount(p_arr[has], minlength=NUM_CLASSES)
    tp = np.diag(confusion).astype(np.float64)
    recall: dict[str, float | None] = {}
    f1s: list[float] = []
    for c, name in enumerate(EMOTIONS):
        recall[name] = float(tp[c] / support[c]) if support[c] else None
        if support[c] or predicted[c]:
            denom = support[c] + predicted[c]
            f1s.append(float(2 * tp[c] / denom) if denom else 0.0)
    present = [r for r in recall.values() if r is not None]
    return {
        "labels": list(EMOTIONS),
        "n": n,
        "accuracy": float(correct.mean()),
        "uar": float(np.mean(present)),
        "macro_f1": float(np.mean(f1s)) if f1s else 0.0,
        "per_class_recall": recall,
        "support": {name: int(s) for name, s in zip(EMOTIONS, support)},
        "confusion": confusion.tolist(),
        "no_prediction": no_prediction.tolist(),
        "missing": missing,
        "excluded": excluded,
    }


def evaluate_scores(table: ScoreTable, truth: Mapping[str, str | None] | None = None) -> dict[str, Any]:
    """Metrics of a score table, against its own label column or an external ``truth`` map.

    With ``truth``: every clip in it is scored (a clip without a row = missing, counted wrong),
    a ``None`` truth excludes the clip, and rows whose clip is not in ``truth`` are ignored and
    counted as ``not_in_truth``.
    """
    if truth is None:
        result = evaluate(table.labels, table.probs, clip_ids=table.clip_ids)
        result["not_in_truth"] = 0
        return result
    keys = row_keys(table, by_path=getattr(truth, "by_path", False))
    pos: dict[str, int] = {}
    for i, k in enumerate(keys):
        if k in pos:
            raise MmferError(f"clip {k!r} appears twice; files of the same name in different folders are told apart "
                             "by path: use --labels-from folder|ravdess|cremad (with --root DIR) on a predictions CSV")
        pos[k] = i
    ids = list(truth)
    if not getattr(truth, "by_path", False):
        _check_ids_meet(keys, pos, truth)
    probs = np.full((len(ids), NUM_CLASSES), np.nan)
    for k, cid in enumerate(ids):
        i = pos.get(cid)
        if i is not None:
            probs[k] = table.probs[i]
    result = evaluate([truth[c] for c in ids], probs, clip_ids=ids)
    result["not_in_truth"] = sum(1 for c in keys if c not in truth)
    return result


def _check_ids_meet(keys: Sequence[str], pos: Mapping[str, int], truth: Mapping[str, Any]) -> None:
    """Score rows and true labels that name the same clips only up to an extension or letter case
    (``clip00.mp4`` / ``clip00``, ``CLIP00`` / ``clip00``) would each be counted missing and the figure read
    low without an error: refused, with examples, so the ids are made to match."""
    pairs = loosely_matched([k for k in keys if k not in truth], [c for c in truth if c not in pos])
    if pairs:
        shown = "; ".join(f"{a!r} (scores) and {b!r} (labels)" for a, b in pairs[:3])
        raise MmferError(f"{len(pairs)} clip(s) are named differently in the scores and the true labels, by a file "
                         f"extension or letter case: {shown}{' ...' if len(pairs) > 3 else ''}; clip ids are compared "
                         "exactly (each would count as missing): write them the same way in both")


def path_key(path: str | Path) -> str:
    """How a file is named when clip ids repeat: its absolute path, links resolved (the same file reached from
    a predictions CSV's ``path`` column and from ``--root`` compares equal)."""
    return os.path.normcase(os.path.realpath(path))


def row_keys(table: ScoreTable, *, by_path: bool = False) -> list[str]:
    """The key of each score row: its clip id, or with ``by_path`` its file's ``path_key``."""
    if not by_path:
        return list(table.clip_ids)
    return [path_key(p) for p in (table.extra or {})["path"]]


class Truth(dict):
    """True labels by key; ``by_path`` when keyed by ``path_key`` (clip ids repeat) rather than by clip id."""

    by_path = False


def _media_of_scores(root: Path, table: ScoreTable) -> list[tuple[str, Path]]:
    """The media files (``_media_ids``) of ``root``, or where it is an AFEW-style root (Train/Val/Test folders), of
    the split folders that hold the score file's clips: every file under them counts (an unscored one as wrong), so
    another split's files must not. Several splits are taken together where the scores cover most of each (the out-of-fold scores of
    ``--folds``, which pool Train and Val); otherwise several or none holding them is an error asking for the split."""
    from mmfer.data.index import SPLITS, find_split_dirs

    found = find_split_dirs(root)
    splits = {s: found[s] for s in SPLITS if s in found}
    if not splits:
        return _media_ids(root, table)
    scored = set(table.clip_ids)
    listed = {s: _media_ids(d, table) for s, d in splits.items()}  # each split listed once
    share = {}
    for s, names in listed.items():
        ids = {c for c, _ in names}
        if ids & scored:
            share[s] = len(ids & scored) / len(ids)
    if len(share) == 1 or (len(share) > 1 and min(share.values()) >= 0.5):
        log.info("--root %s holds the splits %s; the scores are of %s: labels from %s", root, ", ".join(splits),
                 " and ".join(share), ", ".join(str(splits[s]) for s in share))
        return [n for s in share for n in listed[s]]
    raise MmferError(f"--root {root} holds the splits {', '.join(splits)}, and the score file's clips are in "
                     f"{', '.join(f'{s} ({100 * v:.0f}% of it)' for s, v in share.items()) if share else 'none of them'}; "
                     f"give the split they are of, e.g. --root {root / 'Val'}")


def _media_ids(folder: Path, table: ScoreTable) -> list[tuple[str, Path]]:
    """Every video, image and audio file under ``folder`` (as predict lists them) with the clip id it has in
    ``table``: its file name without extension; or, for the scores of a branch trained on a file tree (ids such as
    ``Angry/03-01-05-01-01-01-01``), every image and audio file with its path under ``folder`` without extension."""
    from mmfer.data.cache import clip_id_from_name
    from mmfer.data.index import is_audio, is_image, is_video, iter_files

    if any("/" in c for c in table.clip_ids):  # a file branch reads images or sound, never the videos beside them
        files = iter_files(folder, lambda p: is_image(p) or is_audio(p))
        return [(p.relative_to(folder).with_suffix("").as_posix(), p) for p in files]
    files = iter_files(folder, lambda p: is_video(p) or is_image(p) or is_audio(p))
    return [(clip_id_from_name(p.stem), p) for p in files]


def truth_from(source: str, *, table: ScoreTable, root: str | Path | None = None) -> dict[str, str | None] | None:
    """The true labels for ``evaluate --labels-from``.

    ``csv-column`` -> ``None`` (use the score file's label column); ``ravdess``/``cremad`` parse the
    clip ids (of the videos under ``root`` when given, so unscored clips show up as missing, else of
    the score rows); ``folder`` reads emotion folder names under ``root``; any other value is a CSV
    file with ``clip_id,label`` (or an index list ``path,label``). Out-of-set labels map to ``None``.
    """
    if source == "csv-column":
        return None
    if source in ("ravdess", "cremad", "folder"):
        from mmfer.data.index import file_label

        names: list[tuple[str, Path | None]]
        paths = (table.extra or {}).get("path")
        if root is not None:  # every video, image and audio file, as predict lists them
            root = Path(root)
            if not root.is_dir():
                raise MmferError(f"--root {root}: not a folder")
            names = _media_of_scores(root, table)
            if not names:
                raise MmferError(f"{root}: no video, image or audio files found to take {source} labels from")
        elif paths and any(paths):  # a predictions CSV: each row names its file
            names = [(c, Path(p) if p else None) for c, p in zip(table.clip_ids, paths)]
        elif source == "folder":
            raise MmferError("--labels-from folder needs --root DIR (a folder of <Emotion>/<file> media), or a "
                             "predictions CSV whose path column names each file")
        else:
            names = [(c, None) for c in table.clip_ids]
        truth = Truth()
        ids = [c for c, _ in names]
        repeats = len(set(ids)) < len(ids) or len(set(table.clip_ids)) < len(table.clip_ids)
        if repeats:  # files of the same name in different folders: key every file by its path
            if not (paths and all(paths) and all(p is not None for _, p in names)):
                dup = sorted({c for c in ids if ids.count(c) > 1} | {c for c in table.clip_ids
                                                                    if table.clip_ids.count(c) > 1})
                raise MmferError(f"clip id(s) {', '.join(dup[:5])} appear twice and the score file has no path "
                                 "column to tell them apart; evaluate a predictions CSV of `mmfer predict`")
            truth.by_path = True
        unreadable = []  # names this source gives no label (a file in a sub-folder): excluded, as predict's report does
        for cid, path in names:
            try:
                label = file_label(path or cid, source)[1]
            except MmferError as e:
                unreadable.append(str(e))
                label = None
            truth[path_key(path) if repeats else cid] = label
        if unreadable and len(unreadable) == len(names):
            raise MmferError(f"--labels-from {source}: no file has a label this way, e.g. {unreadable[0]}")
        if unreadable:
            log.warning("--labels-from %s: %d file(s) give no label and are excluded, e.g. %s", source,
                        len(unreadable), unreadable[0])
        return truth
    path = Path(source)
    if not path.is_file():
        raise MmferError(
            f"--labels-from {source!r}: not one of {', '.join(LABEL_SOURCES)} and no such file; "
            "give a CSV with clip_id,label columns"
        )
    with open(path, newline="", encoding="utf-8-sig") as f, csv_errors(path):
        header = [h.strip().lower() for h in (next(csv.reader(f), None) or [])]
    paths = (table.extra or {}).get("path")
    # files of the same name in different folders (speaker/emotion/001.wav), among the scored files or in the
    # list: a list naming each file by path can still say which is which, as a predictions CSV's row does
    by_path = ("path" in header and "clip_id" not in header and bool(paths) and all(paths)
               and (len(set(table.clip_ids)) < len(table.clip_ids) or _stems_repeat(path)))
    if len(set(table.clip_ids)) < len(table.clip_ids) and not by_path:
        dup = sorted({c for c in table.clip_ids if table.clip_ids.count(c) > 1})
        raise MmferError(f"clip id(s) {', '.join(dup[:5])} appear twice in the score file (files of the same name in "
                         f"different folders) and {path} names clips by id only; use --labels-from folder --root DIR, "
                         "or a list with a path column for a predictions CSV")
    if "label" in header and ("clip_id" in header or "path" in header):
        from mmfer.data.cache import clip_id_from_name

        truth = Truth()  # an out-of-set label (calm) is kept as None: excluded and counted, whichever column names it
        truth.by_path = by_path
        with open(path, newline="", encoding="utf-8-sig") as f, csv_errors(path):
            for line_no, row in enumerate(csv.DictReader(f), start=2):
                row = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
                if by_path:  # a list's paths are relative to the list, as training reads them
                    cid = path_key(path.parent / Path(row["path"]).expanduser()) if row.get("path") else ""
                else:
                    cid = row.get("clip_id") or (clip_id_from_name(Path(row["path"]).stem) if row.get("path") else "")
                if not cid:
                    continue
                try:
                    label = canonical(row.get("label", "")) if row.get("label") else None
                except MmferError as e:
                    raise MmferError(f"{path}:{line_no}: {e}") from None
                if cid in truth and truth[cid] != label:  # which one is true? the file cannot say
                    raise MmferError(f"{path}:{line_no}: clip {cid} is labelled {label or 'out of set'} here and "
                                     f"{truth[cid] or 'out of set'} on an earlier line; give each clip one label")
                truth[cid] = label
        return truth
    raise MmferError(f"{path}: expected columns clip_id,label (or path,label); got {','.join(header)}")


def _stems_repeat(list_csv: Path) -> bool:
    """Whether two rows of a ``path,label`` list name files of the same name (their clip ids would be one)."""
    with open(list_csv, newline="", encoding="utf-8-sig") as f, csv_errors(list_csv):
        stems = [Path((v or "").strip()).stem for row in csv.DictReader(f)
                 for k, v in row.items() if k and k.strip().lower() == "path" and (v or "").strip()]
    return len(set(stems)) < len(stems)


def format_confusion(confusion: Sequence[Sequence[int]] | np.ndarray,
                     no_prediction: Sequence[int] | None = None) -> str:
    """The confusion matrix as an aligned text table, rows = truth, columns = prediction; with
    ``no_prediction`` (per true class) a last column ``none`` of the clips with no prediction (counted wrong)."""
    conf = np.asarray(confusion, dtype=np.int64)
    none = None if no_prediction is None else np.asarray(no_prediction, dtype=np.int64).reshape(-1)
    short = [e[:3] for e in EMOTIONS] + ([] if none is None else ["none"])
    width = max(5, len(str(conf.max())) + 1 if conf.size else 5)
    head = "truth\\pred".ljust(10) + "".join(s.rjust(width) for s in short) + "  recall".rjust(9)
    lines = [head]
    for c, name in enumerate(EMOTIONS):
        row = list(conf[c]) + ([] if none is None else [none[c]])
        total = sum(int(v) for v in row)
        rec = f"{conf[c, c] / total:.3f}" if total else "  -"
        lines.append(name.ljust(10) + "".join(str(v).rjust(width) for v in row) + rec.rjust(9))
    return "\n".join(lines)


def format_report(result: Mapping[str, Any]) -> str:
    """A short human-readable summary of an ``evaluate`` result."""
    lines = [
        f"clips scored: {result['n']}  (excluded, no label or one outside the seven: {result['excluded']}; "
        f"no prediction, counted wrong: {len(result['missing'])}"
        + (f"; score rows with no true label in the label source, ignored: {result['not_in_truth']}"
           if result.get("not_in_truth") else "") + ")",
        f"accuracy:            {result['accuracy']:.4f}",
        f"mean class accuracy: {result['uar']:.4f}  (uar)",
        f"macro-F1:            {result['macro_f1']:.4f}",
        "per-class recall:    "
        + ", ".join(f"{k} {v:.3f}" if v is not None else f"{k} -" for k, v in result["per_class_recall"].items()),
        "",
        format_confusion(result["confusion"], result.get("no_prediction")),
    ]
    if result.get("note"):
        lines.insert(0, f"note: {result['note']}")
    if result["missing"]:
        shown = result["missing"][:20]
        lines.append(f"\nno prediction: {', '.join(shown)}{' ...' if len(result['missing']) > 20 else ''}")
    return "\n".join(lines)


def format_comparison(results: Sequence[Mapping[str, Any]]) -> str:
    """Several ``evaluate`` results as one table, a row per score file (branches, ablations, runs side by side):
    clips, accuracy, mean class accuracy, macro-F1 and each class's recall."""
    head = ["scores", "clips", "accuracy", "uar", "macro_f1", *EMOTIONS]
    shown = [terminal_text(str(r["scores"]), newlines=False) for r in results]  # a received file's name, escaped
    rows = [[name, str(r["n"]), f"{r['accuracy']:.4f}", f"{r['uar']:.4f}",
             f"{r['macro_f1']:.4f}", *(f"{v:.3f}" if v is not None else "-" for v in r["per_class_recall"].values())]
            for name, r in zip(shown, results)]
    width = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, width)))
             for row in [head, *rows]]
    notes = [f"note: {name}: {r['note']}" for name, r in zip(shown, results) if r.get("note")]
    missing = [f"{name}: {len(r['missing'])} clip(s) without a prediction, counted wrong"
               for name, r in zip(shown, results) if r["missing"]]
    return "\n".join([*notes, *lines, *missing])


SELF_LABEL_MIN_ROWS = 20  # a perfect score on this many clips is more likely a prediction in the label column


def _check_truth_column(scores: str | Path, table: ScoreTable) -> None:
    """A file scored against its own ``label`` column must have one that holds the truth: a predictions file
    of ``mmfer predict`` has none (its prediction is in ``predicted``), and one written before ``predicted``
    existed has the prediction in ``label``, which would score the predictions against themselves."""
    header = {"label", *(table.extra or {})}
    options = ("give the true labels with --labels-from folder --root DIR (emotion folder names), "
               "--labels-from ravdess|cremad (file names) or --labels-from FILE.csv (clip_id,label)")
    if not table.has_label_column:
        raise MmferError(f"{scores}: no true labels: no label column (a predictions CSV of `mmfer predict` holds its "
                         f"predicted class in `predicted`, not the truth); {options}")
    if "predicted" not in header and {"modalities", "face_ratio"} <= header:
        raise MmferError(f"{scores}: written by an older `mmfer predict`: its label column is the predicted "
                         f"class, not the truth, and scoring it would compare the predictions with themselves; {options}")
    known = [i for i, lab in enumerate(table.labels) if lab]
    probs = table.probs[known]
    if len(known) >= SELF_LABEL_MIN_ROWS and np.all(np.isfinite(probs)) and all(
            table.labels[i] == EMOTIONS[int(np.argmax(p))] for i, p in zip(known, probs)):
        log.warning("%s: every one of its %d labels is its row's top class: if `label` holds the prediction (another "
                    "tool's meaning), this scores the predictions against themselves; `label` is the true class. "
                    "%s", scores, len(known), options[0].upper() + options[1:])


def in_sample_note(scores: Path) -> str | None:
    """What to say of a fusion's ``fused_Val.csv``: its weights were tuned on these very clips (unless the method
    fits nothing: a plain mean or vote without calibration), so its figures read high."""
    import json

    fusion = scores.parent / "weights.json"
    if scores.name != "fused_Val.csv" or not fusion.is_file():
        return None
    try:
        info = json.loads(fusion.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if info.get("method") in ("mean", "majority") and not info.get("calibrate"):
        return None
    cv = scores.with_name("fused_Val_cv.csv")
    return (f"in-sample: {fusion.parent.name}'s fusion was tuned on these clips, so this reads high; "
            + (f"{cv} holds the cross-validated scores (the figure to report)" if cv.is_file() else
               "re-run its `mmfer fuse` for fused_Val_cv.csv, the cross-validated scores (weights.json's "
               "val_cross_validated is the figure to report)"))


def evaluate_file(
    scores: str | Path,
    *,
    labels_from: str = "csv-column",
    root: str | Path | None = None,
    png: str | Path | None = None,
    report: str | Path | None = None,
) -> dict[str, Any]:
    """``mmfer evaluate``: read a score CSV, take labels from ``labels_from``, optionally plot the confusion
    (``png``) and write the HTML page of ``mmfer.report`` (``report``). A ``png`` without an extension gets
    ``.png``; another extension is an error. Both outputs are checked before anything is read."""
    from mmfer.outputs import check_output_file

    if png is not None:
        # a name without an extension gets .png, what matplotlib would write: the real name is said
        png = check_output_file(png, option="--png", suffixes=(".png",), default_suffix=".png")
    if report is not None:
        check_output_file(report, option="--report")
    table = read_scores(scores, for_evaluate=True)
    if labels_from == "csv-column":
        _check_truth_column(scores, table)
    truth = truth_from(labels_from, table=table, root=root)
    try:
        result = evaluate_scores(table, truth)
    except MmferError as e:
        raise MmferError(f"{scores}: {e}") from None
    result["scores"] = str(scores)
    result["labels_from"] = labels_from
    note = in_sample_note(Path(scores))
    if note:
        result["note"] = note
    title = f"{Path(scores).parent.name}/{Path(scores).name}" if Path(scores).parent.name else Path(scores).name
    if png is not None:
        from mmfer.plots import plot_confusion

        said = (f"confusion of {title}\naccuracy {result['accuracy']:.3f}, mean class accuracy {result['uar']:.3f} "
                f"({result['n']} clips)")  # a PNG shown alone says what it is
        result["png"] = str(plot_confusion(result["confusion"], png, title=said,
                                           no_prediction=result["no_prediction"]))
    if report is not None:
        from mmfer.report import write_report

        keys = row_keys(table, by_path=getattr(truth, "by_path", False))
        truth_of = truth if truth is not None else dict(zip(keys, table.labels))
        rows = []
        for c, k, p in zip(table.clip_ids, keys, table.probs):
            none = not np.all(np.isfinite(p)) or is_uniform(p)
            rows.append({"clip_id": c, "predicted": "" if none else EMOTIONS[int(np.argmax(p))],
                         "truth": truth_of.get(k), "confidence": None if none else float(np.max(p)), "error": none})
        result["report"] = str(write_report(report, rows, title=f"mmfer evaluate: {title}",
                                            metrics=result, note=f"Scores: {scores}; labels: {labels_from}."))
    return result
