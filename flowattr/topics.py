"""The project's Kafka topics. Each region's collector owns one set, named KIND.REGION,
so two regions can share one broker (the demo and tests do)."""

from __future__ import annotations

from dataclasses import dataclass

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

DEFAULT_REGION = "us-east-1"


@dataclass(frozen=True)
class RegionTopics:
    region: str

    @property
    def flows(self) -> str:         # FlowBatch from the region's exporters
        return f"flows.{self.region}"

    @property
    def ip_changes(self) -> str:    # IpChangeEvent (Sonar-style) for the region
        return f"ipchanges.{self.region}"

    @property
    def inbound(self) -> str:       # pending AttributedFlowBatch forwarded by other regions
        return f"inbound.{self.region}"

    @property
    def retry(self) -> str:         # pending AttributedFlowBatch to attempt again later
        return f"retry.{self.region}"

    @property
    def attributed(self) -> str:    # AttributedFlowBatch, every flow attributed
        return f"attributed.{self.region}"

    @property
    def unattributed(self) -> str:  # AttributedFlowBatch, every flow unattributed with a reason
        return f"unattributed.{self.region}"

    @property
    def dead_letter(self) -> str:   # DeadLetter: malformed input with its original bytes
        return f"deadletter.{self.region}"

    def all(self) -> dict[str, int]:
        """Topic name -> partitions. Flow topics get more partitions (the bulk of traffic)."""
        return {self.flows: 4, self.inbound: 2, self.retry: 2, self.ip_changes: 1,
                self.attributed: 4, self.unattributed: 2, self.dead_letter: 1}


def create_topics(bootstrap: str, regions: list[str], progress=print) -> list[str]:
    """Create every topic of every region; existing topics are left alone. Returns names."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="flowattr-admin",
                             request_timeout_ms=15000)
    try:
        existing = set(admin.list_topics())
        created = []
        for region in regions:
            for name, partitions in RegionTopics(region).all().items():
                if name in existing:
                    progress(f"topic {name}: exists")
                    continue
                try:
                    admin.create_topics([NewTopic(name, partitions, 1)])
                    created.append(name)
                    progress(f"topic {name}: created with {partitions} partitions")
                except TopicAlreadyExistsError:
                    progress(f"topic {name}: exists")
        return created
    finally:
        admin.close()
