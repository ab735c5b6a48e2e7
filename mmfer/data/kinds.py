"""The input kinds: what each kind of model input is, in one table.

A model's ``input_kind`` (``mmfer.models.registry``) names one of these; the kind says which modality it
reads, along which axis of an item its time runs (collate pads there), which dataset of
``mmfer.data.datasets`` feeds it, whether it can read a folder tree (or list) of files instead of the
preprocessed cache, and whether it needs a face. Adding a kind means adding a row here and its dataset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class InputKind:
    name: str
    modality: Literal["face", "audio"]
    # axis of the time dimension in one item's x, padded by collate (None: no time axis, items stack as they are)
    time_axis: int | None
    # the mmfer.data.datasets class that reads it (from the cache, except face_image: image files)
    dataset: str
    # a clip with no face in any frame has nothing for it
    needs_face: bool
    # x holds face images (their channels follow data.grayscale), as opposed to landmarks or sound
    images: bool = False
    # read from the preprocessed cache's face track (its crops or landmarks): prediction then preprocesses
    # videos with the settings of the branch's training cache
    cache_faces: bool = False
    # "image" / "audio": reads a folder tree or list of such files ("image": always; "audio": when the data
    # source is not a cache), through file_dataset where that differs from dataset
    files: Literal["image", "audio"] | None = None
    file_dataset: str | None = None


KINDS: dict[str, InputKind] = {k.name: k for k in (
    InputKind("face_image", "face", None, "FaceImageDataset", needs_face=True, images=True, files="image"),
    InputKind("face_window", "face", 1, "FaceWindowDataset", needs_face=True, images=True, cache_faces=True),
    InputKind("face_sequence", "face", 0, "FaceSequenceDataset", needs_face=True, images=True,
              cache_faces=True),
    InputKind("landmarks", "face", 0, "LandmarkDataset", needs_face=True, cache_faces=True),
    InputKind("logmel", "audio", -1, "LogMelDataset", needs_face=False, files="audio",
              file_dataset="AudioFileDataset"),
    InputKind("audio_stats", "audio", None, "AudioStatsDataset", needs_face=False, files="audio",
              file_dataset="AudioStatsFileDataset"),
)}

INPUT_KINDS = tuple(KINDS)
MODALITY = {k: v.modality for k, v in KINDS.items()}
TIME_AXIS = {k: v.time_axis for k, v in KINDS.items()}
CACHE_FACE_KINDS = tuple(k for k, v in KINDS.items() if v.cache_faces)
