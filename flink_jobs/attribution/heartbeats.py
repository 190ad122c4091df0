"""Heartbeats: what one FlowBatch proves about its OWN host's IPs.

Every flow whose local workload the exporter resolved says "workload W held local_ip
during [start, end]". Per batch these collapse to a few claims: one per (local IP,
workload) and stretch of activity (flows closer than the merge gap are joined, as in
ranges.py). Flows with an unknown local workload are never evidence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from schemas import flowattr_pb2 as pb
from schemas.columns import FlowColumns

EVIDENCE_ATTRIBUTIONS = np.array([pb.LOCAL_ATTRIBUTION_IDENTITY_FILE, pb.LOCAL_ATTRIBUTION_IP_MAP,
                                  pb.LOCAL_ATTRIBUTION_PORT_MAP], dtype=np.uint8)


@dataclass(frozen=True)
class Claim:
    ip: bytes        # 16 bytes, IPv4-mapped
    workload: str    # owning workload
    start_ms: int    # inclusive
    end_ms: int      # inclusive


def claims_from_batch(cols: FlowColumns, merge_gap_ms: int,
                      exclude: np.ndarray | None = None) -> list[Claim]:
    """The ownership claims a batch proves. `exclude` masks flows whose local IP must not
    be learned from heartbeats (e.g. inside event-only CIDRs)."""
    usable = np.isin(cols["local_attribution"], EVIDENCE_ATTRIBUTIONS) & (cols["local_workload_ref"] > 0)
    usable &= cols["end_ms"] >= cols["start_ms"]
    if exclude is not None:
        usable &= ~exclude
    if not usable.any():
        return []
    ips = np.ascontiguousarray(cols["local_ip"][usable]).view("V16").ravel()
    refs = cols["local_workload_ref"][usable]
    starts = cols["start_ms"][usable]
    ends = cols["end_ms"][usable]
    _, ip_group = np.unique(ips, return_inverse=True)
    order = np.lexsort((starts, refs, ip_group))
    ip_group, refs, starts, ends, ips = (ip_group[order], refs[order], starts[order],
                                         ends[order], ips[order])
    group = np.r_[True, (ip_group[1:] != ip_group[:-1]) | (refs[1:] != refs[:-1])].cumsum() - 1
    # Running max of end within each group: offset groups so one accumulate never mixes them.
    base = int(starts.min())
    rel_end = ends - base
    offset = group.astype(np.int64) * (int(rel_end.max()) + 2 * merge_gap_ms + 2)
    run_end = np.maximum.accumulate(rel_end + offset) - offset + base
    new_stretch = np.r_[True, (group[1:] != group[:-1]) | (starts[1:] > run_end[:-1] + merge_gap_ms)]
    first = np.flatnonzero(new_stretch)
    last = np.r_[first[1:], len(starts)] - 1
    return [Claim(ips[f].tobytes(), cols.workloads[int(refs[f])], int(starts[f]), int(run_end[k]))
            for f, k in zip(first, last, strict=True)]
