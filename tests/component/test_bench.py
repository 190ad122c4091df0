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
    assert results["limit_decisions_flows_per_s"] > 0 and results["limit_decisions_decided"] > 1_000_000
    assert results["flows_per_batch"] > 500  # x5 the evaluation fleet's ~220 flows per host-minute batch
    assert 0 < results["bytes_per_range"] < 200
    assert results["machine"]["cores"] >= 1
    assert "in-process limit" in run.stdout


def test_growth_preloads_other_ips_and_the_same_flows_get_the_same_answers():
    """The growth figure times the same work as the limit: the preloaded IPs (fd00::/8) are
    none of the fleet's, so every flow's answer is the one it gets without them."""
    import numpy as np

    from flink_jobs.attribution.attributor import Attributor
    from flowattr.lab.bench import bench_growth, preload_other_ips, throughput_data
    from flowattr.lab.evaluate import default_config
    from schemas.columns import decode_flow_batch

    data = throughput_data(20_000, 1, lambda *_: None)
    points = bench_growth(data, lambda *_: None, sizes=(100, 2_000))["growth_by_ips"]
    assert [p["ips"] for p in points] == [100, 2_000] and all(p["limit_flows_per_s"] > 0 for p in points)
    fleet_ips = {bytes(ip) for ip in np.concatenate([decode_flow_batch(v)[1]["remote_ip"] for v in data.values])}
    assert not any(ip[0] == 0xFD for ip in fleet_ips)

    def answers(preload: int):
        att = Attributor(default_config())
        preload_other_ips(att, preload, base=int(decode_flow_batch(data.values[0])[1]["start_ms"].min()))
        out = []
        for value in data.values:
            _, cols = decode_flow_batch(value)
            att.learn_claims(att.claims(cols))
            r = att.attribute(cols, attempt=1)
            # Owner ids index a name table the preload also fills: compare by name.
            out.append((r.outcome.tolist(), att.owner_names(r.owner), r.source.tolist(), r.evidence_start.tolist(),
                        r.evidence_end.tolist(), r.reason.tolist()))
        return out
    assert answers(0) == answers(2_000)


def test_the_every_decision_limit_decides_every_valid_delivered_flow():
    """bench_decisions replays the engine over the busy fleet to the end: every valid row
    of every delivered batch is attributed or given up with a reason, none left in a retry."""
    import numpy as np

    from flowattr.lab.bench import bench_decisions, throughput_data

    data = throughput_data(20_000, 1, lambda *_: None)
    delivered = np.concatenate([d.rows for d in data.deliveries if not d.lost])
    figures = bench_decisions(data, lambda *_: None)
    assert figures["limit_decisions_decided"] == int(data.flows.valid[delivered].sum())
    assert figures["limit_decisions_flows_per_s"] > 0
