"""The ``mmfer`` command. Each subcommand parses its arguments and calls one library function,
which Python users can call directly too. Errors a user can meet print a message, not a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
from pathlib import Path
from typing import Sequence

from mmfer import __version__
from mmfer.errors import MmferError
from mmfer.plugins import import_user_modules

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- preprocess (issue 2)
def _add_preprocess(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "preprocess",
        help="decode clips into cached faces, landmarks and audio",
        description="Cache aligned faces, landmark tracks and audio of every clip; re-running resumes.",
    )
    p.add_argument("source", help="AFEW-style root (Train/Val/Test), a CSV list (path,label[,split][,clip_id]), a folder "
                                  "or a video")
    p.add_argument("--out", required=True, help="cache folder (created; manifest.jsonl inside)")
    p.add_argument("--splits", default=None, help="comma list, e.g. Train,Val (default: all present)")
    p.add_argument("--workers", type=int, default=0,
                   help="parallel clip worker processes (default 0: one per CPU core, fewer for a handful of clips)")
    from mmfer.data.cache import PreprocessSettings

    d = PreprocessSettings()  # one source of defaults for the CLI and the library
    from mmfer.faces.backends import BUILTIN_BACKENDS

    p.add_argument("--face-backend", default=d.face_backend, metavar="|".join(BUILTIN_BACKENDS),
                   help=f"face detector and landmarks (default {d.face_backend}; dlib_mtcnn adds MTCNN where dlib's "
                        "detector finds nothing, as the default model's predict does; a backend of your own: "
                        "register_backend in a module, then mmfer --import MODULE)")
    p.add_argument("--crop-size", type=int, default=d.crop_size, help="aligned face crop side in pixels")
    p.add_argument("--fps", type=float, default=d.fps, help="resample video to this frame rate (default: native)")
    p.add_argument("--detect-every", type=int, default=d.detect_every,
                   help=f"run the face detector every K frames, track landmarks in between (default {d.detect_every})")
    p.add_argument("--fit-every", type=int, default=d.fit_every,
                   help=f"fit landmarks every K frames, interpolate between fits of the same face; 1 fits every "
                        f"frame (default {d.fit_every}; lower it with a low --fps)")
    p.add_argument("--detect-max-side", type=int, default=d.detect_max_side,
                   help=f"longest side of frames given to the detector (default {d.detect_max_side})")
    p.add_argument("--max-frames", type=int, default=d.max_frames, help="cap on frames per clip")
    p.add_argument("--shard", default="0/1",
                   help="i/n: process only shard i of n, numbered from 0 (0/4 is the first quarter; split work across "
                        "machines)")
    p.add_argument("--strict", action="store_true", help="exit code 1 if any clip failed, or none was found")
    p.add_argument("--retry-failed", action="store_true", help="redo clips that failed in an earlier run")
    p.add_argument("--prune", action="store_true",
                   help="erase the cached clips whose source was deleted or renamed: their arrays and every manifest "
                        "record of them (docs/privacy.md)")
    p.add_argument("--resume", action="store_true",
                   help="what preprocess always does (clips already cached are kept); accepted as train and predict "
                        "take it")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    def run(args: argparse.Namespace) -> int:
        from mmfer.data.preprocess import parse_shard, preprocess

        settings = PreprocessSettings(  # checks its values, naming the options
            face_backend=args.face_backend, crop_size=args.crop_size, fps=args.fps,
            detect_max_side=args.detect_max_side, detect_every=args.detect_every, max_frames=args.max_frames,
            fit_every=args.fit_every,
        )
        try:
            summary = preprocess(
                args.source, args.out, splits=args.splits, workers=args.workers, settings=settings,
                shard=parse_shard(args.shard), retry_failed=args.retry_failed, progress=not args.no_progress,
                prune=args.prune)
        except KeyboardInterrupt:
            print(f"mmfer preprocess: interrupted; finished clips are kept in {args.out}. "
                  "Run the same command again to resume.", file=sys.stderr)
            return 130
        print(summary.table())
        if summary.failures:  # on stderr too: a CI log of a failed --strict run had only the exit code
            from mmfer.text import terminal_text

            f = summary.failures[0]
            print(f"mmfer preprocess: {len(summary.failures)} clip(s) failed, e.g. {f.split}/{f.clip_id}: {terminal_text(f.reason, newlines=False)} "
                  "(all in the summary above)", file=sys.stderr)
        if args.strict and not summary.total and parse_shard(args.shard)[1] == 1:  # (a shard of a small source may hold none)
            print(f"mmfer preprocess: error: no clips in {args.source}"
                  + (f" of splits {args.splits}" if args.splits else "") + " (--strict)", file=sys.stderr)
            return 1
        return 1 if args.strict and summary.failures else 0

    p.set_defaults(func=run)


# ---------------------------------------------------------------- train / scores (issue 3)
def _fold_numbers(text: str) -> list[int]:
    """``--only-folds 1,3``: fold numbers, comma-separated."""
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: fold numbers separated by commas, e.g. 1,2") from None


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train one branch from a config")
    p.add_argument("config", metavar="CONFIG",
                   help="train config YAML, e.g. configs/c3d.yaml (a shipped config is also found by its name: c3d)")
    p.add_argument("--data", required=True, metavar="DATA",
                   help="a cache made by `mmfer preprocess`; for file branches also an image tree (face_frame), an "
                        "audio tree or a CSV list of audio files (path,label and optionally speaker,corpus,split,use,clip_id)")
    p.add_argument("--out", required=True, metavar="RUN", help="run directory (checkpoints, logs, scores)")
    p.add_argument("--epochs", type=int, default=None, metavar="N", help="override optim.epochs of the config")
    p.add_argument("--seed", type=int, default=None, metavar="N",
                   help="override the config's seed (ensemble members; set data.holdout_seed to share Val)")
    p.add_argument("--resume", action="store_true", help="continue RUN/last.pt exactly where it stopped")
    p.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:1 (default: the config's device)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (log lines only)")
    p.add_argument("--folds", default=None, metavar="K|corpus",
                   help="speaker-disjoint K-fold cross-validation (speakers from a CSV list's speaker column or "
                        "RAVDESS / CREMA-D file names), or 'corpus': leave-one-corpus-out over a CSV list's corpora; "
                        "RUN/fold<i>, RUN/folds.json with mean and range of Val uar, RUN/scores_oof.csv (docs/formats.md)")
    p.add_argument("--folds-within", default=None, metavar="CORPUS",
                   help="with --folds K and a CSV list: deal only CORPUS's speakers to the K folds; the other "
                        "corpora train every fold and are never validated on (does adding them help its unseen "
                        "speakers?)")
    p.add_argument("--only-folds", default=None, metavar="I[,J...]", type=_fold_numbers,
                   help="with --folds: train only these folds now (from 1; one per machine or GPU, or some today and "
                        "the rest later); the summary is written once every fold is in RUN")

    def run(args: argparse.Namespace) -> int:
        from mmfer.engine.config import load_train_config
        from mmfer.engine.train import train

        config = load_train_config(args.config)
        if args.folds_within is not None and args.folds is None:
            raise MmferError("--folds-within goes with --folds K")
        if args.only_folds is not None and args.folds is None:
            raise MmferError("--only-folds goes with --folds")
        if args.folds is not None:
            from mmfer.engine.folds import train_folds

            if args.resume:  # what --folds always does: finished folds are kept, an interrupted one continued
                logging.getLogger(__name__).info("--folds resumes unfinished folds by itself (--resume changes nothing)")
            from mmfer.outputs import check_output_dir

            check_output_dir(args.out, option="--out")
            s = train_folds(config, data=args.data, out=args.out, folds=args.folds, folds_within=args.folds_within,
                            epochs=args.epochs, seed=args.seed, device=args.device, progress=not args.no_progress,
                            only_folds=args.only_folds)
            for r in s["folds"]:
                print(f"fold {r['fold']} ({r['speakers']}): accuracy {r['accuracy']:.4f}, uar {r['uar']:.4f}")
            if s.get("pending"):
                print(f"folds {','.join(map(str, s['pending']))} not in {args.out} yet (to train: the same command "
                      f"with --only-folds {','.join(map(str, s['pending']))}); the summary is written by the command "
                      "that finds every fold there")
                return 0
            print(f"uar {s['uar_mean']:.4f} +- {s['uar_std']:.4f} (range {s['uar_min']:.4f}-{s['uar_max']:.4f}); "
                  f"pooled out-of-fold accuracy {s['pooled_accuracy']:.4f}, uar {s['pooled_uar']:.4f}")
            if "test_ensemble" in s:
                t = s["test_ensemble"]
                print(f"Test (evaluation only) by the {len(s['folds'])} fold models together: accuracy "
                      f"{t['accuracy']:.4f}, uar {t['uar']:.4f} ({t['clips']} clips)")
            print(f"summary: {Path(args.out) / 'folds.json'}; out-of-fold scores: {Path(args.out) / 'scores_oof.csv'}")
            return 0

        result = train(config, data=args.data, out=args.out, epochs=args.epochs, seed=args.seed,
                       resume=args.resume, device=args.device, progress=not args.no_progress)
        best = result["best"]
        if best and result.get("rank", 0) == 0:  # one report under torchrun
            print(f"best epoch {best['epoch']}: Val accuracy {best['val_accuracy']:.4f}, uar {best['val_uar']:.4f}"
                  f" -> {result['best_checkpoint']}")
        for split, path in result["scores"].items():
            print(f"scores {split}: {path}")
        return 0

    p.set_defaults(func=run)


def _add_scores(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("scores", help="write per-clip class scores of a trained run")
    p.add_argument("run", metavar="RUN", help="run directory (uses best.pt) or a checkpoint file")
    p.add_argument("--data", required=True, metavar="DATA",
                   help="a cache made with the run's preprocessing settings, or the image tree, audio tree or CSV list "
                        "of a file branch")
    p.add_argument("--split", default="Val", help="split to score (default Val)")
    p.add_argument("--out", default=None, metavar="FILE", help="output CSV (default RUN/scores_<split>.csv, the run's "
                   "own, which fuse reads: rewritten only with the scores of the same clips)")
    p.add_argument("--device", default=None,
                   help="auto | cpu | cuda | cuda:1 (default: the run's device; the CPU where a GPU run meets no GPU)")
    p.add_argument("--views", type=int, default=None, choices=(1, 2, 10),
                   help="face images: 1 whole face, 2 + mirror, 10 ten-crop (default: the run's data.eval_views)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    def run(args: argparse.Namespace) -> int:
        from mmfer.engine.scoring import score_split

        path = score_split(args.run, data=args.data, split=args.split, out=args.out, device=args.device,
                           views=args.views, progress=not args.no_progress)
        print(f"scores {args.split}: {path}")
        return 0

    p.set_defaults(func=run)


# ---------------------------------------------------------------- fuse / submit / evaluate / ablate (issue 4)
def _add_fusion_arguments(p: argparse.ArgumentParser, *, out_help: str) -> None:
    """The options `fuse` and `ablate` share: both tune one fusion method on the same Val files."""
    from mmfer.fusion.methods import METHODS, OBJECTIVES

    p.add_argument("--val", nargs="+", required=True, metavar="VAL.csv", help="one Val score CSV per branch")
    p.add_argument("--test", nargs="+", default=None, metavar="TEST.csv", help="Test score CSVs, same branch order")
    p.add_argument("--out", required=True, help=out_help)
    p.add_argument("--method", default="weighted", choices=tuple(METHODS), help="fusion method (default: weighted)")
    p.add_argument("--names", default=None, help="branch names a,b,c (default: from the file or run folder names)")
    p.add_argument("--cv-folds", type=int, default=5, metavar="K",
                   help="K-fold cross-validation of the fusion over Val's clips (stratified by class; clips of one "
                        "actor may fall in several folds): the cross-validated Val estimate (default 5)")
    # the old spelling, which `train --folds` (cross-validation of models over speakers) now owns alone
    p.add_argument("--folds", dest="fusion_folds_old", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the fusion itself: the --cv-folds split of Val's clips and the random weight "
                        "candidates of searches over many branches (train's --seed seeds a model; default 0)")
    p.add_argument("--calibrate", action="store_true", help="temperature-calibrate each branch on Val first")
    p.add_argument("--objective", default="accuracy", choices=OBJECTIVES,
                   help="what weight searches maximise (default accuracy, the challenge's measure; uar: mean class "
                        "accuracy)")


def _cv_folds(args: argparse.Namespace) -> int:
    """``--cv-folds``, or the old ``--folds`` of fuse and ablate with a warning."""
    if args.fusion_folds_old is not None:
        log.warning("--folds of fuse and ablate is now --cv-folds (train's --folds is cross-validation of models); "
                    "--folds %d taken as --cv-folds %d", args.fusion_folds_old, args.fusion_folds_old)
        return args.fusion_folds_old
    return args.cv_folds


def _add_fuse(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fuse", help="late fusion of branch scores, tuned on Val")
    _add_fusion_arguments(p, out_help="folder for weights.json, fused_Val.csv, fused_Val_cv.csv (cross-validated), "
                                      "fused_Test.csv")

    def run(args: argparse.Namespace) -> int:
        from mmfer.fusion.fuse import format_fuse_report, fuse

        report = fuse(args.val, args.test, out=args.out, method=args.method, names=args.names,
                      calibrate=args.calibrate, cv_folds=_cv_folds(args), seed=args.seed, objective=args.objective)
        print(format_fuse_report(report))
        return 0

    p.set_defaults(func=run)


def _add_submit(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("submit", help="write or check an EmotiW submission zip")
    p.add_argument("scores", nargs="?", default=None, metavar="FUSED_Test.csv", help="fused Test score CSV")
    p.add_argument("--index", required=True, metavar="INDEX",
                   help="the test clips: Test video folder, AFEW root, CSV list or preprocessing cache")
    p.add_argument("--out", default=None, help="zip to write (e.g. team.zip)")
    p.add_argument("--check", default=None, metavar="ZIP", help="validate an existing zip instead of writing one")
    p.add_argument("--fill-missing", default=None, metavar="prior|SCORES.csv",
                   help="predict clips without a fused score from the class prior (of fused_Val.csv beside the "
                        "scores, else of the scores) or from another score CSV (e.g. the audio branch)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")

    def run(args: argparse.Namespace) -> int:
        import json

        from mmfer import submission
        from mmfer.text import terminal_text

        if args.check:
            problems = submission.check_submission(args.check, index=args.index)
            if args.json:
                print(json.dumps({"zip": args.check, "ok": not problems, "problems": problems}))
            else:
                print(terminal_text(f"{args.check}: OK") if not problems else "\n".join(  # names from others' zips
                    terminal_text(line, newlines=False) for line in [f"{args.check}: INVALID", *problems]))
            return 1 if problems else 0
        if not args.scores or not args.out:
            raise MmferError("submit: give FUSED_Test.csv and --out team.zip (or --check team.zip to validate)")
        report = submission.write_submission(
            args.scores, index=args.index, out=args.out, fill_missing=args.fill_missing
        )
        print(json.dumps({"ok": not report["problems"], **report}, indent=1) if args.json
              else terminal_text(submission.format_submit_report(report)))
        return 1 if report["problems"] else 0

    p.set_defaults(func=run)


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="accuracy, mean class accuracy and confusion of a score CSV")
    p.add_argument("scores", metavar="SCORES.csv", nargs="+",
                   help="a score or predictions CSV; several (e.g. runs/*/scores_Val.csv) give one table, a row each")
    p.add_argument("--labels-from", default="csv-column", metavar="csv-column|folder|ravdess|cremad|FILE.csv",
                   help="where true labels come from (default: the label column)")
    p.add_argument("--root", default=None, help="media folder for --labels-from folder (or ravdess/cremad): lists "
                   "every video, image and audio file, so unscored ones count as missing")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--png", default=None, metavar="PATH", help="write the confusion matrix as a PNG")
    p.add_argument("--report", default=None, metavar="HTML", help="one self-contained HTML page: metrics, confusion, rows")

    def run(args: argparse.Namespace) -> int:
        import json

        from mmfer.metrics import evaluate_file, format_comparison, format_report

        if len(args.scores) > 1:  # branches side by side; each file's own figures, nothing pooled
            if args.png or args.report:
                raise MmferError("--png and --report describe one score file: give one, or compare several without them")
            results = [evaluate_file(f, labels_from=args.labels_from, root=args.root) for f in args.scores]
            print(json.dumps({"ok": True, "results": results}) if args.json else format_comparison(results))
            return 0
        result = evaluate_file(args.scores[0], labels_from=args.labels_from, root=args.root, png=args.png,
                               report=args.report)
        print(json.dumps({"ok": True, **result}) if args.json else format_report(result))
        if not args.json:
            for key in ("png", "report"):
                if result.get(key):
                    print(f"wrote {result[key]}")
        return 0

    p.set_defaults(func=run)


def _add_ablate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ablate", help="fuse every subset of branches and tabulate what each modality adds")
    _add_fusion_arguments(p, out_help="folder for ablation.md, ablation.csv, ablation.json, ablation.png and subsets/ "
                                      "(each subset's cross-validated Val scores, and Test scores with --test)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    def run(args: argparse.Namespace) -> int:
        from pathlib import Path

        from mmfer.fusion.ablation import ablate

        ablate(args.val, args.test, out=args.out, method=args.method, names=args.names, cv_folds=_cv_folds(args),
               seed=args.seed, objective=args.objective, calibrate=args.calibrate, progress=not args.no_progress)
        print((Path(args.out) / "ablation.md").read_text(encoding="utf-8").rstrip())
        print(f"wrote {', '.join(str(Path(args.out) / f) for f in ('ablation.csv', 'ablation.json', 'ablation.png'))}"
              f" and {Path(args.out) / 'subsets'}/")
        return 0

    p.set_defaults(func=run)


# ---------------------------------------------------------------- predict (issue 5)
def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="emotion probabilities for videos, face images and audio files",
        description="One CSV row per input (folders are searched recursively); a bad file gets an error row.",
    )
    from mmfer.data.index import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS, VIDEO_EXTENSIONS

    kinds = "; ".join(f"{k}: {' '.join(e[1:] for e in exts)}" for k, exts in (
        ("videos", VIDEO_EXTENSIONS), ("images", IMAGE_EXTENSIONS), ("audio", AUDIO_EXTENSIONS)))
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help=f"video, image or audio files, or folders of them ({kinds})")
    p.add_argument("--out", default="predictions.csv",
                   help="predictions CSV to write (default predictions.csv); - writes none, and no record beside it: "
                        "the table or --json on stdout only (a read-only working folder)")
    p.add_argument("--model", default="default", metavar="default|BUNDLE|RUN|FUSE",
                   help="the shipped model (default), a bundle folder, a run of `mmfer train` or a `mmfer fuse` folder")
    p.add_argument("--submission", default=None, metavar="ZIP", help="also write an EmotiW zip (clip ids must be unique)")
    p.add_argument("--plots", default=None, metavar="DIR", help="one PNG timeline of class probabilities per video")
    p.add_argument("--frames", default=None, metavar="CSV",
                   help="one row per analysed video frame (time, face box, face model probabilities) and audio window")
    p.add_argument("--report", default=None, metavar="HTML", help="one self-contained HTML page: table, timelines, metrics")
    p.add_argument("--segments", default=None, metavar="CSV",
                   help="one row per segment of every video and sound file (start, end, predicted, probabilities, face_ratio, "
                        "track)")
    p.add_argument("--segment-seconds", type=float, default=4.0, metavar="S",
                   help="segment length in seconds (default 4; a remainder under half of it joins the last segment)")
    p.add_argument("--segment-by", default="fixed", choices=("fixed", "speech"),
                   help="fixed windows, or windows whose ends move to the quietest moment of the sound nearby")
    p.add_argument("--start", type=float, default=0.0, metavar="S", help="analyse each video and sound file from this second on")
    p.add_argument("--duration", type=float, default=None, metavar="S",
                   help="analyse at most this many seconds of each video and sound file (default: to the end)")
    p.add_argument("--frame-pooling", default=None, choices=("mean", "log_mean", "confidence"),
                   help="how face-frame probabilities are pooled, for any model (default: the model's own)")
    p.add_argument("--face-backend", default=None, metavar="NAME",
                   help="the face detector and landmarks instead of the model's own (its face branches learnt from "
                        "the faces their own found: measure before relying on another); one of "
                        "dlib|dlib_mtcnn|mtcnn|insightface|none, or your own (register_backend, mmfer --import)")
    p.add_argument("--no-speech-check", action="store_true",
                   help="let the voice models read any sound that is not silent (default: only sound in which a "
                        "voice activity detector hears speech; a fan, hum or noise floor is left to the faces)")
    p.add_argument("--shard", default=None, metavar="I/N",
                   help="only the inputs of shard I of N, numbered from 0 (as preprocess --shard); merge the CSVs with "
                        "`mmfer merge`")
    p.add_argument("--labels-from", default=None, choices=("folder", "ravdess", "cremad"),
                   help="true labels from each file's path (the emotion folder, or RAVDESS/CREMA-D file names): a "
                        "label column in --out, which fusing these predictions as a Val branch needs, and the "
                        "report's metrics")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:1 (default auto)")
    p.add_argument("--resume", action="store_true",
                   help="keep the rows --out already holds for these inputs and analyse only the others "
                        "(an interrupted or killed run; --out is saved every minute)")
    p.add_argument("--quiet", action="store_true", help="no table on stdout")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object instead of the table: counts, the error rows and the files written")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--strict", action="store_true",
                   help="exit code 1 if any input got an error row (as preprocess --strict); every row is still written")

    def run(args: argparse.Namespace) -> int:
        from mmfer.predict import predict

        if args.out == "-":
            args.out = None  # (the interrupted-run hint then says no CSV was kept)
        result = predict(args.paths, model=args.model, out=args.out, plots=args.plots, submission=args.submission,
                         frames=args.frames, report=args.report, segments=args.segments,
                         segment_seconds=args.segment_seconds, segment_by=args.segment_by, start=args.start,
                         duration=args.duration, shard=args.shard, frame_pooling=args.frame_pooling,
                         face_backend=args.face_backend,
                         labels_from=args.labels_from, device=args.device,
                         progress=not args.no_progress, resume=args.resume, speech_check=not args.no_speech_check)
        if args.json:
            import json

            print(json.dumps(result.summary(), indent=1))
        elif not args.quiet:
            print(result.table())
        return 1 if args.strict and result.errors else 0

    p.set_defaults(func=run)


def _add_merge(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "merge",
        help="one CSV from the per-shard CSVs of `predict --shard` (predictions, segments or frames)",
        description="Files in the order a run over their folder lists them, each file's rows as its shard "
                    "wrote them; a row two inputs both hold is kept once. All inputs must have the same columns.",
    )
    p.add_argument("inputs", nargs="+", metavar="CSV", help="the per-shard CSVs (one kind)")
    p.add_argument("--out", required=True, help="the merged CSV to write")
    p.add_argument("--partial", action="store_true",
                   help="also merge predictions CSVs whose run has not finished (stopped or still running): the "
                        "rows so far; by default such a shard is refused")

    def run(args: argparse.Namespace) -> int:
        from mmfer.inference.merge import merge_csvs

        done = merge_csvs(args.inputs, args.out, partial=args.partial)
        print(f"wrote {done['out']}: {done['rows']} row(s) from {done['inputs']} file(s)")
        return 0

    p.set_defaults(func=run)


# ---------------------------------------------------------------- bench (issue 6)
def _add_bench(sub: argparse._SubParsersAction) -> None:
    from mmfer.bench import BRANCHES, STAGES

    p = sub.add_parser(
        "bench",
        help="time decoding, preprocessing, predict and training on real clips",
        description="Decode and preprocess frames/s, predict seconds per clip, training clips/s per branch and "
                    "peak memory of each stage, measured in one run on the same cores (see BENCHMARKS.md).",
    )
    p.add_argument("--videos", default=None, metavar="DIR",
                   help="folder of video clips (default: the CREMA-D fixtures of a source checkout, tests/assets/cremad)")
    p.add_argument("--out", default=None, metavar="FILE.json", help="also write every figure to this JSON file")
    p.add_argument("--device", default="cpu", metavar="cpu|cuda|cuda:N",
                   help="device for predict and training (default cpu)")
    p.add_argument("--workers", type=int, default=0,
                   help="preprocessing workers (default 0: auto, as `mmfer preprocess`)")
    p.add_argument("--repeat", type=int, default=1,
                   help="list every clip N times, to time a corpus-sized run where worker start-up is amortised")
    p.add_argument("--steps", type=int, default=3, help="timed training steps per branch (default 3)")
    p.add_argument("--warmup", type=int, default=1, help="untimed training steps first (default 1)")
    p.add_argument("--batch-size", type=int, default=None, help="training batch size (default: each config's)")
    p.add_argument("--branches", default=",".join(BRANCHES), help=f"comma list (default {','.join(BRANCHES)})")
    p.add_argument("--stages", default=",".join(STAGES), help=f"comma list (default {','.join(STAGES)})")
    p.add_argument("--max-clips", type=int, default=None, help="time only the first N clips")
    p.add_argument("--long-clip", type=float, default=None, metavar="SECONDS",
                   help="instead of --videos: one synthetic 25-fps clip this long, to measure memory and predict's "
                        "cost per second of video on long clips (e.g. --long-clip 600 --stages predict)")
    p.add_argument("--long-size", default="1080p", choices=("720p", "1080p"), help="frame size of --long-clip")
    p.add_argument("--model", default="default", help="what predict loads, as `mmfer predict --model` (default: default)")
    p.add_argument("--markdown", action="store_true", help="print the table as markdown (for BENCHMARKS.md)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    def run(args: argparse.Namespace) -> int:
        import json

        from mmfer.bench import bench, format_markdown, format_table

        if args.out:
            from mmfer.outputs import check_output_file

            check_output_file(args.out, option="--out")
        result = bench(args.videos, device=args.device, workers=args.workers, repeat=args.repeat, steps=args.steps,
                       warmup=args.warmup, batch_size=args.batch_size, branches=args.branches, stages=args.stages,
                       max_clips=args.max_clips, model=args.model, long_clip=args.long_clip, long_size=args.long_size,
                       progress=not args.no_progress)
        result["command"] = _bench_command(args, p)  # how to re-run it
        print(format_markdown(result) if args.markdown else format_table(result))
        if args.out:
            from mmfer.outputs import write_file

            write_file(args.out, json.dumps(result, indent=1))
            print(f"wrote {args.out}")
        return 0

    p.set_defaults(func=run)


_COMMANDS = (
    _add_preprocess,
    _add_train,
    _add_scores,
    _add_fuse,
    _add_submit,
    _add_evaluate,
    _add_ablate,
    _add_predict,
    _add_merge,
    _add_bench,
)


def _bench_command(args: argparse.Namespace, p: argparse.ArgumentParser) -> str:
    """The command line that re-runs a bench: global --import first, then bench's own options as typed."""
    words = ["mmfer", *(f"--import {shlex.quote(m)}" for m in getattr(args, "imports", []) or []), "bench"]
    for k, v in vars(args).items():
        if k in ("func", "command", "verbose", "imports", "out", "markdown", "no_progress") or v == p.get_default(k):
            continue
        words.append(f"--{k.replace('_', '-')}" if v is True else f"--{k.replace('_', '-')} {shlex.quote(str(v))}")
    return " ".join(words)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmfer", description="Multimodal video emotion recognition (EmotiW-style, 7 classes)."
    )
    parser.add_argument("--version", action="version", version=f"mmfer {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                        help="import this Python module (or .py file) first (one that registers its own models with "
                             "mmfer.models.registry.register_model, or face backends with "
                             "mmfer.faces.backends.register_backend); repeatable")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add in _COMMANDS:
        add(sub)
    return parser


def _interrupted_hint(args: argparse.Namespace, *, out_written: bool | None = None,
                      same_command_resumes: bool | None = None) -> str:
    """What an interrupted command kept and how to continue: only preprocess, train and predict write as they go;
    the other commands write their outputs at the end. ``out_written``: whether predict wrote --out before it
    stopped (None: not known, so an --out that exists is taken as written)."""
    command = args.command
    if command == "preprocess":
        return "finished clips are kept; re-run the same command to resume"
    if command == "train":
        if getattr(args, "folds", None) is not None:
            return "finished folds and epochs are kept; re-run the same command to resume"
        if (Path(args.out) / "last.pt").is_file():
            try:  # last.pt's own epoch: the log is written just before it
                from mmfer.engine.checkpoint import load_checkpoint

                done = int(load_checkpoint(Path(args.out) / "last.pt")["epoch"])
            except Exception:  # noqa: BLE001 - a hint: a damaged last.pt is said by --resume itself
                done = 0
            kept = f"epochs 1-{done} are kept" if done > 1 else "epoch 1 is kept" if done else "finished epochs are kept"
            return f"{kept}; re-run it with --resume to continue from the last finished epoch"
        return "no epoch had finished, so nothing was kept; re-run the same command (without --resume) to start again"
    out = Path(args.out) if command == "predict" and getattr(args, "out", None) else None
    if out is not None and out.is_file() and out_written is not False:
        if same_command_resumes or (same_command_resumes is None and not any(
                getattr(args, o, None) for o in ("frames", "segments", "plots", "report"))):
            return "the rows of finished files are kept in --out; run the same command again to analyse only the others"
        return ("the rows of finished files are kept in --out; re-run it with --resume (and without --frames, "
                "--segments, --plots, --report) to analyse only the files not yet in it")
    if out is not None and out.is_file():  # stopped before this run wrote it (loading, the first file)
        return (f"no file was finished, so {out} was not written (it is an earlier run's); run the same command "
                "again")
    if command == "predict" and (getattr(args, "frames", None) or getattr(args, "segments", None)):
        return "the rows of finished files are kept in --frames / --segments; run it again to analyse every file"
    if command == "predict":  # --out saves as files finish; none had
        return "no file was finished, so nothing was written; run the same command again"
    return "it writes its outputs at the end, so nothing was written; run it again"


def _say_error(args: argparse.Namespace, text: str) -> None:
    """An error on stderr; with --json also as the one JSON object on stdout (``ok`` false), so a script that
    reads stdout gets an answer it can parse, as on success."""
    from mmfer.text import terminal_text

    print(f"mmfer {args.command}: error: {terminal_text(text)}", file=sys.stderr)
    if getattr(args, "json", False):
        import json

        print(json.dumps({"ok": False, "error": text}))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # said by the command's own parser, with its usage (argparse's top-level usage lists commands)
        commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
        commands.get(getattr(args, "command", None), parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    for stream in (sys.stdout, sys.stderr):  # a file name that is not UTF-8 is printed as \xe9, never a crash
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError, OSError):  # replaced by an object without it (tests, pipes)
            pass
    from mmfer.progress import bars_wanted, terminal_log_handler

    # other libraries' own INFO lines (matplotlib's font cache) only with --verbose
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, handlers=[terminal_log_handler()])
    logging.getLogger("mmfer").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    from mmfer.outputs import private_matplotlib_config

    plot_config = private_matplotlib_config()
    if getattr(args, "no_progress", True) is False and not bars_wanted():
        args.no_progress = True  # a log file or CI gets the log lines, not \r-redrawn bars
    import signal

    from mmfer.signals import sigterm_as_interrupt, stdout_reader_gone

    old_term = sigterm_as_interrupt()  # kill / timeout / a container stop: finished work written, exit 130
    try:
        import_user_modules(args.imports)
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # output still buffered meets a closed pipe here, not in the exit hook
    except BrokenPipeError:
        if not stdout_reader_gone():
            raise
        # `mmfer evaluate ... | head` closed the pipe: it has what it wanted. Send the rest of the output
        # (and Python's flush at exit) to devnull and leave quietly, as a SIGPIPE'd tool would (128 + 13).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except MmferError as e:
        _say_error(args, str(e))
        return 2
    except OSError as e:
        import errno

        if e.errno in (errno.EACCES, errno.EPERM) and e.filename:  # Windows: a file open elsewhere (a spreadsheet)
            _say_error(args, f"cannot open {e.filename}: permission denied (open in another program? a place you "
                             "may not write?); close it or choose another place, then run again")
            return 2
        if e.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
            raise
        why = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
               errno.EROFS: "the file system is read-only"}[e.errno]
        if e.errno == errno.EROFS and not e.filename:  # a read-only place not known to be an output (shared memory)
            _say_error(args, f"a write failed: {why} ({e})")
            return 2
        fix = "choose a writable place" if e.errno == errno.EROFS else "free some space (or choose another place)"
        _say_error(args, f"cannot write {e.filename or 'an output'}: {why}; {fix}, then: "
                         f"{_interrupted_hint(args).split('; ', 1)[-1]}")
        return 2
    except KeyboardInterrupt as e:
        written = getattr(e, "out_written", False) if args.command == "predict" else None
        same = getattr(e, "same_command_resumes", None) if args.command == "predict" else None
        print(f"mmfer {args.command}: interrupted; {_interrupted_hint(args, out_written=written, same_command_resumes=same)}",
              file=sys.stderr)
        code = 130
    finally:
        if old_term is not None:  # main() called in-process (tests, scripts) leaves the handler it found
            signal.signal(signal.SIGTERM, old_term)
        if plot_config is not None:  # (before os._exit below, which runs no exit hook)
            import shutil

            shutil.rmtree(plot_config, ignore_errors=True)
            os.environ.pop("MPLCONFIGDIR", None)
    if code == 130 and argv is None:
        # A Ctrl-C'd command line leaves at once: finished work is on disk, worker processes are terminated,
        # and CPython's exit hook can wait forever on a process pool whose workers were killed mid-task.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    return code


if __name__ == "__main__":
    sys.exit(main())
