"""Without bars (a log file, CI), long loops still say where they are, about once a minute."""

from __future__ import annotations

import logging

from mmfer.progress import LogProgress, progress_bar


def test_log_progress_says_count_share_and_time_left(caplog, monkeypatch):
    import mmfer.progress as progress

    clock = iter(float(t) for t in range(0, 1000, 30))  # each step 30 s later
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    with caplog.at_level(logging.INFO, logger="mmfer.progress"):
        seen = list(LogProgress(range(6), desc="predict", unit="file"))
    assert seen == list(range(6))
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "predict: 2/6 files (33%), 60 s so far, about 2 min left"  # the first minute
    assert len(lines) == 3  # about once a minute, not per file
    bar = progress_bar(desc="x", total=3, enabled=False)
    bar.set_postfix(failed=1, refresh=False)
    assert isinstance(bar, LogProgress) and bar.line().endswith("(failed 1)")
    monkeypatch.setenv("MMFER_PROGRESS", "1")  # bars wanted (a terminal, a notebook or forced): tqdm's own
    assert not isinstance(progress_bar(range(2), desc="x", enabled=True, disable=True), LogProgress)
    monkeypatch.setenv("MMFER_PROGRESS", "0")  # asked for but nobody watches: the log lines
    assert isinstance(progress_bar(range(2), desc="x", enabled=True), LogProgress)
