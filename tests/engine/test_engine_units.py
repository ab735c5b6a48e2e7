"""Small pure pieces of the engine: schedule, class weights, held-out split, metrics."""

from __future__ import annotations

import numpy as np
import pytest

from mmfer.data.cache import ClipRecord
from mmfer.engine.checkpoint import resolve_checkpoint, run_checkpoint
from mmfer.engine.config import OptimConfig
from mmfer.data.splits import holdout_split
from mmfer.engine.steps import class_weights, lr_factor
from mmfer.engine.train import accuracy_uar
from mmfer.errors import MmferError


def test_warmup_then_cosine_step_constant():
    o = OptimConfig(epochs=10, warmup_epochs=2)
    f = [lr_factor(s, steps_per_epoch=5, optim=o) for s in range(50)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)  # linear warmup over 10 steps
    assert all(a >= b for a, b in zip(f[10:], f[11:])) and f[-1] < 0.01  # cosine down to ~0
    step = OptimConfig(epochs=10, warmup_epochs=0, schedule="step", step_epochs=4, step_gamma=0.5)
    assert [lr_factor(s, steps_per_epoch=5, optim=step) for s in (0, 19, 20, 40)] == [1.0, 1.0, 0.5, 0.25]
    assert lr_factor(33, steps_per_epoch=5, optim=OptimConfig(warmup_epochs=0, schedule="constant")) == 1.0


def test_class_weights_balance_present_classes():
    w = class_weights([0] * 6 + [1] * 2 + [3] * 4).numpy()
    counts = np.array([6, 2, 0, 4, 0, 0, 0])
    assert w[2] == 0 and w[4:].sum() == 0
    assert np.allclose((w * counts)[[0, 1, 3]], 4.0)  # each present class weighs N / K = 12 / 3


def test_holdout_is_stratified_seeded_and_disjoint():
    recs = [ClipRecord(clip_id=f"c{i}", split="Train", label=lab, path="", status="ok")
            for i, lab in enumerate(["Angry"] * 20 + ["Sad"] * 10 + ["Happy"])]
    train, held = holdout_split(recs, fraction=0.1, seed=0)
    assert sorted(r.label for r in held) == ["Angry", "Angry", "Sad"]  # a lone Happy clip stays in Train
    assert not {r.clip_id for r in train} & {r.clip_id for r in held} and len(train) + len(held) == len(recs)
    assert [r.clip_id for r in holdout_split(recs, fraction=0.1, seed=0)[1]] == [r.clip_id for r in held]
    assert [r.clip_id for r in holdout_split(recs, fraction=0.1, seed=1)[1]] != [r.clip_id for r in held]


def test_holdout_of_named_speakers_holds_out_whole_speakers():
    """RAVDESS names (actor = last field): about 10% of the clips, as whole actors, so none of them is heard in
    training; seeded, and at least one actor trains."""
    recs = [ClipRecord(clip_id=f"03-01-0{1 + i % 7}-01-01-0{1 + i % 2}-{actor:02d}", split="Train",
                       label="Angry", path="", status="ok") for actor in range(1, 21) for i in range(10)]
    train, held = holdout_split(recs, fraction=0.1, seed=0)
    actors = lambda rs: {r.clip_id[-2:] for r in rs}  # noqa: E731
    assert len(actors(held)) == 2 and not actors(train) & actors(held) and len(held) == 20
    assert [r.clip_id for r in holdout_split(recs, fraction=0.1, seed=0)[1]] == [r.clip_id for r in held]
    two = [r for r in recs if r.clip_id[-2:] in ("01", "02")]
    assert actors(holdout_split(two, fraction=0.9, seed=0)[0])  # never every speaker


def test_accuracy_and_uar():
    y = np.array([0, 0, 0, 1, -1])
    p = np.eye(7)[[0, 0, 1, 1, 2]]
    acc, uar = accuracy_uar(y, p)
    assert acc == pytest.approx(3 / 4) and uar == pytest.approx((2 / 3 + 1) / 2)
    assert all(np.isnan(accuracy_uar(np.array([-1]), np.eye(7)[:1])))


def test_run_checkpoint_prefers_best_then_last_else_none(tmp_path):
    run = tmp_path / "run"
    assert run_checkpoint(run) is None  # missing folder
    run.mkdir()
    assert run_checkpoint(run) is None  # empty folder: not a trained run
    (run / "best.pt").mkdir()  # a folder named best.pt is not a checkpoint
    assert run_checkpoint(run) is None
    (run / "last.pt").write_bytes(b"x")
    assert run_checkpoint(run) == run / "last.pt"
    (run / "best.pt").rmdir()
    (run / "best.pt").write_bytes(b"x")
    assert run_checkpoint(str(run)) == run / "best.pt"
    assert run_checkpoint(run / "best.pt") is None  # a file is not a run directory
    assert resolve_checkpoint(run) == run / "best.pt"
    (tmp_path / "empty").mkdir()
    with pytest.raises(MmferError, match="no best.pt or last.pt"):
        resolve_checkpoint(tmp_path / "empty")


def test_corpus_balance_under_torchrun_is_refused(tmp_path, monkeypatch):
    """DistributedSampler took the place of the corpus- and class-balanced draws without a word."""
    import pytest

    from mmfer.data.config import DataConfig
    from mmfer.engine.config import ModelConfig, TrainConfig
    from mmfer.engine.train import train
    from mmfer.errors import MmferError

    monkeypatch.setenv("WORLD_SIZE", "2")
    cfg = TrainConfig(name="t", model=ModelConfig(name="audio_stats"), data=DataConfig(balance="corpus_class"))
    with pytest.raises(MmferError, match="data.balance 'corpus_class' is not supported under torchrun"):
        train(cfg, data=tmp_path, out=tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "last.pt").exists()
    from mmfer.engine.config import AdversaryConfig  # its head is not all-reduced: refused the same way

    cfg = TrainConfig(name="t", model=ModelConfig(name="audio_stats"), adversary=AdversaryConfig(scale=0.3))
    with pytest.raises(MmferError, match="adversary is not supported under torchrun"):
        train(cfg, data=tmp_path, out=tmp_path / "run", progress=False)


def test_a_runs_held_out_clips_are_redrawn_by_the_rule_that_drew_them(caplog):
    """Runs trained before the speaker-disjoint holdout drew a class-stratified 10%: `mmfer scores` and --resume must
    re-draw those clips (today's rule would score an old run on clips it trained on)."""
    from mmfer.engine.checkpoint import clip_sets, run_holdout

    recs = [ClipRecord(clip_id=f"03-01-0{1 + i % 7}-01-01-0{1 + i % 2}-{actor:02d}", split="Train",
                       label=["Angry", "Sad"][i % 2], path="", status="ok") for actor in range(1, 11) for i in range(10)]
    ids = lambda rs: sorted(r.clip_id for r in rs)  # noqa: E731
    old = holdout_split(recs, fraction=0.1, seed=0, by_speaker=False)
    new = holdout_split(recs, fraction=0.1, seed=0)
    assert ids(old[1]) != ids(new[1])
    assert ids(run_holdout(recs, fraction=0.1, seed=0)[1]) == ids(new[1])  # a new run
    import logging

    with caplog.at_level(logging.WARNING, logger="mmfer.engine.checkpoint"):
        assert ids(run_holdout(recs, fraction=0.1, seed=0, ckpt={"config": {}})[1]) == ids(old[1])  # before digests
    assert "cannot be re-drawn" not in caplog.text  # nothing to match, so nothing to warn about
    for drawn in (old, new):  # a checkpoint's digest says which rule drew its Val
        ckpt = {"clips": clip_sets(*drawn)}
        assert ids(run_holdout(recs, fraction=0.1, seed=0, ckpt=ckpt)[1]) == ids(drawn[1])
