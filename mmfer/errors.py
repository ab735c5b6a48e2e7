"""The one exception type a user can meet; the CLI prints its message instead of a traceback."""


class MmferError(Exception):
    """A problem with the user's input or environment, explained in the message (file, value, what to do)."""
