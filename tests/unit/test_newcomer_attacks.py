"""Attacks on the subnet newcomer rule found by a second adversarial review (each
misattributed before its fix): a restore that forgot when claimants joined a subnet, and
a long-lived stale claim that backdated its join. Fixed: join times are when the claim
was learned (the batch's window), and they are saved in broadcast state ("sn:" keys)."""

from __future__ import annotations

from flink_jobs import batches
from flink_jobs.attribution.attribute import RETRY
from flink_jobs.attribution.config import AttributionConfig
from flink_jobs.attribution.engine import Engine
from flink_jobs.ownership_store import OwnershipStore
from schemas import flowattr_pb2 as pb
from tests.flowbuild import REGIONS, FakeMapState, batch, learn, outcome

CFG = AttributionConfig(max_attempts=40)
IP_MAP = pb.LOCAL_ATTRIBUTION_IP_MAP


def _update(exporter: str, sequence: int, window_start: int, rows) -> bytes:
    header = pb.FlowBatch(exporter_id=exporter, sequence=sequence, window_start_ms=window_start,
                          window_end_ms=window_start + 60_000, part_count=1)
    return batches.ownership_update(header, Engine(CFG, "us-east-1", REGIONS).claims(batch(rows)))


def _stale_claim_timeline(store: OwnershipStore, state) -> None:
    """tests/unit/test_scope_and_settledness.py::test_a_stale_claim_from_another_host_waits_
    for_the_subnets_exporters, through the job's store: h7 owns 10.0.7.0/24 addresses for
    34 min, h3 (other subnet) gets a stale IP-map entry for 10.0.7.9 at 2041 s, and h7's
    batch #35 (with the true owner's side of the connection) is late."""
    for seq in range(1, 35):
        start = (seq - 1) * 60_000
        store.learn(state, _update("h7", seq, start, [("10.0.7.2", 8080, "api", IP_MAP, "10.0.0.1", 40000,
                                                      start + 1, start + 2)]))
        store.learn(state, _update("h3", seq, start, [("10.0.3.2", 8080, "db", IP_MAP, "10.0.0.1", 40000,
                                                      start + 1, start + 2)]))
    store.learn(state, _update("h3", 35, 2_040_000, [("10.0.7.9", 8080, "stale", IP_MAP, "10.0.0.1", 40000,
                                                     2_041_000, 2_041_500)]))
    store.learn(state, _update("h3", 36, 2_100_000, []))


def test_a_restored_store_forgets_that_a_stale_claimant_is_a_newcomer():
    """INSIDE the assumptions (a job restart from a checkpoint; h7's batch late by < 15 min).
    Live, h3 joined 10.0.7.0/24 at 2041 s, 34 min after the subnet's first claim (0 s): a
    newcomer, so the flow waits for h7 (correct). restore_ip does not save first-claim
    times and sets every claimant's to the END of the IP's LAST range: h7 -> 1980.002 s
    (its last 10.0.7.2 range), h3 -> 2041.5 s. The subnet's "first claim" moves up with
    them, h3 is now only 61 s after it (< newcomer_join_ms) and is no newcomer: only h3
    (the claimant) is waited for, and the restored store attributes the flow to `stale`.
    The comment in restore_ip ("makes a restored claimant look newer, never older") is
    wrong: it makes the subnet's founders look newer too, so everyone looks older
    RELATIVE to the subnet's first claim.
    Fixed as suggested: save the subnet first-claim times (e.g. a "sn:<subnet hex>" state key with
    exporter -> first start, written by OwnershipStore.learn when subnets change), or at
    least restore each claimant's time from the FIRST range's start (items[0][0]) so the
    founders keep their early time."""
    live, state = OwnershipStore(Engine(CFG, "us-east-1", REGIONS)), FakeMapState()
    live.sync(state)
    _stale_claim_timeline(live, state)
    restored = OwnershipStore(Engine(CFG, "us-east-1", REGIONS))
    restored.sync(state)
    flow = batch([("10.0.0.1", 40001, "web", IP_MAP, "10.0.7.9", 8080, 2_041_100, 2_041_400)])
    assert outcome(live.engine, flow) == [(RETRY, "EVIDENCE_UNSETTLED")]      # holds
    assert outcome(restored.engine, flow) == [(RETRY, "EVIDENCE_UNSETTLED")]  # now (ATTRIBUTED, "stale")


def test_a_long_lived_stale_claim_backdates_its_join_and_escapes_the_newcomer_rule():
    """INSIDE the assumptions as rows.py states them (a row's start may be up to the
    retention before its window: long-lived connections). Same timeline as
    test_a_stale_claim_from_another_host_waits_for_the_subnets_exporters, but h3's stale
    row for 10.0.7.9 is a long-lived connection that started at 60 s (it ends at 2041.5 s
    in batch #35). OwnershipTable.learn records h3's subnet "first claim" as the claim's
    START (60 s), i.e. h3 "joined" 10.0.7.0/24 within newcomer_join_ms of its first claim
    (0 s) although the collector first heard of h3 there at 2040 s. h3 is no newcomer,
    only the claimants (h3) are waited for, and the flow goes to `stale` at once while h7's
    batch #35 - the true owner's side of the connection - is still missing. The README's
    known limits (subnet nobody else claimed; first 2 min of the collector's state) do
    not cover this.
    Fixed as suggested: ranges.py OwnershipTable.learn: record the join time from when the claim was
    LEARNED (the batch's window start, passed down from learn_batch) or at least from the
    claim's end_ms, never from its start_ms."""
    e = Engine(CFG, "us-east-1", REGIONS)
    for seq in range(1, 35):
        start = (seq - 1) * 60_000
        learn(e, "h7", seq, start, batch([("10.0.7.2", 8080, "api", IP_MAP, "10.0.0.1", 40000, start + 1, start + 2)]))
        learn(e, "h3", seq, start, batch([("10.0.3.2", 8080, "db", IP_MAP, "10.0.0.1", 40000, start + 1, start + 2)]))
    learn(e, "h3", 35, 2_040_000, batch([("10.0.7.9", 8080, "stale", IP_MAP, "10.0.0.1", 40000, 60_000, 2_041_500)]))
    e.learn_batch("h3", 36, 2_100_000, 2_160_000, [])
    flow = batch([("10.0.0.1", 40001, "web", IP_MAP, "10.0.7.9", 8080, 2_041_100, 2_041_400)])
    assert outcome(e, flow) == [(RETRY, "EVIDENCE_UNSETTLED")]   # now (ATTRIBUTED, "stale")

