"""The FER2013 faces every shipped face model held out, as a folder predict and evaluate read.

Every FER2013 model here (photo and video-crop) holds out the same stratified 10% of Train (``holdout_split(...,
fraction=0.1, seed=0)``, ``data.holdout_seed: 0`` in the configs); the model card's held-out photo figures are
``mmfer predict`` on these 2,872 faces. This writes them as OUT/<Emotion>/<name>.jpg (hard links where the file
system allows, else copies), so the figure can be reproduced:

    python tools/make_heldout_folder.py /path/to/fer2013 --out data/fer2013_heldout
    mmfer predict data/fer2013_heldout --out heldout.csv
    mmfer evaluate heldout.csv --labels-from folder --root data/fer2013_heldout
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("fer", type=Path, help="FER2013 as ROOT/Train/<Emotion>/*.jpg")
    ap.add_argument("--out", type=Path, required=True, help="folder to write OUT/<Emotion>/*.jpg into (new or empty)")
    args = ap.parse_args(argv)

    from mmfer.data.splits import fer2013_heldout
    from mmfer.errors import MmferError

    if args.out.exists() and any(args.out.iterdir()):
        raise MmferError(f"--out {args.out}: not empty; give a new folder")
    held = fer2013_heldout(args.fer)
    for rec in held:
        dest = args.out / rec.label / Path(rec.path).name
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(rec.path, dest)
        except OSError:  # another file system, or links not allowed
            shutil.copy2(rec.path, dest)
    print(f"wrote {len(held)} held-out faces to {args.out}")
    return 0


if __name__ == "__main__":
    from mmfer.errors import run_tool_main

    sys.exit(run_tool_main(main, prog="make_heldout_folder"))
