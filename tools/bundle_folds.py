#!/usr/bin/env python3
"""Score a bundle's cross-validation fold models out of fold again, from the weights it ships.

    python tools/speech_list.py --ravdess ravdess_speech/ --metadata speech/metadata.csv --out speech.csv
    python tools/ravdess_to_afew.py ravdess_speech/ ravdess_afew --audio --val-actors 13,14,15,16
    python tools/bundle_folds.py --data speech.csv --data-for audio_stats=ravdess_afew --out FOLDS   # the default
    python tools/bundle_folds.py --model my_bundle/ --data list.csv --out R --cv audio_stats=stats

Why: a bundle keeps each audio view's fold models (``<stem>_fold<i>``) and, in bundle.json's provenance, the
speakers each fold held out and the figures they made, but not the runs: these are gone once a session ends.
To compare a new recipe with the shipped one fold for fold (same speakers held out), or to check that a list
is the data the bundle was trained on, each fold model scores the clips of ``--data`` that its fold held out
(rows a list marks for evaluation only, TESS's, are never among them). The default bundle's statistics view
learnt from an AFEW folder of RAVDESS, whose speakers and clips are named from the files, hence ``--data-for``.
Per view (stem) ``OUT/<stem>/`` is laid out as a ``mmfer train --folds`` folder (``fold<i>/best.pt``,
``fold.json``, ``scores_Val.csv``; ``scores_oof.csv``, ``folds.json``, ``folds.csv``), so every tool that
reads one reads it; ``OUT/audio/scores_oof.csv`` is the views fused by the bundle's weights and temperatures,
as predict fuses them, and ``OUT/summary.csv`` the figures next to the recorded ones. A fold already scored
is kept (the command resumes).
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import shutil
import sys
from pathlib import Path

FOLD = re.compile(r"^(?P<stem>.+)_fold(?P<index>\d+)$")
AGREE = 0.002  # regenerated and recorded pooled figures further apart than this: said (fp16 weights move a few clips)


def fold_views(info: dict, cv_keys: dict[str, str]) -> dict[str, dict]:
    """The bundle's fold models grouped by stem, each with its recorded cross-validation (``cv``) and members
    in fold order. A stem's cross-validation is the one recorded under its own name, under ``--cv STEM=KEY``, or
    under the one key its name ends with (``audio_stats`` and ``stats``)."""
    from mmfer.errors import MmferError

    recorded = (info.get("provenance") or {}).get("audio_cross_validation") or {}
    views: dict[str, dict] = {}
    for name, spec in info["branches"].items():
        m = FOLD.match(name)
        if m:
            views.setdefault(m["stem"], {"members": {}})["members"][int(m["index"])] = (name, spec)
    if not views:
        raise MmferError("the bundle has no fold models (branches named <stem>_fold<i>): nothing to score out of fold")
    for stem in [s for s in cv_keys if s not in views]:
        raise MmferError(f"--cv {stem}=...: the bundle has no fold models named {stem}_fold<i> "
                         f"(it has {', '.join(sorted(views))})")
    for stem, view in views.items():
        keys = [cv_keys[stem]] if stem in cv_keys else (
            [stem] if stem in recorded else [k for k in recorded if stem.endswith("_" + k)])
        if len(keys) != 1 or keys[0] not in recorded:
            raise MmferError(f"fold models {stem}_fold<i>: no single recorded cross-validation matches (recorded: "
                             f"{', '.join(sorted(recorded)) or 'none'}); name it with --cv {stem}=KEY")
        cv = recorded[keys[0]]
        folds = cv.get("folds") or []
        if sorted(view["members"]) != list(range(1, len(folds) + 1)):
            raise MmferError(f"fold models {stem}_fold<i>: folds {sorted(view['members'])} but the cross-validation "
                             f"{keys[0]!r} records {len(folds)} fold(s) with their speakers")
        view.update(key=keys[0], cv=cv)
    return views


def check_data(stem: str, view: dict, *, bundle_dir: Path, data: Path) -> None:
    """Before any scoring: ``data`` must hold clips of the speakers each fold held out (a view trained on other
    data is named, with the option that gives it its own), so a wrong list costs seconds, not the other views'
    scoring first."""
    from mmfer.data.sources import pooled_records
    from mmfer.data.splits import fold_records
    from mmfer.engine.checkpoint import load_checkpoint
    from mmfer.engine.config import config_from_dict
    from mmfer.errors import MmferError

    ckpt = load_checkpoint(bundle_dir / view["members"][1][1]["checkpoint"])
    config = config_from_dict(ckpt["config"], where=f"{stem}_fold1: config")
    pooled = pooled_records(data, ckpt["input_kind"], splits=(config.data.train_split, config.data.val_split))
    for index, fold in enumerate(view["cv"]["folds"], start=1):
        speakers = fold["speakers"].split()
        if not fold_records(pooled, [speakers], 0, by=view["cv"].get("by", "speaker"))[1]:
            raise MmferError(f"{data}: none of its clips is of the speakers fold {index} of {stem} held out "
                             f"({', '.join(speakers)}): not the data these folds trained on (a RAVDESS folder "
                             "names its speakers ravdess:NN, a speech list as its speaker column does); give the "
                             f"right one for this view with --data-for {stem}=PATH")


def score_view(root: Path, stem: str, view: dict, *, bundle_dir: Path, data: Path, progress: bool) -> dict:
    """Lay out ``OUT/<stem>`` as a folds run from the bundle's files and score each fold; its summary."""
    from mmfer.engine.folds import summarise_folds
    from mmfer.engine.scoring import score_split
    from mmfer.scores import read_scores

    out = root / stem
    runs = []
    for index, fold in enumerate(view["cv"]["folds"], start=1):
        name, spec = view["members"][index]
        run = out / f"fold{index}"
        # what the scores were made of: another --data, or a rebuilt bundle's weights, are scored afresh
        info = {"index": index, "of": len(view["cv"]["folds"]), "by": view["cv"].get("by", "speaker"),
                "speakers": fold["speakers"].split(), "val_clips": fold.get("clips"), "from_bundle": name,
                "data": str(Path(data).resolve()), "checkpoint_sha256": _sha256(bundle_dir / spec["checkpoint"])}
        if view["cv"].get("within"):
            info["within"] = view["cv"]["within"]
        kept = run / "fold.json"
        done = (run / "scores_Val.csv").is_file() and kept.is_file() and json.loads(kept.read_text(encoding="utf-8")) == info
        if not (done and read_scores(run / "scores_Val.csv").clip_ids):
            run.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(bundle_dir / spec["checkpoint"], run / "best.pt")
            kept.write_text(json.dumps(info) + "\n", encoding="utf-8")
            score_split(run, data=data, split="Val", out=run / "scores_Val.csv", progress=progress)
        runs.append(run)
    return summarise_folds(out, runs, by=view["cv"].get("by", "speaker"), within=view["cv"].get("within"))


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def fuse_views(root: Path, views: dict[str, dict]) -> dict:
    """The views' out-of-fold scores fused as the bundle fuses them (each stem's members' weights summed, its
    temperature first), written to ``OUT/audio/scores_oof.csv``; and the same weights without temperatures (the
    plain pair the model card's figures are). Where the views name clips differently (a speech list by the
    file's name, an AFEW folder by Class/file), every view's ``scores_oof.csv`` is rewritten with the file's
    name, in the first view's order, so that they and a new recipe's runs on a speech list fuse with `mmfer fuse`."""
    import numpy as np

    from mmfer.errors import MmferError
    from mmfer.fusion.methods import apply_temperature
    from mmfer.metrics import evaluate
    from mmfer.scores import read_scores, write_scores

    scores = {stem: read_scores(root / stem / "scores_oof.csv") for stem in views}
    first_stem, first = next(iter(scores.items()))
    same = all(sorted(s.clip_ids) == sorted(first.clip_ids) for s in scores.values())

    def keys(ids) -> list[str]:
        return list(ids) if same else [c.replace("\\", "/").rsplit("/", 1)[-1] for c in ids]

    ids = keys(first.clip_ids)
    order = {c: i for i, c in enumerate(ids)}
    probs = {}
    for stem, s in scores.items():
        mine = keys(s.clip_ids)
        if len(set(mine)) != len(mine) or sorted(mine) != sorted(order):
            raise MmferError(f"{stem}: its folds held out other clips than {first_stem}'s: the views cannot "
                             "be fused clip by clip")
        probs[stem] = s.probs[np.argsort([order[c] for c in mine])]
        if not same:
            write_scores(root / stem / "scores_oof.csv", ids, first.labels, probs[stem])
    weights = {stem: sum(spec["weight"] for _, spec in view["members"].values()) for stem, view in views.items()}
    total = sum(weights.values())
    temperatures = {stem: next(iter(view["members"].values()))[1].get("temperature") for stem, view in views.items()}
    fused = sum(weights[s] / total * apply_temperature(probs[s], temperatures[s] or 1.0) for s in views)
    plain = sum(weights[s] / total * probs[s] for s in views)
    (root / "audio").mkdir(exist_ok=True)
    write_scores(root / "audio" / "scores_oof.csv", ids, first.labels, fused)
    # the first view's folds, clip by clip, for per-fold figures of the fused scores
    folds = [keys(read_scores(root / first_stem / f"fold{i}" / "scores_Val.csv").clip_ids)
             for i in range(1, len(views[first_stem]["cv"]["folds"]) + 1)]

    def per_fold(p) -> list[float]:
        return [evaluate([first.labels[order[c]] for c in fold], p[[order[c] for c in fold]])["uar"] for fold in folds]

    return {"bundle": evaluate(first.labels, fused), "no_temperature": evaluate(first.labels, plain),
            "bundle_folds": per_fold(fused), "no_temperature_folds": per_fold(plain),
            "weights": {s: round(w / total, 4) for s, w in weights.items()}, "temperatures": temperatures}


def main(argv: list[str] | None = None) -> int:
    from mmfer.errors import MmferError
    from mmfer.outputs import check_output_file

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default", help="a bundle folder (bundle.json), or 'default' (the shipped one)")
    ap.add_argument("--data", type=Path, required=True,
                    help="the list (or cache) the folds were trained on, e.g. the speech list of tools/speech_list.py")
    ap.add_argument("--out", type=Path, required=True, help="folder for the fold folders, scores and summary.csv")
    ap.add_argument("--data-for", action="append", default=[], metavar="STEM=PATH",
                    help="another list or folder for one view, whose folds trained on other data (e.g. the RAVDESS "
                         "folder for a view of RAVDESS alone)")
    ap.add_argument("--cv", action="append", default=[], metavar="STEM=KEY",
                    help="which recorded cross-validation a view's fold models belong to, where names do not say")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    if str(args.model) == "default":
        from mmfer.inference.bundle import DEFAULT_DIR as bundle_dir
    else:
        bundle_dir = Path(args.model)
    if not (bundle_dir / "bundle.json").is_file():
        raise MmferError(f"--model {args.model}: no bundle.json there; expected a bundle folder or 'default'")
    if not args.data.exists():
        raise MmferError(f"--data {args.data}: no such file or folder")
    for option, given, example in (("--cv", args.cv, "audio_stats=stats"),
                                   ("--data-for", args.data_for, "audio_stats=ravdess_speech/")):
        bad = [c for c in given if "=" not in c]
        if bad:
            raise MmferError(f"{option} {bad[0]}: expected STEM=..., e.g. {example}")
    info = json.loads((bundle_dir / "bundle.json").read_text(encoding="utf-8"))
    views = fold_views(info, dict(c.split("=", 1) for c in args.cv))
    data_for = {stem: Path(path) for stem, path in (c.split("=", 1) for c in args.data_for)}
    for stem, path in data_for.items():
        if stem not in views:
            raise MmferError(f"--data-for {stem}=...: the bundle has no fold models named {stem}_fold<i> "
                             f"(it has {', '.join(sorted(views))})")
        if not path.exists():
            raise MmferError(f"--data-for {stem}={path}: no such file or folder")
    check_output_file(args.out / "summary.csv", option="--out",
                      inputs=[bundle_dir / "bundle.json", args.data, *data_for.values()])
    for stem, view in views.items():
        check_data(stem, view, bundle_dir=bundle_dir, data=data_for.get(stem, args.data))
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for stem, view in views.items():
        summary = score_view(args.out, stem, view, bundle_dir=bundle_dir, data=data_for.get(stem, args.data),
                             progress=not args.no_progress)
        was = view["cv"].get("pooled_uar")
        rows.append({"view": stem, "recorded_as": view["key"], "clips": sum(f["clips"] for f in summary["folds"]),
                     "pooled_uar": summary["pooled_uar"], "pooled_accuracy": summary["pooled_accuracy"],
                     "recorded_pooled_uar": was,
                     "fold_uar": " ".join(f"{f['uar']:.3f}" for f in summary["folds"]),
                     "recorded_fold_uar": " ".join(f"{f['uar']:.3f}" for f in view["cv"]["folds"])})
        if was is not None and abs(summary["pooled_uar"] - was) > AGREE:
            print(f"bundle_folds: {stem}: pooled uar {summary['pooled_uar']:.4f} here, {was:.4f} recorded: is "
                  f"{data_for.get(stem, args.data)} the data its folds were trained on?", file=sys.stderr)
    if len(views) > 1:
        fused = fuse_views(args.out, views)
        for name, key in (("audio, as predict fuses it (weights and temperatures)", "bundle"),
                          ("audio, weights alone (the model card's pair figures)", "no_temperature")):
            m = fused[key]
            rows.append({"view": name, "recorded_as": "", "clips": m["n"], "pooled_uar": round(m["uar"], 4),
                         "pooled_accuracy": round(m["accuracy"], 4), "recorded_pooled_uar": None,
                         "fold_uar": " ".join(f"{u:.3f}" for u in fused[f"{key}_folds"]), "recorded_fold_uar": ""})
        print(f"fused with weights {fused['weights']} and temperatures {fused['temperatures']}")
    with open(args.out / "summary.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    for r in rows:
        was = "" if r["recorded_pooled_uar"] is None else f" (recorded {r['recorded_pooled_uar']:.4f})"
        print(f"{r['view']}: uar {r['pooled_uar']:.4f}{was}  accuracy {r['pooled_accuracy']:.4f}  {r['clips']} clips"
              f"\n    folds {r['fold_uar']}" + (f" (recorded {r['recorded_fold_uar']})" if r["recorded_fold_uar"] else ""))
    print(f"wrote {args.out / 'summary.csv'}")
    return 0


if __name__ == "__main__":
    from mmfer.errors import run_tool_main

    sys.exit(run_tool_main(main, prog="bundle_folds"))
