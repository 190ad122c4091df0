"""`flowattr reliability`: the collector under bad input and TaskManager kills.

One run on the standalone cluster (2 TaskManagers, keyed state in RocksDB, incremental
checkpoints every 5 s) and the embedded broker:

1. fuzz: `fuzz_records` malformed and mutated records (flowattr/lab/fuzz.py) across the
   flows, ip-changes, retry and inbound topics, sent with the first part of a simulated
   fleet's traffic; every record has a verdict known by construction, and the dead
   letters are matched against it. No TaskManager is killed before this is judged, so
   any restart then is a job failure caused by input.
2. kills: the rest of the fleet's traffic in `kills` slices; after each, kill -9 one
   TaskManager, start a new one, and time until every task runs again.
3. settle: event time is advanced, and the run waits until every flow of the ground truth
   has an outcome (or the deadline passes: then `flows_lost` counts the ones without).
4. backlog: on a fresh broker, `backlog_minutes` of a fleet at `backlog_factor` x the
   default connection rates wait in Kafka before a new job starts; the time until every
   flow has an outcome is the catch-up time (with failed checkpoints and restarts).
5. outage: the eBPF exporter under load while the broker is unreachable for `outage_s`
   (flowattr/lab/outage.py; root only).

Writes a JSON report (bench/reliability.json by default) and prints a table.
"""

from __future__ import annotations

import collections
import importlib.util
import json
import os
import random
import signal
import time
from dataclasses import dataclass, replace
from pathlib import Path

from flowattr.lab import NO_NEW_SUBNET_WAIT
from flowattr.lab.evaluate import read_outcomes
from flowattr.lab.fuzz import ROWS, VALID, Fuzzer, expected_outcomes
from flowattr.lab.settle import EventClock, wait_for_outcomes
from flowattr.lab.simulate import (
    HOME_REGION,
    REMOTE_REGION,
    batch_flows,
    build_fleet,
    kafka_timeline,
    last_window_end,
    produce_to_kafka,
    profile,
    simulate_flows,
    write_truth,
)
from flowattr.stack import broker, flink_cluster, topics
from flowattr.stack.kafka_clients import producer, read_topic
from schemas import flowattr_pb2 as pb
from schemas.errors import FlowattrError
from schemas.topics import RegionTopics

# The job's file, found without importing it (that would load pyflink here).
JOB_FILE = Path(importlib.util.find_spec("flink_jobs.attribution_job").origin)


@dataclass(frozen=True)
class ReliabilityConfig:
    state: Path
    port: int = 9292                 # the broker's port for this run
    fuzz_records: int = 100_000
    kills: int = 3
    minutes: int = 6                 # simulated minutes of fleet traffic
    seed: int = 7
    settle_timeout_s: float = 900
    backlog_minutes: int = 10        # 0: no backlog phase
    backlog_factor: float = 5.0      # the backlog's connection rates x this
    outage_s: float = 60             # 0: no exporter outage phase
    out: Path | None = Path("bench/reliability.json")


def run(cfg: ReliabilityConfig, say) -> dict:
    started = time.monotonic()
    if flink_cluster.is_running():  # its TaskManagers are about to be killed: never someone else's
        raise FlowattrError("a Flink cluster already runs on 127.0.0.1:8081; stop it (flowattr cluster stop, "
                           "with its --state-dir) and run again")
    broker.stop(cfg.state)  # never score a previous run's topics (same seed, same flow ids)
    b = broker.start(cfg.state, cfg.port, progress=say)
    try:
        topics.create_topics(b.bootstrap, [HOME_REGION, REMOTE_REGION], progress=lambda *_: None)
        flink_cluster.start(cfg.state, slots=2, taskmanagers=2, progress=say)
        try:
            report = _run_on_cluster(cfg, b.bootstrap, say)
            if cfg.backlog_minutes:
                # A fresh broker: the backlog's fleet reuses host names and sequence numbers.
                broker.stop(cfg.state)
                b = broker.start(cfg.state, cfg.port, progress=say)
                topics.create_topics(b.bootstrap, [HOME_REGION, REMOTE_REGION], progress=lambda *_: None)
                report |= _backlog(cfg, b.bootstrap, say)
        finally:
            flink_cluster.stop(cfg.state, progress=say)
        if cfg.outage_s:
            report |= _outage(cfg, b.bootstrap, say)
    finally:
        broker.stop(cfg.state)
    report["seconds"] = round(time.monotonic() - started, 1)
    report["ok"] = _ok(report)
    if cfg.out:
        cfg.out.parent.mkdir(parents=True, exist_ok=True)
        cfg.out.write_text(json.dumps(report, indent=2) + "\n")
    return report


def _ok(report: dict) -> bool:
    return (report["invalid_accepted"] == 0 and report["valid_rejected"] == 0 and report["job_failures"] == 0
            and report["fuzz_valid_lost"] == 0 and report["fuzz_valid_attributed"] == 0
            and report["taskmanager_kills"] >= report["kills_planned"] and report["flows_lost"] == 0
            and report["misattributed"] == 0 and report["duplicates_disagreeing"] == 0
            and report["fleet_invalid_rows_attributed"] == 0
            and "outage_not_measured" not in report
            and report.get("backlog_flows_lost", 0) == 0 and report.get("backlog_misattributed", 0) == 0
            and report.get("backlog_failed_checkpoints", 0) == 0 and report.get("backlog_restarts", 0) == 0
            and report.get("outage_flows_lost", 0) == 0 and report.get("outage_spool_left", 0) == 0)


def _run_on_cluster(cfg: ReliabilityConfig, bootstrap: str, say) -> dict:
    # One region: every slot of the 2 TaskManagers x 2 goes to this job, so a kill
    # leaves the job short of slots until the new TaskManager registers.
    scenario = replace(profile("default", cfg.seed, cfg.minutes), remote_region_services=0)
    fleet = build_fleet(scenario)
    flows = simulate_flows(fleet)
    deliveries = batch_flows(fleet, flows)
    truth = cfg.state / "reliability-truth.npz"
    write_truth(truth, fleet, flows, deliveries)
    timeline = kafka_timeline(fleet, flows, deliveries)
    slices = [timeline[i * len(timeline) // (cfg.kills + 1):(i + 1) * len(timeline) // (cfg.kills + 1)]
              for i in range(cfg.kills + 1)]
    group = f"reliability-{int(time.time())}"
    job_id = flink_cluster.submit(cfg.state, JOB_FILE, [
        "--bootstrap", bootstrap, "--region", HOME_REGION, "--group-id", group, "--parallelism", "2",
        "--checkpoint-interval-ms", "5000", "--checkpoint-dir", f"file://{(cfg.state / 'checkpoints').resolve()}",
        *NO_NEW_SUBNET_WAIT], progress=say)
    _wait(lambda: _all_running(job_id), 120, "the job to run")
    p = producer(bootstrap)
    _send(p, slices[0])
    fuzz_time = max(ts for topic, _, ts in slices[0] if topic == RegionTopics(HOME_REGION).flows)
    say(f"fuzz: sending {cfg.fuzz_records:,} records across flows, ip-changes, retry and inbound ...")
    records = Fuzzer(cfg.seed, fuzz_time, group, wall_ms=int(time.time() * 1000)).records(cfg.fuzz_records)
    names = RegionTopics(HOME_REGION)
    for r in records:
        p.send(names.of_kind(r.kind), r.value, timestamp_ms=r.timestamp_ms or fuzz_time)
    p.flush()
    fuzz = _judge_fuzz(bootstrap, records, say)
    fuzz["job_failures"] = _restarts(job_id)
    say(f"fuzz: {fuzz['dead_lettered']:,} dead-lettered, {fuzz['invalid_accepted']} invalid accepted, "
        f"{fuzz['job_failures']} job failures")
    kills = []
    for k, part in enumerate(slices[1:], 1):
        _send(p, part)
        kills.append(_kill_one_taskmanager(cfg.state, job_id, say, k))
    p.close()
    scores = _settle(bootstrap, truth, last_window_end(deliveries), cfg.settle_timeout_s, say)
    fuzz |= judge_fuzz_outcomes(expected_outcomes(records), read_outcomes(bootstrap, [HOME_REGION], lambda *_: None))
    say(f"fuzz: {fuzz['fuzz_valid_flows']:,} valid fuzz flows, {fuzz['fuzz_valid_lost']} without an outcome, "
        f"{fuzz['fuzz_valid_attributed']} attributed")
    restarts = _restarts(job_id)
    flink_cluster.cancel(job_id)
    return {**fuzz, "kills_planned": cfg.kills, "taskmanager_kills": len(kills),
            "recovery_s": [k["recovery_s"] for k in kills], "restarts": restarts,
            "flows": scores["flows"], "flows_lost": scores["missing"], "duplicates_emitted": scores["duplicates"],
            "misattributed": scores["misattributed"], "attributed": scores["attributed"],
            "unattributed": scores["unattributed"], "fleet_invalid_rows": scores["invalid_rows"],
            "fleet_invalid_rows_attributed": scores["invalid_attributed"],
            "duplicates_disagreeing": scores["duplicates_disagreeing"]}


def _backlog(cfg: ReliabilityConfig, bootstrap: str, say) -> dict:
    sc = profile("default", cfg.seed + 1, cfg.backlog_minutes)
    sc = replace(sc, remote_region_services=0, conn_rate_per_instance=sc.conn_rate_per_instance * cfg.backlog_factor,
                 gateway_conn_rate=sc.gateway_conn_rate * cfg.backlog_factor)
    fleet = build_fleet(sc)
    flows = simulate_flows(fleet)
    deliveries = batch_flows(fleet, flows)
    truth = cfg.state / "backlog-truth.npz"
    write_truth(truth, fleet, flows, deliveries)
    say(f"backlog: {len(flows.cols):,} flows ({cfg.backlog_minutes} min at {cfg.backlog_factor:g}x) into Kafka ...")
    produce_to_kafka(bootstrap, fleet, flows, deliveries, progress=lambda *_: None, advance_minutes=0)
    job_id = flink_cluster.submit(cfg.state, JOB_FILE, [
        "--bootstrap", bootstrap, "--region", HOME_REGION, "--group-id", f"backlog-{int(time.time())}",
        "--parallelism", "2", "--checkpoint-interval-ms", "5000",
        "--checkpoint-dir", f"file://{(cfg.state / 'checkpoints').resolve()}", *NO_NEW_SUBNET_WAIT], progress=say)
    _wait(lambda: _all_running(job_id), 120, "the backlog job to run")
    # Triggers refused while the tasks were still starting count as failed in Flink's
    # statistics ("not all required tasks are currently running"): not the catch-up's.
    failed_before = flink_cluster.rest_get(f"/jobs/{job_id}/checkpoints")["counts"]["failed"]
    started = time.monotonic()
    scores = _settle(bootstrap, truth, last_window_end(deliveries), cfg.settle_timeout_s, say)
    catch_up = round(time.monotonic() - started, 1)
    checkpoints = flink_cluster.rest_get(f"/jobs/{job_id}/checkpoints")["counts"]
    checkpoints["failed"] -= failed_before
    restarts = _restarts(job_id)
    flink_cluster.cancel(job_id)
    say(f"backlog: caught up in {catch_up} s ({checkpoints['failed']} failed checkpoints, {restarts} restarts)")
    return {"backlog_flows": scores["flows"], "backlog_catch_up_s": catch_up,
            "backlog_flows_per_s": round(scores["flows"] / catch_up) if catch_up else None,
            "backlog_flows_lost": scores["missing"], "backlog_misattributed": scores["misattributed"],
            "backlog_completed_checkpoints": checkpoints["completed"],
            "backlog_failed_checkpoints": checkpoints["failed"], "backlog_restarts": restarts}


def _outage(cfg: ReliabilityConfig, bootstrap: str, say) -> dict:
    from flowattr.lab import outage
    reason = outage.unavailable_reason()
    if reason:
        say(f"outage: not measured ({reason})")
        return {"outage_not_measured": reason}
    region = "outage"
    topics.create_topics(bootstrap, [region], progress=lambda *_: None)
    # The outage in the middle of steady traffic twice as long (at least 20 s).
    return outage.run(cfg.state, bootstrap, region, say, outage_s=cfg.outage_s, traffic_s=max(2 * cfg.outage_s, 20))


def _send(p, items) -> None:
    for topic, value, timestamp in items:
        p.send(topic, value, timestamp_ms=timestamp)
    p.flush()


def _judge_fuzz(bootstrap: str, records, say, timeout_s: float = 300) -> dict:
    """Wait until every invalid record has its dead letter (or the deadline), then judge."""
    names = RegionTopics(HOME_REGION)
    invalid = sum(1 for r in records if r.verdict != VALID)
    letters: list[pb.DeadLetter] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        letters = [pb.DeadLetter.FromString(v) for v in read_topic(bootstrap, names.dead_letter, idle_timeout_s=3)]
        report = judge_dead_letters(records, letters, names.of_kind)
        say(f"  fuzz: {report['dead_lettered']:,} of {invalid:,} invalid records dead-lettered")
        if report["dead_lettered"] >= invalid:
            break
        time.sleep(5)
    return judge_dead_letters(records, letters, names.of_kind)


def judge_dead_letters(records, letters, topic_of) -> dict:
    """Match dead letters to fuzz records by (source topic, original bytes), counting
    identical records as many times as they were sent. An invalid record without its dead
    letter, or with other rows in it than its verdict's, was accepted; a dead letter for a
    VALID record rejected good input. Dead letters of other records (the fleet's own
    corrupted rows) are not the fuzzer's to judge; a record dead-lettered twice (a replay
    after a restore) counts once."""
    verdicts = {(topic_of(r.kind), r.value): (r.verdict, r.rows) for r in records}
    sent = collections.Counter((topic_of(r.kind), r.value) for r in records if r.verdict != VALID)
    seen: collections.Counter = collections.Counter()
    valid_rejected = set()
    for d in letters:
        key = (d.source_topic, d.original)
        verdict = verdicts.get(key)
        if verdict is None:
            continue
        if verdict[0] == VALID:
            valid_rejected.add(key)
        elif tuple(d.rejected_rows) == (verdict[1] if verdict[0] == ROWS else ()):
            seen[key] += 1
    # a replay may dead-letter a record again: never more than were sent; a letter with the
    # wrong rows matches nothing, so its record counts as accepted
    matched = sum(min(seen[key], n) for key, n in sent.items())
    by_kind = collections.Counter(r.kind for r in records)
    return {"fuzz_records": len(records), "fuzz_by_topic": dict(by_kind), "fuzz_invalid": sum(sent.values()),
            "dead_lettered": matched, "invalid_accepted": sum(sent.values()) - matched,
            "valid_rejected": len(valid_rejected)}


def judge_fuzz_outcomes(expected: set, outcomes) -> dict:
    """The fuzz's valid rows (fuzz.expected_outcomes) on the output topics: each must have
    an outcome, and none an owner (their remote IPs are outside every known CIDR)."""
    seen = outcomes.attributed.keys() | outcomes.unattributed.keys()
    return {"fuzz_valid_flows": len(expected), "fuzz_valid_lost": len(expected - seen),
            "fuzz_valid_attributed": len(expected & outcomes.attributed.keys())}


def _kill_one_taskmanager(state: Path, job_id: str, say, k: int) -> dict:
    _wait(lambda: _completed_checkpoints(job_id) > 0, 120, "a completed checkpoint")
    pids = flink_cluster.taskmanager_pids(state)
    victim = random.Random(k).choice(pids)
    restarts_before = _restarts(job_id)
    say(f"kill {k}: kill -9 TaskManager pid {victim} ({len(pids)} running)")
    killed_at = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    flink_cluster.start_taskmanager(state)
    _wait(lambda: _restarts(job_id) > restarts_before, 120, f"the job to notice kill {k} (a restart)")
    _wait(lambda: _all_running(job_id), 300, f"the job to recover from kill {k}")
    recovery = round(time.monotonic() - killed_at, 1)
    say(f"kill {k}: recovered in {recovery} s")
    return {"pid": victim, "recovery_s": recovery}


def _settle(bootstrap: str, truth: Path, last_window_end_ms: int, timeout_s: float, say) -> dict:
    clock = EventClock(bootstrap, [HOME_REGION], last_window_end_ms)
    try:
        return wait_for_outcomes(bootstrap, truth, [HOME_REGION], clock, timeout_s, say)
    finally:
        clock.close()


def _job(job_id: str) -> dict:
    return flink_cluster.rest_get(f"/jobs/{job_id}")


def _all_running(job_id: str) -> bool:
    job = _job(job_id)
    return job["state"] == "RUNNING" and all(
        v["tasks"].get("RUNNING", 0) == v["parallelism"] for v in job["vertices"])


def _restarts(job_id: str) -> int:
    values = flink_cluster.rest_get(f"/jobs/{job_id}/metrics?get=numRestarts")
    return int(float(values[0]["value"])) if values else 0


def _completed_checkpoints(job_id: str) -> int:
    return int(flink_cluster.rest_get(f"/jobs/{job_id}/checkpoints")["counts"]["completed"])


def _wait(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (OSError, KeyError, ValueError):  # the REST API between restarts
            pass
        time.sleep(1)
    raise FlowattrError(f"timed out after {timeout_s:.0f} s waiting for {what}; see the Flink logs")


def format_table(report: dict) -> str:
    rows = [("fuzz_records", report["fuzz_records"]), ("fuzz_invalid", report["fuzz_invalid"]),
            ("dead_lettered", report["dead_lettered"]), ("invalid_accepted (must be 0)", report["invalid_accepted"]),
            ("valid_rejected (must be 0)", report["valid_rejected"]),
            ("job_failures (must be 0)", report["job_failures"]),
            ("fuzz_valid_flows", report["fuzz_valid_flows"]),
            ("fuzz_valid_lost (must be 0)", report["fuzz_valid_lost"]),
            ("fuzz_valid_attributed (must be 0)", report["fuzz_valid_attributed"]),
            ("taskmanager_kills", report["taskmanager_kills"]), ("recovery_s per kill", report["recovery_s"]),
            ("flows (ground truth)", report["flows"]), ("flows_lost (must be 0)", report["flows_lost"]),
            ("duplicates_emitted", report["duplicates_emitted"]),
            ("misattributed (must be 0)", report["misattributed"]),
            ("duplicates naming another owner (must be 0)", report["duplicates_disagreeing"]),
            ("fleet's invalid rows attributed (must be 0)", report["fleet_invalid_rows_attributed"])]
    rows += [(k, v) for k, v in report.items() if k.startswith(("backlog_", "outage_")) and k != "outage_exporter"]
    rows.append(("ok", report["ok"]))
    return "\n".join(f"{name:<46} {value}" for name, value in rows)
