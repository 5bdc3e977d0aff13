"""The one exception type that the command line turns into a single clear line."""


class EiexError(Exception):
    """Bad input or a configuration that cannot work; the message is shown to the user as is."""
