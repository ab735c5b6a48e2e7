"""Parameters and CPU forward milliseconds per clip of each branch at its shipped config (figures for BENCHMARKS/issue notes).

    python tools/bench_branches.py
"""
import time, torch
from mmfer.engine.config import load_train_config
from mmfer.models.registry import build_model
torch.set_num_threads(2); torch.manual_seed(0)
shapes = {  # one clip at the shipped config: (input, mask)
 "c3d": ((1,3,16,112,112),(1,16)), "cnn_lstm": ((1,16,1,64,64),(1,16)),
 "landmark_brnn": ((1,64,272),(1,64)), "audio_cnn": ((1,1,64,301),(1,301)),
}
for b,(xs,ms) in shapes.items():
    cfg = load_train_config(f"configs/{b}.yaml")
    m = build_model(cfg.model.name, **cfg.model.kwargs).eval()
    n = sum(p.numel() for p in m.parameters())
    x = torch.randn(xs); mask = torch.ones(ms, dtype=torch.bool)
    with torch.inference_mode():
        for _ in range(2): m(x, mask)
        t=time.perf_counter(); r=10
        for _ in range(r): m(x, mask)
        dt=(time.perf_counter()-t)/r*1000
    print(f"{b:14s} params {n/1e6:.2f}M  forward {dt:.1f} ms per {'16-frame window' if b=='c3d' else 'clip'}")
