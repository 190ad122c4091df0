"""Tests wait on conditions, never on fixed sleeps: one helper for all of them."""

from __future__ import annotations

import time


def until(predicate, timeout_s: float, what: str, poll_s: float = 1.0):
    """The first truthy value of predicate(), polled every poll_s; an AssertionError naming
    `what` once timeout_s has passed."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(poll_s)
