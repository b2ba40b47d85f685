"""User-facing errors: the CLI prints their message on one line and exits with status 2."""


class CinetuneError(ValueError):
    """Bad input or an unusable environment; the message names what to fix."""
