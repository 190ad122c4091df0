"""A subnet first heard of through a stale claim: its true host may not be known yet. The
attack (found in a busy fleet's replay, 43 flows misattributed): in the fleet's first
minute another host's stale IP-map entry claims 10.0.7.9 for its old workload, and the
true host h7's first batches are two minutes late. When the flows to 10.0.7.9 are
attempted the collector has never heard of h7: settledness waits only for exporters heard
from, and the subnet newcomer rule needs the subnet's true host known. So a subnet first
heard of less than new_subnet_ms before the fleet's progress proves nothing yet."""

from __future__ import annotations

from flink_jobs import batches
from flink_jobs.attribution.attribute import ATTRIBUTED, RETRY, UNATTRIBUTED
from flink_jobs.attribution.config import AttributionConfig
from flink_jobs.attribution.engine import Engine
from flink_jobs.ownership_store import OwnershipStore
from schemas import flowattr_pb2 as pb
from tests.flowbuild import REGIONS, FakeMapState, batch, outcome

IP_MAP = pb.LOCAL_ATTRIBUTION_IP_MAP
CFG = AttributionConfig(max_attempts=40, new_subnet_ms=5 * 60_000)
MINUTE = 60_000
# The client h1 calls 10.0.7.9 at 19.8 s; h3's stale entry names `old` for 10.0.7.9 at
# 19.725-19.925 s; h7 holds it for `new` (its side of the very connection).
FLOW = batch([("10.0.1.2", 40000, "web", IP_MAP, "10.0.7.9", 8080, 19_800, 19_900)])
STALE = [("10.0.7.9", 8080, "old", IP_MAP, "10.0.9.9", 40001, 19_725, 19_925)]
TRUE_SIDE = [("10.0.7.9", 8080, "new", IP_MAP, "10.0.1.2", 40000, 19_800, 19_900)]


def _batch_of(e: Engine, host: str, sequence: int, rows, heard_ms: int, window: int | None = None) -> None:
    """`host`'s batch #sequence for minute `window` (default sequence - 1), heard at heard_ms."""
    start = (sequence - 1 if window is None else window) * MINUTE
    own = [(f"10.0.{host[1:]}.2", 8080, "svc-" + host, IP_MAP, "10.0.9.9", 40002, start + 1, start + 2)]
    e.learn_batch(host, sequence, start, start + MINUTE, e.claims(batch(own + rows)), heard_at_ms=heard_ms)


def _minutes(e: Engine, first: int, last: int, hosts=("h1", "h2", "h3"), stale_in: int = 1) -> None:
    """Each host's batches #first..#last, each heard 2 s after its window; h3's batch
    #stale_in carries the stale claim. The driver's watermark follows the windows."""
    for seq in range(first, last + 1):
        for host in hosts:
            _batch_of(e, host, seq, STALE if host == "h3" and seq == stale_in else [], seq * MINUTE + 2_000)
        e.advance(seq * MINUTE)


def test_a_subnet_first_heard_of_through_a_stale_claim_proves_nothing_yet():
    e = Engine(CFG, "us-east-1", REGIONS)
    _minutes(e, 1, 2)
    # Without the rule: (ATTRIBUTED, "old"), from h3's stale claim alone.
    assert outcome(e, FLOW) == [(RETRY, "EVIDENCE_UNSETTLED")]
    # h7's first batch arrives, late, with the true owner's side: a conflict, never `old`.
    _batch_of(e, "h7", 1, TRUE_SIDE, 185_000)
    _minutes(e, 3, 8)
    assert outcome(e, FLOW) == [(UNATTRIBUTED, "CONFLICT")]


def test_once_the_fleet_has_moved_on_new_subnet_ms_the_claim_is_trusted_as_before():
    e = Engine(CFG, "us-east-1", REGIONS)
    _minutes(e, 1, 5)      # 10.0.7.0/24 first heard at the fleet's 60 s; the fleet at 300 s
    assert outcome(e, FLOW) == [(RETRY, "EVIDENCE_UNSETTLED")]
    _minutes(e, 6, 6)      # the fleet at 360 s: 5 min on, h7 never sent, it is not there
    assert outcome(e, FLOW)[0] == (ATTRIBUTED, "old")


def test_a_stale_claims_late_batch_does_not_make_its_subnet_look_old():
    """h3's batch with the stale claim (window 0) arrives at minute 10: the subnet is first
    heard of at the fleet's progress then, not at the window's start."""
    e = Engine(CFG, "us-east-1", REGIONS)
    for seq in range(2, 11):
        for host in ("h1", "h2", "h3"):
            _batch_of(e, host, seq, [], seq * MINUTE + 2_000)
        e.advance(seq * MINUTE)
    _batch_of(e, "h3", 1, STALE, 10 * MINUTE + 3_000)
    assert outcome(e, FLOW) == [(RETRY, "EVIDENCE_UNSETTLED")]   # first version: (ATTRIBUTED, "old")


def test_a_fleet_heard_for_long_is_no_help_in_a_subnet_it_has_never_heard_of():
    """h1 alone for 16 min; then h2 and h3 come back, h3 with a stale claim on 10.0.7.9
    (minute 17), and the true host h7 two minutes late. Listening long to some of the
    fleet says nothing about a subnet first heard of now."""
    e = Engine(CFG, "us-east-1", REGIONS)
    stale = [(*row[:6], row[6] + 16 * MINUTE, row[7] + 16 * MINUTE) for row in STALE]
    for seq in range(1, 17):
        _batch_of(e, "h1", seq, [], seq * MINUTE + 2_000)
    for host in ("h1", "h2", "h3"):
        _batch_of(e, host, 17, stale if host == "h3" else [], 17 * MINUTE + 2_000, window=16)
    _batch_of(e, "h1", 18, [], 18 * MINUTE + 2_000, window=17)
    e.advance(18 * MINUTE)
    flow = batch([("10.0.1.2", 40000, "web", IP_MAP, "10.0.7.9", 8080, 16 * MINUTE + 19_800, 16 * MINUTE + 19_900)])
    assert outcome(e, flow) == [(RETRY, "EVIDENCE_UNSETTLED")]


def test_a_restore_keeps_when_each_subnet_was_first_heard_of():
    """The subnets' first-heard times are in the broadcast state ("sn:" keys): a collector
    restored from a checkpoint goes on with the same wait, no shorter, no longer."""
    for minutes, expected in ((7, (ATTRIBUTED, "old")), (3, (RETRY, "EVIDENCE_UNSETTLED"))):
        before = Engine(CFG, "us-east-1", REGIONS)
        store, state = OwnershipStore(before), FakeMapState()
        store.sync(state, 0)
        for seq in range(1, minutes + 1):
            for host in ("h1", "h2", "h3"):
                rows = STALE if host == "h3" and seq == 1 else []
                header = pb.FlowBatch(exporter_id=host, sequence=seq, window_start_ms=(seq - 1) * MINUTE,
                                      window_end_ms=seq * MINUTE, part_count=1)
                store.learn(state, batches.ownership_update(header, before.claims(batch(rows)) if rows else []),
                            seq * MINUTE + 2_000)
        restored = Engine(CFG, "us-east-1", REGIONS)
        OwnershipStore(restored).sync(state, 10_000_000)
        restored.advance(minutes * MINUTE)  # a timer's watermark, as the job's attempts have
        assert outcome(restored, FLOW)[0] == expected, minutes


def test_claims_read_ahead_of_the_watermark_do_not_age_a_subnet():
    """The job reads some partitions ahead of others: the fleet's progress follows the
    claims read first, the watermark what every input has reached. A subnet ages by the
    earlier of the two."""
    e = Engine(CFG, "us-east-1", REGIONS)
    _minutes(e, 1, 2)
    for seq in range(3, 12):   # read far ahead, the watermark still at minute 2
        for host in ("h1", "h2", "h3"):
            _batch_of(e, host, seq, [], seq * MINUTE + 2_000)
    assert outcome(e, FLOW) == [(RETRY, "EVIDENCE_UNSETTLED")]
    e.advance(11 * MINUTE)
    assert outcome(e, FLOW)[0] == (ATTRIBUTED, "old")
