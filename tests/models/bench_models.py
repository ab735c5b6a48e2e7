"""Parameter counts and CPU forward time per clip of each branch at the sizes the shipped configs use.

Not a test (pytest does not collect it): run ``python tests/models/bench_models.py [--threads N] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from mmfer.models.registry import build_model

# name, builder kwargs, input shape for one clip, mask length
SHIPPED = [
    ("c3d", dict(width=16, clip_len=16, input_size=112), (3, 16, 112, 112), 16),
    ("cnn_lstm", dict(encoder="kuo", in_channels=1, hidden=128), (16, 1, 64, 64), 16),
    ("landmark_brnn", dict(), (64, 272), 64),
    ("audio_cnn", dict(n_mels=64, width=32), (1, 64, 301), 301),  # 3 s at 10 ms hop
    ("face_frame", dict(encoder="kuo", in_channels=1), (1, 48, 48), None),  # FER2013 48x48 gray
]


def bench(batch: int, repeats: int) -> list[dict]:
    rows = []
    for name, kwargs, shape, t in SHIPPED:
        torch.manual_seed(0)
        model = build_model(name, **kwargs).eval()
        x = torch.randn(batch, *shape)
        mask = torch.ones(batch, t, dtype=torch.bool) if t else None
        with torch.inference_mode():
            model(x, mask)  # warm-up
            start = time.perf_counter()
            for _ in range(repeats):
                model(x, mask)
            ms = (time.perf_counter() - start) / (repeats * batch) * 1000
        rows.append(
            {
                "model": name,
                "kwargs": kwargs,
                "input": [batch, *shape],
                "params": sum(p.numel() for p in model.parameters()),
                "ms_per_clip": round(ms, 2),
            }
        )
        print(f"{name:14s} params {rows[-1]['params']:>10,d}  {ms:8.2f} ms/clip  input {tuple(x.shape)}", flush=True)
    return rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    result = bench(args.batch, args.repeats)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": args.threads, "batch": args.batch, "rows": result}, f, indent=1)
