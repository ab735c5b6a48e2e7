"""``mmfer fuse``: branch score CSVs -> weights.json, fused_Val.csv, fused_Val_cv.csv, fused_Test.csv.

Everything is tuned on Val only (Test labels are hidden in EmotiW). weights.json keeps two Val
figures apart: ``val_in_sample`` (tuned and scored on the same clips: optimistic) and
``val_cross_validated`` (tuned on k-1 folds, scored on the held-out fold: the one to report), whose
scores are fused_Val_cv.csv.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mmfer.errors import MmferError
from mmfer.labels import EMOTIONS
from mmfer.scores import ScoreTable, read_scores, write_scores

from mmfer.fusion.methods import METHODS, OBJECTIVES, FusionModel
from mmfer.fusion.tuning import cross_validate_method, figures

log = logging.getLogger(__name__)

WEIGHTS_FILE = "weights.json"
FIGURES_NOTE = (
    "val_in_sample: weights tuned and scored on the same Val clips (optimistic, do not report as the "
    "expected Test accuracy); val_cross_validated: weights tuned on k-1 folds of Val and scored on the "
    "held-out fold, pooled over folds (the estimate to report; folds split clips by class, not by actor, so "
    "where one actor has clips in several folds it can still read a little high). fused_Val_cv.csv holds the "
    "scores behind val_cross_validated (labelled clips), for `mmfer evaluate` (confusion, per-class recall)"
)

_SPLIT_SUFFIX = re.compile(r"[_\-.](val|valid|validation|test|train)$", re.IGNORECASE)
# score files every run or cross-validation names the same: scores_Val.csv, fused_Test.csv, scores_oof.csv,
# scores_Test_ensemble.csv, scores_Val_v10.csv (views); predict_Val.csv, predict's CSV of a run kept in its folder
_RUN_FILE = re.compile(r"^((scores?|fused)([_\-.](val|test|train))?([_\-.](oof|ensemble|v\d+))?)?$", re.IGNORECASE)
_NOT_IN_NAME = re.compile(r'[/\\+:*?"<>|\x00-\x1f]')  # ablate: part of file names (any OS), joined by '+'
_PREDICT_FILE = re.compile(r"^predict$", re.IGNORECASE)  # RUN/predict_Val.csv: named by its folder when that is a run


def branch_name(path: str | Path) -> str:
    """A branch name from a score file: the run folder for RUN/scores_Val.csv and the other score files mmfer
    names alike in every run (CV/scores_oof.csv, CV/scores_Test_ensemble.csv), else the file stem without a
    trailing _Val/_Test."""
    p = Path(path)
    stem = _SPLIT_SUFFIX.sub("", p.stem)
    if _RUN_FILE.match(stem) or (_PREDICT_FILE.match(stem) and run_of(p) is not None):
        parent = p.resolve().parent.name  # a file named alike in every run: its folder names the branch
        return parent or stem
    return stem


def resolve_names(val_paths: Sequence[str | Path], test_paths: Sequence[str | Path] | None,
                  names: Sequence[str] | str | None, *, command: str = "fuse") -> tuple[list[str], list[str | Path]]:
    """Branch names (given as ``a,b,c``, else derived from the files) and the Test files in the Val files' order.

    Test files whose derived names are the Val files' in another order are paired by branch, never by position
    (a note says so): tuned on one branch's Val scores, a weight must not be applied to another's Test scores.
    Otherwise they pair by position, which needs matching names or --names (the user's word for the pairing)."""
    test_paths = list(test_paths or [])
    derived = [branch_name(p) for p in val_paths]
    by_folder: dict[Path, list[str | Path]] = {}
    for v in val_paths:  # first: two files of one run also unbalance the counts
        by_folder.setdefault(Path(v).resolve().parent, []).append(v)
    for folder, files in by_folder.items():
        if len(files) > 1 and run_of(files[0]) is not None:  # (runs/*/scores_Val.csv took it too)
            raise MmferError(f"{command}: {files[0]} and {files[1]} are both of run {folder.name}: one "
                             "model would count twice; give one of them (for AFEW clips scored by a face-frame run, "
                             "its predict_Val.csv; its scores_Val.csv is of its own face images)")
    if test_paths and len(test_paths) != len(val_paths):
        test_derived = {branch_name(p) for p in test_paths}
        fewer_test = len(test_paths) < len(val_paths)
        unpaired = sorted(set(derived) - test_derived if fewer_test else test_derived - set(derived))
        raise MmferError(
            f"{command}: {len(val_paths)} Val score file(s) but {len(test_paths)} Test score file(s)"
            + (f"; no {'Test' if fewer_test else 'Val'} file for {', '.join(unpaired)}"
               if unpaired and names is None else "")
            + "; give one Test file per Val file, in the same order (or leave that branch out)"
        )
    if test_paths:
        test_derived = [branch_name(p) for p in test_paths]
        if test_derived != derived and sorted(test_derived) == sorted(derived) and len(set(derived)) == len(derived):
            test_paths = [test_paths[test_derived.index(n)] for n in derived]
            log.warning("%s: the Test files were listed in another order than the Val files; paired by branch: %s", command,
                        ", ".join(f"{n} ({Path(t).name})" for n, t in zip(derived, test_paths)))
        elif names is None:
            for v, t, vp, tp in zip(derived, test_derived, val_paths, test_paths):
                if v != t:
                    raise MmferError(
                        f"{command}: Val file {vp} (branch {v!r}) is paired with Test file {tp} (branch {t!r}); "
                        "list Val and Test files in the same order, or give --names (Val and Test files then pair "
                        "by position)"
                    )
    if names is not None:
        if isinstance(names, str):
            names = [n.strip() for n in names.split(",") if n.strip()]
        names = list(names)
        if len(names) != len(val_paths):
            raise MmferError(f"--names: {len(names)} name(s) ({','.join(names)}) for {len(val_paths)} score files")
    else:
        names = derived
    for n, path in zip(names, val_paths) if command == "ablate" else ():  # its subsets/<a>+<b>_Test.csv files
        if not n or n in (".", "..") or _NOT_IN_NAME.search(n):
            what = f"--names: {n!r}" if names is not derived else f"the branch name {n!r}, taken from {path},"
            raise MmferError(f"{command}: {what} cannot be used: a branch name becomes part of file names and is "
                             "joined to others with '+', so it may not be empty, '.' or '..', or hold + or a "
                             "character no file name may hold (/ \\ : * ? \" < > |, control characters)"
                             + ("" if names is not derived else "; give --names a,b,c"))
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise MmferError(f"{command}: branch name(s) {', '.join(dupes)} appear twice; give distinct names with --names a,b,c")
    return names, test_paths


def align_tables(paths: Sequence[str | Path], *, split: str,
                 command: str = "fuse") -> tuple[list[str], list[str | None], list[np.ndarray]]:
    """Read score files and check they cover the same clips with the same labels.

    Returns clip ids (in the first file's order), labels and one (N, 7) array per file.
    """
    tables: list[ScoreTable] = [read_scores(p) for p in paths]
    first, ref = tables[0], Path(paths[0])
    ids = first.clip_ids
    ref_set = set(ids)
    aligned = [first]
    for t, p in zip(tables[1:], paths[1:]):
        other = set(t.clip_ids)
        only_ref = sorted(ref_set - other)
        only_here = sorted(other - ref_set)
        if only_ref or only_here:
            parts = []
            if only_ref:
                parts.append(f"{len(only_ref)} clip(s) only in {ref} (e.g. {', '.join(only_ref[:5])})")
            if only_here:
                parts.append(f"{len(only_here)} clip(s) only in {p} (e.g. {', '.join(only_here[:5])})")
            raise MmferError(
                f"{command}: {split} score files do not cover the same clips: {'; '.join(parts)}. "
                "Every branch must score every clip (branches write uniform scores for clips they could not see)"
            )
        t = t.reindex(ids)
        bad = [c for c, a, b in zip(ids, first.labels, t.labels) if a and b and a != b]
        if bad:
            c = bad[0]
            i = ids.index(c)
            raise MmferError(
                f"{command}: {split} label disagreement between {ref} and {p} for {len(bad)} clip(s), e.g. {c}: "
                f"{first.labels[i]} vs {t.labels[i]}"
                + (f" (others: {', '.join(bad[1:5])}{' ...' if len(bad) > 5 else ''})" if len(bad) > 1 else "")
                + "; were they made from the same index?"
            )
        aligned.append(t)
    labels = list(first.labels)
    for t in aligned[1:]:  # fill labels a file left empty from another file
        labels = [a or b for a, b in zip(labels, t.labels)]
    return list(ids), labels, [t.probs for t in aligned]


def run_of(score_path: str | Path) -> str | None:
    """The run directory a branch's score file sits in (absolute), so ``mmfer predict --model FUSE`` finds
    each branch's checkpoint; None for a score file outside a run (predict then cannot use it)."""
    from mmfer.engine.checkpoint import run_checkpoint  # here: importing fusion (every CLI start) loads no torch

    run = Path(score_path).resolve().parent
    return str(run) if run_checkpoint(run) is not None else None


def _warn_stale_scores(val_paths) -> None:
    """A run retrained after its scores were written: the weights would be tuned on the old model's scores and
    recorded against the new checkpoint, which predict --model FUSE would then accept."""
    from mmfer.engine.checkpoint import run_checkpoint

    for p in val_paths:
        run = run_of(p)
        ckpt = run_checkpoint(run) if run is not None else None
        if ckpt is not None and ckpt.stat().st_mtime > Path(p).stat().st_mtime + 1:
            log.warning("%s: written before %s (retrained since?); re-run `mmfer scores %s` for Val and Test first, "
                        "or the fusion is tuned on another model's scores", p, ckpt, run)


def checkpoint_digest(run: str | Path | None) -> str | None:
    """SHA-256 of the checkpoint a run stands for (best.pt, else last.pt); None without one."""
    import hashlib

    from mmfer.engine.checkpoint import run_checkpoint

    ckpt = run_checkpoint(run) if run is not None else None
    if ckpt is None:
        return None
    h = hashlib.sha256()
    with open(ckpt, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class FusionInputs:
    """Val (and Test) score files aligned on clip ids, with the labelled Val clips picked out."""

    names: list[str]
    val_paths: list[str | Path]
    test_paths: list[str | Path]
    val_ids: list[str]
    val_labels: list[str | None]
    val_probs: list[np.ndarray]
    known: np.ndarray  # bool per Val clip: has a label
    y: np.ndarray  # class index of each labelled Val clip
    test: tuple[list[str], list[str | None], list[np.ndarray]] | None


def load_fusion_inputs(
    val_paths: Sequence[str | Path],
    test_paths: Sequence[str | Path] | None,
    names: Sequence[str] | str | None,
    *,
    method: str,
    objective: str,
    command: str,
) -> FusionInputs:
    """Check the arguments shared by ``fuse`` and ``ablate`` and read their score files once."""
    if method not in METHODS:
        raise MmferError(f"{command}: unknown method {method!r}; expected one of {', '.join(METHODS)}")
    if objective not in OBJECTIVES:
        raise MmferError(f"{command}: unknown objective {objective!r}; expected one of {', '.join(OBJECTIVES)}")
    # one file given as a plain path is a list of one (a str is a sequence too: of its characters)
    val_paths = [val_paths] if isinstance(val_paths, (str, Path)) else list(val_paths)
    if isinstance(test_paths, (str, Path)):
        test_paths = [test_paths]
    if not val_paths:
        raise MmferError(f"{command}: no Val score files given (--val A_Val.csv B_Val.csv ...)")
    names, test_paths = resolve_names(val_paths, test_paths, names, command=command)
    val_ids, val_labels, val_probs = align_tables(val_paths, split="Val", command=command)
    known = np.array([lab is not None for lab in val_labels])
    if known.sum() < 2:
        raise MmferError(
            f"{command}: {val_paths[0]} has {int(known.sum())} clip(s) with a label; Val scores need their labels "
            "(the label column) to tune fusion"
        )
    y = np.array([EMOTIONS.index(lab) for lab in val_labels if lab is not None])
    absent = [e for i, e in enumerate(EMOTIONS) if i not in set(y.tolist())]
    if absent:  # as train says it: uar then means something else than over seven classes
        log.warning("%s: no labelled Val clip of %s: uar (mean class accuracy) averages over the %d classes present, "
                    "and nothing tunes the fusion for %s", command, ", ".join(absent), 7 - len(absent),
                    "that class" if len(absent) == 1 else "those classes")
    test = align_tables(test_paths, split="Test", command=command) if test_paths else None
    if test is not None:
        shared = len(set(val_ids) & set(test[0]))
        if shared:  # tuned on those clips: their Test figures are in-sample, and a submission of them is no test
            log.warning("%s: %d of the %d Test clips are Val clips too (the weights were tuned on them): is a Val "
                        "file given as Test?", command, shared, len(test[0]))
    return FusionInputs(names, val_paths, test_paths, val_ids, val_labels, val_probs, known, y, test)


def fit_and_score(
    probs_list: Sequence[np.ndarray],
    y: np.ndarray,
    *,
    method: str,
    calibrate: bool,
    objective: str,
    folds: int,
    seed: int,
) -> tuple[FusionModel, dict[str, Any], dict[str, Any]]:
    """Fit on all labelled Val clips; in-sample and cross-validated figures (``cv["out_of_fold"]``: each labelled
    clip's fused scores from the fusion tuned without its fold, the scores behind the figure to report)."""
    model = FusionModel(method, calibrate=calibrate, objective=objective, seed=seed).fit(probs_list, y)
    in_sample = figures(model.predict(probs_list), y)
    cv = cross_validate_method(method, probs_list, y, calibrate=calibrate, objective=objective, folds=folds, seed=seed)
    return model, in_sample, cv


def remove_stale(path: Path) -> None:
    """Remove ``path``, an earlier fuse or ablate run's output that this run does not write again, saying so."""
    if os.path.lexists(path):
        os.unlink(path)
        log.warning("%s: removed, an earlier run's output that this run does not write again", path)


def _given(*groups: Any) -> list[str | Path]:
    """The files of ``--val`` and ``--test`` as given: a list of them, one path, or None."""
    return [p for g in groups if g is not None for p in ([g] if isinstance(g, (str, Path)) else g)]


def fuse(
    val_paths: Sequence[str | Path],
    test_paths: Sequence[str | Path] | None = None,
    *,
    out: str | Path,
    method: str = "weighted",
    names: Sequence[str] | str | None = None,
    calibrate: bool = False,
    cv_folds: int = 5,
    seed: int = 0,
    objective: str = "accuracy",
    folds: int | None = None,
) -> dict[str, Any]:
    """Tune ``method`` on the Val score files, write OUT/weights.json, OUT/fused_Val.csv (in-sample),
    OUT/fused_Val_cv.csv (cross-validated, labelled clips) and (with Test files) OUT/fused_Test.csv; returns the weights.json content. ``cv_folds``: the folds of Val that the
    reported estimate cross-validates over (``--cv-folds``; ``folds`` is its old name)."""
    from mmfer.compat import renamed_argument
    from mmfer.outputs import check_output_dir

    folds = renamed_argument(cv_folds, folds, function="fuse", new="cv_folds", old="folds", option="--cv-folds", default=5)

    check_output_dir(out, option="--out", inputs=_given(val_paths, test_paths),  # before any tuning
                     writes=("fused_Val.csv", "fused_Val_cv.csv", "fused_Test.csv", WEIGHTS_FILE))
    from mmfer.engine.checkpoint import run_checkpoint

    if run_checkpoint(out) is not None:  # predict --model OUT would then read the run as this fusion
        raise MmferError(f"--out {out}: holds a trained run ({run_checkpoint(out).name}); `mmfer predict --model "
                         f"{out}` would then read the fusion instead of the run. Give a folder of its own")
    inputs = load_fusion_inputs(val_paths, test_paths, names, method=method, objective=objective, command="fuse")
    _warn_stale_scores(inputs.val_paths)
    names, val_ids, val_labels, val_probs, known, y = (
        inputs.names, inputs.val_ids, inputs.val_labels, inputs.val_probs, inputs.known, inputs.y
    )
    val_paths, test_paths = inputs.val_paths, inputs.test_paths
    out = Path(out)
    probs_known = [p[known] for p in val_probs]
    model, in_sample, cv = fit_and_score(
        probs_known, y, method=method, calibrate=calibrate, objective=objective, folds=folds, seed=seed
    )
    singles = {n: figures(p, y) for n, p in zip(names, probs_known)}

    out_of_fold = cv.pop("out_of_fold")
    out.mkdir(parents=True, exist_ok=True)
    outputs = {"fused_Val": str(write_scores(out / "fused_Val.csv", val_ids, val_labels, model.predict(val_probs))),
               "fused_Val_cv": str(write_scores(out / "fused_Val_cv.csv", [c for c, k in zip(val_ids, known) if k],
                                                [lab for lab, k in zip(val_labels, known) if k], out_of_fold))}
    test_figures = None
    if inputs.test is not None:
        test_ids, test_labels, test_probs = inputs.test
        fused_test = model.predict(test_probs)
        outputs["fused_Test"] = str(write_scores(out / "fused_Test.csv", test_ids, test_labels, fused_test))
        if any(test_labels):  # a labelled Test (a researcher's own split): figures, as ablate gives them
            with_label = [i for i, lab in enumerate(test_labels) if lab]
            test_figures = figures(fused_test[with_label], np.array([EMOTIONS.index(test_labels[i])
                                                                    for i in with_label]))
    else:
        remove_stale(out / "fused_Test.csv")  # an earlier run's: `submit` must not pick up a fusion undescribed
    params = model.params()
    report: dict[str, Any] = {
        "labels": list(EMOTIONS),
        "branches": names,
        "method": method,
        "objective": objective,
        "calibrate": calibrate,
        "temperatures": params.pop("temperatures"),
        "weights": params.pop("weights", None),
        "params": params,
        "val_in_sample": in_sample,
        "val_cross_validated": cv,
        "single_branch_val_in_sample": singles,
        **({"test": test_figures} if test_figures is not None else {}),
        "note": FIGURES_NOTE,
        "val_clips": len(val_ids),
        "val_clips_unlabelled": int((~known).sum()),
        "inputs": {"val": [str(p) for p in val_paths], "test": [str(p) for p in test_paths]},
        "runs": [run_of(p) for p in val_paths],
        # what each run's checkpoint held when its weight was tuned: predict --model FUSE refuses a retrained one
        "checkpoint_sha256": [checkpoint_digest(r) for r in (run_of(p) for p in val_paths)],
        "outputs": outputs,
    }
    from mmfer.outputs import write_file

    write_file(out / WEIGHTS_FILE, json.dumps(report, indent=1))  # a link there is replaced, never written through
    return report


def format_fuse_report(report: dict[str, Any]) -> str:
    """A few lines for the terminal."""
    ins, cv = report["val_in_sample"], report["val_cross_validated"]
    lines = [f"method {report['method']} over {', '.join(report['branches'])}"
             + (" (temperature-calibrated)" if report["calibrate"] else "")]
    for n, f in report["single_branch_val_in_sample"].items():
        lines.append(f"  {n:<20} Val accuracy {f['accuracy']:.4f}  uar {f['uar']:.4f}")
    tuned = report["method"] not in ("mean", "majority") or report["calibrate"]  # these two fit nothing to Val
    lines.append(f"fused Val accuracy {ins['accuracy']:.4f}  uar {ins['uar']:.4f}  "
                 + ("(in-sample: tuned on these clips)" if tuned else "(nothing tuned: the same as cross-validated)"))
    lines.append(f"fused Val accuracy {cv['accuracy']:.4f}  uar {cv['uar']:.4f}  "
                 f"({cv['folds']}-fold cross-validated: the figure to report; its scores: fused_Val_cv.csv)")
    if report.get("test"):
        t = report["test"]
        lines.append(f"fused Test accuracy {t['accuracy']:.4f}  uar {t['uar']:.4f}  ({t['n']} labelled Test clips)")
    if report.get("weights") is not None and report["method"] != "per_class":
        lines.append("weights: " + ", ".join(f"{n} {w:.2f}" for n, w in zip(report["branches"], report["weights"])))
    lines.append("wrote " + ", ".join(report["outputs"].values()))
    return "\n".join(lines)
