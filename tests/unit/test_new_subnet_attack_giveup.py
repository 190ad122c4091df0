"""A review's attack on the new-subnet wait, kept as the trade-off it now shows: with a
subnet's first-heard time on the wait's own clock this flow was attributed, but that
clock let a stale claim through (test_new_subnet_attack_clocks.py); on the fleet's clock
the flow is given up, never misattributed.

Attack 2: flows given up (EVIDENCE_UNSETTLED) that the code before the change attributed.

The wait is measured on the BROADCAST fleet's progress (3rd-latest exporter over every
partition), but a flow's retry slots run on the KEYED watermark (the min over inputs).
While a backlog is read unevenly (README: "the flows' watermark ... partitions not read
yet"), the fleet's progress can be far ahead of where a late partition is read. A subnet
whose only host (every container host has its own /24 in the simulator) sits in the late
partition is "first heard of" at the fleet's progress when read: new for 15 more min of
fleet progress, which does not move while the late partition is caught up. Every slot
of its flows (watermark minute 2 .. 41) falls inside the wait: given up.

h1, h2, h3: read through minute 60 first (fleet at 60). Then h7 (10.0.7.0/24) and h8
(10.0.8.0/24) are read, minute by minute. h8's `web` calls h7's `api` at 10.0.7.9 at
minute 1; both sides are claimed; nothing stale anywhere.
"""

from __future__ import annotations

from flink_jobs.attribution.attribute import ATTRIBUTED, UNATTRIBUTED
from flink_jobs.attribution.config import AttributionConfig
from flink_jobs.attribution.engine import Engine
from schemas import flowattr_pb2 as pb
from tests.flowbuild import REGIONS, batch, outcome

IP_MAP = pb.LOCAL_ATTRIBUTION_IP_MAP
MIN = 60_000
CFG = AttributionConfig(max_attempts=40)
T = 1 * MIN + 19_800
FLOW = batch([("10.0.8.2", 40000, "web", IP_MAP, "10.0.7.9", 8080, T, T + 100)])


def _rows(host, w):
    start = w * MIN
    rows = [(f"10.0.{host[1:]}.2", 8080, "svc-" + host, IP_MAP, "10.0.9.9", 40002, start + 1, start + 2)]
    if w == 1 and host == "h7":
        rows.append(("10.0.7.9", 8080, "api", IP_MAP, "10.0.8.2", 40000, T, T + 100))
    if w == 1 and host == "h8":
        rows.append(("10.0.8.2", 40000, "web", IP_MAP, "10.0.7.9", 8080, T, T + 100))
    return rows


def test_a_partition_read_late_in_a_backlog_has_its_flows_given_up():
    e = Engine(CFG, "us-east-1", REGIONS)
    heard = 0
    # The job's watermark (the commit: "held at what every partition has read") stays at
    # h7/h8's read position: minute 0 while h1..h3's partitions are read.
    e.advance(0)
    for w in range(60):
        for host in ("h1", "h2", "h3"):
            heard += 100
            e.learn_batch(host, w + 1, w * MIN, (w + 1) * MIN, e.claims(batch(_rows(host, w))), heard_at_ms=heard)
    outcomes = {}
    # The late partition is read; the flow's slots come due as its watermark (h7/h8's read
    # position: the min of the inputs) passes them: slots 1, 2, 4, 8, 16, 32, 40 at
    # watermark minute 3, 4, 6, 10, 18, 34, 42.
    slots = {3: 0, 4: 1, 6: 3, 10: 7, 18: 15, 34: 31, 42: 39}
    for w in range(60):
        e.advance(w * MIN)
        for host in ("h7", "h8"):
            heard += 100
            e.learn_batch(host, w + 1, w * MIN, (w + 1) * MIN, e.claims(batch(_rows(host, w))), heard_at_ms=heard)
        if w + 1 in slots:
            e.advance((w + 1) * MIN)
            outcomes[w + 1] = outcome(e, FLOW, slots[w + 1])[0]
    # The trade-off the clock attacks forced (test_new_subnet_attack_clocks.py): h7's
    # subnet is first heard of at the fleet's progress (minute 60), indistinguishable from
    # a stale claim's late batch, and stays new while the fleet stands still. The flow is
    # given up (EVIDENCE_UNSETTLED, a number), never given to the wrong owner.
    assert outcomes[42] == (UNATTRIBUTED, "EVIDENCE_UNSETTLED"), outcomes
    assert all(o[0] != ATTRIBUTED or o[1] == "api" for o in outcomes.values()), outcomes
