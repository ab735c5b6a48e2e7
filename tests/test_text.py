"""mmfer.text: names that reach files and terminals; clip folders named alike in every locale."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mmfer.text import fs_name

REPO = Path(__file__).resolve().parents[1]


def test_a_name_the_file_system_can_hold_is_itself():
    assert fs_name("plain_01") == "plain_01"
    assert fs_name("café") == "café"  # a UTF-8 file system


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the C locale with UTF-8 mode off: POSIX")
def test_in_an_ascii_locale_a_cache_folder_has_the_bytes_a_utf8_locale_gives_it(tmp_path):
    """With UTF-8 mode off in the C locale, Python's file names are ASCII: an id such as 'café_Ärger' could not
    name a folder (preprocess crashed there). It now names the folder of the same bytes as in any other locale."""
    code = ("import os, sys\n"
            "from mmfer.data.cache import clip_dir\n"
            "assert sys.getfilesystemencoding() == 'ascii', sys.getfilesystemencoding()\n"
            f"d = clip_dir({str(tmp_path)!r}, 'Train', 'caf\\u00e9_\\u00c4rger')\n"
            "os.makedirs(d)\n"
            "print(os.fsencode(d.name))\n")
    env = {**os.environ, "PYTHONUTF8": "0", "LC_ALL": "C", "PYTHONCOERCECLOCALE": "0",
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == repr("café_Ärger".encode())
    assert (tmp_path / "Train" / "café_Ärger").is_dir()  # what this (UTF-8) process calls the same folder
