"""Make the tight face photo fixtures (tests/assets/cremad_faces/*.png) from the CREMA-D fixture videos.

    python tools/make_face_fixtures.py [--out tests/assets/cremad_faces]

One FER2013-like image per video: the middle frame's aligned face, cut to FER2013's framing
(mmfer.faces.align.framing_box), grey-scale, 48x48. They let the recorded outputs of the shipped model cover
its tight-photo path; they are committed, so the test does not depend on this tool's detector run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / "tests" / "assets" / "cremad_faces",
                    help="the folder to write the face images into (default tests/assets/cremad_faces)")
    args = ap.parse_args(argv)

    import cv2

    from mmfer.inference.bundle import DEFAULT_DECODE
    from mmfer.data.index import ClipEntry
    from mmfer.data.preprocess import process_clip
    from mmfer.faces.align import framing_box

    args.out.mkdir(parents=True, exist_ok=True)
    for video in sorted((REPO / "tests" / "assets" / "cremad").glob("*.flv")):
        arrays, _, _ = process_clip(ClipEntry(video.stem, "Test", None, video), DEFAULT_DECODE)
        faces, mask = arrays["faces"], arrays["mask"]
        k = [i for i in range(len(mask)) if mask[i]][int(mask.sum()) // 2]
        x0, y0, x1, y1 = framing_box(faces.shape[1])
        crop = cv2.resize(faces[k][y0:y1, x0:x1], (48, 48), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(args.out / f"{video.stem}.png"), cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY))
        print(f"{video.name}: frame {k} -> {args.out / (video.stem + '.png')}")
    return 0


if __name__ == "__main__":
    from mmfer.errors import run_tool_main

    sys.exit(run_tool_main(main, prog="make_face_fixtures"))
