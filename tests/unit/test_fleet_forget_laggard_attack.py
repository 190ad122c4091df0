"""helper-37's attack on f0c9aff, whose prune forgot from the fleet's progress every
exporter the ledger forgot: a laggard 3 h behind but still heard, in a fleet below
fleet_clock_rank, left it, the new-subnet wait's clock jumped to the watermark, and a
stale claim was attributed until the laggard's next batch. Reverted: the fleet's progress
forgets by listening silence only (the restore's rebuild from the ledger is open)."""
from __future__ import annotations

from flink_jobs.attribution.attribute import ATTRIBUTED
from flink_jobs.attribution.config import AttributionConfig
from flink_jobs.attribution.engine import Engine
from schemas import flowattr_pb2 as pb
from tests.flowbuild import REGIONS, batch, outcome

IP_MAP = pb.LOCAL_ATTRIBUTION_IP_MAP
MIN = 60_000
CFG = AttributionConfig(max_attempts=200)
T = 200 * MIN
FLOW = batch([("10.0.1.2", 40000, "web", IP_MAP, "10.0.7.9", 8080, T + 19_800, T + 19_900)])
STALE = ("10.0.7.9", 8080, "old", IP_MAP, "10.0.9.9", 40001, T + 19_725, T + 19_925)
TRUE_SIDE = ("10.0.7.9", 8080, "new", IP_MAP, "10.0.1.2", 40000, T + 19_800, T + 19_900)
LAG = 195


def _own(host, w):
    return (f"10.0.{host[1:]}.2", 8080, "svc-" + host, IP_MAP, "10.0.9.9", 40002, w * MIN + 1, w * MIN + 2)


def _learn(e, host, w, heard, extra=()):
    e.learn_batch(host, w + 1, w * MIN, (w + 1) * MIN, e.claims(batch([_own(host, w), *extra])), heard_at_ms=heard)


def _run(last=230):
    """h2 up to date (its stale entry: 10.0.7.9 is old's at minute 200); h17, the true host of
    10.0.7.9 (new), sends every minute but 195 min late (its backlog), heard all along."""
    e = Engine(CFG, "us-east-1", REGIONS)
    heard = 0
    for w in range(last + 1):
        heard += MIN
        _learn(e, "h2", w, heard, [STALE] if w == 200 else [])
        if w >= LAG:
            _learn(e, "h17", w - LAG, heard, [TRUE_SIDE] if w - LAG == 200 else [])
    e.advance((last + 1) * MIN)
    return e, heard


def test_before_prune_the_flow_waits():
    e, _ = _run()
    print("fleet", e.attributor.fleet.time_ms / MIN, outcome(e, FLOW, attempts_made=3))
    assert outcome(e, FLOW, attempts_made=3)[0] != (ATTRIBUTED, "old")


def test_after_prune_forgets_the_laggard():
    e, _ = _run()
    e.attributor.prune(e.watermark_ms)
    print("runs", sorted(e.attributor.ledger.runs), "fleet", e.attributor.fleet.time_ms / MIN)
    res = outcome(e, FLOW, attempts_made=3)
    assert res[0] != (ATTRIBUTED, "old"), res


def test_renoted_by_its_next_batch_the_wait_is_back():
    e, heard = _run()
    e.attributor.prune(e.watermark_ms)
    _learn(e, "h17", 231 - LAG, heard + MIN)
    print("fleet after re-note", e.attributor.fleet.time_ms / MIN, outcome(e, FLOW, attempts_made=3))
