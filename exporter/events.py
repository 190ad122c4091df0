"""The flow_event struct of bpf/flow_event.h, decoded in Python (no bcc import here).

Byte-for-byte contract with bpf/flow_event.h (tests/unit/test_exporter_units.py decodes a
hand-annotated golden byte string):
  offset  size  field
       0     8  start_ns        CLOCK_MONOTONIC ns at connect/accept
       8     8  end_ns          CLOCK_MONOTONIC ns at close
      16     8  bytes_sent      tcp_sock.bytes_acked less the SYN/FIN it counts
      24     8  bytes_received  tcp_sock.bytes_received less the SYN/FIN it counts
      32    16  local_ip        IPv4-mapped
      48    16  remote_ip       IPv4-mapped
      64     4  srtt_us
      68     4  retransmits
      72     2  local_port
      74     2  remote_port
      76     1  direction       1 outbound, 2 inbound
      77     1  attribution     LocalAttribution: 2 IP map, 3 port map, 4 unknown
      78     2  (padding)
      80    64  workload        NUL-padded
Kernel monotonic time becomes wall-clock time once, here, at the boundary.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass

import numpy as np

FLOW_EVENT = struct.Struct("<QQQQ16s16sIIHHBB2x64s")
assert FLOW_EVENT.size == 144
# The same layout as a numpy record, for events read in bulk from the ring buffer.
FLOW_EVENT_DTYPE = np.dtype([
    ("start_ns", "<u8"), ("end_ns", "<u8"), ("bytes_sent", "<u8"), ("bytes_received", "<u8"),
    ("local_ip", "u1", 16), ("remote_ip", "u1", 16), ("srtt_us", "<u4"), ("retransmits", "<u4"),
    ("local_port", "<u2"), ("remote_port", "<u2"), ("direction", "u1"), ("attribution", "u1"),
    ("pad", "V2"), ("workload", "S64")])
assert FLOW_EVENT_DTYPE.itemsize == FLOW_EVENT.size


@dataclass(frozen=True)
class FlowEvent:
    start_ns: int
    end_ns: int
    bytes_sent: int
    bytes_received: int
    local_ip: bytes
    remote_ip: bytes
    srtt_us: int
    retransmits: int
    local_port: int
    remote_port: int
    direction: int
    attribution: int
    workload: str


def decode(raw: bytes) -> FlowEvent:
    (start, end, sent, received, lip, rip, srtt, retrans, lport, rport, direction, attribution,
     workload) = FLOW_EVENT.unpack_from(raw)
    return FlowEvent(start, end, sent, received, lip, rip, srtt, retrans, lport, rport, direction, attribution,
                     workload.split(b"\0", 1)[0].decode("utf-8", "replace"))


def records(events: list[FlowEvent]) -> np.ndarray:
    """FlowEvents as FLOW_EVENT_DTYPE rows (what the ring buffer delivers)."""
    raw = b"".join(FLOW_EVENT.pack(e.start_ns, e.end_ns, e.bytes_sent, e.bytes_received, e.local_ip, e.remote_ip,
                                   e.srtt_us, e.retransmits, e.local_port, e.remote_port, e.direction,
                                   e.attribution, e.workload.encode()) for e in events)
    return np.frombuffer(raw, FLOW_EVENT_DTYPE).copy()


def events_of(rows: np.ndarray) -> list[FlowEvent]:
    """FLOW_EVENT_DTYPE rows as FlowEvents (for tests and tools; the agent stays columnar)."""
    return [decode(row.tobytes()) for row in rows]


class MonotonicToWall:
    """Converts CLOCK_MONOTONIC ns (bpf_ktime_get_ns) to epoch ms; the offset is
    re-measured every minute so wall-clock adjustments (NTP) are followed."""

    def __init__(self):
        self._measured = -1e18
        self._offset_ns = 0

    def to_ms_array(self, monotonic_ns: np.ndarray) -> np.ndarray:
        now = time.monotonic()
        if now - self._measured > 60:
            self._offset_ns = time.time_ns() - time.monotonic_ns()
            self._measured = now
        return (monotonic_ns.astype(np.int64) + self._offset_ns) // 1_000_000
