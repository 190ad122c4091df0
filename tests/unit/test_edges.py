"""Edges from the job's final outputs (flink_jobs/edges.py): grouping by the minute of
flow START, the service port by direction, unattributed flows by reason, the RTT
histogram and its percentiles, and the record the graph reads. Worked out by hand."""

from __future__ import annotations

from flink_jobs import edges
from schemas import flowattr_pb2 as pb
from schemas.columns import ATTRIBUTION_COLUMNS, FLOW_COLUMNS, FlowColumns, encode_attributed_batch

OUT, IN = pb.FLOW_DIRECTION_OUTBOUND, pb.FLOW_DIRECTION_INBOUND
HB, EV = pb.EVIDENCE_SOURCE_HEARTBEAT, pb.EVIDENCE_SOURCE_IP_CHANGE_EVENT
NO_EVIDENCE = pb.UNATTRIBUTED_REASON_NO_EVIDENCE


def _payload(rows) -> bytes:
    """rows: (local, remote, direction, local_port, remote_port, start, sent, received,
    retransmits, rtt_us, evidence, reason)."""
    cols = FlowColumns.zeros(len(rows), FLOW_COLUMNS | ATTRIBUTION_COLUMNS)
    cols.workloads = ["", "web", "db", "lb-api"]
    for name, i in (("local_workload_ref", 0), ("remote_workload_ref", 1)):
        cols.columns[name][:] = [cols.workloads.index(r[i]) for r in rows]
    for name, i in (("direction", 2), ("local_port", 3), ("remote_port", 4), ("start_ms", 5), ("bytes_sent", 6),
                    ("bytes_received", 7), ("retransmits", 8), ("rtt_us", 9), ("evidence_source", 10),
                    ("unattributed_reason", 11)):
        cols.columns[name][:] = [r[i] for r in rows]
    cols.columns["end_ms"][:] = cols["start_ms"] + 100
    cols.columns["flow_index"][:] = range(len(rows))
    return encode_attributed_batch(pb.AttributedFlowBatch(source_exporter_id="h1", source_sequence=7,
                                                          window_start_ms=120_000, window_end_ms=180_000), cols)


def test_one_batch_makes_one_partial_per_edge_and_start_minute():
    payload = _payload([
        ("web", "db", OUT, 40000, 5432, 60_500, 100, 200, 1, 1_000, HB, 0),
        ("web", "db", OUT, 40001, 5432, 119_999, 10, 20, 0, 3_000, HB, 0),      # same minute
        ("web", "db", OUT, 40002, 5432, 120_000, 1, 2, 0, 0, HB, 0),            # the next minute
        ("db", "web", IN, 5432, 40003, 61_000, 7, 8, 0, 1, HB, 0),              # server side: port 5432
        ("web", "lb-api", OUT, 40004, 443, 62_000, 5, 5, 0, 70, EV, 0),
        ("web", "", OUT, 40005, 443, 63_000, 3, 4, 2, 0, 0, NO_EVIDENCE),       # unknown, with its reason
    ])
    got = {key: counts for key, _, counts in edges.partials(payload)}
    web_db = edges.edge_key(60_000, "web", "db", OUT, 5432, 0)
    assert set(got) == {web_db, edges.edge_key(120_000, "web", "db", OUT, 5432, 0),
                        edges.edge_key(60_000, "db", "web", IN, 5432, 0),
                        edges.edge_key(60_000, "web", "lb-api", OUT, 443, 0),
                        edges.edge_key(60_000, "web", "", OUT, 443, NO_EVIDENCE)}
    c = got[web_db]
    assert c[:6] == [2, 110, 220, 1, 2, 0]        # flows, sent, received, retransmits, heartbeat, event
    histogram = c[6:]
    assert histogram[10] == 1 and histogram[12] == 1 and sum(histogram) == 2   # 1000 us: 2^9..2^10; 3000: 2^11..2^12
    assert got[edges.edge_key(60_000, "web", "lb-api", OUT, 443, 0)][:6] == [1, 5, 5, 0, 0, 1]
    assert got[edges.edge_key(60_000, "web", "", OUT, 443, NO_EVIDENCE)][:6] == [1, 3, 4, 2, 0, 0]
    assert got[edges.edge_key(120_000, "web", "db", OUT, 5432, 0)][6] == 1      # rtt 0: bucket 0


def test_the_record_adds_up_partials_and_reads_back_as_the_graphs_edge():
    payload = _payload([("web", "db", OUT, 40000, 5432, 60_500, 100, 200, 1, 1_000, HB, 0),
                        ("web", "db", OUT, 40001, 5432, 60_600, 10, 20, 0, 3_000, HB, 0)])
    (key, _, first), = edges.partials(payload)
    late = _payload([("web", "db", OUT, 40002, 5432, 61_000, 1, 1, 0, 3_500, HB, 0)])  # attributed after retries
    (_, _, second), = edges.partials(late)
    raw_key, value = edges.record(key, edges.add(first, second), "us-east-1", 123)
    assert raw_key == b'[60000,"web","db",1,5432,0]'
    edge = edges.to_dict(value)
    assert edge == {"window_start_ms": 60_000, "local": "web", "remote": "db", "direction": "out", "port": 5432,
                    "flows": 3, "bytes_out": 111, "bytes_in": 221, "retransmits": 1,
                    "rtt_p50_us": 4_095, "rtt_p99_us": 4_095,   # two of three RTTs in [2048, 4096) us
                    "evidence": {"HEARTBEAT": 3, "IP_CHANGE_EVENT": 0}, "reason": ""}


def test_a_flow_starting_after_its_batch_window_counts_in_the_windows_last_minute():
    """A broken clock (unattributed INVALID_TIME): its minute a day ahead would never fire."""
    payload = _payload([("web", "", OUT, 40000, 443, 86_400_000, 1, 1, 0, 0, 0, pb.UNATTRIBUTED_REASON_INVALID_TIME)])
    (key, minute, _), = edges.partials(payload)
    assert minute == 120_000 and key.startswith('[120000,"web","",')


def test_workload_names_with_separators_keep_their_edges_apart():
    """'web|a' -> 'db' and 'web' -> 'a|db' were one key when keys were joined with '|'."""
    first = edges.edge_key(60_000, "web|a", "db", OUT, 443, 0)
    second = edges.edge_key(60_000, "web", "a|db", OUT, 443, 0)
    assert first != second
    for key, local, remote in ((first, "web|a", "db"), (second, "web", "a|db")):
        edge = edges.to_dict(edges.record(key, [1] + [0] * (edges.COUNTS - 1), "r", 0)[1])
        assert (edge["local"], edge["remote"]) == (local, remote)


def test_percentiles_are_the_upper_bound_of_their_bucket():
    histogram = [0] * edges.RTT_BUCKETS
    histogram[0], histogram[5], histogram[20] = 49, 50, 1     # 0 us, [16, 32) us, [2^19, 2^20) us
    assert edges.percentile_us(histogram, 0.49) == 0
    assert edges.percentile_us(histogram, 0.5) == 31
    assert edges.percentile_us(histogram, 0.99) == 31
    assert edges.percentile_us(histogram, 1.0) == 2 ** 20 - 1
    assert edges.percentile_us([0] * edges.RTT_BUCKETS, 0.5) == 0


def test_a_late_partial_becomes_a_dead_letter_holding_its_edge_record():
    """A partial for a closed window is not lost: the dead letter carries the edge's
    counts as an EdgeRecord an operator can add to the minute, and says why."""
    (key, _, counts), = edges.partials(_payload([("web", "db", OUT, 40000, 5432, 60_500, 100, 200, 1, 1_000, HB, 0)]))
    letter = pb.DeadLetter.FromString(edges.late_dead_letter(key, counts, "r1", "edges.r1", 7_000, 99))
    assert letter.source_topic == "edges.r1" and letter.detected_at_ms == 99
    assert "1 flow(s) for the minute starting 60000" in letter.reason and "7000 ms" in letter.reason
    edge = pb.EdgeRecord.FromString(letter.original)
    assert (edge.window_start_ms, edge.local_workload, edge.remote_workload, edge.service_port) == \
        (60_000, "web", "db", 5432)
    assert (edge.flows, edge.bytes_sent, edge.bytes_received, edge.retransmits) == (1, 100, 200, 1)


def test_top_edge_labels_name_client_server_and_port_and_cap_the_series():
    labels = edges.TopEdgeLabels(limit=2)
    web_db = edges.edge_key(60_000, "web", "db", OUT, 5432, 0)
    assert labels.labels(web_db) == ("web", "db", "5432")
    # The server side's record of the same connection: the same edge.
    assert labels.labels(edges.edge_key(120_000, "db", "web", IN, 5432, 0)) == ("web", "db", "5432")
    assert labels.labels(edges.edge_key(60_000, "web", "", OUT, 443, NO_EVIDENCE)) == ("web", "?NO_EVIDENCE", "443")
    # A third edge is past the limit: counted, as "(other)"; known edges keep their labels.
    assert labels.labels(edges.edge_key(60_000, "api", "db", OUT, 5432, 0)) == edges.TopEdgeLabels.OTHER
    assert labels.labels(web_db) == ("web", "db", "5432")


def test_partials_equal_a_plain_loop_over_the_flows_on_random_batches():
    """The vectorised grouping (packed keys, bincount) against a per-flow loop, on random
    batches: small ranges (the packed path) and sums past 2^53 (np.add.at in int64; a
    minute of one edge is assumed to move fewer than 2^63 bytes)."""
    import numpy as np
    rng = np.random.default_rng(5)
    for huge in (False, True):
        rows = [("web" if rng.random() < 0.5 else "db", ["", "web", "db", "lb-api"][rng.integers(0, 4)],
                 [OUT, IN][rng.integers(0, 2)], int(rng.integers(1, 65536)), int(rng.choice([443, 5432])),
                 int(rng.integers(60_000, 180_000)), int(rng.integers(0, 2**50 if huge else 10**6)),
                 int(rng.integers(0, 10**6)), int(rng.integers(0, 5)), int(rng.integers(0, 10**7)),
                 [HB, EV][rng.integers(0, 2)], 0) for _ in range(500)]
        rows = [r if r[1] else (*r[:10], 0, NO_EVIDENCE) for r in rows]
        expected: dict[str, list[int]] = {}
        for local, remote, direction, lport, rport, start, sent, received, retrans, rtt, source, reason in rows:
            port = rport if direction == OUT else lport
            key = edges.edge_key(min(start, 179_999) // 60_000 * 60_000, local, remote, direction, port, reason)
            c = expected.setdefault(key, [0] * edges.COUNTS)
            c[0] += 1
            c[1] += sent
            c[2] += received
            c[3] += retrans
            c[4] += source == HB and not reason
            c[5] += source == EV and not reason
            c[6 + min(rtt.bit_length(), edges.RTT_BUCKETS - 1)] += 1
        got = {key: counts for key, _, counts in edges.partials(_payload(rows))}
        assert got == expected


def test_grouping_falls_back_to_unique_rows_when_the_packed_key_would_overflow():
    import numpy as np
    wide = [np.array([0, 2**40, 0, 5], dtype=np.int64), np.array([7, 2**30, 7, 1], dtype=np.int64)]
    group, keys = edges._groups(wide)   # 2^40 x 2^30 > 2^62: rows, not a packed key
    assert keys.tolist() == [[0, 7], [5, 1], [2**40, 2**30]] and group.tolist() == [0, 2, 0, 1]
    small = [np.array([3, 1, 3], dtype=np.int64), np.array([-2, 9, -2], dtype=np.int64)]
    group, keys = edges._groups(small)
    assert keys.tolist() == [[1, 9], [3, -2]] and group.tolist() == [1, 0, 1]


def test_a_partial_is_too_late_when_its_minute_closed_the_lateness_before_the_attempt():
    """A connection open for hours closes now: its outcome is recent (attributed_at_ms),
    its start minute long closed. Flink's window would drop it silently (its timestamp is
    not late); by_lateness sends it to the dead letters instead."""
    msg = pb.AttributedFlowBatch.FromString(_payload([
        ("web", "db", OUT, 40000, 5432, 60_500, 1, 1, 0, 1, HB, 0),       # minute [60 s, 120 s)
        ("web", "db", OUT, 40001, 5432, 121_000, 1, 1, 0, 1, HB, 0)]))    # minute [120 s, 180 s)
    for attempt_ms, late_minutes in ((120_000 + 999, []), (120_000 + 1_000, [60_000]), (181_000, [60_000, 120_000])):
        msg.attributed_at_ms = attempt_ms
        on_time, late = edges.by_lateness(edges.partials(msg.SerializeToString()), attempt_ms, lateness_ms=1_000)
        assert [p[1] for p in late] == late_minutes and len(on_time) + len(late) == 2, attempt_ms


def test_a_flow_of_2_64_minus_1_bytes_makes_a_valid_record():
    """A valid bytes_sent of 2^64-1 (the fuzzer's edge case) wrapped to -1 in int64 and
    EdgeRecord refused it, restarting the job at every firing; now it saturates."""
    import numpy as np

    from flink_jobs.edges import UINT64_MAX, _sum_by

    sums = _sum_by(np.array([0, 0, 1]), np.array([UINT64_MAX, 5, 7], dtype=np.uint64), 2)
    assert sums.tolist() == [2**63 - 1, 7]
    key = edges.edge_key(600_000, "a", "b", 1, 443, 0)
    counts = [0] * edges.COUNTS
    counts[edges.SENT] = 2 * UINT64_MAX
    _, value = edges.record(key, counts, "us-east-1", 0)
    assert pb.EdgeRecord.FromString(value).bytes_sent == UINT64_MAX
