"""Malformed and mutated input for every topic the collector reads, each record with the
verdict it must get, known by construction (never by asking the job's validators).

Verdicts:
* RECORD: the whole record is invalid: a DeadLetter carrying exactly these bytes (and no
  rejected_rows) must appear.
* ROWS: the header is fine and some rows are not: a DeadLetter with these bytes and
  exactly those rows in rejected_rows must appear; the other rows go on.
* VALID: boundary values that break no rule (port 0, byte counts at 2^64-1, an end exactly
  at the edge of the slack): no dead letter may name the record.

How each verdict is certain:
* random bytes start with 0x00, the tag of field number 0, which protobuf forbids;
* a truncation cuts inside the column section, so a column (every one is required) is
  missing or short, or a pending batch loses next_attempt_ms (field 30, after the columns);
  an event is cut inside its first field (the IP's 16 bytes);
* each header or row mutation breaks one documented rule by a wide margin (README
  "Rows are validated at the door", DeadLetter in schemas/flowattr.proto).

Addresses are in 198.18.0.0/15 (the benchmarking range), outside every region and event
CIDR of the default config, so fuzz claims and events can never touch a fleet's IPs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np

from schemas import flowattr_pb2 as pb
from schemas.columns import (
    ATTRIBUTION_COLUMNS,
    FLOW_COLUMNS,
    FlowColumns,
    decode_attributed_batch,
    decode_flow_batch,
    encode_attributed_batch,
    encode_flow_batch,
    ips_to_array,
)
from schemas.topics import INPUT_KINDS

RECORD, ROWS, VALID = "record", "rows", "valid"
INT64_MIN, INT64_MAX, UINT32_MAX, UINT64_MAX = -(2**63), 2**63 - 1, 2**32 - 1, 2**64 - 1
HOUR = 3_600_000
# The row rules of the default config (flink_jobs/attribution/rows.py RowRules): close
# slack 2 s, max flow age 3 h. VALID edge cases sit exactly on them.
CLOSE_SLACK_MS, MAX_FLOW_AGE_MS = 2_000, 3 * HOUR


@dataclass
class FuzzRecord:
    kind: str                 # which input topic (schemas.topics.INPUT_KINDS)
    value: bytes
    verdict: str              # RECORD, ROWS or VALID
    mutation: str             # what was done, for the report
    rows: tuple[int, ...] = field(default=())  # with ROWS: the rows that must be rejected
    timestamp_ms: int | None = None  # the Kafka timestamp to send it with (None: the stream's time)


class Fuzzer:
    """Deterministic from the seed. Windows end at `now_ms` (the stream's event time), so a
    valid record never looks like a future one; the "ahead" faults are a day past
    `wall_ms` (the collector's wall clock, by which it judges them; default now_ms)."""

    def __init__(self, seed: int, now_ms: int, run_id: str, wall_ms: int | None = None):
        self.rng = random.Random(seed)
        self.now_ms = now_ms // 60_000 * 60_000
        self.ahead_ms = max(self.now_ms, wall_ms or 0) + 24 * HOUR
        self.run_id = run_id
        self.count = 0

    # -- valid bases -------------------------------------------------------------------
    def _columns(self, n: int, pending: bool) -> tuple[FlowColumns, list[str]]:
        r = self.rng
        workloads = ["", f"fuzz-w{r.randrange(50)}", f"fuzz-w{r.randrange(50, 100)}"]
        cols = FlowColumns.zeros(n) if not pending else FlowColumns.zeros(n, _PENDING_SPEC)
        cols.workloads = workloads
        start = self.now_ms - 60_000
        cols.columns["local_ip"][:] = ips_to_array([f"198.18.{r.randrange(256)}.{r.randrange(1, 255)}"
                                                   for _ in range(n)])
        cols.columns["remote_ip"][:] = ips_to_array([f"198.19.{r.randrange(256)}.{r.randrange(1, 255)}"
                                                    for _ in range(n)])
        cols.columns["local_port"][:] = [r.randrange(1024, 65535) for _ in range(n)]
        cols.columns["remote_port"][:] = 8080
        ends = [start + r.randrange(60_000) for _ in range(n)]
        cols.columns["end_ms"][:] = ends
        cols.columns["start_ms"][:] = [e - r.randrange(30_000) for e in ends]
        cols.columns["bytes_sent"][:] = [r.randrange(10**6) for _ in range(n)]
        cols.columns["local_workload_ref"][:] = [r.choice((1, 2)) for _ in range(n)]
        cols.columns["local_attribution"][:] = pb.LOCAL_ATTRIBUTION_IP_MAP
        cols.columns["direction"][:] = [r.choice((1, 2)) for _ in range(n)]
        if pending:
            cols.columns["flow_index"][:] = np.arange(n)
        return cols, workloads

    def _header(self, pending: bool):
        self.count += 1
        exporter = f"fuzz-{self.run_id}-{self.count}"
        if pending:
            return pb.AttributedFlowBatch(source_exporter_id=exporter, source_sequence=self.rng.randrange(1, 99),
                                          host=exporter, window_start_ms=self.now_ms - 60_000,
                                          window_end_ms=self.now_ms, attempts=1,
                                          next_attempt_ms=self.now_ms + 5_000)
        return pb.FlowBatch(exporter_id=exporter, host=exporter, window_start_ms=self.now_ms - 60_000,
                            window_end_ms=self.now_ms, sequence=self.rng.randrange(1, 99), part_count=1)

    def _encode(self, header, cols) -> bytes:
        if isinstance(header, pb.AttributedFlowBatch):
            return encode_attributed_batch(header, cols)
        return encode_flow_batch(header, cols)

    def _event(self) -> pb.IpChangeEvent:
        self.count += 1
        r = self.rng
        t = self.now_ms - r.randrange(60_000)
        return pb.IpChangeEvent(ip=bytes(ips_to_array([f"198.18.{r.randrange(256)}.{r.randrange(1, 255)}"])[0]),
                                resource_id="elb/fuzz", workload=f"fuzz-w{r.randrange(100)}",
                                action=r.choice((pb.IP_CHANGE_ACTION_ASSIGNED, pb.IP_CHANGE_ACTION_UNASSIGNED)),
                                event_time_ms=t, emit_time_ms=t + r.randrange(1, 5_000),
                                event_id=f"fuzz-{self.run_id}-{self.count}")

    # -- the records -------------------------------------------------------------------
    def records(self, n: int) -> list[FuzzRecord]:
        """n records, spread over the four topics and every kind of fault."""
        makers = [self.random_bytes, self.truncated, self.header_fault, self.row_fault, self.valid_edge,
                  self.event_fault, self.skewed_timestamp]
        weights = [15, 15, 20, 30, 10, 10, 3]
        return [self.rng.choices(makers, weights)[0]() for _ in range(n)]

    def random_bytes(self) -> FuzzRecord:
        body = bytes(self.rng.getrandbits(8) for _ in range(self.rng.randrange(0, 300)))
        return FuzzRecord(self.rng.choice(INPUT_KINDS), b"\x00" + body, RECORD, "random bytes (field number 0)")

    def truncated(self) -> FuzzRecord:
        kind = self.rng.choice(INPUT_KINDS)
        if kind == "ipchanges":
            raw = self._event().SerializeToString()  # field 1 (ip) first: tag, length 16, 16 bytes
            return FuzzRecord(kind, raw[:self.rng.randrange(2, 18)], RECORD, "event cut inside its ip field")
        pending = kind != "flows"
        header = self._header(pending)
        cols, _ = self._columns(self.rng.randrange(2, 6), pending)
        full = self._encode(header, cols)
        head = type(header)()
        head.CopyFrom(header)
        head.flow_count = len(cols)
        head.workloads.extend(cols.workloads)
        prefix = len(head.SerializeToString())  # the header's fields: schemas/columns.py writes the columns after them
        return FuzzRecord(kind, full[:self.rng.randrange(prefix + 1, len(full))], RECORD,
                          "truncated inside the columns")

    def header_fault(self) -> FuzzRecord:
        kind = self.rng.choice(("flows", "retry", "inbound"))
        pending = kind != "flows"
        header = self._header(pending)
        cols, _ = self._columns(self.rng.randrange(1, 5), pending)
        faults = _HEADER_FAULTS + (_PENDING_FAULTS if pending else ())
        name, mutate = self.rng.choice(faults)
        raw = mutate(self, header, cols)
        return FuzzRecord(kind, raw, RECORD, name)

    def row_fault(self) -> FuzzRecord:
        kind = self.rng.choice(("flows", "retry", "inbound"))
        pending = kind != "flows"
        header = self._header(pending)
        n = self.rng.randrange(2, 8)
        cols, _ = self._columns(n, pending)
        faults = _ROW_FAULTS + (_PENDING_ROW_FAULTS if pending else ())
        name, column, values = self.rng.choice(faults)
        if column == "workloads":  # the dictionary itself: every row is suspect
            cols.workloads = values
            return FuzzRecord(kind, self._encode(header, cols), ROWS, name, tuple(range(n)))
        bad = sorted(self.rng.sample(range(n), self.rng.randrange(1, n)))
        for row in bad:
            value = self.rng.choice(values)
            cols.columns[column][row] = value(self, cols, row) if callable(value) else value
        return FuzzRecord(kind, self._encode(header, cols), ROWS, name, tuple(bad))

    def valid_edge(self) -> FuzzRecord:
        kind = self.rng.choice(("flows", "retry", "inbound"))
        pending = kind != "flows"
        header = self._header(pending)
        cols, _ = self._columns(self.rng.randrange(1, 6), pending)
        name, column, value = self.rng.choice(_VALID_EDGES)
        row = self.rng.randrange(len(cols))
        cols.columns[column][row] = value(self, cols, row) if callable(value) else value
        return FuzzRecord(kind, self._encode(header, cols), VALID, name)

    def skewed_timestamp(self) -> FuzzRecord:
        """Valid bytes whose Kafka timestamp (their event time) is a day past what they
        say: they would run the watermark a day ahead."""
        kind = self.rng.choice(INPUT_KINDS)
        if kind == "ipchanges":
            value = self._event().SerializeToString()
        else:
            pending = kind != "flows"
            value = self._encode(self._header(pending), self._columns(self.rng.randrange(1, 4), pending)[0])
        return FuzzRecord(kind, value, RECORD, "Kafka timestamp a day ahead of the payload",
                          timestamp_ms=self.ahead_ms)

    def event_fault(self) -> FuzzRecord:
        event = self._event()
        name, mutate = self.rng.choice(_EVENT_FAULTS)
        if mutate is None:  # emitted a day past the wall clock
            event.emit_time_ms, verdict = self.ahead_ms, RECORD
        else:
            verdict = mutate(self, event)
        return FuzzRecord("ipchanges", event.SerializeToString(), verdict, name)


_PENDING_SPEC = {**FLOW_COLUMNS, **ATTRIBUTION_COLUMNS}


def _with(header, **fields):
    for k, v in fields.items():
        setattr(header, k, v)
    return header


def _short_column(fz: Fuzzer, header, cols) -> bytes:
    """One column a value short: its length disagrees with flow_count."""
    raw = fz._encode(header, cols)
    msg = type(header).FromString(raw)
    column = fz.rng.choice([c for c in cols.columns if c != "flow_index"])
    setattr(msg, column, getattr(msg, column)[:-1])
    return msg.SerializeToString()


_HEADER_FAULTS = (
    ("empty exporter id", lambda fz, h, c: fz._encode(_with(h, **{_id(h): ""}), c)),
    ("window start 0", lambda fz, h, c: fz._encode(_with(h, window_start_ms=0), c)),
    ("window start negative", lambda fz, h, c: fz._encode(_with(h, window_start_ms=INT64_MIN), c)),
    ("window inverted", lambda fz, h, c: fz._encode(_with(h, window_start_ms=h.window_end_ms + 1), c)),
    ("window of one day", lambda fz, h, c: fz._encode(_with(h, window_start_ms=h.window_end_ms - 24 * HOUR), c)),
    ("window ends a day ahead", lambda fz, h, c: fz._encode(
        _with(h, window_start_ms=fz.ahead_ms - 60_000, window_end_ms=fz.ahead_ms), c)),
    ("window ends at int64 max", lambda fz, h, c: fz._encode(
        _with(h, window_start_ms=INT64_MAX - 60_000, window_end_ms=INT64_MAX), c)),
    ("a column one value short", _short_column),
)
_PENDING_FAULTS = (
    ("next_attempt_ms 0", lambda fz, h, c: fz._encode(_with(h, next_attempt_ms=0), c)),
    ("next_attempt_ms negative", lambda fz, h, c: fz._encode(_with(h, next_attempt_ms=INT64_MIN), c)),
    ("next attempt a day ahead", lambda fz, h, c: fz._encode(_with(h, next_attempt_ms=fz.ahead_ms), c)),
    ("next_attempt_ms int64 max", lambda fz, h, c: fz._encode(_with(h, next_attempt_ms=INT64_MAX), c)),
    ("attempts 2^32-1", lambda fz, h, c: fz._encode(_with(h, attempts=UINT32_MAX), c)),
)


def _id(header) -> str:
    return "source_exporter_id" if isinstance(header, pb.AttributedFlowBatch) else "exporter_id"


_ROW_FAULTS = (
    ("end an hour after the window", "end_ms", [lambda fz, c, r: fz.now_ms + HOUR]),
    ("end at int64 extremes", "end_ms", [INT64_MAX, INT64_MIN, 0, -1]),
    ("end just past the slack", "end_ms", [lambda fz, c, r: fz.now_ms + CLOSE_SLACK_MS]),
    ("start after end", "start_ms", [lambda fz, c, r: int(c["end_ms"][r]) + 1, INT64_MAX]),
    ("start older than the flow age", "start_ms",
     [lambda fz, c, r: fz.now_ms - 60_000 - MAX_FLOW_AGE_MS - 1, INT64_MIN]),
    ("unknown local_attribution code", "local_attribution", [0, 5, 200, 255]),
    ("unknown direction code", "direction", [0, 3, 255]),
    ("local ref past the dictionary", "local_workload_ref", [3, 1000, UINT32_MAX]),
    ("IP-map attribution with ref 0", "local_workload_ref", [0]),
    ("empty dictionary", "workloads", []),
    ("dictionary entry 0 is a name", "workloads", ["x", "fuzz-a", "fuzz-b"]),
    # More than broadcast state keeps of a name (255 UTF-8 bytes): each named entry, so every row.
    ("dictionary names of 256 bytes", "workloads", ["", "w" * 256, "é" * 128]),
)
_PENDING_ROW_FAULTS = (
    # 6 is reserved (a retired reason); max + 1 is the first code past the enum
    ("unknown evidence_source code", "evidence_source", [max(pb.EvidenceSource.values()) + 1, 200, 255]),
    ("unknown unattributed_reason code", "unattributed_reason",
     [6, max(pb.UnattributedReason.values()) + 1, 200, 255]),
    ("remote ref past the dictionary", "remote_workload_ref", [3, UINT32_MAX]),
)
_VALID_EDGES = (
    ("local port 0", "local_port", 0),
    ("remote port 65535", "remote_port", 65535),
    ("bytes sent 2^64-1", "bytes_sent", UINT64_MAX),
    ("bytes received 2^64-1", "bytes_received", UINT64_MAX),
    ("retransmits 2^32-1", "retransmits", UINT32_MAX),
    ("rtt 2^32-1", "rtt_us", UINT32_MAX),
    ("end at the last ms of the slack", "end_ms", lambda fz, c, r: fz.now_ms + CLOSE_SLACK_MS - 1),
    ("start exactly at the flow age", "start_ms", lambda fz, c, r: fz.now_ms - 60_000 - MAX_FLOW_AGE_MS),
    ("remote IP ::1", "remote_ip", np.frombuffer(bytes(15) + b"\x01", np.uint8)),
    ("remote IP all ones", "remote_ip", np.full(16, 255, np.uint8)),
)


def _event_invalid(**fields):
    def mutate(fz, event):
        for k, v in fields.items():
            setattr(event, k, v(event) if callable(v) else v)
        return RECORD
    return mutate


def _event_valid_longest_workload(fz, event):
    event.workload = "é" * 127 + "w"   # 255 UTF-8 bytes: the longest name state keeps whole
    return VALID


_EVENT_FAULTS = (
    ("event ip of 4 bytes", _event_invalid(ip=b"\xc6\x12\x00\x01")),
    ("event ip empty", _event_invalid(ip=b"")),
    ("event ip of 17 bytes", _event_invalid(ip=bytes(17))),
    ("event action unspecified", _event_invalid(action=0)),
    ("event action unknown", _event_invalid(action=99)),
    ("event workload empty", _event_invalid(workload="")),
    ("event time 0", _event_invalid(event_time_ms=0)),
    ("event time int64 min", _event_invalid(event_time_ms=INT64_MIN)),
    ("event time after emit", _event_invalid(event_time_ms=lambda e: e.emit_time_ms + 1)),
    ("event emitted a day ahead", None),
    ("event emitted at int64 max", _event_invalid(emit_time_ms=INT64_MAX)),
    ("event with a 255-byte workload", _event_valid_longest_workload),
    ("event with a 1000-character workload", _event_invalid(workload="w" * 1000)),
    ("event with a 256-byte workload", _event_invalid(workload="é" * 128)),
)


def expected_outcomes(records: list[FuzzRecord]) -> set[tuple[str, int, int]]:
    """Flow ids (exporter, sequence, flow index) that must each get an outcome on the
    attributed or unattributed topic: the rows of every VALID batch record, and the rows
    a ROWS record keeps. Their remote IPs (198.19.x.x) lie outside every known CIDR, so
    every one of them must be unattributed."""
    out = set()
    for r in records:
        if r.verdict == RECORD or r.kind not in ("flows", "retry", "inbound"):
            continue
        if r.kind == "flows":
            header, cols = decode_flow_batch(r.value, check_dictionary=False)
            exporter, sequence, index = header.exporter_id, header.sequence, range(len(cols))
        else:
            header, cols = decode_attributed_batch(r.value)
            exporter, sequence, index = header.source_exporter_id, header.source_sequence, cols["flow_index"]
        kept = set(range(len(cols))) - set(r.rows)
        out |= {(exporter, int(sequence), int(index[i])) for i in sorted(kept)}
    return out
