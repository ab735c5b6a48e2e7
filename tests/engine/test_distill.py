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


def test_student_learns_its_teachers_and_teachers_must_hold_out_its_fold(tmp_path):
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

    other_fold = dataclasses.replace(student, distill=dataclasses.replace(
        student.distill, teachers=(str(tmp_path / "teacher" / "fold2" / "last.pt"),)))
    with pytest.raises(MmferError, match=r"fold2/last.pt held out speaker .* but this fold holds out"):
        train(other_fold, data=true, out=tmp_path / "leak", fold=(0, 2), progress=False)
    with pytest.raises(MmferError, match=r"names a fold \(\{fold\}\) but this run is not one of `--folds`"):
        train(student, data=true, out=tmp_path / "nofold", progress=False)
    gone = dataclasses.replace(student, distill=dataclasses.replace(student.distill, teachers=("nowhere/last.pt",)))
    with pytest.raises(MmferError, match=r"nowhere/last.pt: no such checkpoint"):
        train(gone, data=true, out=tmp_path / "gone", fold=(0, 2), progress=False)
