"""Modality ablation: every subset fused, tables and chart written."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from mmfer.errors import MmferError
from mmfer.fusion import ablate
from mmfer.labels import EMOTIONS
from mmfer.scores import read_scores, write_scores


def _softmax(z):
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


@pytest.fixture
def runs(tmp_path):
    rng = np.random.default_rng(3)
    n, nt = 150, 20
    y = rng.integers(0, 7, n)
    yt = rng.integers(0, 7, nt)
    paths = {"val": [], "test": []}
    for name, strength in (("audio", 0.0), ("c3d", 2.5), ("lstm", 1.5)):
        for split, ids, labels in (("Val", [f"v{i}" for i in range(n)], y), ("Test", [f"t{i}" for i in range(nt)], yt)):
            logits = rng.normal(size=(len(labels), 7))
            logits[np.arange(len(labels)), labels] += strength
            lab = [EMOTIONS[i] for i in labels]
            paths[split.lower()].append(write_scores(tmp_path / name / f"scores_{split}.csv", ids, lab, _softmax(logits)))
    return paths


def test_ablation_covers_every_subset(runs, tmp_path):
    out = tmp_path / "abl"
    rows = ablate(runs["val"], runs["test"], out=out, method="weighted", cv_folds=3, progress=False)
    assert len(rows) == 7
    assert {r["branches"] for r in rows} == {
        "audio", "c3d", "lstm", "audio+c3d", "audio+lstm", "c3d+lstm", "audio+c3d+lstm"}
    by = {r["branches"]: r for r in rows}
    assert by["c3d"]["val_cross_validated_accuracy"] > by["audio"]["val_cross_validated_accuracy"] + 0.3
    assert by["audio"]["val_in_sample_accuracy"] < 0.3
    assert "c3d" in rows[0]["branches"]  # sorted by cross-validated accuracy
    assert [r["val_cross_validated_accuracy"] for r in rows] == sorted((r["val_cross_validated_accuracy"] for r in rows), reverse=True)
    assert all(r["test_accuracy"] is not None and r["test_uar"] is not None for r in rows)  # Test has labels
    t = read_scores(out / "subsets" / "c3d_Test.csv")
    from mmfer.metrics import evaluate

    assert by["c3d"]["test_uar"] == pytest.approx(evaluate(t.labels, t.probs)["uar"])

    with open(out / "ablation.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 7 and float(table[0]["val_cross_validated_accuracy"]) == pytest.approx(rows[0]["val_cross_validated_accuracy"])
    md = (out / "ablation.md").read_text()
    assert "in-sample" in md and "CV" in md and "Test uar" in md and md.count("\n| ") == 8  # header + 7 rows
    png = (out / "ablation.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(read_scores(out / "subsets" / "c3d+lstm_Test.csv")) == 20


def test_ablation_errors(runs, tmp_path):
    with pytest.raises(MmferError, match="unknown method"):
        ablate(runs["val"], out=tmp_path / "a", method="nope")
    with pytest.raises(MmferError, match="name"):
        ablate(runs["val"], out=tmp_path / "a", names="x,y")


def test_rerun_into_the_same_out_removes_outputs_it_does_not_write(runs, tmp_path, caplog):
    """A fused Test file of an earlier run, which the new weights.json does not describe, must not be left for
    `mmfer submit` to pick up; the same for ablate's subsets."""
    from mmfer.fusion import fuse

    out = tmp_path / "fuse"
    fuse(runs["val"], runs["test"], out=out, cv_folds=3)
    assert (out / "fused_Test.csv").is_file()
    report = fuse(runs["val"], None, out=out, cv_folds=3)
    assert not (out / "fused_Test.csv").exists() and "fused_Test" not in report["outputs"]
    assert "fused_Test.csv: removed" in caplog.text

    abl = tmp_path / "abl"
    ablate(runs["val"], runs["test"], out=abl, cv_folds=3, progress=False)
    assert len(list((abl / "subsets").glob("*_Test.csv"))) == 7
    ablate(runs["val"][:2], runs["test"][:2], out=abl, cv_folds=3, progress=False)
    assert sorted(p.name for p in (abl / "subsets").glob("*_Test.csv")) == [
        "audio+c3d_Test.csv", "audio_Test.csv", "c3d_Test.csv"]


def test_the_old_folds_keyword_still_works_and_says_its_new_name(runs, tmp_path):
    """fuse/ablate(folds=) was renamed cv_folds (as --cv-folds): the old keyword gives the same result, warned."""
    from mmfer.fusion import fuse

    new = fuse(runs["val"], None, out=tmp_path / "new", cv_folds=3)
    with pytest.warns(DeprecationWarning, match=r"fuse\(folds=\) is fuse\(cv_folds=\) now"):
        old = fuse(runs["val"], None, out=tmp_path / "old", folds=3)
    assert old["val_cross_validated"] == new["val_cross_validated"] and new["val_cross_validated"]["folds"] == 3
    with pytest.warns(DeprecationWarning, match=r"ablate\(folds=\) is ablate\(cv_folds=\) now"):
        rows = ablate(runs["val"][:2], None, out=tmp_path / "abl", folds=3, progress=False)
    assert len(rows) == 3


def test_the_tables_name_the_folds_val_could_hold(runs, tmp_path):
    """Four Val clips cannot make five folds: the tables say how many the estimate used, not how many were asked."""
    small = []
    for path in runs["val"]:
        t = read_scores(path)
        small.append(write_scores(tmp_path / "small" / path.parent.name / "scores_Val.csv", t.clip_ids[:4], t.labels[:4],
                                  t.probs[:4]))
    ablate(small, out=tmp_path / "abl", method="weighted", cv_folds=5, progress=False)
    md = (tmp_path / "abl" / "ablation.md").read_text()
    assert "5-fold" not in md and "of 5 folds" not in md
    assert "(4-fold CV)" in md or "(3-fold CV)" in md or "(2-fold CV)" in md



def test_ablation_keeps_each_subsets_weights_scores_and_options(runs, tmp_path):
    """A paper needs each subset's fitted weights, the cross-validated scores behind the figure it reports (for
    a confusion matrix that matches it), and the options that made the table."""
    import json

    from mmfer.fusion import fuse
    from mmfer.metrics import evaluate

    out = tmp_path / "abl"
    rows = ablate(runs["val"], runs["test"], out=out, method="weighted", cv_folds=3, seed=2, progress=False)
    by = {r["branches"]: r for r in rows}
    info = json.loads((out / "ablation.json").read_text())
    assert info["method"] == "weighted" and info["seed"] == 2 and info["cv_folds"] == 3
    assert info["inputs"]["val"] == [str(p) for p in runs["val"]] and info["labels"] == list(EMOTIONS)
    subsets = {s["branches"]: s for s in info["subsets"]}
    # the same fusion as `fuse` over that subset: same weights, same cross-validated scores
    report = fuse(runs["val"][1:], runs["test"][1:], out=tmp_path / "fuse", cv_folds=3, seed=2)
    assert subsets["c3d+lstm"]["params"]["weights"] == report["weights"]
    assert by["c3d+lstm"]["weights"] == " ".join(f"{n}:{w:.2f}" for n, w in zip(("c3d", "lstm"), report["weights"]))
    cv = read_scores(out / "subsets" / "c3d+lstm_Val_cv.csv")
    again = read_scores(tmp_path / "fuse" / "fused_Val_cv.csv")
    assert cv.clip_ids == again.clip_ids and np.allclose(cv.probs, again.probs)
    m = evaluate(cv.labels, cv.probs)
    assert m["accuracy"] == pytest.approx(by["c3d+lstm"]["val_cross_validated_accuracy"])
    assert m["accuracy"] == pytest.approx(report["val_cross_validated"]["accuracy"])
    assert m["macro_f1"] == pytest.approx(by["c3d+lstm"]["val_cross_validated_macro_f1"])
    md = (out / "ablation.md").read_text()
    assert "Options: method weighted, objective accuracy, calibrate False, seed 2, 3 cross-validation folds" in md
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no staging left behind


def test_an_interrupted_ablation_leaves_the_folder_as_it_was(runs, tmp_path, monkeypatch):
    import mmfer.fusion.ablation as ablation

    out = tmp_path / "abl"
    ablate(runs["val"], runs["test"], out=out, method="mean", cv_folds=3, progress=False)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    real, calls = ablation.fit_and_score, []

    def stopped_at_the_fourth_subset(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(ablation, "fit_and_score", stopped_at_the_fourth_subset)
    with pytest.raises(KeyboardInterrupt):
        ablate(runs["val"], runs["test"], out=out, method="weighted", cv_folds=3, progress=False)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_branch_names_that_cannot_name_files_are_refused(runs, tmp_path):
    with pytest.raises(MmferError, match=r"--names: '\.\./\.\./escaped' cannot be used: a branch name becomes part "
                                         r"of file names"):
        ablate(runs["val"][:2], out=tmp_path / "a", names="../../escaped,lmk", progress=False)
    with pytest.raises(MmferError, match=r"--names: 'a\+b' cannot be used"):
        ablate(runs["val"][:2], out=tmp_path / "a", names="a+b,c", progress=False)
    assert not [p for p in tmp_path.parent.parent.rglob("escaped*")]  # written nowhere
    assert not (tmp_path / "a").exists()
    odd = [write_scores(tmp_path / "x+y" / "scores_Val.csv", *_table(runs["val"][0])), runs["val"][1]]
    with pytest.raises(MmferError, match=r"the branch name 'x\+y', taken from .*, cannot be used.*give --names a,b,c"):
        ablate(odd, out=tmp_path / "b", progress=False)


def _table(path):
    t = read_scores(path)
    return t.clip_ids, t.labels, t.probs


def test_fuse_will_not_write_into_a_run_folder(runs, tmp_path):
    """predict --model RUN would then read the fusion instead of the run."""
    import shutil

    from mmfer.fusion import fuse

    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(runs["val"][0], run / "scores_Val.csv")
    (run / "best.pt").write_bytes(b"stand-in")
    with pytest.raises(MmferError, match=r"--out .*run: holds a trained run \(best.pt\)"):
        fuse(runs["val"], out=run, cv_folds=3)
    assert not (run / "weights.json").exists()


def test_a_val_without_a_class_is_said(runs, tmp_path, caplog):
    """uar then averages over fewer classes, and nothing tunes the fusion for the one missing (train says it too)."""
    import logging

    from mmfer.fusion import fuse

    files = []
    for path in runs["val"]:
        t = read_scores(path)
        keep = [i for i, lab in enumerate(t.labels) if lab != "Surprise"]
        files.append(write_scores(tmp_path / path.parent.name / "scores_Val.csv", [t.clip_ids[i] for i in keep],
                                  [t.labels[i] for i in keep], t.probs[keep]))
    with caplog.at_level(logging.WARNING):
        fuse(files, out=tmp_path / "f", cv_folds=3)
    assert "fuse: no labelled Val clip of Surprise: uar (mean class accuracy) averages over the 6 classes" in caplog.text


def test_a_branch_name_ablate_refuses_is_fine_for_fuse(runs, tmp_path):
    """fuse writes no file per branch: a name with '+' (an earlier fusion's file, c3d+lstm_Val.csv) stays usable."""
    from mmfer.fusion import fuse

    files = [write_scores(tmp_path / "c3d+lstm_Val.csv", *_table(runs["val"][1])), runs["val"][0]]
    assert fuse(files, out=tmp_path / "f", cv_folds=3)["branches"] == ["c3d+lstm", "audio"]


def test_a_rerun_removes_only_its_own_kinds_of_file(runs, tmp_path, caplog):
    """Stale subset files go (submit could take them for this table's); a user's own files in subsets/ stay."""
    out = tmp_path / "abl"
    ablate(runs["val"], runs["test"], out=out, cv_folds=3, progress=False)
    (out / "subsets" / "notes").mkdir()
    (out / "subsets" / "notes" / "mine.csv").write_text("a,b\n")
    (out / "subsets" / "speakers.csv").write_text("a,b\n")
    ablate(runs["val"][:2], runs["test"][:2], out=out, cv_folds=3, progress=False)
    assert sorted(p.name for p in (out / "subsets").iterdir()) == [
        "audio+c3d_Test.csv", "audio+c3d_Val_cv.csv", "audio_Test.csv", "audio_Val_cv.csv", "c3d_Test.csv",
        "c3d_Val_cv.csv", "notes", "speakers.csv"]
    assert (out / "subsets" / "notes" / "mine.csv").is_file()
    assert not list(tmp_path.glob(".abl.ablate-*"))


def test_many_subsets_lie_down_in_the_plot(tmp_path):
    """63 upright bars made a 6457 px wide image; past 12 subsets each gets a row of its own."""
    from PIL import Image

    from mmfer.plots import ABLATION_UPRIGHT, plot_ablation

    def rows(n):
        return [{"branches": f"b{i}", "val_in_sample_accuracy": 0.5, "val_cross_validated_accuracy": 0.4,
                 "val_cross_validated_uar": 0.3} for i in range(n)]

    few = Image.open(plot_ablation(rows(3), tmp_path / "few.png")).size
    many = Image.open(plot_ablation(rows(63), tmp_path / "many.png", classes=6)).size
    assert few[0] > few[1] and many[1] > many[0] and many[0] < 1500  # tall, not a strip
    assert ABLATION_UPRIGHT == 12


def test_a_vote_has_no_weights_in_the_table(runs, tmp_path):
    import json

    ablate(runs["val"][:2], out=tmp_path / "abl", method="majority", cv_folds=3, progress=False)
    subsets = json.loads((tmp_path / "abl" / "ablation.json").read_text())["subsets"]
    assert [s["weights"] for s in subsets] == [None] * 3
    with open(tmp_path / "abl" / "ablation.csv", newline="") as f:
        assert [r["weights"] for r in csv.DictReader(f)] == [""] * 3
