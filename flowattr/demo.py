"""`flowattr demo`: the embedded stack end to end, printed as a report.

Starts the broker, creates topics, produces flow batches, runs the job in local mode,
reads its outputs back and prints what went in and what came out. Everything it started
is stopped at the end unless --keep-running.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flowattr import broker, topics
from flowattr.kafka_clients import producer, read_topic
from flowattr.local_job import LocalJob
from schemas import flowattr_pb2 as pb
from schemas.columns import FlowColumns, decode_flow_batch, encode_flow_batch, ips_to_array


@dataclass(frozen=True)
class DemoConfig:
    state: Path              # state directory of the embedded stack
    port: int                # broker port on 127.0.0.1
    region: str              # region whose topics the demo uses
    batches: int             # number of FlowBatch messages to produce
    flows_per_batch: int     # flows in each batch
    keep_running: bool       # leave the broker up afterwards (job is always stopped)
    as_json: bool            # print one JSON object instead of the table


def sample_batches(count: int, flows_per_batch: int, start_ms: int) -> list[bytes]:
    """Deterministic sample batches: host h's workload svc-h talks to 10.1.0.x."""
    out = []
    rng = np.random.default_rng(1)
    for h in range(count):
        n = flows_per_batch
        cols = FlowColumns.zeros(n)
        cols.workloads = ["", f"svc-{h}"]
        cols.columns["local_ip"][:] = ips_to_array([f"10.0.{h // 250}.{h % 250 + 1}"] * n)
        cols.columns["remote_ip"][:] = ips_to_array([f"10.1.0.{rng.integers(1, 250)}" for _ in range(n)])
        cols.columns["local_port"][:] = rng.integers(32768, 60999, n)
        cols.columns["remote_port"][:] = 443
        cols.columns["start_ms"][:] = start_ms + rng.integers(0, 50_000, n)
        cols.columns["end_ms"][:] = cols["start_ms"] + rng.integers(1, 10_000, n)
        cols.columns["local_workload_ref"][:] = 1
        cols.columns["local_attribution"][:] = pb.LOCAL_ATTRIBUTION_IDENTITY_FILE
        cols.columns["direction"][:] = pb.FLOW_DIRECTION_OUTBOUND
        header = pb.FlowBatch(exporter_id=f"host-{h}", host=f"host-{h}", region="demo",
                              window_start_ms=start_ms, window_end_ms=start_ms + 60_000,
                              sequence=1, part=0, part_count=1)
        out.append(encode_flow_batch(header, cols))
    return out


def run(cfg: DemoConfig) -> dict:
    say = (lambda *_: None) if cfg.as_json else print
    b = broker.start(cfg.state, cfg.port, progress=say)
    names = topics.RegionTopics(cfg.region)
    wiring_topic = f"wiring.{cfg.region}"
    try:
        topics.create_topics(b.bootstrap, [cfg.region], progress=lambda *_: None)
        from kafka.admin import KafkaAdminClient, NewTopic
        admin = KafkaAdminClient(bootstrap_servers=b.bootstrap)
        if wiring_topic not in admin.list_topics():
            admin.create_topics([NewTopic(wiring_topic, 1, 1)])
        admin.close()
        now = int(time.time() * 1000) // 60_000 * 60_000
        batches = sample_batches(cfg.batches, cfg.flows_per_batch, now - 120_000)
        p = producer(b.bootstrap)
        for value in batches:
            p.send(names.flows, value)
        p.send(names.flows, b"\x08\x96\x01 this is not a FlowBatch")  # one malformed record
        p.flush()
        p.close()
        say(f"produced {len(batches)} batches ({len(batches) * cfg.flows_per_batch} flows) "
            f"and 1 malformed record to {names.flows}")
        job = LocalJob("flink_jobs.wiring_job",
                       ["--bootstrap", b.bootstrap, "--input", names.flows, "--output",
                        wiring_topic, "--dead-letter", names.dead_letter, "--group-id",
                        f"flowattr-demo-{now}"], cfg.state / "demo-job.log")
        say("running the Flink job in local mode (start-up takes ~20 s) ...")
        with job:
            out = read_topic(b.bootstrap, wiring_topic,
                             stop=lambda vals: len(vals) >= len(batches),
                             idle_timeout_s=120, max_wait_s=240)
            dead = read_topic(b.bootstrap, names.dead_letter, stop=lambda v: len(v) >= 1,
                              idle_timeout_s=20, max_wait_s=60)
            if len(out) < len(batches) and not job.running():
                raise RuntimeError("the job exited early; its log ends with:\n" + job.log_tail())
        flows_out = sum(len(decode_flow_batch(v)[1]) for v in out)
        report = {"flows_in": len(batches) * cfg.flows_per_batch, "flows_out": flows_out,
                  "batches_out": len(out), "dead_lettered": len(dead),
                  "web_ui": "http://127.0.0.1:8081 (when submitted to `flowattr cluster start`)"}
        return report
    finally:
        if not cfg.keep_running:
            broker.stop(cfg.state)
            say("stopped the broker (use --keep-running to keep it for `flowattr tail`)")


def print_report(report: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report))
        return
    print("\nflowattr demo")
    for key, value in report.items():
        print(f"  {key:<16} {value}")
