"""The standalone Flink cluster from the wheel: start, submit with `flink run -py`, watch
through the REST API (job state, vertex backpressure), stop without leftovers."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from flowattr import flink_cluster, topics
from flowattr.demo import sample_batches
from flowattr.kafka_clients import producer, read_topic
from flowattr.processes import port_accepts

pytestmark = [pytest.mark.flink, pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    state = tmp_path_factory.mktemp("cluster")
    flink_cluster.start(state, slots=4, progress=lambda *_: None)
    yield state
    flink_cluster.stop(state, progress=lambda *_: None)
    assert not port_accepts(flink_cluster.REST_PORT), "cluster still listening after stop"


def _wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")


def test_submitted_job_runs_and_reports_backpressure(cluster, kafka_bootstrap, unique_region):
    from flink_jobs import wiring_job
    names = topics.RegionTopics(unique_region)
    topics.create_topics(kafka_bootstrap, [unique_region], progress=lambda *_: None)
    job_id = flink_cluster.submit(cluster, Path(wiring_job.__file__),
                                  ["--bootstrap", kafka_bootstrap, "--input", names.flows,
                                   "--output", names.attributed, "--dead-letter", names.dead_letter],
                                  progress=lambda *_: None)
    try:
        _wait_for(lambda: flink_cluster.rest_get(f"/jobs/{job_id}")["state"] == "RUNNING", 60,
                  "job RUNNING")
        p = producer(kafka_bootstrap)
        for value in sample_batches(3, 100, start_ms=1_790_000_000_000):
            p.send(names.flows, value)
        p.flush()
        out = read_topic(kafka_bootstrap, names.attributed, stop=lambda v: len(v) >= 3,
                         idle_timeout_s=60, max_wait_s=120)
        assert len(out) == 3
        vertices = flink_cluster.rest_get(f"/jobs/{job_id}")["vertices"]
        assert vertices
        vertex = vertices[0]["id"]
        def backpressure():
            bp = flink_cluster.rest_get(f"/jobs/{job_id}/vertices/{vertex}/backpressure")
            return bp if bp.get("status") == "ok" else None
        pressure = _wait_for(backpressure, 30, "a backpressure sample")
        assert pressure["backpressureLevel"] in ("ok", "low", "high")
        metric_ids = _wait_for(lambda: [m["id"] for m in flink_cluster.rest_get(
            f"/jobs/{job_id}/vertices/{vertex}/metrics")], 30, "vertex metrics")
        assert any("numRecordsOut" in m for m in metric_ids)
    finally:
        flink_cluster.rest_get(f"/jobs/{job_id}/yarn-cancel")
        _wait_for(lambda: flink_cluster.rest_get(f"/jobs/{job_id}")["state"] == "CANCELED", 30,
                  "job CANCELED")
