"""The hold: pending batches in keyed MapState, indexed by the event time they are due.

Two kinds of entry: "due:<ms>" -> the ids of the batches due then, and "batch:<id>" ->
one batch's payload. A timer reads exactly the batches due at its timestamp instead of
scanning (and deserializing) everything held, and every value stays one batch big: with
RocksDB the hold lives on disk, and a value of every batch due at one time (tens of MB
per exporter at a long hold) crashed the TaskManager inside pemja, which copies each
value whole between Java and Python.
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

    def hold(self, payload: bytes, pending: Pending | None = None, at_ms: int | None = None) -> int:
        """Hold a pending AttributedFlowBatch (`pending`: its read(), when already made)
        until `at_ms` (default: its due time); return that time (a timer must be
        registered there)."""
        pending = pending or self.read(payload)
        at_ms = pending.due_ms if at_ms is None else at_ms
        key = "batch:" + pending.batch_id
        if self.state.get(key) is None:  # a redelivered identical batch is held once
            self.state.put(key, payload)
            due = "due:" + str(at_ms)
            self.state.put(due, (self.state.get(due) or []) + [pending.batch_id])
        return at_ms

    def take_due(self, timestamp_ms: int) -> list[bytes]:
        """Remove and return the batches due at this timer's time, in a stable order."""
        due = "due:" + str(timestamp_ms)
        ids = self.state.get(due) or []
        self.state.remove(due)
        out = []
        for batch_id in sorted(ids):
            out.append(self.state.get("batch:" + batch_id))
            self.state.remove("batch:" + batch_id)
        # The layout before 2026-11-26 (str(ms) -> {id: payload}): a job restored from its
        # savepoint still has those entries, and their timers still fire.
        legacy = self.state.get(str(timestamp_ms))
        if legacy:
            self.state.remove(str(timestamp_ms))
            out += [legacy[k] for k in sorted(legacy)]
        return out
