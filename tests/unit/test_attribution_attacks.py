"""Attacks found by an adversarial review of the core (each misattributed before its fix):
pruning or capping an event log past an ambiguous re-assignment, a connection's other side
in the neighbouring window (close slack), a new host's late batch #1, a lost batch of an
exporter that later went away, and a future-stamped event saved during the warm-up and
restored as evidence. Each docstring says whether the attack is inside the assumptions."""

from __future__ import annotations

from flink_jobs.attribution.attribute import ATTRIBUTED, RETRY, UNATTRIBUTED
from flink_jobs.attribution.attributor import Attributor
from flink_jobs.attribution.config import AttributionConfig
from flink_jobs.attribution.engine import Engine
from flink_jobs.attribution.events import ASSIGNED
from flink_jobs.ownership_store import OwnershipStore
from schemas import flowattr_pb2 as pb
from schemas.columns import ip_to_bytes
from tests.flowbuild import REGIONS, FakeMapState, batch, learn, outcome, owners_at

CFG = AttributionConfig(max_attempts=40)
IP_MAP = pb.LOCAL_ATTRIBUTION_IP_MAP

# Event path config (as tests/unit/test_events_adversary.py): err = 1000 + 2 x 200 = 1400 ms.
D, ERR, TOL = 600_000, 1_000, 200
ECFG = AttributionConfig(event_cidrs=("10.250.0.0/24",), event_max_delay_ms=D, event_time_error_ms=ERR,
                         skew_tolerance_ms=TOL, event_future_bound_ms=600_000, max_attempts=40)
LB = ip_to_bytes("10.250.0.5")












def test_event_prune_drops_an_ambiguous_reassignment_and_trusts_the_survivor():
    """INSIDE the assumptions (timestamps within err, delay within D).
    X is ASSIGNED stamped 100.0 s and W ASSIGNED stamped 101.0 s: 1 s apart < 2 err, so
    the true order may be W then X (W truly at 100.0, X truly at 101.0), and X may hold
    the LB ever since. With both events event_ranges() attributes nothing (correct).
    EventTable.prune() keeps only the LAST event before horizon - 2 err, drops X and sets
    known_from = X + 2 err + 1, which does not stop W's assignment (it is no longer seen
    as ambiguous): after the prune, a flow 2 h later goes to W.
    Fix: events.py EventTable.prune/_drop_oldest must not let a kept ASSIGNED within 2 err
    after a dropped owner-changing event become trusted (keep the dropped events that lie
    within 2 err before the first kept one, or pass the dropped events' latest time to
    event_ranges and skip assignments within 2 err after it)."""
    att = Attributor(ECFG)
    att.apply_event(LB, "x", ASSIGNED, 100_000, emit_ms=100_500, event_id="x1")
    att.apply_event(LB, "w", ASSIGNED, 101_000, emit_ms=101_500, event_id="w1")
    now = 100_000 + 4 * 3_600_000
    att.advance(now)
    probe = now - 2 * 3_600_000          # after the retention horizon, before the event horizon
    assert owners_at(att, [probe]) == [None]  # holds on the current code
    att.prune(now)
    assert owners_at(att, [probe]) == [None]  # first version: attributed to "w"


def test_per_ip_event_cap_drops_an_ambiguous_reassignment_and_trusts_the_survivor():
    """INSIDE the assumptions: an LB re-pointed every 15 s (the harsh profile's rate) has
    more than MAX_EVENTS_PER_IP = 256 events within the 3 h retention. Same defect as the
    prune test through _drop_oldest: X@100.0 s and W@101.0 s are ambiguous (nothing is
    attributed in [101 s, 200 s) while both are known); once X is the oldest event dropped
    by the cap, W is trusted from X + 2 err + 1 on, though X may truly be the later one.
    Fix: as for the prune test (events.py _drop_oldest / event_ranges)."""
    att = Attributor(ECFG)
    att.apply_event(LB, "x", ASSIGNED, 100_000, emit_ms=100_500, event_id="x1")
    att.apply_event(LB, "w", ASSIGNED, 101_000, emit_ms=101_500, event_id="w1")
    # From 200 s on, the LB is re-pointed every 15 s between two other services.
    for i in range(255):
        t = 200_000 + 15_000 * i
        if i == 254:  # 256 events known: nothing is attributed at 150 s (correct)
            att.advance(t + D)
            assert owners_at(att, [150_000]) == [None]
        att.apply_event(LB, "a" if i % 2 == 0 else "b", ASSIGNED, t, emit_ms=t + 500, event_id=f"r{i}")
    att.advance(200_000 + 15_000 * 255 + D + 60_000)
    assert owners_at(att, [150_000]) == [None]  # first version: the 257th event dropped "x"; "w" wins


def test_settledness_ignores_the_close_slack_of_batch_windows():
    """INSIDE the assumptions. Rows may end up to 2 s before their batch's window (rows.py
    close_slack_ms: windows are cut by close time on the host clock), so the true host's
    record of a connection ending at 59.0 s may be in its batch for [60 s, 120 s).
    Host h1 handed 10.0.0.7 from `old` to `new`; a stale IP-map entry on h1 (the stale
    claim of test_a_stale_claim_waits_while_the_claimants_batch_is_missing) claims `old`
    through 59.5 s in batch #1. A flow to 10.0.0.7 at 58.5-59.0 s is attempted at the end
    of the hold (120 s), when h1's batch #2 - holding `new`'s side of this very connection -
    is not there yet (it is sent at 120 s). ExporterLedger only waits for windows
    overlapping [end - 200 ms, end + 200 ms]: the flow is "settled" and goes to `old`.
    Fix: attributor.py Attributor._unsettled: widen lo/hi by the rows' close slack (2 s,
    RowRules.close_slack_ms) so the window after (and before) is waited for too."""
    e = Engine(CFG, "us-east-1", REGIONS)
    learn(e, "h1", 1, 0, batch([("10.0.0.7", 8080, "old", IP_MAP, "10.0.0.1", 40000, 20_000, 59_500)]))
    flow = batch([("10.0.0.1", 40002, "web", IP_MAP, "10.0.0.7", 8080, 58_500, 59_000)])
    assert outcome(e, flow) == [(RETRY, "EVIDENCE_UNSETTLED")]   # first version: (ATTRIBUTED, "old")
    # h1's batch #2 arrives with `new`'s record of the connection (end 59.0 s, within the slack).
    learn(e, "h1", 2, 60_000, batch([("10.0.0.7", 8080, "new", IP_MAP, "10.0.0.1", 40002, 58_500, 59_000)]))
    assert outcome(e, flow) == [(UNATTRIBUTED, "CONFLICT")]


def test_settledness_does_not_wait_for_an_exporters_batches_before_its_first_seen():
    """INSIDE the assumptions (batches numbered 1, 2, 3 ..., one per minute, some delayed).
    A new host h9 starts sending; its batch #1 ([0, 60 s), with `new`'s side of a flow at
    30 s) is delayed, its batch #2 arrived. ExporterLedger treats sequences before the first
    one seen as "history from before this collector's state", so nothing before #2 is
    waited for. A stale claim of `old` (host h3's IP map, itself long in the subnet) on
    10.0.0.7 then wins for the flow at 30 s.
    Fix: ledger.py unsettled_spans: when runs[0].first > 1, report the missing lower
    sequences as a gap ending at runs[0].first_start_ms - 1 (bounded below by when this
    collector's state began), instead of assuming they are older history."""
    e = Engine(CFG, "us-east-1", REGIONS)
    # h3 has claimed in the subnet for an hour (not a newcomer); at 20-59 s it claims 10.0.0.7.
    learn(e, "h3", 1, -3_600_000, batch([("10.0.0.8", 8080, "db", IP_MAP, "10.0.0.1", 40000,
                                          -3_590_000, -3_580_000)]))
    for seq in range(2, 62):
        learn(e, "h3", seq, -3_600_000 + (seq - 1) * 60_000, batch([]))
    learn(e, "h3", 62, 0, batch([("10.0.0.7", 8080, "old", IP_MAP, "10.0.0.1", 40001, 20_000, 59_000)]))
    learn(e, "h3", 63, 60_000, batch([]))
    # h9: #2 arrived (new on 10.0.0.7 at 70-75 s); #1 is late.
    learn(e, "h9", 2, 60_000, batch([("10.0.0.7", 8080, "new", IP_MAP, "10.0.0.1", 40002, 70_000, 75_000)]))
    flow = batch([("10.0.0.1", 40003, "web", IP_MAP, "10.0.0.7", 8080, 30_000, 30_500)])
    assert outcome(e, flow) == [(RETRY, "EVIDENCE_UNSETTLED")]   # first version: (ATTRIBUTED, "old")
    learn(e, "h9", 1, 0, batch([("10.0.0.7", 8080, "new", IP_MAP, "10.0.0.1", 40003, 30_000, 30_500)]))
    assert outcome(e, flow) == [(UNATTRIBUTED, "CONFLICT")]


def test_a_gone_exporters_lost_batch_is_forgiven_and_the_stale_claim_wins():
    """INSIDE the assumptions (batches may be lost; hosts terminate; the README: "a lost
    batch leaves a sequence gap no claim can fill, so flows ... stay EVIDENCE_UNSETTLED").
    h1 owns 10.0.0.7 (`new`). Its batch #2 (with `new`'s side of a flow at 70 s) is lost,
    #3 arrives, then h1 is terminated. A stale claim of `old` from h3 covers 65-110 s.
    While h1 is alive the flow correctly waits. 15 min later h1 is "gone" and
    ExporterLedger.unsettled_spans returns [] for it - dropping the INTERNAL gap #2 as well
    as the open tail - so at a later retry the stale claim wins.
    Fix: ledger.py unsettled_spans: for a gone exporter drop only the open-ended tail,
    keep the gaps between its runs (those batches can never arrive: flows there stay
    unsettled until max_attempts and end EVIDENCE_UNSETTLED)."""
    e = Engine(CFG, "us-east-1", REGIONS)
    learn(e, "h3", 1, -3_600_000, batch([("10.0.0.8", 8080, "db", IP_MAP, "10.0.0.1", 40000,
                                          -3_590_000, -3_580_000)]))
    learn(e, "h1", 1, 0, batch([("10.0.0.7", 8080, "new", IP_MAP, "10.0.0.1", 40000, 1_000, 5_000)]))
    # h1 #2 (60-120 s) is lost; #3 arrives; then h1 is gone.
    learn(e, "h1", 3, 120_000, batch([]))
    learn(e, "h3", 2, 60_000, batch([("10.0.0.7", 8080, "old", IP_MAP, "10.0.0.1", 40001, 65_000, 110_000)]))
    flow = batch([("10.0.0.1", 40002, "web", IP_MAP, "10.0.0.7", 8080, 70_000, 70_500)])
    assert outcome(e, flow, attempts_made=1) == [(RETRY, "EVIDENCE_UNSETTLED")]  # holds
    for seq, start in enumerate(range(120_000, 1_200_000, 60_000), start=3):
        learn(e, "h3", seq, start, batch([]))            # the fleet goes on for 18 min
    assert outcome(e, flow, attempts_made=18) == [(RETRY, "EVIDENCE_UNSETTLED")]  # first version: "old"



def _store(cfg) -> OwnershipStore:
    """The job's broadcast-state side: an engine and its store, as Attribute.open makes them."""
    return OwnershipStore(Engine(cfg, "us-east-1", REGIONS))


def _event(ip: bytes, workload: str, action: int, event_ms: int, emit_ms: int, event_id: str) -> bytes:
    return pb.IpChangeEvent(ip=ip, workload=workload, action=action, event_time_ms=event_ms,
                            emit_time_ms=emit_ms, event_id=event_id).SerializeToString()


def test_a_future_lie_dead_lettered_during_warm_up_becomes_evidence_after_a_restore():
    """Documented defence broken (config.py: a future-stamped event is "rejected
    (dead-lettered), never evidence"). The lie itself is outside the timestamp assumption,
    but the README lists future-stamped events as an attack the job withstands.
    The first version of the job wrote every WARMING_UP event into the "ev:<ip>" broadcast
    state before it was judged. When the warm-up buffer is flushed the lie
    is judged FUTURE and dead-lettered, but it stays in the saved log. After a restart,
    EventTable.restore re-judges it against the RESTORED clock, which has by then passed
    its time: the dead-lettered lie is now evidence, and a flow goes to the liar.
    Fixed in OwnershipStore.apply_event: an event log is saved only once every buffered
    event has been judged."""
    lie = "evil"
    store = _store(ECFG)
    state = FakeMapState()
    # Warm-up: the lie (stamped 10 000 s) first, then 8 ordinary events around 1 000 s.
    store.apply_event(state, _event(LB, lie, ASSIGNED, 10_000_000, 10_000_000, "lie"))
    store.apply_event(state, _event(LB, "x", ASSIGNED, 1_000_000, 1_000_500, "x1"))
    other = ip_to_bytes("10.1.0.1")    # outside the event CIDRs: only moves the clock
    dead = []
    for i in range(7):
        dead += store.apply_event(state, _event(other, "z", ASSIGNED, 1_000_000 + i, 1_000_600 + i, f"o{i}")).rejected
    assert len(dead) == 1            # the lie was dead-lettered at the flush (holds)
    # The stream goes on to 10 700 s (the job's watermark); nothing happens on the LB (x
    # holds it). The next event saves the clock with that watermark.
    store.engine.advance(10_700_000)
    store.apply_event(state, _event(other, "z", ASSIGNED, 10_699_000, 10_700_000, "p"))
    assert owners_at(store.engine.attributor, [10_050_000]) == ["x"]     # holds before the restart
    restarted = _store(ECFG)
    restarted.sync(state)
    assert owners_at(restarted.engine.attributor, [10_050_000]) == ["x"]  # first version: "evil"


def test_one_exporter_stamped_a_day_ahead_does_not_make_the_fleet_look_gone():
    """OUTSIDE the assumptions for one exporter (its clock, or its batch headers, a day
    ahead: in a replay of past data the wall-clock bound of the validators cannot catch it).
    h1 owns 10.0.0.7 (`new`); its batch #2 (with `new`'s side of a flow at 70 s) is late. A
    stale claim of `old` from h3 covers 65-110 s. A third exporter's batch says its window
    ended a day later. The first version took the fleet's progress as the LATEST window end
    of any exporter: h1 was a day behind it, so "gone" (ledger.py), its missing #2 was no
    longer waited for, and the stale claim won at once.
    Fix: ledger.py: the fleet's progress is the fleet_clock_rank-th latest exporter's
    latest window end, so fewer than that many exporters cannot move it."""
    e = Engine(CFG, "us-east-1", REGIONS)
    learn(e, "h3", 1, -3_600_000, batch([("10.0.0.8", 8080, "db", IP_MAP, "10.0.0.1", 40000,
                                          -3_590_000, -3_580_000)]))
    learn(e, "h1", 1, 0, batch([("10.0.0.7", 8080, "new", IP_MAP, "10.0.0.1", 40000, 1_000, 5_000)]))
    learn(e, "h3", 2, 60_000, batch([("10.0.0.7", 8080, "old", IP_MAP, "10.0.0.1", 40001, 65_000, 110_000)]))
    flow = batch([("10.0.0.1", 40002, "web", IP_MAP, "10.0.0.7", 8080, 70_000, 70_500)])
    assert outcome(e, flow) == [(RETRY, "EVIDENCE_UNSETTLED")]   # h1's #2 may still come
    learn(e, "ahead", 1, 86_400_000, batch([]))
    assert outcome(e, flow) == [(RETRY, "EVIDENCE_UNSETTLED")]   # first version: (ATTRIBUTED, "old")
    # The fleet itself moving on (h3 and two more exporters, 20 min) does make h1 gone.
    for seq, start in enumerate(range(120_000, 1_320_000, 60_000), start=3):
        for exporter in ("h3", "h4", "h5"):
            learn(e, exporter, seq, start, batch([]))
    assert outcome(e, flow, attempts_made=20) == [(ATTRIBUTED, "old")]
