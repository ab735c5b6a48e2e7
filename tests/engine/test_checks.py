"""The checks of a run's data before its first epoch (mmfer.engine.checks)."""

from __future__ import annotations

import logging

import pytest

from mmfer.data.config import DataConfig
from mmfer.engine.checks import check_val_and_classes
from mmfer.errors import MmferError
from mmfer.labels import EMOTIONS


class _ds(list):
    """A dataset as the checks see it: its items' labels (-1: none)."""

    @property
    def labels(self):
        return list(self)

    def describe_skipped(self):
        return ""


def test_absent_classes_are_said_per_split(caplog):
    caplog.set_level(logging.WARNING)
    every = list(range(7))
    no_surprise = [0, 1, 2, 3, 4, 5] * 2
    check_val_and_classes(_ds(no_surprise), _ds([0, 1, 2, 3, 4] * 2), [], data="cache", kind="c3d",
                          dcfg=DataConfig(), holdout=False, warn=True)
    assert "no usable labelled Train clip of Surprise: the model never learns that class" in caplog.text
    assert "no usable labelled Val clip of Sad, Surprise: uar (mean class accuracy) averages over the 5" in caplog.text
    caplog.clear()
    check_val_and_classes(_ds(every), _ds(every), [], data="cache", kind="c3d", dcfg=DataConfig(), holdout=False,
                          warn=True)
    assert caplog.text == ""  # every class on both sides: nothing to say
    check_val_and_classes(_ds(every), _ds([3, 3]), [], data="cache", kind="c3d", dcfg=DataConfig(), holdout=False,
                          warn=True)
    assert f"every usable labelled Val clip is {EMOTIONS[3]}" in caplog.text


def test_a_val_with_nothing_to_measure_is_an_error():
    with pytest.raises(MmferError, match="no usable labelled clip in split 'Val'"):
        check_val_and_classes(_ds([0, 1]), _ds([-1, -1]), [1, 2], data="cache", kind="c3d", dcfg=DataConfig(),
                              holdout=False, warn=True)


def test_augment_keys_a_model_never_reads_are_said_by_name(caplog):
    """freq_warp on the statistics, or rotation on landmarks, would have no effect: a recipe that sets them must
    not seem to have tried them. Values left at their defaults are not reported (every config carries them)."""
    import dataclasses
    import glob

    from mmfer.data.config import AugmentConfig
    from mmfer.engine.checks import AUGMENT_READ_BY, check_consistency, unread_augment
    from mmfer.engine.config import ModelConfig, TrainConfig, load_train_config
    from mmfer.engine.train import build_run_model

    # every key with an effect of its own is placed (enabled switches all; mixup and cutmix act in the step)
    assert {f.name for f in dataclasses.fields(AugmentConfig)} - set(AUGMENT_READ_BY) == {"enabled", "mixup", "cutmix"}
    stats = AugmentConfig(freq_warp=(0.9, 1.1), speed=(0.9, 1.1), rotation=0.0)
    assert unread_augment(stats, "audio_stats") == ["freq_warp"]  # speed is read; rotation is its default
    assert unread_augment(stats, "logmel") == []
    assert unread_augment(AugmentConfig(rotation=10.0, stats_copies=4), "landmarks") == ["rotation", "stats_copies"]
    for path in sorted(glob.glob("configs/*.yaml")):  # the shipped recipes set nothing in vain
        config = load_train_config(path)
        kind = build_run_model(config)[1]
        assert unread_augment(config.augment, kind) == [], path
        caplog.clear()
        with caplog.at_level(logging.WARNING):  # nor anything else check_consistency would warn of
            check_consistency(dataclasses.replace(config, name=f"shipped {path}"), None, kind)
        assert caplog.text == "", path
    config = TrainConfig(name="s", model=ModelConfig(name="audio_stats"), augment=stats)
    with caplog.at_level(logging.WARNING):
        check_consistency(config, None, "audio_stats")
    assert ("config 's': augment.freq_warp: not read by model audio_stats (its input is audio_stats): it has no "
            "effect on this run" in caplog.text)
    caplog.clear()
    with caplog.at_level(logging.WARNING):  # said once a process, not once per fold of a --folds run
        check_consistency(config, None, "audio_stats")
    assert caplog.text == ""
    with caplog.at_level(logging.WARNING):  # augmentation off: every key set beside it, mixup too, is in vain
        check_consistency(dataclasses.replace(config, augment=dataclasses.replace(stats, enabled=False, mixup=0.4)),
                          None, "audio_stats")
    assert ("augment.mixup, augment.speed, augment.freq_warp: augment.enabled is false (no augmentation at all, "
            "mixup and cutmix included): they have no effect" in caplog.text)
    caplog.clear()
    with caplog.at_level(logging.WARNING):  # off, and nothing set beside it (landmark_brnn.yaml): nothing to say
        check_consistency(dataclasses.replace(config, augment=AugmentConfig(enabled=False)), None, "audio_stats")
    assert caplog.text == ""


def test_data_keys_a_model_never_reads_are_said_by_name(caplog):
    """data.image_size on a voice model, data.n_mels on a face model: valid keys, no effect, said once."""
    import dataclasses

    from mmfer.data.config import DataConfig
    from mmfer.engine.checks import DATA_READ_BY, check_consistency, unread_data
    from mmfer.engine.config import ModelConfig, TrainConfig

    assert set(DATA_READ_BY) < {f.name for f in dataclasses.fields(DataConfig)}
    data = DataConfig(image_size=64, n_mels=40, trim_silence=True)
    assert unread_data(data, "logmel") == ["image_size"]
    assert unread_data(data, "face_image") == ["n_mels", "trim_silence"]
    assert unread_data(DataConfig(image_size=64), "face_window") == []  # every face kind resizes its faces
    assert unread_data(DataConfig(batch_size=8, workers=2), "landmarks") == []  # read by every kind
    config = TrainConfig(name="d", model=ModelConfig(name="audio_stats"), data=data)
    with caplog.at_level(logging.WARNING):
        check_consistency(config, None, "audio_stats")
        check_consistency(config, None, "audio_stats")  # once a process
    assert caplog.text.count("data.image_size, data.n_mels: not read by model audio_stats (its input is "
                             "audio_stats): they have no effect on this run") == 1


def test_settings_in_vain_together_are_said(caplog):
    """Each valid alone; together they do nothing (a freeze with nothing loaded) or not what they say."""
    import dataclasses

    from mmfer.engine.checks import check_consistency
    from mmfer.engine.config import InitConfig, ModelConfig, OptimConfig, TrainConfig

    config = TrainConfig(name="v", model=ModelConfig(name="audio_stats"), optim=OptimConfig(epochs=2, warmup_epochs=5),
                         init=InitConfig(freeze_encoder_epochs=3))
    with caplog.at_level(logging.WARNING):
        check_consistency(config, None, "audio_stats")
    assert "optim.warmup_epochs 5 > optim.epochs 2: the learning rate never reaches optim.lr 0.001" in caplog.text
    assert "init.freeze_encoder_epochs 3 freezes an encoder loaded by init.encoder_from, which is not set" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        check_consistency(dataclasses.replace(config, name="w", optim=OptimConfig(epochs=2, warmup_epochs=2),
                                              init=InitConfig()), None, "audio_stats")
    assert caplog.text == ""
    with pytest.raises(MmferError, match="freeze_encoder_epochs"):
        InitConfig(freeze_encoder_epochs=-3)
