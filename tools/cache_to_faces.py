"""A preprocessed cache's faces as a face-image tree, framed as predict frames a video's faces, so that a face-image
model (the shipped models' recipe, `face_frame`) can learn from your own labelled videos.

A cache keeps each clip's aligned faces at the preprocess crop size; predict shows the face models the square of
each aligned crop that frames faces like FER2013 (``mmfer.faces.crops.frame_faces``). This writes that square for up
to ``--per-clip`` frames with a face of every labelled clip, spread evenly over the clip, as
OUT/<split>/<Emotion>/<clip_id>_<frame>.png. A clip's frames stay in its split, so Val holds no frame of a
training clip. Fine-tuning the shipped face model on them (init.encoder_from: mmfer/weights/face_video_1.pt):

    mmfer preprocess /data/MyAFEW --out cache/mine --face-backend dlib_mtcnn --crop-size 112 --fps 8 \
        --detect-every 5 --fit-every 1 --detect-max-side 320         # as the default model decodes (its bundle.json)
    python tools/cache_to_faces.py cache/mine --out data/mine_faces --per-clip 8
    mmfer train MY_CONFIG.yaml --data data/mine_faces --out runs/mine_face

A cache made otherwise is said (its faces are then aligned, or cut from a crop of another size, unlike the default
model's). Without a Val split the tree has none either, and training would hold out single frames, whose clips'
other frames it trains on: give the cache a Val split.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


# what changes the faces a cache holds (not max_frames, which only cuts a clip short, nor the sound's rate)
FACE_SETTINGS = ("face_backend", "crop_size", "fps", "detect_max_side", "detect_every", "fit_every")


def clip_faces(clip, per_clip: int):
    """(frame index, framed face) of up to ``per_clip`` frames with a face, evenly spread over the clip."""
    import numpy as np

    from mmfer.faces.crops import frame_faces

    with_face = np.flatnonzero(np.asarray(clip.mask, dtype=bool))
    if with_face.size == 0:
        return []
    take = with_face[np.unique(np.linspace(0, with_face.size - 1, min(per_clip, with_face.size)).round().astype(int))]
    return [(int(i), frame_faces(np.asarray(clip.faces[i]), "fer2013")) for i in take]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cache", type=Path, help="a cache of `mmfer preprocess` (CACHE/manifest.jsonl)")
    ap.add_argument("--out", type=Path, required=True, help="the face-image tree to write (new or empty)")
    ap.add_argument("--splits", default="Train,Val", help="comma list of the cache's splits to write (default Train,Val)")
    ap.add_argument("--per-clip", type=int, default=8, help="frames with a face taken from each clip (default 8)")
    args = ap.parse_args(argv)

    import cv2

    from mmfer.data.cache import load_clip, split_records
    from mmfer.data.index import split_name
    from mmfer.errors import MmferError
    from mmfer.progress import progress_bar

    if args.per_clip < 1:
        raise MmferError(f"--per-clip {args.per_clip}: give at least 1")
    if args.out.exists() and (not args.out.is_dir() or any(args.out.iterdir())):
        raise MmferError(f"--out {args.out}: {'not empty' if args.out.is_dir() else 'a file'}; give a new folder")
    splits = [split_name(s, where="--splits") for s in args.splits.split(",") if s.strip()]
    records = {s: split_records(args.cache, s) for s in splits}  # every split checked before any is written
    if "Val" not in records:
        raise MmferError("no Val split among --splits: training would hold out single frames of clips whose other "
                         "frames it trains on; give the cache a Val split (clips of other speakers)")
    _say_decode_differences(args.cache, splits)
    written, skipped = 0, []
    for split, recs in records.items():
        for rec in progress_bar(recs, desc=split, unit="clip"):
            if rec.status != "ok" or not rec.label:
                skipped.append(f"{split}/{rec.clip_id} ({'no label' if rec.status == 'ok' else rec.reason or rec.status})")
                continue
            try:
                faces = clip_faces(load_clip(args.cache, split, rec.clip_id), args.per_clip)
            except MmferError as e:  # a clip deleted or broken since: said, and the others go on
                skipped.append(f"{split}/{rec.clip_id} ({e})")
                continue
            if not faces:
                skipped.append(f"{split}/{rec.clip_id} (no frame with a face)")
                continue
            folder = args.out / split / rec.label
            folder.mkdir(parents=True, exist_ok=True)
            for i, face in faces:
                name = folder / f"{rec.clip_id}_{i:05d}.png"
                if not cv2.imwrite(str(name), cv2.cvtColor(face, cv2.COLOR_RGB2BGR)):
                    raise MmferError(f"{name}: could not be written (disk full?); the tree in {args.out} is partial")
                written += 1
    print(f"wrote {written} faces to {args.out}" + (f"; {len(skipped)} clip(s) left out, e.g. {skipped[0]}"
                                                    if skipped else ""))
    if not written:
        raise MmferError(f"no face written: no labelled clip of {', '.join(splits)} in {args.cache} has a face")
    return 0


def _say_decode_differences(cache: Path, splits: list[str]) -> None:
    """Warn where the cache was not made as the default model decodes (bundle.json's ``decode``)."""
    import json
    import logging

    import mmfer
    from mmfer.data.cache import cache_settings

    shipped = Path(mmfer.__file__).parent / "weights" / "bundle.json"
    if not shipped.is_file():  # installed without the default model: nothing to compare with
        return
    decode = json.loads(shipped.read_text(encoding="utf-8")).get("decode") or {}
    for split in splits:
        made = cache_settings(cache, split).to_dict()
        differ = [f"{k} {made[k]} (the default model: {decode[k]})" for k in FACE_SETTINGS
                  if k in decode and k in made and made[k] != decode[k]]
        if differ:
            logging.getLogger("cache_to_faces").warning(
                "%s/%s was made with %s: its faces are cut otherwise than predict cuts them with the default model",
                cache, split, ", ".join(differ))


if __name__ == "__main__":
    from mmfer.errors import run_tool_main

    sys.exit(run_tool_main(main, prog="cache_to_faces"))
