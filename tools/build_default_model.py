"""Build the default model shipped in mmfer/weights/ from two finished runs of `mmfer train`, then record
its outputs on the CREMA-D fixtures (tests/assets/default_model_outputs.csv) for the test that checks the
shipped files still load and predict the same.

    python tools/build_default_model.py --face runs/fer2013 --audio runs/audio_ravdess \\
        --face-weight 0.6 --audio-weight 0.4 --out mmfer/weights
    python tools/build_default_model.py --outputs-only          # re-record the outputs of mmfer/weights

The face run must be a face_frame model (configs/face_frame_fer2013.yaml), the audio run an audio_cnn
(configs/audio_ravdess.yaml). Checkpoints are exported without training state, in fp16 (a few MB);
bundle.json records each run's held-out figures, its data and licence, and the fusion weights as given.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "assets" / "cremad"
OUTPUTS = REPO / "tests" / "assets" / "default_model_outputs.csv"

FACE_DATA = ("FER2013 (Goodfellow et al. 2013; ICML 2013 representation learning challenge): 48x48 grey-scale "
             "face crops in the seven classes. Trained on Train minus a stratified, seeded 10% held out for "
             "validation (the figures in metrics). At prediction each aligned video frame is cut to FER2013's "
             "framing (mmfer.predict.framing_box), made grey-scale, equalised and resized exactly as in training.")
FACE_LICENCE = ("FER2013 is research data of unclear, non-commercial terms (faces collected from the web); "
                "this model inherits them: research use only.")
AUDIO_DATA = ("RAVDESS speech (Livingstone & Russo 2018), the 15 actors 01-16 without 05 at 16 kHz: 900 utterances, "
              "780 once calm (no counterpart among the seven classes) is left out. Speaker-disjoint split by "
              "tools/ravdess_to_afew.py --audio --val-actors 13,14,15,16: 572 Train utterances of 11 actors, 208 Val "
              "utterances of 4 actors never seen in training (the figures in metrics; the checkpoint is the epoch "
              "with the best Val uar, so they are optimistic). Whole-utterance 64-band log-mel, standardised per clip.")
AUDIO_LICENCE = "RAVDESS is CC BY-NC-SA 4.0: non-commercial, share-alike, attribution; this model inherits it."


def recorded_inputs() -> list[Path]:
    """What the recorded outputs cover: the six CREMA-D videos (face + audio) and six audio-only mp3s."""
    return sorted(FIXTURES.glob("*.flv")) + sorted(FIXTURES.glob("*.mp3"))


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

    for kind in ("video", "audio"):
        rows = [p for p in predictions if p.kind == kind]
        hits = sum(p.label == cremad_label(Path(p.path)) for p in rows)
        line = f"CREMA-D fixtures ({kind} files): fused {hits}/{len(rows)}"
        for name in sorted({b for p in rows for b in p.branches}):
            alone = sum(EMOTIONS[int(np.argmax(p.branches[name]))] == cremad_label(Path(p.path))
                        for p in rows if name in p.branches)
            line += f", {name} alone {alone}/{len(rows)}"
        print(line + " predicted as acted (a smoke check, not a benchmark)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--face", type=Path, help="run folder (or checkpoint) of the FER2013 face_frame model")
    ap.add_argument("--audio", type=Path, help="run folder (or checkpoint) of the RAVDESS audio_cnn model")
    ap.add_argument("--face-weight", type=float, default=0.6, help="fusion weight of the face model (default 0.6, the shipped one)")
    ap.add_argument("--audio-weight", type=float, default=0.4, help="fusion weight of the audio model (default 0.4, the shipped one)")
    ap.add_argument("--out", type=Path, default=REPO / "mmfer" / "weights", help="bundle folder (default mmfer/weights)")
    ap.add_argument("--outputs", type=Path, default=OUTPUTS, help=f"recorded outputs CSV (default {OUTPUTS.relative_to(REPO)})")
    ap.add_argument("--outputs-only", action="store_true", help="only re-record the outputs of the bundle in --out")
    ap.add_argument("--frame-views", type=int, default=2, choices=(1, 2, 10),
                    help="test-time views per video frame: 1, 2 (+ mirror, default) or 10 (ten-crop)")
    ap.add_argument("--image-views", type=int, default=10, choices=(1, 2, 10),
                    help="test-time views per face image (default 10, ten-crop)")
    ap.add_argument("--fp32", action="store_true", help="keep fp32 weights (files twice as large)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    from mmfer.bundle import load_bundle, write_bundle
    from mmfer.errors import MmferError

    try:
        if not args.outputs_only:
            if args.face is None or args.audio is None:
                ap.error("--face RUN and --audio RUN are required (or --outputs-only)")
            _check_kind(args.face, "face_image", "configs/face_frame_fer2013.yaml")
            _check_kind(args.audio, "logmel", "configs/audio_ravdess.yaml")
            import torch

            import mmfer

            write_bundle(args.out, [
                {"name": "face", "run": args.face, "weight": args.face_weight, "file": "face_fer2013.pt",
                 "options": {"framing": "fer2013", "frame_views": args.frame_views, "image_views": args.image_views},
                 "data": FACE_DATA, "licence": FACE_LICENCE},
                {"name": "audio", "run": args.audio, "weight": args.audio_weight, "file": "audio_ravdess.pt",
                 "data": AUDIO_DATA, "licence": AUDIO_LICENCE},
            ], provenance={
                "built": time.strftime("%Y-%m-%d"),
                "mmfer": mmfer.__version__,
                "torch": torch.__version__,
                "runs": {"face": args.face.name, "audio": args.audio.name},
                "weights": "stated by the builder (the two models never saw a common validation set to tune on)",
            }, half=not args.fp32)
        bundle = load_bundle(args.out)
        print(bundle.describe())
        for f in sorted(args.out.iterdir()):
            print(f"  {f.name}: {f.stat().st_size / 1e6:.2f} MB")
        print(f"recorded outputs: {record_outputs(args.out, args.outputs)}")
    except MmferError as e:
        print(f"build_default_model: error: {e}", file=sys.stderr)
        return 2
    return 0


def _check_kind(run: Path, kind: str, config: str) -> None:
    from mmfer.engine.checkpoint import load_checkpoint
    from mmfer.errors import MmferError

    ckpt = load_checkpoint(run)
    if ckpt.get("input_kind") != kind:
        raise MmferError(f"{ckpt['path']}: a {ckpt['model_name']} model ({ckpt.get('input_kind')} input); "
                         f"expected a run of {config}")


if __name__ == "__main__":
    sys.exit(main())
