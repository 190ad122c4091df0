"""Kafka client properties an operator passes through (TLS, SASL, timeouts): given as
`KEY=VALUE` with Kafka's own (Java) names, e.g. `security.protocol=SASL_SSL`. The job's
Flink connector takes them as they are; the exporter's kafka-python client names the
same settings with underscores (`security_protocol`), converted here. Pure."""

from __future__ import annotations

from schemas.errors import FlowattrError

# Kafka's compression.type for every record this project writes (a property given
# overrides it). Off: lz4 made the bench's batches 3.4x smaller (82.3 -> 23.9 B a flow,
# docs/performance.md, "Compression on the wire"), but the job's fetch limits
# (flink_jobs/kafka_connectors.py) count compressed bytes, and with lz4 on every producer
# the 1,280 MiB TaskManager of tests/e2e/test_hold_on_disk.py ran out of heap decoding
# them (CI of dc9c1a6). On again once those limits are re-derived for compressed batches.
WIRE_COMPRESSION = "none"


def kafka_python_codec(compression_type: str) -> str | None:
    """Kafka's compression.type as kafka-python takes it ("none" is None there)."""
    return None if compression_type == "none" else compression_type


# What the collector job's Kafka readers can decompress (Java codecs in PyFlink's lib/:
# lz4-java and snappy-java in flink-dist, gzip in the JDK; no zstd-jni).
JOB_READABLE_COMPRESSION = ("none", "gzip", "snappy", "lz4")


def check_compression(properties: dict[str, str], who: str) -> None:
    """A compression.type the job cannot read is an error when `who` starts, not records
    the job fails on later."""
    value = properties.get("compression.type")
    if value is not None and value not in JOB_READABLE_COMPRESSION:
        raise FlowattrError(f"{who}: compression.type={value!r}: the collector job's Kafka readers cannot read it "
                            f"(PyFlink's lib/ has no zstd-jni); use one of {', '.join(JOB_READABLE_COMPRESSION)}")


def parse(items: list[str] | None) -> dict[str, str]:
    """['security.protocol=SSL', ...] -> {'security.protocol': 'SSL', ...} (later wins)."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise FlowattrError(f"--kafka-property {item!r}: expected KEY=VALUE, e.g. security.protocol=SSL")
        out[key.strip()] = value
    return out


def for_kafka_python(properties: dict[str, str], defaults: dict) -> dict:
    """Kafka's names -> kafka-python keyword arguments, typed as each default is (bool,
    int, float). `defaults`: the client's DEFAULT_CONFIG (which names it knows)."""
    out = {}
    for key, value in properties.items():
        name = key.replace(".", "_").replace("-", "_")
        if name not in defaults:
            raise FlowattrError(f"Kafka property {key!r} is not a setting of the exporter's client (kafka-python "
                                f"{name!r}); see its KafkaProducer documentation for the names it takes")
        default = defaults[name]
        if name == "compression_type":   # Kafka's "none" is kafka-python's None
            if value not in ("none", "gzip", "snappy", "lz4", "zstd"):
                raise FlowattrError(f"Kafka property {key}={value!r}: expected none, gzip, snappy, lz4 or zstd")
            out[name] = kafka_python_codec(value)
        elif isinstance(default, bool):
            if value.lower() not in ("true", "false"):
                raise FlowattrError(f"Kafka property {key}={value!r}: expected true or false")
            out[name] = value.lower() == "true"
        elif isinstance(default, (int, float)):
            try:
                out[name] = type(default)(value)
            except ValueError:
                raise FlowattrError(f"Kafka property {key}={value!r}: expected a number") from None
        else:
            out[name] = value
    return out
