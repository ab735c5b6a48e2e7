"""mmfer.engine.hooks: a loop of one's own from the pieces of fit, which learns as fit does."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine_helpers import tiny_config
from mmfer.data.cache import split_records
from mmfer.engine.hooks import restore_state, train_epoch, train_loader, validate
from mmfer.engine.sampling import rng_state
from mmfer.engine.steps import training_pieces
from mmfer.engine.train import build_run_model, data_source, make_dataset
from mmfer.errors import MmferError


def test_a_loop_of_ones_own_learns_and_resumes_from_the_pieces(synth_cache, tmp_path):
    cache = synth_cache("landmarks")
    cfg = tiny_config("landmark_brnn")
    model, kind = build_run_model(cfg)
    source = data_source(cache, kind, "Train")
    make = lambda split, train: make_dataset(cfg, data=cache, kind=kind, records=split_records(cache, split),  # noqa: E731
                                             train=train, sample_rate=source.sample_rate)
    train_ds, val_ds = make("Train", True), make("Val", False)
    dev = torch.device("cpu")
    sampler, loader, generator = train_loader(cfg, train_ds, kind=kind, device=dev)
    pieces = training_pieces(cfg, model, dev, train_ds.labels)
    optimizer = pieces["optimizer"]
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    labels = np.asarray(val_ds.labels)
    before = validate(model, val_ds, labels, device=dev, batch_size=8)
    for epoch in range(cfg.optim.epochs):
        sampler.set_epoch(epoch)
        generator.manual_seed(epoch)
        loss, acc, items = train_epoch(model, loader, desc=f"epoch {epoch + 1}", device=dev,
                                       precision=pieces["precision"], criterion=pieces["criterion"],
                                       optimizer=optimizer, scheduler=scheduler, scaler=pieces["scaler"],
                                       grad_clip=None, clip_ids=train_ds.clip_ids)
        assert np.isfinite(loss) and 0.0 <= acc <= 1.0 and items > 0
    after_acc, after_uar, after_loss = validate(model, val_ds, labels, device=dev, batch_size=8)
    assert after_acc > before[0] + 0.2 and after_loss < before[2]  # the class is in the landmarks: it learnt
    # the state a stopped loop saved puts another model back where this one is
    saved = {"state_dict": model.state_dict(), "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict(), "rng": rng_state(),
             "epoch": cfg.optim.epochs, "best": {"epoch": 3}}
    other, _ = build_run_model(cfg)
    other_opt = training_pieces(cfg, other, dev, train_ds.labels)["optimizer"]
    done, best = restore_state(saved, model=other, optimizer=other_opt,
                               scheduler=torch.optim.lr_scheduler.LambdaLR(other_opt, lambda step: 1.0),
                               scaler=pieces["scaler"], where="mine.pt")
    assert (done, best) == (cfg.optim.epochs, {"epoch": 3})
    assert validate(other, val_ds, labels, device=dev, batch_size=8)[0] == after_acc
    with pytest.raises(MmferError, match="mine.pt: holds no averaged"):
        restore_state(saved, model=other, optimizer=other_opt, scheduler=torch.optim.lr_scheduler.LambdaLR(
            other_opt, lambda step: 1.0), scaler=pieces["scaler"], ema=object(), where="mine.pt")
