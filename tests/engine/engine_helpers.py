"""Tiny overrides of the shipped configs for fast CPU tests (a uniquely named module, imported by tests)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from mmfer.engine.config import TrainConfig, load_train_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

# branch -> (shipped config, modality that carries the class, small overrides for a few seconds of CPU)
TINY = {
    "c3d": ("c3d.yaml", "faces", {
        "model": {"width": 4, "clip_len": 8, "input_size": 32, "dropout": 0.0},
        "data": {"clip_len": 8, "stride": 8, "image_size": None, "batch_size": 6, "workers": 0},
        "optim": {"epochs": 12, "lr": 1e-3, "warmup_epochs": 0.5},
        "augment": {"crop_scale": (0.95, 1.0), "brightness": 0.0, "contrast": 0.0},
    }),
    "cnn_lstm": ("cnn_lstm.yaml", "faces", {
        "model": {"width": 8, "hidden": 32, "dropout": 0.0},
        "data": {"num_frames": 6, "image_size": 32, "batch_size": 8, "workers": 0},
        "optim": {"epochs": 6, "lr": 3e-3, "warmup_epochs": 0.5},
        "augment": {"crop_scale": (0.95, 1.0), "brightness": 0.05, "contrast": 0.05},
    }),
    "landmark_brnn": ("landmark_brnn.yaml", "landmarks", {
        "model": {"hidden": 32, "layers": 1, "dropout": 0.0},
        "data": {"max_len": 24, "batch_size": 8, "workers": 0},
        "optim": {"epochs": 8, "lr": 5e-3, "warmup_epochs": 0.5},
    }),
    "audio_cnn": ("audio_cnn.yaml", "audio", {
        "model": {"width": 8, "n_mels": 32, "dropout": 0.0},
        "data": {"n_mels": 32, "audio_seconds": 0.5, "batch_size": 8, "workers": 0},
        "optim": {"epochs": 6, "lr": 3e-3, "warmup_epochs": 0.5},
        "augment": {"freq_width": 4, "time_width": 8},
    }),
}


def tiny_config(branch: str, **optim) -> TrainConfig:
    """The shipped config of ``branch``, shrunk by replacing fields (not a separate config file)."""
    file, _, over = TINY[branch]
    cfg = load_train_config(CONFIGS / file)
    model = dataclasses.replace(cfg.model, kwargs={**cfg.model.kwargs, **over.get("model", {})})
    data = dataclasses.replace(cfg.data, **over.get("data", {}))
    opt = dataclasses.replace(cfg.optim, **{**over.get("optim", {}), **optim})
    aug = dataclasses.replace(cfg.augment, **over.get("augment", {}))
    return dataclasses.replace(cfg, model=model, data=data, optim=opt, augment=aug, device="cpu")
