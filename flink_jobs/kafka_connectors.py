"""KafkaSource / KafkaSink for raw protobuf bytes, and the connector fixes they need.

Assumptions (measured with PyFlink 2.0.2, the shigawire connector jars and tansu 0.6):
* the thin connector jars (flink-connector-kafka 4.0.1-2.0, kafka-clients 3.9.1) are on
  the classpath (scripts/setup.sh copies them into pyflink/lib);
* values cross the Python/Java boundary as byte[] (Types.PRIMITIVE_ARRAY(Types.BYTE())),
  deserialized by Kafka's ByteArrayDeserializer and serialized by ByteArraySerializer —
  never pickled.
"""

from __future__ import annotations

from pyflink.common.typeinfo import Types
from pyflink.datastream.connectors.base import DeliveryGuarantee
from pyflink.datastream.connectors.kafka import (
    KafkaOffsetsInitializer,
    KafkaRecordSerializationSchema,
    KafkaSink,
    KafkaSource,
)
from pyflink.java_gateway import get_gateway
from pyflink.util.java_utils import load_java_class

from schemas.kafka_properties import WIRE_COMPRESSION

BYTES = Types.PRIMITIVE_ARRAY(Types.BYTE())

# Fast group rebalances on the embedded broker (tansu: ~23 s with client defaults).
_CONSUMER_PROPERTIES = {
    "session.timeout.ms": "6000",
    "heartbeat.interval.ms": "2000",
    "partition.discovery.interval.ms": "10000",
}
# For topics whose records are flow batches (flows, retry, inbound). A heap dump of a
# 1,280 MB TaskManager (288 MB heap) taking a backlog of 1.6 MB batches found ~100 MB of
# Kafka records in its two flows subtasks, with 64 MiB fetches: the consumer's buffered
# fetch responses (one per partition, several partitions and brokers at once) and the
# ConsumerRecords of up to four polls in Flink's hand-over (its queue of two, the one being
# emitted, the one the fetcher waits to put). Both are bounded by the bytes a fetch may
# bring, so those are what is limited here: at 2 MiB a partition and 4 MiB a fetch, a
# subtask of two partitions holds some 24 MiB of them (measured before the batches were
# lz4-compressed: the limits count compressed bytes, so decoded records may now take
# ~3.4x that). A larger batch still comes whole
# (KIP-74; checked on tansu: a 5.2 MB record under the 2 MiB limit). Limiting the records
# a poll instead (two) did not bound big batches further and cost ~35 % of the job's
# throughput on small ones (56 against 87 batches of ~110 flows a second).
_BATCH_CONSUMER_PROPERTIES = {
    "max.partition.fetch.bytes": str(2 * 1024 * 1024),
    "fetch.max.bytes": str(4 * 1024 * 1024),
}
_PRODUCER_PROPERTIES = {
    "acks": "all",
    "linger.ms": "20",
    "batch.size": str(1024 * 1024),
    "max.request.size": str(64 * 1024 * 1024),
    "compression.type": WIRE_COMPRESSION,
}


def bytes_source(bootstrap: str, topics: list[str], group_id: str,
                 properties: dict[str, str] | None = None, records_are_batches: bool = True) -> KafkaSource:
    """An unbounded KafkaSource of raw value bytes, starting from the committed offsets
    of `group_id` or, for a new group, the earliest offset. (A restore from a checkpoint
    or savepoint uses the offsets in it; offsets are committed to Kafka when a checkpoint
    completes, so a job started anew with the same group goes on where it stopped.)
    `records_are_batches` bounds the fetches for topics of multi-MB flow batches.

    PyFlink's committed_offsets() names the reset strategy by the SHADED class of the
    sql-connector jar; the thin connector jars here carry the unshaded one, so the
    initializer is built on the Java side.
    """
    jvm = get_gateway().jvm
    j_deserializer = (
        jvm.org.apache.flink.connector.kafka.source.reader.deserializer
        .KafkaRecordDeserializationSchema.valueOnly(
            load_java_class("org.apache.kafka.common.serialization.ByteArrayDeserializer")
        )
    )
    builder = (
        KafkaSource.builder()
        .set_bootstrap_servers(bootstrap)
        .set_topics(*topics)
        .set_group_id(group_id)
        .set_starting_offsets(KafkaOffsetsInitializer(
            jvm.org.apache.flink.connector.kafka.source.enumerator.initializer.OffsetsInitializer.committedOffsets(
                jvm.org.apache.kafka.clients.consumer.OffsetResetStrategy.EARLIEST)))
    )
    # PyFlink's set_deserializer takes only its own (pickling) schemas: a raw byte[]
    # deserializer has to be set on the wrapped Java builder.
    builder._j_builder.setDeserializer(j_deserializer)
    defaults = _CONSUMER_PROPERTIES | (_BATCH_CONSUMER_PROPERTIES if records_are_batches else {})
    for key, value in (defaults | (properties or {})).items():
        builder.set_property(key, value)
    return builder.build()


def bytes_sink(bootstrap: str, topic: str, properties: dict[str, str] | None = None) -> KafkaSink:
    """A KafkaSink writing byte[] records unchanged as values (no key) to `topic`.

    AT_LEAST_ONCE: tansu's transactions do not isolate aborted records (measured), so
    outputs carry stable flow ids for consumers to deduplicate instead.
    """
    serializer_builder = KafkaRecordSerializationSchema.builder().set_topic(topic)
    # PyFlink offers no setter for a Kafka value serializer class: set it on the Java builder.
    serializer_builder._j_builder.setKafkaValueSerializer(
        load_java_class("org.apache.kafka.common.serialization.ByteArraySerializer")
    )
    builder = (
        KafkaSink.builder()
        .set_bootstrap_servers(bootstrap)
        .set_record_serializer(serializer_builder.build())
        .set_delivery_guarantee(DeliveryGuarantee.AT_LEAST_ONCE)
    )
    for key, value in (_PRODUCER_PROPERTIES | (properties or {})).items():
        builder.set_property(key, value)
    return builder.build()


class KafkaSinks:
    """The job's Kafka sinks, and the Flink SQL split of Attribute's routed records that
    feeds them (flink_jobs/routing.py), in one table environment whose statement sets are
    attached to the DataStream program.

    The DataStream KafkaSink of PyFlink has no way to take the key from a field, so keyed
    records go through Flink SQL's Kafka connectors. attach(): upsert-kafka, for compacted
    tables (edges, ownership); the record timestamp is the time of writing. attach_log():
    the plain kafka connector, AT_LEAST_ONCE, each record keeping its rowtime (the
    attempt's event time) as its Kafka timestamp: retry and inbound records are read back,
    and their timestamps drive the pending input's watermark (flink_jobs/routing.py).
    `dead_letter`: a DataStream KafkaSink of unkeyed byte[] records."""

    def __init__(self, env, bootstrap: str, properties: dict[str, str] | None, dead_letter):
        from pyflink.table import StreamTableEnvironment

        self.t_env = StreamTableEnvironment.create(env)
        self.bootstrap = bootstrap
        self.properties = _PRODUCER_PROPERTIES | (properties or {})
        self.dead_letter = dead_letter

    def routes(self, stream):
        """A Table of a stream of rows, with each record's timestamp as its `rowtime` (a time
        attribute) and the stream's watermarks: filters on it run in Java, and what they
        pass keeps its event time in attach_log() and values()."""
        from pyflink.table import DataTypes, Schema

        return self.t_env.from_data_stream(stream, Schema.new_builder().column_by_metadata(
            "rowtime", DataTypes.TIMESTAMP_LTZ(3)).watermark("rowtime", "SOURCE_WATERMARK()").build())

    def table(self, stream):
        """A Table of a stream of (record_key, record_value) rows, for attach()."""
        return self.t_env.from_data_stream(stream)

    def values(self, table):
        """A DataStream of Row(record_value, rowtime) from a routes() table, each record
        timestamped with its rowtime, with the table's watermarks."""
        from pyflink.table.expressions import col

        return self.t_env.to_data_stream(table.select(col("record_value"), col("rowtime")))

    def _table(self, topic: str, connector: str, schema, options: dict[str, str]) -> str:
        from pyflink.table import TableDescriptor

        descriptor = (TableDescriptor.for_connector(connector).schema(schema).option("topic", topic)
                      .option("properties.bootstrap.servers", self.bootstrap)
                      .option("key.format", "raw").option("value.format", "raw")
                      .option("value.fields-include", "EXCEPT_KEY"))
        for key, value in options.items():
            descriptor = descriptor.option(key, value)
        for key, value in self.properties.items():
            descriptor = descriptor.option(f"properties.{key}", value)
        name = "sink_" + topic.replace(".", "_").replace("-", "_")
        self.t_env.create_temporary_table(name, descriptor.build())
        return name

    def _insert(self, name: str, table) -> None:
        statements = self.t_env.create_statement_set()
        statements.add_insert(name, table)
        statements.attach_as_datastream()

    def attach(self, table, topic: str) -> None:
        """Upsert a table's (record_key, record_value) to a compacted topic: the latest
        value per key is the table."""
        from pyflink.table import DataTypes, Schema
        from pyflink.table.expressions import col

        schema = (Schema.new_builder().column("record_key", DataTypes.BYTES().not_null())
                  .column("record_value", DataTypes.BYTES()).primary_key("record_key").build())
        self._insert(self._table(topic, "upsert-kafka", schema, {}),
                     table.select(col("record_key"), col("record_value")))

    def attach_log(self, table, topic: str) -> None:
        """Append a routes() table's records to a topic, keyed (Kafka's default
        partitioner: one key, one partition), each with its rowtime as its timestamp."""
        from pyflink.table import DataTypes, Schema
        from pyflink.table.expressions import col

        schema = (Schema.new_builder().column("record_key", DataTypes.BYTES())
                  .column("record_value", DataTypes.BYTES())
                  .column_by_metadata("record_time", DataTypes.TIMESTAMP_LTZ(3), "timestamp").build())
        name = self._table(topic, "kafka", schema, {"key.fields": "record_key",
                                                      "sink.delivery-guarantee": "at-least-once"})
        self._insert(name, table.select(col("record_key"), col("record_value"), col("rowtime")))
