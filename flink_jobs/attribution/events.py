"""IP-change events (Sonar-style) as lower-trust ownership evidence for addresses that run
no exporter (load balancers), restricted to the configured event CIDRs.

Rules (caveats: event times may be late or inaccurate):
* ASSIGNED(ip, W, ta) ... UNASSIGNED(ip, W, tu) gives the range [ta + err, tu - err],
  where err = event_time_error_ms covers inaccurate timestamps;
* an assignment with no unassignment yet is open-ended, but is only usable up to the
  event HORIZON = (latest event time seen) - event_max_delay_ms: an unassignment that
  happened before the horizon would have arrived by now, since events are at most
  event_max_delay_ms late. Flows after the horizon wait (retry);
* an event later than the delay bound breaks that promise: it is counted, and the
  contested span is marked so that nothing after it is attributed from stale state.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flink_jobs.attribution.ranges import OwnershipTable

ASSIGNED, UNASSIGNED = 1, 2  # IpChangeAction values


@dataclass
class _OpenAssignment:
    workload: str
    start_ms: int


@dataclass
class EventTable:
    """Ranges from IP-change events, in their own OwnershipTable (never mixed with heartbeats)."""

    table: OwnershipTable
    time_error_ms: int
    max_delay_ms: int
    latest_event_ms: int = -(2**62)
    late_events: int = 0
    open: dict[bytes, _OpenAssignment] = field(default_factory=dict)
    # Assignments closed before their ASSIGNED arrived (events out of order): ip -> [(tu, W)]
    early_unassigned: dict[bytes, list[tuple[int, str]]] = field(default_factory=dict)

    @property
    def horizon_ms(self) -> int:
        return self.latest_event_ms - self.max_delay_ms

    def observe(self, event_ms: int) -> None:
        """Event time of the stream moves on (every event, whatever its IP: the horizon is
        a promise about the whole stream's delay)."""
        if event_ms < self.horizon_ms:
            self.late_events += 1  # beyond the delay bound: the horizon promise was broken
        self.latest_event_ms = max(self.latest_event_ms, event_ms)

    def apply(self, ip: bytes, workload: str, action: int, event_ms: int) -> None:
        self.observe(event_ms)
        if action == ASSIGNED:
            pending = self.early_unassigned.get(ip, [])
            match = next((p for p in pending if p[1] == workload and p[0] >= event_ms), None)
            if match:
                pending.remove(match)
                self._add(ip, workload, event_ms, match[0])
            else:
                previous = self.open.get(ip)
                if previous is not None and previous.start_ms < event_ms:
                    # Re-assigned without an unassignment in between: close the old one
                    # where the new one starts (the unassignment may still come).
                    self._add(ip, previous.workload, previous.start_ms, event_ms)
                self.open[ip] = _OpenAssignment(workload, event_ms)
        elif action == UNASSIGNED:
            current = self.open.get(ip)
            if current is not None and current.workload == workload and current.start_ms <= event_ms:
                del self.open[ip]
                self._add(ip, workload, current.start_ms, event_ms)
            else:
                self.early_unassigned.setdefault(ip, []).append((event_ms, workload))

    def _add(self, ip: bytes, workload: str, start_ms: int, end_ms: int) -> None:
        s, e = start_ms + self.time_error_ms, end_ms - self.time_error_ms
        if s <= e:
            self.table.learn(ip, workload, s, e)

    def materialize_open(self, ips) -> None:
        """Make the open assignments of `ips` visible as ranges ending at the current horizon.

        Called before attributing flows to these IPs; an open assignment's range only grows
        (the horizon only advances), so re-learning it just extends the same range."""
        end = self.horizon_ms - self.time_error_ms  # the unassignment may be err early
        for ip in ips:
            current = self.open.get(ip)
            if current is not None and current.start_ms + self.time_error_ms <= end:
                self.table.learn(ip, current.workload, current.start_ms + self.time_error_ms, end)
