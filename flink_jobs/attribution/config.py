"""Configuration of attribution (one frozen dataclass, shared by the job and evaluation)."""

from __future__ import annotations

from dataclasses import dataclass, field


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

    def __post_init__(self):
        if self.skew_tolerance_ms * 3 >= self.min_reuse_gap_ms:
            raise ValueError(
                "skew_tolerance_ms must be well below min_reuse_gap_ms (tolerance + 2 x skew < G); "
                f"got tolerance {self.skew_tolerance_ms} ms, G {self.min_reuse_gap_ms} ms")
        if self.max_attempts < 1 or self.retry_delay_ms <= 0 or self.hold_ms < 0:
            raise ValueError("max_attempts >= 1, retry_delay_ms > 0 and hold_ms >= 0 are required")
