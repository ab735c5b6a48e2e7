#!/usr/bin/env python
"""Frames per second of `mmfer preprocess` (1 and 2 workers) against pure decord decoding of the same clips.

Pure decoding is the floor no preprocessing can beat; the gap is face detection, landmarks and alignment.
Example: python tools/bench_preprocess.py tests/assets/cremad/clips.csv --workers 1,2 --json bench.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from mmfer.cache import PreprocessSettings
from mmfer.data.index import index_source
from mmfer.data.preprocess import preprocess


def decord_fps(paths: list[Path]) -> tuple[int, float]:
    """Decode every frame of every clip with decord (batched), as the reference speed."""
    from decord import VideoReader, cpu

    t0 = time.perf_counter()
    frames = 0
    for p in paths:
        vr = VideoReader(str(p), ctx=cpu(0), num_threads=1)
        for start in range(0, len(vr), 32):
            frames += len(vr.get_batch(list(range(start, min(start + 32, len(vr))))).asnumpy())
    return frames, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", nargs="?", default="tests/assets/cremad/clips.csv")
    ap.add_argument("--workers", default="1,2", help="comma list of worker counts to time")
    ap.add_argument("--face-backend", default="dlib")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args(argv)
    entries = index_source(args.source)
    paths = [Path(e.path) for e in entries]
    rows = []
    decord_fps(paths[:1])  # warm-up: library load and file cache
    frames, secs = decord_fps(paths)
    rows.append({"method": "decord decode only", "workers": 1, "clips": len(paths), "frames": frames,
                 "seconds": round(secs, 3), "fps": round(frames / secs, 1)})
    settings = PreprocessSettings(face_backend=args.face_backend)
    for w in [int(x) for x in args.workers.split(",")]:
        tmp = Path(tempfile.mkdtemp(prefix="mmfer-bench-"))
        try:
            t0 = time.perf_counter()
            s = preprocess(entries, tmp, workers=w, settings=settings, progress=False)
            wall = time.perf_counter() - t0  # includes worker start-up and writing the cache
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        rows.append({"method": f"mmfer preprocess ({args.face_backend})", "workers": w, "clips": s.total,
                     "frames": s.frames, "seconds": round(wall, 3), "fps": round(s.frames / wall, 1),
                     "face_frames": s.face_frames, "failed": s.failed})
    width = max(len(r["method"]) for r in rows)
    print(f"{'method':<{width}}  workers  frames  seconds  frames/s")
    for r in rows:
        print(f"{r['method']:<{width}}  {r['workers']:>7}  {r['frames']:>6}  {r['seconds']:>7.2f}  {r['fps']:>8.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
