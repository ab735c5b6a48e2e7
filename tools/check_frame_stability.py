"""How steady the face model is from frame to frame, and how each way of pooling frames labels the clips.

    python tools/check_frame_stability.py tests/assets/cremad/*.flv [--model default]

Per video: the frames analysed, the flicker rate (share of consecutive face frames whose top class
differs), the longest run of one top class, and the clip label under each frame pooling (mean of
probabilities, of log-probabilities, confidence-weighted). When the file name carries the acted emotion
(CREMA-D, RAVDESS, or an <Emotion>/ folder) the last line counts the clips each pooling gets right: on a
handful of clips, a smoke check rather than a measurement.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("videos", nargs="+", type=Path)
    ap.add_argument("--model", default="default", help="bundle, run or fuse folder (default: the shipped model)")
    args = ap.parse_args(argv)

    from mmfer.inference.inputs import FRAME_POOLINGS
    from mmfer.data.index import file_label
    from mmfer.labels import EMOTIONS
    from mmfer.predict import Predictor, pool_frames

    predictor = Predictor(args.model)
    right = {m: 0 for m in FRAME_POOLINGS}
    labelled = 0
    print(f"{'clip':28s} {'frames':>6s} {'flicker':>7s} {'longest':>7s}  " + "  ".join(f"{m:>10s}" for m in FRAME_POOLINGS))
    for path in args.videos:
        pred = predictor.predict_file(path, timeline=True)
        probs = (pred.timeline or {}).get("frame_probs")
        if probs is None:
            print(f"{path.stem:28s} no face frames ({pred.warning})")
            continue
        p = probs[np.all(np.isfinite(probs), axis=1)]
        top = p.argmax(axis=1)
        flicker = float(np.mean(top[1:] != top[:-1])) if len(top) > 1 else 0.0
        runs = np.diff(np.flatnonzero(np.diff(np.r_[-1, top, -1]) != 0))
        labels = {m: EMOTIONS[int(np.argmax(pool_frames(p, m)))] for m in FRAME_POOLINGS}
        known, truth = file_label(path)
        if known and truth:
            labelled += 1
            for m in FRAME_POOLINGS:
                right[m] += labels[m] == truth
        print(f"{path.stem:28s} {len(p):6d} {flicker:7.2f} {int(runs.max()) if runs.size else 0:7d}  "
              + "  ".join(f"{labels[m]:>10s}" for m in FRAME_POOLINGS))
    if labelled:
        print("right (of %d labelled): " % labelled + ", ".join(f"{m} {right[m]}" for m in FRAME_POOLINGS))
    return 0


if __name__ == "__main__":
    from mmfer.errors import run_tool_main

    sys.exit(run_tool_main(main, prog="check_frame_stability"))
