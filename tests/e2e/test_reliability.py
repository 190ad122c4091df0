"""A small `flowattr reliability` in the suite: the collector on the standalone cluster
(2 TaskManagers, RocksDB) gets fuzz on every input topic beside a simulated fleet, then
one TaskManager is killed with -9; a one-minute backlog is caught up; the eBPF exporter
rides out a 10 s broker outage. The full run (100,000 records, 3 kills, a 10-minute
backlog at 5x, a 60 s outage) is `make reliability`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from flowattr.stack.processes import free_port

pytestmark = [pytest.mark.flink, pytest.mark.e2e, pytest.mark.slow, pytest.mark.bpf]


def test_fuzz_and_a_taskmanager_kill_lose_nothing_and_accept_no_invalid_record(tmp_path):
    out = tmp_path / "reliability.json"
    run = subprocess.run([sys.executable, "-m", "flowattr.cli", "--state-dir", str(tmp_path), "reliability",
                          "--port", str(free_port()), "--fuzz-records", "3000", "--kills", "1", "--minutes", "3",
                          "--backlog-minutes", "1", "--outage-s", "10", "--out", str(out)],
                         capture_output=True, text=True, timeout=1500)
    assert out.exists(), run.stderr[-4000:]
    report = json.loads(out.read_text())
    assert report["fuzz_records"] == 3000
    assert report["fuzz_invalid"] > 2500 and report["dead_lettered"] >= report["fuzz_invalid"]
    assert report["invalid_accepted"] == 0, report
    assert report["valid_rejected"] == 0, report
    assert report["job_failures"] == 0, report
    # the fuzz's valid rows (hundreds) each reached an output topic, none with an owner
    assert report["fuzz_valid_flows"] > 100 and report["fuzz_valid_lost"] == 0, report
    assert report["fuzz_valid_attributed"] == 0, report
    assert report["taskmanager_kills"] == 1 and report["restarts"] >= 1, report
    assert report["flows"] > 1000 and report["flows_lost"] == 0, report
    assert report["misattributed"] == 0, report
    assert report["backlog_flows"] > 1000 and report["backlog_flows_lost"] == 0, report
    assert report["backlog_misattributed"] == 0 and report["backlog_restarts"] == 0, report
    assert report["backlog_failed_checkpoints"] == 0, report
    assert report["outage_connections"] > 1000, report      # 200/s for 20 s
    assert report["outage_batches_resent"] >= 1, report     # windows that ended during the outage ...
    assert report["outage_flows_lost"] == 0, report         # ... reached the topic once it was back
    assert report["outage_spool_left"] == 0, report
    assert report["ok"] and run.returncode == 0, run.stderr[-4000:]
