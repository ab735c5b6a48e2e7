"""The shipped configs load, are typed, and build their models."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmfer.data.cache import PreprocessSettings
from mmfer.data.datasets import DATASETS
from mmfer.engine.config import load_train_config
from mmfer.engine.checks import check_consistency
from mmfer.errors import MmferError
from mmfer.models.registry import build_model

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))


def test_the_four_branch_configs_ship():
    assert {p.stem for p in CONFIGS} >= {"c3d", "cnn_lstm", "landmark_brnn", "audio_cnn"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_loads_and_builds(path):
    cfg = load_train_config(path)
    model = build_model(cfg.model.name, **cfg.model.kwargs)
    assert model.input_kind in DATASETS
    check_consistency(cfg, PreprocessSettings(), model.input_kind)  # default 112 px cache
    assert cfg.optim.epochs > 0 and cfg.data.batch_size > 0


def test_unknown_or_mistyped_keys_are_named(tmp_path):
    text = (CONFIGS[0]).read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text + "\nepochz: 3\n")
    with pytest.raises(MmferError, match="epochz"):
        load_train_config(bad)
    bad.write_text(text.replace("schedule: cosine", "schedule: linear"))
    with pytest.raises(MmferError, match="schedule"):
        load_train_config(bad)


def test_model_data_mismatch_is_named():
    cfg = load_train_config(next(p for p in CONFIGS if p.stem == "cnn_lstm"))
    with pytest.raises(MmferError, match="in_channels=1 but data.grayscale=False"):
        import dataclasses

        check_consistency(dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, grayscale=False)),
                          PreprocessSettings(), "face_sequence")
    stats = load_train_config(next(p for p in CONFIGS if p.stem == "audio_stats_ravdess"))
    with pytest.raises(MmferError, match="augment.cutmix pastes a patch .* audio_stats model's input has none"):
        check_consistency(dataclasses.replace(stats, augment=dataclasses.replace(stats.augment, cutmix=0.4)), None,
                          "audio_stats")
    photos = load_train_config(next(p for p in CONFIGS if p.stem == "face_frame_fer2013"))  # image files, no cache
    check_consistency(photos, None, "face_image")
    with pytest.raises(MmferError, match="in_channels=1 but data.grayscale=False"):
        check_consistency(dataclasses.replace(photos, data=dataclasses.replace(photos.data, grayscale=False)),
                          None, "face_image")


def test_a_config_built_in_python_is_checked_as_a_file_is():
    """OptimConfig(select_by="UAR") trained a whole run on accuracy and failed at its end; a section given as a
    plain dict failed deep in the engine. Both are said when the TrainConfig is made."""
    from mmfer.engine.config import ModelConfig, OptimConfig, TrainConfig

    model = ModelConfig("audio_cnn")
    for kw, message in ((dict(optim=OptimConfig(select_by="UAR")), r"optim.select_by: 'UAR' is not one of 'uar'"),
                        (dict(optim=OptimConfig(schedule="cos")), r"optim.schedule: 'cos' is not one of"),
                        (dict(device="gpu"), r"device: 'gpu' is not one of 'auto', 'cpu', 'cuda'"),
                        (dict(data={"batchsize": 2}), r"data: unknown key 'batchsize'; allowed: .*batch_size")):
        with pytest.raises(MmferError, match=message):
            TrainConfig(name="x", model=model, **kw)
    cfg = TrainConfig(name="x", model={"name": "audio_cnn"}, data={"batch_size": 2})
    assert cfg.model == model and cfg.data.batch_size == 2 and cfg.data.train_split == "Train"
    # a GPU of several, as --device names it (the config refused "cuda:1" that the command line takes)
    assert TrainConfig(name="x", model=model, device="cuda:1").device == "cuda:1"
    with pytest.raises(MmferError, match=r"device: 'cuda:x'"):
        TrainConfig(name="x", model=model, device="cuda:x")


def test_a_shipped_config_is_found_by_its_name_from_any_folder(tmp_path, monkeypatch, caplog):
    """An install from a wheel has no configs/ folder beside the user's work: `mmfer train c3d` (or the README's
    configs/c3d.yaml, typed in another folder) reads the shipped config; a file of that name here comes first."""
    import logging

    from mmfer.engine.config import find_config, shipped_config_dir, shipped_configs

    shipped = shipped_config_dir()
    assert shipped is not None and shipped_configs() == [p.name for p in CONFIGS]
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.INFO, logger="mmfer.engine.config"):
        for name in ("c3d", "c3d.yaml", "configs/c3d.yaml"):
            assert find_config(name) == shipped / "c3d.yaml"
    assert "configs/c3d.yaml: not in this folder; using the shipped config" in caplog.text
    assert load_train_config("landmark_brnn").model.name == "landmark_brnn"
    (tmp_path / "configs").mkdir()
    own = tmp_path / "configs" / "c3d.yaml"
    own.write_text((shipped / "c3d.yaml").read_text().replace("epochs: ", "epochs: 1"))  # the user's own copy
    assert find_config("configs/c3d.yaml") == Path("configs/c3d.yaml")
    assert find_config("configs/c3d") == Path("configs/c3d.yaml")  # named without .yaml: still the user's own
    (tmp_path / "cnn_lstm.yaml").write_text("name: mine\n")
    assert find_config("cnn_lstm") == Path("cnn_lstm.yaml")
    with pytest.raises(MmferError, match=r"nope: config file not found; the shipped ones, by name .*c3d, cnn_lstm"):
        find_config("nope")
    with pytest.raises(MmferError, match=r"elsewhere/c3d\.yaml: config file not found"):  # a folder of its own
        find_config("elsewhere/c3d.yaml")


def test_the_wheel_carries_the_configs(tmp_path):
    """setup.py's build hook copies configs/*.yaml into the wheel as mmfer/configs, and the source distribution
    grafts configs/, so a wheel built from it carries them too."""
    import runpy

    root = Path(__file__).resolve().parents[2]
    hook = runpy.run_path(str(root / "setup.py"), run_name="setup_hook")  # setup() itself runs only as __main__
    stale = tmp_path / "mmfer" / "configs" / "renamed_since.yaml"  # left by an earlier build
    stale.parent.mkdir(parents=True)
    stale.write_text("name: old\n")
    written = hook["copy_configs"](tmp_path)
    assert [p.name for p in written] == [p.name for p in CONFIGS] and not stale.exists()
    assert all((tmp_path / "mmfer" / "configs" / p.name).read_bytes() == p.read_bytes() for p in CONFIGS)
    # the build_py command does it after the packages' own files, and not for an editable install
    from setuptools.dist import Distribution

    for editable, where in ((False, tmp_path / "wheel"), (True, tmp_path / "editable")):
        command = hook["BuildPyWithConfigs"](Distribution({"name": "mmfer", "packages": []}))
        command.build_lib, command.editable_mode = str(where), editable
        command.ensure_finalized()
        command.run()
        assert sorted(p.name for p in (where / "mmfer" / "configs").glob("*.yaml")) == (
            [] if editable else [p.name for p in CONFIGS])
    manifest = (root / "MANIFEST.in").read_text().split("\n")
    assert {"graft configs", "graft tests", "graft docs"} <= set(manifest)
