#!/usr/bin/env python3
"""Write one speech list (path,label,speaker,corpus,language,use) for `mmfer train --data LIST.csv`.

    python tools/speech_list.py --ravdess /data/ravdess_speech --metadata /data/speech/metadata.csv --out speech_all.csv

RAVDESS files are found under --ravdess (Actor_NN/*.wav|flac), labelled and assigned to speakers by their
names (calm left out); --metadata rows (a CSV with path,label,speaker,corpus[,language][,use], paths
relative to it) are copied with absolute paths. Rows whose use is not "train" (TESS: evaluation only) stay
in the list: training scores them as Test and never learns from them. Paths are written absolute.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

FIELDS = ["path", "label", "speaker", "corpus", "language", "use"]


def ravdess_rows(root: Path) -> list[dict[str, str]]:
    from mmfer.labels import ravdess_actor, ravdess_label

    rows = []
    for f in sorted(p for p in root.rglob("*") if p.suffix.lower() in (".wav", ".flac")):
        label = ravdess_label(f)
        if label is None:  # calm: no counterpart among the seven classes
            continue
        rows.append({"path": str(f.resolve()), "label": label, "speaker": f"ravdess_{int(ravdess_actor(f)):02d}",
                     "corpus": "ravdess", "language": "en", "use": "train"})
    if not rows:
        sys.exit(f"{root}: no RAVDESS speech files (MM-VC-EE-II-SS-RR-AA.wav/.flac)")
    return rows


def metadata_rows(path: Path) -> list[dict[str, str]]:
    from mmfer.errors import MmferError

    if not path.is_file():
        raise MmferError(f"--metadata {path}: file not found")
    rows = []
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = [c for c in ("path", "label", "speaker", "corpus") if c not in (reader.fieldnames or [])]
        if missing:
            raise MmferError(f"--metadata {path}: no {', '.join(missing)} column(s) (it has "
                             f"{', '.join(reader.fieldnames or []) or 'no header'}); expected path,label,speaker,corpus"
                             "[,language][,use]")
        for r in reader:
            p = Path(r["path"])
            r["path"] = str((p if p.is_absolute() else path.parent / p).resolve())
            rows.append({k: r.get(k, "") or "" for k in FIELDS})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ravdess", type=Path, help="RAVDESS speech folder (Actor_NN/...)")
    ap.add_argument("--metadata", type=Path, action="append", default=[], help="a list with path,label,speaker,corpus")
    ap.add_argument("--out", type=Path, required=True, help="the CSV list to write (path,label,speaker,corpus,...)")
    args = ap.parse_args(argv)
    if not args.ravdess and not args.metadata:
        ap.error("give --ravdess, --metadata or both: the list would be empty")
    rows = (ravdess_rows(args.ravdess) if args.ravdess else []) + [r for m in args.metadata for r in metadata_rows(m)]
    with open(args.out, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(rows)
    counts: dict[tuple[str, str], int] = {}
    for r in rows:
        counts[(r["corpus"], r["use"])] = counts.get((r["corpus"], r["use"]), 0) + 1
    print(f"{args.out}: {len(rows)} rows; " + ", ".join(f"{c} ({u}) {n}" for (c, u), n in sorted(counts.items())))
    return 0


if __name__ == "__main__":
    from mmfer.errors import run_tool_main

    sys.exit(run_tool_main(main, prog="speech_list"))
