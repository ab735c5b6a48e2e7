"""mmfer.engine.timing: the time a run has left, said after each epoch (a 5-fold CPU run takes hours), and why
``amp: true`` trains in fp32 on a CPU without native bf16."""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path

import pytest
import torch

from mmfer.engine.timing import format_duration, time_left

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from test_speech_list import _corpora, _write_list  # noqa: E402  (tone corpora of the speech-list tests)


@pytest.mark.parametrize("seconds,said", [(0.2, "about 1 s"), (7, "about 7 s"), (44, "about 40 s"),
                                          (100, "about 2 min"), (59 * 60, "about 59 min"), (3600, "about 1 h"),
                                          (4 * 3600 + 52 * 60, "about 4 h 50 min"), (-5, "about 1 s")])
def test_durations_read_as_forecasts(seconds, said):
    assert format_duration(seconds) == said


def test_time_left_counts_the_epochs_and_folds_still_to_run():
    # the first epoch also paid for start-up: the median of the last three is the pace
    assert time_left([400.0, 180.0, 186.0], epochs=20) == f"{format_duration(17 * 186)} left"
    assert time_left([180.0, 186.0, 190.0], epochs=20, fold_info={"index": 1, "of": 5}) == (
        f"{format_duration(17 * 186)} left in this fold, {format_duration(17 * 186 + 4 * 20 * 186)} with the 4 "
        "folds after this one")
    assert time_left([60.0] * 20, epochs=20, fold_info={"index": 4, "of": 5}) == (
        "about 20 min left for the 1 fold after this one")
    assert time_left([60.0] * 20, epochs=20, fold_info={"index": 5, "of": 5}) is None  # nothing left to say
    from mmfer.engine.timing import folds_to_come

    with folds_to_come(0):  # --only-folds 3,4 in fold 4: fold 5 is not this process's ("2 h 15 min" it said)
        assert time_left([60.0] * 10, done=10, epochs=20, fold_info={"index": 4, "of": 5}) == "about 10 min left"
    with folds_to_come(1):
        assert time_left([60.0] * 20, epochs=20, fold_info={"index": 1, "of": 5}) == (
            "about 20 min left for the 1 fold after this one")
    assert time_left([60.0], done=19, epochs=20) == "about 60 s left"  # a resumed log without older figures
    assert time_left([], epochs=20) is None


def test_amp_in_fp32_on_a_cpu_without_bf16_says_why(monkeypatch):
    from mmfer.engine import device

    cpu = torch.device("cpu")
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: False)
    monkeypatch.setattr(device, "_NOTED", [])
    assert "no native bf16" in device.precision_note(cpu, True, "fp32")
    assert device.precision_note(cpu, True, "fp32") == ""  # once a process, not once per fold
    monkeypatch.setattr(device, "_NOTED", [])
    assert device.precision_note(cpu, False, "fp32") == ""  # fp32 asked for: nothing to explain
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: True)
    assert device.precision_note(cpu, True, "fp32") == ""  # Conv3d without AMX says its own reason


def test_a_fold_run_says_after_each_epoch_how_long_it_and_the_folds_after_it_have_left(tmp_path, caplog):
    from mmfer.engine.config import DataConfig, ModelConfig, OptimConfig, TrainConfig
    from mmfer.engine.folds import train_folds
    from mmfer.labels import EMOTIONS

    _write_list(tmp_path / "list.csv", _corpora(tmp_path, classes_of={"a": list(EMOTIONS)}, speakers=2, per=1))
    cfg = TrainConfig(name="t", model=ModelConfig(name="audio_stats", kwargs={"hidden": 8}),
                      data=DataConfig(batch_size=4), optim=OptimConfig(epochs=2), device="cpu")
    with caplog.at_level(logging.INFO, logger="mmfer.engine.train"):
        train_folds(cfg, data=tmp_path / "list.csv", out=tmp_path / "folds", folds=2, progress=False)
    said = [r.getMessage() for r in caplog.records if re.match(r"epoch \d/2:", r.getMessage())]
    assert len(said) == 4, said
    assert re.search(r"\| \d+ s, about \d+ s left in this fold, about \d+ s with the 1 fold after this one$", said[0])
    assert re.search(r"\| \d+ s, about \d+ s left for the 1 fold after this one$", said[1])
    assert re.search(r"\| \d+ s, about \d+ s left in this fold$", said[2]) is None  # the last fold has no others
    assert re.search(r"\| \d+ s, about \d+ s left$", said[2]) and re.search(r"\| \d+ s$", said[3])
