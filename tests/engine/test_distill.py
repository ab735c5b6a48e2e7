"""Knowledge distillation (``distill:`` in a train config): the loss, and a student that learns what its teachers
say rather than what its labels say, with teachers checked to have held out the student's fold."""

from __future__ import annotations

import csv
import dataclasses

import numpy as np
import pytest
import torch

from mmfer.engine.config import (
    DataConfig,
    DistillConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    TrainConfig,
    config_from_dict,
)
from mmfer.engine.losses import DistillationLoss, MaskedCrossEntropy
from mmfer.errors import MmferError
from mmfer.labels import EMOTIONS, index_of

SR = 16000


def test_distillation_loss_mixes_labels_and_teachers():
    torch.manual_seed(0)
    logits = torch.randn(5, 7, requires_grad=True)
    y = torch.tensor([0, 3, 4, 5, 6])
    base = MaskedCrossEntropy(label_smoothing=0.1)
    t = 2.0
    same = torch.softmax(logits.detach() / t, dim=1)  # teachers that agree with the student exactly
    assert torch.allclose(DistillationLoss(base, weight=0.0, temperature=t)(logits, y, teacher_probs=same),
                          base(logits, y))
    assert torch.allclose(DistillationLoss(base, weight=0.3, temperature=t)(logits, y), base(logits, y))
    only = DistillationLoss(base, weight=1.0, temperature=t)(logits, y, teacher_probs=same)
    only.backward()
    assert abs(float(only.detach())) < 1e-6 and logits.grad.abs().max() < 1e-6  # nothing left to learn from them
    other = torch.softmax(torch.randn(5, 7), dim=1)
    mixed = DistillationLoss(base, weight=0.3, temperature=t)(logits, y, teacher_probs=other)
    kl = torch.nn.functional.kl_div(torch.log_softmax(logits / t, 1), other, reduction="batchmean") * t * t
    assert torch.allclose(mixed, 0.7 * base(logits, y) + 0.3 * kl)
    allowed = torch.ones(5, 7, dtype=torch.bool)
    allowed[:2, index_of("Disgust")] = False
    assert torch.allclose(DistillationLoss(base, weight=0.3, temperature=t)(logits, y, allowed, teacher_probs=other),
                          0.7 * base(logits, y, allowed) + 0.3 * kl)


def test_distill_config_is_checked_by_name():
    with pytest.raises(MmferError, match=r"distill.weight: 1.5 is out of range"):
        config_from_dict({"name": "x", "model": {"name": "audio_stats"}, "distill": {"weight": 1.5}})
    with pytest.raises(MmferError, match=r"distill: unknown key 'teacher'"):
        config_from_dict({"name": "x", "model": {"name": "audio_stats"}, "distill": {"teacher": ["a.pt"]}})
    cfg = config_from_dict({"name": "x", "model": {"name": "audio_stats"}, "distill": {"teachers": ["a.pt"]}})
    assert cfg.distill.teachers == ("a.pt",) and cfg.distill.weight == 0.5


def _speech_list(tmp_path, name: str, *, relabel: dict[str, str]) -> str:
    """Tone 'speech' of 4 speakers, each class at its own pitch; the list's labels renamed by ``relabel``."""
    import soundfile as sf

    rng = np.random.default_rng(0)
    audio = tmp_path / "audio"
    audio.mkdir(exist_ok=True)
    rows = []
    for s in range(4):
        for c in EMOTIONS:
            for k in range(3):
                path = audio / f"s{s}_{c}_{k}.wav"
                if not path.exists():
                    t = np.arange(int(0.6 * SR)) / SR
                    wave = 0.3 * np.sin(2 * np.pi * (150 + 60 * index_of(c) + 4 * s) * t)
                    sf.write(path, (wave + 0.01 * rng.standard_normal(t.size)).astype(np.float32), SR)
                rows.append({"path": str(path), "label": relabel.get(c, c), "speaker": f"spk{s}", "corpus": "tones"})
    with open(tmp_path / name, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["path", "label", "speaker", "corpus"])
        w.writeheader()
        w.writerows(rows)
    return str(tmp_path / name)


def test_student_learns_its_teachers_and_teachers_must_hold_out_its_fold(tmp_path, caplog):
    """Teachers trained with Angry and Happy swapped teach a student (weight 1, labels unused) to swap them on
    its held-out speakers, though its own labels say otherwise; a teacher of another fold is refused."""
    from mmfer.engine.folds import train_folds
    from mmfer.engine.train import train
    from mmfer.scores import read_scores

    swapped = _speech_list(tmp_path, "swapped.csv", relabel={"Angry": "Happy", "Happy": "Angry"})
    true = _speech_list(tmp_path, "true.csv", relabel={})
    cfg = TrainConfig(name="t", model=ModelConfig(name="audio_stats", kwargs={"hidden": 32}),
                      data=DataConfig(batch_size=16), loss=LossConfig(class_balanced=True),
                      optim=OptimConfig(epochs=25, lr=5e-3, select_by="last", warmup_epochs=0.5), device="cpu")
    train_folds(cfg, data=swapped, out=tmp_path / "teacher", folds=2, progress=False)
    student = dataclasses.replace(cfg, seed=1, distill=DistillConfig(
        teachers=(str(tmp_path / "teacher" / "fold{fold}" / "last.pt"),), weight=1.0, temperature=1.0))
    train_folds(student, data=true, out=tmp_path / "student", folds=2, progress=False)
    oof = read_scores(tmp_path / "student" / "scores_oof.csv")
    said = dict(zip(oof.clip_ids, (EMOTIONS[i] for i in oof.probs.argmax(1))))
    angry = [c for c in said if "_Angry_" in c]
    assert len(angry) == 12 and sum(said[c] == "Happy" for c in angry) >= 10, said

    def taught_by(*teachers, **changes):
        return dataclasses.replace(student, distill=dataclasses.replace(student.distill, teachers=teachers), **changes)

    fold2 = str(tmp_path / "teacher" / "fold2" / "last.pt")
    with pytest.raises(MmferError, match=r"fold2/last.pt is not a model of this fold of the same data \(speakers "):
        train(taught_by(fold2), data=true, out=tmp_path / "leak", fold=(0, 2), progress=False)
    with pytest.raises(MmferError, match=r"names a fold \(\{fold\}\) but this run is not one of `--folds`"):
        train(student, data=true, out=tmp_path / "nofold", progress=False)
    with pytest.raises(MmferError, match=r"is a fold model of a `--folds` run, which trained on Train and Val pooled"):
        train(taught_by(fold2), data=true, out=tmp_path / "notfold", progress=False)
    # outside --folds: a teacher that held out other clips may have trained on this run's validation clips
    short = dataclasses.replace(cfg.optim, epochs=1)
    train(dataclasses.replace(cfg, optim=short), data=true, out=tmp_path / "t_hold", progress=False)  # seed 0
    teacher = str(tmp_path / "t_hold" / "best.pt")
    caplog.clear()
    train(taught_by(teacher, optim=short), data=true, out=tmp_path / "s_other", progress=False)  # seed 1: other clips
    assert "validated on other clips than this run" in caplog.text
    caplog.clear()
    same = dataclasses.replace(student.data, holdout_seed=0)
    train(taught_by(teacher, optim=short, data=same), data=true, out=tmp_path / "s_same", progress=False)
    assert "validated on other clips" not in caplog.text
    # every fold's teachers are there before the first fold trains
    import shutil

    shutil.copytree(tmp_path / "teacher" / "fold1", tmp_path / "half" / "fold1")  # no fold2
    with pytest.raises(MmferError, match=r"half/fold2/last.pt: checkpoint or run directory not found"):
        train_folds(taught_by(str(tmp_path / "half" / "fold{fold}" / "last.pt")), data=true, out=tmp_path / "gone",
                    folds=2, progress=False)
    assert not (tmp_path / "gone" / "fold1" / "last.pt").exists()
    assert not (tmp_path / "gone" / "plan.json").exists()  # it would refuse the next try with other options
    # an older run's fold.json (speakers only, no clip counts) is compared on what it holds, with a warning
    import json
    import logging

    info = json.loads((tmp_path / "half" / "fold1" / "fold.json").read_text())
    (tmp_path / "half" / "fold1" / "fold.json").write_text(json.dumps({k: info[k] for k in ("index", "of", "speakers")}))
    with caplog.at_level(logging.WARNING, logger="mmfer.engine.distill"):
        train(dataclasses.replace(taught_by(str(tmp_path / "half" / "fold1" / "last.pt")),
                                  optim=dataclasses.replace(cfg.optim, epochs=1)),
              data=true, out=tmp_path / "old", fold=(0, 2), progress=False)
    assert "records no within, train_clips, val_clips of its fold (an older run): only its by, of, speakers" in caplog.text
    # a teacher that read its input otherwise, or picked its epoch on the fold, is refused by name
    trimmed = dataclasses.replace(student, data=dataclasses.replace(student.data, trim_silence=True))
    with pytest.raises(MmferError, match=r"read its input otherwise: data.trim_silence False \(teacher\) != True"):
        train(trimmed, data=true, out=tmp_path / "trim", fold=(0, 2), progress=False)
    picky = dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, epochs=1, select_by="uar"))
    train_folds(picky, data=swapped, out=tmp_path / "picky", folds=2, progress=False)
    with pytest.raises(MmferError, match=r"chose its epoch on this fold's clips \(optim.select_by 'uar'\)"):
        train(taught_by(str(tmp_path / "picky" / "fold1")), data=true, out=tmp_path / "p", fold=(0, 2), progress=False)


def test_a_run_from_before_a_config_key_existed_still_resumes(tmp_path):
    """A last.pt written before ``distill:`` existed holds no such key: resuming takes its default, not a
    difference in the config."""
    from mmfer.engine.checkpoint import load_checkpoint
    from mmfer.engine.train import train

    data = _speech_list(tmp_path, "true.csv", relabel={})
    cfg = TrainConfig(name="t", model=ModelConfig(name="audio_stats", kwargs={"hidden": 8}),
                      data=DataConfig(batch_size=16), optim=OptimConfig(epochs=2, select_by="last"), device="cpu")
    train(cfg, data=data, out=tmp_path / "run", stop_after=1, progress=False)
    old = load_checkpoint(tmp_path / "run" / "last.pt")
    del old["config"]["distill"], old["path"]
    torch.save(old, tmp_path / "run" / "last.pt")
    assert train(cfg, data=data, out=tmp_path / "run", resume=True, progress=False)["epochs_done"] == 2
    changed = dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, lr=0.5))
    with pytest.raises(MmferError, match=r"cannot resume with a different config: optim.lr.*use the run's config"):
        train(changed, data=data, out=tmp_path / "run", resume=True, progress=False)
    with pytest.raises(MmferError, match=r"seed: 0 \(run\) != 3 \(now\); pass --seed 0, as when the run started"):
        train(dataclasses.replace(cfg, seed=3), data=data, out=tmp_path / "run", resume=True, progress=False)


class _Linear(torch.nn.Module):
    """A tiny model of the training interface: forward(x, mask=None) -> logits."""

    def __init__(self, seed: int):
        super().__init__()
        torch.manual_seed(seed)
        self.fc = torch.nn.Linear(12, 7)

    def forward(self, x, mask=None):
        return self.fc(x.flatten(1))


def test_a_step_shows_the_teachers_the_batch_the_student_sees_and_weighs_them_once_under_mixup():
    """Under mixup the teachers read the mixed clips, and the KL term weighs ``weight`` in all (lam + 1 - lam)."""
    from mmfer.engine.distill import TeacherEnsemble
    from mmfer.engine.mixing import mix_batch
    from mmfer.engine.steps import optimisation_step

    torch.manual_seed(0)
    batch = {"x": torch.randn(6, 1, 3, 4), "label": torch.tensor([0, 1, 2, 3, 4, 5]), "mask": None}
    teacher = TeacherEnsemble([_Linear(1), _Linear(2)], temperature=2.0)
    student = _Linear(3)
    start = {k: v.clone() for k, v in student.state_dict().items()}
    loss_fn = DistillationLoss(MaskedCrossEntropy(), weight=0.4, temperature=2.0)
    torch.manual_seed(5)
    _, logits, loss = optimisation_step(student, batch, device=torch.device("cpu"), precision="fp32",
                                        criterion=loss_fn, optimizer=torch.optim.SGD(student.parameters(), lr=0.0),
                                        scaler=torch.amp.GradScaler("cuda", enabled=False), grad_clip=None,
                                        mixup=0.4, teacher=teacher)
    torch.manual_seed(5)  # the same draw again, by hand
    mixed = mix_batch(batch["x"], batch["label"], None, mixup=0.4)
    again = _Linear(3)
    again.load_state_dict(start)
    out = again(mixed.x)
    probs = teacher(mixed.x)
    assert torch.allclose(probs, torch.stack([torch.softmax(t(mixed.x) / 2.0, 1) for t in teacher.teachers]).mean(0))
    base = MaskedCrossEntropy()
    kl = torch.nn.functional.kl_div(torch.log_softmax(out / 2.0, 1), probs, reduction="batchmean") * 4.0
    want = 0.6 * (mixed.lam * base(out, batch["label"]) + (1 - mixed.lam) * base(out, mixed.y_other)) + 0.4 * kl
    assert torch.allclose(loss, want, atol=1e-6)
    assert teacher.train().training is False and not any(p.requires_grad for p in teacher.parameters())


@pytest.mark.parametrize("mode", ["mixup", "cutmix"])
def test_a_step_blends_given_teacher_probabilities_as_it_blends_the_clips(mode):
    """``distill.targets``: each clip's given probabilities blend under mixup or cutmix by the same draw as the
    clips (cutmix by the share of the picture each clip keeps)."""
    from mmfer.engine.mixing import mix_batch
    from mmfer.engine.steps import optimisation_step

    torch.manual_seed(0)
    given = torch.softmax(torch.randn(6, 7), 1)
    batch = {"x": torch.randn(6, 1, 3, 4), "label": torch.tensor([0, 1, 2, 3, 4, 5]), "mask": None,
             "teacher_probs": given}
    student = _Linear(3)
    loss_fn = DistillationLoss(MaskedCrossEntropy(), weight=0.4, temperature=1.0)
    torch.manual_seed(5)
    _, out, loss = optimisation_step(student, batch, device=torch.device("cpu"), precision="fp32", criterion=loss_fn,
                                     optimizer=torch.optim.SGD(student.parameters(), lr=0.0),
                                     scaler=torch.amp.GradScaler("cuda", enabled=False), grad_clip=None,
                                     **{mode: 0.4})
    torch.manual_seed(5)
    mixed = mix_batch(batch["x"], batch["label"], None, **{mode: 0.4})
    assert 0 < mixed.lam < 1 and not torch.equal(mixed.perm, torch.arange(6))
    blend = mixed.lam * given + (1 - mixed.lam) * given[mixed.perm]
    kl = torch.nn.functional.kl_div(torch.log_softmax(out.detach(), 1), blend, reduction="batchmean")
    base = MaskedCrossEntropy()
    want = 0.6 * (mixed.lam * base(out.detach(), batch["label"]) + (1 - mixed.lam) * base(out.detach(), mixed.y_other))
    assert torch.allclose(loss, want + 0.4 * kl, atol=1e-6)


def test_student_learns_probabilities_given_in_a_file_and_the_file_is_checked(tmp_path, caplog):
    """``distill.targets``: a score CSV that swaps Angry and Happy teaches a student (weight 1) to swap them on
    clips it never trained on; a file that misses training clips, labels them otherwise, or comes with
    teachers too, is refused by name."""
    from mmfer.data.sources import pooled_records
    from mmfer.engine.train import train
    from mmfer.scores import read_scores, write_scores

    true = _speech_list(tmp_path, "true.csv", relabel={})
    records = pooled_records(true, "audio_stats", splits=("Train",))
    swap = {"Angry": "Happy", "Happy": "Angry"}
    probs = np.full((len(records), 7), 0.01)
    for i, r in enumerate(records):
        probs[i, index_of(swap.get(r.label, r.label))] = 0.94
    targets = tmp_path / "targets.csv"
    write_scores(targets, [r.clip_id for r in records], [r.label for r in records], probs)
    cfg = TrainConfig(name="t", model=ModelConfig(name="audio_stats", kwargs={"hidden": 32}),
                      data=DataConfig(batch_size=16, holdout_fraction=0.25), loss=LossConfig(class_balanced=True),
                      optim=OptimConfig(epochs=25, lr=5e-3, select_by="last", warmup_epochs=0.5), device="cpu",
                      distill=DistillConfig(targets=str(targets), weight=1.0, temperature=1.0))
    train(cfg, data=true, out=tmp_path / "student", progress=False)
    val = read_scores(tmp_path / "student" / "scores_Val.csv")
    said = {c: EMOTIONS[i] for c, i in zip(val.clip_ids, val.probs.argmax(1))}
    angry = [c for c, y in zip(val.clip_ids, val.labels) if y == "Angry"]
    assert angry and sum(said[c] == "Happy" for c in angry) >= 0.75 * len(angry), said
    # the file is checked before any epoch
    write_scores(tmp_path / "half.csv", [r.clip_id for r in records[::2]], [r.label for r in records[::2]], probs[::2])
    with pytest.raises(MmferError, match=r"half.csv has no row for \d+ of the \d+ training clips"):
        train(dataclasses.replace(cfg, distill=dataclasses.replace(cfg.distill, targets=str(tmp_path / "half.csv"))),
              data=true, out=tmp_path / "half", progress=False)
    assert not (tmp_path / "half" / "last.pt").exists()
    relabelled = [swap.get(r.label, r.label) for r in records]
    write_scores(tmp_path / "other.csv", [r.clip_id for r in records], relabelled, probs)
    with pytest.raises(MmferError, match=r"other.csv labels \d+ training clip\(s\) otherwise .*: it scores other data"):
        train(dataclasses.replace(cfg, distill=dataclasses.replace(cfg.distill, targets=str(tmp_path / "other.csv"))),
              data=true, out=tmp_path / "other", progress=False)
    with pytest.raises(MmferError, match=r"distill.targets: give teachers .* or targets .*, not both"):
        config_from_dict({"name": "x", "model": {"name": "audio_stats"},
                          "distill": {"teachers": ["a.pt"], "targets": str(targets)}})


def test_given_probabilities_are_found_by_clip_id_tempered_and_checked(tmp_path):
    """Rows are looked up by clip id (a photo tree's class folders may be spelt otherwise), whatever their order
    in the file, and tempered: p ** (1 / T), renormalised. A uniform row, a file without labels, and a file
    changed under a resumed run are refused; ``{fold}`` gives each fold its own file."""
    import cv2

    from mmfer.data.datasets import FaceImageDataset

    from mmfer.data.sources import source_records
    from mmfer.engine.distill import attach_targets
    from mmfer.scores import write_scores

    for e in ("Happy", "Sad"):
        (tmp_path / "crops" / "Train" / e).mkdir(parents=True)
        for i in range(3):
            cv2.imwrite(str(tmp_path / "crops" / "Train" / e / f"f{i}.png"), np.full((48, 48), 40 * i + 60, np.uint8))
    records = source_records(tmp_path / "crops", "Train", "face_image")
    ds = FaceImageDataset(cache=tmp_path / "crops", records=records, train=True, data=DataConfig(image_size=24))
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(7), size=len(records))  # a different row for every clip
    order = rng.permutation(len(records))
    photo_ids = [records[i].clip_id.replace("Happy/", "happy/") for i in order]  # the photo tree's spelling
    write_scores(tmp_path / "t.csv", photo_ids, [records[i].label for i in order], probs[order])
    views = FaceImageDataset(cache=tmp_path / "crops", records=records, train=False,
                             data=DataConfig(image_size=24, eval_views=2))  # two items a clip
    for d in (ds, views):
        attach_targets(d, DistillConfig(targets=str(tmp_path / "t.csv"), temperature=2.0), fold=None)
        for i in range(len(d)):
            want = np.sqrt(probs[d.items[i][0]])
            np.testing.assert_allclose(d[i]["teacher_probs"].numpy(), want / want.sum(), atol=3e-6)
    assert len(views) == 2 * len(ds)
    digest = ds.teacher_digest
    with pytest.raises(MmferError, match=r"t.csv changed since the run started"):
        attach_targets(ds, DistillConfig(targets=str(tmp_path / "t.csv")), fold=None,
                       started={"distill_targets_sha256": "0" * 64})
    attach_targets(ds, DistillConfig(targets=str(tmp_path / "t.csv")), fold=None, started={"distill_targets_sha256": digest})
    twice = [*photo_ids, records[0].clip_id.replace("Happy/", "HAPPY/")]
    write_scores(tmp_path / "twice.csv", twice, [records[i].label for i in order] + [records[0].label],
                 np.concatenate([probs[order], probs[:1]]))
    with pytest.raises(MmferError, match=r"twice.csv has two rows for one clip \(happy/f0 and HAPPY/f0"):
        attach_targets(ds, DistillConfig(targets=str(tmp_path / "twice.csv")), fold=None)
    blank = probs.copy()
    blank[2] = 1 / 7
    write_scores(tmp_path / "u.csv", [r.clip_id for r in records], [r.label for r in records], blank)
    with pytest.raises(MmferError, match=r"u.csv has uniform rows .* for 1 training clip\(s\) \(e.g. " + records[2].clip_id):
        attach_targets(ds, DistillConfig(targets=str(tmp_path / "u.csv")), fold=None)
    write_scores(tmp_path / "n.csv", [r.clip_id for r in records], [None] * len(records), probs)
    with pytest.raises(MmferError, match=r"n.csv gives no label for 6 training clip\(s\)"):
        attach_targets(ds, DistillConfig(targets=str(tmp_path / "n.csv")), fold=None)
    write_scores(tmp_path / "t_2.csv", [r.clip_id for r in records], [r.label for r in records], probs[::-1].copy())
    attach_targets(ds, DistillConfig(targets=str(tmp_path / "t_{fold}.csv"), temperature=1.0), fold=2)
    np.testing.assert_allclose(ds.teacher_probs, probs[::-1], atol=2e-6)
    with pytest.raises(MmferError, match=r"distill.targets: .* names a fold \(\{fold\}\) but this run is not one"):
        attach_targets(ds, DistillConfig(targets=str(tmp_path / "t_{fold}.csv")), fold=None)


def test_given_probabilities_reach_the_gpu_recipe_batches(tmp_path):
    """data.device_images (the GPU recipe, here on the CPU) carries each image's given row with it."""
    import cv2

    from mmfer.data.config import AugmentConfig
    from mmfer.data.datasets import FaceImageDataset
    from mmfer.data.sources import source_records
    from mmfer.engine.device_data import DeviceFaceBatches
    from mmfer.engine.distill import attach_targets
    from mmfer.scores import write_scores

    (tmp_path / "Train" / "Fear").mkdir(parents=True)
    for i in range(10):
        cv2.imwrite(str(tmp_path / "Train" / "Fear" / f"f{i}.png"), np.full((48, 48), 20 * i, np.uint8))
    records = source_records(tmp_path, "Train", "face_image")
    ds = FaceImageDataset(cache=tmp_path, records=records, train=True, data=DataConfig(image_size=24))
    probs = np.random.default_rng(0).dirichlet(np.ones(7), size=len(records))
    write_scores(tmp_path / "t.csv", [r.clip_id for r in records], [r.label for r in records], probs)
    attach_targets(ds, DistillConfig(targets=str(tmp_path / "t.csv"), temperature=1.0), fold=None)
    batches = DeviceFaceBatches(ds, device=torch.device("cpu"), batch_size=4, seed=0, augment=AugmentConfig(),
                                progress=False)
    seen = 0
    for b in batches:
        np.testing.assert_allclose(b["teacher_probs"].numpy(), probs[b["clip"].numpy()], atol=2e-6)
        seen += len(b["clip"])
    assert seen == 8
