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
    p = sub.add_parser("preprocess", help="decode clips into cached faces, landmarks and audio")
    p.set_defaults(func=_not_ready("preprocess"))


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
