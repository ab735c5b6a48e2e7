"""`mmfer fuse / submit / evaluate / ablate` through mmfer.cli.main: exit codes and output."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from mmfer.cli import main
from mmfer.labels import EMOTIONS
from mmfer.scores import read_scores, write_scores


@pytest.fixture
def runs(tmp_path):
    rng = np.random.default_rng(7)
    n, nt = 120, 15
    y = rng.integers(0, 7, n)
    test_ids = [f"clip{i:03d}" for i in range(nt)]
    (tmp_path / "Test").mkdir()
    for cid in test_ids:
        (tmp_path / "Test" / f"{cid}.mp4").write_bytes(b"")
    val, test = [], []
    for name, strength in (("audio_cnn", 0.8), ("c3d", 2.5)):
        logits = rng.normal(size=(n, 7))
        logits[np.arange(n), y] += strength
        p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        val.append(str(write_scores(tmp_path / name / "scores_Val.csv", [f"v{i}" for i in range(n)],
                                    [EMOTIONS[i] for i in y], p)))
        test.append(str(write_scores(tmp_path / name / "scores_Test.csv", test_ids, [None] * nt,
                                     rng.dirichlet(np.ones(7), nt))))
    return tmp_path, val, test


def test_fuse_submit_check_evaluate(runs, capsys):
    root, val, test = runs
    out = root / "fuse"
    assert main(["fuse", "--val", *val, "--test", *test, "--out", str(out), "--cv-folds", "3", "--method", "weighted"]) == 0
    text = capsys.readouterr().out
    assert "cross-validated" in text and "(in-sample: tuned on these clips)" in text
    assert main(["fuse", "--val", *val, "--out", str(root / "mean"), "--cv-folds", "3", "--method", "mean"]) == 0
    assert "(nothing tuned: the same as cross-validated)" in capsys.readouterr().out  # a plain mean fits nothing
    assert main(["evaluate", str(root / "mean" / "fused_Val.csv")]) == 0
    assert "in-sample" not in capsys.readouterr().out  # nothing was tuned on the clips, so nothing to warn of
    w = json.loads((out / "weights.json").read_text())
    assert w["branches"] == ["audio_cnn", "c3d"]

    zip_path = root / "team.zip"
    assert main(["submit", str(out / "fused_Test.csv"), "--index", str(root / "Test"), "--out", str(zip_path)]) == 0
    assert "check: OK" in capsys.readouterr().out
    assert main(["submit", str(out / "fused_Test.csv"), "--index", str(root / "Test"), "--out", str(zip_path),
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True  # the key --check --json has too
    assert main(["submit", "--check", str(zip_path), "--index", str(root / "Test")]) == 0
    assert "OK" in capsys.readouterr().out

    with zipfile.ZipFile(root / "bad.zip", "w") as zf:
        zf.writestr("sub/clip000.txt", "happy")
    assert main(["submit", "--check", str(root / "bad.zip"), "--index", str(root / "Test"), "--json"]) == 1
    rep = json.loads(capsys.readouterr().out)
    assert rep["ok"] is False and any("layout" in p for p in rep["problems"])

    assert main(["evaluate", str(out / "fused_Val.csv"), "--json", "--png", str(root / "cm.png")]) == 0
    m = json.loads(capsys.readouterr().out)
    assert {"ok", "accuracy", "uar", "n", "missing"} <= set(m) and m["ok"] is True  # as submit --json
    assert m["n"] == 120 and m["missing"] == []
    assert m["accuracy"] == pytest.approx(w["val_in_sample"]["accuracy"])
    assert (root / "cm.png").is_file()
    assert main(["evaluate", str(out / "fused_Val.csv")]) == 0
    text = capsys.readouterr().out  # the in-sample file says so, and where the figure to report is
    assert "mean class accuracy" in text and text.startswith("note: in-sample: fuse's fusion was tuned on these clips")
    assert str(out / "fused_Val_cv.csv") in text
    assert main(["evaluate", str(out / "fused_Val_cv.csv"), "--json"]) == 0
    cv = json.loads(capsys.readouterr().out)  # the cross-validated scores make the cross-validated figures
    assert cv["accuracy"] == pytest.approx(w["val_cross_validated"]["accuracy"]) and "note" not in cv
    assert cv["uar"] == pytest.approx(w["val_cross_validated"]["uar"])
    # branches side by side: one row each, the same figures as each file alone
    assert main(["evaluate", *val, str(out / "fused_Val_cv.csv")]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].split()[:5] == ["scores", "clips", "accuracy", "uar", "macro_f1"] and len(rows) == 4
    assert rows[3].split()[0] == str(out / "fused_Val_cv.csv") and rows[3].split()[2] == f"{cv['accuracy']:.4f}"
    assert main(["evaluate", *val, "--json"]) == 0
    each = json.loads(capsys.readouterr().out)["results"]
    assert [r["scores"] for r in each] == val and all(r["n"] == 120 for r in each)
    assert each[1]["accuracy"] > each[0]["accuracy"]  # c3d's scores were made stronger than audio_cnn's
    assert main(["evaluate", *val, "--png", str(root / "x.png")]) == 2
    assert "--png and --report describe one score file" in capsys.readouterr().err
    assert main(["evaluate", str(out), "--json"]) == 2  # a fusion's folder names its files
    assert json.loads(capsys.readouterr().out)["ok"] is False  # an error that stops it: an object on stdout too
    assert main(["evaluate", str(out)]) == 2
    assert f"evaluate {out / 'fused_Val_cv.csv'} (the cross-validated Val scores" in capsys.readouterr().err


def test_submit_refuses_incomplete_and_fills_prior(runs, capsys):
    root, val, test = runs
    t = read_scores(test[1])
    part = write_scores(root / "fuse" / "fused_Test.csv", t.clip_ids[1:], t.labels[1:], t.probs[1:])
    write_scores(root / "fuse" / "fused_Val.csv", ["a", "b", "c"], ["Sad", "Sad", "Happy"], np.eye(7)[[0, 0, 0]])
    assert main(["submit", str(part), "--index", str(root / "Test"), "--out", str(root / "x.zip")]) == 2
    err = capsys.readouterr().err
    assert "clip000" in err and "Refusing" in err and not (root / "x.zip").exists()
    assert main(["submit", str(part), "--index", str(root / "Test"), "--out", str(root / "x.zip"),
                 "--fill-missing", "prior"]) == 0
    assert "filled clip000" in capsys.readouterr().out
    with zipfile.ZipFile(root / "x.zip") as zf:
        assert zf.read("clip000.txt").decode() == "Sad"  # the Val label prior's top class


def test_errors_exit_2(runs, capsys):
    root, val, test = runs
    assert main(["fuse", "--val", *val, "--test", test[0], "--out", str(root / "f")]) == 2
    assert "Test file" in capsys.readouterr().err
    assert main(["evaluate", str(root / "nope.csv")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["submit", "--index", str(root / "Test")]) == 2


def test_ablate_cli(runs, capsys, caplog):
    root, val, _ = runs
    out = root / "abl"
    # the old spelling of --cv-folds still works, with a warning (train's --folds is another thing)
    assert main(["ablate", "--val", *val, "--out", str(out), "--folds", "3", "--names", "audio,video",
                 "--method", "mean"]) == 0
    assert "--folds 3 taken as --cv-folds 3" in caplog.text
    assert "3-fold CV" in (out / "ablation.md").read_text()
    text = capsys.readouterr().out
    assert "audio+video" in text
    assert (out / "ablation.csv").is_file() and (out / "ablation.png").is_file()


def test_progress_bars_only_where_someone_watches(runs, capsys, monkeypatch):
    """A CI log (stderr not a terminal) got \\r-redrawn bars; MMFER_PROGRESS=1 brings them back, 0 keeps them off.
    The Python functions follow the same rule as the CLI (a notebook's captured stderr got raw bars)."""
    import io
    import sys

    from mmfer.fusion.ablation import ablate
    from mmfer.progress import bars_wanted

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    root, val, _ = runs
    monkeypatch.delenv("MMFER_PROGRESS", raising=False)
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    assert main(["ablate", "--val", *val, "--out", str(root / "bars"), "--method", "mean"]) == 0
    assert "\r" not in capsys.readouterr().err  # captured: not a terminal, so no bars
    ablate(val_paths=val, out=root / "bars_py", method="mean")  # progress=True, from Python: the same rule
    assert "\r" not in capsys.readouterr().err
    monkeypatch.setattr(sys, "stderr", Terminal())
    assert bars_wanted()
    monkeypatch.setenv("MMFER_PROGRESS", "0")
    assert not bars_wanted()
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    monkeypatch.delenv("MMFER_PROGRESS")
    monkeypatch.setitem(sys.modules, "ipykernel", sys)  # a notebook: tqdm.auto draws its widget there
    assert bars_wanted()
    monkeypatch.delitem(sys.modules, "ipykernel")
    monkeypatch.setenv("MMFER_PROGRESS", "1")
    assert bars_wanted()
    assert main(["ablate", "--val", *val, "--out", str(root / "bars"), "--method", "mean"]) == 0
    assert "\r" in sys.stderr.getvalue()  # forced: the bars are drawn
