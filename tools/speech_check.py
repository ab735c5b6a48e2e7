"""How predict's speech check (mmfer.inference.speech) hears a set of sound files: each file's highest speech
probability, and per corpus (or folder) how many fall under the bar, i.e. would be left out as "no speech heard".

    python tools/speech_check.py speech_all.csv --out check.csv          # a speech list (path,label[,speaker,corpus])
    python tools/speech_check.py noise_recordings/ --out noise.csv        # a folder of sound files, searched recursively
    python tools/speech_check.py --noise-set --out synthetic.csv          # made sounds without speech (noise, hum, tones)

Use it on speech to see what the check would wrongly leave out (every utterance should pass), and on recordings
of rooms without speech to see what it would wrongly let through. It hears each file whole; predict hears each
segment (4 s by default) on its own, so for files longer than a segment this is the file's best segment at most.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

from mmfer.data.index import is_audio, iter_files
from mmfer.data.video import read_audio
from mmfer.errors import MmferError
from mmfer.inference.speech import SPEECH_EVIDENCE, speech_probability
from mmfer.progress import progress_bar


def _files(source: Path) -> list[tuple[str, Path]]:
    """(group, path): a speech list's rows by corpus (its paths relative to the list's folder where relative),
    or a folder's sound files by their sub-folder."""
    if source.is_dir():
        return [(p.parent.relative_to(source).as_posix() or ".", p) for p in iter_files(source, is_audio)]
    with source.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows or "path" not in rows[0]:
        raise MmferError(f"{source}: expected a CSV with a path column (a speech list), or a folder")
    return [(r.get("corpus") or "-", Path(r["path"]) if Path(r["path"]).is_absolute() else source.parent / r["path"])
            for r in rows]


def noise_set(seconds: float = 4.0, rate: int = 16000, seed: int = 1) -> dict[str, "np.ndarray"]:
    """Sounds without speech: white, pink and brown noise at five levels (std), mains hum with 7 harmonics,
    a tone and clicks."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    sounds = {}
    for level in (5e-5, 3e-4, 2e-3, 1e-2, 5e-2):
        sounds[f"white {level:g}"] = rng.normal(0, level, n)
        pink = np.fft.irfft(np.fft.rfft(rng.normal(0, 1, n)) / np.sqrt(np.arange(1, n // 2 + 2)), n)
        sounds[f"pink {level:g}"] = pink / pink.std() * level
        brown = np.cumsum(rng.normal(0, 1, n))
        sounds[f"brown {level:g}"] = (brown - brown.mean()) / brown.std() * level
    for f0 in (50, 60, 100, 120):
        sounds[f"hum {f0} Hz"] = sum(0.01 / k * np.sin(2 * np.pi * f0 * k * t) for k in range(1, 8))
    sounds["tone 440 Hz"] = 0.1 * np.sin(2 * np.pi * 440 * t)
    sounds["clicks"] = (rng.random(n) < 0.001) * 0.5
    return {k: v.astype(np.float32) for k, v in sounds.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", type=Path, nargs="?", help="a speech list CSV (path column) or a folder of sound files")
    ap.add_argument("--noise-set", action="store_true", help="check made sounds without speech instead")
    ap.add_argument("--out", type=Path, required=True, help="CSV: group,path,seconds,speech_probability,ms")
    args = ap.parse_args(argv)
    if (args.source is None) == (not args.noise_set):
        ap.error("give a SOURCE or --noise-set")
    try:
        made = noise_set() if args.noise_set else {}
        files = [("synthetic", name) for name in made] if args.noise_set else _files(args.source)
    except (MmferError, OSError) as e:
        print(f"speech_check: {e}", file=sys.stderr)
        return 2
    groups: dict[str, list[float]] = {}
    with args.out.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["group", "path", "seconds", "speech_probability", "ms"])
        for group, path in progress_bar(files, desc="speech check", unit="file"):
            try:
                audio = made[path] if args.noise_set else read_audio(path, sample_rate=16000)
            except (MmferError, OSError, RuntimeError, ValueError) as e:
                print(f"speech_check: {path}: unreadable, left out ({e})", file=sys.stderr)
                continue
            t = time.perf_counter()
            try:
                p = speech_probability(audio, 16000)
            except Exception as e:  # noqa: BLE001 - the detector's own errors: this file's, not the run's
                print(f"speech_check: {path}: the detector failed, left out ({e})", file=sys.stderr)
                continue
            w.writerow([group, path, round(len(audio) / 16000, 3), round(p, 4), round(1000 * (time.perf_counter() - t), 1)])
            groups.setdefault(group, []).append(p)
    print(f"{'group':<20} {'files':>6} {'lowest':>7} {f'under {SPEECH_EVIDENCE}':>11} {'under 0.5':>10}")
    for group, ps in sorted(groups.items()):
        print(f"{group:<20} {len(ps):>6} {min(ps):>7.3f} {sum(p < SPEECH_EVIDENCE for p in ps):>11} "
              f"{sum(p < 0.5 for p in ps):>10}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
