"""The canonical emotion labels and the names other corpora give them.

Every artifact that stores class numbers also stores ``EMOTIONS`` so that
labels are always mapped by name, never by a position borrowed from elsewhere.
"""

from __future__ import annotations

import re
from pathlib import Path

from mmfer.errors import MmferError

EMOTIONS: tuple[str, ...] = ("Angry", "Disgust", "Fear", "Happy", "Neutral", "Sad", "Surprise")
NUM_CLASSES = len(EMOTIONS)

# Lower-cased spellings used by AFEW folders, FER2013 folders, RAVDESS/CREMA-D docs and common papers.
_ALIASES: dict[str, str] = {
    **{e.lower(): e for e in EMOTIONS},
    "anger": "Angry",
    "ang": "Angry",
    "disgusted": "Disgust",
    "dis": "Disgust",
    "fearful": "Fear",
    "fea": "Fear",
    "afraid": "Fear",
    "anxiety": "Fear",  # EmoDB's anxiety/fear (Angst)
    "happiness": "Happy",
    "hap": "Happy",
    "joy": "Happy",
    "neu": "Neutral",
    "sadness": "Sad",
    "sad": "Sad",
    "surprised": "Surprise",
    "sur": "Surprise",
}

# Emotions a corpus has that the seven classes do not: recognised, then excluded by callers.
OUT_OF_SET: frozenset[str] = frozenset({"calm", "contempt", "boredom", "other", "unknown"})

# RAVDESS file names: MM-VC-EE-II-SS-RR-AA, EE the emotion code.
RAVDESS_CODES: dict[str, str | None] = {
    "01": "Neutral",
    "02": None,  # calm: no AFEW counterpart
    "03": "Happy",
    "04": "Sad",
    "05": "Angry",
    "06": "Fear",
    "07": "Disgust",
    "08": "Surprise",
}

# CREMA-D file names: ActorID_Sentence_EMO_Level.
CREMAD_CODES: dict[str, str] = {
    "ANG": "Angry",
    "DIS": "Disgust",
    "FEA": "Fear",
    "HAP": "Happy",
    "NEU": "Neutral",
    "SAD": "Sad",
}

# The integer codes of the original fer2013.csv (a different order from ours).
FER2013_CSV_CODES: dict[int, str] = {
    0: "Angry",
    1: "Disgust",
    2: "Fear",
    3: "Happy",
    4: "Sad",
    5: "Surprise",
    6: "Neutral",
}


def canonical(name: str) -> str | None:
    """The canonical label for ``name`` (any known spelling), ``None`` for a known out-of-set emotion.

    Raises ``MmferError`` for a name nobody recognises, so typos surface instead of silently
    becoming a class.
    """
    if not isinstance(name, str):  # labels are names ("Angry"), mapped by name everywhere, never class numbers
        raise MmferError(f"an emotion label is a name such as {EMOTIONS[0]!r}, got {name!r} ({type(name).__name__})")
    key = name.strip().lower()
    if key in _ALIASES:
        return _ALIASES[key]
    if key in OUT_OF_SET:
        return None
    raise MmferError(
        f"unknown emotion label {name!r}; expected one of {', '.join(EMOTIONS)} "
        f"(or an alias such as 'anger', 'fearful', 'surprised'; {', '.join(sorted(OUT_OF_SET))} are left out)"
    )


def index_of(name: str) -> int:
    """Class index of a label in ``EMOTIONS``, by name; out-of-set names are an error."""
    label = canonical(name)
    if label is None:
        raise MmferError(f"label {name!r} is outside the seven classes ({', '.join(EMOTIONS)})")
    return EMOTIONS.index(label)


def ravdess_label(path: str | Path) -> str | None:
    """Label from a RAVDESS file name; ``None`` for calm."""
    stem = Path(path).stem
    parts = stem.split("-")
    if len(parts) != 7 or not all(p.isdigit() for p in parts) or parts[2] not in RAVDESS_CODES:
        raise MmferError(f"{path}: not a RAVDESS file name (expected MM-VC-EE-II-SS-RR-AA, e.g. 03-01-05-01-02-01-12)")
    return RAVDESS_CODES[parts[2]]


def ravdess_actor(path: str | Path) -> str:
    """Actor id (the last field) of a RAVDESS file name, for speaker-disjoint splits."""
    ravdess_label(path)  # validates the name
    return Path(path).stem.split("-")[-1]


_CREMAD_RE = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})$")


def cremad_label(path: str | Path) -> str:
    """Label from a CREMA-D file name (ActorID_Sentence_EMO_Level)."""
    m = _CREMAD_RE.match(Path(path).stem)
    if not m or m.group(3) not in CREMAD_CODES:
        raise MmferError(f"{path}: not a CREMA-D file name (expected ActorID_Sentence_EMO_Level, e.g. 1001_DFA_ANG_XX)")
    return CREMAD_CODES[m.group(3)]


def cremad_actor(path: str | Path) -> str:
    """Actor id of a CREMA-D file name, for speaker-disjoint splits."""
    cremad_label(path)
    return Path(path).stem.split("_")[0]
