"""`flowattr tail` as `hubble observe` users expect it, against the session's broker:
filters by workload, remote IP and reason, `--follow` from the end (and only new
records), and the edges view."""

from __future__ import annotations

import json
import sys
import threading
from contextlib import redirect_stdout
from io import StringIO

from flink_jobs import edges
from flowattr.cli import main as cli
from flowattr.stack import topics
from flowattr.stack.kafka_clients import producer
from schemas import flowattr_pb2 as pb
from schemas.columns import (
    ATTRIBUTION_COLUMNS,
    FLOW_COLUMNS,
    FlowColumns,
    encode_attributed_batch,
    ips_to_array,
)
from tests.waiting import until

NO_EVIDENCE, CONFLICT = pb.UNATTRIBUTED_REASON_NO_EVIDENCE, pb.UNATTRIBUTED_REASON_CONFLICT


def _batch(rows) -> bytes:
    """rows: (local workload, remote workload, remote IP, reason)."""
    cols = FlowColumns.zeros(len(rows), FLOW_COLUMNS | ATTRIBUTION_COLUMNS)
    cols.workloads = ["", "web", "db", "cache", "old", "new"]
    cols.columns["local_workload_ref"][:] = [cols.workloads.index(r[0]) for r in rows]
    cols.columns["remote_workload_ref"][:] = [cols.workloads.index(r[1]) for r in rows]
    cols.columns["remote_ip"][:] = ips_to_array([r[2] for r in rows])
    cols.columns["unattributed_reason"][:] = [r[3] for r in rows]
    cols.columns["direction"][:] = pb.FLOW_DIRECTION_OUTBOUND
    cols.columns["start_ms"][:] = 60_000
    return encode_attributed_batch(pb.AttributedFlowBatch(source_exporter_id="h1", window_start_ms=60_000,
                                                          window_end_ms=120_000), cols)


def _tail(*args: str) -> list[dict]:
    out = StringIO()
    with redirect_stdout(out):
        assert cli(["tail", *args]) == 0
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_tail_filters_by_workload_remote_ip_and_reason(kafka_bootstrap, unique_region):
    topics.create_topics(kafka_bootstrap, [unique_region], progress=lambda *_: None)
    topic = f"unattributed.{unique_region}"
    p = producer(kafka_bootstrap)
    p.send(topic, _batch([("web", "", "10.0.0.1", NO_EVIDENCE), ("web", "", "10.0.0.2", CONFLICT),
                          ("cache", "", "10.0.0.1", NO_EVIDENCE)]))
    p.send(f"edges.{unique_region}", key=b"k", value=edges.record(
        edges.edge_key(60_000, "web", "db", pb.FLOW_DIRECTION_OUTBOUND, 5432, 0), [4, 1, 2, 0, 4, 0] + [0] * 24,
        unique_region, 0)[1])
    p.flush()
    p.close()
    common = ["--bootstrap", kafka_bootstrap, "--idle", "3"]
    assert len(_tail(topic, *common)) == 3
    assert [(r["local_workload"], r["remote_ip"]) for r in _tail(topic, *common, "--workload", "web")] == [
        ("web", "10.0.0.1"), ("web", "10.0.0.2")]
    assert [r["local_workload"] for r in _tail(topic, *common, "--remote-ip", "10.0.0.1")] == ["web", "cache"]
    rows = _tail(topic, *common, "--reason", "CONFLICT")
    assert [(r["remote_ip"], r["unattributed_reason"]) for r in rows] == [("10.0.0.2", "UNATTRIBUTED_REASON_CONFLICT")]
    assert _tail(topic, *common, "--workload", "web", "--reason", "UNATTRIBUTED_REASON_NO_EVIDENCE")[0]["remote_ip"] \
        == "10.0.0.1"
    (edge,) = _tail(f"edges.{unique_region}", *common, "--workload", "db")
    assert (edge["local"], edge["remote"], edge["port"], edge["flows"]) == ("web", "db", 5432, 4)


def test_tail_follow_starts_at_the_end_and_prints_new_records(kafka_bootstrap, unique_region):
    topics.create_topics(kafka_bootstrap, [unique_region], progress=lambda *_: None)
    topic = f"attributed.{unique_region}"
    p = producer(kafka_bootstrap)
    p.send(topic, _batch([("old", "db", "10.0.0.9", 0)]))   # before the tail starts: never shown
    p.flush()
    out, done = StringIO(), threading.Event()

    class Lines(StringIO):  # the tail's stdout, shared with this thread
        def write(self, text):
            out.write(text)
            return len(text)

    def follow():
        saved, sys.stdout = sys.stdout, Lines()
        try:
            cli(["tail", topic, "--bootstrap", kafka_bootstrap, "--follow", "--max", "1"])
        finally:
            sys.stdout = saved
            done.set()
    threading.Thread(target=follow, daemon=True).start()

    def produced_and_printed():
        # The consumer takes the end at its first poll: send until one new record is printed.
        p.send(topic, _batch([("new", "db", "10.0.0.9", 0)]))
        p.flush()
        return done.wait(1)
    until(produced_and_printed, 60, "tail --follow to print a new record")
    p.close()
    (row,) = [json.loads(line) for line in out.getvalue().splitlines()]
    assert row["local_workload"] == "new"
