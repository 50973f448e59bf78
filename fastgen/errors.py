"""One error tree: what stops the work, with the exit status the command line gives it.

Every message is one sentence a user can act on. ``ConfigError`` (fastgen.config) is the
other branch: an invalid model option, exit 2.
"""

from __future__ import annotations


class DatasetError(Exception):
    """Something about the dataset folder or a target stops the work (exit 1)."""

    exit_code = 1


class UsageError(DatasetError):
    """The user asked for something impossible; nothing was written (exit 2)."""

    exit_code = 2


class LockedError(DatasetError):
    """Another fastgen writes this folder (exit 1)."""

    exit_code = 1
