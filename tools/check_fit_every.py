"""How far landmarks from fits on every k-th frame (``fit_every``) land from a fit on every frame.

    python tools/check_fit_every.py tests/assets/cremad/*.flv --k 2 3 4

For each k: the mean and 95th percentile distance, in % of the inter-ocular distance (outer eye corners),
over the frames between fits (interpolated, or fitted one by one where a face comes or goes), against the
per-frame track; and, as the scale to read them by, how
far a per-frame fit moves when its box is shifted and scaled by up to 3 % (the fit's own spread), and the
frame-to-frame jitter (second difference) of both tracks.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from mmfer.data.cache import PreprocessSettings
from mmfer.data.video import read_frames
from mmfer.faces.backends import get_backend
from mmfer.faces.track import FaceTracker


def _iod(points: np.ndarray) -> np.ndarray:
    return np.linalg.norm(points[..., 36, :] - points[..., 45, :], axis=-1)


def _pct(values: list[float]) -> str:
    return f"mean {100 * np.mean(values):.2f} %, p95 {100 * np.percentile(values, 95):.2f} %" if values else "n/a"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("videos", nargs="+")
    ap.add_argument("--k", type=int, nargs="+", default=[2, 3, 4])
    ap.add_argument("--detect-every", type=int, default=PreprocessSettings().detect_every)
    args = ap.parse_args(argv)
    backend = get_backend("dlib")
    rng = np.random.default_rng(0)
    err: dict[int, list[float]] = {k: [] for k in args.k}
    jitter: dict[int, list[float]] = {k: [] for k in [1, *args.k]}
    spread: list[float] = []
    for path in args.videos:
        frames, _ = read_frames(path)
        ref = FaceTracker(backend, detect_every=args.detect_every).process(frames)
        iod = _iod(ref.landmarks)
        for i in np.flatnonzero(ref.mask):
            box = ref.boxes[i, :4] + rng.uniform(-0.03, 0.03, 4) * (ref.boxes[i, 2] - ref.boxes[i, 0])
            moved = backend.landmarks(backend.prepare(frames[i]), box)
            spread.append(float(np.linalg.norm(moved - ref.landmarks[i], axis=-1).mean() / iod[i]))
        for k in [1, *args.k]:
            track = ref if k == 1 else FaceTracker(backend, detect_every=args.detect_every, fit_every=k).process(frames)
            both = ref.mask & track.mask
            if k > 1:
                fitted = set(FaceTracker(backend, fit_every=k)._fit_indices(len(frames)))
                for i in np.flatnonzero(both):
                    if i not in fitted:
                        d = np.linalg.norm(track.landmarks[i] - ref.landmarks[i], axis=-1).mean() / iod[i]
                        err[k].append(float(d))
            run = both[2:] & both[1:-1] & both[:-2]
            acc = track.landmarks[2:] - 2 * track.landmarks[1:-1] + track.landmarks[:-2]
            jitter[k].extend((np.linalg.norm(acc, axis=-1).mean(-1) / iod[1:-1])[run].tolist())
    print(f"{len(args.videos)} clip(s); distances in % of the inter-ocular distance")
    print(f"per-frame fit, box moved by up to 3 %:   {_pct(spread)}")
    print(f"frame-to-frame jitter, every frame fitted: {_pct(jitter[1])}")
    for k in args.k:
        print(f"fit_every={k}: interpolated vs own fit {_pct(err[k])}; jitter {_pct(jitter[k])}")
    return 0


if __name__ == "__main__":
    from mmfer.errors import run_tool_main

    sys.exit(run_tool_main(main, prog="check_fit_every"))
