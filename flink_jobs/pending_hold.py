"""The hold: pending batches in keyed MapState, indexed by the event time they are due.

One entry per due time (str(ms) -> {batch id: payload}), so a timer reads exactly the
batches due at its timestamp instead of scanning (and deserializing) everything held.
Every due time registers an event-time timer at exactly that time, and Flink fires each
(key, time) timer once, in order, also after a restore; so nothing held is ever skipped.

A batch due at or before the current watermark is not held at all (the operator
attempts it at once, `is_due`): a timer registered in the past fires only at the NEXT
watermark advance, and at the end of a finite input, or while a restored job replays
faster than its retries come back through Kafka, there may be none.

The batch id (attempt's due time, sequence, attempts, payload digest) makes a redelivered
identical payload (a retry topic re-read after a restore) one entry, not two outcomes.
Pure: the state is anything with get/put/remove (Flink's MapState, or a dict in tests).
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

from schemas import flowattr_pb2 as pb


class Pending(NamedTuple):
    """What the hold needs of one pending batch, read from its bytes once."""

    due_ms: int       # next_attempt_ms
    flow_count: int
    batch_id: str     # see the module docstring


class PendingHold:
    def __init__(self, state):
        self.state = state

    @staticmethod
    def read(payload: bytes) -> Pending:
        """Parse a pending AttributedFlowBatch once for everything the hold needs."""
        header = pb.AttributedFlowBatch()
        header.ParseFromString(payload)
        digest = hashlib.blake2b(payload, digest_size=6).hexdigest()
        return Pending(header.next_attempt_ms, header.flow_count,
                       f"{header.source_sequence}:{header.attempts}:{digest}")

    @staticmethod
    def is_due(due_ms: int, watermark_ms: int) -> bool:
        """Attempt now rather than hold: the watermark has already passed the due time."""
        return due_ms <= watermark_ms

    def hold(self, payload: bytes, pending: Pending | None = None) -> int:
        """Hold a pending AttributedFlowBatch (`pending`: its read(), when already made);
        return the event time it is due (a timer must be registered there)."""
        pending = pending or self.read(payload)
        held = self.state.get(str(pending.due_ms)) or {}
        held[pending.batch_id] = payload
        self.state.put(str(pending.due_ms), held)
        return pending.due_ms

    def take_due(self, timestamp_ms: int) -> list[bytes]:
        """Remove and return the batches due at this timer's time, in a stable order."""
        held = self.state.get(str(timestamp_ms))
        if not held:
            return []
        self.state.remove(str(timestamp_ms))
        return [held[k] for k in sorted(held)]
