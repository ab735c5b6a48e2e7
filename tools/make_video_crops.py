"""Make a face-image tree into the crops video frames yield, to train a face model on what predict serves.

    python tools/make_video_crops.py ../shared/data/fer2013 --out data/fer2013_video --workers 2
    mmfer train configs/face_frame_video.yaml --data data/fer2013_video --out runs/face_video

See mmfer.data.video_faces for what is done to each face. Resumable: run it again after an interruption.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from mmfer.data.video_faces import build_video_face_tree
from mmfer.errors import MmferError


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", help="image tree ROOT/<split>/<Emotion>/*.jpg (FER2013 layout)")
    ap.add_argument("--out", required=True, help="output tree of PNG crops (same relative names)")
    ap.add_argument("--splits", default="Train", help="comma list of splits to make, as preprocess --splits (default Train)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--face-backend", default="dlib",
                    help="detector (default dlib: where it misses, the landmarks are fitted in the box the face was "
                         "placed in; a model trained on dlib_mtcnn's own crops read no better, see the model card)")
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args(argv)
    from mmfer.progress import terminal_log_handler

    logging.basicConfig(level=logging.INFO, handlers=[terminal_log_handler("%(message)s")])
    try:
        summary = build_video_face_tree(args.src, args.out, splits=tuple(s.strip() for s in args.splits.split(",") if s.strip()), seed=args.seed,
                                        face_backend=args.face_backend, workers=args.workers)
    except MmferError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({k: v for k, v in summary.items() if k != "errors"}, indent=1))
    if summary["errors"]:
        print(f"{len(summary['errors'])} face(s) could not be made: see crops.csv", file=sys.stderr)
    return 0


if __name__ == "__main__":
    from mmfer.errors import run_tool_main

    sys.exit(run_tool_main(main, prog="make_video_crops"))
