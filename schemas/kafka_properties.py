"""Kafka client properties an operator passes through (TLS, SASL, timeouts): given as
`KEY=VALUE` with Kafka's own (Java) names, e.g. `security.protocol=SASL_SSL`. The job's
Flink connector takes them as they are; the exporter's kafka-python client names the
same settings with underscores (`security_protocol`), converted here. Pure."""

from __future__ import annotations

from schemas.errors import FlowattrError


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
        if isinstance(default, bool):
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
