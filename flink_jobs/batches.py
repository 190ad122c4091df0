"""Batch-level steps of the job as plain functions (no pyflink): validation, conversion of
a FlowBatch into the PENDING form, ownership updates, and turning one attribution attempt
into output records. The Flink operators in attribution_job.py only call these.

PENDING form: an AttributedFlowBatch with `attempts` made so far and `next_attempt_ms`,
carrying the original flow_index of every flow so ids stay stable across retries and
cross-region forwarding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from google.protobuf.message import DecodeError

from flink_jobs.attribution.attribute import ATTRIBUTED, RETRY, Attribution
from flink_jobs.attribution.heartbeats import Claim
from flink_jobs.attribution.rejected import RECORD_BYTES
from flink_jobs.attribution.rows import MAX_WORKLOAD_NAME_BYTES, RowCheck, RowRules, check_rows
from schemas import flowattr_pb2 as pb
from schemas.columns import (
    ATTRIBUTION_COLUMNS,
    BatchFormatError,
    FlowColumns,
    decode_attributed_batch,
    decode_flow_batch,
    encode_attributed_batch,
    header_of,
)

MAX_WINDOW_MS = 10 * 60_000  # a batch window longer than this is not an exporter's batch
DEFAULT_ROW_RULES = RowRules()  # frozen, so one shared default is safe


class InvalidRecord(ValueError):
    """Reason a record goes to the dead-letter topic."""


def validate_flow_batch(value: bytes, now_ms: int, max_future_ms: int, rules: RowRules = DEFAULT_ROW_RULES,
                        kafka_ms: int | None = None) -> tuple[pb.FlowBatch, FlowColumns, RowCheck]:
    """Raises InvalidRecord when the bytes or the header are bad (the whole record is
    dead-lettered); otherwise returns the row check, and the caller passes the valid rows
    on and dead-letters the others (`dead_letter_rows`)."""
    try:
        # The dictionary and its refs are judged per row below, not for the whole record.
        header, cols = decode_flow_batch(value, check_dictionary=False)
    except BatchFormatError as exc:
        raise InvalidRecord(str(exc)) from exc
    _check_header(header.exporter_id, header.window_start_ms, header.window_end_ms, now_ms, max_future_ms)
    _check_timestamp(kafka_ms, header.window_end_ms, header.window_end_ms, max_future_ms,
                     f"the window end {header.window_end_ms}")
    return header, cols, check_rows(cols, header.window_start_ms, header.window_end_ms, rules)


def validate_pending(value: bytes, now_ms: int, max_future_ms: int, rules: RowRules = DEFAULT_ROW_RULES,
                     max_attempts: int = 1_000, kafka_ms: int | None = None, max_retry_wait_ms: int = 0,
                     ) -> tuple[pb.AttributedFlowBatch, FlowColumns, RowCheck]:
    """Like validate_flow_batch, for a PENDING AttributedFlowBatch (retry and inbound
    topics): the rows' attribution columns are checked too, and the retry schedule: more
    attempts than the job ever makes would overflow the attempt counter, and a next
    attempt beyond the wall clock's future bound, plus the longest wait the job's own
    schedule sets (max_retry_wait_ms: a backed-off retry waits up to 16 slots), would
    hold its flows forever."""
    try:
        header, cols = decode_attributed_batch(value)
    except Exception as exc:  # protobuf DecodeError or a column length mismatch
        raise InvalidRecord(f"not a pending AttributedFlowBatch: {exc}") from exc
    _check_header(header.source_exporter_id, header.window_start_ms, header.window_end_ms, now_ms, max_future_ms)
    if header.next_attempt_ms <= 0:
        raise InvalidRecord("pending batch without next_attempt_ms")
    if header.next_attempt_ms > now_ms + max_future_ms + max_retry_wait_ms:
        raise InvalidRecord(f"next attempt {header.next_attempt_ms - now_ms} ms in the future (clock broken?)")
    if header.attempts > max_attempts:
        raise InvalidRecord(f"{header.attempts} attempts made, more than the {max_attempts} the job makes")
    # Stamped with the attempt that made it: after the window, before the next attempt.
    _check_timestamp(kafka_ms, header.window_end_ms, header.next_attempt_ms, max_future_ms,
                     "its window end and next attempt")
    return header, cols, check_rows(cols, header.window_start_ms, header.window_end_ms, rules, remote_refs=True)


def validate_event(value: bytes, now_ms: int, max_future_ms: int, kafka_ms: int | None = None) -> pb.IpChangeEvent:
    """The IpChangeEvent in these bytes; raises InvalidRecord when they are not one or it
    is invalid on its own (event_problem)."""
    try:
        event = pb.IpChangeEvent.FromString(value)
    except DecodeError as exc:
        raise InvalidRecord(f"not an IpChangeEvent: {exc}") from exc
    problem = event_problem(event, now_ms, max_future_ms)
    if problem:
        raise InvalidRecord(problem)
    _check_timestamp(kafka_ms, event.emit_time_ms, event.emit_time_ms, max_future_ms,
                     f"the emit time {event.emit_time_ms}")
    return event


def timestamp_problem(kafka_ms: int | None, low_ms: int, high_ms: int, tolerance_ms: int, what: str) -> str | None:
    """Why a record's Kafka timestamp (its event time: the watermark is made of them)
    disagrees with the time its own payload states, [low_ms, high_ms], by more than the
    tolerance; None when it agrees or the record has no timestamp. One record stamped a
    day ahead would otherwise run the watermark, the pruning and every hold ahead."""
    if kafka_ms is None:
        return None
    if kafka_ms < low_ms - tolerance_ms or kafka_ms > high_ms + tolerance_ms:
        return f"Kafka timestamp {kafka_ms} is more than {tolerance_ms} ms from {what}"
    return None


def _check_timestamp(kafka_ms: int | None, low_ms: int, high_ms: int, tolerance_ms: int, what: str) -> None:
    problem = timestamp_problem(kafka_ms, low_ms, high_ms, tolerance_ms, what)
    if problem:
        raise InvalidRecord(problem)


def event_problem(event: pb.IpChangeEvent, now_ms: int, max_future_ms: int) -> str | None:
    """Why an IP-change event is invalid on its own, or None. (Whether it is ahead of the
    event stream's time is judged by the engine, which knows that time.)"""
    valid_actions = set(pb.IpChangeAction.values()) - {pb.IP_CHANGE_ACTION_UNSPECIFIED}
    return ("ip is not 16 bytes" if len(event.ip) != 16 else
            "action is unspecified or unknown" if event.action not in valid_actions else
            "workload is empty" if not event.workload else
            f"workload is longer than {MAX_WORKLOAD_NAME_BYTES} UTF-8 bytes"
            if len(event.workload.encode()) > MAX_WORKLOAD_NAME_BYTES else
            "event_time_ms is not positive" if event.event_time_ms <= 0 else
            "event_time_ms is after emit_time_ms" if event.event_time_ms > event.emit_time_ms else
            "emit_time_ms is in the future" if event.emit_time_ms > now_ms + max_future_ms
            else None)


def dead_letter_rows(source_topic: str, original: bytes, check: RowCheck, detected_at_ms: int,
                     ) -> pb.DeadLetter | None:
    """The dead letter for the rejected rows of a batch whose header was fine (None when
    every row is valid): the record's bytes intact, the check's summary as the reason and
    the rejected rows' indices in `original`."""
    rejected = check.rejected
    if not len(rejected):
        return None
    return pb.DeadLetter(source_topic=source_topic, original=original, reason=check.summary(),
                         detected_at_ms=detected_at_ms, rejected_rows=rejected.tolist())


def pending_rows(header: pb.AttributedFlowBatch, cols: FlowColumns, rows: np.ndarray) -> bytes:
    """A pending batch reduced to the given rows (index or mask). Each row keeps its
    flow_index column, so flow ids stay stable."""
    return encode_attributed_batch(header, cols.take(rows))


MAX_EXPORTER_ID_BYTES = 255


def _check_header(exporter_id: str, start: int, end: int, now_ms: int, max_future_ms: int) -> None:
    if not exporter_id:
        raise InvalidRecord("exporter_id is empty")
    if len(exporter_id.encode()) > MAX_EXPORTER_ID_BYTES:
        # It is the outputs' Kafka key and keys the hold: bounded so a crafted id cannot
        # weigh on every record (until 2026-11-28 the key was framed with a u16 length, and
        # a 64 KiB id crashed every attempt of its held batch, after every restart).
        raise InvalidRecord(f"exporter_id is {len(exporter_id.encode())} bytes, more than {MAX_EXPORTER_ID_BYTES}")
    if not 0 < start < end:
        raise InvalidRecord(f"window [{start}, {end}) is empty or negative")
    if end - start > MAX_WINDOW_MS:
        raise InvalidRecord(f"window of {end - start} ms is longer than {MAX_WINDOW_MS} ms")
    if end > now_ms + max_future_ms:
        raise InvalidRecord(f"window ends {end - now_ms} ms in the future (clock broken?)")


def to_pending(header: pb.FlowBatch, cols: FlowColumns, region: str, next_attempt_ms: int,
               rows: np.ndarray | None = None) -> bytes:
    """A FlowBatch (or the given rows of it) in PENDING form, attempts = 0."""
    index = np.arange(len(cols), dtype=np.uint32)
    if rows is not None:
        cols, index = cols.take(rows), index[rows]
    out = FlowColumns(dict(cols.columns), cols.workloads)
    out.columns["flow_index"] = index
    for name in ("remote_workload_ref", "evidence_source", "evidence_start_ms", "evidence_end_ms",
                 "unattributed_reason"):
        out.columns[name] = np.zeros(len(index), ATTRIBUTION_COLUMNS[name])
    pending = pb.AttributedFlowBatch(
        source_exporter_id=header.exporter_id, source_sequence=header.sequence, host=header.host,
        region=region, window_start_ms=header.window_start_ms, window_end_ms=header.window_end_ms,
        attempts=0, next_attempt_ms=next_attempt_ms)
    return encode_attributed_batch(pending, out)


def ownership_update(header: pb.FlowBatch, claims: list[Claim], rejected_records: list[bytes] = ()) -> bytes:
    """The broadcast record of one accepted batch, sent even when it proves nothing: the
    collector's ledger of each exporter's sequence numbers needs every batch, and the
    connections of its rejected rows (records lost: attribution/rejected.py)."""
    return pb.OwnershipUpdate(
        rejected_records=b"".join(rejected_records),
        source_exporter_id=header.exporter_id, source_sequence=header.sequence,
        window_start_ms=header.window_start_ms, window_end_ms=header.window_end_ms,
        part=header.part, part_count=max(header.part_count, 1),
        ranges=[pb.OwnershipRange(ip=c.ip, workload=c.workload, start_ms=c.start_ms, end_ms=c.end_ms,
                                  source=pb.EVIDENCE_SOURCE_HEARTBEAT, port=c.port) for c in claims]
    ).SerializeToString()


def claims_of_update(value: bytes) -> tuple[pb.OwnershipUpdate, list[Claim], list[bytes]]:
    """(update, its claims, the connections of its batch's rejected rows)."""
    update = pb.OwnershipUpdate.FromString(value)
    raw = update.rejected_records
    if len(raw) % RECORD_BYTES:  # written only by ownership_update: a bug, never input
        raise ValueError(f"OwnershipUpdate.rejected_records of {len(raw)} bytes, not a multiple of {RECORD_BYTES}")
    rejected = [raw[i:i + RECORD_BYTES] for i in range(0, len(raw), RECORD_BYTES)]
    return update, [Claim(r.ip, r.workload, r.start_ms, r.end_ms, r.port) for r in update.ranges
                    if len(r.ip) == 16 and r.port <= 0xFFFF], rejected


@dataclass
class AttemptOutput:
    attributed: bytes | None     # AttributedFlowBatch for the attributed topic
    unattributed: bytes | None   # AttributedFlowBatch for the unattributed topic
    retry: bytes | None          # PENDING batch for the retry topic
    counts: dict[str, int]       # attributed / retried / unattributed / unattributed_<REASON>
    columns: FlowColumns         # the attempt's rows with their attribution, for the edges:
    decided: np.ndarray          # ... the rows attributed or unattributed (final), a mask


def split_attempt(header: pb.AttributedFlowBatch, cols: FlowColumns, result: Attribution,
                  names: list[str], attempt: int, now_ms: int, next_attempt: int, next_attempt_ms: int,
                  region: str) -> AttemptOutput:
    """Turn one attempt's result into output records (each None when empty). `names`
    maps the result's owner ids to workload names (the attributor's WorkloadNames).
    Final batches carry `attempt` (its slot on the retry schedule); the retry batch
    carries next_attempt - 1, so its next attempt is slot next_attempt (engine.next_attempt)."""
    workloads = list(cols.workloads)
    refs = {w: i for i, w in enumerate(workloads)}
    # One dictionary entry per DISTINCT owner (ascending id), then one gather for all
    # flows; owner ids are small (they index `names`): counted, not sorted.
    owner = np.asarray(result.owner, np.int64)
    ref_of_owner = np.zeros(len(names) + 1, np.uint32)   # at owner + 1: no owner (-1) -> ref 0
    for o in np.flatnonzero(np.bincount(owner + 1, minlength=len(names) + 1)[1:]).tolist():
        name = names[o]
        if name not in refs:
            refs[name] = len(workloads)
            workloads.append(name)
        ref_of_owner[o + 1] = refs[name]
    remote_ref = ref_of_owner[owner + 1]
    full = FlowColumns(dict(cols.columns), workloads)
    full.columns.update({"remote_workload_ref": remote_ref, "evidence_source": result.source,
                         "evidence_start_ms": result.evidence_start, "evidence_end_ms": result.evidence_end,
                         "unattributed_reason": result.reason})

    out = header_of(header)   # each output's header; encode_attributed_batch copies it
    out.region, out.attributed_at_ms = region, now_ms

    def encode(mask: np.ndarray, attempts: int, due_ms: int = 0) -> bytes | None:
        if not mask.any():
            return None
        out.attempts, out.next_attempt_ms = attempts, due_ms
        return encode_attributed_batch(out, full.take(mask))

    hit = result.outcome == ATTRIBUTED
    retry = result.outcome == RETRY
    final = ~hit & ~retry
    counts = {"attributed": int(hit.sum()), "retried": int(retry.sum()), "unattributed": int(final.sum())}
    for prefix, mask in (("unattributed_", final), ("retried_", retry)):   # by reason: why not (yet) attributed
        for reason in np.unique(result.reason[mask]):
            counts[prefix + pb.UnattributedReason.Name(int(reason)).removeprefix("UNATTRIBUTED_REASON_")] = \
                int((result.reason[mask] == reason).sum())
    return AttemptOutput(encode(hit, attempt), encode(final, attempt), encode(retry, next_attempt - 1, next_attempt_ms),
                         counts, full, ~retry)
