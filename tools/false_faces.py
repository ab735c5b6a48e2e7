"""How often the video path sees a face where there is none: face-free pictures made into short videos.

Each picture in --images (photos of scenes, textures, objects: anything without a face) gives --windows
320x240 windows at a random scale (0.5-1.5), every second one degraded (blurred and downscaled by
``video_degrade``, then H.264 at video_gap's harder rate); each window becomes a 1-s silent video (8 fps, H.264)
that goes through ``mmfer predict``'s whole video path. ``--frame-scale 2`` enlarges each window (after cutting
and degrading it, so the windows are the same ones) to 640x480: footage larger than the 320 px the detector searches.
A video whose ``face_ratio`` is above 0 had a false face, and the face models' scores went into its
prediction. Per picture and in all, it reports the share of such videos.

    python tools/false_faces.py --images DIR --out runs/false_faces
    python tools/false_faces.py --images DIR --model runs/bundle_new --seed 1 --out runs/false_faces_new

The figures in BENCHMARKS.md use the 19 face-free pictures in scikit-image 0.26's wheel (``skimage/data``:
brick, cell, chelsea, clock_motion, coffee, coins, color, grass, gravel, horse, hubble_deep_field, ihc, logo,
moon, motorcycle_left, page, retina, rocket, text); copy them out of the wheel to a folder, no install needed.
Writes DIR/false_faces.csv (one row per window) and DIR/false_faces.json (the summary).
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from video_gap import write_video  # noqa: E402

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
FRAME_HW = (240, 320)


def windows(image: np.ndarray, n: int, rng: np.random.Generator) -> list[tuple[np.ndarray, bool]]:
    """``n`` FRAME_HW windows of an RGB picture at random scales (reflected where it is too small), every
    second one degraded: (window, degraded)."""
    import cv2

    from mmfer.data.features import video_degrade

    fh, fw = FRAME_HW
    out = []
    for k in range(n):
        s = rng.uniform(0.5, 1.5)
        r = cv2.resize(image, None, fx=s, fy=s, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        h, w = r.shape[:2]
        if h < fh or w < fw:
            r = cv2.copyMakeBorder(r, 0, max(0, fh - h), 0, max(0, fw - w), cv2.BORDER_REFLECT)
            h, w = r.shape[:2]
        y, x = int(rng.integers(0, h - fh + 1)), int(rng.integers(0, w - fw + 1))
        win = np.ascontiguousarray(r[y:y + fh, x:x + fw])
        degraded = bool(k % 2)
        if degraded:
            win = video_degrade(win, rng, blur=1.0, rescale=0.6)
        out.append((win, degraded))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", required=True, help="a folder of face-free pictures")
    ap.add_argument("--model", default="default", help="what predict loads, as `mmfer predict --model`: 'default', a bundle, RUN or FUSE folder")
    ap.add_argument("--windows", type=int, default=20, help="windows (videos) per picture (default 20)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--frame-scale", type=float, default=1.0,
                    help="enlarge each 320x240 window by this factor before it becomes a video (default 1)")
    ap.add_argument("--out", required=True, help="folder for false_faces.csv and false_faces.json")
    args = ap.parse_args(argv)
    import cv2
    import torch

    from mmfer.errors import MmferError
    from mmfer.predict import Predictor

    torch.set_num_threads(max(1, torch.get_num_threads()))
    if not Path(args.images).is_dir():
        raise MmferError(f"--images {args.images}: not a folder")
    pictures = sorted(p for p in Path(args.images).iterdir() if p.suffix.lower() in IMAGE_EXTS)
    if not pictures:
        raise MmferError(f"{args.images}: no pictures ({', '.join(IMAGE_EXTS)})")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    predictor = Predictor(args.model)
    rng = np.random.default_rng(args.seed)
    rows, t0 = [], time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mmfer-false-faces-") as tmp:
        video = Path(tmp) / "window.mp4"
        for pic in pictures:
            image = cv2.imread(str(pic), cv2.IMREAD_COLOR)
            if image is None:
                print(f"{pic}: not a readable picture; left out", file=sys.stderr)
                continue
            for k, (win, degraded) in enumerate(windows(image[..., ::-1], args.windows, rng)):
                if args.frame_scale != 1.0:
                    win = cv2.resize(win, None, fx=args.frame_scale, fy=args.frame_scale, interpolation=cv2.INTER_LINEAR)
                write_video(video, win, crf=35 if degraded else 23)
                p = predictor.predict_file(video, "video")
                rows.append({"picture": pic.name, "window": k, "degraded": int(degraded),
                             "face_ratio": p.face_ratio or 0.0, "predicted": p.predicted})
            print(f"{pic.name}: {sum(r['face_ratio'] > 0 for r in rows if r['picture'] == pic.name)} of "
                  f"{args.windows} windows with a face", file=sys.stderr)
    if not rows:
        raise MmferError(f"{args.images}: no readable pictures")
    with open(out / "false_faces.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    false = [r for r in rows if r["face_ratio"] > 0]
    summary = {"model": args.model, "pictures": len({r["picture"] for r in rows}), "videos": len(rows),
               "seed": args.seed, "frame_scale": args.frame_scale, "videos_with_a_face": len(false),
               "share_with_a_face": round(len(false) / len(rows), 4),
               "clean": sum(not r["degraded"] for r in false), "degraded": sum(r["degraded"] for r in false),
               "seconds": round(time.perf_counter() - t0, 1)}
    (out / "false_faces.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    print(f"{len(false)} of {len(rows)} face-free videos had a face ({100 * len(false) / len(rows):.1f}%)")
    return 0


if __name__ == "__main__":
    from mmfer.errors import run_tool_main

    sys.exit(run_tool_main(main, prog="false_faces"))
