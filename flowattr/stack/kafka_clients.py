"""Plain Kafka clients (kafka-python) for producing inputs and reading outputs.

Reads never rely on end offsets: tansu's ListOffsets(LATEST) is wrong (measured: the base
offset of the last batch + 1), so a reader stops when it has what it expects or when the
topic has been idle for a while.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaTimeoutError

from schemas.errors import FlowattrError
from schemas.kafka_properties import WIRE_COMPRESSION, kafka_python_codec

# How long a client tries to reach the broker before the command says none answers.
BOOTSTRAP_TIMEOUT_MS = 10_000


def _no_broker(bootstrap: str) -> FlowattrError:
    return FlowattrError(f"no Kafka broker answers at {bootstrap}; start the embedded one with "
                         "`flowattr broker start`, or pass the right --bootstrap")


def producer(bootstrap: str) -> KafkaProducer:
    # Large batched messages: kafka-python manages ~20-30 k small msg/s but ~160 MB/s of
    # 100 KB messages with crc32c installed and a 1 MB batch.
    try:
        return KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20,
                             batch_size=1024 * 1024, max_request_size=64 * 1024 * 1024,
                             compression_type=kafka_python_codec(WIRE_COMPRESSION), retries=5,
                             bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS)
    except KafkaTimeoutError:
        raise _no_broker(bootstrap) from None


def read_topic(bootstrap: str, topic: str, stop: Callable[[list[bytes]], bool] | None = None,
               idle_timeout_s: float = 10.0, max_wait_s: float = 300.0) -> list[bytes]:
    """All values of `topic` from the beginning, until stop(values) is true, or nothing
    new arrived for idle_timeout_s, or max_wait_s passed."""
    values: list[bytes] = []
    for batch in iter_topic(bootstrap, topic, idle_timeout_s, max_wait_s):
        values.extend(batch)
        if stop is not None and stop(values):
            break
    return values


def read_latest_by_key(bootstrap: str, topic: str, idle_timeout_s: float = 5.0) -> dict[bytes, bytes]:
    """A compacted topic as a table: each key's latest value (a key always goes to the
    same partition, where records keep their order). Records without a key are skipped."""
    latest: dict[bytes, bytes] = {}
    for batch in iter_topic(bootstrap, topic, idle_timeout_s, with_keys=True):
        latest.update((key, value) for key, value in batch if key is not None)
    return latest


def iter_topic(bootstrap: str, topic: str, idle_timeout_s: float = 10.0,
               max_wait_s: float = 300.0, from_beginning: bool = True,
               first_wait_s: float | None = None, with_keys: bool = False,
               whole_records: bool = False) -> Iterator[list]:
    """Yield lists of values as they arrive (no consumer group: assign every partition).
    Ends when nothing new came for idle_timeout_s, or, before the first value, for
    first_wait_s (default: idle_timeout_s), or after max_wait_s. with_keys: (key, value)
    pairs instead of values; whole_records: kafka-python's ConsumerRecords (key, value,
    timestamp, headers)."""
    try:
        consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                 max_partition_fetch_bytes=64 * 1024 * 1024,
                                 fetch_max_bytes=128 * 1024 * 1024, consumer_timeout_ms=1000,
                                 bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS)
    except KafkaTimeoutError:
        raise _no_broker(bootstrap) from None
    try:
        deadline = time.monotonic() + 15
        partitions = consumer.partitions_for_topic(topic)
        while not partitions and time.monotonic() < deadline:
            time.sleep(0.2)
            partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise FlowattrError(f"topic {topic} does not exist; create it with `flowattr topics create`")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        if from_beginning:
            consumer.seek_to_beginning(*tps)
        last_data = time.monotonic()
        end = time.monotonic() + max_wait_s
        idle_limit = idle_timeout_s if first_wait_s is None else first_wait_s
        while time.monotonic() < end and time.monotonic() - last_data < idle_limit:
            polled = consumer.poll(timeout_ms=500)
            batch = [rec if whole_records else (rec.key, rec.value) if with_keys else rec.value
                     for recs in polled.values() for rec in recs]
            if batch:
                last_data = time.monotonic()
                idle_limit = idle_timeout_s
                yield batch
    finally:
        consumer.close()
