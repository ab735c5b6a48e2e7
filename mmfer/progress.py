"""Progress where no bar is drawn (a log file, CI, ``--no-progress``): a log line about once a minute with the
count, the share done and the time left, so a long ``preprocess`` or ``predict`` in a log is not silent until
its summary. ``progress_bar`` gives a tqdm bar where bars are wanted, else this."""

from __future__ import annotations

import copy
import logging
import os
import sys
import time
from typing import Any, Iterable, Iterator

from mmfer.text import terminal_text

log = logging.getLogger("mmfer.progress")
EVERY_S = 60.0


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


class LogProgress:
    """The parts of tqdm's interface that mmfer's loops use (iterate, ``update``, ``set_postfix``, ``close``)."""

    def __init__(self, iterable: Iterable[Any] | None = None, *, desc: str, total: int | None = None,
                 unit: str = "it", every: float | None = None) -> None:
        self.iterable, self.desc, self.unit = iterable, desc, unit
        self.every = EVERY_S if every is None else every  # EVERY_S read now: a test may set it
        self.total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
        self.n, self.postfix = 0, ""
        self.start = self.said = time.monotonic()

    def __iter__(self) -> Iterator[Any]:
        for item in self.iterable or ():
            yield item
            self.update(1)

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.said >= self.every:
            self.said = now
            log.info("%s", self.line(now))

    def line(self, now: float | None = None) -> str:
        elapsed = (now or time.monotonic()) - self.start
        done = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        text = f"{self.desc}: {done} {self.unit}{'es' if self.unit.endswith(('ch', 'sh', 's', 'x')) else 's'}"
        if self.total:
            text += f" ({100 * self.n / self.total:.0f}%), {_minutes(elapsed)} so far"
            if self.n:
                text += f", about {_minutes(elapsed / self.n * (self.total - self.n))} left"
        return text + (f" ({self.postfix})" if self.postfix else "")

    def set_postfix(self, refresh: bool = True, **values: Any) -> None:
        self.postfix = ", ".join(f"{k} {v}" for k, v in values.items())

    def close(self) -> None:
        pass


class TerminalFormatter(logging.Formatter):
    """Log lines with control characters escaped (``terminal_text``): a file name logged from an untrusted
    folder cannot drive the terminal or the log viewer that shows it, and a newline in a name given as an
    argument (``log.warning("%s: ...", path)``) cannot start a fake line of its own."""

    def format(self, record: logging.LogRecord) -> str:
        if isinstance(record.args, tuple) and record.args:
            record = copy.copy(record)
            record.args = tuple(terminal_text(a, newlines=False) if isinstance(a, (str, os.PathLike)) else a
                                for a in record.args)
        return terminal_text(super().format(record))


def terminal_log_handler(fmt: str = "%(levelname)s %(name)s: %(message)s") -> logging.Handler:
    """A stderr handler of escaped log lines, ``LEVEL logger: message`` (the command line's and its workers')."""
    handler = logging.StreamHandler()
    handler.setFormatter(TerminalFormatter(fmt))
    return handler


def bars_wanted() -> bool:
    """Bars where someone watches them: stderr a terminal or a notebook (tqdm.auto draws its widget there), or
    MMFER_PROGRESS=1; MMFER_PROGRESS=0 turns them off anywhere. A log file or CI gets log lines instead, not
    \\r-redrawn bars. The CLI and the Python functions follow the same rule."""
    forced = os.environ.get("MMFER_PROGRESS", "").strip().lower()
    if forced:
        return forced not in ("0", "false", "no", "off")
    if "ipykernel" in sys.modules:
        return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # a replaced or closed stream
        return False


def draw_bars(progress: bool) -> bool:
    """Whether a bar asked for with ``progress`` is drawn (see :func:`bars_wanted`)."""
    return bool(progress) and bars_wanted()


def progress_bar(iterable: Iterable[Any] | None = None, *, desc: str, total: int | None = None, unit: str = "it",
                 enabled: bool = True, **tqdm_options: Any) -> Any:
    """A tqdm bar when ``enabled`` and :func:`bars_wanted`, else a :class:`LogProgress` that logs about once a
    minute."""
    if draw_bars(enabled):
        from tqdm.auto import tqdm

        return tqdm(iterable, desc=desc, total=total, unit=unit, **tqdm_options)
    return LogProgress(iterable, desc=desc, total=total, unit=unit)
