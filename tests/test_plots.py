"""Plots are read by people: every class's colour in a timeline stays distinct for colour-blind readers."""

from __future__ import annotations

import numpy as np

from mmfer.labels import EMOTIONS
from mmfer.plots import EMOTION_COLOURS

# Machado, Oliveira & Fernandes 2009, severity 1.0, on linear RGB
DEFICIENCIES = {
    "normal": np.eye(3),
    "protanopia": np.array([[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216],
                            [-0.003882, -0.048116, 1.051998]]),
    "deuteranopia": np.array([[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413],
                              [-0.011820, 0.042940, 0.968881]]),
    "tritanopia": np.array([[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602],
                            [0.004733, 0.691367, 0.303900]]),
}


def cielab(hex_colours: list[str], deficiency: np.ndarray) -> np.ndarray:
    srgb = np.array([[int(h[i:i + 2], 16) / 255 for i in (1, 3, 5)] for h in hex_colours])
    linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    seen = np.clip(linear @ deficiency.T, 0, 1)
    xyz = seen @ np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]).T
    f = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(f > 0.008856, np.cbrt(f), 7.787 * f + 16 / 116)
    return np.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], axis=1)


def closest_pair(hex_colours: list[str], deficiency: np.ndarray) -> float:
    lab = cielab(hex_colours, deficiency)
    d = np.linalg.norm(lab[:, None] - lab[None], axis=-1)
    return float(d[~np.eye(len(lab), dtype=bool)].min())


def test_class_colours_stay_apart_for_colour_blind_readers():
    assert tuple(EMOTION_COLOURS) == tuple(EMOTIONS)  # one colour a class, by name
    for name, deficiency in DEFICIENCIES.items():
        assert closest_pair([EMOTION_COLOURS[e] for e in EMOTIONS], deficiency) > 15, name
    # the measure tells: matplotlib's tab10, used before, put two classes 4.6 apart for a protanope
    tab10 = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"]
    assert closest_pair(tab10, DEFICIENCIES["protanopia"]) < 5 < closest_pair(tab10, DEFICIENCIES["normal"])
