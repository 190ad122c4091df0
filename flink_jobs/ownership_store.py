"""The engine's ownership evidence, kept in Flink broadcast state: the codec, the
rebuild after a restore, and what to write after each change. Pure (no pyflink): the
state is any object with put_all/get/contains/remove/items, so tests pass a dict-like fake.

Keys and values are STRINGs (values hold latin-1 bytes): in thread mode byte-array keys
never match (Java compares arrays by identity). Keys:
* "hb:<key hex>"     heartbeat ranges of an IP (or IP + port) and their claimant exporters;
* "seq:<exporter>"   the exporter's sequence ledger;
* "sm:<subnet hex>"  the exporters that claimed in a subnet, with when each joined
                     (ranges.Subnet; "sn:" holds the format before 2026-11-28, read
                     at a restore and replaced at the subnet's next save);
* "ev:<ip hex>"      an IP's JUDGED event log (a lie must never reach the state);
* "rej:<ip hex>"     an IP's lost records: connection and close-time span of its
                     rejected rows (attribution/rejected.py);
* EVENT_CLOCK_KEY    the event stream's clock.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

from flink_jobs import batches
from flink_jobs.attribution.engine import Engine
from flink_jobs.attribution.events import APPLIED, FUTURE, LATE, WARMING_UP, LoggedEvent
from flink_jobs.attribution.ranges import subnet_key
from schemas import flowattr_pb2 as pb

EVENT_CLOCK_KEY = "ev-clock"


@dataclass
class EventOutcome:
    status: str                        # events.APPLIED, DUPLICATE, LATE, FUTURE or WARMING_UP
    inside: bool                       # the IP is in the event CIDRs (else only the clock moved)
    rejected: list[bytes] = field(default_factory=list)  # IpChangeEvent bytes to dead-letter


class OwnershipStore:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.synced = False  # the engine is empty after a restore: rebuild on first call
        self.legacy_subnets: set[bytes] = set()  # subnets restored from an "sn:" key (removed at their next save)
        self.saved_clock = b""
        self.unsaved_ips: set[bytes] = set()  # event logs changed since the last save
        # Ownership keys (IP, or IP + port) whose ranges may have changed since the last
        # take_changed(): the ownership changelog (ownership_changelog.py) republishes them.
        self.changed: set[bytes] = set()
        self.horizon_published_ms = self.engine.attributor.events.horizon_ms  # at the last republish

    def sync(self, state, now_ms: int | None = None) -> None:
        """Rebuild the engine's evidence from the state (once, on the first call); now_ms:
        the caller's (monotonic) clock, when the restored exporters count as last heard from."""
        att = self.engine.attributor
        logs = []
        for key, value in state.items():
            raw = value.encode("latin-1")
            if key.startswith("hb:"):
                att.heartbeats.restore_ip(bytes.fromhex(key[3:]), raw)
            elif key.startswith("seq:"):
                att.ledger.restore(key[4:], raw)
            elif key.startswith("sm:"):
                att.heartbeats.restore_subnet(bytes.fromhex(key[3:]), raw)
            elif key.startswith("sn:"):   # merged with its "sm:" value, if any (either order)
                subnet = bytes.fromhex(key[3:])
                att.heartbeats.restore_subnet(subnet, raw, legacy=True)
                self.legacy_subnets.add(subnet)
            elif key.startswith("rej:"):
                att.rejected.restore(bytes.fromhex(key[4:]), raw)
            elif key.startswith("ev:"):
                logs.append((bytes.fromhex(key[3:]), raw))
            elif key == EVENT_CLOCK_KEY:
                _restore_clock(att.events.clock, raw)
                self.saved_clock = raw
        for ip, raw in logs:  # after the clock: the restore re-judges future events
            dropped_until, events = _decode_event_log(raw)
            att.events.restore(ip, events, dropped_until)
        att.restore_fleet(now_ms)
        self.synced = True

    def learn(self, state, raw_update: bytes, now_ms: int | None = None) -> int:
        """An OwnershipUpdate (one batch's sequence, claims and rejected rows' connections),
        arrived at now_ms by the caller's (monotonic) clock; returns new conflicts."""
        with StateWrites(state) as state:
            return self._learn(state, raw_update, now_ms)

    def _learn(self, state, raw_update: bytes, now_ms: int | None) -> int:
        update, claims, rejected = batches.claims_of_update(raw_update)
        conflicts = self.engine.learn_batch(update.source_exporter_id, update.source_sequence,
                                            update.window_start_ms, update.window_end_ms, claims,
                                            update.part, update.part_count, rejected, now_ms)
        self._save_ledger(state, update.source_exporter_id)
        for ip in {record[:16] for record in rejected}:
            self._save_rejected(state, ip)
        for key in {c.key for c in claims}:
            self._save_heartbeats(state, key)
        for subnet in {subnet_key(c.ip) for c in claims}:
            self._save_subnet(state, subnet)
        return conflicts

    def apply_event(self, state, raw_event: bytes) -> EventOutcome:
        with StateWrites(state) as state:
            return self._apply_event(state, raw_event)

    def _apply_event(self, state, raw_event: bytes) -> EventOutcome:
        event = pb.IpChangeEvent.FromString(raw_event)
        events = self.engine.attributor.events
        status = self.engine.apply_event(event.ip, event.workload, event.action, event.event_time_ms,
                                         event.emit_time_ms, event.event_id)
        rejected = [raw_event] if status == FUTURE else []
        rejected += [_to_event(ip, e).SerializeToString() for ip, e in events.take_rejected()]
        inside = bool(self.engine.attributor.event_cidrs.contains(np.frombuffer(event.ip, np.uint8).reshape(1, 16))[0])
        if inside and status in (APPLIED, LATE, WARMING_UP):
            self.unsaved_ips.add(event.ip)  # saved once every buffered event is judged
        self._save_events(state)
        return EventOutcome(status, inside, rejected)

    def _save_events(self, state) -> None:
        """Write the event logs changed since the last save once nothing waits in the
        warm-up buffer (the watermark may have judged it since), and the clock."""
        events = self.engine.attributor.events
        if not events.warm_up:
            for ip in self.unsaved_ips:
                _save_event_log(state, ip, events.logs.get(ip))
            self.changed.update(self.unsaved_ips)
            self.unsaved_ips.clear()
        clock = _encode_clock(events.clock)
        if clock != self.saved_clock:
            self.saved_clock = clock
            state.put(EVENT_CLOCK_KEY, clock.decode("latin-1"))

    def prune(self, state) -> None:
        """After every broadcast element: save what the watermark judged, prune the engine
        when due and write what changed."""
        with StateWrites(state) as state:
            self._prune(state)

    def _prune(self, state) -> None:
        self._save_events(state)
        events = self.engine.attributor.events
        if events.horizon_ms != self.horizon_published_ms:
            # Event ranges end at the horizon, which moved (with the event clock or the
            # fleet's progress that caps it): every event IP's ranges changed. At every
            # move, not only when a prune is due (every minute of event time): an attempt
            # attributes up to the horizon it sees, and a changelog a minute behind it
            # answered "unknown" for the last minute's load-balancer flows (475 in the e2e
            # fleet under a topology tried in 33f5ffd).
            self.horizon_published_ms = events.horizon_ms
            self.changed.update(events.logs)
        changed = self.engine.prune()
        if changed is None:
            return
        for subnet in changed.subnets:
            self._save_subnet(state, subnet)
        for key in changed.heartbeat_keys:
            self._save_heartbeats(state, key)
        for exporter in changed.exporters:
            self._save_ledger(state, exporter)
        for ip in changed.event_ips:
            _save_event_log(state, ip, self.engine.attributor.events.logs.get(ip))
            self.changed.add(ip)
        for ip in changed.rejected_ips:
            self._save_rejected(state, ip)

    def take_changed(self) -> set[bytes]:
        """The ownership keys changed since the last call."""
        out, self.changed = self.changed, set()
        return out

    def _save_heartbeats(self, state, key: bytes) -> None:
        """A key's ranges and claimants as one value (removed when the key is gone)."""
        table = self.engine.attributor.heartbeats
        self.changed.add(key)
        _put_or_remove(state, "hb:" + key.hex(), key in table.by_ip and (lambda: table.encode_ip(key)))

    def _save_subnet(self, state, subnet: bytes) -> None:
        """A subnet's members and join times as one value (removed when it has none)."""
        table = self.engine.attributor.heartbeats
        _put_or_remove(state, "sm:" + subnet.hex(), subnet in table.subnets and (lambda: table.encode_subnet(subnet)))
        if subnet in self.legacy_subnets:
            self.legacy_subnets.discard(subnet)
            state.remove("sn:" + subnet.hex())

    def _save_ledger(self, state, exporter: str) -> None:
        """An exporter's sequence ledger as one value (removed when it is forgotten)."""
        ledger = self.engine.attributor.ledger
        _put_or_remove(state, "seq:" + exporter, exporter in ledger.runs and (lambda: ledger.encode(exporter)))


    def _save_rejected(self, state, ip: bytes) -> None:
        """An IP's lost records as one value (removed when none is left)."""
        rejected = self.engine.attributor.rejected
        _put_or_remove(state, "rej:" + ip.hex(), ip in rejected.by_ip and (lambda: rejected.encode(ip)))


class StateWrites:
    """The writes of one call, made together when it ends (or every FLUSH_AT keys): the
    puts in one put_all, then the removes. Each put crossed into Java on its own (pemja),
    and `put` was 5-6 % of the GIL samples while the job learned 20 k IPs a batch. Only
    each key's last write is made, so a put then a remove of one key is a remove."""

    # Writes held at most: a prune clips every range straddling the retention horizon, so
    # once the retention has passed it rewrites every stable IP, and one map of them all
    # (copied again by PyFlink and pemja) would be a spike of GiBs at 10 M IPs (a review).
    FLUSH_AT = 10_000

    def __init__(self, state):
        self.state = state
        self.values: dict[str, str | None] = {}   # key -> its value, None to remove it

    def put(self, key: str, value: str) -> None:
        self.values[key] = value
        if len(self.values) >= self.FLUSH_AT:
            self._flush()

    def remove(self, key: str) -> None:
        self.values[key] = None
        if len(self.values) >= self.FLUSH_AT:
            self._flush()

    def __enter__(self) -> StateWrites:
        return self

    def __exit__(self, kind, *_) -> None:
        # A failed call fails the task: Flink restores engine and state from the checkpoint,
        # so what was flushed before the failure, and what was not, are both undone.
        if kind is None:
            self._flush()

    def _flush(self) -> None:
        """The writes so far, in order: each chunk's puts, then its removes."""
        puts = {k: v for k, v in self.values.items() if v is not None}
        if puts:
            self.state.put_all(puts)
        for key in [k for k, v in self.values.items() if v is None]:
            self.state.remove(key)
        self.values = {}


def _put_or_remove(state, key: str, encode) -> None:
    """Write encode()'s bytes under key; remove the key when there is nothing to encode
    (encode is False). Broadcast state holds str, so bytes go through latin-1 unchanged."""
    if encode:
        state.put(key, encode().decode("latin-1"))
    else:
        state.remove(key)


def _logged(event: pb.IpChangeEvent) -> LoggedEvent:
    return LoggedEvent(event.event_time_ms, event.action, event.workload, event.event_id, event.emit_time_ms)


def _to_event(ip: bytes | None, e: LoggedEvent) -> pb.IpChangeEvent:
    return pb.IpChangeEvent(ip=ip or b"", workload=e.workload, action=e.action, event_time_ms=e.event_ms,
                            emit_time_ms=e.emit_ms, event_id=e.event_id)


def _save_event_log(state, ip: bytes, log) -> None:
    """An IP's judged event log as one value (removed when the log is gone)."""
    _put_or_remove(state, "ev:" + ip.hex(),
                   log is not None and (lambda: _encode_event_log(log.dropped_until_ms, log.events)))


def _encode_event_log(dropped_until_ms: int, events: list[LoggedEvent]) -> bytes:
    """i64 dropped_until_ms, then per event u32 length + IpChangeEvent bytes."""
    raws = (_to_event(None, e).SerializeToString() for e in events)
    return struct.pack("<q", dropped_until_ms) + b"".join(len(raw).to_bytes(4, "little") + raw for raw in raws)


def _decode_event_log(value: bytes) -> tuple[int, list[LoggedEvent]]:
    (dropped_until,) = struct.unpack_from("<q", value)
    out, pos = [], 8
    while pos < len(value):
        n = int.from_bytes(value[pos:pos + 4], "little")
        out.append(_logged(pb.IpChangeEvent.FromString(value[pos + 4:pos + 4 + n])))
        pos += 4 + n
    return dropped_until, out


def _encode_clock(clock) -> bytes:
    """The stream clock: i64 driver watermark, then its top emit times."""
    return struct.pack(f"<q{len(clock.top)}q", clock.watermark_ms, *clock.emit_times)


def _restore_clock(clock, value: bytes) -> None:
    values = struct.unpack(f"<{len(value) // 8}q", value)
    clock.watermark_ms = values[0]
    # Event keys are not saved: each restored time counts as its own event (a duplicate
    # of one of these few after a restore can count once more).
    for i, emit in enumerate(values[1:]):
        clock.observe(emit, f"restored-{i}")
