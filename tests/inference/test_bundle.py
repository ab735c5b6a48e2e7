"""Bundles: the format, loading from bundle / RUN / checkpoint / FUSE folders, fusion over present modalities,
the build tool, and the shipped default model against its recorded outputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import mmfer.bundle as bundle_mod
from mmfer.bundle import BUNDLE_FILE, DEFAULT_DIR, load_bundle, write_bundle
from mmfer.errors import MmferError
from mmfer.fusion.methods import apply_temperature
from mmfer.labels import EMOTIONS
from predict_helpers import standin_run

REPO = Path(__file__).resolve().parents[2]
RECORDED = REPO / "tests" / "assets" / "default_model_outputs.csv"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {k: standin_run(root / k, k, seed=i) for i, k in enumerate(("face_frame", "audio_cnn", "landmark_brnn"))}


def test_a_run_still_training_is_said_when_predict_loads_it(tmp_path, runs, caplog):
    """`predict --model RUN` on a run stopped (or still training) says its predictions are of the best epoch so
    far, as `mmfer scores` does; a finished run says nothing."""
    with caplog.at_level("WARNING"):
        load_bundle(runs["face_frame"])
    assert "epochs" not in caplog.text
    stopped = tmp_path / "stopped"
    shutil.copytree(runs["face_frame"], stopped)
    (stopped / "config.yaml").write_text("optim:\n  epochs: 4\n")  # as `train` writes it, the epochs it plans
    with caplog.at_level("WARNING"):
        load_bundle(stopped)
    assert "trained 1 of its 4 epochs" in caplog.text and "these are the predictions of its best epoch" in caplog.text


def test_write_and_load_bundle(tmp_path, runs):
    out = tmp_path / "b"
    write_bundle(out, [{"name": "face", "run": runs["face_frame"], "weight": 3, "data": "d", "licence": "l"},
                       {"name": "audio", "run": runs["audio_cnn"], "weight": 1, "options": {}, "temperature": 2.0}],
                 provenance={"by": "test"})
    info = json.loads((out / BUNDLE_FILE).read_text())
    assert info["format"] == 1 and info["labels"] == list(EMOTIONS) and info["fusion"]["method"] == "weighted"
    face = info["branches"]["face"]
    assert face["checkpoint"] == "face.pt" and face["weight"] == 3.0 and face["data"] == "d"
    assert face["options"] == {"framing": "fer2013", "image_views": 10, "frame_views": 2,
                               "frame_pooling": "mean", "tight_images": "as_is",
                               "serves": "all"}  # defaults written out
    assert face["metrics"]["val_accuracy"] == 0.5 and face["metrics"]["epochs_trained"] == 1
    assert info["branches"]["audio"]["options"] == {}
    b = load_bundle(out)
    assert [br.name for br in b.branches] == ["face", "audio"] and b.modalities() == ["face", "audio"]
    assert "temperature" not in face and b.branches[1].temperature == 2.0  # calibrates audio before fusion
    f, a = np.array([0.5, 0.5, 0, 0, 0, 0, 0]), np.array([0.1, 0.3, 0, 0, 0, 0, 0.6])
    flat = apply_temperature(a, 2.0)  # softmax(log a / 2): about sqrt(a), renormalised
    np.testing.assert_allclose(flat[[0, 1, 6]], np.sqrt([0.1, 0.3, 0.6]) / np.sqrt([0.1, 0.3, 0.6]).sum(), atol=1e-3)
    np.testing.assert_allclose(b.fuse({"face": f, "audio": a}), 0.75 * f + 0.25 * flat, atol=1e-9)
    assert b.decode.fps == 8.0 and b.decode.max_frames == 960
    sd = torch.load(out / "face.pt", weights_only=True)["state_dict"]
    assert sd["classifier.weight"].dtype == torch.float16
    assert all(p.dtype == torch.float32 for p in b.branches[0].model.parameters())


def test_a_bundle_description_is_checked_before_anything_is_loaded(tmp_path, runs):
    """A bundle received from others: its checkpoints stay inside its folder (a '../' one loaded any file on the
    machine), and a description that is no JSON object, or nested too deeply, is said (it was a traceback)."""
    out = tmp_path / "b"
    write_bundle(out, [{"name": "audio", "run": runs["audio_cnn"], "weight": 1}])
    good = json.loads((out / BUNDLE_FILE).read_text())
    shutil.copy(out / "audio.pt", tmp_path / "outside.pt")

    def load_with(info):
        (out / BUNDLE_FILE).write_text(info if isinstance(info, str) else json.dumps(info))
        return load_bundle(out)

    for ckpt in ("../outside.pt", str(tmp_path / "outside.pt")):
        with pytest.raises(MmferError, match=r"checkpoint .*outside.pt. is not a name inside the bundle folder"):
            load_with({**good, "branches": {"audio": {**good["branches"]["audio"], "checkpoint": ckpt}}})
    with pytest.raises(MmferError, match="not a JSON object but a list"):
        load_with("[1, 2]")
    with pytest.raises(MmferError, match="nested too deeply"):
        load_with("[" * 100000 + "]" * 100000)
    with pytest.raises(MmferError, match="branches must map each branch"):
        load_with({**good, "branches": ["audio.pt"]})
    with pytest.raises(MmferError, match="bundle format 0, .*an older mmfer: rebuild it"):
        load_with({**good, "format": 0})
    with pytest.raises(MmferError, match="bundle format 99, .*upgrade mmfer"):
        load_with({**good, "format": 99})
    assert [b.name for b in load_with(good).branches] == ["audio"]
    (out / "linked.pt").symlink_to(tmp_path / "outside.pt")  # a folder that links its weights (to save space)
    assert [b.name for b in load_with({**good, "branches": {"audio": {**good["branches"]["audio"],
                                                                      "checkpoint": "linked.pt"}}}).branches] == ["audio"]


def test_fuse_renormalises_over_present_modalities(tmp_path, runs):
    out = tmp_path / "b"
    write_bundle(out, [{"name": "face", "run": runs["face_frame"], "weight": 3},
                       {"name": "audio", "run": runs["audio_cnn"], "weight": 1}])
    b = load_bundle(out)
    f = np.array([0.7, 0.3, 0, 0, 0, 0, 0])
    a = np.array([0, 0, 0, 0, 0, 0.2, 0.8])
    np.testing.assert_allclose(b.fuse({"face": f, "audio": a}), 0.75 * f + 0.25 * a)
    np.testing.assert_allclose(b.fuse({"face": f, "audio": None}), f)
    np.testing.assert_allclose(b.fuse({"audio": a}), a)
    assert b.fuse({}) is None
    b.branches[0].weight[:] = 0  # a branch the weight search switched off still scores a clip it alone saw
    np.testing.assert_allclose(b.fuse({"face": f}), f)


def test_a_small_file_asking_for_a_huge_model_is_said_before_it_is_built(tmp_path, runs, monkeypatch):
    """A 3-KB checkpoint whose model_kwargs asked for a model of billions of weights was built in memory (2.3 GB
    for hidden=3e6) before load_state_dict found that its weights did not fit."""
    from mmfer.models import registry

    ckpt = torch.load(runs["audio_cnn"] / "best.pt", weights_only=True)
    ckpt["model_kwargs"] = {**ckpt["model_kwargs"], "width": 4096}
    (tmp_path / "huge").mkdir()
    torch.save(ckpt, tmp_path / "huge" / "best.pt")
    built = []
    real = registry.build_model
    monkeypatch.setattr(registry, "build_model", lambda *a, **k: built.append(torch.get_default_device()) or real(*a, **k))
    with pytest.raises(MmferError, match=r"weights do not fit model 'audio_cnn' .*of another shape \(e.g. "):
        load_bundle(tmp_path / "huge")
    assert [d.type for d in built] == ["meta"]  # never built for real


def test_a_checkpoint_with_compressed_entries_or_of_a_newer_format_is_not_loaded(tmp_path, runs):
    """A .pt rewritten with deflated entries (a 195-KB file held 200 MB of tensors) is refused unread; torch never
    writes one. A newer checkpoint format is said, not misread."""
    import zipfile

    from mmfer.engine.checkpoint import load_checkpoint

    src = runs["audio_cnn"] / "best.pt"
    (tmp_path / "packed").mkdir()
    with zipfile.ZipFile(src) as z, zipfile.ZipFile(tmp_path / "packed" / "best.pt", "w", zipfile.ZIP_DEFLATED) as out:
        for item in z.infolist():
            out.writestr(item.filename, z.read(item))
    with pytest.raises(MmferError, match=r"entries are compressed .*which torch never writes; not loaded"):
        load_checkpoint(tmp_path / "packed")
    from mmfer.inference.bundle import declared_frame_poolings

    assert declared_frame_poolings(tmp_path / "packed") is None  # not read to find its kind either
    assert load_checkpoint(src)["model_name"] == "audio_cnn"
    ckpt = torch.load(src, weights_only=True)
    (tmp_path / "newer").mkdir()
    torch.save({**ckpt, "format": 99}, tmp_path / "newer" / "best.pt")
    with pytest.raises(MmferError, match="checkpoint format 99, written by a newer mmfer .*upgrade mmfer"):
        load_checkpoint(tmp_path / "newer")


def test_labels_mapped_by_name(tmp_path, runs):
    """A checkpoint that stores its classes in another order gives the same EMOTIONS-ordered outputs."""
    ckpt = torch.load(runs["audio_cnn"] / "best.pt", weights_only=True)
    order = [6, 5, 4, 3, 2, 1, 0]
    ckpt["labels"] = [EMOTIONS[i] for i in order]
    for k in ("classifier.weight", "classifier.bias"):
        ckpt["state_dict"][k] = ckpt["state_dict"][k][order]
    (tmp_path / "perm").mkdir()
    torch.save(ckpt, tmp_path / "perm" / "best.pt")
    x = torch.randn(2, 1, 64, 50)
    with torch.no_grad():
        ref = load_bundle(runs["audio_cnn"]).branches[0].model(x)
        got = load_bundle(tmp_path / "perm").branches[0].model(x)
    torch.testing.assert_close(ref, got)


def test_run_and_checkpoint_and_errors(tmp_path, runs):
    b = load_bundle(runs["landmark_brnn"])
    assert b.branches[0].kind == "landmarks" and b.modalities() == ["face"]
    assert b.decode.crop_size == 64 and b.decode.fps == 8.0  # decodes videos like its training cache
    assert load_bundle(runs["audio_cnn"] / "best.pt").modalities() == ["audio"]
    with pytest.raises(MmferError, match="no such file"):
        load_bundle(tmp_path / "nope")
    with pytest.raises(MmferError, match="unknown option"):
        write_bundle(tmp_path / "x", [{"name": "a", "run": runs["audio_cnn"], "weight": 1, "options": {"views": 2}}])
    with pytest.raises(MmferError, match="frame_views"):
        write_bundle(tmp_path / "y", [{"name": "f", "run": runs["face_frame"], "weight": 1,
                                       "options": {"frame_views": 5}}])
    with pytest.raises(MmferError, match="checkpoint file 'f.pt' given to two branches"):
        write_bundle(tmp_path / "w", [{"name": "f", "run": runs["face_frame"], "weight": 1},
                                      {"name": "g", "run": runs["face_frame"], "weight": 1, "file": "f.pt"}])
    with pytest.raises(MmferError, match="serves 'photos'"):
        write_bundle(tmp_path / "z", [{"name": "f", "run": runs["face_frame"], "weight": 1,
                                       "options": {"serves": "photos"}}])
    with pytest.raises(MmferError, match="serves tight_images needs tight_images as_is"):
        write_bundle(tmp_path / "z", [{"name": "f", "run": runs["face_frame"], "weight": 1,
                                       "options": {"serves": "tight_images", "tight_images": "video"}}])


def test_missing_default_weights_say_how_to_rebuild(tmp_path, monkeypatch):
    monkeypatch.setattr(bundle_mod, "DEFAULT_DIR", tmp_path / "weights")
    with pytest.raises(MmferError, match="installed without its default model weights.*build_default_model.py"):
        load_bundle("default")


def test_fuse_folder(tmp_path, runs):
    """`mmfer fuse` over score files inside runs records the runs; predict --model FUSE loads every branch."""
    from mmfer.fusion.fuse import fuse
    from mmfer.scores import write_scores

    rng = np.random.default_rng(0)
    labels = [EMOTIONS[i % 7] for i in range(21)]
    ids = [f"c{i}" for i in range(21)]
    val = []
    for k in ("face_frame", "audio_cnn"):
        val.append(write_scores(runs[k] / "scores_Val.csv", ids, labels, rng.dirichlet(np.ones(7), 21)))
    report = fuse(val, out=tmp_path / "fuse", method="weighted", cv_folds=3)
    assert report["runs"] == [str(runs["face_frame"].resolve()), str(runs["audio_cnn"].resolve())]
    b = load_bundle(tmp_path / "fuse")
    assert [br.name for br in b.branches] == ["face_frame", "audio_cnn"]
    np.testing.assert_allclose([br.weight[0] for br in b.branches], report["weights"])
    del report["runs"]  # a weights.json from before runs were recorded: found from the Val score paths
    (tmp_path / "fuse" / "weights.json").write_text(json.dumps(report))
    assert len(load_bundle(tmp_path / "fuse").branches) == 2
    report["method"] = "stacker"
    (tmp_path / "fuse" / "weights.json").write_text(json.dumps(report))
    with pytest.raises(MmferError, match="stacker"):
        load_bundle(tmp_path / "fuse")
    # hand-edited weights.json: a negative temperature, weights of the wrong length or type
    for key, value, message in (("temperatures", [1.0, -2.0], "temperature -2.0: expected a positive number"),
                                ("temperatures", [1.0], "one number per branch"),
                                ("weights", [0.5], "one entry per branch"),
                                ("weights", "heavy", "one entry per branch"),
                                ("weights", [0.5, -1], "weight -1: expected a non-negative number")):
        edited = {**report, "method": "weighted", "calibrate": True, "temperatures": [1.0, 1.0], key: value}
        (tmp_path / "fuse" / "weights.json").write_text(json.dumps(edited))
        with pytest.raises(MmferError, match=message):
            load_bundle(tmp_path / "fuse")


def _copied_runs_with_scores(tmp_path, runs, *, seed: int) -> list:
    """Copies of the face and audio runs, each with random Val scores of 21 clips: paths of the score files."""
    import shutil

    from mmfer.scores import write_scores

    rng = np.random.default_rng(seed)
    labels = [EMOTIONS[i % 7] for i in range(21)]
    return [write_scores(shutil.copytree(runs[k], tmp_path / k) / "scores_Val.csv", [f"c{i}" for i in range(21)],
                         labels, rng.dirichlet(np.ones(7), 21)) for k in ("face_frame", "audio_cnn")]


def test_fuse_folder_refuses_a_branch_retrained_after_fusing(tmp_path, runs, caplog):
    """The weight of a branch was tuned on its old model's Val scores: a retrained run under the same folder must
    not be fused silently with it."""
    import torch

    from mmfer.fusion.fuse import fuse

    val = _copied_runs_with_scores(tmp_path, runs, seed=1)
    report = fuse(val, out=tmp_path / "fuse", method="weighted", cv_folds=3)
    assert all(len(d) == 64 for d in report["checkpoint_sha256"])
    assert len(load_bundle(tmp_path / "fuse").branches) == 2
    ckpt_path = tmp_path / "audio_cnn" / "best.pt"
    original = ckpt_path.read_bytes()
    ckpt = torch.load(ckpt_path, weights_only=True)
    name = next(k for k, v in ckpt["state_dict"].items() if v.is_floating_point())
    ckpt["state_dict"][name] = ckpt["state_dict"][name] + 1  # "retrained"
    torch.save(ckpt, ckpt_path)
    with pytest.raises(MmferError, match="branch 'audio_cnn' .* changed after `mmfer fuse`"):
        load_bundle(tmp_path / "fuse")
    # the fused scores fuse wrote are those of the checkpoint before: a zip of them is written, and says so
    from mmfer.scores import write_scores
    from mmfer.submission import write_submission

    test_dir = tmp_path / "Test"
    test_dir.mkdir()
    for c in ("t0", "t1"):
        (test_dir / f"{c}.avi").write_bytes(b"")
    fused = write_scores(tmp_path / "fuse" / "fused_Test.csv", ["t0", "t1"], [None, None],
                         np.random.default_rng(2).dirichlet(np.ones(7), 2))
    with caplog.at_level("WARNING", logger="mmfer.submission"):
        rep = write_submission(fused, index=test_dir, out=tmp_path / "team.zip")
    assert rep["changed_since_fuse"] == ["audio_cnn"] and rep["clips"] == 2
    assert "branch 'audio_cnn'" in caplog.text and "holds the fusion of the checkpoint before" in caplog.text
    ckpt_path.write_bytes(original)  # restored: loads again, and a zip says nothing
    assert len(load_bundle(tmp_path / "fuse").branches) == 2
    caplog.clear()
    assert write_submission(fused, index=test_dir, out=tmp_path / "team2.zip")["changed_since_fuse"] == []
    assert "changed after" not in caplog.text


def test_build_tool(tmp_path, runs, cremad_videos, cremad_audio, monkeypatch, capsys, caplog):
    """tools/build_default_model.py writes the bundle and records outputs that predict reproduces."""
    recorded_before = RECORDED.read_bytes() if RECORDED.is_file() else None
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_default_model", REPO / "tools" / "build_default_model.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    monkeypatch.setattr(tool, "recorded_inputs", lambda: [cremad_videos[0], cremad_audio[0]])
    out, csv_path = tmp_path / "weights", tmp_path / "outputs.csv"
    rc = tool.main(["--face", str(runs["face_frame"]), "--audio", str(runs["audio_cnn"]), "--face-weight", "0.7",
                    "--audio-weight", "0.3", "--out", str(out), "--outputs", str(csv_path)])
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == ["audio_cnn.pt", "bundle.json", "face_video.pt"]
    info = json.loads((out / "bundle.json").read_text())
    assert "RAVDESS" in info["branches"]["audio_cnn"]["licence"] and info["branches"]["face"]["weight"] == 0.7
    assert info["branches"]["face"]["options"]["tight_images"] == "video"  # trained on video crops by default
    # ... which this run was not (no augment.video): said, since bundle.json now describes it so
    assert "trained without augment.video; --tight-images video describes it" in caplog.text
    # the recipes' data and licence texts are said, for a lab building a bundle of runs of its own data
    assert "describes the data and licence of face, audio_cnn as this repository's recipes'" in caplog.text
    _check_recorded(out, csv_path, [cremad_videos[0], cremad_audio[0]])
    # a cross-validation folder brings every fold model, sharing its share of the audio weight; folds of RAVDESS
    # with other corpora in every fold's training (--folds-within ravdess) name those corpora and their licences
    folds = tmp_path / "cv"
    folds.mkdir()
    summary = {"runs": [str(runs["audio_cnn"])] * 2, "uar_mean": 0.5, "uar_std": 0.1, "uar_min": 0.4, "uar_max": 0.6,
               "accuracy_mean": 0.5, "pooled_accuracy": 0.5, "pooled_uar": 0.5, "pooled_recall": {}, "folds": [],
               "within": "ravdess"}
    (folds / "folds.json").write_text(json.dumps(summary))
    rc = tool.main(["--face", str(runs["face_frame"]), "--audio", str(folds), str(runs["audio_cnn"]),
                    "--audio-shares", "3", "1", "--audio-weight", "0.4", "--out", str(out), "--outputs", str(csv_path)])
    assert rc == 0
    info = json.loads((out / "bundle.json").read_text())
    weights = {name: b["weight"] for name, b in info["branches"].items()}
    assert weights == pytest.approx({"face": 0.6, "audio_cnn_fold1": 0.15, "audio_cnn_fold2": 0.15, "audio_cnn": 0.1})
    assert info["provenance"]["audio_cross_validation"]["cv"]["uar_mean"] == 0.5
    assert sorted(p.name for p in out.glob("*.pt")) == ["audio_cnn.pt", "audio_cnn_fold1.pt", "audio_cnn_fold2.pt",
                                                       "face_video.pt"]
    pooled, alone = info["branches"]["audio_cnn_fold1"], info["branches"]["audio_cnn"]
    assert "nEMO" in pooled["data"] and "SAVEE" in pooled["licence"] and "share-alike" in pooled["licence"]
    assert "nEMO" not in alone["data"] and "SAVEE" not in alone["licence"]
    # two cross-validations of one model kind (two seeds) are numbered, not clashing
    (tmp_path / "cv_s1").mkdir()
    (tmp_path / "cv_s1" / "folds.json").write_text(json.dumps(summary))
    rc = tool.main(["--face", str(runs["face_frame"]), "--audio", str(folds), str(tmp_path / "cv_s1"),
                    "--audio-weight", "0.4", "--out", str(tmp_path / "seeds"), "--outputs", str(csv_path)])
    assert rc == 0
    seeds = json.loads((tmp_path / "seeds" / "bundle.json").read_text())
    assert {n: b["weight"] for n, b in seeds["branches"].items() if n != "face"} == pytest.approx(
        {f"audio_cnn{k}_fold{j}": 0.1 for k in (1, 2) for j in (1, 2)})
    assert sorted(seeds["provenance"]["audio_cross_validation"]) == ["cv", "cv_s1"]
    # two folders of one name (each seed's `cv`): their cross-validations under their branches' stems
    (tmp_path / "seed1" / "cv").mkdir(parents=True)
    (tmp_path / "seed1" / "cv" / "folds.json").write_text(json.dumps(summary))
    rc = tool.main(["--face", str(runs["face_frame"]), "--audio", str(folds), str(tmp_path / "seed1" / "cv"),
                    "--audio-weight", "0.4", "--out", str(tmp_path / "same_names"), "--outputs", str(csv_path)])
    assert rc == 0
    same = json.loads((tmp_path / "same_names" / "bundle.json").read_text())
    assert sorted(same["provenance"]["audio_cross_validation"]) == ["audio_cnn1", "audio_cnn2"]
    assert "Distilled" not in pooled["data"]
    # a run trained with teachers (distill:) says so in its branches' data
    from mmfer.engine.checkpoint import load_checkpoint

    taught = load_checkpoint(runs["audio_cnn"])
    taught["config"]["distill"] = {"teachers": ["a/fold{fold}/best.pt", "b/fold{fold}/best.pt"], "weight": 0.7,
                                   "temperature": 2.0}
    (tmp_path / "taught").mkdir()
    torch.save({k: v for k, v in taught.items() if k != "path"}, tmp_path / "taught" / "best.pt")
    rc = tool.main(["--face", str(runs["face_frame"]), "--audio", str(tmp_path / "taught"), "--audio-weight", "0.4",
                    "--out", str(tmp_path / "taught_bundle"), "--outputs", str(csv_path)])
    assert rc == 0
    data = json.loads((tmp_path / "taught_bundle" / "bundle.json").read_text())["branches"]["audio_cnn"]["data"]
    assert "Distilled" in data and "2 teacher models" in data and "temperature 2.0" in data
    assert tool.main(["--face", str(runs["audio_cnn"]), "--audio", str(runs["audio_cnn"]), "--out", str(out)]) == 2
    # a new face model beside a bundle's audio models as they are, rebuilt in place: audio weights rescaled
    before = {n: b for n, b in info["branches"].items() if n != "face"}
    rc = tool.main(["--face", str(runs["face_frame"]), "--keep-audio-from", str(out), "--tight-images", "as_is",
                    "--face-weight", "0.5", "--audio-weight", "0.5", "--face-backend", "dlib",
                    "--out", str(out), "--outputs", str(csv_path)])
    assert rc == 0
    info = json.loads((out / "bundle.json").read_text())
    assert info["branches"]["face"]["options"]["tight_images"] == "as_is" and info["decode"]["face_backend"] == "dlib"
    assert {n: b["weight"] for n, b in info["branches"].items() if n != "face"} == pytest.approx(
        {n: 0.5 * b["weight"] / 0.4 for n, b in before.items()})
    assert sorted(p.name for p in out.glob("*.pt")) == ["audio_cnn.pt", "audio_cnn_fold1.pt", "audio_cnn_fold2.pt",
                                                       "face_fer2013.pt"]
    assert info["provenance"]["audio_cross_validation"]["cv"]["uar_mean"] == 0.5
    # models of tight photos beside the video-crop model: each weighted like it, serving tight images only
    rc = tool.main(["--face", str(runs["face_frame"]), "--photo-face", str(runs["face_frame"]), str(runs["face_frame"]),
                    "--keep-audio-from", str(out), "--face-weight", "0.5", "--audio-weight", "0.5",
                    "--out", str(out), "--outputs", str(csv_path)])
    assert rc == 0
    info = json.loads((out / "bundle.json").read_text())
    photos = {n: b for n, b in info["branches"].items() if n.startswith("face_photo")}
    assert sorted(photos) == ["face_photo1", "face_photo2"] and info["branches"]["face"]["weight"] == 0.5
    assert all(b["weight"] == 0.5 and b["options"]["serves"] == "tight_images" and b["options"]["tight_images"] == "as_is"
               for b in photos.values())
    assert info["branches"]["face"]["options"]["serves"] == "all"
    # a second model of video crops that scores detected faces only (a tight photo reads as before)
    rc = tool.main(["--face", str(runs["face_frame"]), str(runs["face_frame"]), "--face-serves", "all", "detected_faces",
                    "--keep-audio-from", str(out), "--out", str(tmp_path / "w3")])
    info3 = json.loads((tmp_path / "w3" / "bundle.json").read_text())
    assert rc == 0 and [info3["branches"][n]["options"]["serves"] for n in ("face1", "face2")] == ["all", "detected_faces"]
    # a trial build's outputs go beside it, never over the shipped bundle's recorded outputs (the test fixture)
    assert (tmp_path / "w3" / "outputs.csv").is_file() and RECORDED.read_bytes() == recorded_before
    assert tool.main(["--face", str(runs["face_frame"]), "--face-serves", "all", "all", "--keep-audio-from", str(out),
                      "--out", str(tmp_path / "w4")]) == 2  # one value per --face model
    assert sorted(p.name for p in out.glob("face*.pt")) == ["face_fer2013_1.pt", "face_fer2013_2.pt", "face_video.pt"]
    assert tool.main(["--face", str(runs["face_frame"]), "--photo-face", str(runs["face_frame"]),
                      "--photo-face-scores", str(csv_path), str(csv_path), "--keep-audio-from", str(out),
                      "--out", str(tmp_path / "w2")]) == 2  # one score file per photo model
    # a third photo model beside a bundle's face model of video frames and its audio, both kept as they are
    kept = json.loads((out / "bundle.json").read_text())
    kept["decode"]["detect_every"] = 7  # a bundle that decodes otherwise than the library's defaults (5)
    kept["branches"]["face"]["temperature"] = 0.7
    (out / "bundle.json").write_text(json.dumps(kept))
    rc = tool.main(["--keep-face-from", str(out), "--photo-face", *[str(runs["face_frame"])] * 3,
                    "--keep-audio-from", str(out), "--face-weight", "0.6", "--audio-weight", "0.4",
                    "--out", str(tmp_path / "w3"), "--outputs", str(tmp_path / "w3.csv")])
    assert rc == 0
    three = json.loads((tmp_path / "w3" / "bundle.json").read_text())
    assert sorted(n for n in three["branches"] if n.startswith("face")) == ["face", "face_photo1", "face_photo2",
                                                                          "face_photo3"]
    face, was = three["branches"]["face"], kept["branches"]["face"]
    assert face["weight"] == pytest.approx(0.6) and face["options"] == was["options"]
    assert (face.get("temperature"), face["metrics"], face["data"]) == (was.get("temperature"), was["metrics"],
                                                                        was["data"])
    assert three["provenance"]["runs"]["face"] == kept["provenance"]["runs"]["face"]
    assert three["decode"] == kept["decode"]  # the kept face model is served as it was
    assert "face models of video frames as in" in three["provenance"]["weights"]
    assert all(three["branches"][f"face_photo{i}"]["weight"] == pytest.approx(0.6) for i in (1, 2, 3))
    from mmfer.engine.checkpoint import load_checkpoint as load_ckpt

    new_state, old_state = (load_ckpt(d / "face_video.pt")["state_dict"] for d in (tmp_path / "w3", out))
    assert new_state.keys() == old_state.keys() and all(torch.equal(new_state[k], old_state[k]) for k in new_state)
    _check_recorded(tmp_path / "w3", tmp_path / "w3.csv", [cremad_videos[0], cremad_audio[0]])
    # a kept pair of face models taken as_is (face_fer2013_1.pt, _2.pt) and photo models beside them: no file clash
    assert tool.main(["--face", str(runs["face_frame"]), str(runs["face_frame"]), "--tight-images", "as_is",
                      "--keep-audio-from", str(out), "--out", str(tmp_path / "pair"), "--outputs",
                      str(tmp_path / "pair.csv")]) == 0
    assert tool.main(["--keep-face-from", str(tmp_path / "pair"), "--photo-face", str(runs["face_frame"]),
                      "--keep-audio-from", str(out), "--out", str(tmp_path / "pair_photo"), "--outputs",
                      str(tmp_path / "pair_photo.csv")]) == 0
    assert sorted(p.name for p in (tmp_path / "pair_photo").glob("face*.pt")) == [
        "face_fer2013_1.pt", "face_fer2013_2.pt", "face_photo1.pt"]
    assert tool.main(["--keep-face-from", str(tmp_path), "--keep-audio-from", str(out),
                      "--out", str(tmp_path / "w5")]) == 2  # not a bundle: an error line, no traceback
    assert "not a bundle folder (no bundle.json)" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="2"):  # one or the other
        tool.main(["--face", str(runs["face_frame"]), "--keep-face-from", str(out), "--keep-audio-from", str(out),
                   "--out", str(tmp_path / "w4")])
    # rebuilt in place from its own face checkpoint: nothing in --out is deleted before the new bundle is whole
    rc = tool.main(["--face", str(out / "face_video.pt"), "--keep-audio-from", str(out), "--face-weight", "0.5",
                    "--audio-weight", "0.5", "--out", str(out), "--outputs", str(csv_path)])
    assert rc == 0 and sorted(p.name for p in out.glob("face*.pt")) == ["face_video.pt"]
    assert not list(tmp_path.glob(".weights.building-*"))
    # a build that fails leaves the bundle as it was
    import mmfer.bundle

    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def broken(*a, **k):
        raise MmferError("export failed")

    monkeypatch.setattr(mmfer.bundle, "write_bundle", broken)
    assert tool.main(["--face", str(runs["face_frame"]), "--keep-audio-from", str(out), "--out", str(out),
                      "--outputs", str(csv_path)]) == 2
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert not list(tmp_path.glob(".weights.building-*"))


# Face photos are cut from a frame made around them, by a detector whose float box can round one pixel the other
# way on another CPU: recorded on an Intel CPU with AVX-512, two of the six photos read up to 0.0009 apart on an
# AMD EPYC without it (videos and sounds: equal to 1e-6). The label must still be the same.
PHOTO_TOLERANCE = 3e-3


def _check_recorded(model, csv_path: Path, inputs) -> None:
    """Predict ``inputs`` with ``model`` and compare with the recorded CSV, row by row, within 1e-4 (photos
    ``PHOTO_TOLERANCE``), labels and modalities exactly."""
    from mmfer.predict import predict, read_predictions

    recorded = {r["path"]: r for r in read_predictions(csv_path)}
    result = predict(inputs, model=model, progress=False)
    assert len(recorded) == len(result.predictions)
    for p in result.predictions:
        rec = recorded[Path(p.path).resolve().relative_to(REPO).as_posix()]
        assert (rec["predicted"], rec["modalities"]) == (p.predicted, p.modalities), p.path
        photo = Path(p.path).suffix.lower() in (".png", ".jpg", ".jpeg")
        np.testing.assert_allclose([float(rec[e]) for e in EMOTIONS], p.probs, atol=PHOTO_TOLERANCE if photo else 1e-4,
                                   err_msg=p.path)
        assert rec["face_ratio"] == ("" if p.face_ratio is None else f"{p.face_ratio:.3f}")


@pytest.mark.skipif(not (DEFAULT_DIR / BUNDLE_FILE).is_file(),
                    reason="mmfer/weights/bundle.json not built yet (tools/build_default_model.py writes it)")
def test_shipped_default_model_reproduces_recorded_outputs():
    """The weights in the package load with weights_only=True and predict the fixtures as recorded."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_default_model", REPO / "tools" / "build_default_model.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    b = load_bundle("default")
    assert b.modalities() == ["face", "audio"]
    for br in b.branches:
        assert (DEFAULT_DIR / Path(br.path).name).stat().st_size < 10e6  # a few MB each
        torch.load(br.path, map_location="cpu", weights_only=True)
    assert RECORDED.is_file(), f"{RECORDED} missing: run tools/build_default_model.py --outputs-only"
    _check_recorded("default", RECORDED, tool.recorded_inputs())


def test_fuse_warns_when_a_run_was_retrained_after_its_scores(tmp_path, runs, caplog):
    import os

    from mmfer.fusion.fuse import fuse

    val = _copied_runs_with_scores(tmp_path, runs, seed=2)
    fuse(val, out=tmp_path / "fuse", method="weighted", cv_folds=3)
    assert "retrained since" not in caplog.text
    ckpt = tmp_path / "audio_cnn" / "best.pt"
    later = val[1].stat().st_mtime + 60
    os.utime(ckpt, (later, later))  # best.pt written after scores_Val.csv
    fuse(val, out=tmp_path / "fuse2", method="weighted", cv_folds=3)
    assert "retrained since?" in caplog.text and "audio_cnn" in caplog.text


def test_a_fuse_folder_of_a_method_predict_cannot_serve_says_why(tmp_path):
    """It said the method "cannot score a clip whose modalities are missing" of a clip that had them all."""
    import json

    from mmfer.errors import MmferError
    from mmfer.inference.bundle import load_bundle

    (tmp_path / "weights.json").write_text(json.dumps({"method": "stacker", "branches": []}))
    with pytest.raises(MmferError, match=r"predict cannot serve fusion method 'stacker': it has no way to fuse a "
                                         r"file that lacks a modality .*mmfer fuse --method weighted"):
        load_bundle(tmp_path)
