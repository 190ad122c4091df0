"""EdgeMinutes (flink_jobs/attribution_job.py) against a fake keyed context: the rules of a
one-minute event-time window with allowed lateness, worked by hand. The real operator
runs in tests/e2e/test_attribution_job_e2e.py (edges equal the outcomes' totals)."""

from __future__ import annotations

import json
from types import SimpleNamespace

from flink_jobs import edges
from flink_jobs.attribution_job import DEAD_LETTER, EdgeMinutes
from flink_jobs.job_config import load
from schemas import flowattr_pb2 as pb

MINUTE = 600_000                      # the edge's minute: [600 s, 660 s)
FIRE_AT = MINUTE + 60_000 - 1          # the window's last millisecond


class FakeState:
    def __init__(self):
        self.held = None

    def value(self):
        return self.held

    def update(self, value):
        self.held = value

    def clear(self):
        self.held = None


class FakeKeyedContext:
    def __init__(self, key: str):
        self.key, self.watermark, self.timers = key, -(2**63), set()

    def timer_service(self):
        return SimpleNamespace(current_watermark=lambda: self.watermark,
                               register_event_time_timer=self.timers.add)

    def get_current_key(self):
        return self.key


def _operator() -> tuple[EdgeMinutes, FakeState]:
    op = EdgeMinutes(load(None, {}))
    state = FakeState()
    op.state = state
    return op, state


def _counts(flows: int) -> list[int]:
    counts = [0] * edges.COUNTS
    counts[edges.FLOWS] = flows
    return counts


def _flows(records) -> list[int]:
    return [pb.EdgeRecord.FromString(r[1]).flows for r in records]


KEY = edges.edge_key(MINUTE, "web", "db", pb.FLOW_DIRECTION_OUTBOUND, 5432, 0)


def test_the_minute_comes_out_when_the_watermark_passes_it_then_once_per_later_partial():
    op, state = _operator()
    ctx = FakeKeyedContext(KEY)
    ctx.watermark = MINUTE + 30_000
    assert list(op.process_element((KEY, MINUTE, _counts(3)), ctx)) == []        # before its end: held
    assert list(op.process_element((KEY, MINUTE, _counts(4)), ctx)) == []
    assert ctx.timers == {FIRE_AT, FIRE_AT + op.lateness}
    fired = list(op.on_timer(FIRE_AT, ctx))
    assert _flows(fired) == [7] and fired[0][0] == KEY.encode()
    ctx.watermark = FIRE_AT + 5_000                                              # a retry's flows, later
    assert _flows(op.process_element((KEY, MINUTE, _counts(2)), ctx)) == [9]     # the total so far
    assert list(op.on_timer(FIRE_AT + op.lateness, ctx)) == [] and state.held is None   # cleaned up


def test_a_first_partial_for_a_minute_already_passed_comes_out_at_once():
    op, _ = _operator()
    ctx = FakeKeyedContext(KEY)
    ctx.watermark = FIRE_AT + 1
    assert _flows(op.process_element((KEY, MINUTE, _counts(5)), ctx)) == [5]
    assert ctx.timers == {FIRE_AT + op.lateness}                                  # only the cleanup
    assert list(op.on_timer(FIRE_AT + op.lateness, ctx)) == []                    # not fired twice


def test_a_partial_for_a_closed_minute_is_dead_lettered_with_its_counts():
    """Never dropped: its window was cleared (watermark at the minute's end + lateness)."""
    op, state = _operator()
    ctx = FakeKeyedContext(KEY)
    ctx.watermark = FIRE_AT + op.lateness
    (tag, letter), = op.process_element((KEY, MINUTE, _counts(6)), ctx)
    assert tag is DEAD_LETTER and state.held is None and not ctx.timers
    dead = pb.DeadLetter.FromString(letter)
    assert pb.EdgeRecord.FromString(dead.original).flows == 6 and "window closed" in dead.reason
    assert json.loads(KEY)[0] == MINUTE



class FakeCounter:
    def __init__(self):
        self.total = 0

    def inc(self, n: int) -> None:
        self.total += n


class FakeGroup:
    """A metric group: add_group(name, value) chains labels; counter() is one per label set."""

    def __init__(self, labels=(), registry=None):
        self.labels, self.registry = labels, {} if registry is None else registry

    def add_group(self, name, value):
        return FakeGroup(self.labels + ((name, value),), self.registry)

    def counter(self, name):
        return self.registry.setdefault(self.labels + (("counter", name),), FakeCounter())


def test_top_edge_counters_sum_each_edge_under_its_labels_whatever_its_minute():
    from flink_jobs.attribution_job import TopEdgeCounters

    group = FakeGroup()
    top = TopEdgeCounters(group)

    def partial(minute, remote, flows, reason=0):
        return (edges.edge_key(minute, "web", remote, pb.FLOW_DIRECTION_OUTBOUND, 5432, reason), minute,
                _counts(flows))
    top.count([partial(60_000, "db", 3), partial(120_000, "db", 4), partial(60_000, "cache", 1)])
    top.count([partial(60_000, "", 2, pb.UNATTRIBUTED_REASON_NO_EVIDENCE), partial(180_000, "db", 5)])
    totals = {tuple(v for _, v in labels[:3]): c.total for labels, c in group.registry.items()}
    assert totals == {("web", "db", "5432"): 12, ("web", "cache", "5432"): 1, ("web", "?NO_EVIDENCE", "5432"): 2}
