"""PNG figures: confusion matrix and the modality ablation bar chart.

Drawn on ``matplotlib.figure.Figure`` objects, never through pyplot: plotting works on headless machines and in
tests, and a caller's own backend (a notebook's inline one) stays as it was.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from mmfer.labels import EMOTIONS
from mmfer.scores import is_uniform

# each class's colour in timelines, by name: Okabe & Ito's palette, told apart by people with any of the three
# colour-vision deficiencies (matplotlib's tab10 put Disgust's orange and Fear's green 4.6 CIELAB units apart
# to a protanope); Neutral grey, Angry vermillion, Sad blue
EMOTION_COLOURS = {"Angry": "#D55E00", "Disgust": "#009E73", "Fear": "#CC79A7", "Happy": "#E69F00",
                   "Neutral": "#555555", "Sad": "#0072B2", "Surprise": "#56B4E9"}


def _figure(*args: Any, figsize: tuple[float, float], **kwargs: Any) -> tuple[Figure, Any]:
    """A figure and its axes, as ``pyplot.subplots`` gives them, without pyplot's global state."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(*args, **kwargs)


@lru_cache(maxsize=1)
def _font_charmap() -> frozenset[int]:
    """The code points the default plotting font draws."""
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    return frozenset(FT2Font(font_manager.findfont(font_manager.FontProperties())).get_charmap())


def _drawable(text: str) -> str:
    """``text`` with each character the plotting font cannot draw written as its code (``\\u540d``), not as an
    empty box with a warning per character: a file named in Japanese still gets a title that tells files apart;
    ``$`` drawn as itself, never as the start of maths."""
    text = text.replace("$", r"\$")  # a name with two $ is not maths (matplotlib raised on 'a$\frac{x$b')
    try:
        known = _font_charmap()
    except Exception:  # noqa: BLE001 - no font information: draw the text as it is
        return text
    return "".join(c if ord(c) in known or c.isspace() else f"\\u{ord(c):04x}" for c in text)


def _save(fig: Figure, ax: Axes, out: str | Path, title: str, *, dpi: int = 110) -> Path:
    """Title (if any), tight layout, PNG at ``out`` (parent folders created); the figure is closed."""
    if title:
        ax.set_title(_drawable(title))
    fig.tight_layout()
    import io

    from mmfer.outputs import write_file

    out = Path(out)
    buf = io.BytesIO()
    fig.savefig(buf, dpi=dpi, format="png")
    return write_file(out, buf.getvalue())  # whole or not at all; a link at ``out`` is replaced, not followed


def plot_confusion(
    confusion: Sequence[Sequence[int]] | np.ndarray,
    out: str | Path,
    *,
    title: str = "",
    normalize: bool = True,
    no_prediction: Sequence[int] | None = None,
) -> Path:
    """Confusion matrix (rows truth, columns prediction); colours by row share, cells show counts. With
    ``no_prediction`` (clips per true class that got no prediction), a last column "no prediction"."""
    conf = np.asarray(confusion, dtype=np.float64)
    columns = list(EMOTIONS)
    if no_prediction is not None:
        conf = np.concatenate([conf, np.asarray(no_prediction, dtype=np.float64).reshape(-1, 1)], axis=1)
        columns.append("no prediction")
    rows = conf.sum(axis=1, keepdims=True)
    shown = np.divide(conf, rows, out=np.zeros_like(conf), where=rows > 0) if normalize else conf
    fig, ax = _figure(figsize=(6.4 + 0.7 * (len(columns) - len(EMOTIONS)), 5.4))
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    ax.set_xticks(range(len(columns)), columns, rotation=45, ha="right")
    ax.set_yticks(range(len(EMOTIONS)), EMOTIONS)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(conf.shape[0]):
        for j in range(conf.shape[1]):
            ax.text(j, i, f"{int(conf[i, j])}", ha="center", va="center",
                    color="white" if shown[i, j] > 0.5 * (shown.max() or 1) else "black", fontsize=8)
    fig.colorbar(im, ax=ax, label="share of true class" if normalize else "clips")
    return _save(fig, ax, out, title)


ABLATION_UPRIGHT = 12  # subsets an ablation plot shows as upright bars; more lie down, one row each


def plot_ablation(rows: Sequence[Mapping[str, Any]], out: str | Path, *, title: str = "",
                  classes: int = len(EMOTIONS)) -> Path:
    """Bars of Val in-sample accuracy, cross-validated accuracy and cross-validated UAR per subset; upright for a
    few subsets, lying (one row each, best on top) past ``ABLATION_UPRIGHT`` so that a 63-subset table stays
    readable. ``classes``: those Val has, the chance line of the mean class accuracy."""
    names = [_drawable(str(r["branches"])) for r in rows]
    series = [
        ("val_in_sample_accuracy", "Val accuracy (in-sample)"),
        ("val_cross_validated_accuracy", "Val accuracy (cross-validated)"),
        ("val_cross_validated_uar", "mean class acc. (cross-validated)"),
    ]
    x = np.arange(len(rows))
    width = 0.27
    upright = len(rows) <= ABLATION_UPRIGHT
    size = (max(6.0, 0.9 * len(rows) + 2), 4.5) if upright else (8.0, 0.32 * len(rows) + 1.8)
    fig, ax = _figure(figsize=size)
    for k, (key, label) in enumerate(series):
        values = [float(r[key]) for r in rows]
        if upright:
            ax.bar(x + (k - 1) * width, values, width, label=label)
        else:
            ax.barh(x + (k - 1) * width, values, width, label=label)
    chance = dict(color="grey", lw=0.8, ls="--", label=f"chance (1/{classes})")
    if upright:
        ax.set_xticks(x, names, rotation=30, ha="right")
        ax.set_ylabel("score")
        ax.set_ylim(0, 1)
        ax.axhline(1 / classes, **chance)
    else:
        ax.set_yticks(x, names, fontsize=7)
        ax.invert_yaxis()  # rows come best first
        ax.set_xlabel("score")
        ax.set_xlim(0, 1)
        ax.axvline(1 / classes, **chance)
    ax.legend(fontsize=8, loc="upper left" if upright else "lower right")
    return _save(fig, ax, out, title)


def plot_timeline(
    out: str | Path,
    *,
    frame_times: np.ndarray | None = None,
    frame_probs: np.ndarray | None = None,
    audio_times: np.ndarray | None = None,
    audio_probs: np.ndarray | None = None,
    segment_bounds: np.ndarray | None = None,
    segment_probs: np.ndarray | None = None,
    segment_face: np.ndarray | None = None,
    title: str = "",
    dpi: int = 110,
) -> Path:
    """Class probabilities over time of one video: the face model per decoded frame (NaN rows, frames without
    a face, leave gaps) and, when given, the audio branches (fused) over sliding windows (times are window centres).

    With more than ``SEGMENT_VIEW_ABOVE`` segments (``segment_bounds`` (S,2) start/end, ``segment_probs`` (S,7)
    fused, ``segment_face`` (S,) face share or NaN) the video is long, and per-frame lines would be a blur at
    an hour: the plot shows the segments instead, as stacked class shares with the face share beneath. ``dpi``:
    the PNG's resolution (the HTML report embeds its timelines smaller)."""
    if segment_bounds is not None and segment_probs is not None and len(segment_bounds) > SEGMENT_VIEW_ABOVE:
        return _plot_segments(out, np.asarray(segment_bounds, np.float64), np.asarray(segment_probs, np.float64),
                              None if segment_face is None else np.asarray(segment_face, np.float64), title,
                              dpi=dpi)
    panels = [(name, t, p) for name, t, p in (("face (per frame)", frame_times, frame_probs),
                                               ("audio (sliding windows)", audio_times, audio_probs))
              if t is not None and p is not None]
    fig, axes = _figure(max(1, len(panels)), 1, figsize=(8.0, 2.6 * max(1, len(panels)) + 0.6), sharex=True,
                             squeeze=False)
    axes = axes[:, 0]
    if not panels:
        axes[0].text(0.5, 0.5, "no face and no audio", ha="center", va="center", transform=axes[0].transAxes)
    colours = [EMOTION_COLOURS[e] for e in EMOTIONS]
    for ax, (name, t, p) in zip(axes, panels):
        p = np.asarray(p, dtype=np.float64).reshape(len(t), len(EMOTIONS))
        if not np.isfinite(p).any():  # every frame without a face, every window without speech: said, not blank
            if len(t) and np.nanmax(t) > np.nanmin(t):  # NaN data sets no limits: the panel alone spanned ±0.05 s
                ax.set_xlim(float(np.nanmin(t)), float(np.nanmax(t)))
            ax.text(0.5, 0.5, "no face in any frame" if name.startswith("face") else "no speech heard in any window",
                    ha="center", va="center", transform=ax.transAxes, color="#666")
        for k, emotion in enumerate(EMOTIONS):
            ax.plot(t, p[:, k], color=colours[k], lw=1.4, marker="." if len(t) < 40 else None, label=emotion)
        ax.set_ylim(0, 1)
        ax.set_ylabel("probability")
        ax.set_title(name, fontsize=9, loc="left")
    axes[-1].set_xlabel("time (s)")
    if panels:
        axes[0].legend(fontsize=7, ncol=4, loc="upper right", framealpha=0.7)
    if title:
        fig.suptitle(_drawable(title), fontsize=10)
    return _save(fig, axes[0], out, "", dpi=dpi)


SEGMENT_VIEW_ABOVE = 30  # segments (2 minutes of 4-s segments): beyond this a timeline shows segments


def _plot_segments(out: str | Path, bounds: np.ndarray, probs: np.ndarray, face: np.ndarray | None, title: str, *,
                   dpi: int = 110) -> Path:
    """Stacked class shares per segment (a step per segment; blank where nothing was seen), readable at an
    hour, over a strip of the share of frames with a face; the x axis in minutes when longer than 10."""
    minutes = bounds[-1, 1] > 600
    scale = 60.0 if minutes else 1.0
    edges = np.append(bounds[:, 0], bounds[-1, 1]) / scale
    fig, (ax, ax2) = _figure(2, 1, figsize=(10.0, 4.2), sharex=True, gridspec_kw={"height_ratios": [4, 1]})
    colours = [EMOTION_COLOURS[e] for e in EMOTIONS]
    seen = np.isfinite(probs).all(axis=1) & ~is_uniform(probs, axis=1)
    p = np.where(seen[:, None], probs, 0.0)
    bottom = np.zeros(len(p))
    for k, emotion in enumerate(EMOTIONS):
        ax.stairs(bottom + p[:, k], edges, baseline=bottom, fill=True, color=colours[k], label=emotion, lw=0)
        bottom = bottom + p[:, k]
    ax.set_ylim(0, 1)
    ax.set_ylabel("class share")
    ax.legend(fontsize=7, ncol=7, loc="upper center", bbox_to_anchor=(0.5, -0.02 - 0.3), framealpha=0.7)
    ax.set_title(f"{len(bounds)} segments; blank: nothing seen", fontsize=9, loc="left")
    if face is not None:
        ax2.stairs(np.nan_to_num(face, nan=0.0), edges, fill=True, color="0.5", lw=0)
    ax2.set_ylim(0, 1)
    ax2.set_ylabel("face", fontsize=8)
    ax2.set_xlabel("time (min)" if minutes else "time (s)")
    if title:
        fig.suptitle(_drawable(title), fontsize=10)
    return _save(fig, ax, out, "", dpi=dpi)
