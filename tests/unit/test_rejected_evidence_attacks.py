"""Attack: the true owner's own record of a connection is REJECTED at the door (a row that
fails validation, or a batch whose workload dictionary is empty), while a stale claim
from another host names the IP's previous owner.

Found by `flowattr evaluate --profile harsh --seed 3`: 2 flows to 10.2.19.7 went to
svc-18 (its holder until 1241 s, then a stale IP-map entry on host 114 at 1562.9 s)
though svc-07 held it from 1559.4 s. svc-07's host sent its batch for that minute with
an empty dictionary: every row was dead-lettered, yet the batch's header still counted
as delivered in the ledger, so the stale claim's evidence looked settled.

Fixed: every rejected row's local IP is evidence lost for that batch's window (the
column is taken at face value, as it is for valid rows); a flow whose end lies in such a
window (+- tolerance) cannot be settled, ever: unattributed EVIDENCE_REJECTED at once.
"""

from __future__ import annotations

import numpy as np

from flink_jobs import batches
from flink_jobs.attribution.attribute import ATTRIBUTED, UNATTRIBUTED
from flink_jobs.attribution.config import AttributionConfig
from flink_jobs.attribution.engine import Engine
from flink_jobs.attribution.rejected import ANY_PEER, MAX_RECORDS_PER_IP, RejectedEvidence, records_of
from flink_jobs.attribution.rows import RowRules, check_rows
from flink_jobs.ownership_store import OwnershipStore
from schemas import flowattr_pb2 as pb
from schemas.columns import ips_to_array
from tests.flowbuild import REGIONS, FakeMapState, batch, outcome

CFG = AttributionConfig(max_attempts=40)
IP_MAP = pb.LOCAL_ATTRIBUTION_IP_MAP
MIN = 60_000
STALE_AT = 34 * MIN + 1_000  # 2041 s: h3's stale claim and the flow, in h7's window #35
LATER = STALE_AT + 20_000    # a connection from another peer to `new`, in the same window


def _batch_update(exporter: str, sequence: int, window_start: int, cols, engine: Engine) -> bytes:
    """What the job's Validate operator broadcasts for one batch: the claims of its valid
    rows and the local IPs of its rejected ones."""
    header = pb.FlowBatch(exporter_id=exporter, sequence=sequence, window_start_ms=window_start,
                          window_end_ms=window_start + MIN, part_count=1)
    check = check_rows(cols, window_start, window_start + MIN, RowRules())
    good = cols.take(check.valid)
    return batches.ownership_update(header, engine.claims(good), engine.rejected_records(cols, check.valid))


def _valid_batch(rows):
    """tests.flowbuild.batch with a valid direction, so that check_rows accepts its rows."""
    cols = batch(rows)
    cols.columns["direction"][:] = pb.FLOW_DIRECTION_INBOUND
    return cols


def _first_34_minutes(store: OwnershipStore, state) -> None:
    """Batches #1-34 of h7 (`old` on 10.0.7.9) and h3 (its own subnet), all delivered."""
    for seq in range(1, 35):
        start = (seq - 1) * MIN
        store.learn(state, _batch_update("h7", seq, start, _valid_batch([
            ("10.0.7.9", 8080, "old", IP_MAP, "10.0.0.1", 40000, start + 1, start + 2)]), store.engine))
        store.learn(state, _batch_update("h3", seq, start, _valid_batch([
            ("10.0.3.2", 8080, "db", IP_MAP, "10.0.0.1", 40000, start + 1, start + 2)]), store.engine))


def _timeline(store: OwnershipStore, state, corrupt) -> None:
    """h7 holds 10.0.7.0/24: `old` has 10.0.7.9 for 33 min, `new` takes it at 2040 s and
    serves a connection there; h3 (another subnet) keeps a stale IP-map entry naming `old`
    at 2041 s. h7's batch #35 (the window of `new`'s record; `new` serves 10.0.0.2 at
    2061 s too) arrives, but `corrupt` damages it; every batch of both hosts arrives, so
    nothing is missing by sequence."""
    engine = store.engine
    _first_34_minutes(store, state)
    new_side = _valid_batch([("10.0.7.9", 8080, "new", IP_MAP, "10.0.0.1", 40001, STALE_AT - 100, STALE_AT + 400),
                             ("10.0.7.4", 8080, "web", IP_MAP, "10.0.0.1", 40002, STALE_AT, STALE_AT + 10),
                             ("10.0.7.9", 8080, "new", IP_MAP, "10.0.0.2", 40006, LATER, LATER + 400)])
    store.learn(state, _batch_update("h7", 35, 34 * MIN, corrupt(new_side), engine))
    store.learn(state, _batch_update("h3", 35, 34 * MIN, _valid_batch([
        ("10.0.7.9", 8080, "old", IP_MAP, "10.0.0.1", 40003, STALE_AT, STALE_AT + 500)]), engine))
    for seq in (36, 37):
        start = (seq - 1) * MIN
        for host in ("h7", "h3"):
            store.learn(state, _batch_update(host, seq, start, _valid_batch([]), engine))


def _empty_dictionary(cols):
    cols.workloads = []
    return cols


def _bad_direction_on_new_row(cols):
    cols.columns["direction"][0] = 99  # only the row of 10.0.7.9 <- 10.0.0.1 is rejected
    return cols


def _valid(cols):
    return cols


FLOW = [("10.0.0.1", 40001, "client", IP_MAP, "10.0.7.9", 8080, STALE_AT, STALE_AT + 300)]


def _run(corrupt):
    store, state = OwnershipStore(Engine(CFG, "us-east-1", REGIONS)), FakeMapState()
    store.sync(state)
    _timeline(store, state, corrupt)
    return store, state, batch(FLOW)


def test_an_empty_dictionary_batch_of_the_true_owner_leaves_the_flow_unattributed():
    store, _, flow = _run(_empty_dictionary)
    assert outcome(store.engine, flow) == [(UNATTRIBUTED, "EVIDENCE_REJECTED")]  # was (ATTRIBUTED, "old")


def test_one_rejected_row_of_the_true_owner_leaves_the_flow_unattributed():
    store, _, flow = _run(_bad_direction_on_new_row)
    assert outcome(store.engine, flow) == [(UNATTRIBUTED, "EVIDENCE_REJECTED")]


def test_with_the_true_owners_row_delivered_the_conflict_is_seen():
    """The control: h7's record of the connection arrives intact, so `new` and the stale
    `old` contest 10.0.7.9 and the flow is a CONFLICT (never `old`)."""
    store, _, flow = _run(_valid)
    assert outcome(store.engine, flow) == [(UNATTRIBUTED, "CONFLICT")]


def test_the_damage_survives_a_restore_from_broadcast_state():
    _, state, flow = _run(_empty_dictionary)
    restored = OwnershipStore(Engine(CFG, "us-east-1", REGIONS))
    restored.sync(state)
    assert outcome(restored.engine, flow) == [(UNATTRIBUTED, "EVIDENCE_REJECTED")]


def _ip(text: str) -> bytes:
    return ips_to_array([text])[0].tobytes()


def test_the_loss_is_only_the_rejected_rows_pair_and_window():
    """The rejected row (10.0.7.9:8080 <- 10.0.0.1:40001, window #35) says nothing about
    10.0.7.4 (its row was valid), nor about flows to 10.0.7.9 from another peer (the lost
    row is not their other side)."""
    store, _, _ = _run(_bad_direction_on_new_row)
    other_ip = batch([("10.0.0.1", 40005, "client", IP_MAP, "10.0.7.4", 8080, STALE_AT, STALE_AT + 5)])
    assert outcome(store.engine, other_ip) == [(ATTRIBUTED, "web")]
    window = (34 * MIN - CFG.close_slack_ms, 35 * MIN + CFG.close_slack_ms)
    rejected = store.engine.attributor.rejected
    assert rejected.spans(_ip("10.0.7.9")) == [(_ip("10.0.0.1"), 8080, 40001, *window)]
    assert rejected.spans(_ip("10.0.7.4")) == []
    other_peer = batch([("10.0.0.2", 40006, "client", IP_MAP, "10.0.7.9", 8080, LATER, LATER + 400)])
    assert outcome(store.engine, other_peer) == [(ATTRIBUTED, "new")]


def test_damage_is_pruned_with_the_retention():
    store, state, _ = _run(_empty_dictionary)
    store.engine.advance(35 * MIN + CFG.retention_ms + 10 * MIN)
    store.prune(state)
    assert not store.engine.attributor.rejected.by_ip
    assert not [k for k in state if k.startswith("rej:")]


def test_a_lost_record_is_the_other_side_of_its_connection_only():
    """The lost record 10.0.7.9:8080 <- 10.0.0.1:40001: a flow from 10.0.0.1:40001 to
    10.0.7.9:8080 ending in its span is its other side; other connections of the same
    two IPs (another client port, another server port) are not, nor one from another
    peer, nor one ending outside the span."""
    rejected = RejectedEvidence()
    rejected.add_batch(records_of(ips_to_array(["10.0.7.9"]), ips_to_array(["10.0.0.1"]), [8080], [40001], [150]),
                       100, 200, slack_ms=0)
    peers = ips_to_array(["10.0.0.1", "10.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.1", "10.0.0.1"])
    peer_ports = np.array([40001, 40009, 40001, 40001, 40001, 40001])
    ip_ports = np.array([8080, 8080, 8081, 8080, 8080, 8080])
    lo = np.array([150, 150, 150, 150, 201, 90])
    hit = rejected.overlaps(_ip("10.0.7.9"), peers, peer_ports, ip_ports, lo, lo + 10)
    assert hit.tolist() == [True, False, False, False, False, True]
    assert not rejected.overlaps(_ip("10.0.7.4"), peers, peer_ports, ip_ports, lo, lo + 10).any()



def test_a_lost_record_covers_its_own_end_when_the_header_window_lies():
    """From the adversarial review (A1): h7's batch #35 carries `new`'s side of the
    connection under a header window shifted by +5 min, so every row fails END_OUTSIDE_
    WINDOW. Recorded at the header's window only, the loss missed the flow's real window
    and the stale claim won ((ATTRIBUTED, "old")). The record's span now covers its own
    end too."""
    store, state = OwnershipStore(Engine(CFG, "us-east-1", REGIONS)), FakeMapState()
    store.sync(state)
    engine = store.engine
    _first_34_minutes(store, state)
    new_side = _valid_batch([("10.0.7.9", 8080, "new", IP_MAP, "10.0.0.1", 40001, STALE_AT - 100, STALE_AT + 400)])
    store.learn(state, _batch_update("h7", 35, 39 * MIN, new_side, engine))   # header 5 min late
    store.learn(state, _batch_update("h3", 35, 34 * MIN, _valid_batch([
        ("10.0.7.9", 8080, "old", IP_MAP, "10.0.0.1", 40003, STALE_AT, STALE_AT + 500)]), engine))
    for seq in (36, 37):
        for host in ("h7", "h3"):
            store.learn(state, _batch_update(host, seq, (seq - 1) * MIN + (5 * MIN if host == "h7" else 0),
                                             _valid_batch([]), engine))
    assert outcome(engine, batch(FLOW)) == [(UNATTRIBUTED, "EVIDENCE_REJECTED")]


def test_a_batch_of_many_rejected_rows_for_one_ip_is_one_ip_wide_loss():
    """From the adversarial review (A4): an exporter sending 50,000 rows a batch that all
    fail (a code this collector does not know) made one entry per row, and state and
    lookups grew without a bound. Past MAX_RECORDS_PER_IP rows of one IP, the batch makes
    one IP-wide entry: every flow to that IP ending in the span is EVIDENCE_REJECTED."""
    rejected = RejectedEvidence()
    n = MAX_RECORDS_PER_IP + 1
    records = records_of(ips_to_array(["10.0.7.9"] * n), ips_to_array([f"10.0.1.{i % 250}" for i in range(n)]),
                         [8080] * n, list(range(40000, 40000 + n)), [150] * n)
    assert rejected.add_batch(records, 100, 200, slack_ms=0) == [_ip("10.0.7.9")]
    assert rejected.spans(_ip("10.0.7.9")) == [(ANY_PEER, 0, 0, 100, 200)]
    peers, ports = ips_to_array(["10.9.9.9", "10.9.9.9"]), np.array([1, 2])
    assert rejected.overlaps(_ip("10.0.7.9"), peers, ports, ports, np.array([150, 300]),
                             np.array([160, 310])).tolist() == [True, False]


def test_malformed_lost_records_are_errors_not_silence():
    """From the adversarial review (A5): a rejected_records field or a state value of the
    wrong length was cut short without a word. Only this code writes them, so a wrong
    length is a bug or a damaged checkpoint: it fails loudly."""
    import pytest

    bad = pb.OwnershipUpdate(source_exporter_id="h", source_sequence=1, rejected_records=bytes(45))
    with pytest.raises(ValueError, match="not a multiple of 44"):
        batches.claims_of_update(bad.SerializeToString())
    with pytest.raises(ValueError, match="checkpoint is damaged"):
        RejectedEvidence().restore(_ip("10.0.7.9"), bytes(37))
