"""The GPU recipe at a tiny size on the CPU: images held on the device, jittered there, a run the CPU path loads."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from mmfer.data.config import AugmentConfig
from mmfer.engine.config import load_train_config
from mmfer.errors import MmferError
from mmfer.labels import EMOTIONS

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture(scope="module")
def image_tree(tmp_path_factory):
    """7 classes x 8 grey 48-px images: a bright square at a class-specific place on noise (learnable)."""
    import cv2

    root = tmp_path_factory.mktemp("faces")
    rng = np.random.default_rng(0)
    for k, e in enumerate(EMOTIONS):
        (root / "Train" / e).mkdir(parents=True)
        for i in range(8):
            img = rng.integers(0, 80, (48, 48)).astype(np.uint8)
            y, x = 6 + 5 * (k // 3) * 2, 6 + 12 * (k % 3)
            img[y : y + 12, x : x + 12] = 230
            cv2.imwrite(str(root / "Train" / e / f"{e}_{i}.png"), img)
    return root


def _gpu_recipe_tiny(**over):
    cfg = load_train_config(CONFIGS / "face_frame_video_gpu.yaml")
    assert cfg.data.device_images and cfg.device == "cuda"  # the shipped recipe is the GPU one
    model = dataclasses.replace(cfg.model, kwargs={**cfg.model.kwargs, "width": 8, "dropout": 0.0})
    data = dataclasses.replace(cfg.data, image_size=24, batch_size=8, eval_batch_size=64, holdout_fraction=0.25)
    optim = dataclasses.replace(cfg.optim, epochs=12, lr=3e-3, warmup_epochs=0.5, ema_decay=0.0)
    aug = dataclasses.replace(cfg.augment, mixup=0.0, erasing=0.1)
    return dataclasses.replace(cfg, model=model, data=data, optim=optim, augment=aug, device="cpu", **over)


def test_gpu_recipe_trains_on_the_cpu_and_writes_a_run_the_cpu_loads(image_tree, tmp_path):
    from mmfer.engine.checkpoint import load_checkpoint, model_from_checkpoint
    from mmfer.engine.train import train

    res = train(_gpu_recipe_tiny(), data=image_tree, out=tmp_path / "run", progress=False)
    assert res["best"]["val_accuracy"] > 0.5  # chance is 1/7
    ckpt = load_checkpoint(tmp_path / "run")
    model = model_from_checkpoint(ckpt).eval()
    assert ckpt["config"]["data"]["device_images"] is True
    with torch.no_grad():
        assert model(torch.zeros(2, 1, 24, 24)).shape == (2, 7)


def test_device_batches_are_seeded_sharded_and_jittered(image_tree):
    from mmfer.data.datasets import build_dataset
    from mmfer.data.sources import media_folder_records
    from mmfer.engine.device_data import DeviceFaceBatches, augment_on_device

    cfg = _gpu_recipe_tiny()
    recs = media_folder_records(image_tree, "Train", "face_image")
    ds = build_dataset("face_image", cache=image_tree, records=recs, train=True, data=cfg.data, augment=cfg.augment)
    plain = DeviceFaceBatches(ds, device=torch.device("cpu"), batch_size=8, seed=0, augment=None)
    assert plain.x.shape == (56, 1, 24, 24) and len(plain) == 7
    # without jitter, a batch is exactly the dataset's own (evaluation) tensors of those images
    first = next(iter(plain))
    i = int(first["clip"][0])
    ds_plain = build_dataset("face_image", cache=image_tree, records=recs, train=True, data=cfg.data, augment=None)
    torch.testing.assert_close(first["x"][0], ds_plain[i]["x"])
    assert int(first["label"][0]) == ds_plain[i]["label"]

    jit = DeviceFaceBatches(ds, device=torch.device("cpu"), batch_size=8, seed=0, augment=cfg.augment)
    a, b = [bt["x"] for bt in jit], [bt["x"] for bt in jit]
    torch.testing.assert_close(torch.cat(a), torch.cat(b))  # same epoch: same batches
    jit.set_epoch(1)
    assert not torch.equal(torch.cat([bt["clip"] for bt in jit]), torch.cat([bt["clip"] for bt in plain]))
    # two processes take disjoint halves of one epoch's permutation
    halves = [DeviceFaceBatches(ds, device=torch.device("cpu"), batch_size=4, seed=0, augment=None, rank=r,
                                world_size=2)._indices() for r in range(2)]
    assert set(halves[0].tolist()).isdisjoint(halves[1].tolist()) and len(halves[0]) + len(halves[1]) == 56

    x = torch.randn(16, 1, 24, 24)
    g = torch.Generator().manual_seed(0)
    y = augment_on_device(x, AugmentConfig(flip=True, crop_scale=(0.8, 1.0), rotation=10, translate=0.05,
                                           brightness=0.2, contrast=0.2, erasing=1.0), g)
    assert y.shape == x.shape and torch.isfinite(y).all() and not torch.allclose(x, y)
    ident = augment_on_device(x, AugmentConfig(flip=False, crop_scale=(1.0, 1.0), brightness=0, contrast=0), g)
    torch.testing.assert_close(ident, x, atol=1e-4, rtol=0)  # no jitter asked: the images come back
    covered = augment_on_device(x, AugmentConfig(flip=False, crop_scale=(1.0, 1.0), brightness=0, contrast=0,
                                                 occlusion=1.0), g)
    for img, orig in zip(covered[:, 0], x[:, 0]):  # as augment_faces: the lower 25-45% one grey level
        rows = [r for r in range(24) if not torch.allclose(img[r], orig[r], atol=1e-4)]
        assert rows == list(range(rows[0], 24)) and 5 <= len(rows) <= 12 and img[rows[0]:].unique().numel() == 1
        torch.testing.assert_close(img[:rows[0]], orig[:rows[0]], atol=1e-4, rtol=0)


def test_device_images_need_a_single_image_model(tmp_path):
    from mmfer.engine.checks import check_consistency

    cfg = load_train_config(CONFIGS / "cnn_lstm.yaml")
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, device_images=True))
    with pytest.raises(MmferError, match="device_images"):
        check_consistency(cfg, None, "face_sequence")
