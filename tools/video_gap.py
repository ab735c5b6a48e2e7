"""How much a face loses between a photo and a video frame: the same held-out faces scored both ways.

Faces held out of FER2013 Train (the stratified seed-0 10% every shipped face model holds out; none of them
trained on these) are scored (1) as images, through ``mmfer predict``'s image path, and (2) as short silent
videos through its whole video path (decode, detector, landmarks, alignment, framing, face models, pooling):
each face resized to a given size and placed in a larger frame, 1 s at 8 fps, H.264, clean or degraded
(blurred and compressed harder). Per setting it reports the share of videos in which a face was found, the
accuracy of each path on the faces found, the accuracy of the video path counting a missed face as wrong,
and how often the two paths agree.

    python tools/video_gap.py --fer ../shared/data/fer2013 --per-class 30 --out runs/video_gap
    python tools/video_gap.py --model runs/bundle_new --out runs/video_gap_new
    python tools/video_gap.py --degradations all --sizes 128 --out runs/video_gap_each

``--degradations`` replaces the clean/degraded pair by one setting per kind of degradation, each alone at full
strength (the top of what face training draws; a head turned 20 degrees, past the 10-15 of training's rotation;
what training never draws: white balance, a covered mouth): what each does to the video path, model against
model.

Writes DIR/video_gap.csv (one row per face and setting), DIR/video_gap.json (the table) and prints a
Markdown table (for BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mmfer.labels import EMOTIONS

SIZES = (64, 96, 128, 192, 256)
FPS = 8


def held_out_faces(fer: Path, per_class: int, seed: int = 0):
    """``per_class`` faces of each emotion drawn (seeded) from the held-out 10% of FER2013 Train."""
    from mmfer.data.splits import fer2013_heldout

    val = fer2013_heldout(fer)
    rng = np.random.default_rng(seed)
    out = []
    for e in EMOTIONS:
        pool = [r for r in val if r.label == e]
        out += [pool[i] for i in sorted(rng.choice(len(pool), min(per_class, len(pool)), replace=False))]
    return out


def write_video(path: Path, frame: np.ndarray, *, crf: int) -> None:
    """1 s of ``frame`` at FPS frames/s, H.264 (yuv420p) at constant rate factor ``crf``."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height = frame.shape[1], frame.shape[0]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        for _ in range(FPS):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


CLEAN_CRF, DEGRADED_CRF = 23, 35

# One kind of degradation each, alone. Those face training draws (mmfer.data.features.draw_degradation; the crop
# tree's faces cut by the frame's edge) at the top of their range; turned past the fine-tuning's 10-15 degrees;
# white balance and a covered mouth, which it never draws. Keys: video_degrade's keyword
# arguments (blur in px per 100 px of face), crf (H.264 rate), turn (degrees, in the image plane), cut (share of
# the face outside the frame's left edge), cover (share of the face, from its chin up, under a grey band), gains
# (R, G, B white balance).
DEGRADATIONS: dict[str, dict] = {
    "clean": {},
    "blur": {"blur": 1.6},
    "motion_blur": {"motion": 9},
    "low_resolution": {"rescale": 0.35},
    "jpeg": {"jpeg": 15},
    "h264_crf40": {"crf": 40},
    "dark": {"gamma": 1.6},
    "bright": {"gamma": 0.6},
    "noise": {"noise": 8.0},
    "turned": {"turn": 20.0},
    "cut": {"cut": 0.2},
    "white_balance": {"gains": (1.3, 1.0, 0.7)},
    "mouth_covered": {"cover": 0.3},
}


def make_frame(face: np.ndarray, size: int, degraded: bool | dict, rng: np.random.Generator) -> np.ndarray:
    """A frame showing ``face`` at ``size`` px: clean (False), degraded as this tool always has (True: blurred and
    at 60% resolution, for the harder H.264 rate), or with one entry of DEGRADATIONS (a dict)."""
    import cv2

    from mmfer.data.features import video_degrade
    from mmfer.faces.crops import place_face

    spec = {"blur": 1.2, "rescale": 0.6} if degraded is True else dict(degraded or {})
    fh, fw = (240, 320) if size <= 200 else (480, 640)
    x, y = int(rng.integers(0, fw - size + 1)), int(rng.integers(0, fh - size + 1))
    face = np.ascontiguousarray(face)
    if spec.get("turn"):  # the whole photo turned about its centre, corners filled from its edge
        h, w = face.shape[:2]
        m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), float(spec["turn"]), 1.0)
        face = cv2.warpAffine(face, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if spec.get("cover"):  # a grey band over the lower part of the face, as a hand or a scarf
        face = face.copy()
        face[int(round(face.shape[0] * (1 - spec["cover"]))):] = 128
    if spec.get("cut"):
        x = -int(round(spec["cut"] * size))
    frame, _ = place_face(face, size=size, frame_hw=(fh, fw), at=(x, y), background="constant", fill=128)
    if spec.get("gains"):
        frame = np.clip(frame * np.asarray(spec["gains"], np.float32), 0, 255).astype(np.uint8)
    kw = {k: spec[k] for k in ("motion", "rescale", "jpeg", "gamma", "noise") if k in spec}
    if spec.get("blur"):
        kw["blur"] = spec["blur"] * size / 100
    return video_degrade(frame, rng, **kw) if kw else frame


def settings(sizes, degradations: list[str] | None) -> list[tuple[str, int, bool | dict, int]]:
    """(name, face size, what make_frame is given, H.264 rate) for each setting of a run."""
    if not degradations:
        return [(f"{s}px {'degraded' if d else 'clean'}", s, d, DEGRADED_CRF if d else CLEAN_CRF)
                for s in sizes for d in (False, True)]
    return [(f"{s}px {name}", s, DEGRADATIONS[name], DEGRADATIONS[name].get("crf", CLEAN_CRF))
            for s in sizes for name in degradations]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fer", default=str(Path(__file__).resolve().parents[1].parent / "shared/data/fer2013"),
                    help="FER2013 as ROOT/Train/<Emotion>/*.jpg (default: ../shared/data/fer2013 beside the repository): "
                         "the tree the model's face models trained on, whose held-out 10%% (seed 0) is scored; a model "
                         "trained on part of it may have trained on faces of another tree's held-out part")
    ap.add_argument("--model", default="default", help="what predict loads, as `mmfer predict --model`: 'default', a bundle, RUN or FUSE folder")
    ap.add_argument("--per-class", type=int, default=30)
    ap.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    ap.add_argument("--degradations", nargs="+", metavar="NAME",
                    help=f"one setting per kind of degradation instead of clean/degraded: 'all' or some of "
                         f"{', '.join(DEGRADATIONS)}")
    ap.add_argument("--out", required=True, help="folder for video_gap.csv and video_gap.json")
    args = ap.parse_args(argv)
    degradations = list(DEGRADATIONS) if args.degradations == ["all"] else args.degradations
    unknown = sorted(set(degradations or ()) - set(DEGRADATIONS))
    if unknown:
        ap.error(f"unknown --degradations {', '.join(unknown)}: choose from all, {', '.join(DEGRADATIONS)}")
    import cv2
    import torch

    from mmfer.predict import Predictor

    torch.set_num_threads(max(1, torch.get_num_threads()))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    faces = held_out_faces(Path(args.fer), args.per_class)
    y = np.array([EMOTIONS.index(r.label) for r in faces])
    predictor = Predictor(args.model)
    t0 = time.perf_counter()
    image_pred = [predictor.predict_file(r.path, "image").predicted for r in faces]
    rows, table = [], []
    with tempfile.TemporaryDirectory(prefix="mmfer-video-gap-") as tmp:
        for setting, size, degraded, crf in settings(args.sizes, degradations):
            rng = np.random.default_rng(size * 2 + (degraded is True))  # every setting places faces alike
            found, video_pred = [], []
            for i, r in enumerate(faces):
                face = cv2.imread(r.path, cv2.IMREAD_COLOR)[..., ::-1]
                video = Path(tmp) / f"{i}.mp4"
                write_video(video, make_frame(face, size, degraded, rng), crf=crf)
                p = predictor.predict_file(video, "video")
                found.append(bool(p.face_ratio))
                video_pred.append(p.predicted)
                rows.append({"setting": setting, "path": r.path, "truth": r.label, "image": image_pred[i],
                             "video": p.predicted, "face_ratio": p.face_ratio})
            f = np.array(found)
            img_ok = np.array([p == EMOTIONS[k] for p, k in zip(image_pred, y)])
            vid_ok = np.array([p == EMOTIONS[k] for p, k in zip(video_pred, y)])
            agree = np.array([a == b for a, b in zip(image_pred, video_pred)])
            table.append({"setting": setting, "faces": len(faces), "found": float(f.mean()),
                          "image_acc_found": float(img_ok[f].mean()) if f.any() else None,
                          "video_acc_found": float(vid_ok[f].mean()) if f.any() else None,
                          "video_acc_all": float(vid_ok.mean()), "image_acc_all": float(img_ok.mean()),
                          "agreement_found": float(agree[f].mean()) if f.any() else None})
            print(f"{setting}: found {f.mean():.3f}, video {table[-1]['video_acc_found']}, "
                  f"image {table[-1]['image_acc_found']}", file=sys.stderr)
    with open(out / "video_gap.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    summary = {"model": args.model, "faces": len(faces), "per_class": args.per_class,
               "seconds": round(time.perf_counter() - t0, 1), "settings": table}
    (out / "video_gap.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")

    def pct(v):
        return "-" if v is None else f"{100 * v:.1f}"

    print("| setting | found | image acc (found) | video acc (found) | video acc (all) | agreement |")
    print("|---|---|---|---|---|---|")
    for t in table:
        print(f"| {t['setting']} | {pct(t['found'])} | {pct(t['image_acc_found'])} | {pct(t['video_acc_found'])} "
              f"| {pct(t['video_acc_all'])} | {pct(t['agreement_found'])} |")
    print(f"image path, all {len(faces)} faces: {pct(table[0]['image_acc_all'])}")
    return 0


if __name__ == "__main__":
    from mmfer.errors import run_tool_main

    sys.exit(run_tool_main(main, prog="video_gap"))
