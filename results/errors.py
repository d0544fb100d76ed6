"""Errors that a user can cause and fix.

Every package of moelaw raises subclasses of :class:`InputError` for bad input, so the command-line
program can print one line (the problem, the offending value, the fix) and exit non-zero, while real
bugs still surface as tracebacks.
"""


class InputError(ValueError):
    """Bad input from the user: a message naming the problem, the offending value and the fix."""


class StoreError(InputError):
    """A results store that is missing, unreadable, read-only or corrupted."""
