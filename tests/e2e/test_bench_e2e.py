"""`flowattr bench --only e2e`: a run that cannot give every flow an outcome within its
bound fails loudly and reports no throughput (a complete run is `make bench`'s)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from flowattr.stack.processes import free_port

pytestmark = [pytest.mark.flink, pytest.mark.slow]


def _bench(tmp_path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / "results.json"
    run = subprocess.run([sys.executable, "-m", "flowattr.cli", "--state-dir", str(tmp_path), "bench", "--only", "e2e",
                          "--e2e-flows", "60000", "--busy-factor", "3", "--port", str(free_port()),
                          "--out", str(out), *args], capture_output=True, text=True, timeout=900)
    return run, json.loads(out.read_text())


def test_a_run_that_cannot_finish_in_its_bound_fails_and_reports_no_throughput(tmp_path):
    run, results = _bench(tmp_path, "--e2e-bound-s", "5")   # the job alone takes longer to start
    assert run.returncode == 2
    assert "did not give every flow an outcome" in run.stderr and "Traceback" not in run.stderr
    assert results["e2e_complete"] is False and results["e2e_flows_per_s"] is None
    assert results["e2e_outcomes"] < results["e2e_flows"]


def test_the_latency_run_measures_a_live_fleet_after_its_warm_up(tmp_path):
    out = tmp_path / "results.json"
    run = subprocess.run([sys.executable, "-m", "flowattr.cli", "--state-dir", str(tmp_path), "bench", "--only",
                          "latency", "--latency-s", "10", "--latency-hold-s", "3", "--port", str(free_port()),
                          "--out", str(out)], capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(out.read_text())
    # Ten seconds of windows, each with every exporter's batch of a simulated minute.
    assert 0 < results["latency_flows"] <= results["latency_flows_sent"], results
    # A window's flows are held until event time (the newest batch's window end - 1 s of
    # out-of-orderness) is 3 s past them; batches come every 5 s, at their window's end, so
    # the first that moves it far enough is the next one: none comes out sooner than 5 s.
    assert results["latency_p50_s"] >= 5, results


def test_the_growth_run_times_the_fleet_alone_after_the_job_learned_the_preloaded_ips(tmp_path):
    out = tmp_path / "results.json"
    run = subprocess.run([sys.executable, "-m", "flowattr.cli", "--state-dir", str(tmp_path), "bench", "--only",
                          "growth_e2e", "--growth-e2e-ips", "20000", "--growth-e2e-flows", "60000", "--busy-factor",
                          "3", "--port", str(free_port()), "--out", str(out)], capture_output=True, text=True,
                         timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    [point] = json.loads(out.read_text())["growth_e2e_by_ips"]
    assert point["ips"] == 20000 and point["e2e_complete"] and point["e2e_flows_per_s"] > 0, point
    # Counted from the job's counters after the preload (the warm-up's and the N IPs' own
    # flows, 40,000, are not in it): exactly the fleet's valid flows were read and decided.
    assert point["e2e_accepted"] == point["e2e_flows"], point
    assert point["e2e_attributed_pct"] >= 99, point
    # The preload's rate and what the IPs cost, Java objects and outside the heap apart.
    assert point["preload_ips_per_s"] > 0 and point["preload_cpu_us_per_ip"] > 0, point
    assert {"job_heap_used_growth_mib", "job_outside_heap_growth_mib", "job_held_bytes_per_ip"} <= set(point), point
    # Beside the job, what the projection to a larger size also counts: the broker was
    # running (its memory is measured, not 0: the pid was found) and the bench's growth.
    assert point["broker_rss_before_mib"] > 0 and "bench_rss_growth_mib" in point, point
    assert {"job_outside_heap_e2e_growth_mib", "broker_rss_e2e_growth_mib"} <= set(point), point
