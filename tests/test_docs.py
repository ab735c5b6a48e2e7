"""The documentation's links lead somewhere: a renamed doc or heading must not leave README or the model card
pointing at nothing (GitHub shows a broken relative link as a 404 page, and a broken anchor silently as the
top of the file)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCE = re.compile(r"```.*?```", re.S)


def heading_anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(md: Path) -> set[str]:
    text = FENCE.sub("", md.read_text(encoding="utf-8"))
    return {heading_anchor(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", text, re.M)}


def broken_links(md: Path) -> list[str]:
    """Relative links of one markdown file whose file, or heading, is not there (web addresses are not tried)."""
    broken = []
    for target in LINK.findall(FENCE.sub("", md.read_text(encoding="utf-8"))):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, fragment = target.partition("#")
        dest = md.parent / path if path else md
        if not dest.exists():
            broken.append(f"{target} (no such file)")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            broken.append(f"{target} (no such heading)")
    return broken


def test_relative_links_in_the_docs_resolve():
    docs = [REPO / "README.md", REPO / "BENCHMARKS.md", *sorted((REPO / "docs").glob("*.md")),
            *sorted((REPO / "challenge").rglob("*.md")), *sorted((REPO / "mmfer").rglob("*.md"))]
    assert len(docs) > 5
    found = {str(md.relative_to(REPO)): broken_links(md) for md in docs}
    assert {name: links for name, links in found.items() if links} == {}


def test_a_broken_link_or_heading_is_found(tmp_path):
    (tmp_path / "other.md").write_text("# What it is for, and what it is not\n", encoding="utf-8")
    md = tmp_path / "index.md"
    md.write_text("[a](other.md#what-it-is-for-and-what-it-is-not) [b](gone.md) [c](other.md#gone) "
                  "[d](https://example.org/x) [e](#here)\n## Here\n```\n[f](in-a-code-block.md)\n```\n",
                  encoding="utf-8")
    assert broken_links(md) == ["gone.md (no such file)", "other.md#gone (no such heading)"]
