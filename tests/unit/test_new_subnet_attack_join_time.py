"""A review's attack on the new-subnet wait (passes since the fix: the newcomer rule
keeps window-start joins; a subnet's first-heard time is kept apart).

Attack 1: the changed join time (max(window start, fleet time at learning)) weakens the
EXISTING newcomer rule. Each test asserts what a correct engine must do; a failure would be a
successful attack.

Cast: h1, h2, h3 timely (heard 2 s after each window). h7 is the true host of
10.0.7.0/24 since window 0, but its batches are delivered 8 min late (every batch heard
8 min + 1 s after its window ends: a spooling exporter, a slow link; flowattr's simulator
delays 5% of batches by up to 10 min). The watermark follows arrival times, as in replay.py.
h3 (subnet 10.0.3.0/24) gets a stale IP-map entry for 10.0.7.9 (`old`) at minute 3 and
keeps claiming it. At minute 12 h1 calls 10.0.7.9, whose true owner is a new pod on h7
(`new`): h7's side of that connection is in its window-12 batch, read at 21:01.

Before the change: h7 joined the subnet at 0 (its window), h3 at 3 min: h3 is a newcomer
(> 2 min after the subnet's first), so flows starting before 13 min wait for h7 too.
After: h7's join is the fleet's progress when its first batch was READ (8 min), h3's is
4 min: h3 is now the subnet's FIRST member, not a newcomer; and the subnet, "first heard
of" at 4 min, stops being new at fleet time 19 min. At fleet time 20 min only h3 is
waited for; it is settled; the flow goes to `old`.
"""

from __future__ import annotations

from flink_jobs.attribution.attribute import ATTRIBUTED
from flink_jobs.attribution.config import AttributionConfig
from flink_jobs.attribution.engine import Engine
from schemas import flowattr_pb2 as pb
from tests.flowbuild import REGIONS, batch, outcome

IP_MAP = pb.LOCAL_ATTRIBUTION_IP_MAP
MIN = 60_000
CFG = AttributionConfig(max_attempts=40)     # defaults: new_subnet_ms 15 min, newcomer 2/10 min
T = 12 * MIN + 19_800                         # the flow's start
FLOW = batch([("10.0.1.2", 40000, "web", IP_MAP, "10.0.7.9", 8080, T, T + 100)])


def _rows(host: str, window: int):
    start = window * MIN
    rows = [(f"10.0.{host[1:]}.2", 8080, "svc-" + host, IP_MAP, "10.0.9.9", 40002, start + 1, start + 2)]
    if host == "h3" and window >= 3:           # the stale entry, claimed every minute from minute 3
        rows.append(("10.0.7.9", 8080, "old", IP_MAP, "10.0.9.9", 40001, start + 19_725, start + 19_925))
    if host == "h7" and window == 12:          # the true owner's side of the very connection
        rows.append(("10.0.7.9", 8080, "new", IP_MAP, "10.0.1.2", 40000, T, T + 100))
    return rows


def _timeline(until_ms: int, h7_lag_ms: int = 8 * MIN + 1_000):
    steps = []
    for w in range(0, 40):
        for host in ("h1", "h2", "h3"):
            steps.append(((w + 1) * MIN + 2_000, host, w))
        steps.append(((w + 1) * MIN + h7_lag_ms, "h7", w))
    return sorted(s for s in steps if s[0] <= until_ms)


def _engine_at(until_ms: int, **kw) -> Engine:
    e = Engine(CFG, "us-east-1", REGIONS)
    for heard, host, w in _timeline(until_ms, **kw):
        e.advance(heard)   # as flowattr/lab/replay.py: event time is each step's arrival time
        e.learn_batch(host, w + 1, w * MIN, (w + 1) * MIN, e.claims(batch(_rows(host, w))), heard_at_ms=heard)
    e.advance(until_ms)
    return e


def test_a_true_host_read_late_makes_the_stale_claimant_the_subnets_founder():
    # Attempts of the flow (window end 13 min, hold 1 min; backoff 2: slots 1, 2, 4, 8, 16).
    results = {}
    for attempt_at, made in ((14 * MIN + 5_000, 0), (15 * MIN + 5_000, 1), (17 * MIN + 5_000, 2),
                             (21 * MIN + 5_00, 3)):
        results[attempt_at // MIN] = outcome(_engine_at(attempt_at), FLOW, made)[0]
    # the true side is read at 21:01 + ...: h7's window-12 batch is heard at 13:00 + 8:01 = 21:01
    assert all(r != (ATTRIBUTED, "old") for r in results.values()), results
