"""`flowattr demo`: the whole system on the embedded stack, scored against ground truth.

Starts the broker, creates both regions' topics, simulates a fleet into Kafka (plus a few
malformed records), runs each region's collector in local mode (web UI on :8081 and
:8082 while it runs), waits until every flow has an outcome, scores the output topics
against the simulator's ground truth and prints the report. Everything it started is
stopped at the end unless --keep-running (then the broker stays up for `flowattr tail`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from flowattr.graph import render
from flowattr.lab import NO_NEW_SUBNET_WAIT
from flowattr.lab.settle import EventClock, wait_for_outcomes
from flowattr.lab.simulate import (
    HOME_REGION,
    REMOTE_REGION,
    FleetScenario,
    batch_flows,
    build_fleet,
    last_window_end,
    produce_to_kafka,
    simulate_flows,
    write_truth,
)
from flowattr.stack import broker, topics
from flowattr.stack.edges import read_graph
from flowattr.stack.kafka_clients import producer, read_topic
from flowattr.stack.local_job import LocalJob
from flowattr.stack.processes import port_is_free
from schemas import flowattr_pb2 as pb
from schemas.columns import FlowColumns, encode_flow_batch
from schemas.errors import FlowattrError
from schemas.topics import RegionTopics

REGIONS = (HOME_REGION, REMOTE_REGION)


@dataclass(frozen=True)
class DemoConfig:
    state: Path              # state directory of the embedded stack
    port: int                # broker port on 127.0.0.1
    seed: int                # simulator seed
    minutes: int             # simulated minutes of fleet traffic
    keep_running: bool       # leave the broker up afterwards (jobs are always stopped)
    as_json: bool            # print one JSON object instead of the table
    timeout_s: float = 600   # give up waiting for outcomes after this long
    source: str = "auto"     # auto: eBPF when available, else the simulator
    traffic_s: float = 40    # eBPF demo: seconds of traffic between the namespace hosts


def malformed_samples() -> list[bytes]:
    """Records an operator will meet: garbage, a truncated IP column, a window in 2096."""
    header = pb.FlowBatch(exporter_id="broken-exporter", host="broken", region=HOME_REGION,
                          window_start_ms=1_790_000_000_000, window_end_ms=1_790_000_060_000, sequence=1)
    truncated = pb.FlowBatch.FromString(encode_flow_batch(header, FlowColumns.zeros(1)))
    truncated.remote_ip = truncated.remote_ip[:4]
    future = pb.FlowBatch()
    future.CopyFrom(header)
    future.window_start_ms, future.window_end_ms = 4_000_000_000_000, 4_000_000_060_000
    return [b"\x08\x96\x01 this is not a FlowBatch", truncated.SerializeToString(),
            encode_flow_batch(future, FlowColumns.zeros(1))]


def run(cfg: DemoConfig) -> dict:
    """Real capture between namespace hosts when eBPF works here, the simulator otherwise."""
    say = (lambda *_: None) if cfg.as_json else (lambda msg: print(msg, flush=True))
    from exporter.probe import unavailable_reason
    reason = None if cfg.source == "ebpf" else "--source simulator" if cfg.source == "simulator" \
        else unavailable_reason()
    if reason is None:
        from flowattr.lab import demo_ebpf
        say("eBPF capture is available: real exporters, real TCP between two namespace hosts")
        return demo_ebpf.run(cfg.state, cfg.port, cfg.traffic_s, cfg.keep_running, say)
    say(f"simulated fleet (eBPF capture not used: {reason})")
    return {"source": "simulator", **run_simulated(cfg, say)}


def run_simulated(cfg: DemoConfig, say) -> dict:
    started = time.monotonic()
    b = broker.start(cfg.state, cfg.port, progress=say)
    jobs: list[LocalJob] = []
    try:
        topics.create_topics(b.bootstrap, list(REGIONS), progress=lambda *_: None)
        scenario = FleetScenario(seed=cfg.seed, minutes=cfg.minutes)
        say(f"simulating {cfg.minutes} minutes of a {scenario.ec2_hosts + scenario.container_hosts}-host fleet "
            f"(seed {cfg.seed}) ...")
        fleet = build_fleet(scenario)
        flows = simulate_flows(fleet)
        deliveries = batch_flows(fleet, flows)
        truth = cfg.state / "demo-truth.npz"
        write_truth(truth, fleet, flows, deliveries)
        run_id = int(time.time())
        ports = [p if port_is_free(p) else None for p in (8081, 8082)]
        for region, ui in zip(REGIONS, ports, strict=True):
            args = ["--bootstrap", b.bootstrap, "--region", region, "--group-id", f"demo-{run_id}",
                    "--checkpoint-dir", f"file://{cfg.state}/checkpoints/{run_id}-{region}", *NO_NEW_SUBNET_WAIT]
            if ui:
                args += ["--web-ui-port", str(ui)]
            jobs.append(LocalJob("flink_jobs.attribution_job", args, cfg.state / f"demo-{region}.log").start())
        say("started the collector of each region in local mode (start-up ~20 s); web UI: "
            + ", ".join(f"http://127.0.0.1:{p}" for p in ports if p))
        bad = malformed_samples()
        p = producer(b.bootstrap)
        for value in bad:
            p.send(RegionTopics(HOME_REGION).flows, value, timestamp_ms=1_790_000_060_000)
        p.flush()
        p.close()
        sent = produce_to_kafka(b.bootstrap, fleet, flows, deliveries, progress=lambda *_: None)
        say(f"produced {sent:,} flow batches ({sum(len(d.rows) for d in deliveries if not d.lost):,} flows), "
            f"{len(fleet.events):,} IP-change events and {len(bad)} malformed records")
        scores = _wait_for_outcomes(b.bootstrap, truth, jobs, last_window_end(deliveries), cfg, say)
        # Besides the samples: the fleet's corrupted rows and future-stamped events.
        dead = read_topic(b.bootstrap, RegionTopics(HOME_REGION).dead_letter, idle_timeout_s=10)
        graph = read_graph(b.bootstrap, list(REGIONS))
        page = cfg.state / "demo-graph.html"
        page.write_text(render(graph, "html"))
        say(f"dependency graph: {len(graph.edges)} edges between {len(graph.nodes)} workloads, written to {page}")
    finally:
        for job in jobs:
            job.stop()
        if not cfg.keep_running:
            broker.stop(cfg.state)
    return {"flows_in": scores["flows"], "attributed": scores["attributed"],
            "unattributed": scores["unattributed"], "misattributed": scores["misattributed"],
            "dead_lettered": len(dead), "missing": scores["missing"],
            "malformed_samples_dead_lettered": _samples_found(bad, dead),
            "invalid_rows_attributed": scores["invalid_attributed"],
            "gateway_edges_reported": scores["edges_reported"],
            "gateway_edges_misattributed": scores["edges_misattributed"],
            "unattributed_reasons": scores["unattributed_reasons"],
            "edges": [{"client": e.client, "server": e.server, "port": e.port, "flows": e.flows,
                       "bytes": e.bytes_to_server + e.bytes_to_client} for e in graph.edges],
            "graph_html": str(page),
            "seconds": round(time.monotonic() - started, 1),
            "web_ui": f"http://127.0.0.1:8081 ({HOME_REGION}) and :8082 ({REMOTE_REGION}) while the jobs run"}


def _samples_found(samples: list[bytes], dead: list[bytes]) -> int:
    """How many of the injected malformed samples are in the dead-letter topic, by bytes."""
    originals = {pb.DeadLetter.FromString(v).original for v in dead}
    return sum(sample in originals for sample in samples)


def _wait_for_outcomes(bootstrap: str, truth: Path, jobs: list[LocalJob], from_ms: int, cfg: DemoConfig,
                       say) -> dict:
    clock = EventClock(bootstrap, list(REGIONS), from_ms)
    try:
        scores = wait_for_outcomes(bootstrap, truth, list(REGIONS), clock, cfg.timeout_s, say,
                                   alive=lambda: all(job.running() for job in jobs))
    finally:
        clock.close()
    if scores["missing"]:
        raise FlowattrError(f"not every flow had an outcome after {cfg.timeout_s:.0f} s "
                           f"({scores['missing']} missing); see the job logs in {cfg.state}")
    return scores


def print_report(report: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report))
        return
    title = ("real eBPF capture between namespace hosts -> Kafka -> collector -> scored against the IP assignment"
             if report.get("source") == "ebpf" else
             "simulated fleet -> Kafka -> two regional collectors -> scored against ground truth")
    print(f"\nflowattr demo: {title}")
    for key, value in report.items():
        if key == "edges":  # hundreds: the busiest, and the page has them all
            top = sorted(value, key=lambda e: -e["flows"])[:5]
            value = f"{len(value)} (busiest: " + ", ".join(
                f"{e['client']} -> {e['server']}:{e['port']} {e['flows']:,} flows" for e in top) + ")"
        print(f"  {key:<28} {value}")
