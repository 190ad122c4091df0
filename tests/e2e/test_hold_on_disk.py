"""The hold on disk: on the standalone cluster (RocksDB), one small TaskManager holds
more than three times its whole JVM heap in flows, without a restart and with its memory
bounded. Every flow is held (the hold is an hour, and nothing reaches an output topic),
so all of them are state at once. (RocksDB compresses the checkpoint to a fraction of
that: the test prints it.)"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import numpy as np
import pytest

from flowattr.lab import NO_NEW_SUBNET_WAIT
from flowattr.lab.simulate import HOME_REGION, REMOTE_REGION
from flowattr.stack import broker, flink_cluster, topics
from flowattr.stack.kafka_clients import producer, read_topic
from flowattr.stack.processes import free_port
from schemas import flowattr_pb2 as pb
from schemas.columns import FlowColumns, encode_flow_batch, ips_to_array
from schemas.topics import RegionTopics
from tests.waiting import until

pytestmark = [pytest.mark.flink, pytest.mark.e2e, pytest.mark.slow]

REGION = HOME_REGION          # the config's region: the flows' IPs are in its CIDRs
TM_PROCESS_MB = 1280          # the TaskManager's whole process budget (heap is part of it)
ROWS_PER_BATCH, BATCHES = 20_000, 600   # 12 M flows: ~1 GB as sent, ~1.3 GB held in pending form
WINDOW_END = int(time.time() * 1000) // 60_000 * 60_000
JOB_FILE = Path(importlib.util.find_spec("flink_jobs.attribution_job").origin)


def _batch(i: int, rng) -> bytes:
    cols = FlowColumns.zeros(ROWS_PER_BATCH)
    cols.workloads = ["", f"held-{i % 50}"]
    local = ips_to_array([f"10.1.{i % 50}.{1 + i % 200}"])          # few local IPs: few claims
    cols.columns["local_ip"][:] = local
    cols.columns["remote_ip"][:] = rng.integers(0, 256, (ROWS_PER_BATCH, 16), dtype=np.uint8)
    cols.columns["remote_ip"][:, :12] = local[0, :12]                 # IPv4-mapped
    cols.columns["local_port"][:] = 8080
    cols.columns["remote_port"][:] = rng.integers(1024, 65535, ROWS_PER_BATCH)
    cols.columns["end_ms"][:] = WINDOW_END - rng.integers(1, 60_000, ROWS_PER_BATCH)
    cols.columns["start_ms"][:] = cols["end_ms"] - 100
    cols.columns["bytes_sent"][:] = rng.integers(0, 10**6, ROWS_PER_BATCH)
    cols.columns["local_workload_ref"][:] = 1
    cols.columns["local_attribution"][:] = pb.LOCAL_ATTRIBUTION_IP_MAP
    cols.columns["direction"][:] = pb.FLOW_DIRECTION_INBOUND
    header = pb.FlowBatch(exporter_id=f"held-{i % 50}", host=f"held-{i % 50}", region=REGION,
                          window_start_ms=WINDOW_END - 60_000, window_end_ms=WINDOW_END, sequence=1 + i // 50,
                          part_count=1)
    return encode_flow_batch(header, cols)


def _vertex_metric(job_id: str, vertex_prefix: str, name: str) -> int:
    job = flink_cluster.rest_get(f"/jobs/{job_id}")
    vertex = next(v["id"] for v in job["vertices"] if vertex_prefix in v["name"])
    ids = [m["id"] for m in flink_cluster.rest_get(f"/jobs/{job_id}/vertices/{vertex}/metrics")
           if m["id"].endswith("." + name)]
    values = flink_cluster.rest_get(f"/jobs/{job_id}/vertices/{vertex}/metrics?get={','.join(ids)}") if ids else []
    return sum(int(float(v["value"])) for v in values)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_one_small_taskmanager_holds_several_heaps_of_flows_on_disk(tmp_path):
    b = broker.start(tmp_path / "broker", free_port(), progress=lambda *_: None)
    flink_cluster.start(tmp_path, slots=2, taskmanagers=1, tm_process_size=f"{TM_PROCESS_MB}m",
                        progress=lambda *_: None)
    try:
        topics.create_topics(b.bootstrap, [REGION, REMOTE_REGION], progress=lambda *_: None)
        job_id = flink_cluster.submit(tmp_path, JOB_FILE, [
            "--bootstrap", b.bootstrap, "--region", REGION, "--group-id", "hold", "--hold-ms", "3600000",
            "--checkpoint-interval-ms", "10000", "--checkpoint-dir", f"file://{tmp_path / 'chk'}", *NO_NEW_SUBNET_WAIT],
            progress=lambda *_: None)
        until(lambda: flink_cluster.rest_get(f"/jobs/{job_id}")["state"] == "RUNNING", 120, "the job to run")
        p = producer(b.bootstrap)
        rng = np.random.default_rng(1)
        sent_bytes = 0
        for i in range(BATCHES):
            value = _batch(i, rng)
            sent_bytes += len(value)
            p.send(RegionTopics(REGION).flows, value, key=f"held-{i % 50}".encode(), timestamp_ms=WINDOW_END)
        p.flush()
        p.close()
        total = ROWS_PER_BATCH * BATCHES
        until(lambda: _vertex_metric(job_id, "validate-flows", "flows_in") >= total, 900, f"{total:,} flows in")

        def completed() -> int:
            return flink_cluster.rest_get(f"/jobs/{job_id}/checkpoints")["counts"]["completed"]
        # The second checkpoint completed from now on began after every flow was in the hold.
        done = completed()
        until(lambda: completed() >= done + 2, 300, "a checkpoint holding every flow")
        checkpoint = flink_cluster.rest_get(f"/jobs/{job_id}/checkpoints")["latest"]["completed"]
        tm = flink_cluster.rest_get("/taskmanagers")["taskmanagers"][0]["id"]
        heap_max = int(float(flink_cluster.rest_get(
            f"/taskmanagers/{tm}/metrics?get=Status.JVM.Memory.Heap.Max")[0]["value"]))
        pids = flink_cluster.taskmanager_pids(tmp_path)
        rss = _rss_mb(pids[0])
        restarts = int(float(flink_cluster.rest_get(f"/jobs/{job_id}/metrics?get=numRestarts")[0]["value"]))
        state = flink_cluster.rest_get(f"/jobs/{job_id}")["state"]
        names = RegionTopics(REGION)
        emitted = {t: len(read_topic(b.bootstrap, t, idle_timeout_s=3, max_wait_s=30))
                   for t in (names.attributed, names.unattributed, names.dead_letter)}
    finally:
        flink_cluster.stop(tmp_path, progress=lambda *_: None)
        broker.stop(tmp_path / "broker")
    print(f"\nheld {total:,} flows, {sent_bytes / 2**20:,.0f} MiB as sent; heap max {heap_max / 2**20:,.0f} MiB; "
          f"TaskManager RSS {rss:,.0f} MiB of a {TM_PROCESS_MB} MiB budget; checkpoint "
          f"{checkpoint['state_size'] / 2**20:,.0f} MiB (RocksDB-compressed)")
    assert (state, restarts) == ("RUNNING", 0)
    # Every flow is still held (none has come due, none was rejected) ...
    assert emitted == {t: 0 for t in emitted}, emitted
    # ... more than three heaps of it (the held form is larger than the bytes sent) ...
    assert sent_bytes >= 3 * heap_max, (sent_bytes, heap_max)
    # ... and the process stays within its budget (heap + RocksDB's managed memory + overhead).
    assert rss <= 1.25 * TM_PROCESS_MB, rss
