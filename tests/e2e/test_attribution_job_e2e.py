"""The collector end to end on the embedded stack: a simulated two-region fleet through
Kafka and two regional jobs (parallelism 2), scored against ground truth; malformed input
in the dead-letter topic; nothing lost."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest
import yaml

from flink_jobs import edges
from flink_jobs.job_config import DEFAULT_CONFIG
from flowattr.lab import NO_NEW_SUBNET_WAIT
from flowattr.lab.evaluate import unattributable_rows
from flowattr.lab.settle import EventClock, wait_for_outcomes
from flowattr.lab.simulate import (
    batch_flows,
    build_fleet,
    last_window_end,
    produce_to_kafka,
    profile,
    simulate_flows,
    write_truth,
)
from flowattr.stack import topics
from flowattr.stack.kafka_clients import producer, read_latest_by_key, read_topic
from flowattr.stack.local_job import LocalJob
from schemas import flowattr_pb2 as pb
from schemas.columns import FlowColumns, encode_flow_batch, ip_to_bytes

pytestmark = [pytest.mark.flink, pytest.mark.e2e, pytest.mark.slow]

# The harsh profile (every fault of the simulator at stressing rates), on a smaller fleet.
SCENARIO = replace(profile("harsh", 11), minutes=7, services=20, remote_region_services=2, ec2_hosts=30,
                   gateway_hosts=3, container_hosts=10, gateway_routes=8, deps_per_service=3)
REGIONS = ["us-east-1", "eu-west-1"]


def malformed_records() -> dict[str, list[bytes]]:
    """topic kind -> records every validator must reject (each for a different reason)."""
    good = FlowColumns.zeros(2)
    header = pb.FlowBatch(exporter_id="bad-host", host="bad-host", region="us-east-1",
                          window_start_ms=1_790_000_000_000, window_end_ms=1_790_000_060_000, sequence=1)
    short_ip = pb.FlowBatch.FromString(encode_flow_batch(header, good))
    short_ip.local_ip = short_ip.local_ip[:-3]  # a 13-byte IP
    future = pb.FlowBatch()
    future.CopyFrom(header)
    future.window_start_ms, future.window_end_ms = 4_000_000_000_000, 4_000_000_060_000
    no_exporter = pb.FlowBatch()
    no_exporter.CopyFrom(header)
    no_exporter.exporter_id = ""
    return {
        "flows": [b"\x00\xffnot a protobuf at all", short_ip.SerializeToString(),
                  encode_flow_batch(future, good), encode_flow_batch(no_exporter, good)],
        "ipchanges": [pb.IpChangeEvent(ip=b"\x01\x02", workload="x", action=1, event_time_ms=5,
                                       emit_time_ms=6).SerializeToString(),
                      pb.IpChangeEvent(ip=ip_to_bytes("10.250.0.9"), workload="x", action=1,
                                       event_time_ms=9_000, emit_time_ms=5_000).SerializeToString()],
        "retry": [b"\x12\x34garbage pending"],
    }


@pytest.fixture(scope="module")
def fleet_run(kafka_bootstrap, tmp_path_factory):
    """Produce the fleet (plus malformed records) and run both regions' jobs until every
    flow id has an outcome. Returns (truth path, scores, dead letters, malformed)."""
    tmp = tmp_path_factory.mktemp("fleet")
    topics.create_topics(kafka_bootstrap, REGIONS, progress=lambda *_: None)
    fleet = build_fleet(SCENARIO)
    flows = simulate_flows(fleet)
    deliveries = batch_flows(fleet, flows)
    truth = tmp / "truth.npz"
    write_truth(truth, fleet, flows, deliveries)
    bad = malformed_records()
    p = producer(kafka_bootstrap)
    for kind, values in bad.items():
        for value in values:
            p.send(f"{kind}.us-east-1", value, timestamp_ms=1_790_000_060_000)
    p.flush()
    p.close()
    produce_to_kafka(kafka_bootstrap, fleet, flows, deliveries, progress=lambda *_: None)
    # us-east-1 runs with the default checkpoint dir, eu-west-1 with its own.
    jobs = [LocalJob("flink_jobs.attribution_job",
                     ["--bootstrap", kafka_bootstrap, "--region", region, "--parallelism", "2", "--group-id", "e2e",
                      *NO_NEW_SUBNET_WAIT]
                     + (["--checkpoint-dir", f"file://{tmp}/chk-{region}"] if region != "us-east-1" else []),
                     tmp / f"job-{region}.log").start() for region in REGIONS]
    clock = EventClock(kafka_bootstrap, REGIONS, last_window_end(deliveries))
    try:
        # Event time moves a minute a second only once the jobs attribute: ticking from the
        # start, the jobs' start-up (~130 s) became 130 min of event time read at once, every
        # first attempt came due together, the last retries' outcomes came at ~190 min, and
        # past the 3 h retention its pruning emptied the ranges ownership.R answers `whois`
        # from (2 of 3 runs of 3054a5b failed so). A few minutes first: the hold's.
        clock.tick(5)
        _wait(lambda: read_topic(kafka_bootstrap, "attributed.us-east-1", idle_timeout_s=2), 300, jobs[0])
        scores = wait_for_outcomes(kafka_bootstrap, truth, REGIONS, clock, 600, lambda *_: None,
                                   alive=lambda: all(j.running() for j in jobs))
        # Every flow has its outcome: event time stops here, far from the retention.
        clock.stop()
        # A batch delivered a day late, once event time has moved on: its flows get an
        # outcome, but their edge window closed long ago (allowed lateness: hours).
        stale_key = _send_stale_batch(kafka_bootstrap, min(d.window_start_ms for d in deliveries) - 86_400_000)
        # The edge windows fire downstream of the outcomes: wait until they count them all,
        # with the stale batch's partial in the dead-letter topic (or 150 s: the test then
        # shows the difference).
        deadline = time.monotonic() + 150
        while True:
            expected = _edges_of_the_outcomes(kafka_bootstrap)
            got = _edges_published(kafka_bootstrap)
            late = _late_edge_letters(kafka_bootstrap)
            for key, counts in late.items():
                got[key] = edges.add(got[key], counts) if key in got else counts
            if (got == expected and stale_key in late) or time.monotonic() > deadline:
                break
            time.sleep(2)
        dead = read_topic(kafka_bootstrap, "deadletter.us-east-1", idle_timeout_s=10)
        # The ownership changelog is written as the jobs learn: read it while they run (a
        # stopped job's last unsent records are not on the topic), once it has caught up.
        deadline = time.monotonic() + 90
        while (whois := _whois_answers(kafka_bootstrap))[1] and time.monotonic() < deadline:
            time.sleep(2)
    finally:
        clock.close()
        for j in jobs:
            j.stop()
    return truth, scores, dead, bad, (expected, got, late, stale_key), whois


def _send_stale_batch(bootstrap: str, window_start_ms: int) -> bytes:
    """One batch of 3 flows to an internet address (final at once: OUTSIDE_KNOWN_CIDRS)
    from a new exporter, for a window that closed at window_start_ms + 1 min. Returns the
    edge key its flows make."""
    cols = FlowColumns.zeros(3)
    cols.columns["local_ip"][:] = np.frombuffer(ip_to_bytes("10.9.9.8"), np.uint8)
    cols.columns["remote_ip"][:] = np.frombuffer(ip_to_bytes("203.0.113.7"), np.uint8)
    cols.columns["local_port"][:] = [40001, 40002, 40003]
    cols.columns["remote_port"][:] = 443
    cols.columns["start_ms"][:] = window_start_ms + 1_000
    cols.columns["end_ms"][:] = window_start_ms + 2_000
    cols.columns["direction"][:] = pb.FLOW_DIRECTION_OUTBOUND
    cols.columns["local_attribution"][:] = pb.LOCAL_ATTRIBUTION_UNKNOWN
    header = pb.FlowBatch(exporter_id="stale-host", host="stale-host", region="us-east-1",
                          window_start_ms=window_start_ms, window_end_ms=window_start_ms + 60_000, sequence=1,
                          part=0, part_count=1)
    p = producer(bootstrap)
    p.send("flows.us-east-1", encode_flow_batch(header, cols), timestamp_ms=window_start_ms + 60_000)
    p.flush()
    p.close()
    minute = (window_start_ms + 1_000) // 60_000 * 60_000
    return edges.edge_key(minute, "", "", pb.FLOW_DIRECTION_OUTBOUND, 443,
                          pb.UNATTRIBUTED_REASON_OUTSIDE_KNOWN_CIDRS).encode()


def _late_edge_letters(bootstrap: str) -> dict[bytes, list[int]]:
    """Edge key -> counts of the partials the regions' jobs dead-lettered as too late."""
    out: dict[bytes, list[int]] = {}
    for region in REGIONS:
        for value in read_topic(bootstrap, f"deadletter.{region}", idle_timeout_s=3):
            letter = pb.DeadLetter.FromString(value)
            if letter.source_topic == f"edges.{region}":
                e = pb.EdgeRecord.FromString(letter.original)
                key = edges.edge_key(e.window_start_ms, e.local_workload, e.remote_workload, e.direction,
                                     e.service_port, e.unattributed_reason).encode()
                counts = _counts(e)
                out[key] = edges.add(out[key], counts) if key in out else counts
    return out


def _counts(e: pb.EdgeRecord) -> list[int]:
    return [e.flows, e.bytes_sent, e.bytes_received, e.retransmits, e.flows_heartbeat, e.flows_ip_change_event,
            *e.rtt_histogram]


def _edges_of_the_outcomes(bootstrap: str) -> dict[bytes, list[int]]:
    """Edge key -> counts, summed here from every outcome on the attributed and
    unattributed topics with the job's own partials function."""
    totals: dict[bytes, list[int]] = {}
    for region in REGIONS:
        for kind in ("attributed", "unattributed"):
            for value in read_topic(bootstrap, f"{kind}.{region}", idle_timeout_s=5):
                for key, _, counts in edges.partials(value):
                    k = key.encode()
                    totals[k] = edges.add(totals[k], counts) if k in totals else counts
    return totals


def _edges_published(bootstrap: str) -> dict[bytes, list[int]]:
    """Edge key -> counts of each key's latest record on the regions' edges topics, summed
    over the regions (each region counts the flows it attributed: a key can be in both)."""
    out: dict[bytes, list[int]] = {}
    for region in REGIONS:
        for key, value in read_latest_by_key(bootstrap, f"edges.{region}", idle_timeout_s=3).items():
            counts = _counts(pb.EdgeRecord.FromString(value))
            out[key] = edges.add(out[key], counts) if key in out else counts
    return out


def _completed_checkpoints(chk) -> list:
    """The completed checkpoints under chk, oldest first. A chk-N directory exists from the
    moment checkpoint N begins; only a completed one holds `_metadata` (restoring from one
    still being written when the job was killed fails the restored job)."""
    return sorted((c for c in chk.glob("*/chk-*") if (c / "_metadata").exists()),
                  key=lambda c: int(c.name.split("-")[1]))


def _latest_checkpoint(chk) -> int:
    """The highest completed checkpoint number under chk (0: none yet)."""
    return max((int(c.name.split("-")[1]) for c in _completed_checkpoints(chk)), default=0)


def test_every_flow_has_an_outcome_and_none_is_misattributed(fleet_run):
    truth, scores = fleet_run[:2]
    assert scores["flows"] >= 100_000
    assert scores["missing"] == 0, scores
    assert scores["misattributed"] == 0 and scores["edges_misattributed"] == 0, scores
    assert scores["attributed"] + scores["unattributed"] == scores["flows"]
    # No failure happened, so no flow was emitted twice (a restart from the earliest
    # offsets would re-emit everything: the JobManager's 5 MB in-memory checkpoints did).
    assert scores["duplicates"] == 0, scores
    assert scores["invalid_attributed"] == 0, scores
    # Internet peers and bridge addresses are unattributable by design, each with its reason.
    reasons = scores["unattributed_reasons"]
    assert reasons.get("UNATTRIBUTED_REASON_OUTSIDE_KNOWN_CIDRS", 0) > 0, reasons
    assert reasons.get("UNATTRIBUTED_REASON_HOST_LOCAL_ADDRESS", 0) > 0, reasons
    by_design = reasons.get("UNATTRIBUTED_REASON_OUTSIDE_KNOWN_CIDRS", 0) + \
        reasons.get("UNATTRIBUTED_REASON_HOST_LOCAL_ADDRESS", 0)
    # The rest is mostly EVIDENCE_UNSETTLED: harsh loses 1 % of batches, and a lost batch
    # leaves a gap no claim can fill, so flows to that exporter's IPs in that minute are
    # never proven (the measured cost of settledness; ~3 % in `flowattr evaluate --profile harsh`).
    assert scores["unattributed"] - by_design <= 0.08 * scores["flows"], scores
    assert scores["edges_reported"] > 0


def test_edges_are_the_minute_totals_of_the_outcomes(fleet_run):
    """edges.R (the job's event-time windows by flow-start minute, fired again for late
    flows, keyed for compaction) holds, for every edge and minute, exactly the totals of
    the flows on the output topics: none missed, none counted twice, late retries
    included; a partial for a window closed long ago (a batch delivered a day late) is in
    the dead-letter topic, not lost. The unattributed flows are edges with their reason."""
    import json

    expected, got, late, stale_key = fleet_run[4]
    assert len(expected) > 1_000
    # Late partials: the stale batch's one edge, no more (every other flow was in time).
    assert list(late) == [stale_key] and late[stale_key][:1] == [3], late
    missing = {k: v[:6] for k, v in expected.items() if got.get(k) != v}
    assert not missing and got.keys() == expected.keys(), (
        len(missing), [(k, v, (got.get(k) or [None] * 6)[:6]) for k, v in list(missing.items())[:5]],
        len(got.keys() - expected.keys()))
    reasons = {json.loads(key)[5] for key in got}
    assert len(reasons) > 2   # attributed (0) and several unattributed reasons


def _whois_answers(bootstrap: str):
    """For every flow attributed in us-east-1, what ownership.R says of its remote IP (its
    port's key first while the IP is port-shared) at its start, by `owner_at`: a Counter
    of statuses, the problems (unknown, or owned by another workload / evidence), and one
    owned example (IP, start, owner)."""
    from collections import Counter

    from flink_jobs.ownership_changelog import owner_at
    from schemas.columns import bytes_to_ip, decode_attributed_batch

    table = {k: pb.IpOwnership.FromString(v) for k, v in read_latest_by_key(bootstrap, "ownership.us-east-1").items()}
    answers, problems, example = Counter(), [], None
    for value in read_topic(bootstrap, "attributed.us-east-1", idle_timeout_s=5):
        _, cols = decode_attributed_batch(value)
        for ip, port, start, ref, source in zip(cols["remote_ip"], cols["remote_port"].tolist(),
                                                cols["start_ms"].tolist(), cols["remote_workload_ref"].tolist(),
                                                cols["evidence_source"].tolist(), strict=True):
            text = bytes_to_ip(ip.tobytes())
            keys = [k for k in (f"{text}:{port}", text) if k.encode() in table]
            status, found, key = next(((s, f, k) for k in keys for s, f in [owner_at(table[k.encode()], start)]
                                       if s != "unknown"), ("unknown", None, text))
            answers[status] += 1
            if status == "owned" and (found.workload, found.source) == (cols.workloads[ref], source):
                # The first: its record is long written (the CLI reads after the jobs stop).
                example = example or (key, start, cols.workloads[ref])   # key: IP, or IP:port if port-shared
            elif status in ("owned", "unknown"):
                problems.append((text, port, start, cols.workloads[ref], status, found and found.workload))
    return answers, problems, example


def test_whois_never_names_another_owner_for_an_attributed_flows_remote_ip(fleet_run, kafka_bootstrap):
    """ownership.R (what the collector learned, keyed by IP or IP:port) answers `flowattr
    whois`: for every flow attributed in us-east-1, the remote IP at the flow's start is
    owned by the flow's owner with the same evidence, or has since turned contested (a
    contradicting claim the attribution did not have to wait for, e.g. a stale IP-map
    entry of another host, arrived later, and made it contested or left it within the
    skew tolerance of one); never owned by another workload, never unknown. (Read while
    the jobs ran, once the changelog had caught up: see fleet_run.)"""
    import json
    from contextlib import redirect_stdout
    from io import StringIO

    from flowattr.cli import main as cli

    answers, problems, example = fleet_run[5]
    assert not problems, (len(problems), problems[:5], answers)
    assert answers["owned"] > 50_000 and answers["contested"] + answers["clock_skew"] < 0.05 * answers["owned"], answers
    text, start, owner = example
    out = StringIO()
    with redirect_stdout(out):
        assert cli(["whois", text, "--at", str(start), "--json", "--bootstrap", kafka_bootstrap]) == 0
    answer = json.loads(out.getvalue())
    assert answer["status"] == "owned" and answer["owner"] == owner and answer["range"]
    out = StringIO()
    with redirect_stdout(out):
        assert cli(["whois", "10.9.9.9", "--at", str(start), "--json", "--bootstrap", kafka_bootstrap]) == 0
    assert json.loads(out.getvalue())["status"] == "unknown"


def test_output_batches_are_keyed_by_exporter_and_stamped_with_the_attempts_event_time(fleet_run, kafka_bootstrap):
    """Kafka conventions on the batch outputs: the key is the source exporter's id (one
    exporter's batches in one partition, in order), and the record timestamp is the
    attempt's event time (attributed_at_ms), not the wall clock: inbound records are read
    back, and a wall-clock stamp would run the pending watermark ahead. Rows to retry stay
    in the job's hold: the retry topic holds only the malformed record this test put there."""
    from flowattr.stack.kafka_clients import iter_topic
    from schemas.columns import decode_attributed_batch

    wall_clock_floor = int(time.time() * 1000) - 86_400_000  # the simulated fleet ran long before
    seen, on_time = {}, 0
    retry_topic = [r.value for batch in iter_topic(kafka_bootstrap, "retry.us-east-1", idle_timeout_s=3,
                                                   whole_records=True) for r in batch]
    assert retry_topic == fleet_run[3]["retry"], len(retry_topic)
    for topic in ("attributed.us-east-1", "unattributed.us-east-1", "inbound.eu-west-1"):
        records = [r for batch in iter_topic(kafka_bootstrap, topic, idle_timeout_s=3, whole_records=True)
                   for r in batch]
        seen[topic] = len(records)
        for r in records:
            header, _ = decode_attributed_batch(r.value)
            assert r.key == header.source_exporter_id.encode() and r.key, (topic, r.key, header.source_exporter_id)
            assert r.timestamp < wall_clock_floor, (topic, r.timestamp)
            if not topic.startswith("inbound"):   # a forward is pending: no attempt of its own yet
                # A timer's attempt is stamped with its time; a batch already due on arrival
                # (delayed, read back after the watermark moved on) is attempted at once and
                # keeps its own, earlier, event time: never later than the attempt.
                assert r.timestamp <= header.attributed_at_ms, (topic, r.timestamp, header.attributed_at_ms)
                on_time += r.timestamp == header.attributed_at_ms
    assert all(seen.values()), seen   # the harsh fleet forwards
    # Most are a timer's: how many batches are already due on arrival depends on how far
    # the watermark ran ahead of a partition, which the machine's load moves (79.8 % were
    # timer-stamped with a benchmark sharing the machine, once the fleet's batches were
    # keyed by exporter as exporters send them). More than half: the stamp is the
    # attempt's, not another time that happens to come before it.
    assert on_time > 0.5 * (sum(seen.values()) - seen["inbound.eu-west-1"]), (on_time, seen)


def test_cross_region_flows_are_attributed_by_the_other_region(fleet_run, kafka_bootstrap):
    from schemas.columns import decode_attributed_batch
    values = read_topic(kafka_bootstrap, "attributed.eu-west-1", idle_timeout_s=5)
    origins = {decode_attributed_batch(v)[0].host for v in values}
    assert values and any(h.startswith(("ec2", "k8s")) for h in origins)
    truth = np.load(fleet_run[0])
    remote_services = set(truth["owners"].tolist()) & {f"svc-{i:02d}" for i in (18, 19)}
    attributed = {n for v in values for n in decode_attributed_batch(v)[1].workloads}
    assert remote_services & attributed


def test_malformed_records_land_in_the_dead_letter_topic_with_a_reason(fleet_run):
    dead, bad = fleet_run[2:4]
    letters = [pb.DeadLetter.FromString(v) for v in dead]
    originals = {d.original for d in letters}
    for kind, values in bad.items():
        for value in values:
            assert value in originals, (kind, value[:20])
    reasons = " | ".join(d.reason for d in letters)
    for expected in ("not a FlowBatch", "column local_ip has 29 bytes", "in the future", "exporter_id is empty",
                     "ip is not 16 bytes", "event_time_ms is after emit_time_ms", "not a pending"):
        assert expected in reasons, expected
    # Beyond the hand-made records: the harsh fleet's corrupted rows (rejected row by row,
    # the rest of their batch went on) and its future-stamped IP-change events.
    assert any(d.rejected_rows for d in letters)
    assert "ahead of the event stream's time" in reasons


def test_restart_from_checkpoint_restores_broadcast_and_keyed_state(kafka_bootstrap, tmp_path, unique_region):
    """Run a one-region fleet, kill -9 the job mid-stream, restart it from the last
    checkpoint. A probe batch produced only after the restart asks about IPs whose sole
    evidence was learned before the kill: attributing it needs the restored broadcast
    state. Every flow id must still get an outcome (keyed state and offsets restored)."""
    region = unique_region
    scenario = replace(SCENARIO, seed=5, minutes=5, remote_region_services=0)
    topics.create_topics(kafka_bootstrap, [region], progress=lambda *_: None)
    fleet = build_fleet(scenario)
    for host in fleet.hosts:
        host["region"] = region
    flows = simulate_flows(fleet)
    deliveries = batch_flows(fleet, flows)
    for d in deliveries:
        d.lost = False
    early = [d for d in deliveries if d.window_start_ms < min(x.window_start_ms for x in deliveries) + 180_000]
    late = [d for d in deliveries if d not in early]
    truth = tmp_path / "truth.npz"
    write_truth(truth, fleet, flows, deliveries)
    p = producer(kafka_bootstrap)
    send = _batch_sender(p, fleet, flows, region)
    for d in early:
        send(d)
    p.flush()
    chk = tmp_path / "chk"
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["region_cidrs"] = {cidr: region for cidr in config["region_cidrs"]}  # one region owns all
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    args = ["--config", str(tmp_path / "config.yaml"), "--bootstrap", kafka_bootstrap, "--region", region,
            "--parallelism", "2", "--group-id", "restore", "--checkpoint-dir", f"file://{chk}",
            "--checkpoint-interval-ms", "2000", *NO_NEW_SUBNET_WAIT]
    first = LocalJob("flink_jobs.attribution_job", args, tmp_path / "first.log").start()
    try:
        # Wait until early minutes are attributed and a checkpoint taken after that.
        _wait(lambda: read_topic(kafka_bootstrap, f"attributed.{region}", idle_timeout_s=2), 360, first)
        seen = _latest_checkpoint(chk)
        _wait(lambda: _latest_checkpoint(chk) >= seen + 2, 120, first)  # one begun after that output
    finally:
        first.kill_hard()
    checkpoints = _completed_checkpoints(chk)
    assert checkpoints, f"no completed checkpoint under {chk}"
    # Probe: flows toward servers of the early minutes, from an exporter never seen before.
    probe, expected = _probe_batch(fleet, flows, early)
    for d in late:
        send(d)
    p.send(f"flows.{region}", probe, timestamp_ms=max(d.window_start_ms for d in early) + 60_000)
    p.close()
    clock = EventClock(kafka_bootstrap, [region], last_window_end(deliveries))
    second = LocalJob("flink_jobs.attribution_job", args + ["--restore-path", f"file://{checkpoints[-1]}"],
                      tmp_path / "second.log").start()
    try:
        scores = wait_for_outcomes(kafka_bootstrap, truth, [region], clock, 300, lambda *_: None,
                                   alive=second.running)
        # event time keeps moving (clock.tick) while the probe's flows may still retry
        _wait(lambda: clock.tick(5) or len(_probe_outcome(kafka_bootstrap, region)) == len(expected), 120, second)
        got = _probe_outcome(kafka_bootstrap, region)
    finally:
        clock.close()
        second.stop()
    assert scores["missing"] == 0 and scores["misattributed"] == 0, scores
    assert len(got) == len(expected)
    right = sum(got[i] == expected[i] for i in expected)
    assert all(got[i] in (expected[i], None) for i in expected)   # never a wrong owner
    assert right >= 0.9 * len(expected), (right, len(expected))


def _batch_sender(p, fleet, flows, region):
    from flowattr.lab.simulate import encode_delivery

    def send(d):
        p.send(f"flows.{region}", encode_delivery(fleet, flows, d), timestamp_ms=d.window_start_ms + 60_000)
    return send


def _probe_batch(fleet, flows, early):
    """200 client-side flows of the early minutes, re-sent from a new exporter whose own
    IP is unknown (so it adds no evidence). Returns (FlowBatch bytes, index -> true owner)."""
    start = min(d.window_start_ms for d in early)
    rows = np.concatenate([d.rows for d in early if d.window_start_ms == start])
    # Valid rows only: the door rejects corrupted rows (harsh profile) and rows that
    # close outside the probe batch's one window; and flows to a workload (internet and
    # bridge peers are unattributable by design).
    # Heartbeat-evidence flows only: harsh load balancers change hands every ~15 s, so
    # most of their flows lie within the events' error margins (unattributed by design).
    wanted = flows.is_client_side & flows.valid & ~unattributable_rows(flows) & ~flows.via_lb
    rows = rows[wanted[rows]][:200]
    cols = flows.cols.take(rows)
    cols.columns["local_ip"][:] = np.frombuffer(ip_to_bytes("10.9.9.9"), np.uint8)
    cols.columns["local_attribution"][:] = pb.LOCAL_ATTRIBUTION_UNKNOWN
    cols.columns["local_workload_ref"][:] = 0
    header = pb.FlowBatch(exporter_id="probe", host="probe", region="probe", window_start_ms=start,
                          window_end_ms=start + 60_000, sequence=1, part=0, part_count=1)
    return encode_flow_batch(header, cols), {i: flows.true_owner[r] for i, r in enumerate(rows)}


def _probe_outcome(bootstrap, region) -> dict[int, str | None]:
    from schemas.columns import decode_attributed_batch
    out: dict[int, str | None] = {}
    for topic in (f"attributed.{region}", f"unattributed.{region}"):
        for value in read_topic(bootstrap, topic, idle_timeout_s=2):
            msg, cols = decode_attributed_batch(value)
            if msg.source_exporter_id == "probe":
                for i, ref in zip(cols["flow_index"].tolist(), cols["remote_workload_ref"].tolist(), strict=True):
                    out[i] = cols.workloads[ref] if ref else out.get(i)
    return out


def _wait(fetch, timeout_s, job):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert job.running(), job.log_tail()
        if fetch():
            return
        time.sleep(3)
    raise AssertionError("timed out; job log:\n" + job.log_tail())
