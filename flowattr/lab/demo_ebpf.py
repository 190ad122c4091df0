"""`flowattr demo` with REAL capture: two namespace hosts, real exporters, the collector.

host-a (10.15.201.1) runs `frontend`: host mode, named by its identity certificate.
host-b (10.15.201.2, .3) is a container host running `catalog` and `inventory`, named
through the IP map. frontend calls both; every flow is captured by eBPF on both ends,
batched every 5 s, attributed by the collector, and scored against the assignment.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
import time
from pathlib import Path

from flowattr.graph import render
from flowattr.lab import NO_NEW_SUBNET_WAIT
from flowattr.lab.evaluate import read_outcomes
from flowattr.lab.netns import HostPair, sh
from flowattr.lab.settle import EventClock
from flowattr.lab.simulate import HOME_REGION, REMOTE_REGION
from flowattr.stack import broker, topics
from flowattr.stack.edges import read_graph
from flowattr.stack.kafka_clients import read_topic
from flowattr.stack.local_job import LocalJob
from flowattr.stack.processes import port_is_free, start_background, stop_group, wait_for_line
from schemas.columns import bytes_to_ip, decode_flow_batch
from schemas.errors import FlowattrError
from schemas.topics import RegionTopics

REGION = HOME_REGION
HOST_A, HOST_B = "fa_demo_a", "fa_demo_b"
WORKLOADS = {"10.15.201.1": "frontend", "10.15.201.2": "catalog", "10.15.201.3": "inventory"}
SERVICE_PORT = 8080
WINDOW_S = 5


def _identity_certificate(path: Path, workload: str) -> Path:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, workload)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def run(state: Path, port: int, traffic_s: float, keep_running: bool, say) -> dict:
    from exporter import ipmap

    started = time.monotonic()
    b = broker.start(state, port, progress=say)
    hosts = HostPair(HOST_A, HOST_B, ("10.15.201.1",), ("10.15.201.2", "10.15.201.3")).create()
    procs: list = []
    job = None
    run_id = int(time.time())
    try:
        topics.create_topics(b.bootstrap, [REGION, REMOTE_REGION], progress=lambda *_: None)
        ipmap.assign("10.15.201.2", "catalog")
        ipmap.assign("10.15.201.3", "inventory")
        cert = _identity_certificate(state / "host-a-identity.pem", "frontend")
        exporter_common = [sys.executable, "-m", "flowattr.cli", "exporter", "--bootstrap", b.bootstrap,
                           "--region", REGION, "--window-s", str(WINDOW_S)]
        procs.append(start_background(exporter_common + [
            "--exporter-id", f"demo-host-a-{run_id}", "--identity-file", str(cert), "--local-cidr", "10.15.201.1/32",
            "--spool-dir", str(state / f"spool-a-{run_id}")], state / "demo-exporter-a.log"))
        procs.append(start_background(exporter_common + [
            "--exporter-id", f"demo-host-b-{run_id}", "--local-cidr", "10.15.201.2/32", "--local-cidr",
            "10.15.201.3/32", "--spool-dir", str(state / f"spool-b-{run_id}")], state / "demo-exporter-b.log"))
        args = ["--bootstrap", b.bootstrap, "--region", REGION, "--group-id", f"demo-ebpf-{run_id}",
                "--hold-ms", "10000", "--retry-delay-ms", "5000", "--max-attempts", "6", *NO_NEW_SUBNET_WAIT]
        if port_is_free(8081):
            args += ["--web-ui-port", "8081"]
        job = LocalJob("flink_jobs.attribution_job", args, state / "demo-ebpf-job.log").start()
        servers = [subprocess.Popen(["ip", "netns", "exec", HOST_B, sys.executable, "-m", "flowattr.lab.netns_traffic",
                                     "server", ip, str(SERVICE_PORT), "0"], stdout=subprocess.PIPE, text=True)
                   for ip in ("10.15.201.2", "10.15.201.3")]
        for server in servers:
            server.stdout.readline()
        for name, proc in zip("ab", procs, strict=True):  # each compiles and attaches its BPF program first
            wait_for_line(state / f"demo-exporter-{name}.log", "capturing", 180, proc.pid, since=proc.log_offset)
        say(f"namespace hosts up; two exporters capturing (eBPF), the collector starting; "
            f"frontend calls catalog and inventory for {traffic_s:.0f} s ...")
        deadline = time.monotonic() + traffic_s
        connections = 0
        while time.monotonic() < deadline:
            for ip in ("10.15.201.2", "10.15.201.3"):
                plan = json.dumps([{"send": 300 + 10 * i, "reply": 2000 + i} for i in range(5)])
                sh("ip", "netns", "exec", HOST_A, sys.executable, "-m", "flowattr.lab.netns_traffic", "client", ip,
                   str(SERVICE_PORT), plan, check=False)
                connections += 5
        for server in servers:
            server.kill()
            server.wait()
            server.stdout.close()
        # Both ends of every connection: stop the exporters only once all are exported, so
        # no last close is cut off however busy the machine is.
        flows_in = _wait_for_exported(b.bootstrap, 2 * connections, say)
        for proc in procs:
            stop_group(proc.pid, timeout_s=20)  # SIGTERM: the exporter flushes its last window
            proc.poll()
        # The exporters are gone: the clock lets event time run on so holds and retries come due.
        clock = EventClock(b.bootstrap, [REGION], int(time.time() * 1000))
        say(f"{connections} connections made; {flows_in} flows exported (both ends); waiting for outcomes ...")
        try:
            outcome = _wait_and_score(b.bootstrap, flows_in, job, clock, say)
            graph, page = _wait_for_graph(b.bootstrap, flows_in, clock), state / "demo-graph.html"
        finally:
            clock.close()
        _write_page(graph, page, say)
    finally:
        if job:
            job.stop()
        for proc in procs:
            stop_group(proc.pid, timeout_s=5)
        for ip in ("10.15.201.2", "10.15.201.3"):
            try:
                ipmap.release(ip)
            except ipmap.IpMapError:
                pass
        hosts.delete()
        if not keep_running:
            broker.stop(state)
    return {"source": "ebpf", **outcome, "connections": connections,
            "edges": [{"client": e.client, "server": e.server, "port": e.port, "flows": e.flows,
                       "bytes": e.bytes_to_server + e.bytes_to_client} for e in graph.edges],
            "graph_html": str(page), "seconds": round(time.monotonic() - started, 1)}


def _write_page(graph, page: Path, say) -> None:
    page.write_text(render(graph, "html"))
    say(f"dependency graph: {len(graph.edges)} edges, written to {page}")


def _wait_for_graph(bootstrap: str, flows: int, clock: EventClock, timeout_s: float = 120):
    """The graph of edges.R once its windows count every flow (they fire downstream of
    the outcomes, as event time moves on)."""
    deadline = time.monotonic() + timeout_s
    while True:
        graph = read_graph(bootstrap, [REGION], idle_timeout_s=2)
        counted = sum(n.attributed_flows + n.unattributed_flows for n in graph.nodes)
        if counted >= flows or time.monotonic() > deadline:
            return graph
        clock.tick(1)


def _wait_for_exported(bootstrap: str, expected: int, say, timeout_s: float = 120) -> int:
    deadline = time.monotonic() + timeout_s
    while True:
        flows = sum(len(decode_flow_batch(v)[1]) for v in read_topic(bootstrap, RegionTopics(REGION).flows,
                                                                      idle_timeout_s=2))
        if flows >= expected or time.monotonic() > deadline:
            return flows
        say(f"  {flows} of {expected} flows exported ...")
        time.sleep(1)


def _wait_and_score(bootstrap: str, flows_in: int, job: LocalJob, clock: EventClock, say) -> dict:
    deadline = time.monotonic() + 240
    result: dict = {}
    while time.monotonic() < deadline:
        clock.tick(1)
        time.sleep(5)
        if not job.running():
            raise FlowattrError(f"the collector exited early; see {job.log_path}:\n{job.log_tail()}")
        read = read_outcomes(bootstrap, [REGION], progress=lambda *_: None, idle_timeout_s=2)
        attributed, unattributed = len(read.attributed), len(set(read.unattributed) - set(read.attributed))
        misattributed = sum(owner != WORKLOADS.get(bytes_to_ip(ip)) for owner, _, ip in read.attributed.values())
        dead = len(read_topic(bootstrap, RegionTopics(REGION).dead_letter, idle_timeout_s=1))
        result = {"flows_in": flows_in, "attributed": attributed, "unattributed": unattributed,
                  "misattributed": misattributed, "dead_lettered": dead,
                  "unattributed_reasons": read.reason_counts(), "duplicates_read": read.duplicates()}
        say(f"  {attributed + unattributed} of {flows_in} flows have an outcome")
        if attributed + unattributed >= flows_in:
            return result
    raise FlowattrError(f"not every exported flow had an outcome within 240 s: {result}")
