"""Dependency-graph edges from the job's final outputs. Pure (no pyflink): the job's edge
operators (attribution_job.py) are wiring around these functions.

An edge is one (minute of flow start, local workload, remote workload, direction,
service port, unattributed reason) with its flows, bytes each way, retransmits, RTT
histogram and flows by evidence source. Unattributed flows make edges with no remote
workload and their reason, so the graph shows what is unknown.

    attributed.R / unattributed.R batches ─► partials (one per edge and minute in a batch)
        ─► key by edge ─► 1-minute event-time window on the flow's START minute
        ─► sum ─► edges.R, Kafka key = the edge and its minute (a JSON array)

Update rule: a window fires once the watermark passes its minute, and again (Flink's
allowed lateness) for every flow of that minute attributed later (after retries), each
time with the whole minute's totals so far. edges.R is compacted: for each key the latest
record is the minute's current total, and it only grows (a flow's outcome is final, so
no later record takes flows away). Flows emitted twice (AT_LEAST_ONCE, after a restart)
are counted twice: edges are approximate where the flow outputs carry duplicates.
"""

from __future__ import annotations

import json

import numpy as np

from schemas import flowattr_pb2 as pb
from schemas.columns import decode_attributed_batch

MINUTE_MS = 60_000
RTT_BUCKETS = 24  # bucket b counts RTTs in [2^(b-1), 2^b) us (b = 0: 0 us); the last is open
# counts vector: flows, bytes_sent, bytes_received, retransmits, heartbeat, ip-change event,
# then the RTT histogram.
FLOWS, SENT, RECEIVED, RETRANSMITS, HEARTBEAT, EVENT = range(6)
COUNTS = 6 + RTT_BUCKETS
def edge_key(minute_ms: int, local: str, remote: str, direction: int, port: int, reason: int) -> str:
    """The Kafka key of an edge's minute: a JSON array, so any workload name (a '|', a
    quote) keeps its edge apart. The first version joined with '|': a name holding one
    merged two edges and crashed record() in a loop (found by an adversarial review)."""
    return _KEY_ENCODER.encode([minute_ms, local, remote, direction, port, reason])


# One encoder for every key: json.dumps with separators builds a new one per call (most of
# partials()'s time on a busy batch, measured).
_KEY_ENCODER = json.JSONEncoder(separators=(",", ":"))


def partials(payload: bytes) -> list[tuple[str, int, list[int]]]:
    """(edge key, minute, counts) for each edge and flow-start minute of one final
    AttributedFlowBatch (attributed or unattributed)."""
    header, cols = decode_attributed_batch(payload)
    return decided_partials(header.window_end_ms, cols)


def by_lateness(partials: list, attempt_ms: int, lateness_ms: int) -> tuple[list, list]:
    """Partials split in two: (on time, too late). Too late: the minute ended more than
    `lateness_ms` before the attempt (attempt_ms, the batch's attributed_at_ms), so its
    window may have closed. Decided here and not by the minute's state alone: Flink's
    window sent an element to its late side output only when the element's own timestamp
    was late too: a connection open for hours, closed now, has a recent timestamp and a
    closed minute, and the window dropped it without a trace (found by an adversarial
    review). The edge operator's watermark never passes a record's attempt time before the
    record arrives, so no on-time partial finds its minute closed."""
    out: tuple[list, list] = ([], [])
    for partial in partials:
        out[partial[1] + MINUTE_MS + lateness_ms <= attempt_ms].append(partial)
    return out


def decided_partials(window_end_ms: int, columns, rows: np.ndarray | None = None) -> list[tuple[str, int, list[int]]]:
    """partials() of final rows already decoded: FlowColumns with the attribution columns
    (remote_workload_ref, evidence_source, unattributed_reason) of a batch whose window
    ends at window_end_ms (0: unknown), the rows selected by `rows` (an index or mask;
    None: all). Attributed and unattributed rows may be mixed: their edges differ by the
    reason (0 when attributed)."""
    cols = _Selected(columns, rows)
    n = len(cols)
    if not n:
        return []
    # A flow cannot start after its batch's window: one that says so has a broken clock
    # (unattributed INVALID_TIME) and counts in the window's last minute, whose edge window
    # fires; its own minute, days ahead, would wait for a watermark that never comes.
    start = np.minimum(cols["start_ms"], window_end_ms - 1) if window_end_ms else cols["start_ms"]
    minute = start // MINUTE_MS * MINUTE_MS
    direction = cols["direction"].astype(np.int64)
    # The service port is the server side's: the remote's when the local side dialled.
    port = np.where(direction == pb.FLOW_DIRECTION_OUTBOUND, cols["remote_port"], cols["local_port"]).astype(np.int64)
    group, keys = _groups([minute, cols["local_workload_ref"].astype(np.int64),
                           cols["remote_workload_ref"].astype(np.int64), direction, port,
                           cols["unattributed_reason"].astype(np.int64)])
    k = len(keys)
    counts = np.zeros((k, COUNTS), dtype=np.int64)
    counts[:, FLOWS] = np.bincount(group, minlength=k)
    for column, name in ((SENT, "bytes_sent"), (RECEIVED, "bytes_received"), (RETRANSMITS, "retransmits")):
        counts[:, column] = _sum_by(group, cols[name], k)
    source = cols["evidence_source"]
    counts[:, HEARTBEAT] = np.bincount(group, weights=source == pb.EVIDENCE_SOURCE_HEARTBEAT, minlength=k)
    counts[:, EVENT] = np.bincount(group, weights=source == pb.EVIDENCE_SOURCE_IP_CHANGE_EVENT, minlength=k)
    bucket = np.minimum(_bit_length(cols["rtt_us"].astype(np.int64)), RTT_BUCKETS - 1)
    counts[:, 6:] = np.bincount(group * RTT_BUCKETS + bucket, minlength=k * RTT_BUCKETS).reshape(k, RTT_BUCKETS)
    names = cols.workloads
    return [(edge_key(int(k[0]), names[k[1]], names[k[2]], int(k[3]), int(k[4]), int(k[5])), int(k[0]),
             counts[i].tolist()) for i, k in enumerate(keys)]


class _Selected:
    """The columns decided_partials reads, each selected by `rows` when first read."""

    def __init__(self, columns, rows):
        self.columns, self.rows, self.workloads, self.read = columns, rows, columns.workloads, {}

    def __len__(self) -> int:
        return len(self.columns) if self.rows is None else len(self["start_ms"])

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.read:
            self.read[name] = self.columns[name] if self.rows is None else self.columns[name][self.rows]
        return self.read[name]


INT64_MAX, UINT64_MAX = 2**63 - 1, 2**64 - 1


def _sum_by(group: np.ndarray, values: np.ndarray, k: int) -> np.ndarray:
    """Per-group sums of `values`: np.bincount (float64, ~30x faster than np.add.at) when
    every sum is exact, i.e. the column's total is below 2^53; else exact Python-int sums,
    saturated at the int64 maximum (rare: a flow of exabytes)."""
    if float(values.max(initial=0)) * len(values) < 2.0 ** 53:
        return np.bincount(group, weights=values.astype(np.float64), minlength=k).astype(np.int64)
    # Exact in Python ints, saturated at the int64 maximum: a uint64 column cast to int64
    # wrapped 2^64-1 (a valid bytes_sent) to -1, which EdgeRecord refused (ValueError in
    # EdgeMinutes, a job restart at every firing; found by `flowattr reliability`'s fuzz).
    sums = [0] * k
    for g, v in zip(group.tolist(), values.tolist(), strict=True):
        sums[g] += v
    return np.array([min(x, INT64_MAX) for x in sums], dtype=np.int64)


def _groups(columns: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(group of each row, the distinct rows of `columns` in sorted order): np.unique over
    rows, made fast by packing each row into one int64 (mixed radix over each column's
    range) when the ranges fit in 62 bits, as they do for any real batch."""
    lows = [int(c.min()) for c in columns]
    spans = [int(c.max()) - low + 1 for c, low in zip(columns, lows, strict=True)]
    if np.prod([float(x) for x in spans]) < 2.0 ** 62:
        packed = np.zeros(len(columns[0]), dtype=np.int64)
        for c, low, span in zip(columns, lows, spans, strict=True):
            packed = packed * span + (c - low)
        distinct, group = np.unique(packed, return_inverse=True)
        keys = np.zeros((len(distinct), len(columns)), dtype=np.int64)
        rest = distinct.copy()
        for j in range(len(columns) - 1, -1, -1):
            keys[:, j] = rest % spans[j] + lows[j]
            rest //= spans[j]
        return group.ravel(), keys
    keys, group = np.unique(np.stack(columns, axis=1), axis=0, return_inverse=True)
    return group.ravel(), keys


def _bit_length(values: np.ndarray) -> np.ndarray:
    """int.bit_length, vectorised (0 for 0)."""
    out = np.zeros(values.shape, dtype=np.int64)
    positive = values > 0
    out[positive] = np.floor(np.log2(values[positive])).astype(np.int64) + 1
    return out


def add(a: list[int], b: list[int]) -> list[int]:
    return [x + y for x, y in zip(a, b, strict=True)]


def percentile_us(histogram: list[int], q: float) -> int:
    """The upper bound of the histogram bucket holding the q-quantile (0 when empty):
    within a factor of two of the true value."""
    total = sum(histogram)
    if not total:
        return 0
    rank, seen = q * total, 0
    for b, count in enumerate(histogram):
        seen += count
        if seen >= rank:
            return 0 if b == 0 else 2 ** b - 1
    return 2 ** (len(histogram) - 1)


def record(key: str, counts: list[int], region: str, updated_at_ms: int) -> tuple[bytes, bytes]:
    """(Kafka key, EdgeRecord bytes) of an edge's minute. Totals past the uint64 fields'
    maximum (bytes of flows near 2^64 each, summed) are reported at that maximum."""
    minute, local, remote, direction, port, reason = json.loads(key)
    # Clipped only when out of range: the per-element clip was 17 of a call's 24 us (PyLong
    # comparisons against 2^64 - 1), once per edge record, nearly one per partial.
    if min(counts) < 0 or max(counts) > UINT64_MAX:
        counts = [min(max(c, 0), UINT64_MAX) for c in counts]
    histogram = counts[6:]
    edge = pb.EdgeRecord(
        window_start_ms=int(minute), local_workload=local, remote_workload=remote, direction=int(direction),
        service_port=int(port), unattributed_reason=int(reason), flows=counts[FLOWS], bytes_sent=counts[SENT],
        bytes_received=counts[RECEIVED], retransmits=counts[RETRANSMITS], flows_heartbeat=counts[HEARTBEAT],
        flows_ip_change_event=counts[EVENT], rtt_histogram=histogram, rtt_p50_us=percentile_us(histogram, 0.5),
        rtt_p99_us=percentile_us(histogram, 0.99), region=region, updated_at_ms=updated_at_ms)
    return key.encode(), edge.SerializeToString()


def to_dict(raw: bytes) -> dict:
    """An EdgeRecord as the graph renderer's edge record (flowattr/graph.py)."""
    e = pb.EdgeRecord.FromString(raw)
    reason = "" if not e.unattributed_reason else \
        pb.UnattributedReason.Name(e.unattributed_reason).removeprefix("UNATTRIBUTED_REASON_")
    return {"window_start_ms": e.window_start_ms, "local": e.local_workload, "remote": e.remote_workload,
            "direction": "out" if e.direction == pb.FLOW_DIRECTION_OUTBOUND else "in", "port": e.service_port,
            "flows": e.flows, "bytes_out": e.bytes_sent, "bytes_in": e.bytes_received, "retransmits": e.retransmits,
            "rtt_p50_us": e.rtt_p50_us, "rtt_p99_us": e.rtt_p99_us,
            "evidence": {"HEARTBEAT": e.flows_heartbeat, "IP_CHANGE_EVENT": e.flows_ip_change_event},
            "reason": reason}


def late_dead_letter(key: str, counts: list[int], region: str, topic: str, lateness_ms: int,
                     now_ms: int) -> bytes:
    """The DeadLetter of a partial whose window closed (its minute more than the allowed
    lateness behind the job's event time): `original` is the partial as an EdgeRecord, so
    an operator can still add it to the minute. Its flows are on the output topics; only
    edges.R misses them."""
    minute = json.loads(key)[0]
    return pb.DeadLetter(
        source_topic=topic, original=record(key, counts, region, now_ms)[1], detected_at_ms=now_ms,
        reason=(f"edge partial of {counts[FLOWS]} flow(s) for the minute starting {minute} arrived after its "
                f"window closed ({lateness_ms} ms of allowed lateness): its flows' outcomes are on the output "
                "topics, but this minute's record on the edges topic does not count them; add this "
                "EdgeRecord to it")).SerializeToString()


class TopEdgeLabels:
    """Prometheus labels (client, server, port) of an edge, for the per-edge flow counters
    behind the dashboard's "top edges" panel. The client dials the server's service port;
    an unattributed remote is "?<REASON>". Each series costs Prometheus memory, so one
    operator instance gives at most `limit` edges their own labels; later ones share
    ("(other)", "(other)", "").

    Assumption: a fleet's busiest edges appear early (they are the busiest); an edge first
    seen after the limit is counted, but in "(other)"."""

    OTHER = ("(other)", "(other)", "")

    def __init__(self, limit: int = 500):
        self.limit = limit
        self.known: set[tuple[str, str, str]] = set()

    def labels(self, key: str) -> tuple[str, str, str]:
        _, local, remote, direction, port, reason = json.loads(key)
        if reason:
            remote = "?" + pb.UnattributedReason.Name(reason).removeprefix("UNATTRIBUTED_REASON_")
        client, server = (local, remote) if direction == pb.FLOW_DIRECTION_OUTBOUND else (remote, local)
        edge = (client, server, str(port))
        if edge in self.known:
            return edge
        if len(self.known) >= self.limit:
            return self.OTHER
        self.known.add(edge)
        return edge
