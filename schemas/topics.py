"""Topic names: each region's collector owns one set, named KIND.REGION, so two regions
can share one broker (the demo and tests do). Pure: no Kafka client here (flowattr/stack/topics.py
creates them). The default region is the config's (flink_jobs/job_config.py default_regions)."""

from __future__ import annotations

from dataclasses import dataclass

# kind -> (what its records are, partitions). flows: one partition per source reader at
# the default parallelism (2). A reader of two partitions on the embedded broker reads one
# to its end before the other (tansu fills a fetch partition by partition and Kafka's Java
# client kept the same one first, measured), so event time ran a partition ahead of the
# claims not read yet and a pre-loaded backlog's first attempts found no range: 6.4-29 M
# rows retried on the bench's 21.6 M flows at 4 partitions, 1.9 M at 2 (README, "Benchmarks").
KINDS = {
    "flows": ("FlowBatch from the region's exporters", 2),
    "ipchanges": ("IpChangeEvent (Sonar-style) for the region", 1),
    "inbound": ("pending AttributedFlowBatch forwarded by other regions", 2),
    "retry": ("pending AttributedFlowBatch to attempt again later", 2),
    "attributed": ("AttributedFlowBatch, every flow attributed", 4),
    "unattributed": ("AttributedFlowBatch, every flow unattributed with a reason", 2),
    "deadletter": ("DeadLetter: malformed input with its original bytes", 1),
    "edges": ("EdgeRecord per edge and minute of flow start, keyed; compacted: the latest is the total", 2),
    "ownership": ("IpOwnership per IP (or IP:port), keyed by it; compacted: what the collector learned", 2),
}
# Kinds whose topics are compacted (cleanup.policy=compact): a key's latest record is its value.
COMPACTED_KINDS = ("edges", "ownership")
# What a collector reads.
INPUT_KINDS = ("flows", "ipchanges", "retry", "inbound")
# Kinds whose records are AttributedFlowBatch (pending or final).
ATTRIBUTED_BATCH_KINDS = ("attributed", "unattributed", "retry", "inbound")


def kind_of(topic: str) -> str:
    """The KIND of a KIND.REGION topic name ('' when it is not one of ours)."""
    kind = topic.split(".", 1)[0]
    return kind if kind in KINDS and "." in topic else ""


@dataclass(frozen=True)
class RegionTopics:
    region: str

    def of_kind(self, kind: str) -> str:
        """The region's topic of this KIND (one of KINDS)."""
        return f"{kind}.{self.region}"

    @property
    def flows(self) -> str:
        return self.of_kind("flows")

    @property
    def ip_changes(self) -> str:
        return self.of_kind("ipchanges")

    @property
    def inbound(self) -> str:
        return self.of_kind("inbound")

    @property
    def retry(self) -> str:
        return self.of_kind("retry")

    @property
    def attributed(self) -> str:
        return self.of_kind("attributed")

    @property
    def unattributed(self) -> str:
        return self.of_kind("unattributed")

    @property
    def dead_letter(self) -> str:
        return self.of_kind("deadletter")

    @property
    def edges(self) -> str:
        return self.of_kind("edges")

    @property
    def ownership(self) -> str:
        return self.of_kind("ownership")

    def all(self) -> dict[str, int]:
        """Topic name -> partitions, for every kind."""
        return {self.of_kind(kind): partitions for kind, (_, partitions) in KINDS.items()}
