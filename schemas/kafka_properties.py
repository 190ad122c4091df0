"""Kafka client properties an operator passes through (TLS, SASL, timeouts): given as
`KEY=VALUE` with Kafka's own (Java) names, e.g. `security.protocol=SASL_SSL`. The job's
Flink connector takes them as they are; the exporter's kafka-python client names the
same settings with underscores (`security_protocol`), converted here. Pure."""

from __future__ import annotations

from schemas.errors import FlowattrError

# Every batch this project writes goes on the wire lz4-compressed (Kafka's compression.type;
# a property given overrides it): the bench's fleet's FlowBatches 3.4x smaller, 82.3 ->
# 23.9 B a flow, for ~0.13 us of CPU a flow (docs/performance.md, "Compression on the
# wire"). zstd makes them smaller still (19 B a flow), but Flink's Kafka reader cannot
# read it: zstd-jni is not in PyFlink's lib/, and lz4-java is (in flink-dist).
WIRE_COMPRESSION = "lz4"
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
            out[name] = None if value == "none" else value
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
