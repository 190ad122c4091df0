"""Attribute (flink_jobs/attribution_job.py) against a fake keyed context: when held batches
are attempted. The flows' watermark is made at the Kafka source from record timestamps,
before any check, so a few absurd ones (or one clock ahead while the other partitions
idle) can run it ahead of batches not read yet; an attempt made then does not wait for a
host whose first batch is unread, and a stale claim on its IP would win. So the attempt
clock is the watermark but never past the fleet's progress (engine.attempt_clock_ms), and
batches the watermark alone made due wait, looked at again by processing-time timers.
The real operator runs in the e2e tests."""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace

import numpy as np
from pyflink.common import Row
from pyflink.datastream import TimeDomain

from flink_jobs import batches
from flink_jobs.attribution.engine import Engine
from flink_jobs.attribution_job import Attribute, TopEdgeCounters, _monotonic_ms
from flink_jobs.job_config import load
from flink_jobs.pending_hold import PendingHold
from schemas import flowattr_pb2 as pb
from schemas.columns import FlowColumns, ip_to_bytes
from tests.flowbuild import FakeMapState

WINDOW_END = 1_790_000_040_000
DUE = WINDOW_END + 60_000            # the default hold
YEAR_MS = 365 * 24 * 3600 * 1000


class FakeCounter:
    def __init__(self):
        self.count = 0

    def inc(self, n: int = 1) -> None:
        self.count += n

    def dec(self, n: int = 1) -> None:
        self.count -= n


class FakeGroup:
    def counter(self, name):
        return FakeCounter()

    def add_group(self, *names):
        return self


class FakeContext:
    def __init__(self, watermark: int, domain: TimeDomain = TimeDomain.EVENT_TIME):
        self.watermark, self.domain = watermark, domain
        self.event_timers, self.processing_timers = [], []

    def timer_service(self):
        return SimpleNamespace(current_watermark=lambda: self.watermark,
                               register_event_time_timer=self.event_timers.append,
                               register_processing_time_timer=self.processing_timers.append)

    def time_domain(self):
        return self.domain


def _operator() -> Attribute:
    cfg = load(None, {"region": "us-east-1"})
    op = Attribute(cfg)
    op.engine = Engine(cfg.attribution, cfg.region, cfg.region_cidrs)
    op.store = SimpleNamespace(synced=True)
    op.metrics = defaultdict(FakeCounter)
    op.reason_group = FakeGroup()
    op.top_edges = TopEdgeCounters(FakeGroup())
    op.edge_lateness_ms = 10**12
    op.hold = PendingHold(FakeMapState())
    op.ranges_counted_at = float("inf")   # no range counting in these tests
    return op


def _pending(exporter: str = "e1") -> bytes:
    cols = FlowColumns.zeros(1)
    cols["local_ip"][0] = np.frombuffer(ip_to_bytes("10.1.0.7"), np.uint8)
    cols["remote_ip"][0] = np.frombuffer(ip_to_bytes("10.1.0.9"), np.uint8)
    cols["start_ms"][0], cols["end_ms"][0] = WINDOW_END - 30_000, WINDOW_END - 29_000
    header = pb.FlowBatch(exporter_id=exporter, host="h1", region="us-east-1", window_start_ms=WINDOW_END - 60_000,
                          window_end_ms=WINDOW_END, sequence=1)
    return batches.to_pending(header, cols, "us-east-1", DUE)


def _fleet_at(op: Attribute, *ends: int) -> None:
    """The fleet's progress: the 3rd-latest of these exporters' latest window ends, heard
    now (by the operator's monotonic clock: silent longer than exporter_silence_ms, the
    fleet no longer bounds the attempt clock)."""
    for k, end in enumerate(ends):
        op.engine.attributor.fleet.note(f"x{k}", end, _monotonic_ms())


def test_a_batch_due_only_by_a_watermark_ahead_of_the_fleet_waits_for_the_fleet():
    """Watermark a year ahead; the fleet has reached only the batch's own window end, so
    its due time (+60 s) is not reached: nothing is attempted, the engine's clock does not
    move, and a processing-time timer will look again. Once three exporters have sent the
    next window, the look attempts it at its due time."""
    op = _operator()
    _fleet_at(op, WINDOW_END, WINDOW_END, WINDOW_END)
    ctx = FakeContext(WINDOW_END + YEAR_MS)
    assert list(op.process_element(Row("e1", _pending()), ctx)) == []
    assert op.hold.has_deferred() and len(ctx.processing_timers) == 1 and ctx.event_timers == []
    assert op.engine.watermark_ms < WINDOW_END
    look = FakeContext(WINDOW_END + YEAR_MS, TimeDomain.PROCESSING_TIME)
    assert list(op.on_timer(ctx.processing_timers[0], look)) == []        # the fleet has not moved
    assert op.hold.has_deferred() and len(look.processing_timers) == 1
    _fleet_at(op, DUE, DUE, DUE)
    out = list(op.on_timer(look.processing_timers[0], look))
    assert out and not op.hold.has_deferred() and op.engine.watermark_ms == DUE
    assert op.metrics["deferred"].count == 1


def test_an_event_time_timer_past_the_fleet_is_deferred_not_attempted():
    op = _operator()
    _fleet_at(op, WINDOW_END, WINDOW_END, WINDOW_END)
    op.hold.hold(_pending())
    ctx = FakeContext(DUE + YEAR_MS)
    assert list(op.on_timer(DUE, ctx)) == []
    assert op.hold.take_deferred(DUE) == [DUE] and ctx.processing_timers


def test_a_batch_due_by_an_honest_watermark_is_attempted_at_once():
    """The fleet is at DUE + 2 min, the watermark at DUE + 1 min: attempted at once, at the
    watermark (the attempt clock)."""
    op = _operator()
    _fleet_at(op, DUE + 120_000, DUE + 120_000, DUE + 120_000)
    ctx = FakeContext(DUE + 60_000)
    assert list(op.process_element(Row("e1", _pending()), ctx))
    assert not op.hold.has_deferred() and ctx.processing_timers == []
    assert op.engine.watermark_ms == DUE + 60_000


def test_a_batch_not_yet_due_waits_for_its_timer():
    op = _operator()
    ctx = FakeContext(WINDOW_END)
    assert list(op.process_element(Row("e1", _pending()), ctx)) == []
    assert ctx.event_timers == [DUE] and ctx.processing_timers == []


def test_the_attempt_clock():
    """The watermark, never past the fleet's progress; with no exporter known, the watermark."""
    engine = _operator().engine
    assert engine.attempt_clock_ms(DUE) == DUE
    engine.attributor.fleet.note("a", WINDOW_END, 0)
    assert engine.attempt_clock_ms(DUE) == WINDOW_END
    assert engine.attempt_clock_ms(WINDOW_END - 5) == WINDOW_END - 5


def test_a_fleet_silent_for_the_silence_no_longer_bounds_the_attempt_clock():
    """A region whose exporters all stopped still attempts what other regions forward to
    it, by the watermark, once none has been heard for exporter_silence_ms (15 min)."""
    engine = _operator().engine
    engine.attributor.fleet.note("a", WINDOW_END, 1_000)
    assert engine.attempt_clock_ms(DUE, now_ms=1_000 + 15 * 60_000) == WINDOW_END
    assert engine.attempt_clock_ms(DUE, now_ms=1_000 + 15 * 60_000 + 1) == DUE


def test_a_late_batch_forwarded_is_stamped_no_later_than_its_next_attempt():
    """A batch read 20 minutes after its due time is attempted at once, at the attempt
    clock; its forward to eu-west-1 keeps its header's next attempt (the old due time), and
    the receiving region checks the Kafka timestamp against it (validate_pending): stamped
    at the clock, it was dead-lettered there (found by an adversarial review)."""
    from flink_jobs import routing
    from flink_jobs.attribution.engine import max_retry_wait_ms

    op = _operator()
    late = DUE + 20 * 60_000
    _fleet_at(op, late, late, late)
    cols = FlowColumns.zeros(1)
    cols["local_ip"][0] = np.frombuffer(ip_to_bytes("10.1.0.7"), np.uint8)
    cols["remote_ip"][0] = np.frombuffer(ip_to_bytes("10.16.0.9"), np.uint8)   # eu-west-1
    cols["start_ms"][0], cols["end_ms"][0] = WINDOW_END - 30_000, WINDOW_END - 29_000
    header = pb.FlowBatch(exporter_id="e1", host="h1", region="us-east-1", window_start_ms=WINDOW_END - 60_000,
                          window_end_ms=WINDOW_END, sequence=1)
    out = list(op.process_element(Row("e1", batches.to_pending(header, cols, "us-east-1", DUE)), FakeContext(late)))
    (key, value, stamp), = [routing.untimed(p) for rec in out for p in routing.payloads_for(rec, routing.FORWARD,
                                                                                          "eu-west-1")]
    assert stamp == DUE
    batches.validate_pending(value, late, op.cfg.max_future_ms, max_attempts=op.cfg.attribution.max_attempts,
                             kafka_ms=stamp, max_retry_wait_ms=max_retry_wait_ms(op.cfg.attribution))
