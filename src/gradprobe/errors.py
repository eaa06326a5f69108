"""Exceptions that map onto the command line's exit codes (DESIGN.md, "Command line")."""


class UsageError(Exception):
    """Bad usage or bad input: one clear message, exit code 2, nothing written."""


class ConfigError(UsageError):
    """A config override names an unknown key, has the wrong type, or is out of range."""


class DataError(UsageError):
    """Input data is missing or malformed (for example CIFAR-10 not where the config says)."""
