"""The exporter under a broker outage: real eBPF capture between two namespace hosts at a
steady connection rate, while the broker is unreachable for `outage_s` seconds (an
iptables rule drops every packet to its port, so sends hang and time out as they would
across a broken network). The exporter must spool every batch meanwhile and send it once
the broker is back: every connection's two ends (client and server socket) must reach
the flows topic, once per flow id. Root only (eBPF, namespaces, iptables).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from flowattr.lab.netns import HostPair
from flowattr.stack.kafka_clients import read_topic
from flowattr.stack.processes import start_background, stop_group, wait_for_line
from schemas.columns import decode_flow_batch
from schemas.topics import RegionTopics

HOST_A, HOST_B = "fa_out_a", "fa_out_b"
CLIENT_IP, SERVER_IP, CIDR, PORT = "10.15.203.1", "10.15.203.2", "10.15.203.0/24", 7100
WINDOW_S = 5


def unavailable_reason() -> str | None:
    from exporter.probe import unavailable_reason as ebpf_reason
    reason = ebpf_reason()
    if reason:
        return reason
    return None if shutil.which("iptables") else "iptables is not installed (make setup installs it)"


def run(state: Path, bootstrap: str, region: str, say, outage_s: float = 60, traffic_s: float = 120,
        per_second: float = 200) -> dict:
    port = int(bootstrap.rsplit(":", 1)[1])
    run_id = int(time.time())
    with HostPair(HOST_A, HOST_B, (CLIENT_IP,), (SERVER_IP,)):
        server = subprocess.Popen(["ip", "netns", "exec", HOST_B, sys.executable, "-m", "flowattr.lab.netns_traffic",
                                   "server", SERVER_IP, str(PORT), "0"], stdout=subprocess.PIPE, text=True)
        server.stdout.readline()
        log = state / f"outage-exporter-{run_id}.log"
        exporter = start_background([sys.executable, "-m", "flowattr.cli", "exporter", "--bootstrap", bootstrap,
                                     "--region", region, "--window-s", str(WINDOW_S), "--exporter-id",
                                     f"outage-{run_id}", "--spool-dir", str(state / f"outage-spool-{run_id}"),
                                     "--local-cidr", CIDR], log)
        try:
            # The BPF program is compiled and attached (a line of this run: the log is appended).
            wait_for_line(log, "capturing", 120, exporter.pid, since=exporter.log_offset)
            say(f"outage: {per_second:.0f} connections/s for {traffic_s:.0f} s; broker unreachable for "
                f"{outage_s:.0f} s from {(traffic_s - outage_s) / 2:.0f} s")
            traffic = subprocess.Popen(["ip", "netns", "exec", HOST_A, sys.executable, "-m",
                                        "flowattr.lab.netns_traffic", "rate", SERVER_IP, str(PORT), str(per_second),
                                        str(traffic_s)], stdout=subprocess.PIPE, text=True)
            time.sleep((traffic_s - outage_s) / 2)  # the steady traffic before the outage (a schedule, not a wait)
            outage = _block(port, outage_s, say)
            made = json.loads(traffic.communicate(timeout=traffic_s + 120)[0].strip().splitlines()[-1])
            expected = 2 * made["connections"]  # both ends of every connection are in CIDR
            counted = _wait_for_flows(bootstrap, region, expected, say)
        finally:
            stop_group(exporter.pid, timeout_s=30)
            server.kill()
            server.wait()
            server.stdout.close()
    stats = _last_json_line(log)
    return {"outage_s": outage_s, "outage_connections": made["connections"], "outage_flows_expected": expected,
            "outage_flows_received": counted["flows"], "outage_flows_lost": max(0, expected - counted["flows"]),
            # batches whose window ended while the broker was unreachable: spooled, sent after
            "outage_batches_resent": sum(1 for end in counted["window_ends"] if outage[0] <= end <= outage[1]),
            "outage_batches_duplicated": counted["duplicates"],
            "outage_batches_spooled": stats.get("batches_spooled_total"),
            "outage_batches_sent": stats.get("batches_sent"), "outage_spool_left": stats.get("spool_batches"),
            "outage_exporter": stats}


def _block(port: int, seconds: float, say) -> tuple[int, int]:
    """Drop every packet to the broker's port for `seconds`; returns the outage's span
    (epoch ms)."""
    rule = ["INPUT", "-p", "tcp", "--dport", str(port), "-j", "DROP"]
    subprocess.run(["iptables", "-I", *rule], check=True)
    start = int(time.time() * 1000)
    try:
        say(f"outage: broker port {port} dropped")
        time.sleep(seconds)  # the outage itself lasts this long
    finally:
        subprocess.run(["iptables", "-D", *rule], check=True)
    say("outage: broker reachable again")
    return start, int(time.time() * 1000)


def _wait_for_flows(bootstrap: str, region: str, expected: int, say, timeout_s: float = 300) -> dict:
    """Until the flows topic holds `expected` distinct flows of this run (or the deadline)."""
    deadline = time.monotonic() + timeout_s
    while True:
        values = read_topic(bootstrap, RegionTopics(region).flows, idle_timeout_s=3)
        batches = {}
        for value in values:
            header, cols = decode_flow_batch(value)
            batches[(header.exporter_id, header.sequence, header.part)] = (header.window_end_ms, len(cols))
        flows = sum(n for _, n in batches.values())
        say(f"  outage: {flows:,} of {expected:,} flows in {RegionTopics(region).flows}")
        if flows >= expected or time.monotonic() > deadline:
            return {"flows": flows, "duplicates": len(values) - len(batches),
                    "window_ends": [end for end, _ in batches.values()]}
        time.sleep(3)


def _last_json_line(log: Path) -> dict:
    for line in reversed(log.read_text(errors="replace").splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return {}
