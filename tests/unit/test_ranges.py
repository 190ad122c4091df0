"""Ownership ranges as timelines. G (merge gap) = 2000 ms, tolerance = 200 ms throughout;
every expected value below is worked out by hand from the rules in ranges.py."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flink_jobs.attribution.attribute import CLOCK_SKEW, CONFLICT, EXPIRED, NO_EVIDENCE, lookup_ip
from flink_jobs.attribution.ranges import CONTESTED, IpRanges, OwnershipTable

G, TOL = 2000, 200
IP = bytes(10) + b"\xff\xff" + bytes([10, 0, 0, 7])
X, Y = "x-service", "y-service"


def table() -> OwnershipTable:
    return OwnershipTable(merge_gap_ms=G, retention_ms=3_600_000)


def timeline(t: OwnershipTable) -> list[tuple[int, int, str]]:
    return [(s, e, "CONTESTED" if o == CONTESTED else t.names.names[o])
            for s, e, o in t.by_ip[IP].items()]


def owner_at(t: OwnershipTable, when: int):
    o, _, _, r = lookup_ip(t.by_ip.get(IP), np.array([when]), TOL, t.horizon_ms)
    return t.names.names[o[0]] if o[0] >= 0 else int(r[0])


def test_overlapping_heartbeats_of_one_workload_union():
    t = table()
    t.learn(IP, X, 1000, 5000)
    t.learn(IP, X, 4000, 9000)
    assert timeline(t) == [(1000, 9000, X)]


def test_gap_shorter_than_G_is_joined_longer_gap_is_not():
    t = table()
    t.learn(IP, X, 0, 10_000)
    t.learn(IP, X, 11_999, 15_000)       # gap 1999 ms < G: joined
    t.learn(IP, X, 17_001, 20_000)       # gap 2001 ms > G: new range
    assert timeline(t) == [(0, 15_000, X), (17_001, 20_000, X)]
    assert owner_at(t, 16_000) == NO_EVIDENCE  # the gap stays unknown


def test_range_is_never_stretched_over_another_workload():
    t = table()
    t.learn(IP, X, 0, 1000)
    t.learn(IP, Y, 5000, 6000)            # Y after a 4 s gap (fast reuse)
    t.learn(IP, X, 10_000, 11_000)        # X again after another 4 s
    assert timeline(t) == [(0, 1000, X), (5000, 6000, Y), (10_000, 11_000, X)]
    assert owner_at(t, 5500) == Y
    assert owner_at(t, 8000) == NO_EVIDENCE


def test_overlapping_claims_of_two_workloads_leave_a_contested_interval():
    t = table()
    t.learn(IP, X, 0, 10_000)
    t.learn(IP, Y, 8000, 20_000)
    assert timeline(t) == [(0, 7999, X), (8000, 10_000, "CONTESTED"), (10_001, 20_000, Y)]
    assert t.conflicts_total == 1
    assert owner_at(t, 9000) == CONFLICT
    assert owner_at(t, 7000) == X                  # 1 s clear of the contested interval
    assert owner_at(t, 7900) == CLOCK_SKEW         # within 200 ms of it
    assert owner_at(t, 15_000) == Y


def test_claim_spanning_a_contested_interval_does_not_erase_it():
    t = table()
    t.learn(IP, X, 0, 10_000)
    t.learn(IP, Y, 4000, 5000)                     # contested [4000, 5000] inside X
    t.learn(IP, X, 3000, 6000)                     # X again over it
    assert timeline(t) == [(0, 3999, X), (4000, 5000, "CONTESTED"), (5001, 10_000, X)]
    assert owner_at(t, 4500) == CONFLICT


def test_flow_just_before_the_owners_first_heartbeat_is_attributed_within_tolerance():
    # A connects at 999_900 (its clock); B accepts and its socket starts at 1_000_000.
    t = table()
    t.learn(IP, X, 1_000_000, 1_030_000)
    assert owner_at(t, 999_900) == X
    assert owner_at(t, 999_700) == NO_EVIDENCE     # 300 ms before: beyond the tolerance


def test_two_owners_within_tolerance_is_clock_skew_not_a_guess():
    t = table()
    t.learn(IP, X, 0, 1000)
    t.learn(IP, Y, 1150, 3000)                     # only 150 ms apart (violates G)
    assert owner_at(t, 1050) == CLOCK_SKEW
    assert owner_at(t, 1100) == CLOCK_SKEW


def test_pruning_drops_old_ranges_and_expires_old_flows():
    t = OwnershipTable(merge_gap_ms=G, retention_ms=60_000)
    t.learn(IP, X, 0, 10_000)
    t.learn(IP, Y, 50_000, 70_000)
    assert t.prune(now_ms=75_000) == 1             # horizon 15_000: X's range ended before (1 IP changed)
    assert timeline(t) == [(50_000, 70_000, Y)]
    assert owner_at(t, 5000) == EXPIRED
    assert t.learn(IP, X, 0, 9000).ignored          # a heartbeat older than the horizon
    t.learn(IP, X, 10_000, 20_000)                  # straddles: clipped to the horizon
    assert timeline(t) == [(15_000, 20_000, X), (50_000, 70_000, Y)]


def test_compact_encoding_round_trips_and_is_small():
    t = table()
    t.learn(IP, X, 1_790_000_000_000, 1_790_000_060_000, exporter="ec2-001")
    t.learn(IP, Y, 1_790_000_050_000, 1_790_000_090_000, exporter="ec2-002")
    t.learn(IP, X, 1_790_000_100_000, 1_790_000_110_000, exporter="ec2-001")
    value = t.encode_ip(IP)
    # Two workloads: stored as each one's coverage (the ranges are computed from it on
    # restore): X 0-60 s and 100-110 s, Y 50-90 s, 3 ranges where the table has 4.
    # 2 + (1+9) + (1+9) names, 2 + 3 ranges x 14 bytes, 2 + 2 x (1+7) claimant exporters
    assert len(value) == 2 + 10 + 10 + 2 + 3 * 14 + 2 + 2 * 8
    other = OwnershipTable(merge_gap_ms=G, retention_ms=3_600_000)
    other.names.id("unrelated")                     # ids differ between processes
    other.restore_ip(IP, value)
    assert timeline(other) == timeline(t)
    assert other.claimants[IP] == {"ec2-001", "ec2-002"}


@pytest.mark.parametrize("claims", [
    [(0, 10, "a"), (5, 20, "b"), (15, 30, "a"), (100, 200, "c")],
    [(50, 60, "a"), (0, 100, "b"), (40, 45, "a")],
])
def test_ranges_stay_sorted_and_disjoint(claims):
    r = IpRanges()
    ids = {"a": 0, "b": 1, "c": 2}
    for s, e, w in claims:
        r.learn(ids[w], s, e, merge_gap_ms=3)
    items = r.items()
    assert all(a[1] < b[0] for a, b in zip(items, items[1:], strict=False))
    assert all(s <= e for s, e, _ in items)


@pytest.mark.parametrize("order", [("X1", "X2", "Y"), ("X1", "Y", "X2"), ("Y", "X1", "X2"), ("X2", "Y", "X1")])
def test_a_claim_inside_a_gap_shorter_than_G_is_contested_in_any_order(order):
    # X at 0-10 s and 11.5-20 s (1.5 s apart, under G: no other workload can have held the
    # IP between), Y at 10.5-11 s, inside that gap. X's claims join across Y's: 0-20 s is
    # X's coverage, 10.5-11 s also Y's, so contested; X keeps 0-10.499 s and 11.001-20 s.
    # Built claim by claim, Y first between X's claims used to keep 10.5-11 s (a review).
    claims = {"X1": (X, 0, 10_000), "X2": (X, 11_500, 20_000), "Y": (Y, 10_500, 11_000)}
    t = table()
    for name in order:
        t.learn(IP, *claims[name])
    assert timeline(t) == [(0, 10_499, X), (10_500, 11_000, "CONTESTED"), (11_001, 20_000, X)]
    assert owner_at(t, 10_700) == CONFLICT


def test_a_state_value_written_before_coverage_restores_to_the_same_ranges():
    # An older version wrote a key's ranges as they were, contested intervals included:
    # X 0-4999, contested 5000-6000, Y 6001-9000, one claimant.
    import struct
    value = (struct.pack("<H", 2) + b"\x09" + X.encode() + b"\x09" + Y.encode() + struct.pack("<H", 3)
             + struct.pack("<qIh", 0, 4_999, 0) + struct.pack("<qIh", 5_000, 1_000, -1)
             + struct.pack("<qIh", 6_001, 2_999, 1) + struct.pack("<H", 1) + b"\x02h1")
    t = table()
    t.restore_ip(IP, value)
    assert timeline(t) == [(0, 4_999, X), (5_000, 6_000, "CONTESTED"), (6_001, 9_000, Y)]
    t.learn(IP, Y, 9_500, 12_000)   # Y again, 500 ms later: joined to Y's range
    assert timeline(t) == [(0, 4_999, X), (5_000, 6_000, "CONTESTED"), (6_001, 12_000, Y)]
    other = table()
    other.restore_ip(IP, t.encode_ip(IP))
    assert timeline(other) == timeline(t)


_claims = st.lists(st.tuples(st.sampled_from("ABC"), st.integers(0, 60_000), st.integers(0, 15_000)),
                   min_size=1, max_size=6)


@given(claims=_claims, order=st.randoms(use_true_random=False))
@settings(max_examples=400, deadline=None)
def test_the_table_is_the_same_whatever_order_the_claims_come_in(claims, order):
    """What two attribute instances hold after the same claims read in different orders,
    and after a restore of either: the same ranges."""
    def learned(sequence):
        t = table()
        for workload, start, length in sequence:
            t.learn(IP, workload, start, start + length)
        return t
    first = learned(claims)
    shuffled = list(claims)
    order.shuffle(shuffled)
    second = learned(shuffled)
    assert timeline(second) == timeline(first)
    restored = table()
    restored.restore_ip(IP, second.encode_ip(IP))
    assert timeline(restored) == timeline(first)
    # Ranges stay sorted and disjoint, and no two touching ranges have one owner.
    items = first.by_ip[IP].items()
    assert all(s <= e for s, e, _ in items)
    assert all(a[1] < b[0] and not (a[2] == b[2] and a[1] + 1 == b[0]) for a, b in zip(items, items[1:], strict=False))
    # Pruned at the same horizon, they stay the same, and nothing before it survives.
    horizon = order.randint(0, 80_000)
    for t in (first, second, restored):
        t.prune_changed(horizon + t.retention_ms)
    if IP in first.by_ip:
        assert timeline(second) == timeline(restored) == timeline(first)
        assert first.by_ip[IP].starts[0] >= horizon
    else:
        assert IP not in second.by_ip and IP not in restored.by_ip


def test_a_key_reused_by_another_workload_keeps_only_its_ranges():
    # X until 10 s, Y from 60 s: no claim of one within G of the other's, so no coverage
    # is kept (memory), and the ranges are what IpRanges.learn makes.
    t = table()
    t.learn(IP, X, 0, 10_000)
    t.learn(IP, Y, 60_000, 70_000)
    t.learn(IP, Y, 71_000, 80_000)
    assert timeline(t) == [(0, 10_000, X), (60_000, 80_000, Y)] and IP not in t.coverage
    t.learn(IP, X, 58_500, 59_000)   # X 1 s before Y's range: within G, so both are kept
    assert IP in t.coverage and timeline(t) == [(0, 10_000, X), (58_500, 59_000, X), (60_000, 80_000, Y)]


def test_a_range_longer_than_a_u32_of_milliseconds_restores_whole():
    # 55 days of X with 1 s of Y at day 52 inside: contested there. A duration is stored
    # as a u32 (49.7 days): cut, X's coverage would end before day 52 and Y own it.
    day = 86_400_000
    t = OwnershipTable(merge_gap_ms=G, retention_ms=100 * day)
    t.learn(IP, X, 0, 55 * day)
    t.learn(IP, Y, 52 * day, 52 * day + 1_000)
    other = OwnershipTable(merge_gap_ms=G, retention_ms=100 * day)
    other.restore_ip(IP, t.encode_ip(IP))
    assert timeline(other) == timeline(t) == [(0, 52 * day - 1, X), (52 * day, 52 * day + 1_000, "CONTESTED"),
                                              (52 * day + 1_001, 55 * day, X)]


def test_a_key_past_the_range_cap_contests_its_older_half_and_still_saves():
    # helper-32: encode_ip counts a key's ranges in a u16, and a key of 65,536 ranges failed
    # the task at every restore. One workload polled every 2.5 s (10 ms each, gaps over G:
    # never joined) over 48 h of retention: at MAX_RANGES_PER_KEY + 1 ranges the older half
    # becomes one contested interval (never a wrong answer) and the key saves and restores.
    from flink_jobs.attribution.ranges import MAX_RANGES_PER_KEY
    t = OwnershipTable(merge_gap_ms=G, retention_ms=48 * 3_600_000)
    polls = MAX_RANGES_PER_KEY + 1
    for k in range(polls):
        t.learn(IP, X, k * 2_500, k * 2_500 + 10)
    cut = (polls // 2) * 2_500 + 10     # the end of range polls // 2 (of polls), the middle one
    assert timeline(t)[0] == (0, cut + G, "CONTESTED")   # + G: a join across a gap under G it could hide
    assert len(t.by_ip[IP]) == 1 + (polls - polls // 2 - 1) <= MAX_RANGES_PER_KEY   # contested + the rest
    assert owner_at(t, 5) == CONFLICT and owner_at(t, cut + 2_500 - 10 + 5) == X   # the first kept poll
    assert owner_at(t, (polls - 1) * 2_500 + 5) == X
    other = OwnershipTable(merge_gap_ms=G, retention_ms=48 * 3_600_000)
    other.restore_ip(IP, t.encode_ip(IP))
    assert timeline(other) == timeline(t)
    # helper-33: X's stale claim in a gap under G after the cut, then X's connection 1.5 s
    # after it (X held the IP throughout: joined across the gap): contested, not Y's.
    t.learn(IP, X, cut + 1_500, cut + 1_600)
    t.learn(IP, Y, cut + 500, cut + 1_000)
    assert owner_at(t, cut + 700) == CONFLICT
