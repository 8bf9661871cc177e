"""The one error type for user mistakes.

The CLI turns an `R1kitError` into a single line on stderr and exit status 2;
the traceback is shown only when `R1KIT_DEBUG=1`. Raise it for anything the
user can fix (a missing column, a bad size, a path that is not a checkpoint),
with a message that names the problem and the fix.
"""


class R1kitError(Exception):
    """A mistake in the user's input: printed as one line, exit status 2."""
