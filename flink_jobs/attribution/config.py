"""Configuration of attribution (one frozen dataclass, shared by the job and evaluation)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from schemas.addresses import HOST_LOCAL_CIDRS


def setting(default, help: str, **metadata):
    """A config field: its default (immutable) and its help (the flag's help; config_model.py)."""
    return field(default=default, metadata={"help": help, **metadata})


@dataclass(frozen=True)
class AttributionConfig:
    """The attribution rules. Each field is a key of the YAML's `attribution:` section and
    a flag of the job (flink_jobs/config_model.py), with the help below."""

    min_reuse_gap_ms: int = setting(
        2_000, "assumption G: an IP is not reused by another workload within this long of its release")
    skew_tolerance_ms: int = setting(
        200, "bound on clock disagreement between two hosts' flow timestamps (skew + handshake)")
    retention_ms: int = setting(
        3 * 3600 * 1000, "how long ownership evidence is kept (and how old a flow may be to be attributed)")
    hold_ms: int = setting(60_000, "hold after a batch's window end before the first attribution attempt")
    retry_delay_ms: int = setting(60_000, "delay between attempts of flows that found no evidence yet")
    max_attempts: int = setting(
        40, "slots of retry_delay_ms on the retry schedule (the first attempt is slot 1): a flow still "
        "undecided at the last slot is emitted unattributed; 40 x 1 min covers the 30-minute event-delay "
        "bound for load-balancer flows")
    retry_backoff: float = setting(
        2.0, "each retry skips ahead on that schedule: after attempt k the next is slot "
        "max(k + 1, ceil(k x this)), the last slot always attempted: 2 attempts slots 1, 2, 4, 8, 16, 32, 40 "
        "(7 attempts instead of 40, the same give-up time); 1 attempts every slot")
    event_cidrs: tuple[str, ...] = setting(
        (), "CIDRs whose addresses run no exporter (load balancers): attributed from IP-change events "
        "only; heartbeats are never learned or used for addresses in them")
    event_max_delay_ms: int = setting(
        30 * 60 * 1000, "bound on IP-change event delay (emit time - event time); beyond it an event is late")
    event_time_error_ms: int = setting(
        5_000, "event timestamps may be off by this much: event ranges are shrunk by it at each end")
    event_future_bound_ms: int = setting(
        10 * 60 * 1000, "an event stamped (event or emit time) more than this after the event stream's time "
        "is a lie about the future: dead-lettered, never evidence, never moves time")
    event_clock_rank: int = setting(
        8, "the event stream's time is at least the N-th largest emit time seen: fewer than N events "
        "stamped in the future cannot move it (events.py)")
    attributable_cidrs: tuple[str, ...] = setting(
        (), "heartbeats are learned only for local IPs in these CIDRs (default: the region's own "
        "region_cidrs; empty in unit tests: any IP neither host-local nor in event_cidrs)")
    known_cidrs: tuple[str, ...] = setting(
        (), "remote IPs in none of these (default: every region's CIDRs and the event CIDRs) are "
        "unattributed OUTSIDE_KNOWN_CIDRS at once")
    host_local_cidrs: tuple[str, ...] = setting(
        HOST_LOCAL_CIDRS, "host-local, non-unique addresses (loopback, link-local, container bridges): "
        "never learned; flows to them are unattributed HOST_LOCAL_ADDRESS")
    exporter_silence_ms: int = setting(
        15 * 60 * 1000, "an exporter whose latest batch is this far behind the fleet's progress is gone "
        "(terminated): its later batches are no longer waited for (ledger.py)")
    fleet_clock_rank: int = setting(
        3, "the fleet's progress is the N-th latest exporter's latest window end, so fewer than N "
        "exporters with clocks far ahead cannot make the others look gone, nor run the watermark or the "
        "load-balancer event horizon ahead (1: no protection from one clock ahead)")
    newcomer_join_ms: int = setting(
        2 * 60 * 1000, "a claimant whose first claim in an IP's subnet (/24, IPv6 /64) came this long after "
        "the subnet's first claim joined it late (a stale IP-map entry on another host looks like this): "
        "flows it would prove also wait for the subnet's other exporters (attributor.py)")
    close_slack_ms: int = setting(
        2_000, "a row's end may lie this far outside its batch window (windows are cut by close time on "
        "the host clock), so settledness looks this much further either way")
    require_settled_evidence: bool = setting(
        True, "false only to MEASURE what settledness costs (flowattr evaluate --without settledness): "
        "it misattributes; the job refuses it", flag=False)
    newcomer_ms: int = setting(10 * 60 * 1000, "how long a late joiner of a subnet stays a newcomer there")
    new_subnet_ms: int = setting(
        15 * 60 * 1000, "a subnet (/24, IPv6 /64) first heard of less than this before the fleet's progress (no "
        "further than the watermark) is new: no flow to it is proven from heartbeats yet, as the true host of a "
        "stale claim's IP may not have been heard from (its batches late, or its partition unread); 0: no wait "
        "(harnesses of short runs)")

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_ms") and value < 0:
                raise ValueError(f"{f.name} is {value}: a duration is never negative")
        for name in ("min_reuse_gap_ms", "retention_ms", "event_max_delay_ms", "exporter_silence_ms"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive (got {getattr(self, name)})")
        if self.skew_tolerance_ms * 3 >= self.min_reuse_gap_ms:
            raise ValueError(
                "skew_tolerance_ms must be well below min_reuse_gap_ms (tolerance + 2 x skew < G); "
                f"got tolerance {self.skew_tolerance_ms} ms, G {self.min_reuse_gap_ms} ms")
        if self.event_clock_rank < 1 or self.fleet_clock_rank < 1 or self.event_future_bound_ms < 0:
            raise ValueError("event_clock_rank >= 1, fleet_clock_rank >= 1 and event_future_bound_ms >= 0 are required")
        if (self.max_attempts < 1 or self.retry_delay_ms <= 0 or self.hold_ms < 0
                or not 1 <= self.retry_backoff <= self.max_attempts):
            raise ValueError("max_attempts >= 1, retry_delay_ms > 0, hold_ms >= 0 and 1 <= retry_backoff <= "
                             "max_attempts are required")
