"""IP-change events (Sonar-style) as lower-trust ownership evidence for addresses that run
no exporter (load balancers), restricted to the configured event CIDRs.

The evidence is a function of the SET of events known for an IP, never of their arrival
order: each IP keeps its events sorted by event time and deduplicated by event_id, and
its ranges are recomputed from that set. Assumptions, each enforced here:

* D (event_max_delay_ms): an event arrives within D of its event time. The HORIZON is
  the event stream's time minus D: every event stamped before it has arrived, so the
  state of an IP before the horizon is known; after it, an event still in flight could
  cut a range, so nothing after the horizon is attributed (the flow waits).
* The stream's time is the larger of the driver's watermark (`advance`) and the
  `clock_rank`-th largest emit time seen: fewer than `clock_rank` events stamped in the
  future cannot move it. Events stamped more than `future_bound_ms` after the stream's
  time are rejected (the caller dead-letters them); before the stream has a time they
  wait in a bounded warm-up buffer and are judged when it has one.
* err (event_time_error_ms plus twice the host skew tolerance): a stamped event time
  is within err of the true time. W provably owns the IP at t when t lies in
  [a + err, end - err] after ASSIGNED(W) at a, where `end` is the next event that ends
  W's tenure, and no event within 2 err before a could truly come after it and change
  the owner (see event_ranges). Instants within err of those events are never
  attributed from events.
* An event arriving after the horizon passed its time is LATE (the delay bound was
  broken): counted, and applied so later attempts see it; flows already emitted from
  the old state cannot be recalled (that is the bound's promise).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from flink_jobs.attribution.ranges import IpRanges, WorkloadNames
from schemas import flowattr_pb2 as pb

ASSIGNED, UNASSIGNED = pb.IP_CHANGE_ACTION_ASSIGNED, pb.IP_CHANGE_ACTION_UNASSIGNED
NEVER = -(2**62)

# Outcome of applying one event.
APPLIED, DUPLICATE, LATE, FUTURE, WARMING_UP = "applied", "duplicate", "late", "future", "warming_up"
MAX_EVENTS_PER_IP = 256   # per-IP log bound; the oldest events beyond it are dropped
MAX_WARM_UP_EVENTS = 100_000


@dataclass(frozen=True, order=True)
class LoggedEvent:
    event_ms: int
    action: int
    workload: str
    event_id: str = field(compare=False)
    emit_ms: int = field(compare=False, default=0)


@dataclass
class IpEventLog:
    """One IP's known events, sorted, deduplicated. `dropped_until_ms`: the latest event
    time dropped (pruned or over the cap); an assignment within 2 err after it may have
    been preceded by a change we no longer see, so it is never trusted."""

    events: list[LoggedEvent] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)
    dropped_until_ms: int = NEVER
    full: list[tuple[int, int, int]] | None = None  # ranges with no horizon (cleared on change)
    cached: tuple[int, IpRanges] | None = None      # (horizon, `full` clipped to it)

    def add(self, event: LoggedEvent) -> bool:
        """False if the event is a duplicate (same id, or same content without an id)."""
        key = event.event_id or f"{event.event_ms}/{event.action}/{event.workload}"
        if key in self.ids:
            return False
        self.ids.add(key)
        pos = len(self.events)
        while pos and self.events[pos - 1] > event:
            pos -= 1
        self.events.insert(pos, event)
        self.full = self.cached = None
        return True


def event_ranges(events: list[LoggedEvent], horizon_ms: int, err_ms: int, names: WorkloadNames,
                 dropped_until_ms: int = NEVER) -> IpRanges:
    """The provable ownership ranges of one IP from its sorted events (module docstring).

    W holds the IP from ASSIGNED(W) at a until the first later event that ends it: its
    UNASSIGNED, another workload's ASSIGNED (a re-assignment), or another workload's
    UNASSIGNED more than 2 err after a (inconsistent: trust ends). Provable: [a + err,
    end - err]. Skipped when an event within 2 err before a could truly come after it and
    change the owner (UNASSIGNED(W), ASSIGNED(X)). Assumption: the source assigns an IP
    to one resource at a time, so another workload's UNASSIGNED stamped within 2 err
    before or after a is the previous holder's release, not a contradiction."""
    items: list[tuple[int, int, int]] = []
    for i, e in enumerate(events):
        if e.action != ASSIGNED or e.event_ms >= horizon_ms or e.event_ms - 2 * err_ms <= dropped_until_ms:
            continue
        if any(_changes_owner(f, e.workload) for f in events[:i] if f.event_ms >= e.event_ms - 2 * err_ms):
            continue
        end = horizon_ms
        for f in events[i + 1:]:
            if _changes_owner(f, e.workload) or (f.action == UNASSIGNED and f.event_ms > e.event_ms + 2 * err_ms):
                end = min(f.event_ms, horizon_ms)
                break
        start, last = e.event_ms + err_ms, end - err_ms - 1
        if start > last:
            continue
        owner = names.id(e.workload)
        if items and items[-1][2] == owner and start <= items[-1][1] + 1:  # a re-assertion inside
            items[-1] = (items[-1][0], max(items[-1][1], last), owner)
        else:
            items.append((start, last, owner))
    ranges = IpRanges()
    ranges._set(items)
    return ranges


def _key(event: LoggedEvent) -> str:
    return event_key(event.event_id, event.event_ms, event.action, event.workload)


def _changes_owner(f: LoggedEvent, workload: str) -> bool:
    """Would f, if it truly happened after W's assignment, end W's tenure at once?"""
    return (f.action == UNASSIGNED and f.workload == workload) or (f.action == ASSIGNED and f.workload != workload)


def event_key(event_id: str, event_ms: int, action: int, workload: str) -> str:
    """An event's identity: its id, or (no id) what it says."""
    return event_id or f"{event_ms}/{action}/{workload}"


class StreamClock:
    """The event stream's time: max(driver watermark, rank-th largest emit time seen among
    DISTINCT events). Kafka delivers at least once: one lie delivered `rank` times must
    count once, or it alone would move the time (found by an adversarial review)."""

    def __init__(self, rank: int):
        self.rank = rank
        self.top: list[tuple[int, str]] = []   # min-heap of the `rank` largest (emit time, event key)
        self.keys: set[str] = set()             # the event keys in `top`
        self.watermark_ms = NEVER

    def observe(self, emit_ms: int, key: str) -> None:
        if key in self.keys:
            return  # a duplicate of an event already counted among the largest
        if len(self.top) < self.rank:
            heapq.heappush(self.top, (emit_ms, key))
        elif emit_ms > self.top[0][0]:
            self.keys.discard(heapq.heapreplace(self.top, (emit_ms, key))[1])
        else:
            return
        self.keys.add(key)

    @property
    def emit_times(self) -> list[int]:
        return [emit for emit, _ in self.top]

    @property
    def time_ms(self) -> int:
        return max(self._robust_ms, self.watermark_ms)

    def time_with_watermark_cap(self, cap_ms: int) -> int:
        """time_ms with the driver's watermark counted no further than cap_ms."""
        return max(self._robust_ms, min(self.watermark_ms, cap_ms))

    @property
    def _robust_ms(self) -> int:
        """The rank-th largest emit time seen (NEVER before `rank` events)."""
        return self.top[0][0] if len(self.top) >= self.rank else NEVER

    def event_time(self, emit_ms: int) -> int:
        """An event's time for the job's watermark: its emit time, but never past the
        stream's time (observe it first). The watermark says "every event emitted before
        it has been read", and the attribution of load-balancer flows trusts that: one
        event stamped a day ahead, with its emit time as its timestamp, ran the events
        input's watermark a day ahead, fired every held batch and misattributed hundreds
        of flows (found by the savepoint test). Before `rank` events: NEVER (no advance)."""
        return min(emit_ms, self.time_ms)


class EventTable:
    """Per-IP event logs of the event CIDRs, the stream clock, and counters."""

    def __init__(self, names: WorkloadNames, margin_ms: int, max_delay_ms: int, future_bound_ms: int,
                 clock_rank: int, retention_ms: int):
        """margin_ms: the `err` of the module docstring (timestamp error plus host skew)."""
        self.names = names
        self.margin_ms = margin_ms
        self.max_delay_ms = max_delay_ms
        self.future_bound_ms = future_bound_ms
        self.retention_ms = retention_ms
        self.clock = StreamClock(clock_rank)
        self.logs: dict[bytes, IpEventLog] = {}
        self.warm_up: list[tuple[bytes | None, LoggedEvent]] = []
        self.counts = {APPLIED: 0, DUPLICATE: 0, LATE: 0, FUTURE: 0}
        self.rejected: list[tuple[bytes | None, LoggedEvent]] = []  # FUTURE events judged after warm-up
        self.prune_horizon_ms = NEVER
        # Anything with `latest_of` and `time_ms` (ledger.FleetProgress; the attributor sets
        # it): the horizon is never past the fleet's progress (see horizon_ms). None: no cap.
        self.fleet = None

    @property
    def horizon_ms(self) -> int:
        """The stream's time minus the delay bound, the time capped at the fleet's progress
        when an exporter is known: the driver's watermark may follow one exporter whose
        clock is ahead (a validator that reads only its partitions), and a horizon run
        ahead of the real time by that much settles events still within their delay bound.
        Only the watermark's part is capped, not the events' own emit times (a region whose
        exporters all stopped goes on settling by its events), and only the horizon: the
        clock, its future bound and pruning are not."""
        cap = self.fleet.time_ms if self.fleet is not None and self.fleet.latest_of else None
        t = self.clock.time_ms if cap is None else self.clock.time_with_watermark_cap(cap)
        return NEVER if t == NEVER else t - self.max_delay_ms

    def is_future(self, event: LoggedEvent) -> bool:
        limit = self.clock.time_ms + self.future_bound_ms
        return event.event_ms > limit or event.emit_ms > limit

    def apply(self, ip: bytes | None, event: LoggedEvent) -> str:
        """Apply one event (ip None: outside the event CIDRs, only the clock may move)."""
        if self.clock.time_ms == NEVER:
            if len(self.warm_up) < MAX_WARM_UP_EVENTS:
                self.warm_up.append((ip, event))
                self.clock.observe(event.emit_ms, _key(event))
                if self.clock.time_ms != NEVER:
                    self._flush_warm_up()
                return WARMING_UP
            self._flush_warm_up(force=True)
        return self._judge(ip, event, observe=True)

    def _judge(self, ip: bytes | None, event: LoggedEvent, observe: bool) -> str:
        if self.is_future(event):
            self.counts[FUTURE] += 1
            return FUTURE
        late = event.event_ms < self.horizon_ms
        if observe:
            self.clock.observe(event.emit_ms, _key(event))
        if ip is None:
            return APPLIED
        log = self.logs.get(ip)
        if log is None:
            log = self.logs[ip] = IpEventLog()
        if not log.add(event):
            self.counts[DUPLICATE] += 1
            return DUPLICATE
        if len(log.events) > MAX_EVENTS_PER_IP:
            self._drop_oldest(log, len(log.events) - MAX_EVENTS_PER_IP)
        status = LATE if late else APPLIED
        self.counts[status] += 1
        return status

    def _flush_warm_up(self, force: bool = False) -> None:
        """The clock has a time now (or the buffer is full): judge the buffered events."""
        if force and self.clock.time_ms == NEVER:
            self.clock.watermark_ms = max(e.emit_ms for _, e in self.warm_up)  # best available
        pending, self.warm_up = self.warm_up, []
        for ip, event in pending:
            if self._judge(ip, event, observe=False) == FUTURE:
                self.rejected.append((ip, event))

    def take_rejected(self) -> list[tuple[bytes | None, LoggedEvent]]:
        """FUTURE events found while flushing the warm-up buffer (for the dead-letter output)."""
        out, self.rejected = self.rejected, []
        return out

    def advance(self, watermark_ms: int) -> None:
        """The driver's watermark (all events emitted before it have been applied)."""
        self.clock.watermark_ms = max(self.clock.watermark_ms, watermark_ms)
        if self.warm_up:
            self._flush_warm_up()

    def ranges(self, ip: bytes) -> IpRanges | None:
        log = self.logs.get(ip)
        if log is None:
            return None
        horizon = self.horizon_ms
        if log.cached is None or log.cached[0] != horizon:
            # Ranges at horizon H are the ranges without one, clipped to H - err - 1: an
            # event at or after H can only end a range there, or start one beyond the clip.
            if log.full is None:
                log.full = event_ranges(log.events, 2**62, self.margin_ms, self.names, log.dropped_until_ms).items()
            last = horizon - self.margin_ms - 1
            ranges = IpRanges()
            ranges._set([(s, min(e, last), o) for s, e, o in log.full if s <= last])
            log.cached = (horizon, ranges)
        return log.cached[1]

    def _drop_oldest(self, log: IpEventLog, n: int) -> None:
        dropped, log.events = log.events[:n], log.events[n:]
        for e in dropped:
            log.ids.discard(e.event_id or f"{e.event_ms}/{e.action}/{e.workload}")
        log.dropped_until_ms = max(log.dropped_until_ms, dropped[-1].event_ms)
        log.full = log.cached = None

    def prune(self, now_ms: int) -> list[bytes]:
        """Drop events that can no longer decide any instant after the retention horizon;
        return the IPs whose logs changed (absent from `logs` when emptied)."""
        horizon = now_ms - self.retention_ms
        if horizon <= self.prune_horizon_ms:
            return []
        self.prune_horizon_ms = horizon
        changed = []
        for ip in list(self.logs):
            log = self.logs[ip]
            # Keep the last event before the horizon (it decides the state there) and every
            # event within 2 err before it (any of them could truly be the last change).
            before = [e.event_ms for e in log.events if e.event_ms < horizon]
            if before:
                keep_from = before[-1] - 2 * self.margin_ms
                n = sum(1 for e in log.events if e.event_ms < keep_from)
                if n:
                    self._drop_oldest(log, n)
                    changed.append(ip)
            if log.events and log.events[-1].event_ms < horizon and log.events[-1].action == UNASSIGNED:
                del self.logs[ip]
                changed.append(ip)
        return changed

    def restore(self, ip: bytes | None, events: list[LoggedEvent], dropped_until_ms: int = NEVER) -> None:
        """Rebuild after a restart from saved logs (the clock restored first): events are
        added as they were, except any the restored clock now judges to be from the future
        (the job saves only judged events; this is defence in depth)."""
        if ip is not None:
            log = self.logs.setdefault(ip, IpEventLog())
            log.dropped_until_ms = max(log.dropped_until_ms, dropped_until_ms)
        for event in events:
            if self.clock.time_ms != NEVER and self.is_future(event):
                self.counts[FUTURE] += 1
                continue
            if ip is not None:
                log.add(event)
        if ip is not None and len(log.events) > MAX_EVENTS_PER_IP:
            self._drop_oldest(log, len(log.events) - MAX_EVENTS_PER_IP)

    def range_count(self) -> int:
        return sum(len(self.ranges(ip) or ()) for ip in self.logs)
