"""Parameters and CPU forward milliseconds per clip of each branch at its shipped config.

    python tools/bench_branches.py        (batch 1, 2 threads)
"""

from __future__ import annotations

import time

import torch

from mmfer.engine.config import load_train_config
from mmfer.models.registry import build_model

# One clip at each shipped config: input shape and mask shape.
SHAPES = {
    "c3d": ((1, 3, 16, 112, 112), (1, 16)),
    "cnn_lstm": ((1, 16, 1, 64, 64), (1, 16)),
    "landmark_brnn": ((1, 64, 272), (1, 64)),
    "audio_cnn": ((1, 1, 64, 301), (1, 301)),
}


def main(repeats: int = 10) -> None:
    torch.set_num_threads(2)
    torch.manual_seed(0)
    for branch, (x_shape, mask_shape) in SHAPES.items():
        cfg = load_train_config(f"configs/{branch}.yaml")
        model = build_model(cfg.model.name, **cfg.model.kwargs).eval()
        params = sum(p.numel() for p in model.parameters())
        x, mask = torch.randn(x_shape), torch.ones(mask_shape, dtype=torch.bool)
        with torch.inference_mode():
            for _ in range(2):
                model(x, mask)
            start = time.perf_counter()
            for _ in range(repeats):
                model(x, mask)
            ms = (time.perf_counter() - start) / repeats * 1000
        unit = "16-frame window" if branch == "c3d" else "clip"
        print(f"{branch:14s} params {params / 1e6:.2f}M  forward {ms:.1f} ms per {unit}")


if __name__ == "__main__":
    main()
