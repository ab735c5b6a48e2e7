"""The typed training config: one YAML file describes a branch run completely.

Frozen dataclasses loaded with :func:`mmfer.config.load_yaml`, so a misspelt key fails by name
instead of silently training with a default.
"""

from __future__ import annotations

import logging
import re

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from mmfer.config import check_fields, check_range, from_dict, load_yaml, to_dict
from mmfer.errors import MmferError
# the data: and augment: sections live with the data code that reads them; still importable from here
from mmfer.data.config import AugmentConfig, DataConfig  # noqa: F401

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelConfig:
    """Which registry builder makes the network, and its keyword arguments."""

    name: str  # a registered model: c3d, video3d, cnn_lstm, landmark_brnn, audio_cnn, audio_stats, face_frame
    kwargs: dict[str, Any] = field(default_factory=dict)  # its builder's keyword arguments (mmfer.models.registry)


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with a per-step schedule: linear warmup, then cosine, step or constant."""

    lr: float = 1e-3  # peak learning rate, reached after the warmup
    weight_decay: float = 0.01  # AdamW's decoupled weight decay
    epochs: int = 30  # passes over the training clips (--epochs overrides it)
    warmup_epochs: float = 1.0  # linear rise from 0 to lr over this many epochs (fractions allowed)
    schedule: Literal["cosine", "step", "constant"] = "cosine"  # after the warmup: cosine to 0, steps, or flat
    step_epochs: int = 10  # step schedule: multiply lr by step_gamma every step_epochs
    step_gamma: float = 0.1  # (the factor of the step schedule)
    grad_clip: float | None = 5.0  # max gradient norm; None disables clipping
    # Val metric that picks best.pt; "last" keeps the final epoch, so a figure reported on Val is not
    # inflated by picking the epoch on it (fix the number of epochs in advance instead)
    select_by: Literal["uar", "accuracy", "last"] = "uar"
    # exponential moving average of the weights (0 = off, e.g. 0.999): Val, best.pt and scores use the
    # averaged weights, which generalise better than the last step's at no training cost; each step's
    # weights count decay ** age, normalised, so a short run is not pulled back to its untrained start
    ema_decay: float = 0.0

    def __post_init__(self) -> None:
        check_range(self, "lr", low=0.0, low_open=True)
        check_range(self, "weight_decay", low=0.0)
        check_range(self, "epochs", low=1)
        check_range(self, "warmup_epochs", low=0.0)
        check_range(self, "step_epochs", low=1)
        check_range(self, "step_gamma", low=0.0, high=1.0, low_open=True)
        check_range(self, "grad_clip", low=0.0, low_open=True)
        check_range(self, "ema_decay", low=0.0, high=1.0, high_open=True)


@dataclass(frozen=True)
class LossConfig:
    """Cross-entropy options; class_balanced weights classes by inverse Train frequency (AFEW is skewed).

    ``balance_power`` softens the weights to (inverse frequency) ** power: 1 weighs every class alike,
    0.5 (square root) lifts a rare class without giving up as much accuracy on the common ones.
    """

    class_balanced: bool = False  # weigh each class's loss by its inverse Train frequency
    balance_power: float = 1.0  # that weight to this power (see above)
    label_smoothing: float = 0.0  # share of each target spread over the other classes
    # speech lists with a corpus column: a clip's softmax runs over the classes its corpus has, so a corpus
    # without a class (nEMO: Disgust) gives that class's logit no gradient (mmfer.engine.losses)
    mask_absent_classes: bool = True

    def __post_init__(self) -> None:
        check_range(self, "balance_power", low=0.0)
        check_range(self, "label_smoothing", low=0.0, high=1.0, high_open=True)


@dataclass(frozen=True)
class DistillConfig:
    """Knowledge distillation from trained models of the same input kind (e.g. the fold models of two seeds
    into one student per fold, so that predict pays for one model and keeps part of the ensemble's gain).

    The teachers run frozen, in eval mode, on the very batch the student sees (same augmentation), and the loss
    is ``(1 - weight) * labels' loss + weight * T^2 * KL(teachers || student)`` at temperature ``T``, the
    teachers' tempered probabilities averaged. In ``--folds`` runs ``{fold}`` in a teacher path is the fold
    number (1-based), and a teacher that did not hold out this same fold of the same data is an error: a teacher
    that heard the fold's speakers would leak them into its out-of-fold figure.

    Or ``targets``: the teachers' probabilities given per training clip in a score CSV, for teachers that read
    another form of the same clip (a photo model teaching the model of video crops cut from those photos);
    they are tempered by ``T`` and blended under mixup and cutmix as the clips are.
    """

    # teacher checkpoints (.pt from `mmfer train`, {fold} = the fold number in --folds runs); none: no distillation
    teachers: tuple[str, ...] = ()
    # or their probabilities, given: a score CSV with a row per training clip id (`mmfer scores` of the teachers on
    # the clips' other form, averaged by `mmfer fuse --method mean`); its teachers must not have trained on Val
    targets: str | None = None
    weight: float = 0.5  # share of the loss that matches the teachers; the labels' loss keeps 1 - weight
    temperature: float = 2.0  # softens teachers and student alike, so the teachers' second choices teach too

    def __post_init__(self) -> None:
        check_range(self, "weight", low=0.0, high=1.0)
        check_range(self, "temperature", low=0.0, low_open=True)
        if self.teachers and self.targets:
            raise MmferError("targets: give teachers (models run on each batch) or targets (their probabilities, "
                             "given in a file), not both")


ADVERSARY_TARGETS = ("corpus", "speaker")


@dataclass(frozen=True)
class AdversaryConfig:
    """Domain-adversarial training (mmfer.engine.adversary): a head guesses each training clip's corpus or
    speaker from the features the classifier reads, and its gradient reaches the model reversed, so the model
    learns features that do not tell the training corpora (channel, room, language) or speakers apart."""

    RENAMED: ClassVar[dict[str, str]] = {"weight": "scale"}  # older names (weight: for 23 minutes on 2026-12-06)

    # what the head's gradient is multiplied by on its way into the model (reversed), at the end of its ramp from
    # 0; the head's own loss always counts whole. 0: no adversary
    scale: float = 0.0
    # corpus: a speech list's corpus column (`mmfer train --data LIST.csv`); speaker: its speaker column, or
    # RAVDESS or CREMA-D file names
    by: str = "corpus"
    hidden: int = 64  # units of the head's hidden layer

    def __post_init__(self) -> None:
        check_range(self, "scale", low=0.0)
        check_range(self, "hidden", low=1)
        if self.by not in ADVERSARY_TARGETS:
            raise MmferError(f"by: {self.by!r} is not one of {', '.join(ADVERSARY_TARGETS)}")


@dataclass(frozen=True)
class InitConfig:
    """Two-stage fine-tuning: start the encoder from a face model (e.g. trained on FER2013)."""

    encoder_from: str | None = None  # checkpoint path (.pt from `mmfer train`) or None
    freeze_encoder_epochs: int = 0  # keep the loaded encoder frozen for this many first epochs
    # a local weight file for the branch's backbone (torchvision ResNet-18 / VGG, pytorchvideo, C3D Sports-1M
    # state dicts), matched by name and shape (mmfer.models.pretrained); nothing is downloaded
    backbone_from: str | None = None

    def __post_init__(self) -> None:
        check_range(self, "freeze_encoder_epochs", low=0)


def is_device_name(text: Any, *, auto: bool = True) -> bool:
    """A device as every command names it: cpu, cuda, cuda:N, and (``auto``) auto, CUDA where present."""
    names = r"cpu|cuda(:\d+)?"
    return re.fullmatch(f"auto|{names}" if auto else names, str(text)) is not None


@dataclass(frozen=True)
class TrainConfig:
    """One branch run: model, data, optimiser, loss, augmentation, initialisation, teachers, adversary, device."""

    name: str  # the run's name in logs and in the bundle (not its folder: that is --out)
    model: ModelConfig
    seed: int = 0  # seeds Python, numpy and torch: initial weights, draws, augmentation (--seed overrides it)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    init: InitConfig = field(default_factory=InitConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    adversary: AdversaryConfig = field(default_factory=AdversaryConfig)
    device: str = "auto"  # auto (CUDA where present), cpu, cuda or cuda:N, as --device takes it
    # mixed precision in training: fp16 on CUDA, bf16 on CPUs that compute it natively (AMX / AVX512-BF16;
    # elsewhere fp32). Evaluation and scoring on CPU stay fp32.
    amp: bool = True

    def __post_init__(self) -> None:
        check_fields(self)  # what a YAML file is checked for, for a config built in Python
        check_range(self, "seed", low=0)  # numpy's generators take none below 0
        if not is_device_name(self.device):
            raise MmferError(f"device: {self.device!r} is not one of 'auto', 'cpu', 'cuda', 'cuda:N'")
        if self.adversary.scale and self.data.device_images:
            raise MmferError("adversary: not supported with data.device_images (the GPU recipe's batches carry no "
                             "domains) yet; set one of them off")


def shipped_config_dir() -> Path | None:
    """The train configs that come with mmfer: ``mmfer/configs`` in an install from a wheel (setup.py copies
    them there), else a source checkout's ``configs/``; None where neither is."""
    package = Path(__file__).resolve().parents[1]
    for folder in (package / "configs", package.parent / "configs"):
        # a checkout's own configs/ only: site-packages/configs may be another project's
        if folder.is_dir() and (folder.parent == package or (package.parent / "pyproject.toml").is_file()):
            return folder
    return None


def shipped_configs() -> list[str]:
    """The names of the shipped train configs (``c3d.yaml``, ...), sorted; empty where none are found."""
    folder = shipped_config_dir()
    return sorted(p.name for p in folder.glob("*.yaml")) if folder is not None else []


def find_config(path: str | Path) -> Path:
    """``path`` where that file exists; else the shipped config it names, as ``c3d``, ``c3d.yaml`` or
    ``configs/c3d.yaml`` (the README's form, which an install from a wheel, or another working folder, lacks).
    A missing file that names no shipped config is an error listing the shipped ones."""
    path = Path(path)
    if path.is_file():
        return path
    name = path.name if path.suffix in (".yaml", ".yml") else f"{path.name}.yaml"
    if (path.parent / name).is_file():  # `c3d` for a c3d.yaml of the user's own, here: that one first
        return path.parent / name
    folder = shipped_config_dir()
    if path.parent in (Path("."), Path("configs")) and folder is not None and (folder / name).is_file():
        log.info("%s: not in this folder; using the shipped config %s", path, folder / name)
        return folder / name
    names = ", ".join(p.removesuffix(".yaml") for p in shipped_configs())
    shipped = f"; the shipped ones, by name (as `mmfer train c3d ...`): {names}" if names else ""
    raise MmferError(f"{path}: config file not found{shipped}")


def load_train_config(path: str | Path) -> TrainConfig:
    """Read a YAML train config (a path, or a shipped config's name: :func:`find_config`); unknown or mistyped
    keys, model names and model arguments are an error naming them, before any data is read."""
    from mmfer.models.registry import check_model_args, check_model_builds

    path = find_config(path)
    config = load_yaml(TrainConfig, path)
    try:
        check_model_args(config.model.name, config.model.kwargs)
    except MmferError as e:
        raise MmferError(f"{path}: {e}") from None
    try:
        check_model_builds(config.model.name, config.model.kwargs)
    except MmferError as e:  # a value the builder refuses (dropout 2), or an optional package missing
        raise MmferError(f"{path}: model.kwargs: {e}") from None
    return config


def config_from_dict(data: dict[str, Any], *, where: str = "train config") -> TrainConfig:
    """Rebuild a config from its plain form (e.g. the one stored in a checkpoint)."""
    return from_dict(TrainConfig, data, where=where)


def config_to_plain(config: TrainConfig) -> dict[str, Any]:
    """The config as JSON/YAML-safe plain types (tuples become lists)."""
    return _plain(to_dict(config))


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj
