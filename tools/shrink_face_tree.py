"""A face-image tree cut down to what a face model reads: each image at the model's input size (and grey), so the
same inputs take a fraction of the bytes and the tree travels, e.g. to a lent GPU machine with a size limit.

A face model's dataset resizes each image to ``data.image_size`` and, with ``data.grayscale``, takes its luminance,
before equalising and normalising (``mmfer.data.features.face_tensor``). This does the first two steps once and
writes the result losslessly (WebP, or PNG), so the model sees the same tensors from either tree (checked for every
image with ``--check``). The 28,709 video crops of FER2013 (112 px, 146 MB) become 44-px grey images of 35 MB
(WebP; 41 MB as PNG).

    python tools/shrink_face_tree.py data/fer2013_video --out data/fer2013_video44 --size 44 --grayscale
    mmfer train configs/face_frame_video_gpu.yaml --data data/fer2013_video44 --out runs/face_video_gpu

Names, folders and the split a run holds out stay as they are. Resumable: images already written are kept.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from mmfer.errors import MmferError

FORMATS = ("webp", "png")


def _encoding(fmt: str) -> list[int]:
    """OpenCV's parameters for a lossless image: WebP at a quality above 100 is lossless."""
    import cv2

    return [cv2.IMWRITE_WEBP_QUALITY, 101] if fmt == "webp" else [cv2.IMWRITE_PNG_COMPRESSION, 9]


def model_pixels(rgb: np.ndarray, *, size: int, grayscale: bool) -> np.ndarray:
    """The uint8 image face_tensor equalises and normalises: resized as it resizes, grey as it makes grey."""
    import cv2

    h, w = rgb.shape[:2]
    if (h, w) != (size, size):
        rgb = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA if size < h else cv2.INTER_LINEAR)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if grayscale else rgb


def shrink_tree(src: str | Path, out: str | Path, *, size: int, grayscale: bool, fmt: str = "webp",
                check: bool = False, progress: bool = True) -> dict[str, int]:
    """Write OUT/<same relative path>.<fmt> for every image under SRC, losslessly; other files are not copied."""
    import cv2

    from mmfer.data.features import face_tensor
    from mmfer.data.index import IMAGE_EXTENSIONS
    from mmfer.data.images import read_image_rgb
    from mmfer.progress import progress_bar

    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise MmferError(f"{src}: not a folder")
    if fmt not in FORMATS:
        raise MmferError(f"format {fmt!r}: choose {' or '.join(FORMATS)}")
    if size < 8:
        raise MmferError(f"--size {size}: too small for a face model's input")
    if out.resolve() == src.resolve() or src.resolve() in out.resolve().parents:
        raise MmferError(f"--out {out}: must lie outside {src}")
    images = sorted(p for p in src.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not images:
        raise MmferError(f"{src}: no images ({' '.join(IMAGE_EXTENSIONS)})")
    names: dict[Path, Path] = {}
    for p in images:  # a.jpg and a.png would both become a.<fmt>
        first = names.setdefault(p.relative_to(src).with_suffix(""), p)
        if first != p:
            raise MmferError(f"{first} and {p} would both be written as {first.stem}.{fmt}; rename one")
    import json

    from mmfer.outputs import write_file

    settings = {"size": size, "grayscale": grayscale, "format": fmt}
    made = out / "shrink.json"  # what the images already there were made with: a run of others keeps none
    if made.is_file():
        try:
            old = json.loads(made.read_text(encoding="utf-8"))
        except ValueError:
            old = "unreadable"
        if old != settings:
            raise MmferError(f"{out}: made with {old}, not {settings}; remove it or choose another --out")
    write_file(made, json.dumps(settings) + "\n")
    counts = {"images": len(images), "written": 0, "kept": 0, "failed": 0}
    for p in progress_bar(images, desc="shrink", unit="image", enabled=progress):
        dst = out / p.relative_to(src).with_suffix(f".{fmt}")
        if dst.exists():
            counts["kept"] += 1
            continue
        try:
            rgb = read_image_rgb(p)
        except MmferError as e:
            print(f"warning: {p}: {e}; left out", file=sys.stderr)
            counts["failed"] += 1
            continue
        small = model_pixels(rgb, size=size, grayscale=grayscale)
        ok, data = cv2.imencode(f".{fmt}", small if grayscale else cv2.cvtColor(small, cv2.COLOR_RGB2BGR),
                                _encoding(fmt))
        if not ok:
            raise MmferError(f"{p}: could not be encoded as {fmt}")
        if check:  # the encoded bytes, read back as the dataset reads them, give the model the same input
            back = cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            a = face_tensor(rgb, size=size, grayscale=grayscale, equalize=True)
            b = face_tensor(back, size=size, grayscale=grayscale, equalize=True)
            if not np.array_equal(a, b):
                raise MmferError(f"{p}: the shrunk image gives another model input (max difference "
                                 f"{float(np.abs(a - b).max()):.4f}); please report this")
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(dst.name + ".part")  # not an image name: an interrupted write is never read as one
        tmp.write_bytes(data.tobytes())
        tmp.replace(dst)
        counts["written"] += 1
    return counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", help="face-image tree (ROOT/<split>/<Emotion>/*.png, as tools/make_video_crops.py writes)")
    ap.add_argument("--out", required=True, help="the shrunk tree (same relative names, WebP or PNG)")
    ap.add_argument("--size", type=int, required=True, help="the model's data.image_size (44 for the shipped face models)")
    ap.add_argument("--grayscale", action="store_true", help="keep luminance only (the config's data.grayscale)")
    ap.add_argument("--format", choices=FORMATS, default="webp",
                    help="lossless either way; WebP is about 15%% smaller (default webp)")
    ap.add_argument("--check", action="store_true", help="check that every image gives the model the same input")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    counts = shrink_tree(args.src, args.out, size=args.size, grayscale=args.grayscale, fmt=args.format, check=args.check,
                         progress=not args.no_progress)
    print(", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    from mmfer.errors import run_tool_main

    sys.exit(run_tool_main(main, prog="shrink_face_tree"))
