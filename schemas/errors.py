"""The one base of every EXPECTED failure (a broker that is not there, a port taken, a bad
config or certificate, a job that timed out): its message says what to do next, and the
command line prints it on one line. Anything else is a bug and keeps its traceback."""

from __future__ import annotations


class FlowattrError(Exception):
    """An expected failure the user can act on; the message says how."""
