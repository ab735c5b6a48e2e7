"""Face images made into video-frame crops once, so a face model trains on what ``mmfer predict`` serves it.

Each face of an image tree (``ROOT/<split>/<Emotion>/*.jpg``, FER2013's layout) is shown in a frame the way
video shows faces (a random size between 56 and 256 px, a random place, context around it) and degraded as
video degrades it (blur, motion blur, a lower resolution scaled back up, block compression, gamma, noise), then
goes through ``mmfer.faces.crops.frame_crop``: the detector, 68 landmarks, alignment and framing of predict.
The crops are written as a tree of PNGs with the same relative names, so the held-out split of a run over
the crops is the held-out split of a run over the images (same records, same seeded draw).

Each face's draw is seeded by its name, so a rebuild (or a resumed one) makes the same crops. Faces the
detector misses are not dropped (that would change the held-out split and teach the model only easy faces):
their landmarks are fitted in the box the detector would have given (``tight_crop_detector_box``) and the
count per class is written to ``summary.json``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmfer.data.features import draw_degradation
from mmfer.errors import MmferError
from mmfer.labels import EMOTIONS

log = logging.getLogger(__name__)

FACE_PX = (56, 256)  # face sizes in frames, drawn log-uniformly
CROPS_VERSION = 2  # bump when the rendering or the crop path changes: old trees are refused
# (2: tilted faces fitted upright, dlib_mtcnn's turned retry)


@dataclass(frozen=True)
class Render:
    """How one face is shown in a frame and degraded (all frame-level, before detection)."""

    size: int
    frame_w: int
    frame_h: int
    x: int
    y: int
    background: str
    blur: float  # Gaussian sigma in face pixels at 100 px (scaled with the face); 0: none
    motion: int  # motion blur length in pixels; 0: none
    rescale: float  # shown at this share of the resolution, then scaled back up; 1: none
    jpeg: int  # JPEG quality of the frame (block compression like a video codec's); 0: none
    gamma: float
    noise: float  # Gaussian noise sigma in grey levels


def draw_render(rng: np.random.Generator) -> Render:
    """A random, video-like way of showing a face."""
    lo, hi = np.log(FACE_PX[0]), np.log(FACE_PX[1])
    size = int(round(np.exp(rng.uniform(lo, hi))))
    fw, fh = (320, 240) if size <= 200 else (640, 480)
    if rng.random() < 0.08:  # partly cut by the frame edge (up to 20% of the face)
        cut = int(rng.uniform(0.05, 0.2) * size)
        x = int(rng.choice([-cut, fw - size + cut]))
    else:
        x = int(rng.integers(0, fw - size + 1))
    y = int(rng.integers(0, fh - size + 1))
    background = str(rng.choice(["replicate", "reflect", "constant"]))
    return Render(size=size, frame_w=fw, frame_h=fh, x=x, y=y, background=background, **draw_degradation(rng))


def render_frame(face: np.ndarray, r: Render, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The frame (H, W, 3) uint8 of ``r`` and the placed face's box."""
    from mmfer.data.features import video_degrade
    from mmfer.faces.crops import place_face

    fill = int(rng.integers(40, 216))
    frame, box = place_face(face, size=r.size, frame_hw=(r.frame_h, r.frame_w), at=(r.x, r.y),
                            background=r.background, fill=fill)
    frame = video_degrade(frame, rng, blur=r.blur * r.size / 100, motion=r.motion, rescale=r.rescale, jpeg=r.jpeg,
                          gamma=r.gamma, noise=r.noise)
    return np.ascontiguousarray(frame), box


def _item_seed(seed: int, rel: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{rel}".encode()).digest()[:8], "little")


def _crop_one(args: tuple[str, str, str, int, dict[str, Any]]) -> dict[str, Any]:
    """Make and write one face's crop (a worker's unit); returns its row for crops.csv."""
    import cv2

    from mmfer.faces.backends import get_backend
    from mmfer.faces.crops import frame_crop, tight_crop_detector_box
    from mmfer.outputs import atomic_path

    src, dst, rel, seed, s = args
    row: dict[str, Any] = {"clip_id": rel, "source": src}
    img = cv2.imread(src, cv2.IMREAD_COLOR)
    if img is None:
        return {**row, "status": "error", "reason": "not a readable image"}
    rng = np.random.default_rng(_item_seed(seed, rel))
    r = draw_render(rng)
    frame, box = render_frame(np.ascontiguousarray(img[..., ::-1]), r, rng)
    fc = frame_crop(frame, get_backend(s["face_backend"]), crop_size=s["crop_size"], framing=s["framing"],
                    detect_max_side=s["detect_max_side"], hint_box=tight_crop_detector_box(box))
    out = Path(dst)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(out, suffix=".png") as tmp:  # cv2 picks the format by the name's suffix
            if not cv2.imwrite(str(tmp), np.ascontiguousarray(fc.crop[..., ::-1])):
                raise MmferError(f"cannot write {out}")
    except MmferError as e:
        return {**row, "status": "error", "reason": str(e)}
    return {**row, "status": "ok", "detected": int(fc.detected), **asdict(r)}


def build_video_face_tree(src: str | Path, dst: str | Path, *, splits: tuple[str, ...] = ("Train",), seed: int = 0,
                          face_backend: str = "dlib", crop_size: int = 112, framing: str = "fer2013",
                          detect_max_side: int = 320, workers: int = 1, progress: bool = True) -> dict[str, Any]:
    """Write DST/<split>/<Emotion>/<name>.png for every face image of SRC (see the module doc); resumable.

    Returns the summary also written to DST/summary.json: counts, detector misses per class, settings.
    """
    from mmfer.data.sources import media_folder_records

    src, dst = Path(src), Path(dst)
    settings = {"crops_version": CROPS_VERSION, "seed": seed, "face_backend": face_backend, "crop_size": crop_size,
                "framing": framing, "detect_max_side": detect_max_side, "face_px": list(FACE_PX)}
    if dst.exists() and not dst.is_dir():
        raise MmferError(f"{dst}: exists and is not a folder")
    from mmfer.faces.backends import check_backend

    check_backend(face_backend)  # a mistake is said before DST records any settings
    jobs = []
    for split in splits:
        for rec in media_folder_records(src, split, "face_image"):
            rel = f"{split}/{rec.label}/{Path(rec.path).stem}" if rec.label else f"{split}/{rec.clip_id}"
            out = dst / f"{rel}.png"
            jobs.append((rec.path, str(out), rel, seed, settings))
    dst.mkdir(parents=True, exist_ok=True)
    settings_file = dst / "settings.json"
    from mmfer.outputs import open_new, write_file

    if settings_file.exists():
        try:
            old = json.loads(settings_file.read_text(encoding="utf-8"))
        except ValueError:
            old = None
        old = old if isinstance(old, dict) else {"settings.json": "unreadable"}
        if old != settings:
            changed = [f"{k} {old.get(k)!r} there, {settings.get(k)!r} now" for k in sorted(set(old) | set(settings))
                       if old.get(k) != settings.get(k)]
            why = (" (crops_version: made by an older mmfer, whose crops were cut another way; make them again)"
                   if old.get("crops_version") != settings.get("crops_version") else "")
            raise MmferError(f"{dst}: made with other settings ({'; '.join(changed)}){why}; remove it or choose "
                             "another --out")
    else:
        write_file(settings_file, json.dumps(settings, indent=1) + "\n")
    rows_file = dst / "crops.csv"
    if rows_file.is_symlink():  # appended to below: never through a link to another file
        raise MmferError(f"{rows_file}: a link; remove it (the tree's own list of crops is written here)")
    done: dict[str, dict[str, Any]] = {}
    if rows_file.exists():
        with open(rows_file, newline="", encoding="utf-8") as f:
            done = {r["clip_id"]: r for r in csv.DictReader(f) if (dst / f"{r['clip_id']}.png").exists()}
    todo = [j for j in jobs if j[2] not in done]
    log.info("%s: %d face(s), %d already made", dst, len(jobs), len(jobs) - len(todo))
    from mmfer.progress import progress_bar

    rows = list(done.values())
    fields = ["clip_id", "source", "status", "reason", "detected", *Render.__dataclass_fields__]
    with (open(rows_file, "a", newline="", encoding="utf-8") if done else open_new(rows_file, "w", newline="", encoding="utf-8")) as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        if not done:
            w.writeheader()
        bar = progress_bar(total=len(todo), desc="video crops", unit="face", enabled=progress)
        if workers > 1:
            import multiprocessing as mp

            from mmfer.data.preprocess import worker_start_method
            from mmfer.data.workers import init_worker
            from mmfer.faces.backends import registered_backend

            with mp.get_context(worker_start_method(face_backend)).Pool(  # spawned off Linux: a backend the user
                    workers, initializer=init_worker,                      # registered is registered there too
                    initargs=(face_backend, None, registered_backend(face_backend))) as pool:
                results = pool.imap(_crop_one, todo, chunksize=64)
                for row in results:
                    w.writerow(row)
                    rows.append(row)
                    bar.update()
        else:
            for job in todo:
                row = _crop_one(job)
                w.writerow(row)
                rows.append(row)
                bar.update()
        bar.close()
    summary = _summarise(rows, settings)
    write_file(dst / "summary.json", json.dumps(summary, indent=1) + "\n")
    return summary


def _summarise(rows: list[dict[str, Any]], settings: dict[str, Any]) -> dict[str, Any]:
    ok = [r for r in rows if r.get("status") == "ok"]
    missed: dict[str, int] = {e: 0 for e in EMOTIONS}
    total: dict[str, int] = {e: 0 for e in EMOTIONS}
    for r in ok:
        emotion = r["clip_id"].split("/")[1] if r["clip_id"].count("/") >= 2 else ""
        if emotion in total:
            total[emotion] += 1
            missed[emotion] += int(r["detected"]) == 0
    return {"settings": settings, "faces": len(rows), "made": len(ok),
            "errors": [{"clip_id": r["clip_id"], "reason": r.get("reason", "")} for r in rows if r.get("status") != "ok"],
            "detector_missed": sum(missed.values()), "detector_missed_per_class": missed, "per_class": total,
            "missed_faces_note": "landmarks fitted in the box the detector would have given; the face is kept"}
