"""One region's collector decisions as plain code: hold, attempt, retry, forward, give up.

Two drivers call exactly this: the Flink operator (flink_jobs/attribution_job.py), with
Kafka topics between the steps, and `flowattr evaluate`, with a simulated timeline. So
the evaluation judges the code that runs in production.

    batch arrives ──► learn_batch (ledger + heartbeat claims + rejected rows' connections)
                  └─► hold until first_attempt_ms(window end) ──► attempt ─┬─► attributed / unattributed (final)
                                                                          ├─► retry at next_attempt_ms
                                                                          └─► forward to the remote IP's region
    event arrives ──► apply_event (dead-letter it when the status is FUTURE)
    event time    ──► advance(watermark): the event clock, pruning
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from flink_jobs.attribution.attribute import RETRY, Attribution
from flink_jobs.attribution.attributor import Attributor, Pruned
from flink_jobs.attribution.config import AttributionConfig
from flink_jobs.attribution.heartbeats import Claim
from schemas.cidrs import RegionMap
from schemas.columns import FlowColumns

PRUNE_EVERY_MS = 60_000


@dataclass
class AttemptPlan:
    """What to do with one pending batch's flows at one attempt."""

    forward: dict[str, np.ndarray]    # region -> row indices to send there, attempts unchanged
    local: np.ndarray                 # row indices attempted here, aligned with `attribution`
    local_cols: FlowColumns           # those rows (the batch itself when none is forwarded)
    attribution: Attribution | None   # None when no row stayed here
    attempt: int                      # the attempt's slot on the retry schedule (1 = first)
    next_attempt: int                 # the slot the RETRY rows are attempted at next
    next_attempt_ms: int              # when the RETRY rows come due (that slot's time)


def next_attempt(attempt: int, max_attempts: int, backoff: float) -> int:
    """The slot of the attempt after `attempt` (1 = first) on the schedule of max_attempts
    slots of retry_delay_ms: at least the next slot, `backoff` times further along, never
    past the last, so every schedule ends at the same time. Only latency should depend on
    it: evidence that settles a flow stays settled (ledger.py), and the last slot is
    always attempted. The one answer time changes is EXPIRED: Engine.attempt keeps the
    very next slot when a jump would carry a flow past the retention horizon."""
    return min(max(attempt + 1, math.ceil(attempt * backoff)), max_attempts)


def max_retry_wait_ms(cfg: AttributionConfig) -> int:
    """The longest a retry waits for its next slot: no jump is longer than the schedule."""
    return cfg.max_attempts * cfg.retry_delay_ms


def scoped_config(cfg: AttributionConfig, region: str, region_cidrs: dict[str, str]) -> AttributionConfig:
    """The attribution config of one region's collector: heartbeats only for its own CIDRs,
    and every region's CIDRs (plus the event CIDRs) as the known address space."""
    own = tuple(sorted(c for c, r in region_cidrs.items() if r == region))
    return replace(cfg, attributable_cidrs=cfg.attributable_cidrs or own,
                   known_cidrs=cfg.known_cidrs or tuple(sorted(region_cidrs)))


class Engine:
    def __init__(self, cfg: AttributionConfig, region: str, region_cidrs: dict[str, str]):
        self.cfg = scoped_config(cfg, region, region_cidrs)
        self.region = region
        self.attributor = Attributor(self.cfg)
        self.regions = RegionMap(region_cidrs)
        self.other_regions = [r for r in self.regions.regions if r != region]
        self.watermark_ms = -(2**62)
        self.last_prune_ms = -(2**62)

    # -- learning ------------------------------------------------------------------------
    def claims(self, cols: FlowColumns, shared_ips: bytes = b"") -> list[Claim]:
        return self.attributor.claims(cols, shared_ips)

    def rejected_records(self, cols: FlowColumns, valid: np.ndarray) -> list[bytes]:
        return self.attributor.rejected_records(cols, valid)

    def learn_batch(self, exporter: str, sequence: int, window_start_ms: int, window_end_ms: int,
                    claims: list[Claim], part: int = 0, part_count: int = 1,
                    rejected_records: list[bytes] = (), heard_at_ms: int | None = None) -> int:
        """Every accepted batch, empty or not, with the connections of its rejected rows
        and when it arrived by the caller's clock (heard_at_ms: listening time for the
        fleet's silence, attributor.learn_batch); returns new conflicts."""
        return self.attributor.learn_batch(exporter, sequence, window_start_ms, window_end_ms, claims,
                                           part, part_count, rejected_records, heard_at_ms)

    def apply_event(self, ip: bytes, workload: str, action: int, event_ms: int, emit_ms: int,
                    event_id: str) -> str:
        return self.attributor.apply_event(ip, workload, action, event_ms, emit_ms, event_id)

    def advance(self, watermark_ms: int) -> None:
        """Event time reached watermark_ms on every input (events emitted before it arrived)."""
        if watermark_ms > self.watermark_ms:
            self.watermark_ms = watermark_ms
            self.attributor.advance(watermark_ms)

    def prune(self) -> Pruned | None:
        """Drop expired evidence at most every PRUNE_EVERY_MS of event time, by the
        watermark (never by one element's timestamp: one bad time must not expire the
        table). Returns what changed (Attributor.prune), or None when not due."""
        if self.watermark_ms - self.last_prune_ms < PRUNE_EVERY_MS:
            return None
        self.last_prune_ms = self.watermark_ms
        return self.attributor.prune(self.watermark_ms)

    # -- holding and attempts ------------------------------------------------------------
    def first_attempt_ms(self, window_end_ms: int) -> int:
        """The hold: the remote hosts' batches for the same minute arrive meanwhile."""
        return window_end_ms + self.cfg.hold_ms

    def attempt(self, cols: FlowColumns, attempts_made: int, now_ms: int) -> AttemptPlan:
        """Forward the flows whose remote IP is in another region; attempt the rest."""
        rows = np.arange(len(cols))
        forward: dict[str, np.ndarray] = {}
        if self.other_regions and len(cols):
            codes = self.regions.codes_of(cols["remote_ip"])
            stays = np.ones(len(cols), bool)
            for region in self.other_regions:
                away = codes == self.regions.regions.index(region)
                if away.any():
                    forward[region] = rows[away]
                    stays &= ~away
            if forward:
                rows = rows[stays]
        local = cols.take(rows) if len(rows) < len(cols) else cols
        attempt = attempts_made + 1
        attribution = self.attributor.attribute(local, attempt) if len(rows) else None
        following = next_attempt(attempt, self.cfg.max_attempts, self.cfg.retry_backoff)
        if following > attempt + 1 and self._expires_before(local, attribution, now_ms, following - attempt):
            following = attempt + 1
        return AttemptPlan(forward, rows, local, attribution, attempt, following,
                           now_ms + (following - attempt) * self.cfg.retry_delay_ms)

    def _expires_before(self, cols: FlowColumns, attribution: Attribution | None, now_ms: int, slots: int) -> bool:
        """Would a flow to retry fall behind the retention horizon (EXPIRED) by the slot
        `slots` ahead? Then the next slot is the one after this, as without backoff: the
        backoff saves attempts, never a flow's evidence."""
        if attribution is None:
            return False
        retrying = attribution.outcome == RETRY
        if not retrying.any():
            return False
        due_ms = now_ms + slots * self.cfg.retry_delay_ms
        return int(cols["start_ms"][retrying].min()) < due_ms - self.cfg.retention_ms + self.attributor.horizon_reach_ms

    def owner_names(self) -> list[str]:
        """Owner id -> workload name, for an attempt's `attribution.owner`."""
        return self.attributor.names.names
