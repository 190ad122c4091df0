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

from schemas import flowattr_pb2 as pb


class PendingHold:
    def __init__(self, state):
        self.state = state

    @staticmethod
    def due_and_count(payload: bytes) -> tuple[int, int]:
        """(next_attempt_ms, flow_count) of a pending batch."""
        header = pb.AttributedFlowBatch()
        header.ParseFromString(payload)  # header fields only are used here
        return header.next_attempt_ms, header.flow_count

    @staticmethod
    def is_due(due_ms: int, watermark_ms: int) -> bool:
        """Attempt now rather than hold: the watermark has already passed the due time."""
        return due_ms <= watermark_ms

    def hold(self, payload: bytes) -> int:
        """Hold a pending AttributedFlowBatch; return the event time it is due (a timer
        must be registered there)."""
        header = pb.AttributedFlowBatch()
        header.ParseFromString(payload)  # header fields only are used here
        due = header.next_attempt_ms
        batch_id = f"{header.source_sequence}:{header.attempts}:{hashlib.blake2b(payload, digest_size=6).hexdigest()}"
        held = self.state.get(str(due)) or {}
        held[batch_id] = payload
        self.state.put(str(due), held)
        return due

    def take_due(self, timestamp_ms: int) -> list[bytes]:
        """Remove and return the batches due at this timer's time, in a stable order."""
        held = self.state.get(str(timestamp_ms))
        if not held:
            return []
        self.state.remove(str(timestamp_ms))
        return [held[k] for k in sorted(held)]
