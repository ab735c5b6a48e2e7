"""``mmfer ablate``: fuse every non-empty subset of branches to show what each modality adds.

Each subset is tuned on Val with the chosen method; the table reports the in-sample Val accuracy
next to the cross-validated accuracy and mean class accuracy, because with many subsets the
in-sample figure favours whichever subset overfits Val most.
"""

from __future__ import annotations

import csv
import itertools
from pathlib import Path
from typing import Any, Sequence

from tqdm import tqdm

from mmfer.metrics import evaluate
from mmfer.scores import write_scores

from mmfer.fusion.fuse import fit_and_score, load_fusion_inputs, remove_stale

COLUMNS = ("branches", "n_branches", "val_in_sample_accuracy", "val_in_sample_uar", "val_cross_validated_accuracy", "val_cross_validated_uar", "test_accuracy", "test_uar")


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
    """Rows (one per subset, sorted by cross-validated accuracy) written to OUT/ablation.{md,csv,png}.

    With Test files, each subset's fused Test scores go to OUT/subsets/<names>_Test.csv, and
    ``test_accuracy`` and ``test_uar`` are filled where the Test files carry labels. ``cv_folds``: as ``fuse``'s (``--cv-folds``;
    ``folds`` is its old name).
    """
    from mmfer.compat import renamed_argument
    from mmfer.outputs import check_output_dir

    folds = renamed_argument(cv_folds, folds, function="ablate", new="cv_folds", old="folds", option="--cv-folds",
                             default=5)

    check_output_dir(out, option="--out")  # before any fusion
    inputs = load_fusion_inputs(val_paths, test_paths, names, method=method, objective=objective, command="ablate")
    names, y, test = inputs.names, inputs.y, inputs.test
    val_probs = [p[inputs.known] for p in inputs.val_probs]
    out = Path(out)

    subsets = [c for k in range(1, len(names) + 1) for c in itertools.combinations(range(len(names)), k)]
    rows: list[dict[str, Any]] = []
    written: set[Path] = set()
    used_folds = folds  # as many as Val can hold: fewer than asked where a class has fewer clips
    for subset in tqdm(subsets, desc="ablate", unit="subset", disable=not progress):
        label = "+".join(names[i] for i in subset)
        model, ins, cv = fit_and_score(
            [val_probs[i] for i in subset], y, method=method, calibrate=calibrate,
            objective=objective, folds=folds, seed=seed,
        )
        used_folds = cv.get("folds", folds)
        row: dict[str, Any] = {
            "branches": label,
            "n_branches": len(subset),
            "val_in_sample_accuracy": ins["accuracy"],
            "val_in_sample_uar": ins["uar"],
            "val_cross_validated_accuracy": cv["accuracy"],
            "val_cross_validated_uar": cv["uar"],
            "test_accuracy": None,
            "test_uar": None,
        }
        if test is not None:
            ids, labels, probs = test
            fused = model.predict([probs[i] for i in subset])
            written.add(write_scores(out / "subsets" / f"{label}_Test.csv", ids, labels, fused))
            if any(labels):
                m = evaluate(labels, fused)
                row["test_accuracy"], row["test_uar"] = m["accuracy"], m["uar"]
        rows.append(row)
    for stale in sorted((out / "subsets").glob("*_Test.csv")) if (out / "subsets").is_dir() else []:
        if stale not in written:  # an earlier run's subset, which `submit` could pick up
            remove_stale(stale)
    rows.sort(key=lambda r: (-r["val_cross_validated_accuracy"], -r["val_cross_validated_uar"], r["n_branches"]))
    write_tables(rows, out, method=method, folds=used_folds)
    from mmfer.plots import plot_ablation

    plot_ablation(rows, out / "ablation.png", title=f"modality ablation ({method} fusion)")
    return rows


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def write_tables(rows: Sequence[dict[str, Any]], out: str | Path, *, method: str, folds: int) -> None:
    """OUT/ablation.csv (plain numbers) and OUT/ablation.md (with a note on which figure is which)."""
    import io

    from mmfer.outputs import write_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(COLUMNS)
    for r in rows:
        w.writerow(["" if r[c] is None else r[c] for c in COLUMNS])
    write_file(out / "ablation.csv", buf.getvalue())  # never through a link
    heads = ("branches", "branches used", "Val acc (in-sample)", "Val uar (in-sample)",
             f"Val acc ({folds}-fold CV)", f"Val uar ({folds}-fold CV)", "Test acc", "Test uar")
    lines = [
        f"# Modality ablation ({method} fusion)",
        "",
        "In-sample: fusion tuned and scored on the same Val clips (optimistic). "
        f"CV: tuned on {folds - 1} of {folds} folds of Val, scored on the held-out fold (report this one). "
        "uar = mean class accuracy.",
        "",
        "| " + " | ".join(heads) + " |",
        "|" + "|".join("---" for _ in heads) + "|",
    ]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r[c]) for c in COLUMNS) + " |")
    write_file(out / "ablation.md", "\n".join(lines) + "\n")
