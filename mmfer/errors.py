"""The one exception type a user can meet; the CLI prints its message instead of a traceback."""


class MmferError(Exception):
    """A problem with the user's input or environment, explained in the message (file, value, what to do)."""


def run_tool_main(main, argv=None, *, prog: str) -> int:
    """Run a script's ``main(argv)`` as the ``mmfer`` commands run theirs: an ``MmferError`` is one line on stderr
    and exit code 2, never a traceback (tools/*.py)."""
    import sys

    try:
        return main(argv) or 0
    except MmferError as e:
        from mmfer.text import terminal_text

        print(f"{prog}: error: {terminal_text(str(e))}", file=sys.stderr)
        return 2


class csv_errors:  # noqa: N801 - used as a context manager, named as what it guards
    """``with csv_errors(path): ...`` reading a CSV: the csv module's own error (a field over its 128-KB limit, a
    NUL byte) and text that is not UTF-8 (a spreadsheet's "CSV" in a Windows code page) become one naming the
    file, not a traceback."""

    def __init__(self, path) -> None:
        self.path = path

    def __enter__(self) -> "csv_errors":
        return self

    def __exit__(self, kind, error, tb) -> bool:
        import csv

        if kind is not None and issubclass(kind, csv.Error):
            raise MmferError(f"{self.path}: not a CSV mmfer can read ({error})") from None
        if kind is not None and issubclass(kind, UnicodeDecodeError):
            raise MmferError(f"{self.path}: not UTF-8 text (byte 0x{error.object[error.start]:02x} at byte "
                             f"{error.start}): save it as UTF-8 (in Excel: 'CSV UTF-8')") from None
        return False
