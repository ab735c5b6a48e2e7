"""The training recipe's pieces: mixup/cutmix, CPU bf16, weight averaging, fixed-epoch selection,
non-finite losses, and speaker-disjoint cross-validation."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn

from mmfer.data.cache import ClipRecord
from mmfer.cli import main
from mmfer.engine import device as scoring
from mmfer.engine.checkpoint import load_checkpoint
from mmfer.engine.config import load_train_config
from mmfer.data.splits import fold_records, speaker_folds, speaker_of
from mmfer.engine.mixing import mix_batch
from mmfer.engine.steps import class_weights
from mmfer.engine.train import train
from mmfer.errors import MmferError
from mmfer.labels import EMOTIONS
from mmfer.scores import read_scores

from engine_helpers import CONFIGS, tiny_config


# ---------------------------------------------------------------- mixing
def test_mix_batch_off_mixup_and_cutmix():
    torch.manual_seed(0)
    x, y = torch.randn(6, 1, 8, 8), torch.arange(6)
    assert mix_batch(x, y, None) is None
    assert mix_batch(x[:1], y[:1], None, mixup=1.0) is None
    m = mix_batch(x, y, None, mixup=0.4)
    perm = [int((y == t).nonzero()) for t in m.y_other]  # y is arange: y_other names the partner of each row
    torch.testing.assert_close(m.x, m.lam * x + (1 - m.lam) * x[perm])
    c = mix_batch(x, y, None, cutmix=1.0)
    changed = (c.x != x).any(dim=(0, 1))  # the pasted rectangle
    assert 0 < changed.sum() <= 64
    assert c.lam == pytest.approx(1 - changed.sum().item() / 64, abs=1e-6) or c.lam == 1.0
    # cutmix needs an image-like input; on (B, F) vectors it is left out, and then nothing mixes
    assert mix_batch(torch.randn(6, 5), y, None, cutmix=1.0) is None
    mask = torch.zeros(6, 4, dtype=torch.bool)
    mask[0, :2] = True
    mixed = mix_batch(torch.randn(6, 3, 4), y, mask, mixup=1.0)
    assert mixed.mask.sum() >= mask.sum() and mixed.mask[0, :2].all()  # union: a row keeps its own steps


class _LinearNet(nn.Module):
    """10 features to the seven classes: the smallest network a training step runs."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(10, len(EMOTIONS))

    def forward(self, x, mask=None):
        return self.lin(x)


def test_mixup_over_corpora_keeps_each_clips_classes():
    """A clip of a corpus without Disgust, blended with another, is still never taught that Disgust does not
    occur: each clip's share of the loss runs over its own corpus's classes (was refused, then the blended
    clip's share ran over all seven)."""
    from mmfer.engine.losses import MaskedCrossEntropy
    from mmfer.engine.steps import optimisation_step

    disgust = EMOTIONS.index("Disgust")
    for absent_in in ("all", "some"):
        torch.manual_seed(0)
        net = _LinearNet()
        allowed = torch.ones(8, len(EMOTIONS), dtype=torch.bool)
        allowed[: 8 if absent_in == "all" else 4, disgust] = False
        batch = {"x": torch.randn(8, 10), "label": torch.tensor([0, 2, 3, 4, 5, 6, 0, 2]), "mask": None,
                 "allowed": allowed}
        optimisation_step(net, batch, device=torch.device("cpu"), precision="fp32",
                          criterion=MaskedCrossEntropy(label_smoothing=0.1),
                          optimizer=torch.optim.SGD(net.parameters(), lr=0.0),
                          scaler=torch.amp.GradScaler("cpu", enabled=False), grad_clip=None, mixup=0.4)
        grad = net.lin.bias.grad[disgust]
        assert (grad == 0) if absent_in == "all" else (grad != 0), absent_in


def test_a_step_on_a_loss_that_is_not_finite_leaves_the_weights_as_they_were():
    """It used to be applied first (Adam turned every weight NaN) and said after; now it is said with no step."""
    from mmfer.engine.losses import MaskedCrossEntropy
    from mmfer.engine.steps import optimisation_step

    torch.manual_seed(0)
    net = _LinearNet()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.randn(4, 10)
    x[2, 3] = float("inf")
    optimizer = torch.optim.Adam(net.parameters(), lr=0.1)
    _, _, loss = optimisation_step(net, {"x": x, "label": torch.tensor([0, 1, 2, 3]), "mask": None},
                                   device=torch.device("cpu"), precision="fp32", criterion=MaskedCrossEntropy(),
                                   optimizer=optimizer, scaler=torch.amp.GradScaler("cpu", enabled=False),
                                   grad_clip=1.0)
    assert not torch.isfinite(loss)
    for k, v in net.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
    assert not optimizer.state  # Adam never stepped


def test_class_weights_power():
    labels = [0] * 90 + [1] * 10
    full, sqrt = class_weights(labels), class_weights(labels, power=0.5)
    assert full[1] / full[0] == pytest.approx(9.0)
    assert sqrt[1] / sqrt[0] == pytest.approx(3.0)
    assert full[2] == 0 and sqrt[2] == 0  # absent classes weigh nothing


# ---------------------------------------------------------------- precision
def test_training_precision_follows_the_hardware(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert scoring.training_precision(cuda, True) == "fp16"
    assert scoring.training_precision(cpu, False) == "fp32"
    monkeypatch.setattr(scoring, "cpu_has_native_bf16", lambda: True)
    assert scoring.training_precision(cpu, True) == "bf16"
    with scoring.autocast(cpu, "bf16"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    conv3d, conv2d = torch.nn.Sequential(torch.nn.Conv3d(3, 4, 3)), torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3))
    for amx, want in ((False, "fp32"), (True, "bf16")):  # 3D convolutions in bf16 only with AMX
        monkeypatch.setattr(scoring, "cpu_has_amx", lambda amx=amx: amx)
        assert scoring.training_precision(cpu, True, conv3d) == want
        assert scoring.training_precision(cpu, True, conv2d) == "bf16"
    monkeypatch.setattr(scoring, "cpu_has_native_bf16", lambda: False)
    assert scoring.training_precision(cpu, True) == "fp32"
    with scoring.autocast(cpu, True):  # True keeps its old meaning: fp16 on CUDA, nothing on CPU
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


# ---------------------------------------------------------------- EMA, select_by last, resume
def test_ema_and_last_epoch_selection_resume_exactly(synth_cache, tmp_path, caplog):
    cache = synth_cache("landmarks")
    cfg = tiny_config("landmark_brnn", epochs=4, ema_decay=0.9, select_by="last")
    cfg = dataclasses.replace(cfg, augment=dataclasses.replace(cfg.augment, mixup=0.3))
    with caplog.at_level(logging.INFO, logger="mmfer"):
        straight = train(cfg, data=cache, out=tmp_path / "a", progress=False)
    assert straight["best"]["epoch"] == 4  # the last epoch, whatever its Val figure
    epochs = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch ")]
    assert len(epochs) == 4 and not any("(best)" in m for m in epochs)  # no epoch was chosen by its Val figure
    best, last = load_checkpoint(tmp_path / "a" / "best.pt"), load_checkpoint(tmp_path / "a" / "last.pt")
    # best.pt holds the averaged weights, last.pt the raw ones and the average to resume from
    for k, v in best["state_dict"].items():
        torch.testing.assert_close(v, last["ema"]["state_dict"][k])
    assert any(not torch.equal(v, last["state_dict"][k]) for k, v in best["state_dict"].items() if v.is_floating_point())
    train(cfg, data=cache, out=tmp_path / "b", progress=False, stop_after=2)
    resumed = train(cfg, data=cache, out=tmp_path / "b", resume=True, progress=False)
    assert resumed["best"] == straight["best"]
    assert (tmp_path / "b" / "scores_Val.csv").read_text() == (tmp_path / "a" / "scores_Val.csv").read_text()
    with pytest.raises(MmferError, match="ema_decay"):
        dataclasses.replace(cfg.optim, ema_decay=1.5)


def test_a_stop_between_an_epochs_files_loses_no_epoch(synth_cache, tmp_path, monkeypatch):
    """An epoch's best weights are staged, then the logs and last.pt written, then the staged file renamed to
    best.pt: a stop anywhere leaves one epoch's files. last.pt was written first, so a stop before best.pt left
    an older best.pt and no log row for that epoch, for good."""
    import mmfer.engine.hooks as hooks_module
    import mmfer.engine.train as train_module

    cache = synth_cache("landmarks")
    cfg = tiny_config("landmark_brnn", epochs=2, select_by="last")
    real = hooks_module.save_checkpoint
    for stop_after_last in (False, True):  # on epoch 2's last.pt write, or just after it (before the rename)
        calls = []

        def stopping(path, **kw):
            calls.append(kw["epoch"])
            if calls.count(2) == 2 and not stop_after_last:
                raise KeyboardInterrupt
            written = real(path, **kw)
            if calls.count(2) == 2:
                raise KeyboardInterrupt
            return written

        out = tmp_path / f"r{int(stop_after_last)}"
        monkeypatch.setattr(hooks_module, "save_checkpoint", stopping)
        with pytest.raises(KeyboardInterrupt):
            train(cfg, data=cache, out=out, progress=False)
        monkeypatch.setattr(hooks_module, "save_checkpoint", real)
        result = train(cfg, data=cache, out=out, resume=True, progress=False)
        epochs = [json.loads(line)["epoch"] for line in (out / "log.jsonl").read_text().splitlines()]
        assert epochs == [1, 2], stop_after_last
        assert load_checkpoint(out / "best.pt")["epoch"] == result["best"]["epoch"] == 2, stop_after_last
        assert not (out / train_module.STAGED_BEST).exists()


def test_ema_is_the_normalised_weighted_mean_of_every_step():
    """The average after n steps is sum(decay ** age * w) / sum(decay ** age) over every step's weights and
    buffers, so the untrained first weights weigh as little as any other old step (not decay ** n)."""
    from mmfer.engine.ema import ema_model as _ema_model, ema_step_decay

    decay = 0.9
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    ema = _ema_model(model, decay)
    seen = []
    for step in range(30):
        with torch.no_grad():
            for q in model.parameters():
                q.copy_(torch.randn_like(q))
            model[1].running_mean.copy_(torch.full((2,), float(step)))
        seen.append([q.detach().clone() for q in model.parameters()] + [model[1].running_mean.clone()])
        ema.update_parameters(model)
    w = torch.tensor([decay ** (len(seen) - 1 - i) for i in range(len(seen))])
    w = w / w.sum()
    got = list(ema.module.parameters()) + [ema.module[1].running_mean]
    for j, g in enumerate(got):
        want = sum(wi * s[j] for wi, s in zip(w, seen))
        torch.testing.assert_close(g, want, rtol=1e-5, atol=1e-6)
    assert float(w[0]) < 0.01 and decay ** 29 > 0.04  # the first step's share: 0.005, not the plain recursion's 0.047
    assert ema_step_decay(decay, 1) == pytest.approx(decay / (1 + decay)) and ema_step_decay(decay, 10 ** 6) == pytest.approx(decay)


class _NaNModel(nn.Module):
    input_kind = "landmarks"

    def __init__(self, **_):
        super().__init__()
        self.lin = nn.Linear(272, 7)

    def forward(self, x, mask=None):
        return self.lin(x.mean(1)) * float("nan")


def test_a_non_finite_loss_stops_training_naming_the_clips(synth_cache, tmp_path, monkeypatch):
    from mmfer.models import registry

    monkeypatch.setitem(registry.MODELS, "nan_model", lambda **kw: _NaNModel())
    cfg = tiny_config("landmark_brnn")
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, name="nan_model", kwargs={}))
    with pytest.raises(MmferError, match=r"epoch 1/\d+, step 1: the loss is nan .*clips \w+"):
        train(cfg, data=synth_cache("landmarks"), out=tmp_path / "nan", progress=False)


# ---------------------------------------------------------------- speaker folds
RAVDESS_CODES = {"Neutral": "01", "Happy": "03", "Sad": "04", "Angry": "05", "Fear": "06", "Disgust": "07",
                 "Surprise": "08"}


@pytest.fixture(scope="module")
def ravdess_tree(tmp_path_factory):
    """Four actors, two utterances per class, the class carried by the pitch (RAVDESS file names)."""
    root = tmp_path_factory.mktemp("ravdess")
    rng = np.random.default_rng(0)
    t = np.arange(int(0.8 * 16000)) / 16000
    for actor in (1, 2, 3, 4):
        d = root / "Train" / f"Actor_{actor:02d}"
        d.mkdir(parents=True)
        for c, name in enumerate(EMOTIONS):
            for rep in (1, 2):
                f0 = 110 * 2 ** (c / 3) * (1 + 0.02 * actor)
                wave = 0.3 * np.sin(2 * np.pi * f0 * t) + 0.1 * np.sin(4 * np.pi * f0 * t)
                wave = np.concatenate([np.zeros(3000), wave, np.zeros(3000)]) + 1e-3 * rng.standard_normal(len(t) + 6000)
                stem = f"03-01-{RAVDESS_CODES[name]}-01-01-{rep:02d}-{actor:02d}"
                sf.write(d / f"{stem}.wav", wave.astype(np.float32), 16000)
    return root


def test_speaker_folds_are_disjoint_and_need_speakers():
    recs = [ClipRecord(clip_id=f"03-01-05-01-01-01-{a:02d}", split="Train", label="Angry", path="", status="ok")
            for a in (1, 2, 3, 4, 6)]
    assert speaker_of(recs[0]) == "ravdess:01"
    assert speaker_of(ClipRecord(clip_id="1001_DFA_ANG_XX", split="Train", label="Angry", path="",
                                 status="ok")) == "cremad:1001"
    folds = speaker_folds(recs, 2)
    assert folds == [["ravdess:01", "ravdess:03", "ravdess:06"], ["ravdess:02", "ravdess:04"]]
    tr, va = fold_records(recs, folds, 1)
    assert {speaker_of(r) for r in va} == {"ravdess:02", "ravdess:04"} and not {speaker_of(r) for r in tr} & {
        speaker_of(r) for r in va}
    with pytest.raises(MmferError, match="only 5 speakers"):
        speaker_folds(recs, 6)
    with pytest.raises(MmferError, match=r"only 1 speaker \(ravdess:01\); speaker folds need at least 2"):
        speaker_folds(recs[:1], 5)  # not "use at most that many folds", which would be --folds 1
    with pytest.raises(MmferError, match=r"--folds 5: no clips to deal to folds"):  # not "only 0 speaker (none)"
        speaker_folds([], 5)
    with pytest.raises(MmferError, match="speaker of every clip.*clip_a"):
        speaker_folds(recs + [ClipRecord(clip_id="clip_a", split="Train", label="Angry", path="x.wav", status="ok")], 2)
    # a clip preprocess could not read is in no fold's data: it needs no speaker (it blocked --folds)
    failed = ClipRecord(clip_id="zero_bytes", split="Train", label="Angry", path="", status="failed", reason="empty")
    assert speaker_folds(recs + [failed], 2) == folds
    assert fold_records(recs + [failed], folds, 0) == fold_records(recs, folds, 0)  # in no fold's training either


def test_train_folds_cross_validates_by_speaker(ravdess_tree, tmp_path, capsys):
    cfg_path = tmp_path / "stats.yaml"
    cfg = load_train_config(CONFIGS / "audio_stats_ravdess.yaml")
    text = (CONFIGS / "audio_stats_ravdess.yaml").read_text().replace("epochs: 60", "epochs: 25")
    cfg_path.write_text(text.replace("batch_size: 32", "batch_size: 8"))
    out = tmp_path / "cv"
    assert main(["train", str(cfg_path), "--data", str(ravdess_tree), "--out", str(out), "--folds", "3",
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "fold 3 (ravdess:03)" in printed and "uar" in printed
    summary = json.loads((out / "folds.json").read_text())
    assert [r["speakers"] for r in summary["folds"]] == ["ravdess:01 ravdess:04", "ravdess:02", "ravdess:03"]
    oof = read_scores(out / "scores_oof.csv")
    assert sorted(oof.clip_ids) == sorted(p.relative_to(ravdess_tree / "Train").with_suffix("").as_posix()
                                          for p in ravdess_tree.rglob("*.wav"))  # every clip once
    for i, row in enumerate(summary["folds"], start=1):
        ckpt = load_checkpoint(out / f"fold{i}" / "best.pt")
        assert ckpt["epoch"] == 25 and cfg.optim.select_by == "last"
        val = read_scores(out / f"fold{i}" / "scores_Val.csv")
        assert {c.split("-")[-1] for c in val.clip_ids} == {s.split(":")[1] for s in row["speakers"].split()}
    assert summary["uar_mean"] > 0.5, summary  # pitch carries the class for every speaker
    assert summary["runs"] == ["fold1", "fold2", "fold3"]  # relative: the folder can move
    assert summary["uar_min"] <= summary["uar_mean"] <= summary["uar_max"]
    # a second call finds every fold done and only summarises
    before = (out / "fold1" / "last.pt").stat().st_mtime_ns
    assert main(["train", str(cfg_path), "--data", str(ravdess_tree), "--out", str(out), "--folds", "3",
                 "--no-progress"]) == 0
    assert (out / "fold1" / "last.pt").stat().st_mtime_ns == before


def test_half_written_files_of_a_killed_run_are_cleaned(synth_cache, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / ".last.pt.tmp4242").write_bytes(b"half a checkpoint")
    (out / ".log.jsonl.tmp").write_text("{")
    train(tiny_config("landmark_brnn", epochs=1), data=synth_cache("landmarks"), out=out, progress=False)
    assert not list(out.glob(".*.tmp*")) and (out / "last.pt").is_file()


def test_tensorboard_curves_when_installed(synth_cache, tmp_path):
    pytest.importorskip("tensorboard", reason="the optional extra mmfer[tensorboard] is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    train(tiny_config("landmark_brnn", epochs=2), data=synth_cache("landmarks"), out=out, progress=False)
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/accuracy", "val/accuracy", "val/uar", "val/loss", "lr"} <= tags
    assert [e.step for e in events.Scalars("val/uar")] == [1, 2]
    logged = [json.loads(line)["val_uar"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert [e.value for e in events.Scalars("val/uar")] == pytest.approx(logged)


def test_train_config_init_backbone_from(synth_cache, tmp_path):
    """A config with init.backbone_from starts the CNN-LSTM encoder from a torchvision ResNet-18 state dict
    (an lr of 1e-9 leaves the weights where they started)."""
    import torchvision

    torch.manual_seed(3)
    source = torchvision.models.resnet18(weights=None).state_dict()
    path = tmp_path / "resnet18.pth"
    torch.save(source, path)
    cfg = tiny_config("cnn_lstm", epochs=1, lr=1e-9)
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, kwargs={**cfg.model.kwargs, "encoder": "resnet18",
                                                                                  "width": None, "in_channels": 1}),
                              init=dataclasses.replace(cfg.init, backbone_from=str(path)))
    train(cfg, data=synth_cache("faces"), out=tmp_path / "run", progress=False)
    sd = load_checkpoint(tmp_path / "run" / "last.pt")["state_dict"]
    torch.testing.assert_close(sd["encoder.net.conv1.weight"], source["conv1.weight"].sum(1, keepdim=True),
                               atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(sd["encoder.net.layer3.0.conv2.weight"], source["layer3.0.conv2.weight"],
                               atol=1e-5, rtol=1e-4)


def test_only_folds_trains_some_folds_now_and_the_summary_when_all_are_in(ravdess_tree, tmp_path, capsys,
                                                                          monkeypatch, caplog):
    cfg_path = tmp_path / "stats.yaml"
    text = (CONFIGS / "audio_stats_ravdess.yaml").read_text().replace("epochs: 60", "epochs: 3")
    cfg_path.write_text(text.replace("batch_size: 32", "batch_size: 8"))
    out = tmp_path / "cv"
    args = ["train", str(cfg_path), "--data", str(ravdess_tree), "--out", str(out), "--folds", "3", "--no-progress"]
    assert main(args + ["--only-folds", "2"]) == 0
    printed = capsys.readouterr().out
    assert "fold 2 (ravdess:02)" in printed and "folds 1,3 not in" in printed
    assert (out / "fold2" / "scores_Val.csv").is_file()
    assert not (out / "fold1").exists() and not (out / "fold3").exists() and not (out / "folds.json").exists()
    before = (out / "fold2" / "last.pt").stat().st_mtime_ns
    assert main(args + ["--only-folds", "1,3"]) == 0  # the rest, as another machine or session would
    summary = json.loads((out / "folds.json").read_text())
    assert [r["fold"] for r in summary["folds"]] == [1, 2, 3] and (out / "scores_oof.csv").is_file()
    assert (out / "fold2" / "last.pt").stat().st_mtime_ns == before  # fold 2 was not trained again
    # a fold another process trains now (its lock, a live pid of this host) is left to it; a dead one's is taken over
    import os

    import mmfer.engine.train as engine_train

    other = tmp_path / "other"
    (other / "fold1").mkdir(parents=True)
    (other / "fold1" / ".training").write_text(f"{os.uname().nodename} {os.getpid()}\n")
    two = [a.replace(str(out), str(other)) for a in args]
    two[two.index("3")] = "2"  # --folds 2
    with caplog.at_level(logging.WARNING):
        assert main(two + ["--only-folds", "1"]) == 0
    assert f"trained now by process {os.getpid()}" in caplog.text
    assert not (other / "fold1" / "scores_Val.csv").exists() and (other / "fold1" / ".training").exists()
    (other / "fold1" / ".training").write_text(f"{os.uname().nodename} 999999999\n")  # its process is gone
    real = engine_train.train

    def and_another_machine(config, **kwargs):  # fold 2 finishes elsewhere while this process trains fold 1
        result = real(config, **kwargs)
        if kwargs["fold"] == (0, 2):
            real(config, **dict(kwargs, out=other / "fold2", fold=(1, 2), resume=False))
        return result

    monkeypatch.setattr(engine_train, "train", and_another_machine)
    assert main(two + ["--only-folds", "1"]) == 0
    assert not (other / "fold1" / ".training").exists()  # released when the fold is done
    assert (other / "folds.json").is_file()  # the last to finish summarises, whichever fold it trained
    assert main([a.replace(str(out), str(tmp_path / "cv2")) for a in args] + ["--only-folds", "4"]) != 0
    assert "folds are numbered 1 to 3" in capsys.readouterr().err
    assert main(["train", str(cfg_path), "--data", str(ravdess_tree), "--out", str(tmp_path / "x"), "--only-folds", "1"]) != 0
    assert "--only-folds goes with --folds" in capsys.readouterr().err


def test_run_json_records_each_session(synth_cache, tmp_path):
    """config.yaml says what a run learns from; run.json how and where each start or resume ran."""
    from mmfer import __version__

    out, data = tmp_path / "run", synth_cache("landmarks")
    train(tiny_config("landmark_brnn", epochs=1), data=data, out=out, progress=False)
    train(tiny_config("landmark_brnn", epochs=1), data=data, out=out, epochs=2, resume=True, progress=False)
    sessions = json.loads((out / "run.json").read_text())["sessions"]
    assert [(s["from_epoch"], s["epochs"]) for s in sessions] == [(1, 1), (2, 2)]
    first = sessions[0]
    assert first["device"] == "cpu" and first["precision"] in ("fp32", "bf16") and first["mmfer"] == __version__
    assert first["data"] == str(Path(data).resolve()) and first["torch"] == torch.__version__
