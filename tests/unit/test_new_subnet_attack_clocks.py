"""A third adversarial review's attacks on the new-subnet wait's clocks (T1, T1b, T5
misattributed when a subnet's first-heard time was taken on min(fleet progress,
watermark): a lagging watermark lowered it on a later learning, or caught up by the whole
wait at once). Fixed: first-heard is on the fleet's clock; the wait still ends only when
min(fleet, watermark) is new_subnet_ms past it. T3, T4: prune and restore held."""
from __future__ import annotations

from flink_jobs.attribution.attribute import ATTRIBUTED
from flink_jobs.attribution.config import AttributionConfig
from flink_jobs.attribution.engine import Engine
from flink_jobs.attribution.ranges import OwnershipTable, Subnet, subnet_key
from schemas import flowattr_pb2 as pb
from schemas.columns import ips_to_array
from tests.flowbuild import REGIONS, batch, outcome

IP_MAP = pb.LOCAL_ATTRIBUTION_IP_MAP
MIN = 60_000
CFG = AttributionConfig(max_attempts=200)
T0 = 10 * MIN                                  # the stale claim's / the flow's minute
FLOW = batch([("10.0.1.2", 40000, "web", IP_MAP, "10.0.7.9", 8080, T0 + 19_800, T0 + 19_900)])
STALE = ("10.0.7.9", 8080, "old", IP_MAP, "10.0.9.9", 40001, T0 + 19_725, T0 + 19_925)
TRUE_SIDE = ("10.0.7.9", 8080, "new", IP_MAP, "10.0.1.2", 40000, T0 + 19_800, T0 + 19_900)
SUBNET = subnet_key(bytes(ips_to_array(["10.0.7.9"])[0]))


def _own(host, w):
    return (f"10.0.{host[1:]}.2", 8080, "svc-" + host, IP_MAP, "10.0.9.9", 40002, w * MIN + 1, w * MIN + 2)


def _learn(e, host, w, heard, extra=()):
    return e.learn_batch(host, w + 1, w * MIN, (w + 1) * MIN, e.claims(batch([_own(host, w), *extra])),
                         heard_at_ms=heard)


def _fleet_up_to(e, last_w, heard, hosts=("h1", "h2", "h4")):
    for w in range(last_w + 1):
        for h in hosts:
            heard += 100
            _learn(e, h, w, heard)
    return heard


def _scenario(dup: bool, followup: bool = False):
    """Job-like order: the broadcast side (batches) is learned before the keyed side's
    first watermark (engine.advance only in process_element/on_timer). The fleet is at
    minute 31; h3's batch for minute 10 (stale entry for 10.0.7.9) arrives 21 min late:
    first heard at the wait's clock, 31 min. Then the first watermark comes, 22 min behind
    (flows input lagging): the clock regresses to 9 min. A duplicate delivery of h3's
    minute-10 batch (or h3's next late batch) now computes heard = max(10 min, 9 min)."""
    e = Engine(CFG, "us-east-1", REGIONS)
    heard = _fleet_up_to(e, 30, 0)                            # fleet time: 31 min
    heard += 100
    _learn(e, "h3", 10, heard, [STALE])                       # late: heard = 31 min
    first = e.attributor.heartbeats.subnets[SUBNET].heard_ms
    e.advance(9 * MIN)                                        # first watermark, lagging
    if dup:
        heard += 100
        _learn(e, "h3", 10, heard, [STALE])                   # duplicate delivery
    if followup:
        heard += 100
        _learn(e, "h3", 11, heard, [STALE])                   # h3's next late batch
    after = e.attributor.heartbeats.subnets[SUBNET].heard_ms
    for w in range(31, 33):                                   # 2 more fleet minutes
        for h in ("h1", "h2", "h4", "h3"):
            heard += 100
            _learn(e, h, w, heard)
    e.advance(27 * MIN)                                       # watermark catches up partly
    res = outcome(e, FLOW, attempts_made=3)
    return first, after, res


def test_T1_duplicate_after_clock_regression_lowers_subnet_heard():
    first, after, res = _scenario(dup=True)
    assert after >= first, f"duplicate lowered subnet_heard from {first} to {after}"


def test_T1_duplicate_after_clock_regression_misattributes():
    first, after, res = _scenario(dup=True)
    # h7 (true host of 10.0.7.9 for `new`) not heard yet: its batches are as late as h3's.
    assert res[0] != (ATTRIBUTED, "old"), f"misattributed: {res}, heard {first} -> {after}"


def test_T1b_next_late_batch_after_clock_regression_misattributes():
    first, after, res = _scenario(dup=False, followup=True)
    assert res[0] != (ATTRIBUTED, "old"), f"misattributed: {res}, heard {first} -> {after}"


def test_T1_control_without_duplicate_is_held():
    first, after, res = _scenario(dup=False)
    assert res[0] != (ATTRIBUTED, "old"), res


def test_T3_prune_then_readd_is_new_again():
    cfg = AttributionConfig(max_attempts=200, retention_ms=60 * MIN)
    e = Engine(cfg, "us-east-1", REGIONS)
    heard = 0
    heard += 100
    e.advance(T0)
    _learn(e, "h3", 10, heard, [STALE])
    heard = _fleet_up_to(e, 200, heard)
    e.advance(200 * MIN)
    e.attributor.prune(200 * MIN)
    assert SUBNET not in e.attributor.heartbeats.subnets
    # a duplicate of h3's old batch re-adds (ignored: before the horizon); a fresh stale claim re-adds
    w = 199
    stale = ("10.0.7.9", 8080, "old", IP_MAP, "10.0.9.9", 40001, w * MIN + 19_725, w * MIN + 19_925)
    _learn(e, "h3", w, heard + 100, [stale])
    got = e.attributor.heartbeats.subnets[SUBNET].heard_ms
    assert got is not None and got >= e.attributor._wait_clock_ms() - MIN, got
    flow = batch([("10.0.1.2", 40000, "web", IP_MAP, "10.0.7.9", 8080, w * MIN + 19_800, w * MIN + 19_900)])
    e.advance(201 * MIN)
    assert outcome(e, flow, attempts_made=3)[0] != (ATTRIBUTED, "old")


def test_T4_restore_subnet_roundtrip_and_empty_member():
    t = OwnershipTable(1000, 10**9)
    ip = bytes(ips_to_array(["10.0.7.9"])[0])
    t.learn(ip, "old", 100, 200, "h3", 100, heard_ms=5000)
    raw = t.encode_subnet(SUBNET)
    u = OwnershipTable(1000, 10**9)
    u.restore_subnet(SUBNET, raw)
    assert u.subnets[SUBNET] == t.subnets[SUBNET] == Subnet({"h3": 100}, {"h3": 100}, 100, 5000)
    # a learn with exporter "" joins nobody and leaves the heard time
    t.learn(ip, "x", 300, 400, "", 300, heard_ms=1)
    assert t.subnets[SUBNET] == Subnet({"h3": 100}, {"h3": 100}, 100, 5000)


def test_T5_lagging_watermark_catching_up_ends_the_wait_without_fleet_progress():
    """No duplicate: the watermark (flows input) lags the fleet by 22 min steadily. h3's
    minute-10 batch arrives 21 min late (fleet at 31 min): heard = max(10, wm 9) = 10 min.
    The flows input catches up: wm 9 -> 27 while the fleet moves 2 min. The wait is over
    after 2 min of fleet progress; h7 (true host, as late as h3) not heard yet."""
    e = Engine(CFG, "us-east-1", REGIONS)
    heard = 0
    for w in range(31):
        e.advance(max(0, (w - 22) * MIN))
        for h in ("h1", "h2", "h4"):
            heard += 100
            _learn(e, h, w, heard)
    heard += 100
    _learn(e, "h3", 10, heard, [STALE])
    got = e.attributor.heartbeats.subnets[SUBNET].heard_ms
    for w in range(31, 33):
        for h in ("h1", "h2", "h4", "h3"):
            heard += 100
            _learn(e, h, w, heard)
    e.advance(27 * MIN)
    res = outcome(e, FLOW, attempts_made=3)
    assert res[0] != (ATTRIBUTED, "old"), \
        f"misattributed: {res}, subnet_heard {got}, fleet {e.attributor.fleet.time_ms}"
