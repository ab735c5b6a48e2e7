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
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
