"""Metrics agree with scikit-learn; missing predictions count wrong; out-of-set labels are excluded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score, recall_score

from mmfer.errors import MmferError
from mmfer.labels import EMOTIONS
from mmfer.metrics import evaluate, evaluate_file, evaluate_scores, format_confusion, format_report, truth_from
from mmfer.scores import ScoreTable, read_scores, write_scores


@pytest.mark.filterwarnings("ignore:y_pred contains classes")
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 6, 200)  # class 6 absent from the truth
    probs = rng.dirichlet(np.ones(7), 200)
    probs[np.arange(200), y] += rng.random(200) * 0.6
    pred = probs.argmax(1)
    m = evaluate([EMOTIONS[i] for i in y], probs)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["uar"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert np.array_equal(m["confusion"], confusion_matrix(y, pred, labels=range(7)))
    rec = recall_score(y, pred, labels=range(6), average=None)
    assert [m["per_class_recall"][e] for e in EMOTIONS[:6]] == pytest.approx(list(rec))
    assert m["per_class_recall"]["Surprise"] is None
    assert m["n"] == 200 and m["missing"] == [] and m["excluded"] == 0
    # names and indices as predictions give the same result
    assert evaluate(list(y), [EMOTIONS[i] for i in pred])["accuracy"] == m["accuracy"]


def test_missing_counts_wrong_and_out_of_set_excluded():
    labels = ["Happy", "Sad", "calm", None, "Angry", "Happy"]
    preds = ["Happy", None, "Sad", "Sad", "Angry", "Sad"]
    m = evaluate(labels, preds, clip_ids=["a", "b", "c", "d", "e", "f"])
    assert m["n"] == 4 and m["excluded"] == 2
    assert m["missing"] == ["b"]
    assert m["accuracy"] == pytest.approx(2 / 4)
    assert m["per_class_recall"]["Sad"] == 0.0  # the one Sad clip had no prediction
    assert m["uar"] == pytest.approx((0.5 + 0.0 + 1.0) / 3)
    assert np.asarray(m["confusion"]).sum() == 3  # the missing clip is in no cell
    with pytest.raises(MmferError, match="none of the"):
        evaluate(["calm", None], ["Happy", "Sad"])


def test_evaluate_scores_with_external_truth():
    table = ScoreTable(["a", "b", "z"], [None, None, None], np.eye(7)[[3, 5, 0]])
    m = evaluate_scores(table, {"a": "Happy", "b": "Angry", "c": "Fear", "d": None})
    assert m["n"] == 3 and m["excluded"] == 1
    assert m["missing"] == ["c"]
    assert m["accuracy"] == pytest.approx(1 / 3)
    assert m["not_in_truth"] == 1
    # ids of one clip written two ways (another system kept the extension, or upper case): each row would count
    # as missing and the figure read low with exit 0; refused, naming the pairs
    for scored in (["a.mp4", "b", "c"], ["A", "b", "c"]):
        with pytest.raises(MmferError, match=f"1 clip.s. are named differently .*'{scored[0]}' .scores. and 'a' "
                                             r"\(labels\)"):
            evaluate_scores(ScoreTable(scored, [None] * 3, np.eye(7)[[3, 5, 0]]), {"a": "Happy", "b": "Angry"})
    kept = evaluate_scores(ScoreTable(["a.v2", "a"], [None] * 2, np.eye(7)[[3, 5]]), {"a": "Happy"})
    assert kept["not_in_truth"] == 1  # a row of another clip whose id only looks alike (no media extension, 'a' scored)


def test_label_sources(tmp_path, cremad_dir):
    ids = [p.stem for p in sorted(cremad_dir.glob("*.flv"))]
    probs = np.eye(7)[[0, 1, 2, 3, 4, 4]]  # the last one (SAD) wrong
    path = write_scores(tmp_path / "s.csv", ids, [None] * 6, probs)
    m = evaluate_file(path, labels_from="cremad", png=tmp_path / "c.png")
    assert m["n"] == 6 and m["accuracy"] == pytest.approx(5 / 6)
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"

    rav = ["01-01-05-01-01-01-01", "01-01-02-01-01-01-01", "01-01-03-02-01-01-02"]  # angry, calm, happy
    path = write_scores(tmp_path / "r.csv", rav, [None] * 3, np.eye(7)[[0, 4, 4]])
    m = evaluate_file(path, labels_from="ravdess")
    assert m["excluded"] == 1 and m["n"] == 2 and m["accuracy"] == 0.5

    # folder labels under --root: unscored videos count as missing, calm folders are excluded
    for rel in ("Happy/x1.avi", "Sad/x2.avi", "Sad/x3.avi", "calm/x4.avi"):
        (tmp_path / "root" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "root" / rel).write_bytes(b"")
    path = write_scores(tmp_path / "f.csv", ["x1", "x2", "x4"], [None] * 3, np.eye(7)[[3, 5, 0]])
    m = evaluate_file(path, labels_from="folder", root=tmp_path / "root")
    assert m["n"] == 3 and m["excluded"] == 1 and m["missing"] == ["x3"]
    assert m["accuracy"] == pytest.approx(2 / 3)

    truth_csv = tmp_path / "truth.csv"
    truth_csv.write_text("clip_id,label\nx1,happy\nx2,anger\n")
    assert truth_from(str(truth_csv), table=read_scores(path)) == {"x1": "Happy", "x2": "Angry"}
    truth_csv.write_text("clip_id,label\nx1,happy\nx2,anger\nx1,Happy\n")  # the same label twice: fine
    assert truth_from(str(truth_csv), table=read_scores(path)) == {"x1": "Happy", "x2": "Angry"}
    truth_csv.write_text("clip_id,label\nx1,happy\nx2,anger\nx1,sad\n")  # two labels: which is true?
    with pytest.raises(MmferError, match=r"truth.csv:4: clip x1 is labelled Sad here and Happy on an earlier line"):
        truth_from(str(truth_csv), table=read_scores(path))
    # calm is excluded and counted whether the file names clips by id or by path (by path it was dropped, and
    # its clip counted as having no true label)
    for name, text in (("ids.csv", "clip_id,label\nx1,happy\nx2,sad\nx4,calm\n"),
                       ("paths.csv", "path,label\nroot/Happy/x1.avi,happy\nroot/Sad/x2.avi,sad\nroot/calm/x4.avi,calm\n")):
        (tmp_path / name).write_text(text)
        m = evaluate_file(path, labels_from=str(tmp_path / name))
        assert (m["n"], m["excluded"], m["accuracy"]) == (2, 1, 1.0), name
    # a file whose folder is no emotion (a sub-folder) is excluded, as predict's report excludes it (evaluate
    # stopped on it); when no file has a label this way, that is an error
    (tmp_path / "root" / "Sad" / "sub").mkdir()
    (tmp_path / "root" / "Sad" / "sub" / "x5.avi").write_bytes(b"")
    path5 = write_scores(tmp_path / "f5.csv", ["x1", "x2", "x3", "x4", "x5"], [None] * 5, np.eye(7)[[3, 5, 5, 0, 5]])
    m = evaluate_file(path5, labels_from="folder", root=tmp_path / "root")
    assert (m["n"], m["excluded"], m["accuracy"]) == (3, 2, 1.0)
    with pytest.raises(MmferError, match="no file has a label this way"):
        evaluate_file(path5, labels_from="folder", root=tmp_path / "root" / "Sad" / "sub")
    with pytest.raises(MmferError, match="needs --root"):
        truth_from("folder", table=read_scores(path))
    # an AFEW root: the labels come from the split that holds the scored clips, not from every split's files
    for rel in ("Train/Happy/t1.avi", "Train/Sad/t2.avi", "Val/Happy/v1.avi", "Val/Sad/v2.avi", "Test/u1.avi"):
        (tmp_path / "afew" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "afew" / rel).write_bytes(b"")
    val = write_scores(tmp_path / "val.csv", ["v1", "v2"], [None] * 2, np.eye(7)[[3, 3]])
    m = evaluate_file(val, labels_from="folder", root=tmp_path / "afew")
    assert (m["n"], m["excluded"], m["missing"], m["accuracy"]) == (2, 0, [], 0.5)
    (tmp_path / "afew" / "Train/Happy/t3.avi").write_bytes(b"")
    mixed = write_scores(tmp_path / "mixed.csv", ["v1", "t1"], [None] * 2, np.eye(7)[[3, 3]])
    with pytest.raises(MmferError, match=r"holds the splits Train, Val, Test.*in Train \(33% of it\), Val \(50% of "
                                         r"it\); give the split"):
        evaluate_file(mixed, labels_from="folder", root=tmp_path / "afew")
    # out-of-fold scores of --folds pool Train and Val: both splits, every file of each (was refused, and the
    # suggested --root .../Val left half the rows out)
    oof = write_scores(tmp_path / "oof.csv", ["v1", "v2", "t1", "t2"], [None] * 4, np.eye(7)[[3, 5, 3, 3]])
    m = evaluate_file(oof, labels_from="folder", root=tmp_path / "afew")
    assert (m["n"], m["missing"], m["not_in_truth"], m["accuracy"]) == (5, ["t3"], 0, 0.6)
    m = evaluate_file(oof, labels_from="folder", root=tmp_path / "afew" / "Val")
    assert m["not_in_truth"] == 2 and "score rows with no true label in the label source, ignored: 2" in \
        format_report(m).splitlines()[0]
    # the scores of a branch trained on a file tree name clips by their path under the split (Happy/v1): found the
    # same way, in the AFEW root or the split itself (every clip was "no true label", 0% accuracy, exit 0)
    for rel in ("Val/Happy/v1.wav", "Val/Sad/v2.wav"):  # the sound beside the videos (ravdess_to_afew --audio)
        (tmp_path / "afew" / rel).write_bytes(b"")
    tree = write_scores(tmp_path / "tree.csv", ["Happy/v1", "Sad/v2"], [None] * 2, np.eye(7)[[3, 3]])
    for where in (tmp_path / "afew", tmp_path / "afew" / "Val"):
        m = evaluate_file(tree, labels_from="folder", root=where)  # the videos are not this branch's clips
        assert (m["n"], m["missing"], m["accuracy"]) == (2, [], 0.5), where
    with pytest.raises(MmferError, match="not one of"):
        truth_from("nowhere.csv", table=read_scores(path))


def test_format_confusion():
    conf = np.zeros((7, 7), dtype=int)
    conf[3, 3], conf[3, 5] = 8, 2
    text = format_confusion(conf)
    lines = text.splitlines()
    assert len(lines) == 8
    assert lines[4].startswith("Happy") and "0.800" in lines[4]
    assert lines[1].startswith("Angry") and lines[1].rstrip().endswith("-")


def test_folder_labels_for_image_and_audio_trees(tmp_path):
    """An evaluation tool scores `mmfer predict faces/` with --labels-from folder --root faces/: images and
    audio are listed like videos; without --root, a predictions CSV's path column gives each row's folder."""
    root = tmp_path / "faces"
    files = {"Happy/a1.png": 3, "Sad/a2.jpg": 5, "Angry/s1.wav": 0, "Fear/s2.flac": 3}
    for rel in files:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"")
    (root / "notes.txt").write_text("not media")
    ids = [Path(r).stem for r in files]
    probs = np.eye(7)[list(files.values())]  # the last one wrong (Fear predicted Happy)
    path = write_scores(tmp_path / "p.csv", ids, [None] * 4, probs,
                        extra={"path": [str(root / r) for r in files]})
    by_root = evaluate_file(path, labels_from="folder", root=root)
    assert by_root["n"] == 4 and by_root["accuracy"] == pytest.approx(3 / 4) and not by_root["missing"]
    by_path = evaluate_file(path, labels_from="folder")
    assert by_path["n"] == 4 and by_path["accuracy"] == pytest.approx(3 / 4)
    (tmp_path / "empty").mkdir()
    with pytest.raises(MmferError, match="no video, image or audio files"):
        truth_from("folder", table=read_scores(path), root=tmp_path / "empty")


# ---------------------------------------------------------------- issue 20: one meaning per column, no prediction
def _predictions_csv(tmp_path, rows, *, truths=None):
    """A predictions CSV as `mmfer predict` writes it: rows of (relative path, probabilities or None)."""
    from mmfer.data.cache import clip_id_from_name
    from mmfer.predict import Prediction, write_predictions

    preds = []
    for rel, probs in rows:
        path = tmp_path / "faces" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
        preds.append(Prediction(path=str(path), clip_id=clip_id_from_name(path.stem), kind="image",
                                probs=None if probs is None else np.asarray(probs, float),
                                modalities="" if probs is None else "face"))
    return write_predictions(tmp_path / "p.csv", preds, truths)


def test_predict_csv_has_no_label_column_and_evaluate_refuses_it_without_truth(tmp_path):
    """Class 1: predict's prediction is `predicted`; `label` is only a truth. A predictions file alone has no
    truth, so evaluate refuses it, naming the options, instead of scoring predictions against themselves."""
    from mmfer.predict import PREDICTION_COLUMNS

    assert "predicted" in PREDICTION_COLUMNS and "label" not in PREDICTION_COLUMNS
    path = _predictions_csv(tmp_path, [("Angry/a.jpg", np.eye(7)[0]), ("Sad/b.jpg", np.eye(7)[0]),
                                       ("Sad/c.jpg", np.eye(7)[5])])
    with pytest.raises(MmferError, match="--labels-from folder --root"):
        evaluate_file(path)
    assert evaluate_file(path, labels_from="folder", root=tmp_path / "faces")["accuracy"] == pytest.approx(2 / 3)
    # a file of an older predict, whose label column held the prediction, is refused too
    old = tmp_path / "old.csv"
    old.write_text(path.read_text().replace("predicted", "label", 1))
    with pytest.raises(MmferError, match="older `mmfer predict`.*--labels-from"):
        evaluate_file(old)
    # with a truth source, predict writes `label` as the truth, and evaluate reads that
    with_truth = _predictions_csv(tmp_path, [("Angry/a.jpg", np.eye(7)[0]), ("Sad/b.jpg", np.eye(7)[0]),
                                             ("Sad/c.jpg", np.eye(7)[5])], truths=["Angry", "Sad", "Sad"])
    assert evaluate_file(with_truth)["accuracy"] == pytest.approx(2 / 3)


def test_a_label_column_that_is_every_rows_top_class_is_said(tmp_path, caplog, rng):
    """Another tool's CSV with its prediction under `label` scored 1.000 against itself, without a word."""
    import logging

    from mmfer.metrics import SELF_LABEL_MIN_ROWS

    n = SELF_LABEL_MIN_ROWS
    probs = rng.dirichlet(np.ones(7), size=n)
    top = [EMOTIONS[int(np.argmax(p))] for p in probs]
    write_scores(tmp_path / "self.csv", [f"c{i}" for i in range(n)], top, probs)
    write_scores(tmp_path / "real.csv", [f"c{i}" for i in range(n)], top[:-1] + [EMOTIONS[0] if top[-1] != EMOTIONS[0]
                                                                                    else EMOTIONS[1]], probs)
    with caplog.at_level(logging.WARNING, logger="mmfer"):
        assert evaluate_file(tmp_path / "self.csv")["accuracy"] == 1.0
        assert f"every one of its {n} labels is its row's top class" in caplog.text
        caplog.clear()
        evaluate_file(tmp_path / "real.csv")  # one miss: a real (very good) result, nothing said
    assert caplog.text == ""


def test_no_prediction_is_never_a_class(tmp_path):
    """Class 2: uniform rows (silent files: nothing seen) and NaN rows are 'no prediction', counted wrong, in a
    column of their own, never the first class argmax gives."""
    uniform = np.full(7, 1 / 7)
    m = evaluate(["Angry", "Angry", "Sad", "Sad"], np.stack([uniform] * 4))
    assert m["accuracy"] == 0 and m["per_class_recall"]["Angry"] == 0 and np.sum(m["confusion"]) == 0
    assert m["no_prediction"] == [2, 0, 0, 0, 0, 2, 0] and len(m["missing"]) == 4
    path = _predictions_csv(tmp_path, [("Angry/s1.wav", uniform), ("Angry/s2.wav", uniform),
                                       ("Sad/s3.wav", uniform), ("Sad/s4.wav", uniform)])
    m = evaluate_file(path, labels_from="folder", root=tmp_path / "faces", report=tmp_path / "r.html")
    assert m["accuracy"] == 0 and m["per_class_recall"]["Angry"] == 0 and m["no_prediction"][0] == 2
    assert format_confusion(m["confusion"], m["no_prediction"]).splitlines()[0].split()[-2] == "none"
    assert "no prediction" in (tmp_path / "r.html").read_text()
    # a branch score CSV where a branch saw nothing (uniform) is not a class either
    scores = write_scores(tmp_path / "s.csv", ["a", "b"], ["Angry", "Sad"], np.stack([uniform, np.eye(7)[5]]))
    m = evaluate_file(scores)
    assert m["accuracy"] == 0.5 and m["per_class_recall"]["Angry"] == 0 and m["missing"] == ["a"]


def test_readme_workflow_error_rows_and_repeated_names(tmp_path):
    """Class 3: `predict faces/ --out p.csv` then `evaluate p.csv --labels-from folder --root faces/`: an error
    row counts wrong (no rejection of the file), and two files of one name in different folders are told
    apart by path, both from --root and from the path column."""
    path = _predictions_csv(tmp_path, [("Angry/x.jpg", np.eye(7)[0]), ("Sad/x.jpg", np.eye(7)[5]),
                                       ("Happy/y.jpg", np.eye(7)[3]), ("Fear/broken.jpg", None)])
    for kwargs in ({"root": tmp_path / "faces"}, {}):
        m = evaluate_file(path, labels_from="folder", **kwargs)
        assert m["n"] == 4 and m["accuracy"] == pytest.approx(3 / 4), kwargs
        assert m["per_class_recall"]["Angry"] == 1 and m["per_class_recall"]["Sad"] == 1
        assert m["no_prediction"][EMOTIONS.index("Fear")] == 1 and len(m["missing"]) == 1
    # a clip_id,label truth file cannot tell the two x apart: a clear error, not a wrong figure
    truth = tmp_path / "truth.csv"
    truth.write_text("clip_id,label\nx,Angry\ny,Happy\nbroken,Fear\n")
    with pytest.raises(MmferError, match="appear twice"):
        evaluate_file(path, labels_from=str(truth))
    # a list naming each file by path (as `mmfer train --data LIST.csv` reads it, relative to the list) can
    (tmp_path / "faces" / "list.csv").write_text("path,label\nAngry/x.jpg,Angry\nSad/x.jpg,Sad\nHappy/y.jpg,Happy\n"
                                                 "Fear/broken.jpg,Fear\n")
    m = evaluate_file(path, labels_from=str(tmp_path / "faces" / "list.csv"))
    assert m["n"] == 4 and m["accuracy"] == pytest.approx(3 / 4) and m["per_class_recall"]["Sad"] == 1
    # the files predicted have names of their own, the list's do not: still by path (was "labelled ... earlier")
    one = _predictions_csv(tmp_path, [("Sad/x.jpg", np.eye(7)[5])])
    m = evaluate_file(one, labels_from=str(tmp_path / "faces" / "list.csv"))
    assert m["per_class_recall"]["Sad"] == 1 and m["n"] == 4 and len(m["missing"]) == 3  # the list's others


def test_plotting_leaves_the_callers_matplotlib_backend_as_it_was(tmp_path):
    """The PNGs are drawn without pyplot: a notebook's or application's own backend is not switched to Agg."""
    import subprocess
    import sys

    code = ("import matplotlib; matplotlib.use('pdf'); import numpy as np; from mmfer.plots import plot_confusion; "
            f"plot_confusion(np.eye(7, dtype=int), {str(tmp_path / 'c.png')!r}); print(matplotlib.get_backend())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "pdf" and (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
