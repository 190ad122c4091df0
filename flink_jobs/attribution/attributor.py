"""The whole attribution state of one collector, as plain methods the Flink job and the
in-process evaluation both call: learn from batches and events, attribute, prune."""

from __future__ import annotations

import numpy as np

from flink_jobs.attribution.attribute import Attribution, attribute_batch
from flink_jobs.attribution.config import AttributionConfig
from flink_jobs.attribution.events import EventTable
from flink_jobs.attribution.heartbeats import Claim, claims_from_batch
from flink_jobs.attribution.ranges import OwnershipTable, WorkloadNames
from flink_jobs.attribution.regions import CidrSet
from schemas.columns import FlowColumns


class Attributor:
    def __init__(self, cfg: AttributionConfig):
        self.cfg = cfg
        self.names = WorkloadNames()  # shared: owner ids mean the same in both tables
        self.heartbeats = OwnershipTable(cfg.min_reuse_gap_ms, cfg.retention_ms, self.names)
        self.events = EventTable(OwnershipTable(cfg.min_reuse_gap_ms, cfg.retention_ms, self.names),
                                 cfg.event_time_error_ms, cfg.event_max_delay_ms)
        self.event_cidrs = CidrSet(cfg.event_cidrs)

    def claims(self, cols: FlowColumns) -> list[Claim]:
        """Heartbeat claims of a batch (never for event-only CIDRs)."""
        return claims_from_batch(cols, self.cfg.min_reuse_gap_ms,
                                 exclude=self.event_cidrs.contains(cols["local_ip"]))

    def learn_claims(self, claims: list[Claim]) -> int:
        """Apply claims; return the number of new conflicts."""
        return sum(self.heartbeats.learn(c.ip, c.workload, c.start_ms, c.end_ms).conflicts
                   for c in claims)

    def apply_event(self, ip: bytes, workload: str, action: int, event_ms: int) -> bool:
        """Apply an IP-change event; False if its IP is outside the event CIDRs (such IPs
        are never attributed from events: only the stream's event time is taken)."""
        if not self.event_cidrs.contains(np.frombuffer(ip, np.uint8).reshape(1, 16))[0]:
            self.events.observe(event_ms)
            return False
        self.events.apply(ip, workload, action, event_ms)
        return True

    def attribute(self, cols: FlowColumns, attempt: int) -> Attribution:
        return attribute_batch(cols["remote_ip"], cols["start_ms"], cols["end_ms"], attempt,
                               self.heartbeats, self.events, self.event_cidrs, self.cfg)

    def owner_names(self, owner: np.ndarray) -> list[str]:
        return [self.names.names[o] if o >= 0 else "" for o in owner.tolist()]

    def prune(self, now_ms: int) -> int:
        return self.heartbeats.prune(now_ms) + self.events.table.prune(now_ms)
