"""The retry schedule (engine.next_attempt): retries back off over the same max_attempts
slots of retry_delay_ms, so a flow that never settles is given up at the same time with
far fewer attempts, and every attempt's answer is one the every-slot schedule gives too."""

from __future__ import annotations

import pytest

from flink_jobs.attribution.attribute import ATTRIBUTED, RETRY, UNATTRIBUTED
from flink_jobs.attribution.config import AttributionConfig
from flink_jobs.attribution.engine import Engine, next_attempt
from schemas import flowattr_pb2 as pb
from tests.flowbuild import REGIONS, batch, learn

IP_MAP = pb.LOCAL_ATTRIBUTION_IP_MAP


@pytest.mark.parametrize(("backoff", "slots", "expected"), [
    (2.0, 40, [1, 2, 4, 8, 16, 32, 40]),           # the default: 7 attempts instead of 40
    (1.0, 5, [1, 2, 3, 4, 5]),                     # every slot, as before backoff
    (1.5, 10, [1, 2, 3, 5, 8, 10]),                # ceil(1.5)=2, ceil(3)=3, ceil(4.5)=5, ceil(7.5)=8, 12 -> 10
    (2.0, 1, [1]),                                 # one slot: no retry at all
])
def test_the_slots_attempted(backoff, slots, expected):
    attempts = [1]
    while attempts[-1] < slots:
        attempts.append(next_attempt(attempts[-1], slots, backoff))
    assert attempts == expected


@pytest.mark.parametrize("backoff", [0.5, float("inf"), float("nan"), 41.0])
def test_the_config_rejects_a_backoff_outside_one_to_the_slots(backoff):
    """Below 1 the schedule would stand still or go back; inf made ceil() raise on every
    attempt, in a loop (found by an adversarial review); above the slots it means nothing."""
    with pytest.raises(ValueError, match="retry_backoff"):
        AttributionConfig(retry_backoff=backoff)


def _unsettled_engine(backoff: float) -> tuple[Engine, object]:
    """h1 claims 10.0.0.7 in its batch #1 (1-59 s); the flow to it starts at 50 s, inside
    that claim, and ends at 70.5 s; h1's #2 (the window of that end) never arrives while
    it keeps sending #3...: the flow is never settled."""
    e = Engine(AttributionConfig(retry_backoff=backoff), "us-east-1", REGIONS)
    learn(e, "h1", 1, 0, batch([("10.0.0.7", 8080, "db", IP_MAP, "10.0.0.1", 40000, 1_000, 59_000)]))
    for seq in range(3, 60):
        learn(e, "h1", seq, (seq - 1) * 60_000, batch([]))
    flow = batch([("10.0.0.1", 40002, "web", IP_MAP, "10.0.0.7", 8080, 50_000, 70_500)])
    return e, flow


@pytest.mark.parametrize(("backoff", "attempt_minutes"), [
    (2.0, [0, 1, 3, 7, 15, 31, 39]),
    (1.0, list(range(40))),
])
def test_an_unsettled_flow_is_given_up_at_the_same_time_with_fewer_attempts(backoff, attempt_minutes):
    """Driven as the job does: the retry batch's attempts field is next_attempt - 1, due
    at next_attempt_ms. Both schedules give up at the 40th slot, 39 minutes after the
    first attempt; backoff 2 attempts 7 times on the way, every slot 40 times."""
    e, flow = _unsettled_engine(backoff)
    first_ms = 180_000
    now, made, seen = first_ms, 0, []
    while True:
        plan = e.attempt(flow, made, now)
        seen.append((now - first_ms) // 60_000)
        outcome, reason = int(plan.attribution.outcome[0]), int(plan.attribution.reason[0])
        if outcome != RETRY:
            break
        assert plan.next_attempt_ms == now + (plan.next_attempt - plan.attempt) * 60_000
        now, made = plan.next_attempt_ms, plan.next_attempt - 1
    assert seen == attempt_minutes
    assert (outcome, plan.attempt) == (UNATTRIBUTED, 40)
    assert reason == pb.UNATTRIBUTED_REASON_EVIDENCE_UNSETTLED


def test_a_flow_settled_between_attempts_gets_the_every_slot_answer():
    """h1's missing batch #2 arrives after the second attempt (slot 2): every-slot attempts
    it at slot 3, backoff 2 at slot 4, a minute later; both find `db`."""
    answers = {}
    for backoff in (1.0, 2.0):
        e, flow = _unsettled_engine(backoff)
        held = e.attempt(flow, 1, 240_000).attribution   # slot 2
        assert (int(held.outcome[0]), int(held.reason[0])) == (RETRY, pb.UNATTRIBUTED_REASON_EVIDENCE_UNSETTLED)
        learn(e, "h1", 2, 60_000, batch([("10.0.0.7", 8080, "db", IP_MAP, "10.0.0.1", 40002, 50_000, 70_500)]))
        plan = e.attempt(flow, 1, 240_000)
        made = plan.next_attempt - 1
        result = e.attempt(flow, made, plan.next_attempt_ms).attribution
        answers[backoff] = (int(result.outcome[0]), e.owner_names()[int(result.owner[0])], made + 1)
    assert answers == {1.0: (ATTRIBUTED, "db", 3), 2.0: (ATTRIBUTED, "db", 4)}



def test_a_backed_off_retry_due_16_minutes_ahead_of_the_wall_clock_is_read_back():
    """Slot 16 -> 32 sets a retry 16 min ahead. The first version dead-lettered it when
    read back (next attempt more than max_future_ms, 10 min, past the wall clock), so
    every flow still waiting at slot 16 was lost, load-balancer flows above all (found
    by an adversarial review): the bound now adds the schedule's longest wait."""
    from flink_jobs import batches
    from flink_jobs.attribution.engine import max_retry_wait_ms
    from schemas.columns import ATTRIBUTION_COLUMNS, FLOW_COLUMNS, FlowColumns, encode_attributed_batch

    cfg = AttributionConfig()
    now = 10 * 3_600_000
    header = pb.AttributedFlowBatch(source_exporter_id="h1", source_sequence=1, window_start_ms=now - 120_000,
                                    window_end_ms=now - 60_000, attempts=15, next_attempt_ms=now + 16 * 60_000)
    no_rows = FlowColumns.zeros(0, FLOW_COLUMNS | ATTRIBUTION_COLUMNS)
    retry = encode_attributed_batch(header, no_rows)
    assert max_retry_wait_ms(cfg) == 40 * 60_000
    batches.validate_pending(retry, now, 600_000, max_attempts=40, kafka_ms=now, max_retry_wait_ms=40 * 60_000)
    with pytest.raises(batches.InvalidRecord, match="in the future"):   # without the schedule's wait: the bug
        batches.validate_pending(retry, now, 600_000, max_attempts=40, kafka_ms=now)
    header.next_attempt_ms = now + 600_000 + 40 * 60_000 + 1            # past both: a broken clock
    with pytest.raises(batches.InvalidRecord, match="in the future"):
        batches.validate_pending(encode_attributed_batch(header, no_rows), now, 600_000, max_attempts=40,
                                 kafka_ms=now, max_retry_wait_ms=40 * 60_000)


def test_the_backoff_never_lets_a_flows_evidence_expire_before_its_next_attempt():
    """A connection started 2 h 54.5 min before its batch (retention 3 h); the batch of
    its other side arrives after slot 2. Every slot attributes it at slot 3; the first
    backoff version waited until slot 4, when its start had fallen behind the retention
    horizon: EVIDENCE_EXPIRED instead of `db` (found by an adversarial review). Slot 3
    is now kept whenever the jump would cross the horizon."""
    w = 4 * 3_600_000
    start = w - 10_470_000
    for backoff in (1.0, 2.0):
        e = Engine(AttributionConfig(retry_backoff=backoff), "us-east-1", REGIONS)
        learn(e, "h1", 1, w, batch([("10.0.0.7", 8080, "db", IP_MAP, "10.0.0.9", 40000, start - 1_000, w + 59_000)]))
        for seq in range(3, 60):
            learn(e, "h1", seq, w + (seq - 1) * 60_000, batch([]))
        flow = batch([("10.0.0.1", 40002, "web", IP_MAP, "10.0.0.7", 8080, start, w + 70_500)])
        now, made = w + 180_000, 0
        while True:
            e.advance(now)
            e.prune()
            plan = e.attempt(flow, made, now)
            if plan.attempt == 2:
                learn(e, "h1", 2, w + 60_000, batch([("10.0.0.7", 8080, "db", IP_MAP, "10.0.0.1", 40002, start,
                                                      w + 70_500)]))
            if int(plan.attribution.outcome[0]) != RETRY:
                break
            now, made = plan.next_attempt_ms, plan.next_attempt - 1
        assert (plan.attempt, int(plan.attribution.outcome[0]), e.owner_names()[int(plan.attribution.owner[0])]) \
            == (3, ATTRIBUTED, "db"), backoff
