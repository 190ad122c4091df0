"""Flow events -> one FlowBatch per window (by close time), split when too large for one
Kafka message, with per-exporter sequence numbers. Windows with no flows still produce an
(empty) batch: it tells the collector that this exporter's time has moved on.

Columnar throughout: events arrive as FLOW_EVENT_DTYPE rows in bulk from the ring buffer
and stay numpy arrays until they are encoded, with no Python object per flow.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from exporter.events import FLOW_EVENT_DTYPE, FlowEvent, MonotonicToWall, records
from schemas import flowattr_pb2 as pb
from schemas.addresses import HOST_LOCAL_CIDRS
from schemas.cidrs import CidrSet
from schemas.columns import FlowColumns, encode_flow_batch

# Odd 64-bit multipliers mixing a name's eight words into one (any odd values do: a
# collision only costs the exact path below, never a wrong name).
_MIX = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93,
                 0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53, 0x27D4EB2F165667C5, 0x94D049BB133111EB], np.uint64)


def distinct_names(names: np.ndarray, mix: np.ndarray = _MIX) -> tuple[np.ndarray, np.ndarray]:
    """np.unique(names, return_inverse=True) for S64 names, exactly, ~3x faster: the rows
    are grouped by a 64-bit mix of their words (sorting 8-byte keys, not 64-byte strings),
    every row is then compared with its group's first row, and any group holding two
    different names (a mix collision) falls back to np.unique. (np.unique was ~2/3 of a
    window's encode: 10.2 ms of 20,000 names, against 3.0 ms here, measured.)"""
    n = len(names)
    if n == 0:
        return np.zeros(0, names.dtype), np.zeros(0, np.intp)
    if names.dtype.itemsize % 8 or names.dtype.itemsize > 8 * len(mix):   # the event's names are S64
        unique, inverse = np.unique(names, return_inverse=True)
        return unique, inverse.ravel()
    words = np.ascontiguousarray(names).view(np.uint64).reshape(n, names.dtype.itemsize // 8)
    keys = words @ mix[:words.shape[1]]   # uint64 arithmetic wraps: a hash, not a sum
    _, first, group = np.unique(keys, return_index=True, return_inverse=True)
    group = group.ravel()
    if not (words == words[first][group]).all():
        unique, inverse = np.unique(names, return_inverse=True)
        return unique, inverse.ravel()
    heads = np.ascontiguousarray(names)[first]
    order = np.argsort(heads, kind="stable")      # np.unique's order: sorted names
    rank = np.empty(len(order), np.intp)
    rank[order] = np.arange(len(order))
    return heads[order], rank[group]


@dataclass
class Batcher:
    exporter_id: str
    host: str
    region: str
    window_ms: int = 60_000
    max_flows_per_message: int = 50_000   # ~5 MB per message at ~100 bytes per flow
    identity_workload: str = ""           # host mode: the identity file's workload
    local_filter: CidrSet | None = None   # report only flows whose local IP is in these CIDRs
    # Flows whose local IP is host-local (loopback, link-local, docker0, ...) are dropped
    # before anything else: such an IP exists on many hosts and names no workload.
    host_local: CidrSet = field(default_factory=lambda: CidrSet(HOST_LOCAL_CIDRS))
    dropped_host_local: int = 0           # flows dropped for a host-local local IP (a metric)
    clock: MonotonicToWall = field(default_factory=MonotonicToWall)
    sequence: int = 0
    # window start -> list of (rows, start_ms, end_ms) chunks as they arrived
    windows: dict[int, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = field(default_factory=dict)
    next_window_start: int | None = None
    # Local IPv4s (16 bytes, IPv4-mapped) shared by port with translated sockets: every IP
    # the port map has held or a PORT_MAP row has shown, for good (see declare_port_shared).
    port_shared_ips: set[bytes] = field(default_factory=set)

    def declare_port_shared(self, ips) -> bool:
        """Add 16-byte IPs to port_shared_ips, which every later batch's header declares
        (FlowBatch.port_shared_ips): the collector then takes every row on them as evidence
        for (IP, local port). Sticky: a host connection in a minute with no translated
        socket may share a port with one of the minute before. True if the set grew."""
        new = set(ips) - self.port_shared_ips
        self.port_shared_ips |= new
        return bool(new)

    def windows_due(self, now_ms: int, grace_ms: int = 2_000) -> bool:
        """Whether flush_due(now_ms, grace_ms) would encode a window."""
        start = self._first_window_start(now_ms)
        return start + self.window_ms + grace_ms <= now_ms or any(k < start for k in self.windows)

    def _first_window_start(self, now_ms: int) -> int:
        """The next window to encode: before the first flush, the earliest of now's window
        and every window holding rows."""
        if self.next_window_start is not None:
            return self.next_window_start
        return min([now_ms // self.window_ms * self.window_ms, *self.windows])

    def add(self, ev: FlowEvent) -> None:
        self.add_records(records([ev]))

    def add_records(self, rows: np.ndarray) -> None:
        """Add FLOW_EVENT_DTYPE rows (one ring-buffer read). The rows are copied once at
        most (one mask for both filters, none when one window takes them all): with a copy
        per filter and per window, a second's 2,000 rows took 0.57 ms, now 0.23 ms."""
        if not len(rows):
            return
        keep = ~self.host_local.contains(rows["local_ip"])
        self.dropped_host_local += len(rows) - int(keep.sum())
        if self.local_filter is not None:
            keep &= self.local_filter.contains(rows["local_ip"])
        if not keep.all():
            rows = rows[keep]
            if not len(rows):
                return
        by_port = rows["attribution"] == pb.LOCAL_ATTRIBUTION_PORT_MAP
        if by_port.any():
            local = np.ascontiguousarray(rows["local_ip"][by_port], dtype=np.uint8).reshape(-1, 16)
            self.declare_port_shared(bytes(ip) for ip in np.unique(local, axis=0))
        if self.identity_workload:
            unknown = rows["attribution"] == pb.LOCAL_ATTRIBUTION_UNKNOWN
            if unknown.any():
                rows = rows.copy()
                rows["workload"][unknown] = self.identity_workload.encode()[:64]
                rows["attribution"][unknown] = pb.LOCAL_ATTRIBUTION_IDENTITY_FILE
        start_ms = self.clock.to_ms_array(rows["start_ns"])
        end_ms = self.clock.to_ms_array(rows["end_ns"])
        window = end_ms // self.window_ms * self.window_ms
        first, last = int(window.min()), int(window.max())
        if first == last:
            self.windows.setdefault(first, []).append((rows, start_ms, end_ms))
            return
        for w in np.unique(window).tolist():
            sel = window == w
            self.windows.setdefault(w, []).append((rows[sel], start_ms[sel], end_ms[sel]))

    def flush_due(self, now_ms: int, grace_ms: int = 2_000) -> list[tuple[int, bytes]]:
        """Encoded messages (window end, FlowBatch bytes) of every window that ended at
        least grace_ms ago, oldest first, empty windows included."""
        self.next_window_start = self._first_window_start(now_ms)
        out = []
        while self.next_window_start + self.window_ms + grace_ms <= now_ms:
            w = self.next_window_start
            out.extend(self._encode(w, self.windows.pop(w, [])))
            self.next_window_start = w + self.window_ms
        for late in sorted(k for k in self.windows if k < self.next_window_start):  # closed after its window
            out.extend(self._encode(late, self.windows.pop(late)))
        return out

    def _encode(self, window: int, chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> list[tuple[int, bytes]]:
        if chunks:
            rows = np.concatenate([c[0] for c in chunks])
            start_ms = np.concatenate([c[1] for c in chunks])
            end_ms = np.concatenate([c[2] for c in chunks])
        else:
            rows, start_ms, end_ms = np.zeros(0, FLOW_EVENT_DTYPE), np.zeros(0, np.int64), np.zeros(0, np.int64)
        cuts = list(range(0, len(rows), self.max_flows_per_message)) or [0]
        out = []
        for part, lo in enumerate(cuts):
            hi = lo + self.max_flows_per_message
            self.sequence += 1
            chunk = rows[lo:hi]
            cols = FlowColumns.zeros(len(chunk))
            # Workload names: NUL-padded in the event; ref 0 is "unknown".
            names, ref = distinct_names(chunk["workload"])
            texts = [n.split(b"\0", 1)[0].decode("utf-8", "replace") for n in names.tolist()]
            if texts and texts[0] == "":
                cols.workloads = texts
                cols.columns["local_workload_ref"] = ref.ravel().astype(np.uint32)
            else:
                cols.workloads = [""] + texts
                cols.columns["local_workload_ref"] = ref.ravel().astype(np.uint32) + 1
            for name in ("local_port", "remote_port", "bytes_sent", "bytes_received", "retransmits",
                         "local_attribution", "direction"):
                source = "attribution" if name == "local_attribution" else name
                cols.columns[name] = chunk[source].astype(cols.columns[name].dtype)
            cols.columns["rtt_us"] = chunk["srtt_us"].astype(np.uint32)
            cols.columns["start_ms"] = start_ms[lo:hi]
            cols.columns["end_ms"] = end_ms[lo:hi]
            cols.columns["local_ip"] = np.ascontiguousarray(chunk["local_ip"])
            cols.columns["remote_ip"] = np.ascontiguousarray(chunk["remote_ip"])
            header = pb.FlowBatch(exporter_id=self.exporter_id, host=self.host, region=self.region,
                                  window_start_ms=window, window_end_ms=window + self.window_ms,
                                  sequence=self.sequence, part=part, part_count=len(cuts),
                                  port_shared_ips=b"".join(sorted(self.port_shared_ips)))
            out.append((window + self.window_ms, encode_flow_batch(header, cols)))
        return out
