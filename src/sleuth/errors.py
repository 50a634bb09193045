"""The one exception type that means "the user gave us something we cannot use"."""


class SleuthError(Exception):
    """A problem with the user's input (a bad spec, a missing or hostile file, a mismatch).

    The CLI prints its message on one line and exits with code 2; anything else is a bug.
    """
