"""Text that reaches people safely: as UTF-8 in a file (``safe_text``) and on a terminal (``terminal_text``).

File names are the text at risk: their bytes need not be UTF-8 (Python holds those as lone surrogates, which no
UTF-8 file can take), and they may hold control characters (an ESC starts a terminal escape sequence)."""

from __future__ import annotations

import re

# lone surrogates: how Python holds the bytes of a file name that were not UTF-8
SURROGATES = re.compile("[\ud800-\udfff]")


def safe_text(text: str) -> str:
    """``text`` that can be written as UTF-8 (a CSV cell, a report, a log line): a file name's bytes that are
    not UTF-8, which Python holds as lone surrogates, are shown as ``\\xe9``; other text is returned as it is."""
    text = str(text)
    if not SURROGATES.search(text):
        return text
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


# C0 and C1 control characters but tab and newline: ESC and CSI start terminal escape sequences
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_CONTROL_OR_NEWLINE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def terminal_text(text: str, *, newlines: bool = True) -> str:
    """``text`` as it may be shown on a terminal (a log line, an error, a table): ``safe_text``, with control
    characters written as ``\\x1b``, so a file name from an untrusted folder cannot move the cursor, recolour,
    retitle or clear the terminal that reads its name. Tab and newline are kept, unless ``newlines`` is False (a
    name or a table cell: a newline in a file name would start a line of its own, a fake row or log line). Files
    keep the real name."""
    text = safe_text(text)
    control = _CONTROL if newlines else _CONTROL_OR_NEWLINE
    return control.sub(lambda m: f"\\x{ord(m.group()):02x}", text) if control.search(text) else text


def fs_name(text: str) -> str:
    """``text`` (a clip id) as a file or folder name this process can create: itself, or, where the file-system
    encoding cannot hold it (a C locale with UTF-8 mode off: ASCII), its UTF-8 bytes as Python holds undecodable
    bytes, so that the name on disk is the same bytes in every locale."""
    import os
    import sys

    try:
        text.encode(sys.getfilesystemencoding(), "surrogateescape")
        return text
    except UnicodeEncodeError:
        return os.fsdecode(text.encode("utf-8", "surrogateescape"))
