"""Checks of a run before its first epoch: a config whose model and data agree (else shape errors), a Val that can
measure something, and the classes each split lacks (said, since a class with no training clip is never learnt and
one absent from Val changes what uar means); and what differs between a run's saved config and the current one."""

from __future__ import annotations

import logging
from typing import Any

from mmfer.data.kinds import KINDS
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


def config_differences(saved: dict[str, Any], current: dict[str, Any], prefix: str = "") -> list[str]:
    """Each key whose value differs between a run's saved config and the current one, as ``a.b: x (run) != y (now)``."""
    out = []
    for k in sorted(set(saved) | set(current)):
        a, b = saved.get(k), current.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_differences(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}: {a!r} (run) != {b!r} (now)")
    return out


def check_consistency(config: Any, settings: Any, kind: str) -> None:
    """Catch model/data mismatches before training, naming both keys (else they surface as shape errors)."""
    kw, d, where = dict(config.model.kwargs), config.data, f"config {config.name!r}"
    size = d.image_size or (settings.crop_size if settings is not None else None)
    problems = []
    if KINDS[kind].images and kw.get("in_channels", 3) != (1 if d.grayscale else 3):
        problems.append(f"model.kwargs.in_channels={kw.get('in_channels', 3)} but data.grayscale={d.grayscale} "
                        f"(use in_channels {1 if d.grayscale else 3})")
    if kind == "face_window":
        if kw.get("clip_len", 16) != d.clip_len:
            problems.append(f"model.kwargs.clip_len={kw.get('clip_len', 16)} but data.clip_len={d.clip_len}")
        if size is not None and kw.get("input_size", 112) != size:
            problems.append(f"model.kwargs.input_size={kw.get('input_size', 112)} but faces are {size} px "
                            f"(data.image_size={d.image_size}, cache crop_size={settings.crop_size})")
    if d.device_images and kind != "face_image":
        problems.append(f"data.device_images holds single face images on the device, but a {kind} model reads "
                        "clips through its data loader (set it to false)")
    if kind in ("landmarks", "audio_stats") and config.augment.enabled and config.augment.cutmix:
        problems.append(f"augment.cutmix pastes a patch of a picture or spectrogram, and a {kind} model's input has "
                        "none (it would be skipped); use augment.mixup")
    if kind == "logmel" and kw.get("n_mels", 64) != d.n_mels:
        problems.append(f"model.kwargs.n_mels={kw.get('n_mels', 64)} but data.n_mels={d.n_mels}")
    if problems:
        raise MmferError(f"{where}: {'; '.join(problems)}")
    _warn_in_vain(config, where)
    if not config.augment.enabled:
        unread = _set_augment(config.augment)
        why = "augment.enabled is false (no augmentation at all, mixup and cutmix included)"
    else:
        unread = unread_augment(config.augment, kind)
        why = f"not read by model {config.model.name} (its input is {kind})"
    if unread and (where, kind, tuple(unread)) not in _SAID:  # once a process, not once per fold
        _SAID.add((where, kind, tuple(unread)))
        log.warning("%s: %s: %s: %s no effect on this run", where, ", ".join(f"augment.{name}" for name in unread),
                    why, "it has" if len(unread) == 1 else "they have")
    unread = unread_data(d, kind)
    if unread and (where, kind, "data", tuple(unread)) not in _SAID:
        _SAID.add((where, kind, "data", tuple(unread)))
        log.warning("%s: %s: not read by model %s (its input is %s): %s no effect on this run", where,
                    ", ".join(f"data.{name}" for name in unread), config.model.name, kind,
                    "it has" if len(unread) == 1 else "they have")


def _warn_in_vain(config: Any, where: str) -> None:
    """Settings that are valid alone but do nothing, or not what they say, together: said once a process."""
    o, init = config.optim, config.init
    said = []
    if o.warmup_epochs > o.epochs:
        said.append(f"optim.warmup_epochs {o.warmup_epochs:g} > optim.epochs {o.epochs}: the learning rate never "
                    f"reaches optim.lr {o.lr:g}")
    if init.freeze_encoder_epochs and not init.encoder_from:
        said.append(f"init.freeze_encoder_epochs {init.freeze_encoder_epochs} freezes an encoder loaded by "
                    "init.encoder_from, which is not set: nothing is frozen")
    for text in said:
        if (where, text) not in _SAID:
            _SAID.add((where, text))
            log.warning("%s: %s", where, text)


_SAID: set[tuple] = set()  # the warnings of settings in vain given in this process
_FACE_IMAGES = {"face_image", "face_window", "face_sequence"}
_SOUND = {"logmel", "audio_stats"}
# the augment keys each input kind's dataset reads (mixup and cutmix: any kind, cutmix checked above)
AUGMENT_READ_BY = {
    **{name: _FACE_IMAGES for name in ("flip", "crop_scale", "brightness", "contrast", "rotation", "translate",
                                       "erasing", "occlusion", "video")},
    **{name: _SOUND for name in ("speed", "reverb", "eq", "noise", "noise_snr", "codec")},
    "stats_copies": {"audio_stats"},
    **{name: {"logmel"} for name in ("freq_warp", "spec_augment", "freq_masks", "freq_width", "time_masks",
                                     "time_width")},
}


# the data keys that only some input kinds' datasets read (the others, splits, batches, workers, balance: any kind)
DATA_READ_BY = {
    "clip_len": {"face_window"}, "stride": {"face_window"}, "num_frames": {"face_sequence"},
    **{name: _FACE_IMAGES for name in ("image_size", "grayscale", "equalize")},
    "eval_views": {"face_image"}, "device_images": {"face_image"},
    "max_len": {"landmarks"}, "interpolate": {"landmarks"},
    "n_mels": {"logmel"},
    **{name: _SOUND for name in ("audio_seconds", "trim_silence", "trim_db")},
}


def unread_data(data: Any, kind: str) -> list[str]:
    """The data keys set away from their defaults that a ``kind`` model's dataset never reads (``n_mels`` for a
    face model, ``image_size`` for a voice model): said, as for augment keys."""
    import dataclasses

    defaults = type(data)()
    return [f.name for f in dataclasses.fields(data) if f.name in DATA_READ_BY and kind not in DATA_READ_BY[f.name]
            and getattr(data, f.name) != getattr(defaults, f.name)]


def unread_augment(augment: Any, kind: str) -> list[str]:
    """The augment keys set away from their defaults that a ``kind`` model's dataset never reads: said, since a
    recipe that sets them (``freq_warp`` on the statistics, ``rotation`` on landmarks) would otherwise seem to
    have been tried. Defaults are not reported: every config carries them."""
    return [name for name in _set_augment(augment) if name in AUGMENT_READ_BY and kind not in AUGMENT_READ_BY[name]]


def _set_augment(augment: Any) -> list[str]:
    """The augment keys (less ``enabled``) set away from their defaults."""
    import dataclasses

    defaults = type(augment)()
    return [f.name for f in dataclasses.fields(augment)
            if f.name != "enabled" and getattr(augment, f.name) != getattr(defaults, f.name)]
