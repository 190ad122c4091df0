"""The IP-change event path against an adversary: any arrival order, duplicates, one
future-stamped event. Each named test is a defect the first version had (it attributed
the flow to the wrong workload); the property test checks every attempt, not the end."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from flink_jobs.attribution.attribute import ATTRIBUTED, RETRY
from flink_jobs.attribution.attributor import Attributor
from flink_jobs.attribution.config import AttributionConfig
from flink_jobs.attribution.events import ASSIGNED, FUTURE, UNASSIGNED
from schemas import flowattr_pb2 as pb
from schemas.columns import ip_to_bytes
from tests.flowbuild import flows_to_lb, owners_at

D = 600_000      # event delay bound
ERR = 1_000      # event timestamp error
TOL = 200        # host skew tolerance
CFG = AttributionConfig(event_cidrs=("10.250.0.0/24",), event_max_delay_ms=D, event_time_error_ms=ERR,
                        skew_tolerance_ms=TOL, event_future_bound_ms=600_000, max_attempts=40)
LB = ip_to_bytes("10.250.0.5")






def test_a_reassignment_does_not_give_an_in_flight_tenure_to_the_old_owner():
    """A@100 s, then B held the IP 200-300 s (its events in flight), then C@400 s. The first
    version closed A at C's time and trusted [100 s, 400 s] at once: B's flow at 250 s
    went to A."""
    att = Attributor(CFG)
    att.apply_event(LB, "a", ASSIGNED, 100_000, emit_ms=101_000, event_id="1")
    att.apply_event(LB, "c", ASSIGNED, 400_000, emit_ms=401_000, event_id="4")
    att.advance(420_000)
    assert owners_at(att, [250_000]) == [None]  # B's events may still arrive: wait
    att.apply_event(LB, "b", ASSIGNED, 200_000, emit_ms=700_000, event_id="2")
    att.apply_event(LB, "b", UNASSIGNED, 300_000, emit_ms=790_000, event_id="3")
    att.advance(1_100_000)  # horizon 500 s: everything up to it is known
    assert owners_at(att, [150_000, 250_000, 350_000, 450_000]) == ["a", "b", None, "c"]


def test_an_early_unassignment_is_matched_by_time_not_by_arrival():
    """Events A+100 A-200 B+250 B-280 A+300 A-400 arrive as A-400, A+100, then the rest.
    The first version paired A-400 with A+100 on arrival and gave B's 260 s to A."""
    att = Attributor(CFG)
    for i, (who, action, t, emit) in enumerate([
            ("a", UNASSIGNED, 400_000, 401_000), ("a", ASSIGNED, 100_000, 402_000),
            ("a", UNASSIGNED, 200_000, 500_000), ("b", ASSIGNED, 250_000, 501_000),
            ("b", UNASSIGNED, 280_000, 502_000), ("a", ASSIGNED, 300_000, 503_000)]):
        att.apply_event(LB, who, action, t, emit_ms=emit, event_id=str(i))
    att.advance(1_100_000)
    assert owners_at(att, [150_000, 260_000, 290_000, 350_000, 450_000]) == ["a", "b", None, "a", None]


def test_a_duplicated_old_assignment_does_not_rewrite_history():
    """A@100 s, B@500 s; A's assignment is delivered again (same id). The first version let
    the older ASSIGNED replace the open one: flows after 500 s went to A."""
    att = Attributor(CFG)
    att.apply_event(LB, "a", ASSIGNED, 100_000, emit_ms=101_000, event_id="a1")
    att.apply_event(LB, "b", ASSIGNED, 500_000, emit_ms=501_000, event_id="b1")
    att.apply_event(LB, "a", ASSIGNED, 100_000, emit_ms=502_000, event_id="a1")
    att.advance(1_800_000)  # horizon 1200 s
    assert owners_at(att, [300_000, 800_000]) == ["a", "b"]
    assert att.events.counts["duplicate"] == 1


def test_one_future_stamped_event_cannot_move_the_horizon():
    """A@100 s, unassigned at 4000 s (in flight). One event stamped a day ahead, for an IP
    outside the event CIDRs, arrives first. The first version took its time as the
    stream's: horizon = 1 day - D, and A's open range covered the flow at 5000 s."""
    att = Attributor(CFG)
    att.apply_event(LB, "a", ASSIGNED, 100_000, emit_ms=101_000, event_id="1")
    att.advance(200_000)
    day = 86_400_000
    assert att.apply_event(ip_to_bytes("10.0.0.77"), "x", ASSIGNED, day, emit_ms=day, event_id="lie") == FUTURE
    assert att.apply_event(LB, "x", ASSIGNED, day, emit_ms=day, event_id="lie2") == FUTURE
    assert att.events.horizon_ms == 200_000 - D
    assert owners_at(att, [5_000_000]) == [None]
    att.advance(4_050_000)  # flows keep event time moving
    assert owners_at(att, [5_000_000]) == [None]
    att.apply_event(LB, "a", UNASSIGNED, 4_000_000, emit_ms=4_100_000, event_id="2")
    att.advance(5_700_000)
    assert owners_at(att, [3_000_000, 5_000_000]) == ["a", None]


def test_without_a_watermark_fewer_than_rank_liars_do_not_move_the_clock():
    """No driver watermark: the clock is the 8th-largest emit time, so 7 lies do nothing."""
    att = Attributor(CFG)
    for i in range(8):
        att.apply_event(ip_to_bytes("10.0.0.9"), "x", ASSIGNED, 1_000 * i, emit_ms=1_000 * i, event_id=f"t{i}")
    for i in range(7):
        att.apply_event(ip_to_bytes("10.0.0.9"), "x", ASSIGNED, 10**12, emit_ms=10**12, event_id=f"lie{i}")
    assert att.events.horizon_ms == 0 - D
    assert att.events.counts[FUTURE] == 7


# -- property: any order, duplicates, timestamp error, within the delay bound -----------
@st.composite
def event_world(draw):
    """A true timeline of one IP (tenures of workloads a/b/c with gaps), its events stamped
    with error <= ERR, each delivered (maybe twice) at a random time within the bound."""
    t = draw(st.integers(0, 50_000))
    events = []  # (true time, "A"/"U", workload)
    for k in range(draw(st.integers(1, 6))):
        who = draw(st.sampled_from("abc"))
        start = t + draw(st.integers(0, 30_000))
        end = start + draw(st.integers(1, 200_000))
        events.append((start, "A", who))
        if draw(st.booleans()) or k == 0:  # else reassigned later without an unassignment
            events.append((end, "U", who))
        t = end + draw(st.integers(0, 30_000))
    delivered = []
    for i, (true_t, kind, who) in enumerate(events):
        stamped = true_t + draw(st.integers(-ERR, ERR))
        for _copy in range(draw(st.integers(1, 2))):  # duplicates share the id
            arrival = max(true_t, stamped) + draw(st.integers(0, D - ERR))
            delivered.append((arrival, stamped, ASSIGNED if kind == "A" else UNASSIGNED, who, f"e{i}"))
    delivered.sort()
    probes = draw(st.lists(st.integers(0, t + 50_000), min_size=1, max_size=20))
    return events, delivered, probes


def true_owner(events, t: int) -> str | None:
    """The workload holding the IP at true time t: the last event at or before t decides."""
    state = None
    for when, kind, who in sorted(events, key=lambda e: e[0]):
        if when > t:
            break
        state = who if kind == "A" else None
    return state


@settings(max_examples=300, deadline=None)
@given(event_world())
def test_no_event_order_duplicate_or_timestamp_error_misattributes_at_any_attempt(world):
    events, delivered, probes = world
    att = Attributor(CFG)
    for arrival, stamped, action, who, event_id in delivered:
        att.apply_event(LB, who, action, stamped, emit_ms=arrival, event_id=event_id)
        att.advance(arrival)  # everything emitted before it has arrived (sorted delivery)
        # Flows start exactly on the true clock here; a tenure boundary within the margin
        # of a probe makes the probe ambiguous, so the truth is taken at t only.
        result = att.attribute(flows_to_lb(probes), attempt=1)
        names = att.owner_names(result.owner)
        for i, t in enumerate(probes):
            if result.outcome[i] == ATTRIBUTED:
                assert names[i] == true_owner(events, t), (t, names[i], delivered)
            else:
                assert result.outcome[i] == RETRY or result.reason[i] == pb.UNATTRIBUTED_REASON_NO_EVIDENCE
    # Once everything has arrived and the horizon has passed, an instant more than the
    # margin away from every event is attributed, to its true owner (evidence is used),
    # when no two changes are so close that their stamped order may be wrong.
    margin = ERR + 2 * TOL  # the engine's err: timestamp error plus twice the skew tolerance
    times = sorted(e[0] for e in events)
    if any(b - a <= 2 * margin + 2 * ERR for a, b in zip(times, times[1:], strict=False)):
        return
    # Past every arrival by 2 D (the event horizon passes every probe), within the
    # retention: a watermark hours ahead expires every flow (EVIDENCE_EXPIRED).
    att.advance(max(arrival for arrival, *_ in delivered) + 2 * D)
    clear = [t for t in probes if all(abs(t - e[0]) > 2 * margin + ERR for e in events)
             and true_owner(events, t) is not None]
    assert owners_at(att, clear) == [true_owner(events, t) for t in clear]


def test_attribution_is_the_same_whatever_the_arrival_order():
    rng = np.random.default_rng(3)
    base = [("a", ASSIGNED, 100_000), ("a", UNASSIGNED, 200_000), ("b", ASSIGNED, 205_000),
            ("c", ASSIGNED, 300_000), ("c", UNASSIGNED, 310_000), ("a", ASSIGNED, 320_000)]
    probes = list(range(90_000, 400_000, 1_000))
    seen = set()
    for _ in range(20):
        att = Attributor(CFG)
        for k in rng.permutation(len(base)).tolist():
            who, action, t = base[k]
            att.apply_event(LB, who, action, t, emit_ms=t + 1000, event_id=str(k))
        att.advance(1_500_000)
        seen.add(tuple(owners_at(att, probes)))
    assert len(seen) == 1
    (result,) = seen
    assert result[probes.index(150_000)] == "a" and result[probes.index(250_000)] == "b"
    assert result[probes.index(305_000)] == "c" and result[probes.index(350_000)] == "a"


def test_events_stamped_a_day_ahead_do_not_run_the_event_inputs_watermark_ahead():
    """The job's events input gets its watermark from each event's time (ValidateEvents).
    The first version used the emit time: two events stamped a day ahead (in a replay of
    past data, where the validators' wall-clock bound cannot catch them) ran it a day ahead,
    every held batch fired, and the event clock trusted that watermark: 219 load-balancer
    flows misattributed (found by the savepoint test, tests/e2e/test_cluster.py). Now an
    event's time is at most the clock_rank-th largest emit time seen."""
    from flink_jobs.attribution.events import NEVER, StreamClock

    clock, times = StreamClock(rank=3), []
    for i, emit in enumerate((1_000, 2_000, 86_400_000, 3_000, 86_400_500, 4_000, 5_000)):
        clock.observe(emit, f"e{i}")
        times.append(clock.event_time(emit))
    # Before three emits: no time at all; then the third largest bounds each event's time.
    assert times == [NEVER, NEVER, 1_000, 2_000, 3_000, 4_000, 5_000]


def test_one_lie_delivered_many_times_counts_once_in_the_stream_clock():
    """Kafka delivers at least once. The first version counted every copy: one event
    stamped 9 min ahead, delivered `rank` times (and again with each new copy), moved the
    stream's time 9 min per round and the horizon past legitimate events still in flight
    (found by an adversarial review): a load-balancer flow went to the old owner."""
    from flink_jobs.attribution.events import StreamClock

    clock = StreamClock(rank=3)
    for i in range(3):
        clock.observe(60_000 + i, f"honest-{i}")
    for _ in range(8):
        clock.observe(60_000 + 9 * 60_000, "the-lie")
    assert clock.time_ms == 60_001   # the lie is one of the three largest, once
    att = Attributor(CFG)
    for _ in range(8):   # the same through the event table (an IP outside the event CIDRs too)
        att.apply_event(ip_to_bytes("10.9.0.1"), "x", ASSIGNED, 600_000, 600_000, "dup")
    assert len(att.events.clock.top) == 1



def test_one_exporter_clock_ahead_does_not_settle_events_still_in_flight():
    """The job's watermark can follow one exporter: a validator reads only some
    partitions, and one whose only exporter has a clock 5 min ahead leads it while the
    others idle between batches. Fleet of e1-e3 at 3,000 s, the liar at 3,300 s; the
    watermark (the liar's) is 3,300 s, so without a cap the horizon is 3,300 - 600 =
    2,700 s. A held the IP from 100 s; B took it at 2,550 s, an event 450 s in flight
    (inside the 600 s bound). A flow at 2,600 s went to A. The fleet's progress, over every
    exporter the collector learned from (rank 3: 3,000 s), caps the horizon at 2,400 s:
    the flow waits, then goes to B once B's event arrived."""
    att = Attributor(CFG)
    for k, exporter in enumerate(("e1", "e2", "e3", "liar")):
        end = 3_300_000 if exporter == "liar" else 3_000_000
        att.learn_batch(exporter, 1, end - 60_000, end, [], heard_at_ms=3_000_000 + k)
    att.apply_event(LB, "a", ASSIGNED, 100_000, emit_ms=101_000, event_id="1")
    att.advance(3_300_000)
    assert att.events.horizon_ms == 2_400_000
    result = att.attribute(flows_to_lb([2_600_000]), attempt=1)
    assert result.outcome.tolist() == [RETRY]
    att.apply_event(LB, "a", UNASSIGNED, 2_549_000, emit_ms=3_000_000, event_id="2")
    att.apply_event(LB, "b", ASSIGNED, 2_550_000, emit_ms=3_000_000, event_id="3")
    for k, exporter in enumerate(("e1", "e2", "e3")):  # the fleet moves on: so does the horizon
        att.learn_batch(exporter, 2, 3_240_000, 3_300_000, [], heard_at_ms=3_300_000 + k)
    assert att.events.horizon_ms == 2_700_000
    assert owners_at(att, [2_600_000]) == ["b"]


def test_the_fleet_cap_follows_a_fleet_that_shrank_below_the_rank():
    """Exporters silent for exporter_silence_ms (wall clock) no longer hold the cap back:
    e1 and e2 stop at 1,000 s; e3 goes on alone. While fewer than the rank are known the
    cap is the earliest of them, so once e1 and e2 are forgotten it follows e3, and event
    time is not frozen (an earlier cap froze it for good, found by an adversarial review).
    The watermark (5,000 s) is capped at the fleet: 1,000 s - D, then at e3's 1,960 s."""
    cfg = AttributionConfig(event_cidrs=("10.250.0.0/24",), event_max_delay_ms=D, event_time_error_ms=ERR,
                            skew_tolerance_ms=TOL, exporter_silence_ms=900_000)
    att = Attributor(cfg)
    for exporter in ("e1", "e2", "e3"):
        att.learn_batch(exporter, 1, 940_000, 1_000_000, [], heard_at_ms=1_000_000)
    att.advance(5_000_000)
    assert att.events.horizon_ms == 1_000_000 - D
    for k in range(1, 17):   # e3 alone, a batch a minute: 16 minutes of listening
        att.learn_batch("e3", 1 + k, 940_000 + 60_000 * k, 1_000_000 + 60_000 * k, [],
                        heard_at_ms=1_000_000 + 60_000 * k)
        if k == 15:   # e1 and e2 silent for 15 minutes, not more: they still count
            assert att.events.horizon_ms == 1_000_000 - D
    assert att.events.horizon_ms == 1_960_000 - D


def test_a_pause_does_not_leave_the_first_batch_after_it_the_whole_fleet():
    """The collector pauses longer than exporter_silence_ms (backpressure, a VM pause, a
    clock jump); the first batch it reads after is the liar's. Judged by the clock alone,
    e1-e3 looked gone at once, the fleet was the liar, and the flow at 2,600 s went to A
    (found by an adversarial review), and counted by batches, the liar's backlog of 15
    batches read at once did the same (a second review). Silence is listening time: the
    pause counts one minute, the backlog nothing; the cap holds."""
    cfg = AttributionConfig(event_cidrs=("10.250.0.0/24",), event_max_delay_ms=D, event_time_error_ms=ERR,
                            skew_tolerance_ms=TOL, event_future_bound_ms=600_000, exporter_silence_ms=900_000)
    att = Attributor(cfg)
    for k, exporter in enumerate(("e1", "e2", "e3", "liar")):
        end = 3_300_000 if exporter == "liar" else 3_000_000
        att.learn_batch(exporter, 1, end - 60_000, end, [], heard_at_ms=3_000_000 + k)
    att.apply_event(LB, "a", ASSIGNED, 100_000, emit_ms=101_000, event_id="1")
    for k in range(15):   # its backlog, read within 15 ms after a pause of 901 s
        att.learn_batch("liar", 2 + k, 3_300_000 + 60_000 * k, 3_360_000 + 60_000 * k, [],
                        heard_at_ms=3_901_000 + k)
    att.advance(4_200_000)
    assert att.events.horizon_ms == 2_400_000
    assert att.attribute(flows_to_lb([2_600_000]), attempt=1).outcome.tolist() == [RETRY]


def test_a_region_whose_exporters_all_stopped_settles_by_its_events_alone():
    """Every exporter of the region stops at 1,000 s; flows forwarded from other regions
    to its load balancer still come, and Sonar goes on emitting. The fleet's cap holds the
    WATERMARK's part of the event clock at 1,000 s, not the events' own: events emitted
    every 60 s up to 4,980 s put the 8th latest emit time (event_clock_rank) at 4,560 s,
    and the horizon at 4,560 - 600 s."""
    att = Attributor(CFG)
    for exporter in ("e1", "e2", "e3"):
        att.learn_batch(exporter, 1, 940_000, 1_000_000, [], heard_at_ms=1_000_000)
    att.apply_event(LB, "a", ASSIGNED, 1_500_000, emit_ms=1_500_500, event_id="a")
    for i in range(58):   # other IPs' events (outside the event CIDRs: they only move the clock)
        emit = 1_560_000 + 60_000 * i
        att.apply_event(ip_to_bytes("10.9.0.1"), "x", ASSIGNED, emit - 1_000, emit_ms=emit, event_id=f"x{i}")
    att.advance(10_000_000)
    assert att.events.horizon_ms == 4_560_000 - D
    assert owners_at(att, [3_000_000]) == ["a"]
