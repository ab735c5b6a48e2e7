"""The ``mmfer`` command. Each subcommand parses its arguments and calls one library function,
which Python users can call directly too. Errors a user can meet print a message, not a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable, Sequence

from mmfer import __version__
from mmfer.errors import MmferError

Handler = Callable[[argparse.Namespace], int]


# ---------------------------------------------------------------- preprocess (issue 2)
def _add_preprocess(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "preprocess",
        help="decode clips into cached faces, landmarks and audio",
        description="Cache aligned faces, landmark tracks and audio of every clip; re-running resumes.",
    )
    p.add_argument("source", help="AFEW-style root (Train/Val/Test), a CSV list (path,label[,split]), a folder or a video")
    p.add_argument("--out", required=True, help="cache folder (created; manifest.jsonl inside)")
    p.add_argument("--splits", default=None, help="comma list, e.g. Train,Val (default: all present)")
    p.add_argument("--workers", type=int, default=1, help="parallel clip workers (0 = one per CPU core)")
    p.add_argument("--face-backend", default="dlib", choices=("dlib", "insightface", "none"))
    p.add_argument("--crop-size", type=int, default=112, help="aligned face crop side in pixels")
    p.add_argument("--fps", type=float, default=None, help="resample video to this frame rate (default: native)")
    p.add_argument("--detect-every", type=int, default=1, help="run the face detector every K frames")
    p.add_argument("--detect-max-side", type=int, default=320, help="longest side of frames given to the detector")
    p.add_argument("--max-frames", type=int, default=None, help="cap on frames per clip")
    p.add_argument("--shard", default="0/1", help="i/n: process only shard i of n (split work across machines)")
    p.add_argument("--strict", action="store_true", help="exit code 1 if any clip failed")
    p.add_argument("--retry-failed", action="store_true", help="redo clips that failed in an earlier run")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    def run(args: argparse.Namespace) -> int:
        from mmfer.cache import PreprocessSettings
        from mmfer.data.preprocess import parse_shard, preprocess

        for name in ("crop_size", "detect_every", "detect_max_side"):
            if getattr(args, name) < 1:
                raise MmferError(f"--{name.replace('_', '-')} {getattr(args, name)}: must be at least 1")
        if args.fps is not None and args.fps <= 0:
            raise MmferError(f"--fps {args.fps}: must be positive (or left out for the native rate)")
        settings = PreprocessSettings(
            face_backend=args.face_backend, crop_size=args.crop_size, fps=args.fps,
            detect_max_side=args.detect_max_side, detect_every=args.detect_every, max_frames=args.max_frames,
        )
        try:
            summary = preprocess(
                args.source, args.out, splits=args.splits, workers=args.workers, settings=settings,
                shard=parse_shard(args.shard), retry_failed=args.retry_failed, progress=not args.no_progress,
            )
        except KeyboardInterrupt:
            print(f"mmfer preprocess: interrupted; finished clips are kept in {args.out}. "
                  "Run the same command again to resume.", file=sys.stderr)
            return 130
        print(summary.table())
        return 1 if args.strict and summary.failures else 0

    p.set_defaults(func=run)


# ---------------------------------------------------------------- train / scores (issue 3)
def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train one branch from a config")
    p.set_defaults(func=_not_ready("train"))


def _add_scores(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("scores", help="write per-clip class scores of a trained run")
    p.set_defaults(func=_not_ready("scores"))


# ---------------------------------------------------------------- fuse / submit / evaluate / ablate (issue 4)
def _add_fuse(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fuse", help="late fusion of branch scores, tuned on Val")
    p.set_defaults(func=_not_ready("fuse"))


def _add_submit(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("submit", help="write or check an EmotiW submission zip")
    p.set_defaults(func=_not_ready("submit"))


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="accuracy, mean class accuracy and confusion of a score CSV")
    p.set_defaults(func=_not_ready("evaluate"))


def _add_ablate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ablate", help="fuse every subset of branches and tabulate what each modality adds")
    p.set_defaults(func=_not_ready("ablate"))


# ---------------------------------------------------------------- helpers
def _not_ready(name: str) -> Handler:
    def run(args: argparse.Namespace) -> int:
        raise MmferError(f"`mmfer {name}` is not available in this version")

    return run


_COMMANDS = (
    _add_preprocess,
    _add_train,
    _add_scores,
    _add_fuse,
    _add_submit,
    _add_evaluate,
    _add_ablate,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmfer", description="Multimodal video emotion recognition (EmotiW-style, 7 classes)."
    )
    parser.add_argument("--version", action="version", version=f"mmfer {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add in _COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return int(args.func(args) or 0)
    except MmferError as e:
        print(f"mmfer {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mmfer {args.command}: interrupted; finished work is kept, re-run to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
