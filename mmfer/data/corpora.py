"""Turn RAVDESS and CREMA-D folders into the AFEW layout (``OUT/{Train,Val}/<Emotion>/<file>``).

Why: every later stage (index, preprocess, datasets) speaks one layout, so other corpora are
converted once instead of being special-cased everywhere. The split is speaker-disjoint (no
actor in both Train and Val), otherwise validation accuracy measures speaker memory. Files are
symlinked by default so a 20 GB corpus is not duplicated; ``copy=True`` makes a standalone tree.
The chosen actors are written to ``OUT/corpus_split.json`` so the split can be reproduced.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from mmfer.data.index import AUDIO_EXTENSIONS, VIDEO_EXTENSIONS, is_video, walk_files
from mmfer.errors import MmferError
from mmfer.labels import cremad_actor, cremad_label, ravdess_actor, ravdess_label
from mmfer.text import terminal_text

log = logging.getLogger(__name__)

SPLIT_FILE = "corpus_split.json"


@dataclass
class ConversionSummary:
    """What a conversion produced: files per split and emotion, actors per split, what was left out."""

    out: str
    corpus: str
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> emotion -> files
    actors: dict[str, list[str]] = field(default_factory=dict)  # split -> actor ids
    excluded: int = 0  # out-of-set emotions (RAVDESS calm) and filtered modalities
    unrecognised: list[str] = field(default_factory=list)  # media files whose names do not parse

    @property
    def total(self) -> int:
        return sum(sum(c.values()) for c in self.counts.values())

    def table(self) -> str:
        lines = [f"{self.corpus} -> {self.out}: {self.total} file(s)"]
        for split, counts in self.counts.items():
            per = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
            lines.append(f"  {split}: {sum(counts.values())} ({per}); actors {', '.join(self.actors.get(split, []))}")
        if self.excluded:
            lines.append(f"  excluded: {self.excluded} (out-of-set emotion or other modality)")
        if self.unrecognised:
            lines.append(f"  unrecognised names skipped: {len(self.unrecognised)} "
                         f"(e.g. {terminal_text(self.unrecognised[0], newlines=False)})")
        return "\n".join(lines)


def _norm_actor(a: str) -> str:
    a = str(a).strip()
    return str(int(a)) if a.isdigit() else a


def choose_val_actors(
    actors: Iterable[str], *, val_actors: Sequence[str] | None = None, val_fraction: float = 0.2, seed: int = 0
) -> set[str]:
    """The actors that go to Val: the ones named, or a seeded random ``val_fraction`` of them (at least one)."""
    actors = sorted(set(actors), key=lambda a: (len(a), a))
    if val_actors is not None:
        by_norm = {_norm_actor(a): a for a in actors}
        missing = [v for v in val_actors if _norm_actor(v) not in by_norm]
        if missing:
            raise MmferError(
                f"--val-actors: actor(s) {', '.join(missing)} not in the corpus (actors present: {', '.join(actors)})"
            )
        chosen = {by_norm[_norm_actor(v)] for v in val_actors}
    else:
        if not 0.0 <= val_fraction < 1.0:
            raise MmferError(f"--val-fraction {val_fraction}: must be in [0, 1)")
        k = int(round(val_fraction * len(actors)))
        if val_fraction > 0 and len(actors) >= 2:
            k = max(1, k)
        k = min(k, len(actors) - 1) if len(actors) >= 2 else 0
        order = np.random.default_rng(seed).permutation(len(actors))
        chosen = {actors[i] for i in order[:k]}
        if val_fraction > 0 and not chosen:  # one actor cannot be both: said, not a silent empty Val
            log.warning("--val-fraction %g of %d actor(s): Val is empty (one actor cannot be split); training "
                        "then holds out part of Train (data.holdout_fraction), or give more actors", val_fraction,
                        len(actors))
    if actors and len(chosen) == len(actors):
        raise MmferError("--val-actors: every actor is in Val; leave at least one for Train")
    return chosen


def _place(src: Path, dst: Path, *, copy: bool) -> None:
    """Symlink (or copy) ``src`` to ``dst``; an existing identical link/copy is left alone, a different file is an error."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.is_symlink() or dst.exists():
        if dst.is_symlink() and Path(os.readlink(dst)) == src.resolve():
            return
        if not dst.is_symlink() and dst.stat().st_size == src.stat().st_size and copy:
            return
        raise MmferError(f"{dst}: already exists and is not {src}; convert into an empty folder")
    if copy:
        from mmfer.outputs import atomic_path

        with atomic_path(dst) as tmp:
            shutil.copy2(src, tmp)
    else:
        os.symlink(src.resolve(), dst)


def convert_corpus(
    src: str | Path,
    out: str | Path,
    *,
    corpus: str,
    val_actors: Sequence[str] | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    copy: bool = False,
    audio: bool = False,
    keep: Callable[[Path], bool] | None = None,
) -> ConversionSummary:
    """Shared RAVDESS/CREMA-D conversion: find media recursively, label and split by actor, place files.

    ``audio`` also places audio files (.wav/.flac/.mp3) next to the videos, for audio-only training.
    ``keep`` is a corpus-specific filter (e.g. RAVDESS modality) applied after the name parses.
    """
    parsers: dict[str, tuple[Callable[[Path], str | None], Callable[[Path], str]]] = {
        "ravdess": (ravdess_label, ravdess_actor),
        "cremad": (cremad_label, cremad_actor),
    }
    if corpus not in parsers:
        raise MmferError(f"corpus {corpus!r}: expected one of {', '.join(parsers)}")
    label_of, actor_of = parsers[corpus]
    src, out = Path(src), Path(out)
    if not src.is_dir():
        where = {"ravdess": "the parent of its Actor_NN/ folders", "cremad": "the parent of its VideoFlash/ folder"}[corpus]
        raise MmferError(f"{src}: not a folder; point at the {corpus} download ({where})")
    suffixes = VIDEO_EXTENSIONS + (AUDIO_EXTENSIONS if audio else ())
    summary = ConversionSummary(out=str(out), corpus=corpus)
    items: list[tuple[Path, str, str]] = []  # (file, label, actor)
    for p in sorted(walk_files(src)):  # linked Actor_NN folders too
        if p.suffix.lower() not in suffixes or p.name.startswith("."):
            continue
        try:
            label = label_of(p)
            actor = actor_of(p)
        except MmferError:
            summary.unrecognised.append(str(p))
            continue
        if label is None or (keep is not None and not keep(p)):
            summary.excluded += 1
            continue
        items.append((p, label, actor))
    if not items:
        raise MmferError(
            f"{src}: no {corpus} media files found (looked for {' '.join(suffixes)} with {corpus} file names); "
            "is this the right folder?"
        )
    val = choose_val_actors((a for _, _, a in items), val_actors=val_actors, val_fraction=val_fraction, seed=seed)
    seen: dict[tuple[str, str], Path] = {}
    for p, label, actor in items:
        split = "Val" if actor in val else "Train"
        key = (split, p.stem)
        if key in seen and is_video(seen[key]) and is_video(p):
            raise MmferError(f"two files with clip id {p.stem!r}: {seen[key]} and {p}; keep one")
        seen.setdefault(key, p)
        _place(p, out / split / label / p.name, copy=copy)
        summary.counts.setdefault(split, Counter())[label] += 1
    actors = sorted({a for _, _, a in items}, key=lambda a: (len(a), a))
    summary.actors = {"Train": [a for a in actors if a not in val], "Val": [a for a in actors if a in val]}
    summary.counts = {s: dict(summary.counts.get(s, {})) for s in ("Train", "Val") if s in summary.counts}
    from mmfer.outputs import write_file

    write_file(out / SPLIT_FILE, json.dumps({"corpus": corpus, "source": str(src.resolve()), "seed": seed,
                                             "actors": summary.actors, "counts": summary.counts, "copy": copy},
                                            indent=1))
    if summary.unrecognised:
        log.warning("%s: %d media file(s) with names that are not %s names were skipped (e.g. %s)",
                    src, len(summary.unrecognised), corpus, summary.unrecognised[0])
    return summary


def ravdess_to_afew(
    src: str | Path,
    out: str | Path,
    *,
    val_actors: Sequence[str] | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    copy: bool = False,
    audio: bool = False,
    modalities: Sequence[str] = ("01", "03"),
) -> ConversionSummary:
    """RAVDESS (``Actor_NN/MM-VC-EE-II-SS-RR-AA.mp4|wav``) -> AFEW layout; calm is excluded.

    ``modalities`` keeps audio-video (01) and audio-only (03) files by default; video-only (02) repeats
    the audio-video clips without sound and would double-count each take.
    """
    mods = {m.zfill(2) for m in modalities}
    return convert_corpus(src, out, corpus="ravdess", val_actors=val_actors, val_fraction=val_fraction, seed=seed,
                          copy=copy, audio=audio, keep=lambda p: p.stem.split("-")[0] in mods)


def cremad_to_afew(
    src: str | Path,
    out: str | Path,
    *,
    val_actors: Sequence[str] | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    copy: bool = False,
    audio: bool = False,
) -> ConversionSummary:
    """CREMA-D (``VideoFlash/ActorID_Sentence_EMO_Level.flv``, ``AudioWAV/*.wav``) -> AFEW layout."""
    return convert_corpus(src, out, corpus="cremad", val_actors=val_actors, val_fraction=val_fraction, seed=seed,
                          copy=copy, audio=audio)


def add_arguments(parser) -> None:
    """The shared command-line options of tools/ravdess_to_afew.py and tools/cremad_to_afew.py."""
    parser.add_argument("src", help="corpus folder (searched recursively)")
    parser.add_argument("out", nargs="?", default=None,
                        help="output AFEW-style root (Train/ and Val/ are created); or --out, as every other command")
    parser.add_argument("--out", dest="out_option", default=None, metavar="OUT", help="the same as OUT")
    g = parser.add_mutually_exclusive_group()
    g.add_argument("--val-actors", default=None, help="comma list of actor ids for Val, e.g. 1,2 or 1001,1002")
    g.add_argument("--val-fraction", type=float, default=0.2, help="fraction of actors for Val (seeded)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--copy", action="store_true", help="copy files instead of symlinking them")
    parser.add_argument("--audio", action="store_true", help="also place audio files (.wav/.flac/.mp3)")


def run_tool(convert: Callable[..., ConversionSummary], argv: Sequence[str] | None, description: str) -> int:
    """Parse the shared options, convert, print a summary; errors print a message, exit code 2."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description=description)
    add_arguments(parser)
    args = parser.parse_args(argv)
    if (args.out is None) == (args.out_option is None):
        parser.error("give the output folder once: OUT, or --out OUT")
    args.out = args.out or args.out_option
    try:
        summary = convert(
            args.src, args.out,
            val_actors=[a for a in args.val_actors.split(",") if a.strip()] if args.val_actors else None,
            val_fraction=args.val_fraction, seed=args.seed, copy=args.copy, audio=args.audio,
        )
    except MmferError as e:
        print(f"error: {terminal_text(str(e))}", file=sys.stderr)
        return 2
    print(terminal_text(summary.table()))
    return 0
