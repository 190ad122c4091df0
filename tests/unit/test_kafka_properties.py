"""Kafka client properties passed through by operators (TLS/SASL): parsed once, taken as
they are by the job's Flink connector, converted for the exporter's kafka-python."""

from __future__ import annotations

import pytest

from schemas.errors import FlowattrError
from schemas.kafka_properties import for_kafka_python, parse

DEFAULTS = {"security_protocol": "PLAINTEXT", "ssl_check_hostname": True, "request_timeout_ms": 30000,
            "sasl_plain_username": None}


def test_key_value_pairs_are_parsed_and_the_last_wins():
    assert parse(["security.protocol=SSL", "sasl.jaas.config=a=b c", "security.protocol=SASL_SSL"]) == {
        "security.protocol": "SASL_SSL", "sasl.jaas.config": "a=b c"}
    assert parse(None) == {}


@pytest.mark.parametrize("bad", ["security.protocol", "=SSL", ""])
def test_a_malformed_property_is_a_one_line_error(bad):
    with pytest.raises(FlowattrError, match="expected KEY=VALUE"):
        parse([bad])


def test_kafka_names_become_kafka_python_arguments_typed_as_their_defaults():
    out = for_kafka_python({"security.protocol": "SSL", "ssl.check.hostname": "false", "request.timeout.ms": "5000",
                            "sasl.plain.username": "svc"}, DEFAULTS)
    assert out == {"security_protocol": "SSL", "ssl_check_hostname": False, "request_timeout_ms": 5000,
                   "sasl_plain_username": "svc"}


def test_unknown_or_mistyped_properties_are_errors_naming_the_key():
    with pytest.raises(FlowattrError, match="'sasl.jaas.config' is not a setting"):
        for_kafka_python({"sasl.jaas.config": "x"}, DEFAULTS)
    with pytest.raises(FlowattrError, match="request.timeout.ms='soon': expected a number"):
        for_kafka_python({"request.timeout.ms": "soon"}, DEFAULTS)
    with pytest.raises(FlowattrError, match="expected true or false"):
        for_kafka_python({"ssl.check.hostname": "yes"}, DEFAULTS)


def test_the_exporter_client_knows_the_tls_and_sasl_settings():
    from kafka import KafkaProducer
    out = for_kafka_python({"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
                            "sasl.plain.username": "u", "sasl.plain.password": "p",
                            "ssl.cafile": "/etc/ssl/ca.pem"}, KafkaProducer.DEFAULT_CONFIG)
    assert out["security_protocol"] == "SASL_SSL" and out["ssl_cafile"] == "/etc/ssl/ca.pem"


def test_the_job_takes_the_configs_kafka_mapping_and_the_flags_over_it(tmp_path):
    import yaml

    from flink_jobs.job_config import DEFAULT_CONFIG, load
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    raw["kafka"] = {"security.protocol": "SSL", "ssl.truststore.location": "/etc/kafka/truststore.jks"}
    path = tmp_path / "flowattr.yaml"
    path.write_text(yaml.safe_dump(raw))
    cfg = load(path, {"kafka_property": ["security.protocol=SASL_SSL", "sasl.mechanism=SCRAM-SHA-512"]})
    assert cfg.kafka_properties == {"security.protocol": "SASL_SSL",
                                    "ssl.truststore.location": "/etc/kafka/truststore.jks",
                                    "sasl.mechanism": "SCRAM-SHA-512"}
    assert load(None, {}).kafka_properties == {}


def test_the_exporter_rejects_a_misspelt_property_at_start():
    from exporter.agent import ExporterConfig, _kafka_sender
    cfg = ExporterConfig(bootstrap="127.0.0.1:1", region="us-east-1", exporter_id="e", host="h",
                         kafka_properties=(("security.protocl", "SSL"),))
    with pytest.raises(FlowattrError, match="'security.protocl' is not a setting"):
        _kafka_sender(cfg)
    ok = ExporterConfig(bootstrap="127.0.0.1:1", region="us-east-1", exporter_id="e", host="h",
                        kafka_properties=(("security.protocol", "SSL"),))
    assert _kafka_sender(ok)("127.0.0.1:1").properties == {"security.protocol": "SSL"}


def test_compression_none_is_kafka_pythons_none_and_an_unknown_codec_is_an_error():
    defaults = {"compression_type": None}
    assert for_kafka_python({"compression.type": "none"}, defaults) == {"compression_type": None}
    assert for_kafka_python({"compression.type": "zstd"}, defaults) == {"compression_type": "zstd"}
    with pytest.raises(FlowattrError, match="expected none, gzip, snappy, lz4 or zstd"):
        for_kafka_python({"compression.type": "brotli"}, defaults)


def test_a_codec_the_job_cannot_read_is_refused_where_it_is_configured(monkeypatch):
    """zstd: PyFlink's lib/ has no zstd-jni, so the job could not read what an exporter or
    its own sinks wrote with it (helper-36)."""
    from exporter.agent import ExporterConfig, _kafka_sender
    from schemas.kafka_properties import check_compression

    check_compression({"compression.type": "snappy"}, "exporter")
    check_compression({}, "exporter")
    with pytest.raises(FlowattrError, match="exporter: compression.type='zstd': the collector job's Kafka readers"):
        check_compression({"compression.type": "zstd"}, "exporter")
    def exporter(codec):
        return ExporterConfig(bootstrap="127.0.0.1:1", region="r", exporter_id="e", host="h",
                              kafka_properties=(("compression.type", codec),))

    # The exporter checks at start: zstd refused; snappy refused when kafka-python finds no
    # library for it (python-snappy is not a dependency), not retried forever at sends.
    from kafka import KafkaProducer
    monkeypatch.setitem(KafkaProducer._COMPRESSORS, "snappy", (lambda: False, 2))
    with pytest.raises(FlowattrError, match="zstd"):
        _kafka_sender(exporter("zstd"))
    with pytest.raises(FlowattrError, match="kafka-python finds no library for it"):
        _kafka_sender(exporter("snappy"))
    _kafka_sender(exporter("none"))
