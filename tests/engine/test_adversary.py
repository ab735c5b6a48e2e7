"""Domain-adversarial training (mmfer.engine.adversary): the reversed gradient, its ramp, the domains of a speech
list, and a run that trains, logs, resumes and ships with one."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmfer.engine.adversary import DomainAdversary, class_layer, domain_indices, ramp, reverse_gradient
from mmfer.errors import MmferError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from test_speech_list import _corpora, _write_list  # noqa: E402  (tone corpora of the speech-list tests)


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(5, 6)
        self.classifier = nn.Linear(6, 7)

    def forward(self, x: torch.Tensor, mask=None) -> torch.Tensor:
        return self.classifier(torch.tanh(self.body(x)))


def test_the_model_gets_the_heads_gradient_reversed_and_scaled_and_the_head_its_own():
    torch.manual_seed(0)
    net, x, domain = _Net().train(), torch.randn(8, 5), torch.tensor([0, 1] * 4)
    adv = DomainAdversary(net, domains=["a", "b"], scale=0.5, hidden=4, total_steps=10)
    adv.steps_done.fill_(10)  # the end of the ramp
    net(x)
    adv.loss(domain).backward()
    reversed_body = net.body.weight.grad.clone()
    head_grads = [p.grad.clone() for p in adv.head.parameters()]
    assert net.classifier.weight.grad is None  # the classifier is not on the adversary's path
    net.zero_grad()
    adv.head.zero_grad()
    F.cross_entropy(adv.head(torch.tanh(net.body(x))), domain).backward()  # the same loss, not reversed
    scale = 0.5 * ramp(1.0)
    torch.testing.assert_close(reversed_body, -scale * net.body.weight.grad)
    for got, plain in zip(head_grads, adv.head.parameters()):
        torch.testing.assert_close(got, plain.grad)
    assert int(adv.steps_done) == 11 and adv.take_accuracy() >= 0.0 and np.isnan(adv.take_accuracy())


def test_the_ramp_starts_at_zero_and_evaluation_leaves_no_features():
    assert ramp(0.0) == 0.0 and ramp(0.2) == pytest.approx(0.7616, abs=1e-4) and ramp(1.0) > 0.9999
    x = torch.randn(3, 2, requires_grad=True)
    reverse_gradient(x, 0.0).sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))  # at step 0 nothing reaches the model
    net = _Net()
    adv = DomainAdversary(net, domains=["a", "b"], scale=1.0, hidden=4, total_steps=5)
    assert adv.scale() == 0.0
    net.eval()(torch.randn(2, 5))  # scoring: nothing kept
    with pytest.raises(MmferError, match="no training forward"):
        adv.loss(torch.tensor([0, 1]))
    adv.remove()
    net.train()(torch.randn(2, 5))
    with pytest.raises(MmferError, match="no training forward"):  # the hook is gone with the run
        adv.loss(torch.tensor([0, 1]))


def test_the_class_layer_is_found_by_name_or_by_its_outputs_and_its_absence_is_said():
    from mmfer.models.registry import build_model

    stats = build_model("audio_stats", num_classes=7)
    assert class_layer(stats).out_features == 7 and not hasattr(stats, "classifier")
    with pytest.raises(MmferError, match="no linear layer into the 7 classes"):
        DomainAdversary(nn.Sequential(nn.Linear(3, 4)), domains=["a", "b"], scale=1.0, hidden=2, total_steps=1)
    # cnn_lstm averaging per-frame scores: refused when the adversary is built (it failed at the first step)
    frames = build_model("cnn_lstm", aggregate="mean", width=4, in_channels=1)
    with pytest.raises(MmferError, match="scores each frame .* use model.kwargs.aggregate: rnn"):
        DomainAdversary(frames, domains=["a", "b"], scale=1.0, hidden=2, total_steps=1)
    assert class_layer(build_model("cnn_lstm", aggregate="rnn", width=4, in_channels=1, hidden=8)).in_features == 8


def test_domains_come_from_the_list_and_one_domain_or_a_missing_name_is_an_error():
    from mmfer.data.speech_list import SpeechRecord

    records = [SpeechRecord(clip_id=f"c{i}", split="Train", label="Happy", status="ok", path=f"c{i}.wav",
                            speaker=s, corpus=c)
               for i, (c, s) in enumerate([("b", "b_1"), ("a", "a_1"), ("b", "b_2")])]
    idx, names = domain_indices(records, "corpus")
    assert names == ["a", "b"] and idx.tolist() == [1, 0, 1]
    idx, names = domain_indices(records, "speaker")
    assert names == ["a_1", "b_1", "b_2"] and idx.tolist() == [1, 0, 2]
    with pytest.raises(MmferError, match="every training clip has the same corpus"):
        domain_indices(records[::2], "corpus")
    unnamed = [dataclasses.replace(records[0], corpus="")] + records[1:]
    with pytest.raises(MmferError, match=r"1 training clip\(s\) have no corpus \(e.g. c0\)"):
        domain_indices(unnamed, "corpus")


def test_a_run_with_an_adversary_logs_its_accuracy_resumes_exactly_and_ships_a_plain_model(tmp_path):
    from mmfer.engine.checkpoint import load_checkpoint
    from mmfer.engine.config import (
        AdversaryConfig, DataConfig, LossConfig, ModelConfig, OptimConfig, TrainConfig,
    )
    from mmfer.engine.train import train
    from mmfer.labels import EMOTIONS

    rows = _corpora(tmp_path, classes_of={"a": list(EMOTIONS), "b": list(EMOTIONS), "v": list(EMOTIONS)},
                    speakers=2, per=1)
    for r in rows:  # corpus v validates
        r["split"] = "Val" if r["corpus"] == "v" else "Train"
    _write_list(tmp_path / "list.csv", rows, fields=("path", "label", "speaker", "corpus", "split"))
    cfg = TrainConfig(name="t", model=ModelConfig(name="audio_stats", kwargs={"hidden": 16}),
                      data=DataConfig(batch_size=8, balance="corpus_class"), loss=LossConfig(class_balanced=True),
                      optim=OptimConfig(epochs=3, select_by="last"), device="cpu",
                      adversary=AdversaryConfig(scale=0.5, by="corpus", hidden=8))
    straight = train(cfg, data=tmp_path / "list.csv", out=tmp_path / "a", progress=False)
    log_rows = [json.loads(line) for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    assert all(0.0 <= r["adversary_accuracy"] <= 1.0 for r in log_rows)
    assert "adversary_accuracy" in (tmp_path / "a" / "log.csv").read_text().splitlines()[0]
    last, best = load_checkpoint(tmp_path / "a" / "last.pt"), load_checkpoint(tmp_path / "a" / "best.pt")
    assert int(last["adversary"]["steps_done"]) > 0 and "adversary" not in best
    plain = train(dataclasses.replace(cfg, adversary=AdversaryConfig()), data=tmp_path / "list.csv",
                  out=tmp_path / "p", progress=False)
    assert set(best["state_dict"]) == set(load_checkpoint(tmp_path / "p" / "best.pt")["state_dict"])
    assert (tmp_path / "p" / "scores_Val.csv").read_text() != (tmp_path / "a" / "scores_Val.csv").read_text()
    assert plain["best"]["epoch"] == 3
    train(cfg, data=tmp_path / "list.csv", out=tmp_path / "b", progress=False, stop_after=1)
    resumed = train(cfg, data=tmp_path / "list.csv", out=tmp_path / "b", resume=True, progress=False)
    assert resumed["best"] == straight["best"]
    assert (tmp_path / "b" / "scores_Val.csv").read_text() == (tmp_path / "a" / "scores_Val.csv").read_text()
    with pytest.raises(MmferError, match="by: 'room' is not one of corpus, speaker"):
        AdversaryConfig(scale=1.0, by="room")


def test_a_design_the_adversary_cannot_train_is_refused_before_any_work(tmp_path):
    """Leave-one-corpus-out over two corpora leaves one corpus in each fold's training: nothing to tell apart,
    said before fold 1 decodes anything; a list without corpora, and the GPU recipe's batches, likewise."""
    from mmfer.engine.config import AdversaryConfig, DataConfig, ModelConfig, OptimConfig, TrainConfig
    from mmfer.engine.folds import train_folds
    from mmfer.engine.train import train
    from mmfer.labels import EMOTIONS

    rows = _corpora(tmp_path, classes_of={"a": list(EMOTIONS), "b": list(EMOTIONS)}, speakers=2, per=1)
    _write_list(tmp_path / "list.csv", rows)
    cfg = TrainConfig(name="t", model=ModelConfig(name="audio_stats", kwargs={"hidden": 16}),
                      data=DataConfig(batch_size=8), optim=OptimConfig(epochs=1), device="cpu",
                      adversary=AdversaryConfig(scale=0.3, by="corpus"))
    with pytest.raises(MmferError, match=r"fold 1: adversary.by corpus: every training clip has the same corpus "
                                         r"\(b\).*use by: speaker"):
        train_folds(cfg, data=tmp_path / "list.csv", out=tmp_path / "loco", folds="corpus", progress=False)
    assert not (tmp_path / "loco").exists()
    _write_list(tmp_path / "nocorpus.csv", rows, fields=("path", "label", "speaker"))
    with pytest.raises(MmferError, match=r"have no corpus .*`mmfer train --data LIST.csv` with a corpus column"):
        train(cfg, data=tmp_path / "nocorpus.csv", out=tmp_path / "run", progress=False)
    with pytest.raises(MmferError, match="not supported with data.device_images"):
        dataclasses.replace(cfg, data=DataConfig(device_images=True))
