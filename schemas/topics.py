"""Topic names: each region's collector owns one set, named KIND.REGION, so two regions
can share one broker (the demo and tests do). Pure: no Kafka client here (flowattr/stack/topics.py
creates them)."""

from __future__ import annotations

from dataclasses import dataclass

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
