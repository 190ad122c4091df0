"""Wiring check job: FlowBatch bytes in through KafkaSource, decoded and validated in
Python (thread mode), re-encoded, out through KafkaSink; undecodable records go to the
dead-letter topic. It proves the Kafka <-> PyFlink path the attribution job builds on.

Example:
    python -m flink_jobs.wiring_job --bootstrap 127.0.0.1:9092 \
        --input flows.us-east-1 --output wiring.us-east-1 --dead-letter deadletter.us-east-1
"""

from __future__ import annotations

import argparse
import time

from pyflink.common import WatermarkStrategy
from pyflink.datastream import OutputTag, ProcessFunction

from flink_jobs.environment import make_environment
from flink_jobs.kafka_connectors import BYTES, bytes_sink, bytes_source
from schemas import flowattr_pb2 as pb
from schemas.columns import BatchFormatError, decode_flow_batch, encode_flow_batch

DEAD_LETTER = OutputTag("dead-letter", BYTES)


class DecodeAndReencode(ProcessFunction):
    def __init__(self, input_topic: str):
        self.input_topic = input_topic

    def process_element(self, value, ctx):
        raw = bytes(value)
        try:
            header, cols = decode_flow_batch(raw)
        except BatchFormatError as exc:
            letter = pb.DeadLetter(source_topic=self.input_topic, original=raw, reason=str(exc),
                                   detected_at_ms=int(time.time() * 1000))
            yield DEAD_LETTER, letter.SerializeToString()
            return
        yield encode_flow_batch(header, cols)


def build_pipeline(env, source, output_sink, dead_letter_sink, input_topic: str) -> None:
    stream = env.from_source(source, WatermarkStrategy.no_watermarks(), "flows")
    checked = stream.process(DecodeAndReencode(input_topic), output_type=BYTES)
    checked.sink_to(output_sink).name("wiring-out")
    checked.get_side_output(DEAD_LETTER).sink_to(dead_letter_sink).name("dead-letter")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--dead-letter", required=True)
    parser.add_argument("--group-id", default="flowattr-wiring")
    parser.add_argument("--parallelism", type=int, default=1)
    args = parser.parse_args(argv)
    env = make_environment(args.parallelism)
    build_pipeline(env, bytes_source(args.bootstrap, [args.input], args.group_id),
                   bytes_sink(args.bootstrap, args.output),
                   bytes_sink(args.bootstrap, args.dead_letter), args.input)
    env.execute("flowattr-wiring")


if __name__ == "__main__":
    # Run through the importable module, so functions are pickled by reference and not
    # by value together with globals that hold live Java objects (state descriptors).
    from flink_jobs import wiring_job

    wiring_job.main()
