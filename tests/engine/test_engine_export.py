"""export_checkpoint: the small, fp16, training-state-free checkpoint that ships in mmfer/weights."""

from __future__ import annotations

import torch

from mmfer.engine.checkpoint import export_checkpoint, load_checkpoint, model_from_checkpoint, save_checkpoint
from mmfer.models.registry import build_model


def _run_with_optimizer(tmp_path):
    torch.manual_seed(0)
    model = build_model("audio_cnn", n_mels=32, width=8)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
        model.blocks[0].bn1.running_var[:2] = 1e-6  # below fp16's normal range: must survive the export
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(2, 1, 32, 20)).sum().backward()
    opt.step()
    path = save_checkpoint(tmp_path / "run" / "last.pt", model=model, model_name="audio_cnn",
                           model_kwargs={"n_mels": 32, "width": 8}, preprocess={"sample_rate": 16000},
                           config={"name": "x"}, epoch=3, optimizer=opt, rng={"torch": torch.get_rng_state()},
                           metrics={"val_accuracy": 0.5}, best={"epoch": 2},
                           clips={"train": 9, "val": 1, "train_digest": "a" * 16, "val_digest": "b" * 16})
    return path, model.eval()


def test_export_drops_training_state_and_halves_weights(tmp_path):
    src, model = _run_with_optimizer(tmp_path)
    dst = export_checkpoint(src, tmp_path / "out" / "audio.pt")
    assert dst.stat().st_size < 0.4 * src.stat().st_size  # no Adam moments, half-size weights
    raw = torch.load(dst, map_location="cpu", weights_only=True)
    assert not {"optimizer", "scheduler", "scaler", "rng"} & set(raw)
    assert raw["metrics"] == {"val_accuracy": 0.5} and raw["best"] == {"epoch": 2} and raw["epoch"] == 3
    assert raw["exported"] == {"from": "run/last.pt", "dtype": "float16"}
    assert raw["clips"]["val_digest"] == "b" * 16  # `mmfer scores` of the shipped file re-draws its held-out clips
    sd = raw["state_dict"]
    assert sd["classifier.weight"].dtype == torch.float16
    assert torch.equal(sd["blocks.0.bn1.running_var"], model.state_dict()["blocks.0.bn1.running_var"])  # exact
    assert sd["blocks.0.bn1.num_batches_tracked"].dtype == torch.int64

    loaded = model_from_checkpoint(load_checkpoint(dst))
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    x = torch.randn(3, 1, 32, 40)
    with torch.no_grad():
        a, b = torch.softmax(model(x), 1), torch.softmax(loaded(x), 1)
    assert torch.allclose(a, b, atol=2e-3) and not torch.equal(a, b)


def test_export_fp32_is_exact(tmp_path):
    src, model = _run_with_optimizer(tmp_path)
    loaded = model_from_checkpoint(load_checkpoint(export_checkpoint(src, tmp_path / "a.pt", half=False)))
    x = torch.randn(2, 1, 32, 25)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
