"""A review's attack on the new-subnet wait (passes: the wait's clock is capped at the
watermark, which liars cannot move).

Attack 6: exporters whose clocks run ahead shorten the wait (it is on FleetProgress).
The job's validator dead-letters windows ending > max_future_ms (10 min) after its wall
clock, so a liar can be at most 10 min ahead. 2 liars: no effect (rank 3). 3 liars, each
10 min ahead: the 15-min wait becomes 5 min; a true host 10 min late loses its flow to
the stale claim. Documented bound of fleet_clock_rank ("fewer than N ... cannot"), so
this is expected; listed for completeness."""

from __future__ import annotations

import pytest

from flink_jobs.attribution.attribute import ATTRIBUTED
from flink_jobs.attribution.config import AttributionConfig
from flink_jobs.attribution.engine import Engine
from schemas import flowattr_pb2 as pb
from tests.flowbuild import REGIONS, batch, outcome

IP_MAP = pb.LOCAL_ATTRIBUTION_IP_MAP
MIN = 60_000
CFG = AttributionConfig(max_attempts=40)
FLOW = batch([("10.0.1.2", 40000, "web", IP_MAP, "10.0.7.9", 8080, 19_800, 19_900)])
STALE = ("10.0.7.9", 8080, "old", IP_MAP, "10.0.9.9", 40001, 19_725, 19_925)


@pytest.mark.parametrize("liars", [2, 3])
def test_liars_ahead_shorten_the_new_subnet_wait(liars):
    e = Engine(CFG, "us-east-1", REGIONS)
    steps = []
    for w in range(12):
        for host in ("h1", "h2", "h3"):
            steps.append(((w + 1) * MIN + 2_000, host, w, 0))
        for k in range(liars):                       # from real minute 1 on, 10 min ahead
            if w >= 1:
                steps.append(((w + 1) * MIN + 3_000, f"l{k}", w, 10 * MIN))
    for heard, host, w, ahead in sorted(steps):
        if heard > 9 * MIN + 5_000:                   # attempt at slot 8 (9:05); h7 is 10 min late: unread
            break
        e.advance(heard)    # event time = arrival time, as replay.py (liars cannot move it)
        start = w * MIN + ahead
        own = f"10.0.{11 + int(host[1:]) if host[0] == 'l' else host[1:]}.2"
        rows = [(own, 8080, "svc-" + host, IP_MAP, "10.0.9.9", 40002, start + 1, start + 2)]
        if host == "h3" and w == 0:
            rows.append(STALE)
        e.learn_batch(host, w + 1 - (1 if ahead else 0), start, start + MIN, e.claims(batch(rows)), heard_at_ms=heard)
    e.advance(9 * MIN + 5_000)
    assert outcome(e, FLOW, 3)[0] != (ATTRIBUTED, "old"), f"{liars} liars: fleet at {e.attributor.fleet.time_ms}"
