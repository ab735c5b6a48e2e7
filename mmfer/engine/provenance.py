"""``RUN/run.json``: what each session of a run ran on (mmfer's version and commit, torch, Python, the device and
precision, the data, the command line), one entry appended at every start and resume. ``config.yaml`` says what
the run learns from; this says how and where it was made, which a figure reported from the run may depend on
(bf16 against fp32, another commit's code)."""

from __future__ import annotations

import functools
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RUN_FILE = "run.json"


@functools.lru_cache(maxsize=1)  # once a process, not once a fold
def code_commit() -> str | None:
    """The git commit of the mmfer source this process runs, with ``-dirty`` when it has uncommitted changes;
    None when mmfer is not run from a git checkout (an installed wheel)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    # never the user's own GIT_DIR, and no index.lock taken (a `git commit` beside the run must not fail)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    git = ["git", "--no-optional-locks", "-C", str(root)]
    try:
        head = subprocess.run([*git, "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, timeout=10,
                              check=True, env=env).stdout.strip()
        dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=10, check=True, env=env).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}-dirty" if dirty else head


def record_session(out: Path, *, data: str | Path, device: Any, precision: str, start_epoch: int,
                   epochs: int) -> Path:
    """Append this session's entry to ``out/run.json`` (written whole; an unreadable file is started afresh)."""
    import torch

    from mmfer import __version__
    from mmfer.outputs import write_file

    path = Path(out) / RUN_FILE
    try:
        sessions = json.loads(path.read_text(encoding="utf-8"))["sessions"]
    except (OSError, ValueError, KeyError, TypeError):
        sessions = []
    sessions.append({
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "from_epoch": start_epoch + 1, "epochs": epochs,
        "mmfer": __version__, "commit": code_commit(), "torch": torch.__version__,
        "python": platform.python_version(), "host": platform.node(), "device": str(device), "precision": precision,
        "data": str(Path(data).resolve()), "command": shlex.join(sys.argv),
    })
    return write_file(path, json.dumps({"sessions": sessions}, indent=1) + "\n")
