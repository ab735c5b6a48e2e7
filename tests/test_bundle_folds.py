"""tools/bundle_folds.py: a bundle's fold models score again, out of fold, the clips their folds held out, from
the weights it ships, and the views fuse as the bundle fuses them."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
sys.path.insert(0, str(Path(__file__).resolve().parent / "data"))
import bundle_folds  # noqa: E402
from test_speech_list import _corpora, _write_list  # noqa: E402  (tone corpora of the speech-list tests)


@pytest.fixture(scope="module")
def folds_bundle(tmp_path_factory):
    """Two views (two seeds of a tiny statistics MLP), each trained in 2 speaker folds of a tone list, bundled
    as tools/build_default_model.py bundles fold models, with their recorded cross-validations."""
    from mmfer.engine.config import DataConfig, ModelConfig, OptimConfig, TrainConfig
    from mmfer.engine.folds import train_folds
    from mmfer.inference.bundle import write_bundle
    from mmfer.labels import EMOTIONS

    root = tmp_path_factory.mktemp("bundle_folds")
    _write_list(root / "list.csv", _corpora(root, classes_of={"a": list(EMOTIONS)}, speakers=2, per=2))
    cfg = TrainConfig(name="t", model=ModelConfig(name="audio_stats", kwargs={"hidden": 16}),
                      data=DataConfig(batch_size=4), optim=OptimConfig(epochs=20, lr=1e-2), device="cpu")
    recorded, branches = {}, []
    for seed, key in ((0, "cv"), (1, "cv_s1")):
        summary = train_folds(cfg, data=root / "list.csv", out=root / key, folds=2, progress=False, seed=seed)
        recorded[key] = summary
        branches += [{"name": f"audio_stats{seed + 1}_fold{i + 1}", "run": root / key / f"fold{i + 1}",
                      "weight": 0.1 * (seed + 1), "temperature": 1.5 - seed} for i in range(2)]
    write_bundle(root / "bundle", branches, provenance={"audio_cross_validation": recorded}, half=False)
    return root, recorded


def test_fold_models_score_their_held_out_speakers_again(folds_bundle, capsys):
    from mmfer.fusion.methods import apply_temperature
    from mmfer.metrics import evaluate
    from mmfer.scores import read_scores

    root, recorded = folds_bundle
    out = root / "again"
    args = ["--model", str(root / "bundle"), "--data", str(root / "list.csv"), "--out", str(out), "--no-progress",
            "--cv", "audio_stats1=cv", "--cv", "audio_stats2=cv_s1"]
    assert bundle_folds.main(args) == 0
    rows = {r["view"]: r for r in csv.DictReader((out / "summary.csv").open())}
    for stem, key in (("audio_stats1", "cv"), ("audio_stats2", "cv_s1")):
        assert recorded[key]["pooled_uar"] > 0.3  # models that learnt something: the figures tell them apart
        # the fold models, exported in fp32, make exactly the figures their training recorded
        assert float(rows[stem]["pooled_uar"]) == recorded[key]["pooled_uar"]
        assert float(rows[stem]["recorded_pooled_uar"]) == recorded[key]["pooled_uar"]
        assert [f["speakers"] for f in json.loads((out / stem / "folds.json").read_text())["folds"]] == \
            [f["speakers"] for f in recorded[key]["folds"]]
    # the views fused as predict fuses them: each stem's summed weight, its temperature first
    a, b = (read_scores(root / key / "scores_oof.csv") for key in ("cv", "cv_s1"))
    order = np.argsort(b.clip_ids)[np.argsort(np.argsort(a.clip_ids))]
    want = (0.2 * apply_temperature(a.probs, 1.5) + 0.4 * apply_temperature(b.probs[order], 0.5)) / 0.6
    fused = read_scores(out / "audio" / "scores_oof.csv")
    assert fused.clip_ids == a.clip_ids and np.allclose(fused.probs, want, atol=2e-6)
    fused_row = rows["audio, as predict fuses it (weights and temperatures)"]
    assert float(fused_row["pooled_uar"]) == round(evaluate(a.labels, want)["uar"], 4)
    halves = [read_scores(root / "cv" / f"fold{i}" / "scores_Val.csv") for i in (1, 2)]  # per fold, as the views
    assert fused_row["fold_uar"] == " ".join(f"{evaluate(h.labels, want[[a.clip_ids.index(c) for c in h.clip_ids]])['uar']:.3f}"
                                             for h in halves)
    assert rows["audio_stats1"]["recorded_fold_uar"] == " ".join(f"{f['uar']:.3f}" for f in recorded["cv"]["folds"])
    assert "audio_stats1" in capsys.readouterr().out
    # a second call keeps what is scored; other data is scored afresh
    stamp = (out / "audio_stats1" / "fold1" / "scores_Val.csv").stat().st_mtime_ns
    assert bundle_folds.main(args) == 0
    assert (out / "audio_stats1" / "fold1" / "scores_Val.csv").stat().st_mtime_ns == stamp
    rows = list(csv.DictReader((root / "list.csv").open()))
    _write_list(root / "half.csv", [{**r, "path": str(root / r["path"])} for r in rows if r["path"].endswith("_0.wav")])
    assert bundle_folds.main([*args[:2], "--data", str(root / "half.csv"), *args[4:]]) == 0
    assert len(read_scores(out / "audio_stats1" / "scores_oof.csv")) == len(rows) // 2


def test_data_the_folds_never_held_out_is_refused_by_name(folds_bundle, tmp_path, capsys):
    from mmfer.errors import MmferError

    root, _ = folds_bundle
    rows = list(csv.DictReader((root / "list.csv").open()))
    for r in rows:
        r["speaker"] = "other_" + r["speaker"]
    _write_list(tmp_path / "renamed.csv", [{**r, "path": str(root / r["path"])} for r in rows])
    with pytest.raises(MmferError, match=r"none of its clips is of the speakers fold 1 of audio_stats1 held out "
                                         r"\(a_0\).*--data-for audio_stats1=PATH"):
        bundle_folds.main(["--model", str(root / "bundle"), "--data", str(tmp_path / "renamed.csv"), "--out",
                           str(tmp_path / "o"), "--no-progress", "--cv", "audio_stats1=cv", "--cv", "audio_stats2=cv_s1"])
    # names that say nothing are asked for, not guessed
    with pytest.raises(MmferError, match=r"fold models audio_stats1_fold<i>: no single recorded cross-validation "
                                         r"matches \(recorded: cv, cv_s1\); name it with --cv audio_stats1=KEY"):
        bundle_folds.main(["--model", str(root / "bundle"), "--data", str(root / "list.csv"), "--out",
                           str(tmp_path / "o")])
    with pytest.raises(MmferError, match="no bundle.json there"):
        bundle_folds.main(["--model", str(tmp_path), "--data", str(root / "list.csv"), "--out", str(tmp_path / "o")])


def test_views_that_name_clips_differently_are_matched_by_file_and_renamed(tmp_path):
    """The shipped statistics view learnt from an AFEW folder (Angry/03-01-...), the CNN views from a speech list
    (03-01-...): fused by the file's name, and every view's scores_oof.csv rewritten with it, so that they and
    a new recipe's runs on a speech list fuse with `mmfer fuse`."""
    from mmfer.scores import read_scores, write_scores

    rng = np.random.default_rng(0)
    names = [f"c{i}" for i in range(6)]
    labels = ["Angry", "Sad", "Happy", "Angry", "Sad", "Happy"]
    p1, p2 = rng.dirichlet(np.ones(7), 6), rng.dirichlet(np.ones(7), 6)
    write_scores(tmp_path / "cnn" / "scores_oof.csv", names, labels, p1)
    for i, part in ((1, slice(0, 3)), (2, slice(3, 6))):
        write_scores(tmp_path / "cnn" / f"fold{i}" / "scores_Val.csv", names[part], labels[part], p1[part])
    order = [5, 3, 1, 0, 2, 4]  # another order, and Class/file names
    write_scores(tmp_path / "stats" / "scores_oof.csv", [f"{labels[i]}/{names[i]}" for i in order],
                 [labels[i] for i in order], p2[order])
    views = {"cnn": {"members": {1: ("cnn_fold1", {"weight": 0.1}), 2: ("cnn_fold2", {"weight": 0.1})},
                     "cv": {"folds": [{}, {}]}},
             "stats": {"members": {1: ("stats_fold1", {"weight": 0.3}), 2: ("stats_fold2", {"weight": 0.3})},
                       "cv": {"folds": [{}, {}]}}}
    fused = bundle_folds.fuse_views(tmp_path, views)
    assert fused["weights"] == {"cnn": 0.25, "stats": 0.75} and len(fused["bundle_folds"]) == 2
    out = read_scores(tmp_path / "audio" / "scores_oof.csv")
    assert out.clip_ids == names and np.allclose(out.probs, 0.25 * p1 + 0.75 * p2, atol=2e-6)
    again = read_scores(tmp_path / "stats" / "scores_oof.csv")
    assert again.clip_ids == names and again.labels == labels and np.allclose(again.probs, p2, atol=2e-6)
