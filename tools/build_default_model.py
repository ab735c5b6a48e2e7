"""Build the default model shipped in mmfer/weights/ from finished runs of `mmfer train`, then record
its outputs on the CREMA-D fixtures (tests/assets/default_model_outputs.csv) for the test that checks the
shipped files still load and predict the same.

    python tools/build_default_model.py --face runs/fer2013 \\
        --audio runs/audio_cv runs/audio_stats_cv --audio-shares 0.5 0.5 \\
        --face-weight 0.6 --audio-weight 0.4 --out mmfer/weights
    python tools/build_default_model.py --outputs-only          # re-record the outputs of mmfer/weights

Temperatures: each audio cross-validation folder's out-of-fold scores calibrate its models, and
--face-scores (held-out scores of the face models) calibrate the face ensemble, before the weighted mean.

--keep-audio-from / --keep-face-from BUNDLE keep an existing bundle's audio models, or its face models of video frames
(and its decoding), as they are (checkpoints, temperatures, figures), so one part can be rebuilt without the runs of
the other; the bundle's photo models are not kept (give them again with --photo-face). Checkpoints are re-exported
in fp16 unless --fp32.

--photo-face adds models of tight face photos (configs/face_frame_fer2013.yaml runs) that score only FER2013-like
tight images, as they are (option serves: tight_images), each weighted like one --face model, so a tight photo is
the equal-share mean of every face model; videos and larger images are scored by the --face models alone.

Face runs must be face_frame models (configs/face_frame_video.yaml, on crops of tools/make_video_crops.py, with
--tight-images video; or configs/face_frame_fer2013.yaml with --tight-images as_is); several make an ensemble with the
face weight shared equally. Each --audio is a run or a cross-validation folder of `mmfer train --folds K`
(every fold model joins, sharing that entry's share equally); audio models are audio_cnn or audio_stats.
Checkpoints are exported without training state, in fp16 (a few MB); bundle.json records each run's
held-out figures, its data and licence, the cross-validated figures, and the fusion weights as given.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "assets" / "cremad"
FACE_FIXTURES = REPO / "tests" / "assets" / "cremad_faces"
OUTPUTS = REPO / "tests" / "assets" / "default_model_outputs.csv"

FACE_DATA = ("FER2013 (Goodfellow et al. 2013; ICML 2013 representation learning challenge): 48x48 grey-scale "
             "face crops in the seven classes. Trained on Train minus a stratified, seeded 10% held out for "
             "validation (the figures in metrics, at the last of a number of epochs fixed in advance). At "
             "prediction each aligned video frame is cut to FER2013's framing (mmfer.faces.align.framing_box), made "
             "grey-scale, equalised and resized exactly as in training.")
FACE_VIDEO_DATA = ("FER2013 (Goodfellow et al. 2013; ICML 2013 representation learning challenge): 48x48 grey-scale "
                   "face crops in the seven classes, each shown in a frame at 56-256 px, degraded as video degrades "
                   "it and cut by predict's own detector, landmarks, alignment and framing "
                   "(tools/make_video_crops.py, mmfer.faces.crops). Fine-tuned from a FER2013 model on Train minus a "
                   "stratified, seeded 10% held out for validation (the figures in metrics, at the last of a number "
                   "of epochs fixed in advance). At prediction video frames and face images take the same path.")
FACE_PHOTO_DATA = ("FER2013 (Goodfellow et al. 2013; ICML 2013 representation learning challenge): 48x48 grey-scale "
                   "face crops in the seven classes, taken as they are. Trained on Train minus a stratified, seeded "
                   "10% held out for validation (the figures in metrics, at the last of a number of epochs fixed in "
                   "advance). Scores only tight face photos (serves: tight_images), as they are, with ten-crop.")
FACE_LICENCE = ("FER2013 is research data of unclear, non-commercial terms (faces collected from the web); "
                "this model inherits them: research use only.")
AUDIO_FOLDS = ("RAVDESS speech (Livingstone & Russo 2018), the 15 actors 01-16 without 05 at 16 kHz: 900 utterances, "
               "780 once calm (no counterpart among the seven classes) is left out. Speaker-disjoint 5-fold "
               "cross-validation (mmfer train --folds 5: 3 actors per fold), the epoch count fixed in advance; each "
               "fold model was trained on the other 12 actors and its metrics are on its own 3 held-out actors. ")
AUDIO_DATA = AUDIO_FOLDS + "Leading and trailing silence trimmed."
AUDIO_LICENCE = "RAVDESS is CC BY-NC-SA 4.0: non-commercial, share-alike, attribution; this model inherits it."
# a `--folds K --folds-within ravdess` run on a speech list: RAVDESS's folds as above, nEMO and SAVEE in every fold
AUDIO_DATA_POOLED = (AUDIO_FOLDS
                     + "Every fold also trained on all of nEMO (Christop 2024; Polish, 9 speakers, 4,481 utterances, "
                     "six classes, no Disgust: its clips give the Disgust logit no loss) and SAVEE (Haq & "
                     "Jackson 2009; British English, 4 male speakers, 480 utterances), drawn corpus- and "
                     "class-balanced. "
                     "Leading and trailing silence trimmed.")
AUDIO_LICENCE_POOLED = ("RAVDESS and nEMO are CC BY-NC-SA 4.0 (non-commercial, share-alike, attribution); SAVEE "
                        "is free for research, with citation. This model inherits them: research and non-commercial "
                        "use only, share-alike.")


def recorded_inputs() -> list[Path]:
    """What the recorded outputs cover: the six CREMA-D videos (face + audio), six audio-only mp3s and six tight
    face photos cut from the videos (tools/make_face_fixtures.py)."""
    return sorted(FIXTURES.glob("*.flv")) + sorted(FIXTURES.glob("*.mp3")) + sorted(FACE_FIXTURES.glob("*.png"))


def record_outputs(bundle: Path, out: Path = OUTPUTS) -> Path:
    """Predict the fixtures with ``bundle`` and write the CSV the shipped-model test compares against."""
    from mmfer.predict import predict, write_predictions

    result = predict(recorded_inputs(), model=bundle, progress=False)
    for p in result.predictions:  # repository-relative paths, so the file is the same on every machine
        p.path = Path(p.path).resolve().relative_to(REPO).as_posix()
    write_predictions(out, result.predictions)
    print(result.table())
    _sanity(result.predictions)
    return out


def _sanity(predictions) -> None:
    """Accuracy on the labelled fixtures (CREMA-D file names carry the acted emotion): a smoke check only."""
    import numpy as np

    from mmfer.labels import EMOTIONS, cremad_label

    for kind in ("video", "audio", "image"):
        rows = [p for p in predictions if p.kind == kind]
        hits = sum(p.predicted == cremad_label(Path(p.path)) for p in rows)
        line = f"CREMA-D fixtures ({kind} files): fused {hits}/{len(rows)}"
        for name in sorted({b for p in rows for b in p.branches}):
            alone = sum(EMOTIONS[int(np.argmax(p.branches[name]))] == cremad_label(Path(p.path))
                        for p in rows if name in p.branches)
            line += f", {name} alone {alone}/{len(rows)}"
        print(line + " predicted as acted (a smoke check, not a benchmark)")


def _audio_members(spec: Path) -> list[Path]:
    """The runs of one --audio entry: the entry itself, or every fold of a `mmfer train --folds` folder."""
    import json

    summary = spec / "folds.json"
    if summary.is_file():
        return [Path(r) if Path(r).is_absolute() else spec / r for r in json.loads(summary.read_text(encoding="utf-8"))["runs"]]
    return [spec]


def _audio_stems(specs: list[Path]) -> list[str]:
    """Branch-name stems of the --audio entries: the model's name (``audio_cnn``: ``audio_cnn_fold1``... for a
    cross-validation), numbered where two entries would give the same names (two seeds' cross-validations:
    ``audio_cnn1_fold1``, ``audio_cnn2_fold1``...)."""
    kinds = [(_check_kind(_audio_members(s)[0], ("logmel", "audio_stats"), "configs/audio_ravdess.yaml")["model_name"],
              len(_audio_members(s)) > 1) for s in specs]
    return [kind[0] + (str(kinds[:i + 1].count(kind)) if kinds.count(kind) > 1 else "") for i, kind in enumerate(kinds)]


def _audio_data(spec: Path) -> tuple[str, str]:
    """(data, licence) of one --audio entry: RAVDESS alone, or RAVDESS's folds with the pooled corpora; a run
    trained with teachers (distill:) says so."""
    import json

    summary = spec / "folds.json"
    within = json.loads(summary.read_text(encoding="utf-8")).get("within") if summary.is_file() else None
    if within is None:
        data, licence = AUDIO_DATA, AUDIO_LICENCE
    elif within != "ravdess":
        from mmfer.errors import MmferError

        raise MmferError(f"{spec}: folds within {within!r}; this tool describes RAVDESS folds (--folds-within ravdess)")
    else:
        data, licence = AUDIO_DATA_POOLED, AUDIO_LICENCE_POOLED
    distill = _check_kind(_audio_members(spec)[0], ("logmel", "audio_stats"), "configs/audio_ravdess.yaml").get(
        "config", {}).get("distill") or {}
    teachers = distill.get("teachers") or []
    if teachers:
        how = f"loss weight {distill['weight']}, temperature {distill['temperature']}"
        data += (f" Distilled: each fold model also learned to match {len(teachers)} teacher models of its own fold "
                 f"(trained on the same clips, the same actors held out; {how}), so it carries part of their "
                 "ensemble at the cost of one model." if summary.is_file() else
                 f" Distilled: it also learned to match {len(teachers)} teacher models ({how}).")
    return data, licence


def _cross_validation(spec: Path) -> dict | None:
    import json

    summary = spec / "folds.json"
    if not summary.is_file():
        return None
    s = json.loads(summary.read_text(encoding="utf-8"))
    return {k: s[k] for k in ("uar_mean", "uar_std", "uar_min", "uar_max", "accuracy_mean", "pooled_accuracy",
                              "pooled_uar", "pooled_recall", "folds")}


def _face_temperature(paths: list[Path], n_models: int, *, flag: str = "--face-scores") -> float:
    """The temperature that calibrates the mean of the face models' held-out probabilities (Val NLL)."""
    from mmfer.errors import MmferError
    from mmfer.fusion import fit_temperature
    from mmfer.scores import read_scores

    if len(paths) != n_models:
        raise MmferError(f"{flag}: {len(paths)} file(s) for {n_models} face model(s); give one per model")
    tables = [read_scores(p) for p in paths]
    tables = [tables[0]] + [t.reindex(tables[0].clip_ids) for t in tables[1:]]
    t = fit_temperature(sum(t.probs for t in tables) / len(tables), tables[0].label_indices)
    what = flag.removeprefix("--").removesuffix("-scores").replace("-", " ")  # "face", "photo face"
    print(f"{what} temperature {t:.3f}, fitted on the held-out scores {', '.join(map(str, paths))}")
    return round(t, 4)


def _oof_temperature(spec: Path) -> float | None:
    """For a cross-validation folder: the temperature that calibrates its out-of-fold scores (speakers the
    scoring model never heard); None for a single run."""
    from mmfer.fusion import fit_temperature
    from mmfer.scores import read_scores

    oof = spec / "scores_oof.csv"
    if not oof.is_file():
        return None
    table = read_scores(oof)
    t = fit_temperature(table.probs, table.label_indices)
    print(f"{spec.name}: temperature {t:.3f}, fitted on its out-of-fold scores")
    return round(t, 4)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--face", type=Path, nargs="+", help="run folder(s) (or checkpoints) of FER2013 face_frame models")
    ap.add_argument("--audio", type=Path, nargs="+",
                    help="audio runs, or cross-validation folders of `mmfer train --folds` (all folds join)")
    ap.add_argument("--audio-shares", type=float, nargs="+", default=None,
                    help="share of the audio weight for each --audio entry (default: equal)")
    ap.add_argument("--face-weight", type=float, default=0.6, help="fusion weight of the face model(s) (default 0.6)")
    ap.add_argument("--audio-weight", type=float, default=0.4, help="fusion weight of the audio model(s) (default 0.4)")
    ap.add_argument("--out", type=Path, default=REPO / "mmfer" / "weights", help="bundle folder (default mmfer/weights)")
    ap.add_argument("--outputs", type=Path, default=None,
                    help=f"recorded outputs CSV (default: {OUTPUTS.relative_to(REPO)} for the shipped bundle, "
                         "OUT/outputs.csv for any other --out, so a trial build leaves the test fixture alone)")
    ap.add_argument("--outputs-only", action="store_true", help="only re-record the outputs of the bundle in --out")
    ap.add_argument("--frame-views", type=int, default=2, choices=(1, 2, 10),
                    help="test-time views per video frame: 1, 2 (+ mirror, default) or 10 (ten-crop)")
    ap.add_argument("--image-views", type=int, default=10, choices=(1, 2, 10),
                    help="test-time views per face image (default 10, ten-crop)")
    ap.add_argument("--frame-pooling", default="mean", choices=("mean", "log_mean", "confidence"),
                    help="how a video's frame probabilities make the clip's (default mean)")
    ap.add_argument("--tight-images", default="video", choices=("as_is", "video"),
                    help="how the face models take a tight face image (FER2013-like): as_is, or the video way, "
                         "shown in a frame and cut like a video frame (default video: models trained on "
                         "tools/make_video_crops.py crops)")
    ap.add_argument("--face-scores", type=Path, nargs="+", default=None, metavar="CSV",
                    help="held-out scores of the face models (`mmfer scores RUN --split Val --views V`, one per "
                         "--face, at the video frame views): the temperature that calibrates their mean is fitted here")
    ap.add_argument("--photo-face", type=Path, nargs="+", default=[], metavar="RUN",
                    help="models of tight face photos (configs/face_frame_fer2013.yaml runs or checkpoints) that score "
                         "only FER2013-like tight images, as they are, beside the --face models")
    ap.add_argument("--face-serves", nargs="+", choices=("all", "detected_faces"), default=None, metavar="SERVES",
                    help="per --face model: all (video frames and images; default) or detected_faces (video frames "
                         "and larger images only, never a tight photo)")
    ap.add_argument("--photo-face-scores", type=Path, nargs="+", default=None, metavar="CSV",
                    help="held-out scores of the --photo-face models at the image views (one per model): their "
                         "temperature is fitted here")
    ap.add_argument("--keep-audio-from", type=Path, default=None, metavar="BUNDLE",
                    help="instead of --audio: the audio models of an existing bundle folder as they are (checkpoints, "
                         "temperatures, data, licence, cross-validation), their total weight set to --audio-weight")
    ap.add_argument("--keep-face-from", type=Path, default=None, metavar="BUNDLE",
                    help="instead of --face: the face models of video frames of an existing bundle as they are "
                         "(checkpoints, temperature, options, data, licence, and the bundle's decoding, its "
                         "face_backend replaced where --face-backend is given), their total weight set to "
                         "--face-weight; its photo models are not kept: give them again with --photo-face")
    ap.add_argument("--face-backend", default=None,
                    help="the face detector the bundle decodes videos with (default: the library's default)")
    ap.add_argument("--fp32", action="store_true", help="keep fp32 weights (files twice as large)")
    args = ap.parse_args(argv)
    if args.outputs is None:
        shipped = args.out.resolve() == (REPO / "mmfer" / "weights").resolve()
        args.outputs = OUTPUTS if shipped else args.out / "outputs.csv"
    from mmfer.progress import terminal_log_handler

    logging.basicConfig(level=logging.INFO, handlers=[terminal_log_handler()])

    from mmfer.inference.bundle import load_bundle, write_bundle
    from mmfer.errors import MmferError

    try:
        if not args.outputs_only:
            if not (args.face or args.keep_face_from) or not (args.audio or args.keep_audio_from):
                ap.error("--face RUN (or --keep-face-from BUNDLE) and --audio RUN (or --keep-audio-from BUNDLE) are "
                         "required (or --outputs-only)")
            if args.audio and args.keep_audio_from:
                ap.error("--audio and --keep-audio-from exclude each other")
            if args.face and args.keep_face_from:
                ap.error("--face and --keep-face-from exclude each other")
            if args.face_scores and args.keep_face_from:
                ap.error("--face-scores calibrates --face models; --keep-face-from keeps their temperature")
            args.face = args.face or []
            args.audio = args.audio or []
            shares = args.audio_shares or [1.0] * len(args.audio)
            if args.audio and (len(shares) != len(args.audio) or min(shares) < 0 or sum(shares) <= 0):
                ap.error("--audio-shares needs one non-negative share per --audio entry")
            kept_audio, kept_cv = _kept_audio(args.keep_audio_from, args.audio_weight) if args.keep_audio_from else ([], {})
            import torch

            import mmfer

            face_t = _face_temperature(args.face_scores, len(args.face)) if args.face_scores else None
            branches = _kept_branches(args.keep_face_from, args.face_weight, modality="face") if args.keep_face_from else []
            n_face = len(branches) or len(args.face)  # each photo model weighs like one face model of video frames
            serves = args.face_serves or ["all"] * len(args.face)
            if len(serves) != len(args.face):
                raise MmferError(f"--face-serves: {len(serves)} value(s) for {len(args.face)} --face model(s); give one "
                                 "per model")
            for i, run in enumerate(args.face):
                ckpt = _check_kind(run, ("face_image",), "configs/face_frame_video.yaml")
                if args.tight_images == "video" and not ((ckpt.get("config") or {}).get("augment") or {}).get("video"):
                    logging.getLogger("build_default_model").warning(
                        "%s: trained without augment.video; --tight-images video describes it as a model of video "
                        "crops and gives it tight photos the video way: if it is a model of FER2013 photos, put it in "
                        "--photo-face, or use --tight-images as_is", run)
                name = "face" if len(args.face) == 1 else f"face{i + 1}"
                stem = "face_video" if args.tight_images == "video" else "face_fer2013"
                branches.append({"name": name, "run": run, "weight": args.face_weight / len(args.face),
                                 "file": f"{stem}.pt" if len(args.face) == 1 else f"{stem}_{i + 1}.pt",
                                 "options": {"framing": "fer2013", "frame_views": args.frame_views,
                                             "image_views": args.image_views, "frame_pooling": args.frame_pooling,
                                             "tight_images": args.tight_images, "serves": serves[i]},
                                 "temperature": face_t, "licence": FACE_LICENCE,
                                 "data": (FACE_VIDEO_DATA if args.tight_images == "video" else FACE_DATA)
                                 + (" Scores only the faces its detector cuts (serves: detected_faces): video frames and "
                                    "larger images, never a tight photo." if serves[i] == "detected_faces" else "")})
            photo_t = (_face_temperature(args.photo_face_scores, len(args.photo_face), flag="--photo-face-scores")
                       if args.photo_face_scores else None)
            taken = {b.get("file") for b in branches}  # a kept bundle's face_fer2013_N.pt (its --face models as_is)
            for i, run in enumerate(args.photo_face):
                _check_kind(run, ("face_image",), "configs/face_frame_fer2013.yaml")
                file = f"face_fer2013_{i + 1}.pt" if f"face_fer2013_{i + 1}.pt" not in taken else f"face_photo{i + 1}.pt"
                branches.append({"name": f"face_photo{i + 1}", "run": run, "weight": args.face_weight / n_face,
                                 "file": file,
                                 "options": {"framing": "fer2013", "frame_views": args.frame_views,
                                             "image_views": args.image_views, "frame_pooling": args.frame_pooling,
                                             "tight_images": "as_is", "serves": "tight_images"},
                                 "temperature": photo_t, "licence": FACE_LICENCE, "data": FACE_PHOTO_DATA})
            branches += kept_audio
            cross_validation = dict(kept_cv)
            stems = _audio_stems(args.audio)
            # each cross-validation under its folder's name, or its branches' stem where two folders share a name
            # (two seeds' `cnn`), so that no key says two things
            folder_names = [spec.name for spec in args.audio]
            for spec, share, stem in zip(args.audio, shares, stems):
                members = _audio_members(spec)
                audio_t = _oof_temperature(spec)
                data, licence = _audio_data(spec)
                for j, run in enumerate(members):
                    _check_kind(run, ("logmel", "audio_stats"), "configs/audio_ravdess.yaml")
                    name = stem + (f"_fold{j + 1}" if len(members) > 1 else "")
                    branches.append({"name": name, "run": run, "file": f"{name}.pt",
                                     "weight": args.audio_weight * share / sum(shares) / len(members),
                                     "temperature": audio_t, "data": data, "licence": licence})
                cv = _cross_validation(spec)
                if cv:
                    key = spec.name if folder_names.count(spec.name) == 1 and spec.name not in kept_cv else stem
                    cross_validation[key] = cv
            described = [b["name"] for b in branches if "run_name" not in b]  # not kept from a bundle
            if described:  # the texts are this repository's recipes': true of the default bundle's runs only
                logging.getLogger("build_default_model").warning(
                    "bundle.json describes the data and licence of %s as this repository's recipes' (FER2013 photos or "
                    "video crops; RAVDESS, with nEMO and SAVEE for pooled folds); where a run learnt from other data, "
                    "edit those branches' 'data' and 'licence' in %s", ", ".join(described), args.out / "bundle.json")
            # Built aside and swapped in only once it loads: a run in --out itself (a bundle's own checkpoint, kept)
            # must still be there to export, and a failed build must leave the bundle as it was.
            args.out.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(dir=args.out.parent, prefix=f".{args.out.name}.building-"))
            try:
                write_bundle(staging, branches,
                             decode=_decode(args.keep_face_from, args.face_backend),
                             provenance={
                    "built": time.strftime("%Y-%m-%d"),
                    "mmfer": mmfer.__version__,
                    "torch": torch.__version__,
                    "runs": {b["name"]: b.get("run_name") or Path(b["run"]).name for b in branches},
                    "audio_cross_validation": cross_validation,
                    "weights": (f"face {args.face_weight}"
                                f"{f' (face models of video frames as in {args.keep_face_from})' if args.keep_face_from else ''}"
                                f", audio {args.audio_weight} "
                                f"({f'shares {shares}' if args.audio else f'as in {args.keep_audio_from}'}), stated "
                                "by the builder by the rule in the README's model card"),
                }, half=not args.fp32)
                args.out.mkdir(exist_ok=True)
                for old in args.out.glob("*.pt"):  # a rebuilt bundle holds only its own checkpoints
                    old.unlink()
                for f in staging.iterdir():
                    os.replace(f, args.out / f.name)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        bundle = load_bundle(args.out)
        print(bundle.describe())
        for f in sorted(args.out.iterdir()):
            print(f"  {f.name}: {f.stat().st_size / 1e6:.2f} MB")
        print(f"recorded outputs: {record_outputs(args.out, args.outputs)}")
    except MmferError as e:
        print(f"build_default_model: error: {e}", file=sys.stderr)
        return 2
    return 0


def _bundle_info(bundle: Path, flag: str) -> dict:
    """The bundle.json of a --keep-*-from folder, or an error naming the flag and the folder."""
    import json

    from mmfer.errors import MmferError

    path = bundle / "bundle.json"
    if not path.is_file():
        raise MmferError(f"{flag} {bundle}: not a bundle folder (no bundle.json)")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        if not all(isinstance(b, dict) and "checkpoint" in b and "weight" in b for b in info["branches"].values()):
            raise KeyError("a branch without checkpoint or weight")
    except (ValueError, KeyError, AttributeError, TypeError) as e:
        raise MmferError(f"{flag} {path}: not a readable bundle description ({e})") from None
    return info


def _serves_videos(name: str, branch: dict) -> bool:
    """A face branch of a bundle that scores video frames (not one of the tight-photo models)."""
    return name.startswith("face") and (branch.get("options") or {}).get("serves") != "tight_images"


def _kept_branches(bundle: Path, weight: float, *, modality: str) -> list[dict]:
    """The audio branches of an existing bundle, or (``modality="face"``) its face branches of video frames, with
    their checkpoints exported from where they are (the new bundle is built aside, so the one rebuilt keeps them until
    it is replaced) and their weights rescaled to sum to ``weight``; temperatures, options, data and licence as
    they are."""
    info = _bundle_info(bundle, f"--keep-{modality}-from")
    kept = {n: b for n, b in info["branches"].items()
            if (_serves_videos(n, b) if modality == "face" else not n.startswith("face"))}
    if not kept:
        from mmfer.errors import MmferError

        raise MmferError(f"--keep-{modality}-from {bundle}: the bundle has no {modality} branch"
                         + (" of video frames" if modality == "face" else ""))
    photos = sorted(n for n, b in info["branches"].items() if n.startswith("face") and not _serves_videos(n, b))
    if modality == "face" and photos:
        print(f"note: --keep-face-from keeps the face models of video frames; the bundle's photo models "
              f"({', '.join(photos)}) join only if given again with --photo-face")
    total = sum(b["weight"] for b in kept.values())
    runs = (info.get("provenance") or {}).get("runs") or {}
    return [{"name": name, "run": bundle / b["checkpoint"], "file": b["checkpoint"],
             "weight": weight * b["weight"] / total, "temperature": b.get("temperature"),
             "options": b.get("options") or {}, "data": b.get("data"), "licence": b.get("licence"),
             "metrics": b.get("metrics"), "run_name": runs.get(name)}
            for name, b in kept.items()]


def _decode(kept_faces: Path | None, face_backend: str | None) -> dict | None:
    """How the bundle decodes videos: a kept face model keeps the decoding it was built for (all of it), unless
    --face-backend names another detector; else the library's defaults with --face-backend."""
    decode = dict(_bundle_info(kept_faces, "--keep-face-from").get("decode") or {}) if kept_faces else {}
    if face_backend:
        decode["face_backend"] = face_backend
    return decode or None


def _kept_audio(bundle: Path, weight: float) -> tuple[list[dict], dict]:
    """The audio branches of an existing bundle (``_kept_branches``) and its recorded cross-validation."""
    info = _bundle_info(bundle, "--keep-audio-from")
    return (_kept_branches(bundle, weight, modality="audio"),
            (info.get("provenance") or {}).get("audio_cross_validation", {}))


def _check_kind(run: Path, kinds: tuple[str, ...], config: str) -> dict:
    from mmfer.engine.checkpoint import load_checkpoint
    from mmfer.errors import MmferError

    ckpt = load_checkpoint(run)
    if ckpt.get("input_kind") not in kinds:
        raise MmferError(f"{ckpt['path']}: a {ckpt['model_name']} model ({ckpt.get('input_kind')} input); "
                         f"expected a run of {config}")
    return ckpt


if __name__ == "__main__":
    sys.exit(main())
