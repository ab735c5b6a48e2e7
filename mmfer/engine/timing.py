"""How long a training run has left, said after each epoch. A multi-fold run on a CPU takes hours (the voice CNN's
5 folds of 20 epochs: about 1.8 h on 2 cores with native bf16, about 5 h without), and the progress bar shows one
epoch only."""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Iterator, Sequence

# the folds this process trains after the current one, where ``train_folds`` knows them (``--only-folds``, folds
# trained already): without it a fold counts every fold numbered after it
_FOLDS_AFTER: ContextVar[int | None] = ContextVar("folds_after", default=None)


@contextmanager
def folds_to_come(n: int) -> Iterator[None]:
    """Within it, ``time_left`` counts ``n`` folds after the current one."""
    token = _FOLDS_AFTER.set(int(n))
    try:
        yield
    finally:
        _FOLDS_AFTER.reset(token)


def format_duration(seconds: float) -> str:
    """``"about 40 s"``, ``"about 12 min"``, ``"about 4 h 50 min"``: a forecast, rounded as one."""
    seconds = max(0.0, float(seconds))
    if seconds < 90:
        return f"about {max(1, round(seconds / 10) * 10 if seconds >= 10 else round(seconds))} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"about {minutes} min"
    hours, minutes = divmod(round(seconds / 300) * 5, 60)  # five-minute steps past the hour
    return f"about {hours} h" + (f" {minutes} min" if minutes else "")


def time_left(epoch_seconds: Sequence[float], *, epochs: int, done: int | None = None,
              fold_info: dict[str, Any] | None = None) -> str | None:
    """What is left of a run whose last finished epochs took ``epoch_seconds`` (validation included), ``done``
    of ``epochs`` finished (default: one per figure; a resumed run's log may lack older figures); with ``fold_info`` (``fold.json``: ``index`` of ``of``) also the folds still to come, at this
    fold's pace (folds of a speaker split are about the same size; a corpus left out may not be). The median of
    the last three epochs: the first one also pays for start-up. None when nothing is left."""
    done = len(epoch_seconds) if done is None else done
    if not epoch_seconds:
        return None
    recent = sorted(float(s) for s in epoch_seconds[-3:])
    per = recent[len(recent) // 2]
    left = max(0, epochs - done) * per
    folds_after = 0
    if fold_info and fold_info.get("of") and fold_info.get("index"):
        told = _FOLDS_AFTER.get()
        folds_after = told if told is not None else max(0, int(fold_info["of"]) - int(fold_info["index"]))
    if not left and not folds_after:
        return None
    if not folds_after:
        return f"{format_duration(left)} left"
    after = f"the {folds_after} fold{'s' if folds_after > 1 else ''} after this one"
    total = format_duration(left + folds_after * epochs * per)
    return f"{format_duration(left)} left in this fold, {total} with {after}" if left else f"{total} left for {after}"
