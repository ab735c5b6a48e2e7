"""Write docs/config.md: every key of a train config (``mmfer.engine.config.TrainConfig`` and the sections it
holds), with its type, default and the comment beside it in the source. A test checks that the page matches
the code, so it is rewritten with ``python tools/config_reference.py`` whenever a config field changes."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import io
import re
import tokenize
import typing
from pathlib import Path

from mmfer.engine.config import TrainConfig

OUT = Path(__file__).resolve().parents[1] / "docs" / "config.md"


def _comments(cls: type) -> dict[str, str]:
    """field -> its comment in the class source: the comment lines just above it and the one on its line."""
    source = inspect.getsource(cls)
    found: dict[str, str] = {}
    above: list[str] = []
    lines = source.splitlines()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT and lines[tok.start[0] - 1].strip().startswith("#"):
            above.append(tok.string.lstrip("# ").strip())
        elif tok.type == tokenize.NAME and tok.start[1] == 4 and tok.string in {f.name for f in dataclasses.fields(cls)}:
            line = lines[tok.start[0] - 1]
            inline = line.split("#", 1)[1].strip() if "#" in line and ":" in line.split("#", 1)[0] else ""
            found[tok.string] = " ".join([*above, inline]).strip()
            above = []
        elif tok.type == tokenize.NAME and tok.start[1] == 4:
            above = []
    return found


def _grouped(cls: type) -> dict[str, str]:
    """field -> the field whose comment above also covers it: a field line with no comment of its own that
    directly follows another field line (``# logmel: n_mels bands; ... audio_seconds`` above both)."""
    names = {f.name for f in dataclasses.fields(cls)}
    out: dict[str, str] = {}
    head, after_comment = None, False
    for line in inspect.getsource(cls).splitlines():
        m = re.match(r"    (\w+)\s*:", line)
        if m and m.group(1) in names:
            if head and "#" not in line:
                out[m.group(1)] = head
            head = head or (m.group(1) if after_comment else None)
            after_comment = False
        else:  # a comment, a blank line or anything else starts a new group
            head, after_comment = None, line.strip().startswith("#")
    return out


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        return repr(f.default)
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        value = f.default_factory()  # type: ignore[misc]
        return "(section)" if dataclasses.is_dataclass(value) else repr(value)
    return "(required)"


def _type(hint: object) -> str:
    text = str(hint).replace("typing.", "").replace("<class '", "").replace("'>", "")
    return re.sub(r"\bmmfer(\.\w+)+\.(\w+)", r"\2", text).replace("|", "\\|")  # a pipe would end the cell


def reference() -> str:
    out = ["# Train config reference",
           "",
           "Every key a train config (YAML, `mmfer train CONFIG`) takes, by section, with its default. Written by",
           "`python tools/config_reference.py` from `mmfer/engine/config.py` and `mmfer/data/config.py`; a test",
           "keeps it in step with the code. An unknown key, a wrong type or a value out of range is an error",
           "naming the key.", ""]
    sections = [("", TrainConfig)] + [
        (f.name, typing.get_type_hints(TrainConfig)[f.name]) for f in dataclasses.fields(TrainConfig)
        if dataclasses.is_dataclass(typing.get_type_hints(TrainConfig)[f.name])]
    for name, cls in sections:
        out += [f"## {f'`{name}:`' if name else 'top level'} ({cls.__name__}, `{cls.__module__}`)", ""]
        doc = inspect.getdoc(cls) or ""
        if doc:
            out += [doc, ""]
        out += ["| key | type | default | meaning |", "|---|---|---|---|"]
        hints, notes = typing.get_type_hints(cls), _comments(cls)
        groups = {cls: _grouped(cls)}
        for f in dataclasses.fields(cls):
            note = notes.get(f.name, "").replace("|", "\\|")
            if not note and dataclasses.is_dataclass(hints[f.name]):
                note = f"the `{f.name}:` section below"
            if not note and f.name in groups.get(cls, {}):  # under the comment of the key above it
                note = f"see `{groups[cls][f.name]}`"
            default = _default(f).replace("|", "\\|")
            out.append(f"| `{f.name}` | `{_type(hints[f.name])}` | `{default}` | {note} |")
        out.append("")
    out += _model_arguments()
    return "\n".join(out)


def _model_arguments() -> list[str]:
    """Each shipped model's ``model.kwargs``: its builder's keyword arguments and their defaults."""
    from mmfer.models.registry import MODELS

    out = ["## `model.kwargs` by model", "",
           "The keyword arguments of each model's builder (`mmfer.models.registry`); a key not listed, a value of",
           "another type or one the builder refuses is an error as the config loads. `num_classes` is always 7.", "",
           "| model | argument | default | builder |", "|---|---|---|---|"]
    for name, builder in MODELS.items():
        if not getattr(builder, "__module__", "").startswith("mmfer.models."):  # one registered by a user or test
            continue
        where = f"`{builder.__module__}.{builder.__name__}`"
        for arg in inspect.signature(builder).parameters.values():
            default = "(required)" if arg.default is inspect.Parameter.empty else repr(arg.default)
            out.append(f"| `{name}` | `{arg.name}` | `{default}` | {where} |")
            where = ""
    return out + [""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=OUT, help=f"the markdown file to write (default {OUT.name} in docs/)")
    args = ap.parse_args()
    args.out.write_text(reference(), encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
