"""Sends spooled batches to Kafka in order, acks=all, one at a time; a batch leaves the
spool only once acknowledged. Kafka sits behind a narrow send(topic, key, value,
timestamp_ms) interface so tests can swap in a fake."""

from __future__ import annotations

import logging
import time
from typing import Protocol

from exporter.spool import Spool
from schemas.kafka_properties import WIRE_COMPRESSION, for_kafka_python, kafka_python_codec

log = logging.getLogger("flowattr.exporter.publisher")


class Sender(Protocol):
    def send(self, topic: str, key: bytes, value: bytes, timestamp_ms: int) -> None:
        """Block until the broker acknowledged the record (acks=all), or raise."""


class KafkaSender:
    def __init__(self, bootstrap: str, timeout_s: float = 10.0, properties: dict[str, str] | None = None):
        """`properties`: Kafka client properties by Kafka's names (TLS, SASL; see
        schemas/kafka_properties.py), over this sender's own settings."""
        self.bootstrap = bootstrap
        self.timeout_s = timeout_s
        self.properties = dict(properties or {})
        self._producer = None

    def send(self, topic: str, key: bytes, value: bytes, timestamp_ms: int) -> None:
        from kafka import KafkaProducer

        if self._producer is None:
            settings = dict(bootstrap_servers=self.bootstrap, acks="all", retries=0,
                            max_in_flight_requests_per_connection=1, linger_ms=0,
                            max_request_size=64 * 1024 * 1024, compression_type=kafka_python_codec(WIRE_COMPRESSION),
                            request_timeout_ms=int(self.timeout_s * 1000),
                            max_block_ms=int(self.timeout_s * 1000), reconnect_backoff_max_ms=2000)
            settings |= for_kafka_python(self.properties, KafkaProducer.DEFAULT_CONFIG)
            self._producer = KafkaProducer(**settings)
        try:
            self._producer.send(topic, value=value, key=key, timestamp_ms=timestamp_ms).get(timeout=self.timeout_s)
        except Exception:
            self.close()  # start over with a fresh connection next time
            raise

    def close(self) -> None:
        if self._producer is not None:
            try:
                self._producer.close(timeout=1)
            finally:
                self._producer = None


class Publisher:
    def __init__(self, spool: Spool, sender: Sender, topic: str, exporter_id: str):
        self.spool, self.sender, self.topic = spool, sender, topic
        self.key = exporter_id.encode()  # one exporter -> one partition: its batches stay in order
        self.sent = 0
        self.failures = 0
        self._retry_at = 0.0

    def drain(self, budget_s: float = 1.0) -> int:
        """Send spooled batches oldest first until empty, a failure, or budget_s passed."""
        if time.monotonic() < self._retry_at:
            return 0
        deadline = time.monotonic() + budget_s
        n = 0
        while time.monotonic() < deadline:
            head = self.spool.peek()
            if head is None:
                break
            path, timestamp_ms, value = head
            try:
                self.sender.send(self.topic, self.key, value, timestamp_ms)
            except Exception as exc:
                self.failures += 1
                self._retry_at = time.monotonic() + min(30.0, 1.0 * 2 ** min(self.failures, 5))
                log.warning("Kafka send failed (%s); %d batches wait in the spool", exc, len(self.spool))
                break
            self.spool.remove(path)
            self.failures = 0
            self.sent += 1
            n += 1
        return n
