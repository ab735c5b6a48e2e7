"""``mmfer ablate``: fuse every non-empty subset of branches to show what each modality adds.

Each subset is tuned on Val with the chosen method; the table reports the in-sample Val accuracy
next to the cross-validated accuracy and mean class accuracy, because with many subsets the
in-sample figure favours whichever subset overfits Val most.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Sequence


from mmfer.labels import EMOTIONS
from mmfer.metrics import evaluate
from mmfer.outputs import check_inside, write_file
from mmfer.progress import progress_bar
from mmfer.scores import write_scores

from mmfer.fusion.fuse import _given, _warn_stale_scores, fit_and_score, load_fusion_inputs, remove_stale

SUBSET_SUFFIXES = ("_Test.csv", "_Val_cv.csv")  # the files ablate writes in OUT/subsets/, one of each per subset
NOTE = ("val_in_sample_*: each subset's fusion tuned and scored on the same Val clips (optimistic); "
        "val_cross_validated_*: tuned on k-1 folds of Val and scored on the held-out fold, pooled (the figures to "
        "report; their scores: subsets/<branches>_Val_cv.csv). weights: the subset's fitted weights, per branch "
        "in its order (none for majority; per class for per_class, under params)")
COLUMNS = ("branches", "n_branches", "val_in_sample_accuracy", "val_in_sample_uar", "val_cross_validated_accuracy",
           "val_cross_validated_uar", "val_cross_validated_macro_f1", "test_accuracy", "test_uar", "weights")


def ablate(
    val_paths: Sequence[str | Path],
    test_paths: Sequence[str | Path] | None = None,
    *,
    out: str | Path,
    method: str = "weighted",
    names: Sequence[str] | str | None = None,
    cv_folds: int = 5,
    seed: int = 0,
    objective: str = "accuracy",
    calibrate: bool = False,
    progress: bool = True,
    folds: int | None = None,
) -> list[dict[str, Any]]:
    """Rows (one per subset, sorted by cross-validated accuracy) written to OUT/ablation.{md,csv,json,png}.

    Per subset, OUT/subsets/<names>_Val_cv.csv holds the cross-validated fused Val scores (labelled clips, each
    from the fusion tuned without its fold: the scores behind the figures to report, for ``mmfer evaluate``);
    with Test files, OUT/subsets/<names>_Test.csv its fused Test scores, and ``test_accuracy`` and ``test_uar``
    are filled where the Test files carry labels. ablation.json adds each subset's fitted weights and the
    options and inputs. The outputs are made beside OUT and moved into it at the end: a stopped run leaves
    the earlier outputs as they were.
    ``cv_folds``: as ``fuse``'s (``--cv-folds``; ``folds`` is its old name).
    """
    from mmfer.compat import renamed_argument
    from mmfer.outputs import check_output_dir

    folds = renamed_argument(cv_folds, folds, function="ablate", new="cv_folds", old="folds", option="--cv-folds",
                             default=5)

    check_output_dir(out, option="--out", inputs=_given(val_paths, test_paths),  # before any fusion
                     writes=("ablation.csv", "ablation.md", "ablation.json", "ablation.png", "subsets/"))
    inputs = load_fusion_inputs(val_paths, test_paths, names, method=method, objective=objective, command="ablate")
    _warn_stale_scores(inputs.val_paths)
    names, y, test = inputs.names, inputs.y, inputs.test
    val_probs = [p[inputs.known] for p in inputs.val_probs]
    val_ids = [c for c, k in zip(inputs.val_ids, inputs.known) if k]
    val_labels = [lab for lab, k in zip(inputs.val_labels, inputs.known) if k]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for left in out.parent.glob(f".{out.name}.ablate-*"):  # a killed run's (a stopped one cleans up after itself)
        shutil.rmtree(left, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.ablate-"))  # moved into OUT at the end
    try:
        rows, params, used_folds = _fit_subsets(names, val_probs, y, test, val_ids, val_labels, staging,
                                                method=method, calibrate=calibrate, objective=objective, folds=folds,
                                                seed=seed, progress=progress)
        rows.sort(key=lambda r: (-r["val_cross_validated_accuracy"], -r["val_cross_validated_uar"], r["n_branches"]))
        options = {"method": method, "objective": objective, "calibrate": calibrate, "seed": seed,
                   "cv_folds": used_folds, "val_clips": int(inputs.known.sum()),
                   "inputs": {"val": [str(p) for p in inputs.val_paths], "test": [str(p) for p in inputs.test_paths]}}
        write_tables(rows, staging, method=method, folds=used_folds, options=options)
        subsets = [{**r, "weights": None if method == "majority" else params[r["branches"]]["params"].get("weights"),
                    **params[r["branches"]]} for r in rows]  # weights as weights.json has them: a list
        write_file(staging / "ablation.json", json.dumps(
            {"labels": list(EMOTIONS), "branches": names, **options, "note": NOTE, "subsets": subsets}, indent=1) + "\n")
        from mmfer.plots import plot_ablation

        plot_ablation(rows, staging / "ablation.png", title=f"modality ablation ({method} fusion)",
                      classes=len(set(y.tolist())))
        out.mkdir(exist_ok=True)
        check_inside(out, out / "subsets", what="ablate's outputs")  # before the first file moves
        written = set()
        for f in sorted(staging.rglob("*")):
            if f.is_file():
                target = check_inside(out, out / f.relative_to(staging), what="ablate's outputs")
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(f, target)
                written.add(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    # an earlier run's subset files, which `submit` or a reader could take for this table's (only ablate's own
    # kinds of file, at the top of subsets/: anything else there is the user's)
    for stale in sorted((out / "subsets").glob("*.csv")) if (out / "subsets").is_dir() else []:
        if stale.name.endswith(SUBSET_SUFFIXES) and stale not in written:
            remove_stale(stale)
    return rows


def _fit_subsets(names, val_probs, y, test, val_ids, val_labels, staging: Path, *, method: str, calibrate: bool,
                 objective: str, folds: int, seed: int, progress: bool):
    """Every non-empty subset fused: its row, its fitted parameters (by label) and the folds used; the subsets'
    score files go to ``staging``."""
    subsets = [c for k in range(1, len(names) + 1) for c in itertools.combinations(range(len(names)), k)]
    rows: list[dict[str, Any]] = []
    params: dict[str, dict[str, Any]] = {}
    used_folds = folds  # as many as Val can hold: fewer than asked where a class has fewer clips
    for subset in progress_bar(subsets, desc="ablate", unit="subset", enabled=progress):
        label = "+".join(names[i] for i in subset)
        model, ins, cv = fit_and_score(
            [val_probs[i] for i in subset], y, method=method, calibrate=calibrate,
            objective=objective, folds=folds, seed=seed,
        )
        used_folds = cv.get("folds", folds)
        write_scores(staging / "subsets" / f"{label}_Val_cv.csv", val_ids, val_labels, cv.pop("out_of_fold"))
        row: dict[str, Any] = {
            "branches": label,
            "n_branches": len(subset),
            "val_in_sample_accuracy": ins["accuracy"],
            "val_in_sample_uar": ins["uar"],
            "val_cross_validated_accuracy": cv["accuracy"],
            "val_cross_validated_uar": cv["uar"],
            "val_cross_validated_macro_f1": cv["macro_f1"],
            "test_accuracy": None,
            "test_uar": None,
            "weights": None,
        }
        fitted = model.params()
        if fitted.get("weights") is not None and method not in ("per_class", "majority"):  # majority: votes
            row["weights"] = " ".join(f"{names[i]}:{w:.2f}" for i, w in zip(subset, fitted["weights"]))
        params[label] = {"params": fitted, "val_cross_validated_fold_accuracy": cv["fold_accuracy"]}
        if test is not None:
            ids, labels, probs = test
            fused = model.predict([probs[i] for i in subset])
            write_scores(staging / "subsets" / f"{label}_Test.csv", ids, labels, fused)
            if any(labels):
                m = evaluate(labels, fused)
                row["test_accuracy"], row["test_uar"] = m["accuracy"], m["uar"]
        rows.append(row)
    return rows, params, used_folds


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def write_tables(rows: Sequence[dict[str, Any]], out: str | Path, *, method: str, folds: int,
                 options: dict[str, Any] | None = None) -> None:
    """OUT/ablation.csv (plain numbers) and OUT/ablation.md (with a note on which figure is which, and the
    options that made it)."""
    import io

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(COLUMNS)
    for r in rows:
        w.writerow(["" if r.get(c) is None else r[c] for c in COLUMNS])
    write_file(out / "ablation.csv", buf.getvalue())  # never through a link
    heads = ("branches", "n_branches", "Val acc (in-sample)", "Val uar (in-sample)",
             f"Val acc ({folds}-fold CV)", f"Val uar ({folds}-fold CV)", f"Val macro-F1 ({folds}-fold CV)",
             "Test acc", "Test uar", "weights")
    o = options or {}
    lines = [
        f"# Modality ablation ({method} fusion)",
        "",
        "In-sample: fusion tuned and scored on the same Val clips (optimistic). "
        f"CV: tuned on {folds - 1} of {folds} folds of Val, scored on the held-out fold (report this one; its "
        "scores: subsets/<branches>_Val_cv.csv). uar = mean class accuracy.",
        "",
    ]
    if o:
        lines += [f"Options: method {method}, objective {o.get('objective')}, calibrate {o.get('calibrate')}, "
                  f"seed {o.get('seed')}, {folds} cross-validation folds, {o.get('val_clips')} labelled Val clips. "
                  "Inputs and fitted weights: ablation.json.", ""]
    lines += [
        "| " + " | ".join(heads) + " |",
        "|" + "|".join("---" for _ in heads) + "|",
    ]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(c)) for c in COLUMNS) + " |")
    write_file(out / "ablation.md", "\n".join(lines) + "\n")
