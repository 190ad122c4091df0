"""Row validation of a batch at the job's door, in pure numpy (no pyflink, kafka or bcc).

The batch header (exporter id, window) is checked in flink_jobs/batches.py; a bad header
or undecodable bytes still reject the whole record. This module judges each ROW of a
batch whose header is fine: a row ending hours after its window would give its workload
the IP for hours, a start or end near +-2^62 would overflow claim arithmetic, and an
unknown code or an inconsistent workload reference would be read as evidence.

Decision: only the invalid rows are rejected. They go to the dead-letter topic (the
original bytes plus their indices, `DeadLetter.rejected_rows`); the valid rows of the
same batch go on with their ORIGINAL flow_index (`batches.to_pending(..., rows=valid)`),
so flow ids (exporter, sequence, flow_index) stay stable. The batch itself goes on even
when every row is rejected: its header still reports the exporter's progress (sequence,
window end).

Overflow: every int64 value is possible on the wire. Rules are evaluated by comparing
columns with bounds computed in Python integers (unbounded) and clamped to int64; no
column value is ever added to or subtracted from.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from schemas import flowattr_pb2 as pb
from schemas.columns import FlowColumns

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

# Codes a valid row may carry. UNSPECIFIED (0) is never valid for these two columns.
LOCAL_ATTRIBUTIONS = np.array(sorted(v for v in pb.LocalAttribution.values() if v), np.uint8)
DIRECTIONS = np.array(sorted(v for v in pb.FlowDirection.values() if v), np.uint8)
# Attribution columns of pending batches: here 0 is valid and common ("not set": evidence
# is 0 iff unattributed, the reason is 0 iff attributed, and a fresh pending row has both 0).
EVIDENCE_SOURCES = np.array(sorted(pb.EvidenceSource.values()), np.uint8)
UNATTRIBUTED_REASONS = np.array(sorted(pb.UnattributedReason.values()), np.uint8)
# Attributions that name a workload: their ref must be > 0 and its name non-empty.
NAMED = np.array([pb.LOCAL_ATTRIBUTION_IDENTITY_FILE, pb.LOCAL_ATTRIBUTION_IP_MAP,
                  pb.LOCAL_ATTRIBUTION_PORT_MAP], np.uint8)

END_OUTSIDE_WINDOW = "end_ms outside the batch window"
START_AFTER_END = "start_ms after end_ms"
START_TOO_OLD = "start_ms older than max_flow_age_ms before the window"
UNKNOWN_ATTRIBUTION = "unknown local_attribution code"
UNKNOWN_DIRECTION = "unknown direction code"
LOCAL_REF_PAST_DICTIONARY = "local_workload_ref past the workloads dictionary"
ATTRIBUTION_REF_DISAGREE = "local_attribution and local_workload_ref disagree"
BAD_DICTIONARY = "workloads dictionary is empty or entry 0 is not empty"
# Broadcast state keeps a workload name in at most 255 UTF-8 bytes (ranges.encode_ip): a
# longer one came back cut after a restore (a name no workload has, or a cut inside a
# character that failed every restore), so it is never learned (a review's find).
MAX_WORKLOAD_NAME_BYTES = 255
LOCAL_NAME_TOO_LONG = f"local workload name longer than {MAX_WORKLOAD_NAME_BYTES} UTF-8 bytes"
REMOTE_REF_PAST_DICTIONARY = "remote_workload_ref past the workloads dictionary"
UNKNOWN_EVIDENCE_SOURCE = "unknown evidence_source code"
UNKNOWN_REASON = "unknown unattributed_reason code"


@dataclass(frozen=True)
class RowRules:
    # How long before window_start a row may have started: a long-lived connection closes
    # in this window but opened earlier. Default 3 h = the ownership retention; evidence
    # older than that is pruned anyway, so an older start can prove nothing.
    max_flow_age_ms: int = 3 * 3_600_000
    # How far end_ms may lie outside [window_start, window_end): the exporter cuts
    # windows by close time on the host clock, so a row may sit just across the edge.
    close_slack_ms: int = 2_000


@dataclass
class RowCheck:
    valid: np.ndarray                 # bool per row
    reasons: dict[str, np.ndarray]    # reason text -> indices of the rows failing it (non-empty)

    @property
    def rejected(self) -> np.ndarray:
        """Indices of the invalid rows, ascending (uint32, as DeadLetter.rejected_rows)."""
        return np.flatnonzero(~self.valid).astype(np.uint32)

    def summary(self, limit: int = 10) -> str:
        """'3 of 120 rows rejected: end_ms outside the batch window: rows 4, 9; ...', at
        most `limit` row numbers per reason (a batch may hold 50,000 rows)."""
        bad = int((~self.valid).sum())
        parts = []
        for reason, rows in self.reasons.items():
            shown = ", ".join(str(r) for r in rows[:limit].tolist())
            more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
            parts.append(f"{reason}: rows {shown}{more}")
        return f"{bad} of {len(self.valid)} rows rejected" + (": " + "; ".join(parts) if parts else "")


def _at_least(values: np.ndarray, bound: int) -> np.ndarray:
    """values >= bound for an int64 column and any Python int bound, without overflow."""
    return values >= max(bound, _INT64_MIN) if bound <= _INT64_MAX else np.zeros(len(values), bool)


def _at_most(values: np.ndarray, bound: int) -> np.ndarray:
    """values <= bound for an int64 column and any Python int bound, without overflow."""
    return values <= min(bound, _INT64_MAX) if bound >= _INT64_MIN else np.zeros(len(values), bool)


def _time_faults(cols: FlowColumns, window_start_ms: int, window_end_ms: int,
                 rules: RowRules) -> dict[str, np.ndarray]:
    start = np.asarray(cols["start_ms"], np.int64)
    end = np.asarray(cols["end_ms"], np.int64)
    # Bounds in Python integers, so window +- slack cannot wrap; [lo, hi) becomes [lo, hi - 1].
    lo, hi = int(window_start_ms) - rules.close_slack_ms, int(window_end_ms) + rules.close_slack_ms
    return {
        END_OUTSIDE_WINDOW: ~(_at_least(end, lo) & _at_most(end, hi - 1)),
        START_AFTER_END: start > end,
        START_TOO_OLD: ~_at_least(start, int(window_start_ms) - rules.max_flow_age_ms),
    }


def _local_faults(cols: FlowColumns) -> dict[str, np.ndarray]:
    n, size = len(cols), len(cols.workloads)
    attribution = np.asarray(cols["local_attribution"])
    ref = np.asarray(cols["local_workload_ref"]).astype(np.int64)
    in_range = ref < size
    # Per dictionary ENTRY (not per row): does it hold a name, is it too long?
    named_entry = np.array([bool(w) for w in cols.workloads], bool)
    long_entry = np.array([len(w.encode()) > MAX_WORKLOAD_NAME_BYTES for w in cols.workloads], bool)
    has_name, too_long = np.zeros(n, bool), np.zeros(n, bool)
    has_name[in_range] = named_entry[ref[in_range]]
    too_long[in_range] = long_entry[ref[in_range]]
    # Judged only where the ref is inside the dictionary: a ref past it has its own reason.
    disagree = in_range & (
        ((attribution == pb.LOCAL_ATTRIBUTION_UNKNOWN) & (ref != 0))
        | (np.isin(attribution, NAMED) & ((ref == 0) | ~has_name)))
    dictionary_bad = size == 0 or cols.workloads[0] != ""
    return {
        UNKNOWN_ATTRIBUTION: ~np.isin(attribution, LOCAL_ATTRIBUTIONS),
        UNKNOWN_DIRECTION: ~np.isin(np.asarray(cols["direction"]), DIRECTIONS),
        LOCAL_REF_PAST_DICTIONARY: ~in_range,
        ATTRIBUTION_REF_DISAGREE: disagree,
        LOCAL_NAME_TOO_LONG: too_long,
        # Every ref of the batch is suspect when entry 0 is not the "unknown" entry.
        BAD_DICTIONARY: np.full(n, dictionary_bad),
    }


def _remote_faults(cols: FlowColumns) -> dict[str, np.ndarray]:
    return {
        REMOTE_REF_PAST_DICTIONARY: np.asarray(cols["remote_workload_ref"]).astype(np.int64)
        >= len(cols.workloads),
        UNKNOWN_EVIDENCE_SOURCE: ~np.isin(np.asarray(cols["evidence_source"]), EVIDENCE_SOURCES),
        UNKNOWN_REASON: ~np.isin(np.asarray(cols["unattributed_reason"]), UNATTRIBUTED_REASONS),
    }


def check_rows(cols: FlowColumns, window_start_ms: int, window_end_ms: int, rules: RowRules,
               remote_refs: bool = False) -> RowCheck:
    """Which rows of a batch with window [window_start_ms, window_end_ms) are valid, and
    why the others are not. `remote_refs`: also check the attribution columns of a
    pending AttributedFlowBatch (retry and inbound topics). A row may fail several rules;
    it is listed under each."""
    faults = _time_faults(cols, window_start_ms, window_end_ms, rules) | _local_faults(cols)
    if remote_refs:
        faults |= _remote_faults(cols)
    valid = np.ones(len(cols), bool)
    reasons = {}
    for reason, mask in faults.items():  # one pass per RULE, never per row
        if mask.any():
            valid &= ~mask
            reasons[reason] = np.flatnonzero(mask)
    return RowCheck(valid, reasons)
