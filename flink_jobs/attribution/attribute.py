"""Attribution of a whole batch's REMOTE IPs at once.

For each flow: the range containing its start (within the skew tolerance, with no other
owner within it) gives the workload; otherwise a reason. Flows with NO_EVIDENCE are
retried while attempts remain; every other reason is final. Never a best guess.

Array work per batch; the only Python loop is per DISTINCT remote IP (a binary search in
that IP's few ranges), not per flow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flink_jobs.attribution.config import AttributionConfig
from flink_jobs.attribution.events import EventTable
from flink_jobs.attribution.ranges import CONTESTED, IpRanges, OwnershipTable
from flink_jobs.attribution.regions import CidrSet
from schemas import flowattr_pb2 as pb

# Per-flow outcome of one attempt.
ATTRIBUTED, RETRY, UNATTRIBUTED = 1, 2, 3

NO_EVIDENCE = pb.UNATTRIBUTED_REASON_NO_EVIDENCE
CONFLICT = pb.UNATTRIBUTED_REASON_CONFLICT
EXPIRED = pb.UNATTRIBUTED_REASON_EVIDENCE_EXPIRED
CLOCK_SKEW = pb.UNATTRIBUTED_REASON_CLOCK_SKEW
INVALID_TIME = pb.UNATTRIBUTED_REASON_INVALID_TIME
RETRYABLE = (NO_EVIDENCE,)


@dataclass
class Attribution:
    """Per-flow results, aligned with the batch's rows."""

    outcome: np.ndarray          # uint8: ATTRIBUTED, RETRY or UNATTRIBUTED
    owner: np.ndarray            # int64 owner id in the evidence table's names; -1 if none
    source: np.ndarray           # uint8 EvidenceSource (0 if not attributed)
    evidence_start: np.ndarray   # int64 (0 if not attributed)
    evidence_end: np.ndarray     # int64 (0 if not attributed)
    reason: np.ndarray           # uint8 UnattributedReason (0 if attributed)


def lookup_ip(ranges: IpRanges | None, starts: np.ndarray, tolerance_ms: int, horizon_ms: int):
    """Vectorized lookup of many start times in ONE IP's ranges.

    Returns (owner, range_start, range_end, reason) arrays; owner -1 where unattributed.
    """
    n = len(starts)
    owner = np.full(n, -1, np.int64)
    r_start = np.zeros(n, np.int64)
    r_end = np.zeros(n, np.int64)
    reason = np.full(n, NO_EVIDENCE, np.uint8)
    if ranges is not None and len(ranges):
        rs, re_, ro = ranges.arrays()
        lo = np.searchsorted(re_, starts - tolerance_ms, "left")   # first range ending >= t - tol
        hi = np.searchsorted(rs, starts + tolerance_ms, "right")   # ranges starting <= t + tol
        count = hi - lo
        single = count == 1
        idx = np.where(single, lo, 0)
        single_owner = ro[idx]
        ok = single & (single_owner != CONTESTED)
        owner[ok] = single_owner[ok]
        r_start[ok], r_end[ok] = rs[idx[ok]], re_[idx[ok]]
        reason[ok] = 0
        # A lone contested interval near t: CONFLICT if it contains t, else CLOCK_SKEW.
        lone_contested = single & (single_owner == CONTESTED)
        inside = (rs[idx] <= starts) & (starts <= re_[idx])
        reason[lone_contested] = np.where(inside[lone_contested], CONFLICT, CLOCK_SKEW)
        for i in np.flatnonzero(count > 1):  # rare: several ranges within the tolerance
            owners = set(ro[lo[i]:hi[i]].tolist())
            t = starts[i]
            containing = [k for k in range(lo[i], hi[i]) if rs[k] <= t <= re_[k]]
            if len(owners) == 1 and CONTESTED not in owners:
                k = containing[0] if containing else lo[i]
                owner[i], r_start[i], r_end[i], reason[i] = ro[k], rs[k], re_[k], 0
            elif any(ro[k] == CONTESTED for k in containing):
                reason[i] = CONFLICT
            else:
                reason[i] = CLOCK_SKEW
    expired = starts < horizon_ms
    owner[expired] = -1
    reason[expired] = EXPIRED
    return owner, r_start, r_end, reason


def attribute_batch(remote_ips: np.ndarray, starts: np.ndarray, ends: np.ndarray, attempt: int,
                    heartbeats: OwnershipTable, events: EventTable | None, event_cidrs: CidrSet,
                    cfg: AttributionConfig) -> Attribution:
    """Attribute flows (remote IP, start) on attempt number `attempt` (1 = first)."""
    n = len(starts)
    owner = np.full(n, -1, np.int64)
    source = np.zeros(n, np.uint8)
    ev_start = np.zeros(n, np.int64)
    ev_end = np.zeros(n, np.int64)
    reason = np.full(n, NO_EVIDENCE, np.uint8)
    if n:
        by_event = event_cidrs.contains(remote_ips)
        flat = np.ascontiguousarray(remote_ips).view("V16").ravel()
        uniq, inverse = np.unique(flat, return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        bounds = np.searchsorted(inverse[order], np.arange(len(uniq) + 1))
        for u in range(len(uniq)):
            rows = order[bounds[u]:bounds[u + 1]]
            ip = uniq[u].tobytes()
            if by_event[rows[0]]:
                if events is None:
                    continue
                table, src = events.table, pb.EVIDENCE_SOURCE_IP_CHANGE_EVENT
            else:
                table, src = heartbeats, pb.EVIDENCE_SOURCE_HEARTBEAT
            o, s, e, r = lookup_ip(table.by_ip.get(ip), starts[rows], cfg.skew_tolerance_ms,
                                   table.horizon_ms)
            owner[rows], ev_start[rows], ev_end[rows], reason[rows] = o, s, e, r
            source[rows] = np.where(o >= 0, src, 0)
        invalid = ends < starts
        owner[invalid], source[invalid], reason[invalid] = -1, 0, INVALID_TIME
    attributed = owner >= 0
    retry = ~attributed & np.isin(reason, RETRYABLE) & (attempt < cfg.max_attempts)
    outcome = np.where(attributed, ATTRIBUTED, np.where(retry, RETRY, UNATTRIBUTED)).astype(np.uint8)
    ev_start[~attributed] = 0
    ev_end[~attributed] = 0
    reason[attributed] = 0
    return Attribution(outcome, owner, source, ev_start, ev_end, reason)
