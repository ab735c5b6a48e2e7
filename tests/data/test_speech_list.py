"""Speech of several corpora from one CSV list (mmfer.data.speech_list) and what training does with it:
missing and unreadable files, classes absent from a corpus (masked) or from every corpus (an error),
corpus/class-balanced drawing, speaker and corpus folds."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from mmfer.data.speech_list import (
    balanced_weights,
    check_classes,
    class_masks,
    read_speech_list,
    speech_list_records,
    speech_list_splits,
)
from mmfer.errors import MmferError
from mmfer.labels import EMOTIONS, index_of

SR = 16000


def _tone(path, freq: float, rng: np.random.Generator, seconds: float = 0.6) -> None:
    import soundfile as sf

    t = np.arange(int(seconds * SR)) / SR
    wave = 0.3 * np.sin(2 * np.pi * freq * t) * (1 + 0.3 * np.sin(2 * np.pi * 3 * t))
    sf.write(path, (wave + 0.01 * rng.standard_normal(t.size)).astype(np.float32), SR)


def _write_list(path, rows, fields=("path", "label", "speaker", "corpus", "use")) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(fields), extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def _corpora(tmp_path, *, classes_of: dict[str, list[str]], speakers: int = 2, per: int = 2, use=None):
    """Tone 'speech': one folder per corpus, class c at its own pitch; returns the list's rows."""
    rng = np.random.default_rng(0)
    rows = []
    for corpus, classes in classes_of.items():
        (tmp_path / corpus).mkdir()
        for s in range(speakers):
            for c in classes:
                for k in range(per):
                    name = f"{corpus}/{corpus}{s}_{c}_{k}.wav"
                    _tone(tmp_path / name, 150 + 60 * index_of(c) + 5 * s, rng)
                    rows.append({"path": name, "label": c, "speaker": f"{corpus}_{s}", "corpus": corpus,
                                 "use": (use or {}).get(corpus, "train")})
    return rows


def test_list_reads_speakers_corpora_and_uses(tmp_path):
    rows = _corpora(tmp_path, classes_of={"a": ["Angry", "Sad"], "t": ["Angry", "Sad"]}, speakers=1, per=1,
                    use={"t": "evaluation only"})
    rows.append({"path": "a/calm.wav", "label": "calm", "speaker": "a_0", "corpus": "a", "use": "train"})
    _write_list(tmp_path / "list.csv", rows)
    recs = read_speech_list(tmp_path / "list.csv")
    assert len(recs) == 4  # calm (out of set) left out
    assert speech_list_splits(tmp_path / "list.csv") == {"Train", "Test"}  # evaluation only: scored, never trained
    train = speech_list_records(tmp_path / "list.csv", "Train")
    assert {r.corpus for r in train} == {"a"} and {r.speaker for r in train} == {"a_0"}
    assert all(r.path.startswith(str(tmp_path)) for r in recs)  # relative to the CSV


def test_corpus_and_speaker_names_spelt_with_other_capitals_are_one_corpus_and_one_speaker(tmp_path, caplog):
    """"SAVEE" and "savee" were two corpora (leave-one-corpus-out validated on half of a corpus it trained on) and
    one speaker in two folds."""
    from mmfer.data.splits import corpus_folds, corpus_records, speaker_folds

    rows = _corpora(tmp_path, classes_of={"savee": list(EMOTIONS), "nemo": list(EMOTIONS)})
    for i, r in enumerate(rows):
        if r["corpus"] == "savee" and i % 2:
            r["corpus"], r["speaker"] = "SAVEE", r["speaker"].upper()
    _write_list(tmp_path / "list.csv", rows)
    with caplog.at_level(logging.WARNING):
        records = read_speech_list(tmp_path / "list.csv")
    assert {r.corpus for r in records} == {"savee", "nemo"}
    assert {r.speaker for r in records if r.corpus == "savee"} == {"savee_0", "savee_1"}
    assert sorted(map(sorted, corpus_folds(records))) == [["nemo"], ["savee"]]
    assert sorted(s for fold in speaker_folds(records, 2) for s in fold) == ["nemo_0", "nemo_1", "savee_0", "savee_1"]
    assert "corpus 'SAVEE'" in caplog.text and "read as 'savee'" in caplog.text
    assert len(corpus_records(records, "SAVEE")) == len(corpus_records(records, "savee")) == len(records) // 2


def test_a_face_image_model_given_a_list_of_sound_files_is_refused_before_any_work(tmp_path):
    """The list's rows were read one by one as broken images ("not a readable image; delete or replace it") after
    the run had started."""
    from mmfer.engine.config import load_train_config
    from mmfer.engine.train import train

    _write_list(tmp_path / "list.csv", _corpora(tmp_path, classes_of={"a": ["Angry", "Sad"]}, speakers=2, per=1))
    config = Path(__file__).resolve().parents[2] / "configs" / "face_frame_fer2013.yaml"
    with pytest.raises(MmferError, match=r"list\.csv: a CSV list of \.wav files, not images; a face-image model"):
        train(load_train_config(config), data=tmp_path / "list.csv", out=tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_missing_file_is_reported_by_name_and_left_out(tmp_path, caplog):
    rows = _corpora(tmp_path, classes_of={"a": ["Angry", "Sad"]}, speakers=1, per=1)
    rows.append({"path": "a/gone.wav", "label": "Sad", "speaker": "a_0", "corpus": "a", "use": "train"})
    _write_list(tmp_path / "list.csv", rows)
    with caplog.at_level(logging.WARNING):
        recs = read_speech_list(tmp_path / "list.csv")
    assert len(recs) == 2 and not any("gone" in r.path for r in recs)
    assert "gone.wav" in caplog.text and "not found" in caplog.text


def test_a_folder_an_unknown_use_and_training_rows_of_an_evaluation_only_corpus_are_said(tmp_path, caplog):
    rows = _corpora(tmp_path, classes_of={"a": ["Angry", "Sad"], "tess": ["Angry", "Sad"]}, speakers=1, per=1)
    (tmp_path / "a" / "dir.wav").mkdir()
    rows.append({"path": "a/dir.wav", "label": "Sad", "speaker": "a_0", "corpus": "a", "use": "train"})
    _write_list(tmp_path / "list.csv", rows)
    with caplog.at_level(logging.WARNING):
        recs = read_speech_list(tmp_path / "list.csv")
    assert "dir.wav (list.csv:6): a folder, not a file; left out" in caplog.text  # was "file not found"
    assert "2 row(s) of corpus tess are training data, but tess is for evaluation only" in caplog.text
    assert {r.split for r in recs if r.corpus == "tess"} == {"Train"}  # said, not overruled
    caplog.clear()
    for row in rows:
        row["use"] = "evaluation only" if row["corpus"] == "tess" else "train"
    _write_list(tmp_path / "marked.csv", rows)
    with caplog.at_level(logging.WARNING):
        recs = read_speech_list(tmp_path / "marked.csv")
    assert {r.split for r in recs if r.corpus == "tess"} == {"Test"} and "evaluation only" not in caplog.text
    rows[0]["use"] = "trian"  # a typo took the row out of training, silently
    _write_list(tmp_path / "typo.csv", rows)
    with pytest.raises(MmferError, match=r"typo\.csv:2: use 'trian'; expected 'train' \(or empty\) or 'evaluation only'"):
        read_speech_list(tmp_path / "typo.csv")


def test_unreadable_file_is_reported_by_name_and_left_out(tmp_path, caplog):
    from mmfer.data.datasets import build_dataset
    from mmfer.data.sources import source_records
    from mmfer.data.config import AugmentConfig, DataConfig

    rows = _corpora(tmp_path, classes_of={"a": ["Angry", "Sad"]}, speakers=1, per=1)
    (tmp_path / "a" / "broken.wav").write_bytes(b"RIFF not really a wave file")
    (tmp_path / "a" / "text.flac").write_text("not audio\n")  # opens as FLAC, decodes to nothing
    sf.write(tmp_path / "a" / "quiet.wav", np.zeros(8000, np.float32), SR)
    for name in ("broken.wav", "text.flac", "quiet.wav"):
        rows.append({"path": f"a/{name}", "label": "Sad", "speaker": "a_0", "corpus": "a", "use": "train"})
    _write_list(tmp_path / "list.csv", rows)
    with caplog.at_level(logging.WARNING):
        ds = build_dataset("audio_stats", cache=tmp_path / "list.csv",
                           records=source_records(tmp_path / "list.csv", "Train", "audio_stats"), train=True,
                           data=DataConfig(), augment=AugmentConfig())
    assert len(ds) == 2 and [c for c, _ in ds.skipped] == ["broken", "text", "quiet"]
    assert "broken.wav" in caplog.text and "text.flac: no sound decodes" in caplog.text
    assert caplog.text.count("broken.wav") == 1  # the decoder's message names it already: not twice in one line
    assert "quiet.wav: silent; left out" in caplog.text  # named too, not only counted


def test_a_class_absent_from_every_training_corpus_is_an_error_naming_it(tmp_path):
    from mmfer.engine.config import DataConfig, ModelConfig, OptimConfig, TrainConfig
    from mmfer.engine.train import train

    some = [c for c in EMOTIONS if c not in ("Disgust", "Surprise")]
    rows = _corpora(tmp_path, classes_of={"a": some, "b": some}, speakers=1, per=1)
    _write_list(tmp_path / "list.csv", rows)
    with pytest.raises(MmferError, match="Disgust, Surprise absent from every training corpus"):
        check_classes(read_speech_list(tmp_path / "list.csv"), where="list")
    cfg = TrainConfig(name="t", model=ModelConfig(name="audio_stats", kwargs={"hidden": 8}),
                      data=DataConfig(batch_size=4), optim=OptimConfig(epochs=1), device="cpu")
    with pytest.raises(MmferError, match="Disgust, Surprise absent from every training corpus"):
        train(cfg, data=tmp_path / "list.csv", out=tmp_path / "run", progress=False)
    # folds: the class only corpus b has is missing from the fold that holds b out, which is said before
    # any fold trains (it came when that fold started, after the others had trained)
    from mmfer.engine.folds import train_folds

    (tmp_path / "f").mkdir()
    rows = _corpora(tmp_path / "f", classes_of={"a": some, "b": list(EMOTIONS)}, speakers=1, per=1)
    _write_list(tmp_path / "f" / "list.csv", rows)
    with pytest.raises(MmferError, match=r"training clips of fold 2\).*Disgust, Surprise absent"):
        train_folds(cfg, data=tmp_path / "f" / "list.csv", out=tmp_path / "folds", folds="corpus", progress=False)
    assert not (tmp_path / "folds" / "fold1").exists()


def test_class_masks_and_balanced_drawing(tmp_path, caplog):
    rows = _corpora(tmp_path, classes_of={"big": ["Angry", "Sad"], "small": ["Angry", "Disgust", "Sad"]},
                    speakers=1, per=1)
    rows += [dict(rows[0], path=f"big/x{i}.wav") for i in range(6)]  # big: 7 Angry, 1 Sad
    for i in range(6):
        (tmp_path / f"big/x{i}.wav").write_bytes((tmp_path / rows[0]["path"]).read_bytes())
    _write_list(tmp_path / "list.csv", rows)
    recs = read_speech_list(tmp_path / "list.csv")
    masks = class_masks(recs)
    big = np.array([r.corpus == "big" for r in recs])
    assert not masks[big, index_of("Disgust")].any() and masks[~big, index_of("Disgust")].all()
    assert masks[:, index_of("Angry")].all()
    p = balanced_weights(recs)
    assert p[big].sum() == pytest.approx(0.5)  # each corpus half of the draws, however big
    angry = np.array([r.label == "Angry" for r in recs])
    assert p[big & angry].sum() == pytest.approx(0.25)  # each class of a corpus an equal share of it
    assert class_masks([r for r in recs if r.corpus == "small"]) is None  # nothing to mask
    import dataclasses
    import logging

    with caplog.at_level(logging.WARNING):  # no corpus named: the classes are balanced, and that is said
        p = balanced_weights([dataclasses.replace(r, corpus="") for r in recs])
    assert "no training clip names a corpus" in caplog.text
    assert p[angry].sum() == pytest.approx(1 / 3)  # Angry, Disgust, Sad: a third each


def test_masked_loss_gives_an_absent_class_no_gradient_and_equals_cross_entropy_otherwise():
    from mmfer.engine.losses import MaskedCrossEntropy

    torch.manual_seed(0)
    logits = torch.randn(6, 7, requires_grad=True)
    y = torch.tensor([0, 2, 3, 4, 1, 6])
    w = torch.rand(7) + 0.5
    plain = torch.nn.CrossEntropyLoss(weight=w, label_smoothing=0.1)(logits, y)
    loss = MaskedCrossEntropy(w, label_smoothing=0.1)
    assert torch.allclose(loss(logits, y), plain)
    assert torch.allclose(loss(logits, y, torch.ones(6, 7, dtype=torch.bool)), plain)
    allowed = torch.ones(6, 7, dtype=torch.bool)
    allowed[:4, index_of("Disgust")] = False  # the first four clips come from a corpus without Disgust
    loss(logits, y, allowed).backward()
    assert torch.all(logits.grad[:4, index_of("Disgust")] == 0)  # no push against Disgust from them
    assert torch.all(logits.grad[4:, index_of("Disgust")] != 0)  # the others still teach it
    assert torch.isfinite(logits.grad).all()


def test_a_fold_stopped_while_scoring_test_is_scored_again(tmp_path, monkeypatch):
    """A fold counts as done once its scores_Val.csv exists; Val was scored before Test, so a stop in Test's
    scoring left a fold "already trained" without scores_Test.csv, and no scores_Test_ensemble.csv, silently."""
    import mmfer.engine.train as train_module
    from mmfer.engine.config import DataConfig, ModelConfig, OptimConfig, TrainConfig
    from mmfer.engine.folds import train_folds

    rows = _corpora(tmp_path, classes_of={"a": list(EMOTIONS), "t": list(EMOTIONS)}, speakers=2, per=1,
                    use={"t": "evaluation only"})
    _write_list(tmp_path / "list.csv", rows)
    cfg = TrainConfig(name="t", model=ModelConfig(name="audio_stats", kwargs={"hidden": 16}),
                      data=DataConfig(batch_size=8), optim=OptimConfig(epochs=1, select_by="last"), device="cpu")
    real = train_module.split_scores

    def stopped_in_test(*a, split, **k):
        if split == "Test":
            raise KeyboardInterrupt
        return real(*a, split=split, **k)

    monkeypatch.setattr(train_module, "split_scores", stopped_in_test)
    with pytest.raises(KeyboardInterrupt):
        train_folds(cfg, data=tmp_path / "list.csv", out=tmp_path / "cv", folds=2, progress=False)
    monkeypatch.setattr(train_module, "split_scores", real)
    train_folds(cfg, data=tmp_path / "list.csv", out=tmp_path / "cv", folds=2, progress=False)  # the same command
    assert (tmp_path / "cv" / "fold1" / "scores_Test.csv").is_file()
    assert (tmp_path / "cv" / "scores_Test_ensemble.csv").is_file()


def test_training_on_a_list_masks_balances_and_folds_by_speaker_and_corpus(tmp_path):
    """`mmfer train --data list.csv --folds K|corpus`: speakers from the list, one fold per corpus, Test rows
    (evaluation only) scored by every fold and by the folds together."""
    import json

    from mmfer.engine.config import DataConfig, LossConfig, ModelConfig, OptimConfig, TrainConfig
    from mmfer.engine.folds import train_folds

    classes = list(EMOTIONS)
    rows = _corpora(tmp_path, classes_of={"a": classes, "b": [c for c in classes if c != "Disgust"], "c": classes,
                                          "t": classes}, speakers=2, per=1, use={"t": "evaluation only"})
    _write_list(tmp_path / "list.csv", rows)
    cfg = TrainConfig(name="t", model=ModelConfig(name="audio_stats", kwargs={"hidden": 16}),
                      data=DataConfig(batch_size=8, balance="corpus_class"), loss=LossConfig(class_balanced=True),
                      optim=OptimConfig(epochs=2, select_by="last"), device="cpu")
    s = train_folds(cfg, data=tmp_path / "list.csv", out=tmp_path / "loco", folds="corpus", progress=False)
    assert [r["speakers"] for r in s["folds"]] == ["a", "b", "c"] and s["by"] == "corpus"
    assert s["test_ensemble"]["clips"] == 14
    s = train_folds(cfg, data=tmp_path / "list.csv", out=tmp_path / "spk", folds=3, progress=False)
    held = [set(r["speakers"].split()) for r in s["folds"]]
    assert set().union(*held) == {"a_0", "a_1", "b_0", "b_1", "c_0", "c_1"} and sum(map(len, held)) == 6
    assert json.loads((tmp_path / "spk" / "fold1" / "fold.json").read_text())["by"] == "speaker"


def test_folds_within_one_corpus_train_every_fold_on_the_others(tmp_path):
    """`--folds K --folds-within a`: only corpus a's speakers are dealt to the folds and validated on; the other
    corpora's clips are in every fold's training (the run says how many), and an unknown corpus is named."""
    import json

    from mmfer.engine.config import DataConfig, LossConfig, ModelConfig, OptimConfig, TrainConfig
    from mmfer.engine.folds import train_folds
    from mmfer.scores import read_scores

    classes = list(EMOTIONS)
    rows = _corpora(tmp_path, classes_of={"a": classes, "b": [c for c in classes if c != "Disgust"], "c": classes},
                    speakers=2, per=1)
    _write_list(tmp_path / "list.csv", rows)
    cfg = TrainConfig(name="t", model=ModelConfig(name="audio_stats", kwargs={"hidden": 16}),
                      data=DataConfig(batch_size=8, balance="corpus_class"), loss=LossConfig(class_balanced=True),
                      optim=OptimConfig(epochs=1, select_by="last"), device="cpu")
    s = train_folds(cfg, data=tmp_path / "list.csv", out=tmp_path / "within", folds=2, folds_within="a", progress=False)
    assert [r["speakers"] for r in s["folds"]] == ["a_0", "a_1"] and s["within"] == "a"
    from mmfer.engine.checkpoint import resolve_checkpoint

    with pytest.raises(MmferError, match=r"a cross-validation folder of `--folds` .*give one fold, e.g. .*fold1"):
        resolve_checkpoint(tmp_path / "within")  # as `mmfer scores CV` or `predict --model CV` would
    assert [r["clips"] for r in s["folds"]] == [7, 7]
    oof = read_scores(tmp_path / "within" / "scores_oof.csv")
    assert sorted(oof.clip_ids) == sorted(r["path"].split("/")[1][:-4] for r in rows if r["corpus"] == "a")
    for i in (1, 2):
        info = json.loads((tmp_path / "within" / f"fold{i}" / "fold.json").read_text())
        assert info["within"] == "a" and info["speakers"] == [f"a_{i - 1}"]
        assert (info["train_clips"], info["val_clips"]) == (33, 7)  # a's other speaker, all of b (6 classes) and c
    # one fold from Python: train's keyword is --folds-within's name too (fold_within, its old name, still works)
    from mmfer.engine.train import train

    one = train(cfg, data=tmp_path / "list.csv", out=tmp_path / "one", fold=(1, 2), folds_within="a", progress=False)
    with pytest.warns(DeprecationWarning, match=r"train\(fold_within=\) is train\(folds_within=\) now"):
        old = train(cfg, data=tmp_path / "list.csv", out=tmp_path / "old", fold=(1, 2), fold_within="a", progress=False)
    assert one["best"] == old["best"]
    assert json.loads((tmp_path / "one" / "fold.json").read_text())["within"] == "a"
    with pytest.raises(MmferError, match=r"--folds-within 'z'.*it has a, b, c"):
        train_folds(cfg, data=tmp_path / "list.csv", out=tmp_path / "z", folds=2, folds_within="z", progress=False)
    with pytest.raises(MmferError, match="--folds K"):
        train_folds(cfg, data=tmp_path / "list.csv", out=tmp_path / "y", folds="corpus", folds_within="a", progress=False)
    # no silent mix of two designs: a resumed fold could validate on speakers it trained on
    with pytest.raises(MmferError, match="holds the folds of --folds 2 --folds-within a, not --folds 2;"):
        train_folds(cfg, data=tmp_path / "list.csv", out=tmp_path / "within", folds=2, progress=False)
    with pytest.raises(MmferError, match=r"another config, --seed or --epochs \(seed: 0 \(run\) != 5 \(now\), against "):
        train_folds(cfg, data=tmp_path / "list.csv", out=tmp_path / "within", folds=2, folds_within="a", seed=5,
                    progress=False)
    # the same speakers and counts, one label corrected: the finished folds learnt the old one
    relabelled = [dict(r) for r in rows]
    first = next(r for r in relabelled if r["corpus"] == "a")
    first["label"] = next(c for c in classes if c != first["label"])
    _write_list(tmp_path / "list.csv", relabelled)
    with pytest.raises(MmferError, match="carry other labels in this data"):
        train_folds(cfg, data=tmp_path / "list.csv", out=tmp_path / "within", folds=2, folds_within="a",
                    progress=False)
    _write_list(tmp_path / "list.csv", rows)
    (tmp_path / "within" / "plan.json").unlink()  # a folder from before plan.json: read from its folds
    with pytest.raises(MmferError, match="holds the folds of --folds 2 --folds-within a, not --folds 3 "):
        train_folds(cfg, data=tmp_path / "list.csv", out=tmp_path / "within", folds=3, folds_within="a", progress=False)
    s2 = train_folds(cfg, data=tmp_path / "list.csv", out=tmp_path / "within", folds=2, folds_within="a", progress=False)
    assert s2["folds"] == s["folds"]  # the same options resume: the finished folds are kept as they are
    # another seed, epoch count or config would be reported with the finished folds as one cross-validation
    import dataclasses

    for changed, epochs, said in ((dataclasses.replace(cfg, seed=7), None, "seed: 0 (run) != 7 (now)"),
                                  (cfg, 3, f"optim.epochs: {cfg.optim.epochs} (run) != 3 (now)"),
                                  (dataclasses.replace(cfg, model=ModelConfig(name="audio_stats", kwargs={"hidden": 8})),
                                   None, "model.kwargs.hidden: ")):
        with pytest.raises(MmferError, match="holds folds trained with another config, --seed or --epochs") as e:
            train_folds(changed, data=tmp_path / "list.csv", out=tmp_path / "within", folds=2, folds_within="a",
                        epochs=epochs, progress=False)
        assert said in str(e.value)  # what changed, as --resume says it
    # a folder started before the adversary section existed (its plan's digest: the whole config without it) resumes
    import hashlib

    from mmfer.engine.config import config_to_plain

    old = config_to_plain(cfg)
    for section, key in ((None, "name"), (None, "device"), ("data", "workers"), ("data", "eval_batch_size"),
                         (None, "adversary")):
        (old[section] if section else old).pop(key)
    plan = json.loads((tmp_path / "within" / "plan.json").read_text())
    plan["recipe"] = hashlib.sha256(json.dumps(old, sort_keys=True).encode()).hexdigest()[:16]
    (tmp_path / "within" / "plan.json").write_text(json.dumps(plan))
    assert train_folds(cfg, data=tmp_path / "list.csv", out=tmp_path / "within", folds=2, folds_within="a",
                       progress=False)["folds"] == s["folds"]
    # a digest no longer made (an older mmfer's, of a config that has had keys added since: augment.freq_warp made
    # every plan of 2026-12-05 unresumable): the folds' own config.yaml decides
    plan["recipe"] = "0123456789abcdef"
    (tmp_path / "within" / "plan.json").write_text(json.dumps(plan))
    assert train_folds(cfg, data=tmp_path / "list.csv", out=tmp_path / "within", folds=2, folds_within="a",
                       progress=False)["folds"] == s["folds"]
    with pytest.raises(MmferError, match=r"another config, --seed or --epochs \(seed: 0 \(run\) != 5 \(now\)"):
        train_folds(cfg, data=tmp_path / "list.csv", out=tmp_path / "within", folds=2, folds_within="a", seed=5,
                    progress=False)
    # another machine: other loader workers or device, the same folds (resumed, not refused)
    moved = dataclasses.replace(cfg, name="t_other", device="auto", data=dataclasses.replace(cfg.data, workers=1))
    assert train_folds(moved, data=tmp_path / "list.csv", out=tmp_path / "within", folds=2, folds_within="a",
                       progress=False)["folds"] == s["folds"]
    # mmfer scores on a fold's run scores the speakers it held out (it scored a random 10% of all clips, most of
    # them heard in training)
    from mmfer.engine.scoring import score_split

    again = read_scores(score_split(tmp_path / "within" / "fold2", data=tmp_path / "list.csv", split="Val",
                                  out=tmp_path / "f2.csv", progress=False))
    kept = read_scores(tmp_path / "within" / "fold2" / "scores_Val.csv")
    assert list(again.clip_ids) == list(kept.clip_ids) and np.allclose(again.probs, kept.probs, atol=1e-6)
    # a list that changed since (a's second speaker gone) is not summarised as the same run
    _write_list(tmp_path / "fewer.csv", [r for r in rows if r["speaker"] != "a_1"] + [
        {**r, "speaker": "a_2"} for r in rows if r["speaker"] == "a_1"])
    with pytest.raises(MmferError, match=r"fold2 validated on a_1 \(7 clips\), and this data deals that fold a_2"):
        train_folds(cfg, data=tmp_path / "fewer.csv", out=tmp_path / "within", folds=2, folds_within="a", progress=False)
    # a design the data cannot hold leaves no folder that refuses the next try
    with pytest.raises(MmferError, match="only 2 speakers"):
        train_folds(cfg, data=tmp_path / "list.csv", out=tmp_path / "w5", folds=5, folds_within="a", progress=False)
    assert not (tmp_path / "w5").exists()


def test_decoded_files_are_shared_between_datasets_and_read_again_when_changed(tmp_path):
    from mmfer.data import datasets as D

    calls = []

    def read(path, *, sample_rate):
        calls.append(path)
        return np.full(100, len(calls), dtype=np.float32)

    f = tmp_path / "a.wav"
    f.write_bytes(b"x")
    a = D._decoded_file(str(f), SR, read)
    b = D._decoded_file(str(f), SR, read)
    assert a is b and len(calls) == 1 and not a.flags.writeable  # one decode, never changed in place
    f.write_bytes(b"xy")  # a changed file is decoded again
    assert D._decoded_file(str(f), SR, read)[0] == 2 and len(calls) == 2


def test_a_val_clip_that_cannot_be_read_counts_in_the_training_figures_as_in_its_scores(tmp_path):
    """An unreadable Val file is scored uniform in scores_Val.csv and counted wrong by mmfer evaluate; the
    epoch figures (log.csv, select_by, the best epoch) left it out, so the two disagreed."""
    import csv as _csv

    from mmfer.engine.config import DataConfig, LossConfig, ModelConfig, OptimConfig, TrainConfig
    from mmfer.engine.folds import train_folds
    from mmfer.metrics import evaluate
    from mmfer.scores import read_scores

    rows = _corpora(tmp_path, classes_of={"a": list(EMOTIONS), "b": list(EMOTIONS)}, speakers=2, per=1)
    (tmp_path / "a" / "empty.wav").write_bytes(b"")
    rows.append({"path": "a/empty.wav", "label": "Angry", "speaker": "a_0", "corpus": "a", "use": "train"})
    _write_list(tmp_path / "list.csv", rows)
    cfg = TrainConfig(name="t", model=ModelConfig(name="audio_stats", kwargs={"hidden": 16}),
                      data=DataConfig(batch_size=8), loss=LossConfig(class_balanced=True),
                      optim=OptimConfig(epochs=30, lr=0.01, select_by="last"), device="cpu")  # it learns the tones
    train_folds(cfg, data=tmp_path / "list.csv", out=tmp_path / "f", folds=2, folds_within="a", progress=False)
    fold = next(p for p in (tmp_path / "f").glob("fold[0-9]") if "a_0" in (p / "fold.json").read_text())
    scores = read_scores(fold / "scores_Val.csv")
    assert "empty" in scores.clip_ids and len(scores.clip_ids) == 8
    m = evaluate(scores.labels, scores.probs)
    assert m["accuracy"] > 0  # the unreadable clip (uniform, counted wrong) changes the figure
    with open(fold / "log.csv") as f:
        last = list(_csv.DictReader(f))[-1]
    assert float(last["val_accuracy"]) == pytest.approx(m["accuracy"], abs=1e-9)
    assert float(last["val_uar"]) == pytest.approx(m["uar"], abs=1e-9)


def test_train_folds_old_within_keyword_is_warned():
    """train_folds(within=) is folds_within=, as --folds-within; the old keyword warns before anything is read."""
    from mmfer.engine.folds import train_folds

    with pytest.warns(DeprecationWarning, match=r"train_folds\(within=\) is train_folds\(folds_within=\) now"):
        with pytest.raises(MmferError, match="no_such_config.yaml"):  # no such config: only the warning is tested
            train_folds("no_such_config.yaml", data="nowhere.csv", out="never", folds=2, within="a")


def test_the_list_tool_says_what_is_wrong_with_a_metadata_file(tmp_path, capsys):
    """tools/speech_list.py: a metadata file that is not there, or lacks the list's columns, is one line naming it
    (it was a KeyError or FileNotFoundError traceback)."""
    import importlib.util
    from pathlib import Path

    from mmfer.errors import run_tool_main

    spec = importlib.util.spec_from_file_location(
        "speech_list_tool", Path(__file__).resolve().parents[2] / "tools" / "speech_list.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    (tmp_path / "m.csv").write_text("file,label\na.wav,happy\n")
    for meta, why in ((tmp_path / "m.csv", "no path, speaker, corpus column"), (tmp_path / "gone.csv", "not found")):
        assert run_tool_main(tool.main, ["--metadata", str(meta), "--out", str(tmp_path / "l.csv")], prog="s") == 2
        assert why in capsys.readouterr().err


def test_a_list_row_without_a_label_is_said_by_name(tmp_path, caplog):
    """An empty label cell in a training list is a slip: the run warns, naming the clip (it was an INFO count)."""
    from mmfer.engine.config import DataConfig, ModelConfig, OptimConfig, TrainConfig
    from mmfer.engine.train import train

    rows = _corpora(tmp_path, classes_of={"a": list(EMOTIONS)}, speakers=3, per=1)
    rows[0]["label"] = ""
    _write_list(tmp_path / "list.csv", rows)
    cfg = TrainConfig(name="t", model=ModelConfig(name="audio_stats", kwargs={"hidden": 16}),
                      data=DataConfig(batch_size=8), optim=OptimConfig(epochs=1, select_by="last"), device="cpu")
    with caplog.at_level("WARNING"):
        train(cfg, data=tmp_path / "list.csv", out=tmp_path / "run", progress=False)
    assert "1 clip(s) have no label and are not learnt from (e.g. a0_Angry_0" in caplog.text


@pytest.mark.parametrize("body, needle", [
    ("", "bad.csv: empty file; expected a header line"),
    ("file,label\na.wav,Sad\n", "bad.csv:1: header 'file,label' lacks column 'path' or 'label'"),
    ("path,label\na.wav,Sadd\n", "bad.csv:2: "),
    ("path,label\na.wav,Sad\nb.wav\n", "bad.csv:3: 1 value(s) for 2 column(s) (path,label)"),
    ("path,label\n ,Sad\n", "bad.csv:2: empty path"),
])
def test_clip_lists_and_speech_lists_say_a_bad_row_alike(tmp_path, body, needle):
    """One reader (mmfer.data.index.list_rows) under both: the same mistake gets the same words and line."""
    import re

    from mmfer.data.index import index_csv

    csv = tmp_path / "bad.csv"
    csv.write_text(body)
    for read in (index_csv, read_speech_list):
        with pytest.raises(MmferError, match=re.escape(needle)):
            read(csv)
