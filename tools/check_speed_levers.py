"""How much two speed levers of whole-video predict would save, and what they would change (issue 21).

Scores the first SECONDS of a video with the shipped model three ways: its own decode settings (8 frames/s,
the detector every 5th frame), the detector every 10th frame, and 4 frames/s; prints the time of each and
how many segments keep the label of the first. Usage:

    python tools/check_speed_levers.py VIDEO [--seconds 180] [--out out.json]

(`mmfer bench --long-clip 600 --long-size 720p` makes a suitable video; run it on a quiet machine.)
"""

from __future__ import annotations

import argparse
import sys
import dataclasses
import json
import time

import numpy as np

from mmfer.errors import MmferError
from mmfer.inference.bundle import load_bundle
from mmfer.predict import Predictor

VARIANTS = {"default (8 fps, detect every 5)": {}, "detect every 10": {"detect_every": 10},
            "4 fps (detect every 3)": {"fps": 4.0, "detect_every": 3}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("video")
    ap.add_argument("--seconds", type=float, default=180.0)
    ap.add_argument("--out", default=None, metavar="FILE.json")
    args = ap.parse_args(argv)
    base = load_bundle("default")
    ref, out = None, {}
    for name, change in VARIANTS.items():
        bundle = dataclasses.replace(base, decode=dataclasses.replace(base.decode, **change))
        p = Predictor(bundle, device="cpu", duration=args.seconds)
        t = time.perf_counter()
        pred = p.predict_file(args.video)
        wall = time.perf_counter() - t
        if not pred.ok:
            raise MmferError(f"{args.video}: {pred.warning}")
        labels = [s.predicted for s in pred.segments]
        probs = np.stack([s.probs for s in pred.segments])
        ref = ref or (labels, probs)
        out[name] = {"wall_s": round(wall, 1), "x_real_time": round(wall / args.seconds, 3), "segments": len(labels),
                     "same_label_as_default": round(float(np.mean([a == b for a, b in zip(labels, ref[0])])), 3),
                     "max_prob_diff": round(float(np.abs(probs - ref[1]).max()), 4), "stages": pred.stages}
        print(name, out[name], flush=True)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    from mmfer.errors import run_tool_main

    sys.exit(run_tool_main(main, prog="check_speed_levers"))
