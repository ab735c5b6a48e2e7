"""The typed training config: one YAML file describes a branch run completely.

Frozen dataclasses loaded with :func:`mmfer.config.load_yaml`, so a misspelt key fails by name
instead of silently training with a default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mmfer.config import check_range, from_dict, load_yaml, to_dict
from mmfer.errors import MmferError


@dataclass(frozen=True)
class ModelConfig:
    """Which registry builder makes the network, and its keyword arguments."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DataConfig:
    """How clips become tensors. Each input kind reads only the fields it needs."""

    train_split: str = "Train"
    val_split: str = "Val"
    holdout_fraction: float = 0.1  # stratified share of Train held out when the cache has no Val split
    # seed of that held-out draw; None: the run's seed. Fix it when training several seeds for an ensemble,
    # so that every member holds out the same clips and the ensemble can be measured on them
    holdout_seed: int | None = None
    # face_window (C3D): clip_len-frame windows; eval slides with this stride and averages window scores
    clip_len: int = 16
    stride: int = 8
    # face_sequence (CNN-LSTM): num_frames frames by segment sampling over the face span
    num_frames: int = 16
    # faces (all face kinds): resize to image_size (None keeps the cache crop size), colour, illumination
    image_size: int | None = None
    grayscale: bool = False
    equalize: bool = False
    eval_views: int = 1  # face_image evaluation: 1 whole face, 2 + mirror, 10 ten-crop (probabilities averaged)
    # face_image training: every training image made into its model input once, held on the training device and
    # jittered there in batches (mmfer.engine.device_data), with no data loader: the GPU recipe
    device_images: bool = False
    # landmarks: random crop of max_len frames in training, whole clips in evaluation
    max_len: int = 64
    interpolate: bool = True
    # logmel: n_mels bands; random crop of audio_seconds in training, whole clips in evaluation
    n_mels: int = 64
    audio_seconds: float = 3.0
    # audio (both audio kinds): cut leading and trailing silence quieter than trim_db below the loudest
    # 25 ms frame, in training and scoring alike (mmfer.data.audio.trim_silence)
    trim_silence: bool = False
    trim_db: float = 35.0
    # training draws: "none" shuffles every clip once an epoch; "corpus_class" (a speech list with a corpus
    # column) draws as many clips with replacement, each corpus equally often and each class equally often
    # within its corpus, so that the largest corpus does not drown the others (mmfer.data.speech_list)
    balance: Literal["none", "corpus_class"] = "none"
    # loading
    batch_size: int = 16
    eval_batch_size: int | None = None  # None: same as batch_size
    workers: int = 0

    def __post_init__(self) -> None:
        check_range(self, "holdout_fraction", low=0.0, high=1.0, low_open=True, high_open=True)
        for name in ("clip_len", "stride", "num_frames", "max_len", "n_mels", "batch_size", "eval_batch_size",
                     "image_size"):
            check_range(self, name, low=1)
        check_range(self, "workers", low=0)
        check_range(self, "audio_seconds", low=0.0)
        check_range(self, "trim_db", low=0.0, low_open=True)
        if self.eval_views not in (1, 2, 10):
            raise MmferError(f"eval_views: {self.eval_views!r}; expected 1, 2 or 10")
        if self.train_split == self.val_split:
            raise MmferError(f"val_split: {self.val_split!r} is the train split too")
        from mmfer.data.index import split_name

        for name in ("train_split", "val_split"):  # a misspelt split must not silently be "absent"
            if getattr(self, name) != split_name(getattr(self, name), where=name):
                raise MmferError(f"{name}: {getattr(self, name)!r}; write it {split_name(getattr(self, name))!r}")


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with a per-step schedule: linear warmup, then cosine, step or constant."""

    lr: float = 1e-3
    weight_decay: float = 0.01
    epochs: int = 30
    warmup_epochs: float = 1.0
    schedule: Literal["cosine", "step", "constant"] = "cosine"
    step_epochs: int = 10  # step schedule: multiply lr by step_gamma every step_epochs
    step_gamma: float = 0.1
    grad_clip: float | None = 5.0  # max gradient norm; None disables clipping
    # Val metric that picks best.pt; "last" keeps the final epoch, so a figure reported on Val is not
    # inflated by picking the epoch on it (fix the number of epochs in advance instead)
    select_by: Literal["uar", "accuracy", "last"] = "uar"
    # exponential moving average of the weights (0 = off, e.g. 0.999): Val, best.pt and scores use the
    # averaged weights, which generalise better than the last step's at no training cost
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

    class_balanced: bool = False
    balance_power: float = 1.0
    label_smoothing: float = 0.0
    # speech lists with a corpus column: a clip's softmax runs over the classes its corpus has, so a corpus
    # without a class (nEMO: Disgust) gives that class's logit no gradient (mmfer.engine.losses)
    mask_absent_classes: bool = True

    def __post_init__(self) -> None:
        check_range(self, "balance_power", low=0.0)
        check_range(self, "label_smoothing", low=0.0, high=1.0, high_open=True)


@dataclass(frozen=True)
class AugmentConfig:
    """Training-time augmentation; evaluation never augments."""

    enabled: bool = True
    # faces: the same flip / crop / illumination jitter on every frame of a clip (Kuo et al. 2018)
    flip: bool = True
    crop_scale: tuple[float, float] = (0.85, 1.0)
    brightness: float = 0.2
    contrast: float = 0.2
    rotation: float = 0.0  # largest rotation, degrees
    translate: float = 0.0  # largest extra shift, share of the side
    erasing: float = 0.0  # probability of blanking one random rectangle (random erasing)
    # faces: probability of one video-like degradation draw (mmfer.data.features.draw_degradation: blur, motion
    # blur, low resolution, block compression, gamma, noise), the same for every frame of a clip
    video: float = 0.0
    # any input: mixup / cutmix (cutmix needs an image-like input) with this Beta(alpha, alpha); 0 = off.
    # With both on, each batch takes one of the two at random.
    mixup: float = 0.0
    cutmix: float = 0.0
    # audio waveform (mmfer.data.audio.augment_waveform): speed factor range, and the probability of each
    # of reverberation, a random microphone response / telephone band, noise at noise_snr dB, mp3/AAC
    speed: tuple[float, float] = (1.0, 1.0)
    reverb: float = 0.0
    eq: float = 0.0
    noise: float = 0.0
    noise_snr: tuple[float, float] = (5.0, 30.0)
    codec: float = 0.0
    # audio_stats: K augmented copies of each clip's statistics, made once, one served per epoch at random
    # (0: augment every item afresh, a feature extraction each time)
    stats_copies: int = 0
    # log-mel: SpecAugment (Park et al. 2019)
    spec_augment: bool = True
    freq_masks: int = 2
    freq_width: int = 8
    time_masks: int = 2
    time_width: int = 20

    def __post_init__(self) -> None:
        for name in ("brightness", "contrast", "rotation", "translate", "mixup", "cutmix", "freq_masks",
                     "freq_width", "time_masks", "time_width", "stats_copies"):
            check_range(self, name, low=0)
        for name in ("erasing", "video", "reverb", "eq", "noise", "codec"):
            check_range(self, name, low=0.0, high=1.0)
        for name, (lo, hi), floor in (("crop_scale", self.crop_scale, 0.0), ("speed", self.speed, 0.0),
                                      ("noise_snr", self.noise_snr, None)):
            if lo > hi or (floor is not None and lo <= floor):
                raise MmferError(f"{name}: {[lo, hi]} must be [low, high] with low <= high"
                                 f"{f' and low > {floor}' if floor is not None else ''}")
        if self.crop_scale[1] > 1.0:
            raise MmferError(f"crop_scale: {list(self.crop_scale)}: a crop cannot be larger than the face (<= 1)")


@dataclass(frozen=True)
class InitConfig:
    """Two-stage fine-tuning: start the encoder from a face model (e.g. trained on FER2013)."""

    encoder_from: str | None = None  # checkpoint path (.pt from `mmfer train`) or None
    freeze_encoder_epochs: int = 0  # keep the loaded encoder frozen for this many first epochs
    # a local weight file for the branch's backbone (torchvision ResNet-18 / VGG, pytorchvideo, C3D Sports-1M
    # state dicts), matched by name and shape (mmfer.models.pretrained); nothing is downloaded
    backbone_from: str | None = None


@dataclass(frozen=True)
class TrainConfig:
    """One branch run: model, data, optimiser, loss, augmentation, initialisation, device."""

    name: str
    model: ModelConfig
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    init: InitConfig = field(default_factory=InitConfig)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # mixed precision in training: fp16 on CUDA, bf16 on CPUs that compute it natively (AMX / AVX512-BF16;
    # elsewhere fp32). Evaluation and scoring on CPU stay fp32.
    amp: bool = True


def load_train_config(path: str | Path) -> TrainConfig:
    """Read a YAML train config; unknown or mistyped keys are an error naming them."""
    return load_yaml(TrainConfig, path)


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
