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
