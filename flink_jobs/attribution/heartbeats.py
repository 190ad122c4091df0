"""Heartbeats: what one FlowBatch proves about its OWN host's IPs.

Every flow whose local workload the exporter resolved says "workload W held local_ip
during [start, end]". Per batch these collapse to a few claims: one per (local IP,
workload) and stretch of activity (flows closer than the merge gap are joined, as in
ranges.py).

Flows with an unknown local workload (LOCAL_ATTRIBUTION_UNKNOWN, dictionary entry 0)
claim the IP for UNRESOLVED (""), a workload no flow is ever attributed to: the host
held the IP then, and a claim of another workload over the same time is contested, not
proven. Ignored, they let a stale IP-map entry on another host win while the true
host's entry was not written yet: the true host's batch was in, holding this very
connection, and the flow looked settled (an adversarial review's attack).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flink_jobs.attribution.ranges import PORT_KEY_BYTES, UNRESOLVED, port_key
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
    port: int = 0    # set iff the claim is for one port of a port-shared IP (ranges.port_key)

    @property
    def key(self) -> bytes:
        """The ownership-table key: the IP, or IP + port for a port-shared IP."""
        return port_key(self.ip, self.port) if self.port else self.ip


def claims_from_batch(cols: FlowColumns, merge_gap_ms: int,
                      exclude: np.ndarray | None = None, shared_ips: bytes = b"") -> list[Claim]:
    """The ownership claims a batch proves. `exclude` masks flows whose local IP must not
    be learned from heartbeats (outside the attributable CIDRs, host-local, event-only).

    Port-shared IPs: a local IP with any PORT_MAP row in the batch, or in the batch's
    `shared_ips` (FlowBatch.port_shared_ips: 16 bytes each), is shared by port (the
    host's IPv4 used by translated containers), so every row of it yields a claim for
    (IP, local port), and only its non-PORT_MAP rows also claim the whole IP (the host's
    own workload: the collector attributes a port-shared IP by port only). Judged by the
    batch's own rows alone, the host's connection on a port in the next minute's batch
    (no PORT_MAP row) claimed the IP only, and a container's earlier claim on that port
    was the only evidence for the peer's flow: misattributed (helper-32's attack)."""
    attribution = cols["local_attribution"]
    ref = cols["local_workload_ref"]
    usable = (np.isin(attribution, EVIDENCE_ATTRIBUTIONS) & (ref > 0)) | (
        (attribution == pb.LOCAL_ATTRIBUTION_UNKNOWN) & (ref == 0) & (cols.workloads[:1] == [UNRESOLVED]))
    usable &= cols["end_ms"] >= cols["start_ms"]
    if exclude is not None:
        usable &= ~exclude
    if not usable.any():
        return []
    ip_keys = np.ascontiguousarray(cols["local_ip"]).view("V16").ravel()
    by_port = usable & (attribution == pb.LOCAL_ATTRIBUTION_PORT_MAP)
    claims = _stretches(cols, usable & ~by_port, ip_keys, merge_gap_ms)
    declared = np.frombuffer(shared_ips[:len(shared_ips) // 16 * 16], "V16")
    if by_port.any() or len(declared):
        shared_keys = np.concatenate([ip_keys[by_port], declared])
        shared = usable & np.isin(ip_keys, shared_keys) & (cols["local_port"] > 0)  # port 0: no key
        ports = cols["local_port"].astype(">u2").view(np.uint8).reshape(-1, 2)
        keys = np.ascontiguousarray(np.hstack([cols["local_ip"], ports])).view("V18").ravel()
        claims += _stretches(cols, shared, keys, merge_gap_ms)
    return claims


def _stretches(cols: FlowColumns, rows: np.ndarray, all_keys: np.ndarray, merge_gap_ms: int) -> list[Claim]:
    """One claim per (key, workload) and stretch of activity among the selected rows."""
    if not rows.any():
        return []
    keys = all_keys[rows]
    refs = cols["local_workload_ref"][rows]
    starts = cols["start_ms"][rows]
    ends = cols["end_ms"][rows]
    _, key_group = np.unique(keys, return_inverse=True)
    order = np.lexsort((starts, refs, key_group))
    key_group, refs, starts, ends, keys = (key_group[order], refs[order], starts[order],
                                           ends[order], keys[order])
    group = np.r_[True, (key_group[1:] != key_group[:-1]) | (refs[1:] != refs[:-1])].cumsum() - 1
    # Running max of end within each group: offset groups so one accumulate never mixes them.
    # (Row validation bounds every time to the batch window +- max_flow_age: no overflow.)
    base = int(starts.min())
    rel_end = ends - base
    offset = group.astype(np.int64) * (int(rel_end.max()) + 2 * merge_gap_ms + 2)
    run_end = np.maximum.accumulate(rel_end + offset) - offset + base
    new_stretch = np.r_[True, (group[1:] != group[:-1]) | (starts[1:] > run_end[:-1] + merge_gap_ms)]
    first = np.flatnonzero(new_stretch)
    last = np.r_[first[1:], len(starts)] - 1
    out = []
    for f, k in zip(first, last, strict=True):
        raw = keys[f].tobytes()
        port = int.from_bytes(raw[16:], "big") if len(raw) == PORT_KEY_BYTES else 0
        out.append(Claim(raw[:16], cols.workloads[int(refs[f])], int(starts[f]), int(run_end[k]), port))
    return out
