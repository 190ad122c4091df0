"""The whole ownership state of one collector, as plain methods the Flink job and the
in-process evaluation both call: learn from batches and events, attribute, prune.

Address scope (each rule is a reason of its own, decided at the first attempt):
* remote IPs in `host_local_cidrs` name no single workload: HOST_LOCAL_ADDRESS;
* remote IPs outside `known_cidrs` (every region and the event CIDRs) can have no
  evidence at all: OUTSIDE_KNOWN_CIDRS;
* heartbeats are learned only for local IPs in `attributable_cidrs` (the region's VPC
  ranges) that are neither host-local nor event-only;
* a port-shared IP (any PORT_MAP claim on it) is attributed by (IP, remote port) only,
  for flows from its first port claim on (minus the tolerance).
Heartbeat evidence must be SETTLED (ledger.py); event evidence must lie before the
event horizon (events.py).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from flink_jobs.attribution.attribute import (
    ATTRIBUTED,
    CONFLICT,
    EXPIRED,
    HOST_LOCAL,
    INVALID_TIME,
    NO_EVIDENCE,
    OUTSIDE,
    REJECTED,
    RETRY,
    UNATTRIBUTED,
    UNSETTLED,
    UNSETTLED_EVENTS,
    Attribution,
    distinct_ips,
    lookup_ip,
    search,
)
from flink_jobs.attribution.config import AttributionConfig
from flink_jobs.attribution.events import EventTable, LoggedEvent
from flink_jobs.attribution.heartbeats import Claim, claims_from_batch
from flink_jobs.attribution.ledger import ExporterLedger, FleetProgress
from flink_jobs.attribution.ranges import (
    PORT_KEY_BYTES,
    UNRESOLVED,
    OwnershipTable,
    WorkloadNames,
    port_key,
    subnet_key,
)
from flink_jobs.attribution.rejected import RejectedEvidence, records_of
from schemas import flowattr_pb2 as pb
from schemas.cidrs import CidrSet
from schemas.columns import FlowColumns

NEVER = -(2**62)


class Pruned(NamedTuple):
    """What one prune changed, by state key kind (ownership_store.py writes them)."""

    heartbeat_keys: list[bytes]
    exporters: list[str]
    event_ips: list[bytes]
    subnets: list[bytes]
    rejected_ips: list[bytes]  # local IPs whose lost records changed


class Attributor:
    def __init__(self, cfg: AttributionConfig):
        self.cfg = cfg
        self.names = WorkloadNames()  # shared: owner ids mean the same in both tables
        self.heartbeats = OwnershipTable(cfg.min_reuse_gap_ms, cfg.retention_ms, self.names)
        # Event ranges are shrunk by the timestamp error plus twice the host skew tolerance:
        # the flow's own start is on a host clock, and the lookup allows the tolerance.
        self.events = EventTable(self.names, cfg.event_time_error_ms + 2 * cfg.skew_tolerance_ms,
                                 cfg.event_max_delay_ms,
                                 cfg.event_future_bound_ms, cfg.event_clock_rank, cfg.retention_ms)
        self.ledger = ExporterLedger(cfg.exporter_silence_ms, cfg.fleet_clock_rank)
        # The fleet's progress over EVERY exporter this collector learned from (the job's
        # validators each see only their partitions' exporters): it caps the event horizon
        # (events.py), so one exporter with a clock ahead, alone among a validator's
        # partitions, cannot settle IP-change events still in flight. Exporters silent for
        # exporter_silence_ms of listening time (FleetProgress) are forgotten, so a
        # shrinking fleet does not freeze it; and the ledger calls them gone.
        self.fleet = FleetProgress(cfg.fleet_clock_rank, silence_ms=cfg.exporter_silence_ms)
        self.events.fleet = self.ledger.fleet = self.fleet
        self.watermark_ms = NEVER  # the driver's (advance)
        self.rejected = RejectedEvidence()
        self.event_cidrs = CidrSet(cfg.event_cidrs)
        self.host_local = CidrSet(cfg.host_local_cidrs)
        self.attributable = CidrSet(cfg.attributable_cidrs) if cfg.attributable_cidrs else None
        self.known = CidrSet(tuple(cfg.known_cidrs) + tuple(cfg.event_cidrs)) if cfg.known_cidrs else None

    # -- learning ------------------------------------------------------------------------
    def _outside_claim_scope(self, local: np.ndarray) -> np.ndarray:
        """Local IPs never learned from heartbeats (see module doc)."""
        exclude = self.event_cidrs.contains(local) | self.host_local.contains(local)
        if self.attributable is not None:
            exclude |= ~self.attributable.contains(local)
        return exclude

    def claims(self, cols: FlowColumns, shared_ips: bytes = b"") -> list[Claim]:
        """Heartbeat claims of a batch: only for attributable local IPs (see module doc);
        shared_ips: its header's port_shared_ips (heartbeats.claims_from_batch)."""
        return claims_from_batch(cols, self.cfg.min_reuse_gap_ms, exclude=self._outside_claim_scope(cols["local_ip"]),
                                 shared_ips=shared_ips)

    def rejected_records(self, cols: FlowColumns, valid: np.ndarray) -> list[bytes]:
        """The connections (rejected.records_of) of a batch's rejected rows (~valid) whose
        local IP is in the claim scope: their records are lost (rejected.py)."""
        lost = ~np.asarray(valid, bool) & ~self._outside_claim_scope(cols["local_ip"])
        return records_of(cols["local_ip"][lost], cols["remote_ip"][lost], cols["local_port"][lost],
                          cols["remote_port"][lost], cols["end_ms"][lost])

    def learn_claims(self, claims: list[Claim], exporter: str = "", learned_at_ms: int | None = None) -> int:
        """Apply claims (of one exporter's batch); return the number of new conflicts."""
        # The subnet's first-heard time: the window, or the fleet's progress if later (a
        # late batch must not make a subnet look old). The fleet's clock, not the wait's:
        # the watermark may lag far behind and then catch up by the whole wait at once,
        # and a later learning at a lagging watermark would lower the time (a review's
        # attacks, tests/unit/test_new_subnet_attack_clocks.py).
        heard = None if learned_at_ms is None else max(learned_at_ms, self.fleet.time_ms)
        return sum(self.heartbeats.learn(c.key, c.workload, c.start_ms, c.end_ms, exporter, learned_at_ms,
                                         heard_ms=heard).conflicts for c in claims)

    def learn_batch(self, exporter: str, sequence: int, window_start_ms: int, window_end_ms: int,
                    claims: list[Claim], part: int = 0, part_count: int = 1,
                    rejected_records: list[bytes] = (), heard_at_ms: int | None = None) -> int:
        """A batch arrived (possibly empty): record it in the ledger, learn its claims and
        the connections of its rejected rows (those records, closed in the window +- the
        close slack, are lost). A duplicate delivery (same exporter and sequence) only re-learns
        idempotent claims and losses. heard_at_ms: when it arrived, by the caller's clock
        (listening time for the silence; None: heard at the listening time so far, and the
        ledger keeps judging gone by event time, as in tests without a clock)."""
        self.ledger.record(exporter, sequence, window_start_ms, window_end_ms, part, part_count)
        self.fleet.note(exporter, window_end_ms, heard_at_ms)
        # Who is alive may have changed (someone forgotten, or a gone exporter back, even
        # by a duplicate the ledger ignored): the ledger's cached spans are stale. A review
        # found a duplicate reviving a gone exporter while the cache kept it gone.
        self.ledger.version += 1
        self.rejected.add_batch(rejected_records, window_start_ms, window_end_ms, self.cfg.close_slack_ms)
        return self.learn_claims(claims, exporter, learned_at_ms=window_start_ms)

    def apply_event(self, ip: bytes, workload: str, action: int, event_ms: int, emit_ms: int | None = None,
                    event_id: str = "") -> str:
        """Apply an IP-change event; returns its status (events.APPLIED, DUPLICATE, LATE,
        FUTURE: dead-letter it, WARMING_UP). IPs outside the event CIDRs are never evidence:
        such events only move the stream's clock."""
        event = LoggedEvent(event_ms, action, workload, event_id, event_ms if emit_ms is None else emit_ms)
        inside = bool(self.event_cidrs.contains(np.frombuffer(ip, np.uint8).reshape(1, 16))[0])
        return self.events.apply(ip if inside else None, event)

    def advance(self, watermark_ms: int) -> None:
        """Event time has passed watermark_ms for every input (driver's watermark)."""
        self.watermark_ms = max(self.watermark_ms, watermark_ms)
        self.events.advance(watermark_ms)

    def restore_fleet(self, heard_at_ms: int) -> None:
        """After a restore: the fleet's progress from the ledger (each exporter's latest
        window end), every exporter heard at heard_at_ms (forgotten if silent from then on)."""
        for exporter, runs in self.ledger.runs.items():
            if runs:
                self.fleet.note(exporter, max(r.last_end_ms for r in runs), heard_at_ms)

    # -- attribution ---------------------------------------------------------------------
    def attribute(self, cols: FlowColumns, attempt: int) -> Attribution:
        """Attribute a batch's REMOTE IPs on attempt number `attempt` (1 = first)."""
        n = len(cols)
        if not n:
            empty = np.zeros(0, np.int64)
            return Attribution(empty.astype(np.uint8), empty, empty.astype(np.uint8), empty, empty,
                               empty.astype(np.uint8))
        remote, starts, ends = cols["remote_ip"], np.asarray(cols["start_ms"], np.int64), cols["end_ms"]
        # Address classes per DISTINCT remote IP, then gathered per row: a batch has far
        # fewer IPs than flows.
        ips, inverse = distinct_ips(remote)
        ip_rows = np.frombuffer(b"".join(ips), np.uint8).reshape(-1, 16)
        ip_event = self.event_cidrs.contains(ip_rows)
        by_event = ip_event[inverse]
        segment, keys = self._segments(ips, inverse, ip_event, cols["remote_port"], starts)
        parts, sizes = [], []
        for key, evented in keys:
            ranges = self.events.ranges(key) if evented else self.heartbeats.by_ip.get(key)
            sizes.append(len(ranges) if ranges is not None else 0)
            if ranges is not None and len(ranges):
                parts.append(ranges.arrays())
        rs, re_, ro = ((np.concatenate([p[c] for p in parts]) for c in range(3)) if parts
                       else (_EMPTY, _EMPTY, _EMPTY))
        offsets = np.zeros(len(keys) + 1, np.int64)
        np.cumsum(sizes, out=offsets[1:])
        owner, ev_start, ev_end, reason = search(rs, re_, ro, offsets, segment, starts, self.cfg.skew_tolerance_ms)
        final = (owner < 0) & (reason != NO_EVIDENCE)  # CONFLICT, CLOCK_SKEW: no later attempt changes them
        # Held by a workload its host did not resolve (heartbeats.UNRESOLVED): nobody can
        # say which, and no later attempt will.
        unresolved = owner == self.names.ids.get(UNRESOLVED, -2)
        owner[unresolved], reason[unresolved], final[unresolved] = -1, NO_EVIDENCE, True
        hidden = self._claimed_whole_by_others(keys, segment, starts, owner)
        owner[hidden], reason[hidden], final[hidden] = -1, CONFLICT, True
        if self.cfg.require_settled_evidence:
            unsettled = self._unsettled(keys, segment, starts, ends, owner >= 0)
            lost = self._rejected(keys, segment, cols, ends, owner >= 0)
        else:
            unsettled = lost = np.zeros(n, bool)
        # Event ranges end at the horizon only because later events may still be in flight:
        # a flow near or after it waits, whatever the lookup found.
        after_horizon = by_event & (starts + self.events.margin_ms >= self.events.horizon_ms)
        for mask, why, is_final in (
                (unsettled & ~by_event, UNSETTLED, False),
                (lost & ~by_event, REJECTED, True),
                (after_horizon, UNSETTLED_EVENTS, False),
                (by_event & ~after_horizon & (owner < 0) & (reason == NO_EVIDENCE), NO_EVIDENCE, True),
                (starts < np.where(by_event, *self._expired_before()), EXPIRED, True),
                (self._outside(ip_rows)[inverse], OUTSIDE, True),
                (self.host_local.contains(ip_rows)[inverse], HOST_LOCAL, True),
                (ends < starts, INVALID_TIME, True)):
            owner[mask], reason[mask], final[mask] = -1, why, is_final
        attributed = owner >= 0
        reason[attributed] = 0
        retry = ~attributed & ~final & (attempt < self.cfg.max_attempts)
        outcome = np.where(attributed, ATTRIBUTED, np.where(retry, RETRY, UNATTRIBUTED)).astype(np.uint8)
        source = np.where(attributed, np.where(by_event, pb.EVIDENCE_SOURCE_IP_CHANGE_EVENT,
                                               pb.EVIDENCE_SOURCE_HEARTBEAT), 0).astype(np.uint8)
        ev_start[~attributed] = 0
        ev_end[~attributed] = 0
        return Attribution(outcome, owner, source, ev_start, ev_end, reason)

    def _expired_before(self) -> tuple[int, int]:
        """(event, heartbeat): flows starting before these are EXPIRED. The horizon is the
        watermark's (now - retention), not only the last prune's: a restored table was
        pruned at a horizon the state does not keep, and would decide flows before it from
        clipped ranges (an adversarial review's attack). Heartbeat ranges before the horizon
        are gone, but a lookup reaches back by the skew tolerance, joining by G and
        settledness by the close slack: a flow in that reach after the horizon could be
        decided otherwise with them, so it expires as well."""
        floor = self.watermark_ms - self.cfg.retention_ms if self.watermark_ms != NEVER else NEVER
        return (max(self.events.prune_horizon_ms, floor),
                max(self.heartbeats.horizon_ms, floor) + self.horizon_reach_ms)

    @property
    def horizon_reach_ms(self) -> int:
        """How far past the retention horizon a pruned heartbeat range could still decide
        a flow: the lookup's tolerance, joining across G, settledness's close slack."""
        return self.cfg.min_reuse_gap_ms + self.cfg.skew_tolerance_ms + self.cfg.close_slack_ms

    def _claimed_whole_by_others(self, keys, segment: np.ndarray, starts: np.ndarray,
                                 owner: np.ndarray) -> np.ndarray:
        """Rows attributed by (IP, port) while an exporter that claimed the whole IP and not
        this port (it holds the IP after a move, or runs an exporter that declares nothing)
        has its evidence hidden from the port's lookup (helper-33's attack): contested when
        the whole IP's ranges within the tolerance are not the port owner's alone."""
        out = np.zeros(len(starts), bool)
        if not self.heartbeats.port_shared:
            return out
        tol, claimants = self.cfg.skew_tolerance_ms, self.heartbeats.claimants
        for k, rows in rows_by_key(segment, owner >= 0):
            key, evented = keys[k]
            if evented or len(key) != PORT_KEY_BYTES:
                continue
            others = claimants.get(key[:16], frozenset()) - claimants.get(key, frozenset())
            if not others or key[:16] not in self.heartbeats.by_ip:
                continue
            # The whole IP's own lookup: one owner within the tolerance (reason 0), none
            # (NO_EVIDENCE), or contested or two owners near (CONFLICT, CLOCK_SKEW).
            whole, _, _, why = lookup_ip(self.heartbeats.by_ip[key[:16]], starts[rows], tol, NEVER)
            out[rows] = (why != NO_EVIDENCE) & (whole != owner[rows])
        return out

    def _outside(self, remote: np.ndarray) -> np.ndarray:
        return ~self.known.contains(remote) if self.known is not None else np.zeros(len(remote), bool)

    def _segments(self, ips: list[bytes], inverse: np.ndarray, ip_event: np.ndarray, ports: np.ndarray,
                  starts: np.ndarray):
        """Per row, the index of its lookup key; keys: [(key, is_event_ip)]. A row's key is
        its remote IP (ips[inverse[row]]; ip_event: each IP in the event CIDRs), or (IP,
        port) when the IP is port-shared at the row's time."""
        keys = [(ip, bool(e)) for ip, e in zip(ips, ip_event.tolist(), strict=True)]
        shared = self.heartbeats.port_shared
        if not shared:
            return inverse, keys
        segment = inverse.copy()
        for k, ip in enumerate(ips):
            span = shared.get(ip)
            if span is None:
                continue
            rows = np.flatnonzero((inverse == k) & (starts >= span[0] - self.cfg.skew_tolerance_ms))
            port_index: dict[int, int] = {}
            for row, port in zip(rows.tolist(), ports[rows].tolist(), strict=True):
                if port not in port_index:
                    port_index[port] = len(keys)
                    keys.append((port_key(ip, port), False))
                segment[row] = port_index[port]
        return segment, keys

    def _unsettled(self, keys, segment: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                   candidates: np.ndarray) -> np.ndarray:
        """Rows whose heartbeat evidence is not settled (ledger.py): an exporter that could
        hold the other side of the connection may still have a batch missing for the
        window of its end. Those exporters: every claimant of the row's key (waited for
        until the last attempt); and when a claimant is a NEWCOMER to the IP's subnet
        (its first claim there came newcomer_join_ms after the subnet's first, and less
        than newcomer_ms before the flow), every other exporter that has claimed there (a
        stale entry on another host, on an IP its true host has not claimed yet, must not
        win because the true host's batch is late)."""
        tol = self.cfg.skew_tolerance_ms + self.cfg.close_slack_ms
        subnets = self.heartbeats.subnets
        new_after = self._new_subnets_after()
        new = np.zeros(len(keys), bool)     # per key: its subnet is new (every row waits)
        # Span sets to test (a key's claimants; a newcomer key's subnet), each searched by
        # all its rows at once (SpanSearch): per key only dict lookups, no numpy call.
        search = SpanSearch()
        claimant_set = np.full(len(keys), -1, np.int64)   # per key: its claimants' span set
        subnet_set = np.full(len(keys), -1, np.int64)     # per key: its subnet's, if a newcomer claims it
        newcomer_until = np.full(len(keys), NEVER, np.int64)  # ... for rows starting before this
        for k in np.unique(segment[candidates]).tolist():
            key, evented = keys[k]
            claimants = self.heartbeats.claimants.get(key)
            if evented or not claimants:
                continue
            claimant_set[k] = search.add(self.ledger.union_spans(claimants, (key, len(claimants))))
            subnet_id = subnet_key(key[:16])
            subnet = subnets.get(subnet_id)
            if subnet is None:  # claimed without an exporter id (tests): no subnet
                continue
            heard = subnet.first_ms if subnet.heard_ms is None else subnet.heard_ms
            new[k] = heard > new_after
            # Joined late: first named claim there well after the subnet's first claim of
            # any kind (at a collector's start every exporter is new; a stale entry on
            # another host joins later). Subnet's docstring: why two join times.
            late_from = subnet.first_ms + self.cfg.newcomer_join_ms
            joined = [subnet.named[c] for c in claimants if subnet.named.get(c, NEVER) > late_from]
            if joined:  # the subnet's exporters, claimants included (a superset)
                members = subnet.joined
                subnet_set[k] = search.add(self.ledger.union_spans(members, (subnet_id, len(members))))
                newcomer_until[k] = max(joined) + self.cfg.newcomer_ms
        rows = np.flatnonzero(candidates)
        key_of = segment[rows]
        newcomer = (subnet_set[key_of] >= 0) & (starts[rows] < newcomer_until[key_of])
        query_rows = np.concatenate((rows, rows[newcomer]))
        query_set = np.concatenate((claimant_set[key_of], subnet_set[key_of][newcomer]))
        asked = query_set >= 0
        query_rows, query_set = query_rows[asked], query_set[asked]
        out = np.zeros(len(starts), bool)
        hit = search.overlaps(query_set, ends[query_rows] - tol, ends[query_rows] + tol)
        out[query_rows[hit]] = True
        out[rows[new[key_of]]] = True
        return out

    def _new_subnets_after(self) -> int:
        """Subnets first heard of after this time are new: no flow to them is settled.
        Settledness waits only for exporters heard from, and the newcomer rule needs the
        subnet's true host known. In a subnet first heard of through a stale claim (a
        collector's start, a fleet coming back, a host whose first batches are late or in a
        partition not read yet), the true host may be unknown: a busy fleet's replay
        misattributed 43 flows without this (flowattr bench's data: a stale claim in the
        first minute, the true host's first three batches two minutes late). A subnet is
        first heard of at its first claim's window, or at the fleet's progress then if
        later (learn_claims), and stays new until _wait_clock_ms is new_subnet_ms past
        that: both the fleet and the watermark have moved on. Only with a listening clock (callers
        giving heard_at_ms: the job, the replay), as the silence is; unit tests of the
        other rules give none."""
        if not self.cfg.new_subnet_ms or self.fleet.last_now_ms is None:
            return 2**62
        return self._wait_clock_ms() - self.cfg.new_subnet_ms

    def _wait_clock_ms(self) -> int:
        """The new-subnet wait's clock, in event time as the retry schedule is: the fleet's
        progress, no further than the driver's watermark once there is one (the job's
        follows every input; the fleet's, the claims read first, maybe of one partition)."""
        fleet = self.fleet.time_ms
        return fleet if self.watermark_ms == NEVER else min(fleet, self.watermark_ms)

    def _rejected(self, keys, segment: np.ndarray, cols: FlowColumns, ends: np.ndarray,
                  candidates: np.ndarray) -> np.ndarray:
        """Rows whose other side may be a rejected record: one of the same connection
        closed near the row's end (+- tolerance and close slack, as _unsettled looks).
        Never settled (rejected.py)."""
        out = np.zeros(len(ends), bool)
        if not self.rejected.by_ip:
            return out
        tol = self.cfg.skew_tolerance_ms + self.cfg.close_slack_ms
        for k, rows in rows_by_key(segment, candidates):
            key, evented = keys[k]
            if evented or key[:16] not in self.rejected.by_ip:
                continue
            out[rows] = self.rejected.overlaps(key[:16], cols["local_ip"][rows], cols["local_port"][rows],
                                               cols["remote_port"][rows], ends[rows] - tol, ends[rows] + tol)
        return out

    def owner_names(self, owner: np.ndarray) -> list[str]:
        return [self.names.names[o] if o >= 0 else "" for o in owner.tolist()]

    def prune(self, now_ms: int) -> Pruned:
        """Drop evidence older than the retention; return what changed (each absent from
        its table when emptied)."""
        keys = self.heartbeats.prune_changed(now_ms)
        exporters = self.ledger.prune(now_ms - self.cfg.retention_ms)
        rejected = self.rejected.prune(now_ms - self.cfg.retention_ms)
        subnets = []
        for subnet_id, subnet in list(self.heartbeats.subnets.items()):
            # Exporters the ledger forgot leave their subnets (nothing of theirs to wait
            # for); the subnet keeps its first join (Subnet.first_ms).
            gone = [e for e in subnet.joined if e not in self.ledger.runs]
            if gone or not subnet.joined:   # (no member at all: restored from an "sn:" value)
                subnet.forget(gone)
                subnets.append(subnet_id)
                if not subnet.joined:
                    del self.heartbeats.subnets[subnet_id]
        return Pruned(keys, exporters, self.events.prune(now_ms), subnets, rejected)


_EMPTY = np.zeros(0, np.int64)


def rows_by_key(segment: np.ndarray, candidates: np.ndarray):
    """(k, rows) for every key index k of a candidate row: the candidate rows whose
    segment is k, ascending. One sort, instead of a pass over every row per key."""
    rows = np.flatnonzero(candidates)
    if not len(rows):
        return
    order = np.argsort(segment[rows], kind="stable")
    rows, sorted_keys = rows[order], segment[rows][order]
    cuts = np.flatnonzero(np.diff(sorted_keys)) + 1
    starts = np.concatenate(([0], cuts)).tolist()
    ends = np.concatenate((cuts, [len(rows)])).tolist()
    for k, lo, hi in zip(sorted_keys[starts].tolist(), starts, ends, strict=True):
        yield k, rows[lo:hi]


class SpanSearch:
    """Several span sets (ledger.union_spans: starts sorted, running maximum of the ends),
    searched together: query i asks whether set[i] has a span [a, b] with a <= hi[i] and
    b >= lo[i]. One lexsort of every span and query by (set, position, spans first), so
    the spans of a query's set starting at or before its hi are the ones counted just
    before it, and the last of them holds the largest end among them."""

    def __init__(self):
        self.starts: list[np.ndarray] = []
        self.ends: list[np.ndarray] = []

    def add(self, spans: tuple[np.ndarray, np.ndarray]) -> int:
        """The index of a new set; -1 (never asked) when it has no span."""
        if not len(spans[0]):
            return -1
        self.starts.append(spans[0])
        self.ends.append(spans[1])
        return len(self.starts) - 1

    def overlaps(self, sets: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        if not len(sets):
            return np.zeros(0, bool)
        sizes = np.array([len(x) for x in self.starts], np.int64)
        first = np.concatenate(([0], np.cumsum(sizes)[:-1]))      # each set's first span
        starts, ends = np.concatenate(self.starts), np.concatenate(self.ends)
        span_set = np.repeat(np.arange(len(sizes)), sizes)
        kind = np.concatenate((np.zeros(len(starts), np.int8), np.ones(len(sets), np.int8)))
        order = np.lexsort((kind, np.concatenate((starts, hi)), np.concatenate((span_set, sets))))
        spans_before = np.cumsum(kind[order] == 0)
        position = np.empty(len(order), np.int64)
        position[order] = np.arange(len(order))
        last = spans_before[position[len(starts):]] - 1          # per query: its last span counted
        found = last >= first[sets]
        return found & (ends[np.maximum(last, 0)] >= lo)
