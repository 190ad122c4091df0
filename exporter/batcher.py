"""Flow events -> one FlowBatch per window (by close time), split when too large for one
Kafka message, with per-exporter sequence numbers. Windows with no flows still produce an
(empty) batch: it tells the collector that this exporter's time has moved on."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from exporter.events import FlowEvent, MonotonicToWall
from schemas import flowattr_pb2 as pb
from schemas.columns import FlowColumns, encode_flow_batch


@dataclass
class Batcher:
    exporter_id: str
    host: str
    region: str
    window_ms: int = 60_000
    max_flows_per_message: int = 50_000   # ~5 MB per message at ~100 bytes per flow
    identity_workload: str = ""           # host mode: the identity file's workload
    local_filter: object = None           # optional callable(local_ip bytes) -> bool
    clock: MonotonicToWall = field(default_factory=MonotonicToWall)
    sequence: int = 0
    windows: dict[int, list[tuple]] = field(default_factory=dict)
    next_window_start: int | None = None

    def add(self, ev: FlowEvent) -> None:
        if self.local_filter is not None and not self.local_filter(ev.local_ip):
            return
        start_ms, end_ms = self.clock.to_ms(ev.start_ns), self.clock.to_ms(ev.end_ns)
        workload, attribution = ev.workload, ev.attribution
        if attribution == pb.LOCAL_ATTRIBUTION_UNKNOWN and self.identity_workload:
            workload, attribution = self.identity_workload, pb.LOCAL_ATTRIBUTION_IDENTITY_FILE
        window = end_ms // self.window_ms * self.window_ms
        self.windows.setdefault(window, []).append(
            (ev.local_ip, ev.remote_ip, ev.local_port, ev.remote_port, start_ms, end_ms, ev.bytes_sent,
             ev.bytes_received, ev.retransmits, ev.srtt_us, workload, attribution, ev.direction))

    def flush_due(self, now_ms: int, grace_ms: int = 2_000) -> list[tuple[int, bytes]]:
        """Encoded messages (window end, FlowBatch bytes) of every window that ended at
        least grace_ms ago, oldest first, empty windows included."""
        current = now_ms // self.window_ms * self.window_ms
        if self.next_window_start is None:
            self.next_window_start = min([current, *self.windows])
        out = []
        while self.next_window_start + self.window_ms + grace_ms <= now_ms:
            w = self.next_window_start
            out.extend(self._encode(w, self.windows.pop(w, [])))
            self.next_window_start = w + self.window_ms
        for late in sorted(k for k in self.windows if k < self.next_window_start):  # closed after its window
            out.extend(self._encode(late, self.windows.pop(late)))
        return out

    def _encode(self, window: int, rows: list[tuple]) -> list[tuple[int, bytes]]:
        chunks = [rows[i:i + self.max_flows_per_message] for i in range(0, len(rows), self.max_flows_per_message)]
        chunks = chunks or [[]]
        out = []
        for part, chunk in enumerate(chunks):
            self.sequence += 1
            cols = FlowColumns.zeros(len(chunk))
            names = sorted({r[10] for r in chunk if r[10]})
            cols.workloads = [""] + names
            if chunk:
                ref = {w: i + 1 for i, w in enumerate(names)}
                for name, idx, dtype in (("local_port", 2, np.uint16), ("remote_port", 3, np.uint16),
                                         ("start_ms", 4, np.int64), ("end_ms", 5, np.int64),
                                         ("bytes_sent", 6, np.uint64), ("bytes_received", 7, np.uint64),
                                         ("retransmits", 8, np.uint32), ("rtt_us", 9, np.uint32),
                                         ("local_attribution", 11, np.uint8), ("direction", 12, np.uint8)):
                    cols.columns[name] = np.array([r[idx] for r in chunk], dtype)
                cols.columns["local_ip"] = np.frombuffer(b"".join(r[0] for r in chunk), np.uint8).reshape(-1, 16)
                cols.columns["remote_ip"] = np.frombuffer(b"".join(r[1] for r in chunk), np.uint8).reshape(-1, 16)
                cols.columns["local_workload_ref"] = np.array([ref.get(r[10], 0) for r in chunk], np.uint32)
            header = pb.FlowBatch(exporter_id=self.exporter_id, host=self.host, region=self.region,
                                  window_start_ms=window, window_end_ms=window + self.window_ms,
                                  sequence=self.sequence, part=part, part_count=len(chunks))
            out.append((window + self.window_ms, encode_flow_batch(header, cols)))
        return out
