"""How clips become tensors (``DataConfig``) and how training varies them (``AugmentConfig``): the ``data:`` and
``augment:`` sections of a train config, read by ``mmfer.data`` (datasets, features, audio). Frozen
dataclasses like the rest of the config (``mmfer.engine.config.TrainConfig`` holds them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mmfer.config import check_range
from mmfer.data.index import split_name
from mmfer.errors import MmferError


@dataclass(frozen=True)
class DataConfig:
    """How clips become tensors. Each input kind reads only the fields it needs."""

    train_split: str = "Train"  # the split trained on (a cache split or an image tree's folder)
    val_split: str = "Val"  # the split measured each epoch and scored at the end; absent: part of Train held out
    # share of Train held out when the data has no Val split: whole speakers where every clip names one (a speech
    # list, RAVDESS or CREMA-D names), else stratified by class
    holdout_fraction: float = 0.1
    # seed of that held-out draw; None: the run's seed. Fix it when training several seeds for an ensemble,
    # so that every member holds out the same clips and the ensemble can be measured on them
    holdout_seed: int | None = None
    # face_window (C3D): clip_len-frame windows; eval slides with this stride and averages window scores
    clip_len: int = 16
    stride: int = 8  # frames between the starts of evaluation windows
    # face_sequence (CNN-LSTM): num_frames frames by segment sampling over the face span
    num_frames: int = 16
    # faces (all face kinds): resize to image_size (None keeps the cache crop size), colour, illumination
    image_size: int | None = None
    grayscale: bool = False  # one grey channel (the model's in_channels 1), as FER2013's faces are
    equalize: bool = False  # histogram-equalised faces, in training and scoring alike
    eval_views: int = 1  # face_image evaluation: 1 whole face, 2 + mirror, 10 ten-crop (probabilities averaged)
    # face_image training: every training image made into its model input once, held on the training device and
    # jittered there in batches (mmfer.engine.device_data), with no data loader: the GPU recipe
    device_images: bool = False
    # landmarks: random crop of max_len frames in training, whole clips in evaluation
    max_len: int = 64
    interpolate: bool = True  # frames without a face get landmarks interpolated from their neighbours
    # logmel: n_mels bands; random crop of audio_seconds (0: the whole clip) in training, whole clips in evaluation
    n_mels: int = 64
    audio_seconds: float = 3.0  # seconds of the random training crop (logmel); 0: the whole clip
    # audio (both audio kinds): cut leading and trailing silence quieter than trim_db below the loudest
    # 25 ms frame, in training and scoring alike (mmfer.data.audio.trim_silence)
    trim_silence: bool = False
    trim_db: float = 35.0  # dB below the loudest frame that count as silence (trim_silence)
    # training draws: "none" shuffles every clip once an epoch; "corpus_class" (a speech list with a corpus
    # column) draws as many clips with replacement, each corpus equally often and each class equally often
    # within its corpus, so that the largest corpus does not drown the others (mmfer.data.speech_list)
    balance: Literal["none", "corpus_class"] = "none"
    # loading
    batch_size: int = 16
    eval_batch_size: int | None = None  # None: same as batch_size
    # DataLoader worker processes of training and scoring; 0 loads batches in the training process itself
    # (torch's meaning; `mmfer preprocess --workers 0` instead means one clip worker per CPU core)
    workers: int = 0

    def __post_init__(self) -> None:
        check_range(self, "holdout_fraction", low=0.0, high=1.0, low_open=True, high_open=True)
        check_range(self, "holdout_seed", low=0)
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
        for name in ("train_split", "val_split"):  # a misspelt split must not silently be "absent"
            if getattr(self, name) != split_name(getattr(self, name), where=name):
                raise MmferError(f"{name}: {getattr(self, name)!r}; write it {split_name(getattr(self, name))!r}")


@dataclass(frozen=True)
class AugmentConfig:
    """Training-time augmentation; evaluation never augments."""

    # false: no augmentation at all, mixup, cutmix and stats_copies included (a key set beside it is warned of)
    enabled: bool = True
    # faces: the same flip / crop / illumination jitter on every frame of a clip (Kuo et al. 2018)
    flip: bool = True
    crop_scale: tuple[float, float] = (0.85, 1.0)  # [low, high] side of the random crop, a share of the face's
    brightness: float = 0.2  # largest brightness shift, in pixel units 0..1
    contrast: float = 0.2  # largest contrast change, a factor 1 +- contrast
    rotation: float = 0.0  # largest rotation, degrees
    translate: float = 0.0  # largest extra shift, share of the side
    erasing: float = 0.0  # probability of blanking one random rectangle (random erasing)
    occlusion: float = 0.0  # probability of covering the lower 25-45% of the face with one grey level (a hand, mask)
    # faces: probability of one video-like degradation draw (mmfer.data.features.draw_degradation: blur, motion
    # blur, low resolution, block compression, gamma, noise), the same for every frame of a clip
    video: float = 0.0
    # any input: mixup / cutmix (cutmix needs an image-like input) with this Beta(alpha, alpha); 0 = off.
    # With both on, each batch takes one of the two at random.
    mixup: float = 0.0
    cutmix: float = 0.0  # (faces and log-mel only: it pastes a patch)
    # audio waveform (mmfer.data.audio.augment_waveform): speed factor range, and the probability of each
    # of reverberation, a random microphone response / telephone band, noise at noise_snr dB, mp3/AAC
    speed: tuple[float, float] = (1.0, 1.0)
    reverb: float = 0.0  # probability of a synthetic room's reverberation
    eq: float = 0.0  # probability of a random microphone response or telephone band
    noise: float = 0.0  # probability of added noise
    noise_snr: tuple[float, float] = (5.0, 30.0)  # [low, high] signal-to-noise ratio of that noise, dB
    codec: float = 0.0  # probability of an mp3 or AAC round trip
    # audio_stats: K augmented copies of each clip's statistics, made once, one served per epoch at random
    # (0: augment every item afresh, a feature extraction each time)
    stats_copies: int = 0
    # log-mel: vocal tract length perturbation (Jaitly & Hinton 2013), every frequency scaled by one factor
    # drawn per item from this range (formants and pitch move, tempo stays)
    freq_warp: tuple[float, float] = (1.0, 1.0)
    # log-mel: SpecAugment (Park et al. 2019)
    spec_augment: bool = True
    freq_masks: int = 2  # bands of mel channels masked per item
    freq_width: int = 8  # widest band, mel channels
    time_masks: int = 2  # stretches of frames masked per item
    time_width: int = 20  # longest stretch, frames (10 ms each)

    def __post_init__(self) -> None:
        for name in ("rotation", "mixup", "cutmix", "freq_masks", "freq_width", "time_masks", "time_width",
                     "stats_copies"):
            check_range(self, name, low=0)
        for name in ("brightness", "contrast", "translate"):  # pixel units 0..1, a factor 1 +- c, a share of the side
            check_range(self, name, low=0.0, high=1.0)
        check_range(self, "rotation", high=180.0)
        for name in ("erasing", "occlusion", "video", "reverb", "eq", "noise", "codec"):
            check_range(self, name, low=0.0, high=1.0)
        for name, (lo, hi), floor in (("crop_scale", self.crop_scale, 0.0), ("speed", self.speed, 0.0),
                                      ("freq_warp", self.freq_warp, 0.0), ("noise_snr", self.noise_snr, None)):
            if lo > hi or (floor is not None and lo <= floor):
                raise MmferError(f"{name}: {[lo, hi]} must be [low, high] with low <= high"
                                 f"{f' and low > {floor}' if floor is not None else ''}")
        if self.crop_scale[1] > 1.0:
            raise MmferError(f"crop_scale: {list(self.crop_scale)}: a crop cannot be larger than the face (<= 1)")
