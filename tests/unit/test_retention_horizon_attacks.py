"""The retention horizon against an adversary (helper-32's review; each misattributed
before its fix): a restore, which forgot the horizon the restored ranges were pruned at,
and flows just after the horizon, which a pruned range within the lookup's reach (skew
tolerance, joining across G) would have decided otherwise. A flow's answer must not
depend on whether a prune, or a restart, came before its attempt: flows the prune could
have changed are EVIDENCE_EXPIRED."""

from __future__ import annotations

from flink_jobs import batches
from flink_jobs.attribution.config import AttributionConfig
from flink_jobs.attribution.engine import Engine
from flink_jobs.attribution.heartbeats import Claim
from flink_jobs.ownership_store import OwnershipStore
from schemas import flowattr_pb2 as pb
from schemas.columns import ip_to_bytes
from tests.flowbuild import REGIONS, FakeMapState, batch, outcome

# Retention 10 min; G 2 s, tolerance 200 ms, close slack 2 s (the defaults).
CFG = AttributionConfig(retention_ms=600_000, max_attempts=5, new_subnet_ms=0)
IP = ip_to_bytes("10.0.0.9")
EXPIRED = (3, "EVIDENCE_EXPIRED")


def _flow(start_ms: int):
    return batch([("10.0.0.1", 40000, "client", pb.LOCAL_ATTRIBUTION_IP_MAP, "10.0.0.9", 443, start_ms, 1_100_000)])


def _update(exporter: str, claims: list[Claim]):
    header = pb.FlowBatch(exporter_id=exporter, sequence=1, window_start_ms=1_060_000, window_end_ms=1_120_000)
    return batches.ownership_update(header, claims)


def test_a_restored_table_expires_what_its_prune_clipped():
    # W claims the IP over [0, 1,100,000] (host ha), X over [500,000, 1,000,000] (host hb):
    # a flow at 999,950 is in the contested interval (CONFLICT). At watermark 1,600,100 the
    # horizon is 1,000,100: X's claim is pruned and W's clipped to start there.
    state = FakeMapState()
    engine = Engine(CFG, "us-east-1", REGIONS)
    store = OwnershipStore(engine)
    store.sync(state)
    store.learn(state, _update("ha", [Claim(IP, "W", 0, 1_100_000)]))
    store.learn(state, _update("hb", [Claim(IP, "X", 500_000, 1_000_000)]))
    assert outcome(engine, _flow(999_950)) == [(3, "CONFLICT")]
    engine.advance(1_600_100)
    store.prune(state)
    assert outcome(engine, _flow(999_950)) == [EXPIRED]
    # A restart: the engine rebuilt from the broadcast state, then a timer's attempt with no
    # prune before it. The state keeps only the clipped range (W's from 1,000,100), within
    # the tolerance of the flow: W, before the fix.
    restored = Engine(CFG, "us-east-1", REGIONS)
    OwnershipStore(restored).sync(state)
    assert restored.attributor.heartbeats.by_ip[IP].items() == [(1_000_100, 1_100_000, 0)]
    restored.advance(1_600_100)
    assert outcome(restored, _flow(999_950)) == [EXPIRED]


def _prune_between(claims: list[Claim], start_ms: int) -> tuple[list, list]:
    """(the flow's outcome before a prune, after it) with the horizon at 1,000,050."""
    engine = Engine(CFG, "us-east-1", REGIONS)
    engine.learn_batch("ha", 1, 1_060_000, 1_120_000, [claims[0]])
    engine.learn_batch("hb", 1, 1_060_000, 1_120_000, [claims[1]])
    before = outcome(engine, _flow(start_ms))
    engine.advance(1_600_050)
    engine.prune()
    return before, outcome(engine, _flow(start_ms))


def test_a_rival_range_pruned_within_the_tolerance_does_not_leave_the_flow_to_the_other():
    # The flow starts at 1,000,100, 50 ms after the horizon: X's range, contesting W's or
    # ending 100 ms before it, is pruned, and the lookup (+-200 ms) found only W's.
    contested = [Claim(IP, "W", 0, 1_100_000), Claim(IP, "X", 500_000, 1_000_000)]
    within_tolerance = [Claim(IP, "X", 0, 1_000_000), Claim(IP, "W", 1_000_150, 1_100_000)]
    for claims in (contested, within_tolerance):
        before, after = _prune_between(claims, 1_000_100)
        assert before == [(3, "CLOCK_SKEW")]
        assert after == [EXPIRED]


def test_a_join_across_g_lost_to_a_prune_does_not_hand_the_gap_to_a_stale_claim():
    # W's short flows end at 1,000,000 (pruned at horizon 1,000,050); W's long connection
    # from 1,001,500 arrives after the prune. Together, W's coverage joins across the 1.5 s
    # gap (under G) and X's stale claim in it is contested; with the first pruned, X's
    # alone. A flow at 1,000,600 (after the horizon) is CONFLICT without the prune, and was
    # X's with it.
    def run(prune: bool):
        engine = Engine(CFG, "us-east-1", REGIONS)
        engine.learn_batch("ha", 1, 0, 60_000, [Claim(IP, "W", 0, 1_000_000)])
        engine.learn_batch("hb", 1, 0, 60_000, [Claim(IP, "X", 1_000_500, 1_000_700)])
        if prune:
            engine.advance(1_600_050)
            engine.prune()
        engine.learn_batch("ha", 2, 1_060_000, 1_120_000, [Claim(IP, "W", 1_001_500, 1_100_000)])
        engine.learn_batch("hb", 2, 1_060_000, 1_120_000, [])
        return outcome(engine, _flow(1_000_600))
    assert run(prune=False) == [(3, "CONFLICT")]
    assert run(prune=True) == [EXPIRED]


def test_a_flow_beyond_the_reach_of_the_horizon_is_still_attributed():
    # The expiry reaches G + tolerance + close slack (4.2 s) past the horizon, no further:
    # W's alone from 1,000,000 on, a flow at horizon + 4.3 s is W's after the prune.
    engine = Engine(CFG, "us-east-1", REGIONS)
    engine.learn_batch("ha", 1, 1_060_000, 1_120_000, [Claim(IP, "W", 990_000, 1_100_000)])
    engine.advance(1_600_000)
    engine.prune()
    assert outcome(engine, _flow(1_000_000 + 4_300)) == [(1, "W")]
    assert outcome(engine, _flow(1_000_000 + 4_100)) == [EXPIRED]
