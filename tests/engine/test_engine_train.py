"""Each branch learns its own modality; runs resume exactly; checkpoints and score CSVs keep their contract."""

from __future__ import annotations

import dataclasses
import logging
import shutil
import sys

import numpy as np
import pytest
import torch
import yaml

from mmfer.data.cache import split_records
from mmfer.cli import main
from mmfer.engine.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from mmfer.engine.config import config_to_plain, load_train_config
from mmfer.engine.scoring import score_split
from mmfer.metrics import evaluate
from synthetic import make_synthetic_cache
from mmfer.engine.train import train
from mmfer.errors import MmferError
from mmfer.labels import EMOTIONS
from mmfer.scores import read_scores

from engine_helpers import CONFIGS, TINY, tiny_config


@pytest.fixture(scope="module")
def runs(synth_cache, tmp_path_factory):
    """branch -> (cache, run dir, result), each branch trained once for the module."""
    done = {}

    def get(branch):
        if branch not in done:
            cache = synth_cache(TINY[branch][1])
            out = tmp_path_factory.mktemp(f"run_{branch}")
            done[branch] = (cache, out, train(tiny_config(branch), data=cache, out=out, progress=False))
        return done[branch]

    return get


@pytest.mark.parametrize("branch", ["c3d", "cnn_lstm", "landmark_brnn", "audio_cnn"])
def test_branch_learns_its_modality(runs, branch):
    cache, out, result = runs(branch)
    # 7 classes: chance is 0.14; the class lives only in this branch's modality
    assert result["best"]["val_accuracy"] > 0.6, result["best"]
    assert (out / "best.pt").is_file() and (out / "last.pt").is_file() and (out / "config.yaml").is_file()
    rows = [yaml.safe_load(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, tiny_config(branch).optim.epochs + 1))
    assert (out / "log.csv").read_text().splitlines()[0].startswith("epoch,lr,train_loss")
    val = read_scores(out / "scores_Val.csv")
    assert set(result["scores"]) == {"Val", "Test"}
    # scores come from best.pt; the clips the branch cannot see (failed, empty) are scored uniform, no
    # prediction, and count as wrong in the epoch figures too, as mmfer evaluate counts them
    acc = evaluate(val.labels, val.probs)["accuracy"]
    assert acc == pytest.approx(result["best"]["val_accuracy"], abs=1e-9)
    ok = [i for i, c in enumerate(val.clip_ids) if c not in ("val_failed", "val_empty")]
    assert acc < np.mean([val.predictions[i] == val.labels[i] for i in ok])


def test_score_csvs_cover_every_clip(runs, caplog):
    cache, out, _ = runs("landmark_brnn")
    val, test = read_scores(out / "scores_Val.csv"), read_scores(out / "scores_Test.csv")
    assert val.clip_ids == [r.clip_id for r in split_records(cache, "Val")]
    assert test.clip_ids == [r.clip_id for r in split_records(cache, "Test")]
    for table in (val, test):
        assert np.allclose(table.probs.sum(axis=1), 1.0, atol=1e-5)
    uniform = np.full(len(EMOTIONS), 1 / len(EMOTIONS))
    for cid in ("val_failed", "val_empty"):  # failed preprocessing / no face: uniform, still listed
        assert np.allclose(val.probs[val.clip_ids.index(cid)], uniform, atol=1e-5)
    assert all(label is None for label in test.labels)
    assert "label" in (out / "scores_Test.csv").read_text().splitlines()[0]
    assert (out / "scores_Test.csv").read_text().splitlines()[1].split(",")[1] == ""
    assert not np.allclose(val.probs[val.clip_ids.index("val_angry_00")], uniform, atol=1e-3)
    # the same scores again through the library entry point
    again = read_scores(score_split(out, data=cache, split="Val", out=out / "again.csv", progress=False))
    assert np.allclose(again.probs, val.probs, atol=2e-6)
    with caplog.at_level(logging.WARNING):  # --views is for face images: said for this branch, never silently taken
        score_split(out, data=cache, split="Val", out=out / "views.csv", progress=False, views=10)
    assert "test-time views are for face-image models" in caplog.text


def test_a_gpu_run_scores_on_a_cpu_machine(runs, tmp_path, monkeypatch, caplog):
    """A run of the GPU recipe (config device cuda) loads and scores where there is no GPU, as the docs say."""
    cache, out, _ = runs("landmark_brnn")
    ckpt = torch.load(out / "best.pt", weights_only=True)
    ckpt["config"]["device"] = "cuda"
    torch.save(ckpt, tmp_path / "gpu.pt")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    scored = read_scores(score_split(tmp_path / "gpu.pt", data=cache, split="Val", out=tmp_path / "s.csv",
                                     progress=False))
    assert np.allclose(scored.probs, read_scores(out / "scores_Val.csv").probs, atol=2e-6)
    assert "CUDA is not available here, so it is scored on the CPU" in caplog.text
    with pytest.raises(MmferError, match="CUDA is not available"):  # asked for by name: an error a user can fix
        score_split(tmp_path / "gpu.pt", data=cache, split="Val", out=tmp_path / "t.csv", device="cuda")


def test_a_run_lists_its_clips_and_scoring_clips_it_learnt_from_is_warned_about(runs, tmp_path, caplog):
    """A Test split made of training clips read as held-out figures, silently (found noted, stop 36)."""
    import csv

    cache, out, _ = runs("landmark_brnn")
    rows = list(csv.DictReader((out / "clips.csv").open()))
    train_ids = [r.clip_id for r in split_records(cache, "Train") if r.status == "ok"]
    assert [r["clip_id"] for r in rows if r["role"] == "train"] == train_ids
    assert {r["split"] for r in rows if r["role"] == "val"} == {"Val"}
    with caplog.at_level(logging.WARNING):
        score_split(out, data=cache, split="Val", out=tmp_path / "v.csv", progress=False)
    assert "learnt from" not in caplog.text  # held-out clips: nothing to say
    with caplog.at_level(logging.WARNING):
        score_split(out, data=cache, split="Train", out=tmp_path / "t.csv", progress=False)
    assert f"learnt from {len(train_ids)} of the " in caplog.text and "not held-out figures" in caplog.text


def test_checkpoint_is_plain_and_self_describing(runs):
    _, out, _ = runs("landmark_brnn")
    raw = torch.load(out / "last.pt", weights_only=True)  # no pickled code
    assert raw["labels"] == list(EMOTIONS)
    assert raw["model_name"] == "landmark_brnn" and raw["model_kwargs"]["hidden"] == 32
    assert raw["preprocess"]["crop_size"] == 32 and "cache_version" in raw["preprocess"]
    assert raw["config"]["optim"]["epochs"] == tiny_config("landmark_brnn").optim.epochs
    assert {"optimizer", "scheduler", "rng", "metrics", "best"} <= set(raw)
    model = model_from_checkpoint(load_checkpoint(out))
    assert not model.training and model.input_kind == "landmarks"


def test_a_run_of_an_older_cache_version_is_told_what_can_be_done(runs, tmp_path, caplog):
    """A run trained on a cache of an older mmfer: scores said to re-run preprocess "with the run's settings",
    which no preprocess of this mmfer can write, and predict used it without a word."""
    from mmfer.inference.bundle import load_bundle

    cache, out, _ = runs("landmark_brnn")
    ckpt = torch.load(out / "best.pt", weights_only=True)
    ckpt["preprocess"]["cache_version"] = 0
    (tmp_path / "old").mkdir()
    torch.save(ckpt, tmp_path / "old" / "best.pt")
    with pytest.raises(MmferError, match=r"trained on a cache of an older mmfer \(cache_version: 0 != 1\): .*train "
                                         "the run again on this cache"):
        score_split(tmp_path / "old", data=cache, split="Val", out=tmp_path / "o.csv")
    ckpt["preprocess"]["crop_size"] = 48  # another setting too: still no preprocess of this mmfer could match it
    torch.save(ckpt, tmp_path / "old" / "best.pt")
    with pytest.raises(MmferError, match=r"older mmfer \(cache_version: 0 != 1; crop_size: 48 != 32\)"):
        score_split(tmp_path / "old", data=cache, split="Val", out=tmp_path / "o.csv")
    with caplog.at_level(logging.WARNING):
        load_bundle(tmp_path / "old")
    assert "trained on a cache of an older mmfer (cache_version 0; this one writes 1)" in caplog.text


def test_scores_refuse_cache_with_other_settings(runs, tmp_path):
    _, out, _ = runs("landmark_brnn")
    other = make_synthetic_cache(tmp_path / "c24", modality="landmarks", crop_size=24,
                                 per_class={"Val": 1}, extras=False)
    with pytest.raises(MmferError, match=r"crop_size: 32 != 24"):
        score_split(out, data=other, split="Val", out=tmp_path / "o.csv")
    sound = make_synthetic_cache(tmp_path / "s8", modality="landmarks", sample_rate=8000, per_class={"Val": 1},
                                 extras=False)  # the sound's rate changes no landmark: scored
    assert len(read_scores(score_split(out, data=sound, split="Val", out=tmp_path / "s.csv")).clip_ids) == 7
    # without --out, other clips' scores do not replace the run's own, which fuse reads (a helper's were replaced)
    own = (out / "scores_Val.csv").read_bytes()
    with pytest.raises(MmferError, match=r"scores_Val.csv holds the run's scores of \d+ clips, \d+ of them not "
                                         r"among.*give --out"):
        score_split(out, data=sound, split="Val")
    assert (out / "scores_Val.csv").read_bytes() == own


def test_an_audio_run_scores_a_cache_whose_face_settings_differ_but_not_one_of_another_sample_rate(runs, tmp_path):
    """The face settings (crop size, fit_every, ...) do not change the sound: an audio run was refused over them."""
    _, out, _ = runs("audio_cnn")
    faces = make_synthetic_cache(tmp_path / "c24", modality="audio", crop_size=24, per_class={"Val": 1}, extras=False)
    assert len(read_scores(score_split(out, data=faces, split="Val", out=tmp_path / "f.csv")).clip_ids) == 7
    sound = make_synthetic_cache(tmp_path / "s8", modality="audio", sample_rate=8000, per_class={"Val": 1},
                                 extras=False)
    with pytest.raises(MmferError, match=r"sample_rate: 16000 != 8000"):
        score_split(out, data=sound, split="Val", out=tmp_path / "s.csv")


def test_a_cache_whose_val_was_preprocessed_otherwise_is_refused_naming_both_splits(tmp_path):
    import json

    from mmfer.data.cache import PreprocessSettings

    cache = make_synthetic_cache(tmp_path / "c", modality="landmarks", per_class={"Train": 2, "Val": 1}, extras=False)
    lines = []
    for line in (cache / "manifest.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec["split"] == "Val":  # as if `mmfer preprocess --splits Val --crop-size 24` had redone Val
            other = PreprocessSettings.from_dict({**rec["settings"], "crop_size": 24})
            rec["settings"], rec["settings_hash"] = other.to_dict(), other.hash
        lines.append(json.dumps(rec))
    (cache / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(MmferError, match=r"split 'Val' was preprocessed with other settings than split 'Train' "
                                         r"\(Train != Val\): crop_size: 32 != 24"):
        train(tiny_config("landmark_brnn", epochs=1), data=cache, out=tmp_path / "run", progress=False)


def test_label_order_is_remapped_by_name_or_refused(runs, tmp_path):
    cache, out, _ = runs("landmark_brnn")
    ckpt = load_checkpoint(out / "best.pt")
    perm = [6, 5, 4, 3, 2, 1, 0]
    labels = [EMOTIONS[i] for i in perm]
    state = dict(ckpt["state_dict"])
    head = [k for k, v in state.items() if v.shape[:1] == (len(EMOTIONS),)]  # classifier weight and bias
    assert head
    for k in head:
        state[k] = state[k][perm]
    model = model_from_checkpoint(ckpt)
    ckpt2 = {**ckpt, "state_dict": state, "labels": labels, "path": "permuted.pt"}
    x, mask = torch.randn(2, 10, 272), torch.ones(2, 10, dtype=torch.bool)
    with torch.no_grad():
        assert torch.allclose(model_from_checkpoint(ckpt2)(x, mask=mask), model(x, mask=mask), atol=1e-5)
    with pytest.raises(MmferError, match="Contempt"):
        model_from_checkpoint({**ckpt, "labels": [*EMOTIONS[:6], "Contempt"]})


def test_resume_continues_exactly(synth_cache, tmp_path):
    cache = synth_cache("landmarks")
    cfg = tiny_config("landmark_brnn", epochs=4)
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, kwargs={**cfg.model.kwargs, "dropout": 0.3}))
    straight = train(cfg, data=cache, out=tmp_path / "a", progress=False)
    part = train(cfg, data=cache, out=tmp_path / "b", progress=False, stop_after=2)
    assert part["epochs_done"] == 2 and not part["scores"]
    with pytest.raises(MmferError, match="--resume"):
        train(cfg, data=cache, out=tmp_path / "b", progress=False)
    changed = dataclasses.replace(cfg, seed=1)
    with pytest.raises(MmferError, match="seed: 0 .run. != 1"):
        train(changed, data=cache, out=tmp_path / "b", resume=True, progress=False)
    with pytest.raises(MmferError, match="seed: 0 .run. != 1"):  # seed=: --seed from Python, the same override
        train(cfg, data=cache, out=tmp_path / "b", resume=True, progress=False, seed=1)
    # another cache of the same settings but other clips: "best" would compare epochs measured on two Val sets
    other = make_synthetic_cache(tmp_path / "other", modality="landmarks", per_class={"Train": 3, "Val": 1})
    with pytest.raises(MmferError, match="cannot resume on other clips"):
        train(cfg, data=other, out=tmp_path / "b", resume=True, progress=False)
    resumed = train(cfg, data=cache, out=tmp_path / "b", resume=True, progress=False)
    assert resumed["best"] == straight["best"]
    a, b = torch.load(tmp_path / "a" / "last.pt", weights_only=True), torch.load(tmp_path / "b" / "last.pt",
                                                                             weights_only=True)
    for k in a["state_dict"]:
        assert torch.allclose(a["state_dict"][k].float(), b["state_dict"][k].float(), atol=1e-6), k
    log_a = (tmp_path / "a" / "log.jsonl").read_text().splitlines()
    log_b = (tmp_path / "b" / "log.jsonl").read_text().splitlines()
    strip = lambda rows: [{k: v for k, v in yaml.safe_load(r).items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(log_a) == strip(log_b)
    assert (tmp_path / "b" / "scores_Val.csv").read_text() == (tmp_path / "a" / "scores_Val.csv").read_text()
    # a run stopped before its Val figures counted the clips it cannot see (val_failed, val_empty) kept a best
    # over the others only, which no later epoch could beat: resumed, it is put on today's footing
    train(cfg, data=cache, out=tmp_path / "c", progress=False, stop_after=2)
    ckpt = torch.load(tmp_path / "c" / "last.pt", weights_only=True)
    old = {k: v for k, v in ckpt["best"].items() if k != "counts_unscored"}
    assert old["metric"] == "uar" and straight["best"]["epoch"] > 2
    old["value"] = 0.95  # its uar over fewer clips, above what any later epoch reads on all of them
    torch.save({**ckpt, "best": old}, tmp_path / "c" / "last.pt")
    assert train(cfg, data=cache, out=tmp_path / "c", resume=True, progress=False)["best"] == straight["best"]


def test_an_epoch_under_a_log_says_where_it_is(synth_cache, tmp_path, monkeypatch, caplog):
    """A log file or CI draws no bar: a long epoch still says, about once a minute, how far it is."""
    import mmfer.progress as progress

    monkeypatch.setattr(progress, "EVERY_S", 0.0)  # a line at every step, as a long epoch gives one a minute
    monkeypatch.setenv("MMFER_PROGRESS", "0")
    with caplog.at_level(logging.INFO, logger="mmfer.progress"):
        train(tiny_config("landmark_brnn", epochs=1), data=synth_cache("landmarks"), out=tmp_path / "run",
              progress=True)
    lines = [r.getMessage() for r in caplog.records if r.name == "mmfer.progress"]
    assert any(line.startswith("epoch 1/1: 1/") and "batches" in line and "(loss " in line for line in lines), lines


def test_holdout_when_cache_has_no_val(tmp_path):
    cache = make_synthetic_cache(tmp_path / "c", modality="audio", per_class={"Train": 5}, extras=False)
    result = train(tiny_config("audio_cnn", epochs=1), data=cache, out=tmp_path / "run", progress=False)
    assert result["holdout_val"] is True
    val = read_scores(tmp_path / "run" / "scores_Val.csv")
    assert len(val) == 7  # a stratified 10% of 35: one clip per class
    assert sorted(val.labels) == sorted(EMOTIONS)
    assert not (tmp_path / "run" / "scores_Test.csv").exists()


def test_cli_train_and_scores(synth_cache, tmp_path, capsys):
    cache = synth_cache("landmarks")
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump(config_to_plain(tiny_config("landmark_brnn"))))
    run = tmp_path / "run"
    assert main(["train", str(cfg_path), "--data", str(cache), "--out", str(run), "--epochs", "2",
                 "--no-progress"]) == 0
    assert "best epoch" in capsys.readouterr().out
    assert load_checkpoint(run)["config"]["optim"]["epochs"] == 2
    assert main(["scores", str(run), "--data", str(cache), "--split", "Test", "--out", str(tmp_path / "t.csv")]) == 0
    assert len(read_scores(tmp_path / "t.csv")) == len(split_records(cache, "Test"))
    bad = tmp_path / "bad.yaml"
    bad.write_text(cfg_path.read_text().replace("max_len:", "maxlen:"))
    assert main(["train", str(bad), "--data", str(cache), "--out", str(tmp_path / "r2")]) == 2
    err = capsys.readouterr().err
    assert "maxlen" in err and "max_len" in err
    assert main(["scores", str(tmp_path / "nope"), "--data", str(cache)]) == 2
    assert "not found" in capsys.readouterr().err


def test_checkpoint_save_is_atomic_and_loads_weights_only(tmp_path):
    from mmfer.models.registry import build_model

    model = build_model("landmark_brnn", hidden=8, layers=1)
    path = save_checkpoint(tmp_path / "x.pt", model=model, model_name="landmark_brnn",
                           model_kwargs={"hidden": 8, "layers": 1}, preprocess={"crop_size": 32}, config={}, epoch=0)
    assert [p.name for p in tmp_path.iterdir()] == ["x.pt"]
    assert load_checkpoint(path)["labels"] == list(EMOTIONS)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(MmferError, match="junk.pt"):
        load_checkpoint(tmp_path / "junk.pt")


def test_encoder_from_face_model_and_freeze(synth_cache, tmp_path, caplog):
    """Two-stage fine-tuning: the CNN-LSTM encoder starts from a face_frame (FER2013-style) checkpoint."""
    from mmfer.models.registry import build_model

    cfg = tiny_config("cnn_lstm", epochs=2)
    kw = cfg.model.kwargs
    face = build_model("face_frame", encoder=kw["encoder"], in_channels=kw["in_channels"], width=kw["width"])
    torch.nn.init.normal_(next(face.encoder.parameters()), std=0.5)  # recognisable weights
    stage1 = save_checkpoint(tmp_path / "fer.pt", model=face, model_name="face_frame",
                             model_kwargs={"encoder": kw["encoder"], "in_channels": kw["in_channels"],
                                           "width": kw["width"]}, preprocess={}, config={}, epoch=1)
    cfg = dataclasses.replace(cfg, init=dataclasses.replace(cfg.init, encoder_from=str(stage1),
                                                            freeze_encoder_epochs=1))
    train(cfg, data=synth_cache("faces"), out=tmp_path / "run", progress=False, stop_after=1)
    state = load_checkpoint(tmp_path / "run" / "last.pt")["state_dict"]
    enc = dict(face.encoder.named_parameters())
    assert all(torch.equal(state[f"encoder.{k}"], v.detach()) for k, v in enc.items())  # frozen in epoch 1
    train(cfg, data=synth_cache("faces"), out=tmp_path / "run", progress=False, resume=True)
    state = load_checkpoint(tmp_path / "run" / "last.pt")["state_dict"]
    assert not all(torch.equal(state[f"encoder.{k}"], v.detach()) for k, v in enc.items())  # then fine-tuned
    # a path that is not there names the key and the folder a relative path was read from
    gone = dataclasses.replace(cfg, init=dataclasses.replace(cfg.init, encoder_from="runs/nowhere/best.pt"))
    with pytest.raises(MmferError, match=r"init.encoder_from: runs/nowhere/best.pt: .*not found \(read from "):
        train(gone, data=synth_cache("faces"), out=tmp_path / "run2", progress=False)
    other = "vgg" if kw["encoder"] != "vgg" else "kuo"
    stranger = save_checkpoint(tmp_path / "other.pt", model=build_model("face_frame", encoder=other, in_channels=1),
                               model_name="face_frame", model_kwargs={"encoder": other}, preprocess={}, config={}, epoch=1)
    wrong = dataclasses.replace(cfg, init=dataclasses.replace(cfg.init, encoder_from=str(stranger)))
    with pytest.raises(MmferError, match=rf"init.encoder_from='.*other.pt': .*checkpoint's encoder is '{other}'"):
        train(wrong, data=synth_cache("faces"), out=tmp_path / "run3", progress=False)
    # faces of another size than the encoder learnt from: trained all the same, and said (a helper's were not)
    at99 = save_checkpoint(tmp_path / "fer99.pt", model=face, model_name="face_frame",
                           model_kwargs={"encoder": kw["encoder"], "in_channels": kw["in_channels"], "width": kw["width"]},
                           preprocess={}, config={"data": {"image_size": 99, "grayscale": cfg.data.grayscale}}, epoch=1)
    with caplog.at_level(logging.WARNING):
        train(dataclasses.replace(cfg, init=dataclasses.replace(cfg.init, encoder_from=str(at99))),
              data=synth_cache("faces"), out=tmp_path / "run5", progress=False)
    assert f"learnt from other faces than this run gives it (image_size: 99 there, {cfg.data.image_size} here)" \
        in caplog.text and "grayscale" not in caplog.text
    # the default model's folder (or its bundle.json) as the start: told to name one of its checkpoints (was
    # "no best.pt or last.pt in this run directory", and torch's unpickling text for the json)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "bundle.json").write_text('{"branches": {"face": {"checkpoint": "face_video.pt"}}}')
    for start in (bundle, bundle / "bundle.json"):
        given = dataclasses.replace(cfg, init=dataclasses.replace(cfg.init, encoder_from=str(start)))
        with pytest.raises(MmferError, match=r"a bundle.*give one of its .*face_video\.pt"):
            train(given, data=synth_cache("faces"), out=tmp_path / "run4", progress=False)


def test_face_frame_trains_on_an_image_folder(tmp_path, capsys, monkeypatch):
    """Stage one of two-stage fine-tuning: a face_frame model on a FER2013-style folder tree."""
    import cv2

    from mmfer.engine.config import DataConfig, ModelConfig, OptimConfig, TrainConfig

    rng = np.random.default_rng(0)
    for split, n in (("Train", 10), ("Test", 1)):
        for c, emotion in enumerate(EMOTIONS):
            (tmp_path / "fer" / split / emotion).mkdir(parents=True)
            for k in range(n):
                img = rng.integers(0, 40, size=(24, 24)).astype(np.uint8) + np.uint8(30 * c)
                cv2.imwrite(str(tmp_path / "fer" / split / emotion / f"{k}.png"), img)
    cfg = TrainConfig(name="fer", model=ModelConfig(name="face_frame", kwargs={"in_channels": 1, "width": 8}),
                      data=DataConfig(grayscale=True, batch_size=8, holdout_fraction=0.2),
                      optim=OptimConfig(epochs=6, lr=3e-3, warmup_epochs=0.5), device="cpu")
    cfg = dataclasses.replace(cfg, augment=dataclasses.replace(cfg.augment, brightness=0.0, contrast=0.0))
    result = train(cfg, data=tmp_path / "fer", out=tmp_path / "run", progress=False)
    assert result["holdout_val"] and result["best"]["val_accuracy"] > 0.6, result["best"]
    test = read_scores(result["scores"]["Test"])
    assert len(test) == 7 and test.clip_ids[0] == "Angry/0"
    assert load_checkpoint(tmp_path / "run")["preprocess"] == {"source": "image_folder", "sample_rate": 16000}

    # the held-out images re-scored later (no Val folder): the same images, here with ten-crop views
    from mmfer.engine.scoring import score_split

    held = read_scores(result["scores"]["Val"])
    tencrop = read_scores(score_split(tmp_path / "run", data=tmp_path / "fer", split="Val", views=10,
                                      out=tmp_path / "tencrop.csv", progress=False))
    assert tencrop.clip_ids == held.clip_ids and tencrop.labels == held.labels
    np.testing.assert_allclose(tencrop.probs.sum(1), 1.0, atol=1e-5)
    assert not np.allclose(tencrop.probs, held.probs)  # the views changed the scores
    # the same from the command line, quietly with --no-progress, as train and predict take it
    import mmfer.cli

    monkeypatch.setenv("MMFER_PROGRESS", "1")  # bars though stderr is captured (no terminal), unless --no-progress
    for quiet in (False, True):
        out = tmp_path / f"cli_{quiet}.csv"
        assert mmfer.cli.main(["scores", str(tmp_path / "run"), "--data", str(tmp_path / "fer"), "--views", "10",
                               "--out", str(out)] + ["--no-progress"] * quiet) == 0
        np.testing.assert_allclose(read_scores(out).probs, tencrop.probs, atol=1e-6)
        assert ("score Val (run)" in capsys.readouterr().err) != quiet  # the bar names the run it scores


def _tone_folder(root, rng, *, per_class: int, split: str, ravdess_names: bool = False):
    """Class c is a tone at 300 * (c + 1) Hz in noise: learnable from a log-mel in a few epochs."""
    import soundfile as sf

    codes = {"Neutral": "01", "Happy": "03", "Sad": "04", "Angry": "05", "Fear": "06", "Disgust": "07", "Surprise": "08"}
    t = np.arange(int(1.2 * 16000)) / 16000
    for c, emotion in enumerate(EMOTIONS):
        for k in range(per_class):
            wave = 0.3 * np.sin(2 * np.pi * 300 * (c + 1) * t) + 0.05 * rng.standard_normal(t.size)
            if ravdess_names:  # corpus-named files straight in the split folder, labels from the names
                path = root / split / f"03-01-{codes[emotion]}-01-01-{k + 1:02d}-{k + 1:02d}.wav"
            else:
                path = root / split / emotion / f"{k}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, wave.astype(np.float32), 16000)


def test_a_photo_model_on_a_preprocess_cache_says_what_it_reads(synth_cache, tmp_path):
    """face_frame reads face photos; given a cache of `mmfer preprocess`, the error says so, not only "no images"."""
    with pytest.raises(MmferError, match="is a preprocess cache: a face_image model reads image files"):
        train(load_train_config(CONFIGS / "face_frame_fer2013.yaml"), data=synth_cache("faces"), out=tmp_path / "run",
              progress=False)


def test_audio_cnn_trains_on_an_audio_folder(tmp_path):
    """`mmfer train --data` an audio folder tree: labels from emotion folders (Train) or RAVDESS names (Val);
    RAVDESS calm is left out and a file that does not decode is skipped, not fatal."""
    from mmfer.engine.config import DataConfig, ModelConfig, OptimConfig, TrainConfig

    rng = np.random.default_rng(0)
    root = tmp_path / "speech"
    _tone_folder(root, rng, per_class=6, split="Train")
    _tone_folder(root, rng, per_class=2, split="Val", ravdess_names=True)
    (root / "Val" / "03-01-02-01-01-01-01.wav").write_bytes((root / "Val" / "03-01-01-01-01-01-01.wav").read_bytes())
    (root / "Train" / "Happy" / "broken.wav").write_bytes(b"RIFF not really a wave file")
    cfg = TrainConfig(name="speech", model=ModelConfig(name="audio_cnn", kwargs={"n_mels": 32, "width": 4}),
                      data=DataConfig(n_mels=32, audio_seconds=1.0, batch_size=8),
                      optim=OptimConfig(epochs=8, lr=5e-3, warmup_epochs=0.5), device="cpu")
    result = train(cfg, data=root, out=tmp_path / "run", progress=False)
    assert not result["holdout_val"]
    assert result["best"]["val_accuracy"] >= 0.7, result["best"]
    val = read_scores(result["scores"]["Val"])
    assert len(val) == 14 and "03-01-02-01-01-01-01" not in val.clip_ids  # calm left out
    assert dict(zip(val.clip_ids, val.labels))["03-01-05-01-01-01-01"] == "Angry"
    ckpt = load_checkpoint(tmp_path / "run")
    assert ckpt["preprocess"] == {"source": "audio_folder", "sample_rate": 16000}


def test_a_run_inside_its_own_data_folders_is_refused_before_any_work(tmp_path):
    """--out inside the data's split or emotion folders put the run's files where the next run reads data."""
    root = tmp_path / "faces"
    (root / "Train" / "Angry").mkdir(parents=True)
    cfg = tiny_config("audio_cnn")
    for out in (root, root / "Train" / "run", root / "angry" / "run"):
        with pytest.raises(MmferError, match=r"(data folder itself|split or emotion folders).*run's files"):
            train(cfg, data=root, out=out, progress=False)
    assert sorted(p.name for p in root.rglob("*")) == ["Angry", "Train"]


def test_audio_folder_without_labels_in_train_is_an_error(tmp_path):
    import soundfile as sf

    (tmp_path / "Train").mkdir()
    sf.write(tmp_path / "Train" / "speech.wav", np.zeros(1600, dtype=np.float32), 16000)
    from mmfer.data.sources import media_folder_records

    with pytest.raises(MmferError, match="speech.wav: no emotion"):
        media_folder_records(tmp_path, "Train", "logmel")


def _rewrite_manifest(cache, change):
    import json

    from mmfer.data.cache import MANIFEST

    lines = [json.loads(x) for x in (cache / MANIFEST).read_text().splitlines() if x.strip()]
    for d in lines:
        change(d)
    (cache / MANIFEST).write_text("".join(json.dumps(d) + "\n" for d in lines))


@pytest.mark.parametrize("what", ["version", "settings"])
def test_cache_of_another_version_or_edited_settings_is_refused(runs, tmp_path, what):
    """Issue 20, class 4: a manifest that says another cache_version, or settings that are not the ones hashed,
    is refused by train and by scores, naming both versions (or the hash) and the fix."""
    import shutil

    cache, out, _ = runs("landmark_brnn")
    other = tmp_path / "cache"
    shutil.copytree(cache, other)

    def change(d):
        if what == "version":
            d["settings"]["cache_version"] = 99
        else:
            d["settings"]["crop_size"] = 64  # the hash still says the old settings
    _rewrite_manifest(other, change)
    match = "cache_version 99.*cache_version 1.*mmfer preprocess" if what == "version" else \
        "do not match their hash.*mmfer preprocess"
    with pytest.raises(MmferError, match=match):
        score_split(out, data=other, split="Val", out=tmp_path / "s.csv", progress=False)
    with pytest.raises(MmferError, match=match):
        train(tiny_config("landmark_brnn"), data=other, out=tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "last.pt").exists()


def test_no_usable_val_clip_is_an_error_and_one_class_warns(synth_cache, tmp_path, caplog):
    """Issue 20, class 5: when every Val clip failed, training used to go on with 'Val accuracy nan' and keep
    epoch 1 as best; it is now an error saying what to do. A Val (or Train) of a single class warns."""
    import shutil

    other = tmp_path / "cache"
    shutil.copytree(synth_cache(TINY["landmark_brnn"][1]), other)

    def all_val_failed(d):
        if d["split"] == "Val":
            d["was"] = [d["status"], d["reason"]]
            d["status"], d["reason"] = "failed", "decoding failed"
    _rewrite_manifest(other, all_val_failed)
    with pytest.raises(MmferError, match="no usable labelled clip in split 'Val'.*remove the Val split"):
        train(tiny_config("landmark_brnn"), data=other, out=tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "last.pt").exists()

    def one_class(d):
        if d["split"] == "Val":
            d["status"], d["reason"] = d.pop("was")
            if d["label"]:
                d["label"] = "Angry"
    _rewrite_manifest(other, one_class)
    with caplog.at_level("WARNING"):
        train(tiny_config("landmark_brnn"), data=other, out=tmp_path / "run2", epochs=1, progress=False)
    assert "every usable labelled Val clip is Angry" in caplog.text


def test_scores_of_an_unfinished_run_say_so_and_split_names_are_read_like_preprocess(runs, tmp_path, caplog):
    """`mmfer scores` on a run still training (or stopped) warns that its scores are not final; --split val is Val
    (preprocess --splits reads it so), and a misspelt split names the choices instead of blaming the manifest."""
    cache, out, _ = runs("landmark_brnn")
    stopped = tmp_path / "stopped"
    shutil.copytree(out, stopped)
    lines = (stopped / "log.jsonl").read_text().splitlines()
    epochs = tiny_config("landmark_brnn").optim.epochs
    assert len(lines) == epochs
    (stopped / "log.jsonl").write_text("\n".join(lines[:-1]) + "\n")
    caplog.clear()
    score_split(stopped, data=cache, split="val", out=tmp_path / "s.csv", progress=False)
    assert f"trained {epochs - 1} of its {epochs} epochs" in caplog.text
    assert read_scores(tmp_path / "s.csv").clip_ids == [r.clip_id for r in split_records(cache, "Val")]
    caplog.clear()
    score_split(out, data=cache, split="Val", out=tmp_path / "t.csv", progress=False)
    assert "epochs" not in caplog.text  # a finished run: nothing to say
    with pytest.raises(MmferError, match="unknown split 'Tets'"):
        score_split(out, data=cache, split="Tets", out=tmp_path / "u.csv", progress=False)


def test_training_and_scoring_start_their_loaders_with_stops_held_back(synth_cache, tmp_path, monkeypatch):
    """Every epoch's loader and every validation loader starts through signals.start_iter (a stop during the
    workers' fork was lost); this pins the call sites."""
    import mmfer.engine.hooks as hooks
    import mmfer.engine.scoring as scoring
    from mmfer.signals import start_iter

    calls = []

    def counted(loader):
        calls.append(type(loader).__name__)
        return start_iter(loader)

    monkeypatch.setattr(hooks, "start_iter", counted)
    monkeypatch.setattr(scoring, "start_iter", counted)
    train(tiny_config("landmark_brnn", epochs=2), data=synth_cache("landmarks"), out=tmp_path / "run", progress=False)
    assert calls.count("DataLoader") >= 4  # 2 epochs of training and 2 validations, then the score files


_USER_MODULE = '''
import torch
from mmfer.models.registry import register_model


class Tiny(torch.nn.Module):
    input_kind = "logmel"

    def __init__(self, *, outputs=7, n_mels=64):
        super().__init__()
        self.head = torch.nn.Linear(n_mels, outputs)

    def forward(self, x, mask=None):
        return self.head(x.mean(dim=-1).flatten(1)[:, :self.head.in_features])


register_model("user_tiny", lambda *, outputs=7, n_mels=64: Tiny(outputs=outputs, n_mels=n_mels), replace=True)
'''


def test_a_model_registered_by_ones_own_module_trains_and_scores_with_import(synth_cache, tmp_path, monkeypatch,
                                                                            capsys):
    """A model from the user's module: a run of it trains from Python; scoring it where the module is not imported
    names the checkpoint and `mmfer --import`; with --import MODULE the command line scores it. A head of six
    outputs is said at its first step."""
    from mmfer.models import registry

    monkeypatch.setattr(registry, "MODELS", dict(registry.MODELS))
    (tmp_path / "user_models.py").write_text(_USER_MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    importlib.import_module("user_models")
    cache = synth_cache("audio")
    cfg = tiny_config("audio_cnn", epochs=1)
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, name="user_tiny",
                                                             kwargs={"n_mels": cfg.data.n_mels}))
    train(cfg, data=cache, out=tmp_path / "run", progress=False)
    six = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, kwargs={**cfg.model.kwargs, "outputs": 6}))
    with pytest.raises(MmferError, match=r"returns logits of shape \(\d+, 6\); a branch returns \(batch, 7\)"):
        train(six, data=cache, out=tmp_path / "six", progress=False)
    del registry.MODELS["user_tiny"]
    sys.modules.pop("user_models")
    assert main(["scores", str(tmp_path / "run"), "--data", str(cache), "--split", "Val",
                 "--out", str(tmp_path / "s.csv")]) == 2
    err = capsys.readouterr().err
    assert ("run/best.pt: model 'user_tiny' is registered by module 'user_models', which is not imported: "
            "`mmfer --import user_models ...`") in err  # the run names the module it needs
    assert main(["--import", "user_models", "scores", str(tmp_path / "run"), "--data", str(cache), "--split", "Val",
                 "--out", str(tmp_path / "s.csv")]) == 0
    assert len(read_scores(tmp_path / "s.csv")) > 0
    # a module that fails as it runs is one line naming it (a raw traceback, exit 1, for anything but ImportError)
    (tmp_path / "broken_models.py").write_text("def f(:\n")
    assert main(["--import", "broken_models", "scores", str(tmp_path / "run"), "--data", str(cache)]) == 2
    assert "--import broken_models: the module failed as it was imported (SyntaxError" in capsys.readouterr().err
