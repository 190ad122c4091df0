"""Issue 2's wiring proof: FlowBatch -> kafka-python -> KafkaSource (raw bytes, thread
mode) -> Python decode/re-encode -> KafkaSink -> consumer -> decode. Malformed records
go to the dead-letter topic with their original bytes."""

from __future__ import annotations

import numpy as np
import pytest

from flowattr.lab.simulate import FleetScenario, batch_flows, build_fleet, encode_delivery, simulate_flows
from flowattr.stack import topics
from flowattr.stack.kafka_clients import producer, read_topic
from flowattr.stack.local_job import LocalJob
from schemas import flowattr_pb2 as pb
from schemas.columns import decode_flow_batch
from schemas.topics import RegionTopics

pytestmark = [pytest.mark.flink, pytest.mark.e2e]


def test_flow_batches_survive_the_round_trip_through_flink(kafka_bootstrap, unique_region,
                                                           tmp_path):
    names = RegionTopics(unique_region)
    topics.create_topics(kafka_bootstrap, [unique_region], progress=lambda *_: None)
    # Well-formed batches only (this job passes them through): no corrupted rows, no empty
    # dictionary, and not the empty batches of idle minutes.
    fleet = build_fleet(FleetScenario(seed=2, minutes=2, services=20, remote_region_services=0, ec2_hosts=30,
                                      gateway_hosts=3, container_hosts=4, gateway_routes=8, deps_per_service=3,
                                      bad_row_fraction=0.0, empty_dictionary_batches=0))
    flows = simulate_flows(fleet)
    batches = [encode_delivery(fleet, flows, d) for d in batch_flows(fleet, flows) if len(d.rows)][:6]
    malformed = [b"\x0a\xff\xff not protobuf", pb.FlowBatch(flow_count=2).SerializeToString()]
    p = producer(kafka_bootstrap)
    for value in batches[:3] + malformed[:1] + batches[3:] + malformed[1:]:
        p.send(names.flows, value)
    p.flush()
    # The attributed topic stands in as the output: this job does no attribution.
    job = LocalJob("flink_jobs.wiring_job",
                   ["--bootstrap", kafka_bootstrap, "--input", names.flows,
                    "--output", names.attributed, "--dead-letter", names.dead_letter,
                    "--parallelism", "2"], tmp_path / "job.log")
    with job:
        out = read_topic(kafka_bootstrap, names.attributed, stop=lambda v: len(v) >= len(batches),
                         idle_timeout_s=90, max_wait_s=180)
        dead = read_topic(kafka_bootstrap, names.dead_letter, stop=lambda v: len(v) >= 2,
                          idle_timeout_s=30, max_wait_s=60)
        assert job.running(), job.log_tail()
    assert len(out) == len(batches) == 6, job.log_tail()
    decoded_in = {}
    for v in batches:
        msg, cols = decode_flow_batch(v)
        decoded_in[(msg.exporter_id, msg.sequence)] = cols
    for value in out:
        msg, cols = decode_flow_batch(value)
        original = decoded_in.pop((msg.exporter_id, msg.sequence))
        assert len(cols) == len(original) > 0
        for name in original.columns:
            np.testing.assert_array_equal(cols[name], original[name], err_msg=name)
    assert decoded_in == {}
    letters = sorted((pb.DeadLetter.FromString(v) for v in dead), key=lambda d: d.original)
    assert [d.original for d in letters] == sorted(malformed)
    assert all(d.source_topic == names.flows and d.reason for d in letters)
    assert any("expected 2 x 16" in d.reason for d in letters)
