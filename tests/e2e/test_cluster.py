"""The collector on the standalone Flink cluster from the wheel: start, submit with
`flink run -py`, then read its user metrics and a vertex's backpressure through the REST
API (what an operator watches in the web UI), and stop without leftovers."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowattr.lab.simulate import FleetScenario, batch_flows, build_fleet, produce_to_kafka, simulate_flows
from flowattr.stack import flink_cluster, topics
from flowattr.stack.processes import port_accepts
from tests.waiting import until

pytestmark = [pytest.mark.flink, pytest.mark.slow]
SCENARIO = FleetScenario(seed=3, minutes=3, services=20, remote_region_services=0, ec2_hosts=30,
                         gateway_hosts=3, container_hosts=10, gateway_routes=8, deps_per_service=3)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    state = tmp_path_factory.mktemp("cluster")
    flink_cluster.start(state, slots=4, progress=lambda *_: None)
    yield state
    flink_cluster.stop(state, progress=lambda *_: None)
    assert not port_accepts(flink_cluster.REST_PORT), "cluster still listening after stop"


def _metric_sum(job_id: str, vertex: str, name: str) -> int:
    ids = [m["id"] for m in flink_cluster.rest_get(f"/jobs/{job_id}/vertices/{vertex}/metrics")]
    wanted = [i for i in ids if i.endswith("." + name)]
    if not wanted:
        return -1
    values = flink_cluster.rest_get(f"/jobs/{job_id}/vertices/{vertex}/metrics?get={','.join(wanted)}")
    return sum(int(float(v["value"])) for v in values)


def test_collector_on_the_cluster_reports_metrics_and_backpressure(cluster, kafka_bootstrap):
    from flink_jobs import attribution_job
    region = "us-east-1"  # the default config's region; its topics may already hold other tests' data
    topics.create_topics(kafka_bootstrap, [region, "eu-west-1"], progress=lambda *_: None)
    fleet = build_fleet(SCENARIO)
    flows = simulate_flows(fleet)
    deliveries = batch_flows(fleet, flows)
    # flows_in counts the rows that pass validation (corrupted rows are dead-lettered).
    delivered = sum(int(flows.valid[d.rows].sum()) for d in deliveries if not d.lost)
    job_id = flink_cluster.submit(cluster, Path(attribution_job.__file__),
                                  ["--bootstrap", kafka_bootstrap, "--region", region,
                                   "--group-id", "cluster-test"], progress=lambda *_: None)
    try:
        until(lambda: flink_cluster.rest_get(f"/jobs/{job_id}")["state"] == "RUNNING", 60, "job RUNNING")
        produce_to_kafka(kafka_bootstrap, fleet, flows, deliveries, progress=lambda *_: None)
        vertices = {v["name"]: v["id"] for v in flink_cluster.rest_get(f"/jobs/{job_id}")["vertices"]}
        validate = next(v for n, v in vertices.items() if "validate-flows" in n)
        attribute = next(v for n, v in vertices.items() if n.startswith("attribute"))
        until(lambda: _metric_sum(job_id, validate, "flows_in") >= delivered, 120, "flows_in metric")
        until(lambda: _metric_sum(job_id, attribute, "attributed") > 0, 120, "attributed metric")
        for name in ("unattributed", "retried", "conflicts", "attempts", "broadcast_ranges_held",
                     "event_time_lag_ms"):
            assert _metric_sum(job_id, attribute, name) >= 0, name
        assert until(lambda: _metric_sum(job_id, attribute, "broadcast_ranges_held") > 0, 60, "ranges gauge")

        def backpressure():
            bp = flink_cluster.rest_get(f"/jobs/{job_id}/vertices/{attribute}/backpressure")
            return bp if bp.get("status") == "ok" else None
        pressure = until(backpressure, 30, "a backpressure sample")
        assert pressure["backpressureLevel"] in ("ok", "low", "high")
        assert len(pressure["subtasks"]) == 2  # parallelism 2
    finally:
        flink_cluster.rest_get(f"/jobs/{job_id}/yarn-cancel")
        until(lambda: flink_cluster.rest_get(f"/jobs/{job_id}")["state"] == "CANCELED", 30, "job CANCELED")
