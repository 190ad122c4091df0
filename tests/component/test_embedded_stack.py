"""The embedded broker and CLI: start/stop/status, clear errors, --help everywhere."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from flowattr.cli import build_parser
from flowattr.stack import broker, topics
from flowattr.stack.kafka_clients import producer, read_topic
from flowattr.stack.processes import PortInUseError, free_port, pid_alive
from schemas.topics import RegionTopics


def _all_subcommand_paths(parser, prefix=()):
    for action in parser._actions:
        if hasattr(action, "choices") and isinstance(action.choices, dict):
            for name, sub in action.choices.items():
                yield prefix + (name,)
                yield from _all_subcommand_paths(sub, prefix + (name,))


def test_every_subcommand_has_help_with_an_example():
    paths = list(_all_subcommand_paths(build_parser()))
    assert ("broker", "start") in paths and ("demo",) in paths
    for path in paths:
        out = subprocess.run([sys.executable, "-m", "flowattr.cli", *path, "--help"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, (path, out.stderr)
        assert "example:" in out.stdout and "flowattr" in out.stdout.split("example:")[1], path


def test_broker_start_status_stop_leaves_no_process(tmp_path):
    port = free_port()
    st = broker.start(tmp_path, port, progress=lambda *_: None)
    assert st.running and st.port == port and pid_alive(st.pid)
    again = broker.start(tmp_path, port, progress=lambda *_: None)  # reuses, no second broker
    assert again.pid == st.pid
    assert broker.stop(tmp_path) is True
    assert not pid_alive(st.pid)
    assert broker.status(tmp_path).running is False
    assert broker.stop(tmp_path) is False


def test_broker_refuses_a_taken_port_with_a_clear_error(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(PortInUseError, match=f"port {port} on 127.0.0.1 is in use"):
            broker.start(tmp_path, port, progress=lambda *_: None)
    assert broker.status(tmp_path).running is False


def test_cli_reports_errors_without_a_traceback(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        out = subprocess.run([sys.executable, "-m", "flowattr.cli", "--state-dir", str(tmp_path),
                              "broker", "start", "--port", str(port)],
                             capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "error: port" in out.stderr and "Traceback" not in out.stderr


def test_topics_are_created_once_per_region(kafka_bootstrap, unique_region):
    created = topics.create_topics(kafka_bootstrap, [unique_region], progress=lambda *_: None)
    expected = set(RegionTopics(unique_region).all())
    assert set(created) == expected and len(expected) == 9
    assert topics.create_topics(kafka_bootstrap, [unique_region], progress=lambda *_: None) == []


def test_the_keyed_topics_are_compacted(kafka_bootstrap, unique_region):
    """edges and ownership hold each key's latest value: created with cleanup.policy=compact."""
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

    topics.create_topics(kafka_bootstrap, [unique_region], progress=lambda *_: None)
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        names = RegionTopics(unique_region)
        for topic, compacted in ((names.edges, True), (names.ownership, True), (names.flows, False)):
            response = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)],
                                              config_filter="all")
            (configs,) = [names for by_name in response.values() for names in by_name.values()]
            policy = configs.get("cleanup.policy")
            policy = policy.get("value") if isinstance(policy, dict) else policy
            assert (policy == "compact") == compacted, (topic, policy)
    finally:
        admin.close()


def test_produce_and_read_back_through_the_broker(kafka_bootstrap, unique_region):
    topics.create_topics(kafka_bootstrap, [unique_region], progress=lambda *_: None)
    name = RegionTopics(unique_region).ip_changes
    p = producer(kafka_bootstrap)
    for i in range(50):
        p.send(name, f"event-{i}".encode())
    p.flush()
    values = read_topic(kafka_bootstrap, name, stop=lambda v: len(v) >= 50, idle_timeout_s=10)
    assert values == [f"event-{i}".encode() for i in range(50)]  # one partition: in order


def test_an_exporters_batch_goes_on_the_wire_lz4_compressed_and_comes_back_whole(kafka_bootstrap, unique_region):
    """With compression.type=lz4 (an operator's choice; off by default, WIRE_COMPRESSION),
    the exporter's sender compresses, the broker keeps the compressed batch, and a reader
    gets the exact bytes back. A simulated minute of one
    host's flows (repetitive columns, as real batches are) compresses at least 2x."""
    from exporter.publisher import KafkaSender
    from flowattr.lab import simulate

    fleet = simulate.build_fleet(simulate.profile("default", 3, minutes=2))
    flows = simulate.simulate_flows(fleet)
    delivery = max(simulate.batch_flows(fleet, flows), key=lambda d: len(d.rows))
    value = simulate.encode_delivery(fleet, flows, delivery)
    topics.create_topics(kafka_bootstrap, [unique_region], progress=lambda *_: None)
    name = RegionTopics(unique_region).flows
    sender = KafkaSender(kafka_bootstrap, properties={"compression.type": "lz4"})
    try:
        sender.send(name, b"host-1", value, 1_790_000_000_000)
        producer_metrics = sender._producer.metrics()["producer-metrics"]
        assert sender._producer.config["compression_type"] == "lz4"
        # compressed size over raw size, of the batches this producer sent: one
        assert producer_metrics["compression-rate-avg"] < 0.5, producer_metrics
    finally:
        sender.close()
    assert read_topic(kafka_bootstrap, name, stop=lambda v: len(v) >= 1, idle_timeout_s=10) == [value]
