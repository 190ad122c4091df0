"""`flowattr demo --json`: the quick start's second command, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from exporter.probe import unavailable_reason
from flowattr.stack.processes import free_port, port_accepts

pytestmark = [pytest.mark.flink, pytest.mark.e2e, pytest.mark.slow]


def _run_demo(tmp_path, port: int, *args: str) -> dict:
    cmd = [sys.executable, "-m", "flowattr.cli", "--state-dir", str(tmp_path), "demo", "--json",
           "--port", str(port), *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


def test_demo_prints_the_report_and_leaves_nothing_running(tmp_path):
    port = free_port()
    report = _run_demo(tmp_path, port, "--source", "simulator", "--minutes", "2")
    for key in ("flows_in", "attributed", "unattributed", "misattributed", "dead_lettered"):
        assert isinstance(report[key], int), key
    assert report["flows_in"] > 50_000
    assert report["misattributed"] == 0 and report["missing"] == 0
    assert report["attributed"] + report["unattributed"] == report["flows_in"]
    # The three malformed samples the demo injects, besides the fleet's corrupted rows and
    # future-stamped events (the default profile has both); none of those rows got an owner.
    assert report["malformed_samples_dead_lettered"] == 3
    assert report["dead_lettered"] > 3 and report["invalid_rows_attributed"] == 0
    # The dependency graph, read back from edges.R: the busiest edges carry traffic, and
    # the page is written with every edge drawn (tests/e2e/test_graph_browser.py renders one).
    assert len(report["edges"]) >= 10
    assert all(e["flows"] > 0 and e["bytes"] > 0 for e in report["edges"])
    assert {e["client"] for e in report["edges"]} >= {"gateway"}   # the gateway's routes
    page = Path(report["graph_html"]).read_text()
    assert page.count("data-edge=") >= len(report["edges"])
    assert not port_accepts(port), "the demo's broker is still running"


@pytest.mark.bpf
@pytest.mark.skipif(unavailable_reason() is not None, reason=f"eBPF capture unavailable: {unavailable_reason()}")
def test_demo_with_real_exporters_between_namespace_hosts(tmp_path):
    port = free_port()
    report = _run_demo(tmp_path, port, "--source", "ebpf", "--traffic-s", "20")
    assert report["source"] == "ebpf"
    assert report["flows_in"] >= 2 * report["connections"] > 0    # both ends of every connection
    assert report["misattributed"] == 0
    assert report["attributed"] + report["unattributed"] == report["flows_in"]
    assert report["attributed"] >= 0.9 * report["flows_in"], report
    # The graph the job computed (edges.R): frontend calls both services on the service port.
    edges = {(e["client"], e["server"]): e for e in report["edges"]}
    for server in ("catalog", "inventory"):
        assert edges[("frontend", server)]["flows"] > 0 and edges[("frontend", server)]["bytes"] > 0, edges
    assert Path(report["graph_html"]).read_text().count('data-node="') >= 3
    assert not port_accepts(port)
