"""A small `flowattr reliability` in the suite: the collector on the standalone cluster
(2 TaskManagers, RocksDB) gets fuzz on every input topic beside a simulated fleet, then
one TaskManager is killed with -9. The full run (100,000 records, 3 kills) is
`make reliability`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from flowattr.stack.processes import free_port

pytestmark = [pytest.mark.flink, pytest.mark.e2e, pytest.mark.slow]


def test_fuzz_and_a_taskmanager_kill_lose_nothing_and_accept_no_invalid_record(tmp_path):
    out = tmp_path / "reliability.json"
    run = subprocess.run([sys.executable, "-m", "flowattr.cli", "--state-dir", str(tmp_path), "reliability",
                          "--port", str(free_port()), "--fuzz-records", "3000", "--kills", "1", "--minutes", "3",
                          "--out", str(out)], capture_output=True, text=True, timeout=1500)
    assert out.exists(), run.stderr[-4000:]
    report = json.loads(out.read_text())
    assert report["fuzz_records"] == 3000
    assert report["fuzz_invalid"] > 2500 and report["dead_lettered"] >= report["fuzz_invalid"]
    assert report["invalid_accepted"] == 0, report
    assert report["valid_rejected"] == 0, report
    assert report["job_failures"] == 0, report
    assert report["taskmanager_kills"] == 1 and report["restarts"] >= 1, report
    assert report["flows"] > 1000 and report["flows_lost"] == 0, report
    assert report["misattributed"] == 0, report
    assert report["ok"] and run.returncode == 0, run.stderr[-4000:]
