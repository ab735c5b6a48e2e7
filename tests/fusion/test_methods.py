"""Fusion methods on generated scores whose best combination is known."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mmfer.errors import MmferError
from mmfer.fusion import (
    METHODS,
    FusionModel,
    PerClassWeights,
    Stacker,
    WeightedMean,
    apply_temperature,
    branch_name,
    cross_validate_method,
    fit_temperature,
    fuse,
)
from mmfer.fusion.methods import candidate_weights, simplex_grid, weighted_mean
from mmfer.labels import EMOTIONS
from mmfer.scores import read_scores, write_scores


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def informative(y: np.ndarray, strength: float, rng: np.random.Generator, *, scale: float = 1.0) -> np.ndarray:
    logits = rng.normal(size=(len(y), 7))
    logits[np.arange(len(y)), y] += strength
    return softmax(scale * logits)


def noise(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.dirichlet(np.ones(7), size=n)


def acc(p: np.ndarray, y: np.ndarray) -> float:
    return float((p.argmax(1) == y).mean())


def known_pair(n: int, rng: np.random.Generator, w: float = 0.3):
    """Branches A, B with w*A + (1-w)*B = p*, which is right on every clip by a small margin; any other
    grid weight pushes about half the clips to a wrong class."""
    y = rng.integers(0, 7, n)
    j = (y + rng.integers(1, 7, n)) % 7
    rows = np.arange(n)
    p = np.full((n, 7), 0.0)
    p[rows, y], p[rows, j] = 0.30, 0.28
    rest = (1 - p.sum(1)) / 5
    p[p == 0] = np.repeat(rest, 5)
    d = np.zeros((n, 7))
    s = rng.choice([-1.0, 1.0], n)
    d[rows, j], d[rows, y] = s * 0.3, -s * 0.3
    a = p + (1 - w) * d
    b = p - w * d
    assert a.min() >= 0 and b.min() >= 0
    return y, a, b


def test_simplex_grid_covers_simplex():
    g = simplex_grid(3, 0.1)
    assert len(g) == 66  # C(12, 2)
    assert np.allclose(g.sum(1), 1)
    assert g.min() >= 0
    r = candidate_weights(6, samples=50, seed=1)
    # uniform, singles, the grids of every 2, 3 and 4 branches (inner points: 9, 36, 84), 50 random points
    assert r.shape == (1 + 6 + 15 * 9 + 20 * 36 + 15 * 84 + 50, 6) and np.allclose(r.sum(1), 1)
    assert np.array_equal(r, candidate_weights(6, samples=50, seed=1))
    assert len(np.unique(r[:-50], axis=0)) == len(r) - 50  # no point twice
    assert len(candidate_weights(100, samples=50)) == 1 + 100 + 50  # past the cap: no face grid at all


def test_more_branches_never_read_below_two_of_them(rng):
    """Six branches, two of which together beat every single one: the search over six must find at least what
    the search over those two finds (random points of the whole simplex alone had missed it)."""
    y, a, b = known_pair(300, rng, w=0.3)
    noise = [rng.dirichlet(np.ones(7), size=300) for _ in range(4)]
    pair = WeightedMean().fit([a, b], y)
    six = WeightedMean().fit([*noise[:2], a, *noise[2:], b], y)
    assert six.score_ >= pair.score_
    assert np.allclose(six.weights[[0, 1, 3, 4]], 0) and np.allclose(six.weights[[2, 5]], pair.weights)


def test_weighted_finds_known_best_weights(rng):
    y, a, b = known_pair(300, rng, w=0.3)
    m = WeightedMean().fit([a, b], y)
    assert np.allclose(m.weights, [0.3, 0.7])
    assert acc(m.predict([a, b]), y) == 1.0
    assert acc(a, y) < 0.8 and acc(b, y) < 0.8


def test_weighted_ignores_noise_branch(rng):
    y = rng.integers(0, 7, 400)
    a, b, c = informative(y, 2.0, rng), noise(400, rng), informative(y, 2.0, rng)
    m = WeightedMean().fit([a, b, c], y)
    assert m.weights[1] <= 0.1
    assert abs(m.weights[0] - m.weights[2]) <= 0.3
    m_uar = WeightedMean(objective="uar").fit([a, b, c], y)
    assert m_uar.weights[1] <= 0.1


def test_random_search_beyond_four_branches(rng):
    y = rng.integers(0, 7, 300)
    branches = [informative(y, 2.0, rng)] + [noise(300, rng) for _ in range(4)]
    m = WeightedMean(samples=500).fit(branches, y)
    assert m.params()["search"] == "subset grids + random"
    assert m.weights[0] >= 0.6
    assert acc(m.predict(branches), y) >= acc(branches[0], y)


@pytest.mark.parametrize("method", list(METHODS))
def test_each_method_matches_best_single_branch(method, rng):
    y = rng.integers(0, 7, 350)
    branches = [informative(y, s, rng) for s in (1.6, 1.6, 1.9)]
    best = max(acc(p, y) for p in branches)
    model = FusionModel(method).fit(branches, y)
    fused = model.predict(branches)
    assert fused.shape == (350, 7)
    assert np.allclose(fused.sum(1), 1)
    assert acc(fused, y) >= best
    json.dumps(model.params())  # plain numbers only


@pytest.mark.parametrize("method", ["weighted", "per_class", "stacker", "exp_weighted"])
def test_cross_validated_not_above_in_sample_on_noise(method):
    for seed in range(3):
        rng = np.random.default_rng(100 + seed)
        y = rng.integers(0, 7, 210)
        branches = [noise(210, rng) for _ in range(3)]
        model = FusionModel(method, seed=seed).fit(branches, y)
        in_sample = acc(model.predict(branches), y)
        cv = cross_validate_method(method, branches, y, folds=5, seed=seed)
        assert cv["folds"] == 5 and len(cv["fold_accuracy"]) == 5
        assert cv["accuracy"] <= in_sample
        assert cv["accuracy"] < 0.3  # chance is 1/7


def test_per_class_weights_undo_a_class_bias(rng):
    y = rng.integers(0, 7, 500)
    neutral = EMOTIONS.index("Neutral")
    logits = rng.normal(size=(500, 7))
    logits[np.arange(500), y] += 2.5
    logits[:, neutral] += 1.8  # branch A over-predicts Neutral
    a = softmax(logits)
    b = informative(y, 1.2, rng)
    glob = WeightedMean().fit([a, b], y)
    pc = PerClassWeights().fit([a, b], y)
    assert pc.weights.shape == (2, 7)
    assert acc(pc.predict([a, b]), y) > acc(glob.predict([a, b]), y) + 0.02
    others = np.delete(pc.weights[0], neutral)
    assert pc.weights[0, neutral] < others.mean()


def test_stacker_learns_a_permuted_branch(rng):
    y = rng.integers(0, 7, 400)
    perm = np.roll(np.arange(7), 2)
    a = informative(y, 2.5, rng)[:, perm]  # right information, wrong columns
    b = noise(400, rng)
    assert acc(a, y) < 0.1
    cv_stack = cross_validate_method("stacker", [a, b], y, folds=4, seed=0)
    cv_weighted = cross_validate_method("weighted", [a, b], y, folds=4, seed=0)
    assert cv_stack["accuracy"] > 0.7
    assert cv_weighted["accuracy"] < 0.3
    assert isinstance(Stacker().fit([a, b], y).params()["coef"], list)


def test_stacker_leaves_a_clip_no_branch_saw_uniform(rng):
    # a clip that failed preprocessing is uniform in every branch; the stacker must neither learn a label for
    # "nobody saw it" from Val nor name a class for such a Test clip (submit fills and lists those)
    y = rng.integers(0, 7, 120)
    a, b = informative(y, 2.0, rng), informative(y, 1.0, rng)
    a[:5], b[:5] = 1 / 7, 1 / 7
    y[:5] = 3  # every unseen Val clip labelled Happy: a pattern to learn if they were fitted
    stacker = Stacker().fit([a, b], y)
    ua, ub = np.full((2, 7), 1 / 7), np.full((2, 7), 1 / 7)
    ua[1], ub[1] = informative(np.array([3]), 2.0, rng)[0], 1 / 7  # the second clip has a face, no sound
    fused = stacker.predict([ua, ub])
    assert np.allclose(fused[0], 1 / 7)
    assert not np.allclose(fused[1], 1 / 7)
    with pytest.raises(MmferError, match="no Val clip was scored"):
        Stacker().fit([a[:5], b[:5]], y[:5])


def test_temperature_calibration_lowers_nll(rng):
    y = rng.integers(0, 7, 400)
    over = informative(y, 1.0, rng, scale=4.0)  # over-confident
    t = fit_temperature(over, y)
    assert t > 1.5

    def nll(p):
        return -np.log(p[np.arange(len(y)), y]).mean()

    assert nll(apply_temperature(over, t)) < nll(over) - 0.1
    assert np.array_equal(apply_temperature(over, t).argmax(1), over.argmax(1))
    model = FusionModel("weighted", calibrate=True).fit([over, informative(y, 1.0, rng)], y)
    assert len(model.params()["temperatures"]) == 2


def test_unknown_method_and_bad_labels(rng):
    with pytest.raises(MmferError, match="unknown method"):
        FusionModel("median")
    with pytest.raises(MmferError, match="labels"):
        WeightedMean().fit([noise(5, rng)], np.array([0, 1, 2, 3]))
    probs = [noise(5, rng), noise(5, rng)]
    for labels in (np.array(["Angry"] * 5), np.array([0, 1, 2, 3, 7])):  # names, or a class 7
        with pytest.raises(MmferError, match="labels must be 5 class indices 0-6"):
            FusionModel("weighted").fit(probs, labels)
    with pytest.raises(MmferError, match="fit the 'weighted' fusion on Val scores before predict"):
        FusionModel("weighted").predict(probs)  # returned numbers, fused with no weights
    with pytest.raises(MmferError, match=r"weights of shape \(2,\) for 3 branches"):
        weighted_mean(np.stack([*probs, probs[0]]), np.ones(2))


# ---------------------------------------------------------------- fuse(): files in, files out
def _write_branch(dirpath, name, split, ids, labels, probs):
    return write_scores(dirpath / name / f"scores_{split}.csv", ids, labels, probs)


def _make_runs(tmp_path, rng, n_val=140, n_test=30):
    y = rng.integers(0, 7, n_val)
    val_ids = [f"v{i:04d}" for i in range(n_val)]
    test_ids = [f"t{i:04d}" for i in range(n_test)]
    labels = [EMOTIONS[i] for i in y]
    paths = {"val": [], "test": []}
    for name, probs in (("audio", noise(n_val, rng)), ("c3d", informative(y, 2.5, rng))):
        paths["val"].append(_write_branch(tmp_path, name, "Val", val_ids, labels, probs))
        paths["test"].append(_write_branch(tmp_path, name, "Test", test_ids, [None] * n_test, noise(n_test, rng)))
    return paths


def test_fuse_writes_weights_and_fused_files(tmp_path, rng):
    paths = _make_runs(tmp_path, rng)
    out = tmp_path / "fuse"
    rep = fuse(paths["val"], paths["test"], out=out, method="weighted", cv_folds=4, seed=1)
    saved = json.loads((out / "weights.json").read_text())
    assert saved["labels"] == list(EMOTIONS)
    assert saved["branches"] == ["audio", "c3d"]
    assert saved["weights"][1] >= 0.8
    assert set(saved["val_in_sample"]) >= {"accuracy", "uar"}
    assert set(saved["val_cross_validated"]) >= {"accuracy", "uar", "folds"}
    assert saved["val_cross_validated"]["folds"] == 4
    assert "cross" in saved["note"]
    assert saved["inputs"]["val"] == [str(p) for p in paths["val"]]
    assert rep["val_in_sample"] == saved["val_in_sample"]
    fv, ft = read_scores(out / "fused_Val.csv"), read_scores(out / "fused_Test.csv")
    assert len(fv) == 140 and len(ft) == 30
    assert fv.labels == read_scores(paths["val"][0]).labels
    assert abs(saved["val_in_sample"]["accuracy"] - float(np.mean(
        [p == l for p, l in zip(fv.predictions, fv.labels)]))) < 1e-9


def test_fuse_names_and_calibration(tmp_path, rng):
    paths = _make_runs(tmp_path, rng)
    rep = fuse(paths["val"], None, out=tmp_path / "f2", method="per_class", names="a,v", calibrate=True, cv_folds=3)
    assert rep["branches"] == ["a", "v"]
    assert len(rep["temperatures"]) == 2
    assert np.array(rep["weights"]).shape == (2, 7)
    assert not (tmp_path / "f2" / "fused_Test.csv").exists()
    assert branch_name("runs/c3d/scores_Val.csv") == "c3d"
    assert branch_name("A_Val.csv") == "A" and branch_name("A_Test.csv") == "A"
    # one file given as a plain path (str or Path) is one branch, not a branch per character of its name
    for one, test in ((str(paths["val"][1]), str(paths["test"][1])), (Path(paths["val"][1]), None)):
        single = fuse(one, test, out=tmp_path / f"one_{test is None}", cv_folds=3)
        assert single["branches"] == ["c3d"] and single["weights"] == [1.0]


def test_cross_validation_folders_fuse_by_their_folder_names(tmp_path, rng, caplog):
    """CV/scores_oof.csv and CV/scores_Test_ensemble.csv are named by their folder, as RUN/scores_Val.csv is: two
    such folders fuse without --names, and Test files listed in another order pair by branch. Val given as Test
    is said."""
    import shutil

    paths = _make_runs(tmp_path, rng)
    val, test = [], []
    for name, v, t in zip(("stats_cv", "cnn_cv"), paths["val"], paths["test"]):
        (tmp_path / name).mkdir()
        val.append(shutil.copy(v, tmp_path / name / "scores_oof.csv"))
        test.append(shutil.copy(t, tmp_path / name / "scores_Test_ensemble.csv"))
    assert [branch_name(p) for p in val + test] == ["stats_cv", "cnn_cv"] * 2
    rep = fuse(val, test[::-1], out=tmp_path / "cv_fuse", cv_folds=3)
    assert rep["branches"] == ["stats_cv", "cnn_cv"]
    assert read_scores(tmp_path / "cv_fuse" / "fused_Test.csv").clip_ids[0] == "t0000"
    with caplog.at_level("WARNING"):
        fuse(val, val, out=tmp_path / "same", cv_folds=3)
    assert "140 of the 140 Test clips are Val clips too" in caplog.text


def test_fuse_rejects_mismatched_files(tmp_path, rng):
    paths = _make_runs(tmp_path, rng)
    t = read_scores(paths["val"][1])
    short = write_scores(tmp_path / "short_Val.csv", t.clip_ids[:-3], t.labels[:-3], t.probs[:-3])
    with pytest.raises(MmferError, match=r"do not cover the same clips.*v0139"):
        fuse([paths["val"][0], short], out=tmp_path / "x", names="a,b")
    flipped = list(t.labels)
    flipped[5] = "Happy" if flipped[5] != "Happy" else "Sad"
    bad = write_scores(tmp_path / "bad_Val.csv", t.clip_ids, flipped, t.probs)
    with pytest.raises(MmferError, match=r"label disagreement.*v0005"):
        fuse([paths["val"][0], bad], out=tmp_path / "x", names="a,b")
    # Test files in another order than Val: paired by branch, with or without --names, never by position
    fuse(paths["val"], paths["test"], out=tmp_path / "right", cv_folds=3)
    for i, names in enumerate((None, "p,q")):
        fuse(paths["val"], paths["test"][::-1], out=tmp_path / f"swapped{i}", cv_folds=3, names=names)
        assert (tmp_path / f"swapped{i}" / "fused_Test.csv").read_text().splitlines()[1:] == \
            (tmp_path / "right" / "fused_Test.csv").read_text().splitlines()[1:]
    other = tmp_path / "other"
    other.mkdir()
    (other / "scores_Test.csv").write_bytes(Path(paths["test"][1]).read_bytes())
    with pytest.raises(MmferError, match="same order"):  # names that do not match: the user must say
        fuse(paths["val"], [paths["test"][0], other / "scores_Test.csv"], out=tmp_path / "x")
    with pytest.raises(MmferError, match="Test file"):
        fuse(paths["val"], paths["test"][:1], out=tmp_path / "x")
    with pytest.raises(MmferError, match=r"2 Val score file\(s\) but 1 Test score file\(s\); no Test file for c3d;"):
        fuse(paths["val"], paths["test"][:1], out=tmp_path / "x")  # the branch without one is named
    with pytest.raises(MmferError, match=r"1 Val score file\(s\) but 2 Test score file\(s\); no Val file for c3d;"):
        fuse(paths["val"][:1], paths["test"], out=tmp_path / "x")  # and the other way round
    with pytest.raises(MmferError, match="appear twice"):
        fuse(paths["val"], out=tmp_path / "x", names="a,a")


def test_uniform_fused_rows_are_no_prediction_in_the_objective():
    """Issue 20, class 2: a uniform fused row (no branch saw the clip) counts as wrong while weights are
    searched, as in evaluate, instead of as the first class."""
    from mmfer.fusion.methods import objective_scores

    fused = np.vstack([np.full((2, 7), 1 / 7), np.eye(7)[[5, 5]]])
    y = np.array([0, 0, 5, 5])
    assert objective_scores(fused, y) == 0.5 and objective_scores(fused, y, "uar") == 0.5


def test_one_rule_for_a_missing_branch_in_fuse_and_predict(tmp_path):
    """Issue 22: ``mmfer fuse`` (a branch's uniform row: it could not see the clip) and predict (no scores from a
    branch) fuse a clip the same way: the missing branch's weight is left out and the others' renormalised."""
    from mmfer.fusion.methods import WEIGHTED_MEAN_METHODS, build_fuser, weighted_mean

    rng = np.random.default_rng(0)
    face, audio = rng.dirichlet(np.ones(7), 5), rng.dirichlet(np.ones(7), 5)
    audio[2] = 1 / 7  # the audio branch heard nothing in clip 2
    fused = weighted_mean(np.stack([face, audio]), np.array([0.6, 0.4]))
    np.testing.assert_allclose(fused[2], face[2])  # not pulled towards uniform
    np.testing.assert_allclose(fused[0], (0.6 * face[0] + 0.4 * audio[0]) / 1.0)
    none = weighted_mean(np.full((2, 1, 7), 1 / 7), np.array([0.6, 0.4]))
    np.testing.assert_allclose(none, 1 / 7)  # nobody saw it: uniform
    off = weighted_mean(np.stack([face, audio]), np.array([0.0, 1.0]))
    np.testing.assert_allclose(off[2], face[2])  # the only branch that saw it counts, though its weight is 0
    y = rng.integers(0, 7, 5)
    for method in WEIGHTED_MEAN_METHODS:
        f = build_fuser(method).fit([face, audio], y)
        w = np.asarray(f.params()["weights"], float)
        whole = w.sum(axis=0) if w.ndim == 2 else np.ones(7)  # per_class: the class balance of all weights
        expected = whole * face[2] / (whole * face[2]).sum()
        np.testing.assert_allclose(f.predict([face, audio])[2], expected, atol=1e-9, err_msg=method)
        full = f.predict([face, audio])[0]  # with both there, the plain weighted sum as before
        w2 = w if w.ndim == 2 else np.repeat(w[:, None], 7, axis=1)
        ref = (w2[0] * face[0] + w2[1] * audio[0])
        np.testing.assert_allclose(full, ref / ref.sum(), atol=1e-9, err_msg=method)


def test_majority_vote_hears_only_the_branches_that_saw_the_clip():
    """A uniform row (the branch saw nothing) casts no vote: its argmax is Angry by position alone. A clip no
    branch saw stays uniform, as with the weighted methods."""
    from mmfer.fusion.methods import MajorityVote

    uniform = np.full(7, 1 / 7)
    sad, happy = np.eye(7)[5] * 0.9 + 0.1 / 7, np.eye(7)[3] * 0.9 + 0.1 / 7
    face = np.stack([sad, uniform, uniform])
    audio = np.stack([uniform, happy, uniform])
    lm = np.stack([uniform, uniform, uniform])
    out = MajorityVote().fit([face, audio, lm], np.array([5, 3, 0])).predict([face, audio, lm])
    assert [EMOTIONS[i] for i in out[:2].argmax(1)] == ["Sad", "Happy"]  # it was Angry: two uniform votes
    np.testing.assert_allclose(out[2], uniform)  # no branch saw it: no prediction
    np.testing.assert_allclose(out.sum(1), 1.0)


def test_fold_accuracy_counts_a_clip_no_branch_saw_as_wrong_as_the_pooled_figure_does():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(7), 6)
    a = softmax(rng.normal(size=(42, 7)) + 3 * np.eye(7)[y])
    b = softmax(rng.normal(size=(42, 7)) + 3 * np.eye(7)[y])
    a[0] = b[0] = 1 / 7  # clip 0, an Angry one: nobody saw it, so argmax would call it right
    cv = cross_validate_method("mean", [a, b], y, folds=3, seed=0)
    pooled_right = cv["accuracy"] * len(y)
    assert sum(acc * n for acc, n in zip(cv["fold_accuracy"], (14, 14, 14))) == pytest.approx(pooled_right)


def test_a_face_frame_run_enters_the_fusion_through_predict_kept_in_its_folder(tmp_path, rng, caplog):
    """A face-frame run scores AFEW clips through `mmfer predict --model RUN`: its CSV, kept in the run folder
    (RUN/predict_Val.csv), is named by the folder like RUN/scores_Val.csv, and predict's error row (an unreadable
    file) reads as a branch's row for a clip it cannot see, uniform, with a warning (it stopped fuse: "class
    scores must be numbers")."""
    import csv

    from mmfer.labels import EMOTIONS

    paths = _make_runs(tmp_path, rng)
    t = read_scores(paths["val"][1])
    run = tmp_path / "face_frame"
    run.mkdir()
    with open(run / "predict_Val.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "clip_id", "predicted", "label", *EMOTIONS, "face_ratio", "modalities", "warning"])
        for i, (c, y, p) in enumerate(zip(t.clip_ids, t.labels, t.probs)):
            w.writerow([f"Val/{y}/{c}.avi", c, "" if i == 3 else EMOTIONS[int(p.argmax())], y,
                        *([""] * 7 if i == 3 else [f"{v:.6f}" for v in p]), "" if i == 3 else "1.000",
                        "" if i == 3 else "face", "not a video file" if i == 3 else ""])
    assert branch_name(run / "predict_Val.csv") == "predict"  # not yet a run: named by the file
    with caplog.at_level("WARNING"):
        table = read_scores(run / "predict_Val.csv")
    assert np.allclose(table.probs[3], 1 / 7) and np.allclose(table.probs[4], t.probs[4], atol=1e-6)
    assert "1 error row(s) of `mmfer predict`" in caplog.text and t.clip_ids[3] in caplog.text
    (run / "best.pt").write_bytes(b"")  # a run folder: predict --model FUSE finds it
    assert branch_name(run / "predict_Val.csv") == "face_frame"
    rep = fuse([paths["val"][0], run / "predict_Val.csv"], out=tmp_path / "ff", cv_folds=3)
    assert rep["branches"][1] == "face_frame"
    # the run's own scores_Val.csv (of its face images) beside it would be a second face_frame: which to leave out
    (run / "scores_Val.csv").write_bytes(Path(paths["val"][1]).read_bytes())
    with pytest.raises(MmferError, match=r"scores_Val.csv and .*predict_Val.csv are both of run face_frame"):
        fuse([paths["val"][0], run / "scores_Val.csv", run / "predict_Val.csv"], out=tmp_path / "ff2", cv_folds=3)
    with pytest.raises(MmferError, match=r"both of run face_frame"):  # not "3 Val score file(s) but 2 Test ..."
        fuse([paths["val"][0], run / "scores_Val.csv", run / "predict_Val.csv"], test_paths=paths["test"][:2],
             out=tmp_path / "ff3", cv_folds=3)
    # predict's CSV elsewhere (predictions.csv in the working folder) is named by its file, not by that folder
    assert branch_name(tmp_path / "predictions_Val.csv") == "predictions"
    assert np.isnan(read_scores(run / "predict_Val.csv", for_evaluate=True).probs[3]).all()  # evaluate: wrong
