"""The lookup of many flows' REMOTE IPs at once, and the per-flow outcome codes.

For each flow: the range containing its start (within the skew tolerance, with no other
owner within it) gives the workload; otherwise a reason. Never a best guess. Which
reasons are retried is decided by the Attributor (attributor.py).

Array work per batch: one binary search over the concatenated ranges of the batch's
distinct remote IPs; the only Python loop is a dict lookup per DISTINCT remote IP.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flink_jobs.attribution.ranges import CONTESTED, IpRanges
from schemas import flowattr_pb2 as pb

# Per-flow outcome of one attempt.
ATTRIBUTED, RETRY, UNATTRIBUTED = 1, 2, 3

NO_EVIDENCE = pb.UNATTRIBUTED_REASON_NO_EVIDENCE
CONFLICT = pb.UNATTRIBUTED_REASON_CONFLICT
EXPIRED = pb.UNATTRIBUTED_REASON_EVIDENCE_EXPIRED
CLOCK_SKEW = pb.UNATTRIBUTED_REASON_CLOCK_SKEW
INVALID_TIME = pb.UNATTRIBUTED_REASON_INVALID_TIME
OUTSIDE = pb.UNATTRIBUTED_REASON_OUTSIDE_KNOWN_CIDRS
HOST_LOCAL = pb.UNATTRIBUTED_REASON_HOST_LOCAL_ADDRESS
UNSETTLED = pb.UNATTRIBUTED_REASON_EVIDENCE_UNSETTLED
UNSETTLED_EVENTS = pb.UNATTRIBUTED_REASON_EVENTS_UNSETTLED
REJECTED = pb.UNATTRIBUTED_REASON_EVIDENCE_REJECTED


@dataclass
class Attribution:
    """Per-flow results, aligned with the batch's rows."""

    outcome: np.ndarray          # uint8: ATTRIBUTED, RETRY or UNATTRIBUTED
    owner: np.ndarray            # int64 owner id in the evidence table's names; -1 if none
    source: np.ndarray           # uint8 EvidenceSource (0 if not attributed)
    evidence_start: np.ndarray   # int64 (0 if not attributed)
    evidence_end: np.ndarray     # int64 (0 if not attributed)
    reason: np.ndarray           # uint8 UnattributedReason (0 if attributed)


def search(rs: np.ndarray, re_: np.ndarray, ro: np.ndarray, offsets: np.ndarray, segment: np.ndarray,
            starts: np.ndarray, tolerance_ms: int):
    """Look up many (segment, start) pairs at once in concatenated per-IP ranges.

    rs/re_/ro hold the ranges of several IPs back to back, each IP's slice
    [offsets[k], offsets[k + 1]) sorted and disjoint; segment[i] names the IP of query i.
    One searchsorted over combined keys (segment << bits | time - base) replaces one per
    IP. Returns (owner, range_start, range_end, reason), owner -1 where unattributed.
    """
    n = len(starts)
    owner = np.full(n, -1, np.int64)
    r_start = np.zeros(n, np.int64)
    r_end = np.zeros(n, np.int64)
    reason = np.full(n, NO_EVIDENCE, np.uint8)
    if not n or not len(rs):
        return owner, r_start, r_end, reason
    # Clipping a query time into [low, high] changes no comparison with any range bound
    # (all lie strictly inside), and keeps every key within `width` of its segment base.
    low, high = int(rs.min()) - 1, int(re_.max()) + 1
    width = high - low + 1
    segments = len(offsets) - 1
    if segments > 1 and segments * width >= 2**62:  # absurd time spread: one search per IP instead
        for k in range(segments):
            rows = np.flatnonzero(segment == k)
            sl = slice(offsets[k], offsets[k + 1])
            o, s, e, r = search(rs[sl], re_[sl], ro[sl], np.array([0, offsets[k + 1] - offsets[k]]),
                                 np.zeros(len(rows), np.int64), starts[rows], tolerance_ms)
            owner[rows], r_start[rows], r_end[rows], reason[rows] = o, s, e, r
        return owner, r_start, r_end, reason
    range_segment = np.repeat(np.arange(segments, dtype=np.int64), np.diff(offsets)) * width
    seg_base = segment.astype(np.int64) * width
    lo = np.searchsorted(range_segment + (re_ - low), seg_base + (np.clip(starts - tolerance_ms, low, high) - low),
                         "left")   # first range of the IP ending >= t - tol
    hi = np.searchsorted(range_segment + (rs - low), seg_base + (np.clip(starts + tolerance_ms, low, high) - low),
                         "right")  # ranges of the IP starting <= t + tol
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
    return owner, r_start, r_end, reason


def lookup_ip(ranges: IpRanges | None, starts: np.ndarray, tolerance_ms: int, horizon_ms: int):
    """Look up many start times in ONE IP's ranges (the same search attribute_batch runs
    over all of a batch's IPs at once). Returns (owner, range_start, range_end, reason)."""
    starts = np.asarray(starts, np.int64)
    rs, re_, ro = ranges.arrays() if ranges is not None else (_EMPTY, _EMPTY, _EMPTY)
    owner, r_start, r_end, reason = search(rs, re_, ro, np.array([0, len(rs)]), np.zeros(len(starts), np.int64),
                                            starts, tolerance_ms)
    expired = starts < horizon_ms
    owner[expired] = -1
    reason[expired] = EXPIRED
    return owner, r_start, r_end, reason


_EMPTY = np.zeros(0, np.int64)


def distinct_ips(ips: np.ndarray) -> tuple[list[bytes], np.ndarray]:
    """(distinct 16-byte IPs, index of each row's IP in that list). Fast path: when all IPs
    share their first 8 bytes (IPv4-mapped, or one /64), dedupe on the last 8 as uint64."""
    ips = np.ascontiguousarray(ips, np.uint8).reshape(-1, 16)
    halves = ips.view("<u8")
    if len(ips) and (halves[:, 0] == halves[0, 0]).all():
        _, first, inverse = np.unique(halves[:, 1], return_index=True, return_inverse=True)
    else:
        _, first, inverse = np.unique(ips.view("V16").ravel(), return_index=True, return_inverse=True)
    return [ips[f].tobytes() for f in first.tolist()], inverse.ravel()
