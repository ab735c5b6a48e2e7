"""mmfer.engine.hooks: a loop of one's own from the pieces of fit, which learns as fit does."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine_helpers import tiny_config
from mmfer.data.cache import split_records
from mmfer.engine.hooks import restore_state, start_epoch_draws, train_epoch, train_loader, validate
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
    with pytest.raises(MmferError, match=r"kind 'face_image', but the dataset \(LandmarkDataset\) gives landmarks"):
        train_loader(cfg, train_ds, kind="face_image", device=dev)  # was torch's "stack expects each tensor ..."
    own = train_loader(cfg, train_ds)[1]  # the kind defaults to the dataset's
    assert own.collate_fn.keywords == train_loader(cfg, train_ds, kind=kind)[1].collate_fn.keywords
    sampler, loader, generator = train_loader(cfg, train_ds, kind=kind, device=dev)
    pieces = training_pieces(cfg, model, dev, train_ds.labels)
    optimizer = pieces["optimizer"]
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    labels = np.asarray(val_ds.labels)
    before = validate(model, val_ds, labels, device=dev, batch_size=8)
    for epoch in range(cfg.optim.epochs):
        start_epoch_draws(epoch, seed=cfg.seed, train_ds=train_ds, sampler=sampler, generator=generator)
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
    with pytest.raises(MmferError, match="precision 'float32'; expected one of fp32, bf16, fp16"):
        train_epoch(model, loader, desc="e", device=dev, precision="float32", criterion=pieces["criterion"],
                    optimizer=optimizer, scheduler=scheduler, scaler=pieces["scaler"], grad_clip=None)
    with pytest.raises(MmferError, match="^e ran no optimisation step: the loader gave no batch"):
        train_epoch(model, [], desc="e", device=dev, precision="fp32", criterion=pieces["criterion"],
                    optimizer=optimizer, scheduler=scheduler, scaler=pieces["scaler"], grad_clip=None)
    with pytest.raises(MmferError, match="mine.pt: holds no averaged"):
        restore_state(saved, model=other, optimizer=other_opt, scheduler=torch.optim.lr_scheduler.LambdaLR(
            other_opt, lambda step: 1.0), scaler=pieces["scaler"], ema=object(), where="mine.pt")


def test_a_loop_of_ones_own_on_the_supported_route_trains_in_training_mode_and_leaves_a_run_mmfer_reads(
        synth_cache, tmp_path):
    """prepare_run + prepare_data + the hooks, with a loss of one's own: validating first left the model in
    evaluation mode for every epoch (a user's loop found it: BatchNorm never updated), and a loop that wrote its
    checkpoints by hand without the run's clips had `mmfer scores` score training clips as held out."""
    from mmfer.engine.hooks import save_state
    from mmfer.engine.scoring import score_split
    from mmfer.scores import read_scores
    from mmfer.engine.train import prepare_data, prepare_run

    cache = synth_cache("landmarks")
    cfg = tiny_config("landmark_brnn")
    run = prepare_run(cfg, data=cache, out=tmp_path / "mine", device="cpu")
    data = prepare_data(run)
    model, dev = run.model, run.dev
    sampler, loader, generator = train_loader(cfg, data.train_ds, kind=run.kind, device=dev)
    pieces = training_pieces(cfg, model, dev, data.train_ds.labels)
    optimizer = pieces["optimizer"]
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    modes = []
    model.register_forward_pre_hook(lambda module, args: modes.append(module.training))

    def focal(logits, y, *rest, teacher_probs=None):  # a loss of one's own
        p = torch.softmax(logits.float(), 1).gather(1, y[:, None]).squeeze(1)
        return (-(1 - p) ** 2 * torch.log(p.clamp_min(1e-8))).mean()

    labels = np.asarray(data.val_ds.labels)
    rows = []
    for epoch in range(2):
        validate(model, data.val_ds, labels, device="cpu", batch_size=8)  # a str device is taken too
        model.eval()  # as a loop that looked at the model in some way of its own leaves it
        modes.clear()
        start_epoch_draws(epoch, seed=cfg.seed, train_ds=data.train_ds, sampler=sampler, generator=generator)
        steps = []
        loss, acc, n = train_epoch(model, loader, desc="e", device=dev, precision="fp32", criterion=focal,
                                   optimizer=optimizer, scheduler=scheduler, scaler=pieces["scaler"], grad_clip=None,
                                   on_step=lambda step, loss, lr: steps.append((step, loss, lr)))
        assert [s[0] for s in steps] == list(range(1, len(loader) + 1)) and all(np.isfinite(s[1]) for s in steps)
        assert modes and all(modes)  # every training forward in training mode
        assert model.training
        val_acc, val_uar, _ = validate(model, data.val_ds, labels, device=dev, batch_size=8)
        assert model.training  # validate leaves the mode as it found it
        rows.append({"epoch": epoch + 1, "lr": 0.0, "train_loss": loss, "train_accuracy": acc, "val_loss": 0.0,
                     "val_accuracy": val_acc, "val_uar": val_uar, "best": True, "seconds": 0.0})
        save_state(run, data, model=model, eval_model=model, epoch=epoch + 1, optimizer=optimizer,
                   scheduler=scheduler, scaler=pieces["scaler"], precision="fp32", rows=rows, best={"epoch": epoch + 1},
                   improved=True)
    out = tmp_path / "mine"
    assert {p.name for p in out.iterdir()} >= {"last.pt", "best.pt", "log.jsonl", "log.csv"}
    last = torch.load(out / "last.pt", weights_only=False)
    assert last["clips"] and last["epoch"] == 2
    again, _ = build_run_model(cfg)
    again_opt = training_pieces(cfg, again, dev, data.train_ds.labels)["optimizer"]
    assert restore_state(last, model=again, optimizer=again_opt, scheduler=torch.optim.lr_scheduler.LambdaLR(
        again_opt, lambda step: 1.0), scaler=pieces["scaler"])[0] == 2
    with pytest.raises(MmferError, match=r"best.pt: holds the weights only .*resume from the run's last.pt"):
        restore_state(torch.load(out / "best.pt", weights_only=False), model=again, optimizer=again_opt,
                      scheduler=scheduler, scaler=pieces["scaler"], where=out / "best.pt")
    scored = read_scores(score_split(out, data=cache, split="Val", progress=False))  # as `mmfer scores RUN`
    assert sorted(scored.clip_ids) == sorted(r.clip_id for r in data.val_records)


def test_a_run_that_trains_on_drops_the_scores_of_its_older_best(synth_cache, tmp_path):
    """A run scored after 1 epoch, then trained on and stopped while scoring: challenge/run_afew.sh found the
    1-epoch scores beside the newer best.pt, called them current and submitted them."""
    from mmfer.engine.train import fit, prepare_data, prepare_run, train

    cache = synth_cache("landmarks")
    cfg = tiny_config("landmark_brnn", epochs=1)
    out = tmp_path / "run"
    train(cfg, data=cache, out=out, progress=False)
    assert (out / "scores_Val.csv").is_file()
    run = prepare_run(cfg, data=cache, out=out, epochs=2, resume=True, device="cpu")
    fit(run, prepare_data(run), progress=False)  # stopped before finish() scores the new best
    assert not (out / "scores_Val.csv").exists() and not (out / "scores_Test.csv").exists()
