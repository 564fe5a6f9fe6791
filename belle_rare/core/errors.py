"""The one exception type the CLI reports as a one-line error (no traceback)."""


class UserError(Exception):
    """Bad input from the user: an argument, a file or a config. The message names it."""
