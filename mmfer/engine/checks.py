"""Checks of a run's data before its first epoch: a Val that can measure something, and the classes each split
lacks (said, since a class with no training clip is never learnt and one absent from Val changes what uar means)."""

from __future__ import annotations

import logging

from mmfer.errors import MmferError
from mmfer.labels import EMOTIONS, NUM_CLASSES

log = logging.getLogger(__name__)


def check_val_and_classes(train_ds, val_ds, val_records, *, data, kind: str, dcfg, holdout: bool, warn: bool) -> None:
    """Training needs something to measure on: a Val without one usable labelled clip (every Val clip failed
    preprocessing, has no face or no sound, or no label) would train on with "Val accuracy nan" and keep epoch
    1 as best, so it is an error saying what to do. A split of a single class is allowed, with a warning:
    its figures say little."""
    if not any(lab >= 0 for lab in val_ds.labels):
        where = f"the held-out part of {dcfg.train_split}" if holdout else f"split {dcfg.val_split!r}"
        why = val_ds.describe_skipped() or ("no clip has a label" if len(val_ds) else "it is empty")
        raise MmferError(
            f"{data}: no usable labelled clip in {where} for a {kind} model ({len(val_records)} clip(s): {why}), so "
            "no epoch could be measured or selected. Fix those clips (see the failures of `mmfer preprocess`), "
            f"or remove the {dcfg.val_split} split so that part of {dcfg.train_split} is held out")
    if not warn:
        return
    for name, labels in ((dcfg.train_split, train_ds.labels), (dcfg.val_split, val_ds.labels)):
        classes = sorted({int(lab) for lab in labels if lab >= 0})
        if len(classes) == 1:
            log.warning("%s: every usable labelled %s clip is %s: a single class, so accuracy and uar on it say "
                        "little (and a model trained on it can only answer that class)", data, name,
                        EMOTIONS[classes[0]])
        elif len(classes) < NUM_CLASSES:
            absent = ", ".join(EMOTIONS[c] for c in range(NUM_CLASSES) if c not in classes)
            if name == dcfg.train_split:
                log.warning("%s: no usable labelled %s clip of %s: the model never learns %s", data, name, absent,
                            "that class" if absent.count(",") == 0 else "those classes")
            else:
                log.warning("%s: no usable labelled %s clip of %s: uar (mean class accuracy) averages over the %d "
                            "classes present", data, name, absent, len(classes))
