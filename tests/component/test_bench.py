"""`flowattr bench` parts that need no broker or kernel: they print numbers and save JSON."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def test_bench_limit_and_state_write_their_figures(tmp_path):
    out = tmp_path / "results.json"
    run = subprocess.run([sys.executable, "-m", "flowattr.cli", "--state-dir", str(tmp_path), "bench",
                          "--only", "limit", "--only", "state", "--e2e-flows", "1500000", "--busy-factor", "5",
                          "--out", str(out)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    results = json.loads(out.read_text())
    assert results["limit_flows_per_s"] > 0 and results["limit_flows"] > 1_000_000
    assert results["flows_per_batch"] > 500  # x5 the evaluation fleet's ~220 flows per host-minute batch
    assert 0 < results["bytes_per_range"] < 200
    assert results["machine"]["cores"] >= 1
    assert "in-process limit" in run.stdout
