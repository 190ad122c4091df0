"""Configuration of attribution (one frozen dataclass, shared by the job and evaluation)."""

from __future__ import annotations

from dataclasses import dataclass, field

from schemas.addresses import HOST_LOCAL_CIDRS


@dataclass(frozen=True)
class AttributionConfig:
    # Assumption G: an IP is not reused by another workload within this long of its release.
    min_reuse_gap_ms: int = 2_000
    # Bound on clock disagreement between two hosts' flow timestamps (skew + handshake).
    skew_tolerance_ms: int = 200
    # How long ownership evidence is kept (and how old a flow may be to be attributed).
    retention_ms: int = 3 * 3600 * 1000
    # Hold after a batch's window end before the first attribution attempt.
    hold_ms: int = 60_000
    # Delay between attribution attempts of flows that found no evidence yet.
    retry_delay_ms: int = 60_000
    # Attempts (first + retries) before a flow is emitted as unattributed. 40 x 1 min covers
    # the 30-minute event-delay bound below for load-balancer flows.
    max_attempts: int = 40
    # CIDRs whose addresses run no exporter (load balancers): attributed from IP-change
    # events only. Heartbeats are never learned or used for addresses in them.
    event_cidrs: tuple[str, ...] = field(default_factory=tuple)
    # Bound on IP-change event delay (emit time - event time); beyond it an event is late.
    event_max_delay_ms: int = 30 * 60 * 1000
    # Event timestamps may be off by this much: event ranges are shrunk by it at each end.
    event_time_error_ms: int = 5_000
    # An event stamped (event or emit time) more than this after the event stream's time is
    # a lie about the future: rejected (dead-lettered), never evidence, never moves time.
    event_future_bound_ms: int = 10 * 60 * 1000
    # The stream's time is at least the N-th largest emit time seen: fewer than N events
    # stamped in the future cannot move the horizon (see events.py).
    event_clock_rank: int = 8
    # Heartbeats are learned only for local IPs inside these CIDRs (the region's own VPC
    # ranges; the job and the evaluation derive them from region_cidrs). Empty: any IP
    # that is neither host-local nor in event_cidrs (unit tests).
    attributable_cidrs: tuple[str, ...] = field(default_factory=tuple)
    # Remote IPs in none of these (every region's CIDRs and the event CIDRs) can have no
    # evidence: unattributed OUTSIDE_KNOWN_CIDRS at the first attempt. Empty: all known.
    known_cidrs: tuple[str, ...] = field(default_factory=tuple)
    # Host-local, non-unique addresses (loopback, link-local, container bridges): never
    # learned, and flows to them are unattributed HOST_LOCAL_ADDRESS.
    host_local_cidrs: tuple[str, ...] = HOST_LOCAL_CIDRS
    # An exporter whose latest batch is this far behind the fleet's is gone (terminated):
    # batches after its latest are no longer waited for (see ledger.py).
    exporter_silence_ms: int = 15 * 60 * 1000
    # ... behind the fleet's progress: the N-th latest exporter's latest window end, so
    # fewer than N exporters with clocks far ahead cannot make the others look gone.
    fleet_clock_rank: int = 3
    # A claimant whose first claim in an IP's subnet (/24, IPv6 /64) came this long after
    # the subnet's first claim joined it late (a stale IP-map entry on another host looks
    # like this) and is a newcomer there for newcomer_ms: flows it would prove also wait
    # for the subnet's other exporters (attributor.py). Not caught: such a stale entry in
    # the first newcomer_join_ms of a collector's state.
    newcomer_join_ms: int = 2 * 60 * 1000
    # A row's end may lie this far outside its batch window (windows are cut by close time
    # on the host clock; rows.py allows it): the other side of a connection may be in the
    # neighbouring window, so settledness looks this much further either way.
    close_slack_ms: int = 2_000
    # False only to MEASURE what settledness costs (`flowattr evaluate --without
    # settledness`): heartbeat evidence is then used before contradicting claims could
    # arrive, which misattributes. Never off in the job.
    require_settled_evidence: bool = True
    newcomer_ms: int = 10 * 60 * 1000

    def __post_init__(self):
        if self.skew_tolerance_ms * 3 >= self.min_reuse_gap_ms:
            raise ValueError(
                "skew_tolerance_ms must be well below min_reuse_gap_ms (tolerance + 2 x skew < G); "
                f"got tolerance {self.skew_tolerance_ms} ms, G {self.min_reuse_gap_ms} ms")
        if self.event_clock_rank < 1 or self.fleet_clock_rank < 1 or self.event_future_bound_ms < 0:
            raise ValueError("event_clock_rank >= 1, fleet_clock_rank >= 1 and event_future_bound_ms >= 0 are required")
        if self.max_attempts < 1 or self.retry_delay_ms <= 0 or self.hold_ms < 0:
            raise ValueError("max_attempts >= 1, retry_delay_ms > 0 and hold_ms >= 0 are required")
