"""Addresses that are not unique, port-shared IPs, addresses outside the fleet, and
settled evidence: each test is a way the first version misattributed or wasted attempts,
with the expected outcome worked out by hand."""

from __future__ import annotations

from flink_jobs.attribution.attribute import ATTRIBUTED, RETRY, UNATTRIBUTED
from flink_jobs.attribution.attributor import Attributor
from flink_jobs.attribution.config import AttributionConfig
from flink_jobs.attribution.engine import Engine
from flink_jobs.attribution.ledger import ExporterLedger
from schemas import flowattr_pb2 as pb
from schemas.columns import ip_to_bytes, ips_to_array
from tests.flowbuild import REGIONS, batch, learn, outcome

CFG = AttributionConfig(max_attempts=5)
IP_MAP, PORT_MAP, IDENTITY = (pb.LOCAL_ATTRIBUTION_IP_MAP, pb.LOCAL_ATTRIBUTION_PORT_MAP,
                              pb.LOCAL_ATTRIBUTION_IDENTITY_FILE)








def test_a_bridge_address_on_another_host_is_never_evidence():
    """172.17.0.2 is docker's bridge on every host: host A's container there proves nothing
    about host B's. First version: B's flow to its own 172.17.0.2 went to A's workload."""
    e = Engine(CFG, "us-east-1", REGIONS)
    learn(e, "host-a", 1, 0, batch([("172.17.0.2", 8080, "cache", IP_MAP, "172.17.0.3", 5000, 1_000, 2_000)]))
    assert e.attributor.heartbeats.range_count() == 0
    flow = batch([("172.17.0.3", 40000, "web", IP_MAP, "172.17.0.2", 8080, 1_500, 1_600),
                  ("10.0.0.1", 40000, "web", IP_MAP, "127.0.0.1", 8080, 1_500, 1_600)])
    assert outcome(e, flow) == [(UNATTRIBUTED, "HOST_LOCAL_ADDRESS")] * 2


def test_an_internet_address_is_final_at_the_first_attempt():
    """First version: 40 attempts (40 minutes of retries) before NO_EVIDENCE."""
    e = Engine(CFG, "us-east-1", REGIONS)
    flow = batch([("10.0.0.1", 40000, "web", IP_MAP, "203.0.113.7", 443, 1_000, 2_000)])
    assert outcome(e, flow) == [(UNATTRIBUTED, "OUTSIDE_KNOWN_CIDRS")]


def test_heartbeats_are_learned_only_inside_the_regions_own_cidrs():
    e = Engine(CFG, "us-east-1", REGIONS)
    learn(e, "h", 1, 0, batch([("10.16.0.9", 8080, "eu-svc", IP_MAP, "10.0.0.1", 40000, 1_000, 2_000),
                               ("192.168.1.1", 8080, "odd", IP_MAP, "10.0.0.1", 40001, 1_000, 2_000),
                               ("10.0.0.2", 8080, "db", IP_MAP, "10.0.0.1", 40002, 1_000, 2_000)]))
    assert list(e.attributor.heartbeats.by_ip) == [ips_to_array(["10.0.0.2"])[0].tobytes()]


def test_a_port_shared_ip_is_attributed_by_port_only():
    """Host 10.0.0.5 runs `host-agent` (identity file) and a translated container `api`
    reachable as 10.0.0.5:9090 (port map). First version: one IP, one owner, so the flow
    to :9090 could go to host-agent."""
    e = Engine(CFG, "us-east-1", REGIONS)
    learn(e, "h5", 1, 0, batch([
        ("10.0.0.5", 8080, "host-agent", IDENTITY, "10.0.0.1", 40000, 1_000, 50_000),
        ("10.0.0.5", 9090, "api", PORT_MAP, "10.0.0.1", 40001, 1_000, 50_000)]))
    flows = batch([("10.0.0.1", 40001, "web", IP_MAP, "10.0.0.5", 9090, 10_000, 11_000),
                   ("10.0.0.1", 40000, "web", IP_MAP, "10.0.0.5", 8080, 10_000, 11_000),
                   ("10.0.0.1", 40002, "web", IP_MAP, "10.0.0.5", 7777, 10_000, 11_000)])
    e.learn_batch("h5", 2, 60_000, 120_000, [])  # h5 settled through 120 s
    assert outcome(e, flows) == [(ATTRIBUTED, "api"), (ATTRIBUTED, "host-agent"), (RETRY, "NO_EVIDENCE")]


def _port_shared_host_then_peer(host_agent_start_ms: int, shared_ips: bytes) -> list:
    """h5 (10.0.0.5): the translated container `api` dials out from 10.0.0.5:40001 over
    [10 s, 50 s] (a PORT_MAP row, window 1); `host-agent` (identity file) dials another
    destination, 10.0.0.1, from the same port (connect() shares an ephemeral port across
    destinations) from host_agent_start_ms to 70 s, closing in window 2, which has no
    PORT_MAP row (its header declares shared_ips). The outcome of 10.0.0.1's side."""
    e = Engine(CFG, "us-east-1", REGIONS)
    learn(e, "h5", 1, 0, batch([("10.0.0.5", 40001, "api", PORT_MAP, "10.0.0.2", 443, 10_000, 50_000)]),
          shared_ips=shared_ips)
    learn(e, "h5", 2, 60_000, batch([("10.0.0.5", 40001, "host-agent", IDENTITY, "10.0.0.1", 443,
                                      host_agent_start_ms, 70_000)]), shared_ips=shared_ips)
    e.learn_batch("peer", 1, 60_000, 120_000, [])
    e.learn_batch("h5", 3, 120_000, 180_000, [])
    return outcome(e, batch([("10.0.0.1", 443, "db", IP_MAP, "10.0.0.5", 40001, host_agent_start_ms, 70_000)]))


def test_a_port_shared_ip_declared_by_its_exporter_is_told_apart_by_port_in_every_batch():
    """helper-32: judged batch by batch, host-agent's row in window 2 claimed 10.0.0.5
    alone, the peer's flow was looked up by (10.0.0.5, 40001), and `api`'s claim was the
    only one there: attributed to api. The exporter declares 10.0.0.5 port-shared in every
    batch's header (FlowBatch.port_shared_ips), so host-agent's row claims its port too."""
    shared = ip_to_bytes("10.0.0.5")
    assert _port_shared_host_then_peer(30_000, b"") == [(ATTRIBUTED, "api")]    # the attack, undeclared
    assert _port_shared_host_then_peer(30_000, shared) == [(UNATTRIBUTED, "CONFLICT")]   # both used it then
    # The port reused 100 ms after api's close: within the tolerance of api's range.
    assert _port_shared_host_then_peer(50_100, shared) == [(UNATTRIBUTED, "CLOCK_SKEW")]
    # Alone on the port (api's claim long before, beyond G): host-agent's, by its own port claim.
    assert _port_shared_host_then_peer(55_000, shared) == [(ATTRIBUTED, "host-agent")]


def test_a_host_that_does_not_declare_the_ip_is_not_hidden_by_a_port_lookup():
    """helper-33: h1 declared 10.0.0.9 port-shared (sticky). The IP moves to h2 (`new`, IP
    map, declares nothing); h1's `old` still has a connection on 10.0.0.9:443 until 150 s.
    Every flow to 10.0.0.9 was looked up by (IP, port), where h2's whole-IP claims are
    not: the new client's flow to h2 at 120 s went to `old`."""
    e = Engine(AttributionConfig(max_attempts=5, new_subnet_ms=0), "us-east-1", REGIONS)
    declared = ip_to_bytes("10.0.0.9")
    learn(e, "h1", 1, 0, batch([("10.0.0.9", 443, "old", IP_MAP, "10.0.0.3", 50000, 1_000, 55_000)]), declared)
    learn(e, "h1", 2, 60_000, batch([]), declared)
    learn(e, "h1", 3, 120_000, batch([("10.0.0.9", 443, "old", IP_MAP, "10.0.0.4", 50001, 30_000, 150_000)]), declared)
    learn(e, "h2", 3, 120_000, batch([("10.0.0.9", 443, "new", IP_MAP, "10.0.0.1", 40001, 120_000, 125_000)]))
    for h in ("h1", "h2"):
        e.learn_batch(h, 4, 180_000, 240_000, [])
    e.advance(240_000)
    flows = batch([("10.0.0.1", 40001, "web", IP_MAP, "10.0.0.9", 443, 120_000, 125_000),
                   ("10.0.0.3", 50000, "web", IP_MAP, "10.0.0.9", 443, 1_000, 55_000)])
    # At 120 s the whole IP is contested (old's and new's); at 1 s its only range is old's,
    # the port's owner too: the first connection is still old's.
    assert outcome(e, flows) == [(UNATTRIBUTED, "CONFLICT"), (ATTRIBUTED, "old")]


def test_a_stale_claim_waits_while_the_claimants_batch_is_missing():
    """Host h1 handed 10.0.0.7 from `old` to `new` at 30 s; a stale IP-map entry makes its
    batch #3 claim `old` from 70 s, while batch #2 (with `new`'s flows at 88-96 s) is late.
    First version: attributed to `old` on the first attempt."""
    e = Engine(CFG, "us-east-1", REGIONS)
    learn(e, "h1", 1, 0, batch([("10.0.0.7", 8080, "old", IP_MAP, "10.0.0.1", 40000, 1_000, 20_000)]))
    learn(e, "h1", 3, 120_000, batch([("10.0.0.7", 8080, "old", IP_MAP, "10.0.0.1", 40001, 70_000, 121_000)]))
    flow = batch([("10.0.0.1", 40002, "web", IP_MAP, "10.0.0.7", 8080, 90_000, 95_000)])
    assert outcome(e, flow) == [(RETRY, "EVIDENCE_UNSETTLED")]   # sequence 2 is missing
    learn(e, "h1", 2, 60_000, batch([("10.0.0.7", 8080, "new", IP_MAP, "10.0.0.1", 40002, 88_000, 96_000)]))
    assert outcome(e, flow) == [(UNATTRIBUTED, "CONFLICT")]       # now the contradiction is known
    assert outcome(e, flow, attempts_made=4) == [(UNATTRIBUTED, "CONFLICT")]


def test_unsettled_is_final_after_the_last_attempt():
    e = Engine(CFG, "us-east-1", REGIONS)
    learn(e, "h1", 1, 0, batch([("10.0.0.7", 8080, "db", IP_MAP, "10.0.0.1", 40000, 1_000, 50_000)]))
    flow = batch([("10.0.0.1", 40002, "web", IP_MAP, "10.0.0.7", 8080, 45_000, 61_000)])  # ends after h1 data
    assert outcome(e, flow, attempts_made=3) == [(RETRY, "EVIDENCE_UNSETTLED")]
    assert outcome(e, flow, attempts_made=4) == [(UNATTRIBUTED, "EVIDENCE_UNSETTLED")]
    e.learn_batch("h1", 2, 60_000, 120_000, [])
    assert outcome(e, flow) == [(ATTRIBUTED, "db")]


def test_ledger_runs_gaps_and_silence():
    ledger = ExporterLedger(silence_ms=900_000)
    for seq in (1, 2, 4, 5):
        assert ledger.record("x", seq, (seq - 1) * 60_000, seq * 60_000)
    assert not ledger.record("x", 4, 180_000, 240_000)          # a duplicate delivery
    # Gap: #3 is missing: its window can only be [120 s, 180 s), between #2's and #4's.
    assert ledger.unsettled_spans("x") == [(120_000, 179_999), (300_000, 2**62)]
    ledger.record("x", 3, 120_000, 180_000)
    assert ledger.unsettled_spans("x") == [(300_000, 2**62)]
    assert [(r.first, r.last) for r in ledger.runs["x"]] == [(1, 5)]
    ledger.record("z", 1, 1_140_000, 1_200_001)     # one exporter is 15 min past x's last batch:
    assert ledger.unsettled_spans("x") == [(300_000, 2**62)]  # not the fleet (rank 3)
    ledger.record("w", 1, 1_140_000, 1_200_001)
    ledger.record("v", 1, 1_140_000, 1_200_001)     # three are: the fleet is
    assert ledger.unsettled_spans("x") == []          # silent for longer than that: gone
    # A window split in parts: #7 (part 1 of 2 of [360 s, 420 s)) is missing, so the gap
    # covers that window itself, not only the time between #6 and #8.
    parts = ExporterLedger(silence_ms=900_000)
    parts.record("y", 6, 360_000, 420_000, part=0, part_count=2)
    parts.record("y", 8, 420_000, 480_000)
    assert parts.unsettled_spans("y")[0] == (360_000, 419_999)
    restored = ExporterLedger(900_000)
    restored.restore("x", ledger.encode("x"))
    assert restored.runs["x"] == ledger.runs["x"]


def test_rows_the_door_rejected_are_not_claims_even_if_passed_in():
    """Defence in depth: a claim with end before start never becomes a range."""
    a = Attributor(CFG)
    cols = batch([("10.0.0.2", 8080, "db", IP_MAP, "10.0.0.1", 40000, 5_000, 4_000)])
    assert a.claims(cols) == []


def _stale_claim_timeline(h3_node_ip_unresolved: bool = False, h7_unresolved_only: bool = False):
    """(engine, flow): h7 and h3 each send a batch a minute for 34 minutes, claiming their
    own addresses; at 2,040 s h3's stale IP-map entry claims 10.0.7.9 (h7's subnet), and
    h7's batch #35 is still missing. The flow from 10.0.0.1 to 10.0.7.9 at 2,041.1 s.
    h7_unresolved_only: h7's rows there are all UNKNOWN (its node IP, agents' traffic)."""
    e = Engine(CFG, "us-east-1", REGIONS)
    for seq in range(1, 35):   # h7: one batch a minute, claims on its other addresses
        start = (seq - 1) * 60_000
        own = (("10.0.7.2", 10250, "", pb.LOCAL_ATTRIBUTION_UNKNOWN) if h7_unresolved_only
               else ("10.0.7.2", 8080, "api", IP_MAP))
        learn(e, "h7", seq, start, batch([(*own, "10.0.0.1", 40000, start + 1, start + 2)]))
        rows = [("10.0.3.2", 8080, "db", IP_MAP, "10.0.0.1", 40000, start + 1, start + 2)]
        if h3_node_ip_unresolved:   # h3's own node IP in h7's subnet: agents' traffic, no IP-map entry
            rows.append(("10.0.7.20", 10250, "", pb.LOCAL_ATTRIBUTION_UNKNOWN, "10.0.0.1", 40000, start + 1, start + 2))
        learn(e, "h3", seq, start, batch(rows))
    learn(e, "h3", 35, 2_040_000, batch([("10.0.7.9", 8080, "stale", IP_MAP, "10.0.0.1", 40000, 2_041_000, 2_041_500)]))
    e.learn_batch("h3", 36, 2_100_000, 2_160_000, [])
    e.advance(2_160_000)
    return e, batch([("10.0.0.1", 40001, "web", IP_MAP, "10.0.7.9", 8080, 2_041_100, 2_041_400)])


def test_a_stale_claim_from_another_host_waits_for_the_subnets_exporters():
    """10.0.7.9 is in host h7's subnet (h7 claimed 10.0.7.0/24 addresses for an hour) but
    h7 never used 10.0.7.9 yet. A stale IP-map entry on host h3 claims it at 2000 s, and
    h7's batch with the true owner's side of the connection is late. First version (and
    a ledger of claimants only): attributed to the stale workload at once."""
    e, flow = _stale_claim_timeline()
    assert outcome(e, flow) == [(RETRY, "EVIDENCE_UNSETTLED")]   # h7's batch #35 has not arrived
    learn(e, "h7", 35, 2_040_000, batch([("10.0.7.9", 8080, "cart", IP_MAP, "10.0.0.1", 40001, 2_041_100, 2_041_400)]))
    assert outcome(e, flow)[0][0] == UNATTRIBUTED                 # the contradiction is known now
    # Had h7's batch been lost, the flow would stay unsettled until its last attempt.
    assert e.attributor.ledger.unsettled_spans("h7") == [(2_100_000, 2**62)]


def test_the_true_hosts_unresolved_row_contradicts_a_stale_claim():
    """The timeline above, but h7's batch #35 holds this very connection with its local
    workload UNKNOWN: its IP map had no entry for 10.0.7.9 yet (a reassignment's race,
    when the old host's entry is the stale one). helper-32's attack: the row was no
    evidence at all, h7's batch was in, and the flow went to `stale`."""
    e, flow = _stale_claim_timeline()
    assert outcome(e, flow) == [(RETRY, "EVIDENCE_UNSETTLED")]
    learn(e, "h7", 35, 2_040_000, batch([("10.0.7.9", 8080, "", pb.LOCAL_ATTRIBUTION_UNKNOWN, "10.0.0.1", 40001,
                                               2_041_100, 2_041_400)]))
    assert outcome(e, flow) == [(UNATTRIBUTED, "CONFLICT")]   # h7 held it then, for someone unnamed


def test_unresolved_rows_do_not_make_their_host_an_early_member_of_the_subnet():
    """helper-33: with h3's unresolved node-IP rows counted as its membership of 10.0.7.0/24
    from the first minute, h3's stale entry was no newcomer's, the flow did not wait for
    h7, and went to `stale` before h7's batch arrived."""
    e, flow = _stale_claim_timeline(h3_node_ip_unresolved=True)
    assert outcome(e, flow) == [(RETRY, "EVIDENCE_UNSETTLED")]


def test_a_host_known_in_the_subnet_only_by_unresolved_rows_is_waited_for():
    """helper-34: h7's only claims in 10.0.7.0/24 were for UNRESOLVED, so h7 was no member
    of it, h3's stale claim was the subnet's first and no newcomer's, and the flow went to
    `stale` while h7's batch with the true side was missing (the new-subnet wait off, as
    here: no listening clock)."""
    e, flow = _stale_claim_timeline(h7_unresolved_only=True)
    assert outcome(e, flow) == [(RETRY, "EVIDENCE_UNSETTLED")]
    learn(e, "h7", 35, 2_040_000, batch([("10.0.7.9", 8080, "cart", IP_MAP, "10.0.0.1", 40001, 2_041_100, 2_041_400)]))
    assert outcome(e, flow)[0][0] == UNATTRIBUTED                 # the contradiction is known now


def test_a_prune_keeps_the_subnets_first_join_when_it_forgets_that_member():
    """helper-33's F5: h1 claimed in 10.0.7.0/24 from minute 0 and went silent at minute
    5; h7 joined at minute 99. A prune at minute 100 (retention 60 min) forgot h1, the
    subnet's first join moved to h7's, and h3's stale claim at minute 100 (1 min after h7,
    under newcomer_join_ms) was no newcomer's: the flow went to `stale` while h7's batch
    for minute 100 was missing. The first join is kept: h3 is a newcomer, the flow waits."""
    cfg = AttributionConfig(max_attempts=5, retention_ms=60 * 60_000)
    e = Engine(cfg, "us-east-1", REGIONS)
    minute = 60_000
    for seq in range(1, 7):
        start = (seq - 1) * minute
        learn(e, "h1", seq, start, batch([("10.0.7.2", 8080, "api", IP_MAP, "10.0.0.1", 40000, start + 1, start + 2)]))
    for seq in range(1, 101):   # h3 every minute, on its own subnet
        start = (seq - 1) * minute
        learn(e, "h3", seq, start, batch([("10.0.3.2", 8080, "db", IP_MAP, "10.0.0.1", 40000, start + 1, start + 2)]))
    learn(e, "h7", 1, 99 * minute, batch([("10.0.7.3", 8080, "cart", IP_MAP, "10.0.0.1", 40000, 99 * minute + 1,
                                             99 * minute + 2)]))
    e.advance(100 * minute)
    e.attributor.prune(100 * minute)
    assert "h1" not in e.attributor.ledger.runs                    # forgotten
    learn(e, "h3", 101, 100 * minute, batch([("10.0.7.9", 8080, "stale", IP_MAP, "10.0.0.1", 40001,
                                                100 * minute + 1_000, 100 * minute + 1_500)]))
    e.learn_batch("h3", 102, 101 * minute, 102 * minute, [])
    e.advance(102 * minute)
    flow = batch([("10.0.0.1", 40001, "web", IP_MAP, "10.0.7.9", 8080, 100 * minute + 1_100, 100 * minute + 1_400)])
    assert outcome(e, flow) == [(RETRY, "EVIDENCE_UNSETTLED")]    # h7's batch #2 is missing


def test_an_ip_held_only_by_an_unresolved_workload_is_no_evidence_at_once():
    # Its host said it did not know the workload: no later attempt can name one.
    e = Engine(CFG, "us-east-1", REGIONS)
    learn(e, "h7", 1, 0, batch([("10.0.7.9", 8080, "", pb.LOCAL_ATTRIBUTION_UNKNOWN, "10.0.0.1", 40001, 1_100, 1_400)]))
    e.learn_batch("h7", 2, 60_000, 120_000, [])
    e.advance(120_000)
    flow = batch([("10.0.0.1", 40001, "web", IP_MAP, "10.0.7.9", 8080, 1_100, 1_400)])
    assert outcome(e, flow) == [(UNATTRIBUTED, "NO_EVIDENCE")]   # a first attempt, of 5


def test_fleet_progress_follows_the_rank_th_latest_exporter_and_forgets_the_silent():
    """The job's event time for batches (ValidateFlows) and the ledger's fleet progress:
    one or two exporters far ahead do not move it; in a fleet smaller than the rank it is
    the earliest exporter's (a liar in a small fleet does not lead, nobody looks gone);
    an exporter silent for `silence_ms` of listening stops counting, so a fleet that
    shrinks does not stop event time for good (and a pause of the reader, counted as one
    minute of listening, does not make all but the next batch's exporter look gone)."""
    from flink_jobs.attribution.ledger import FleetProgress

    watermark, ledger = FleetProgress(3, silence_ms=900_000), FleetProgress(3)
    for p in (watermark, ledger):
        p.note("a", 60_000, 0)
        p.note("liar", 86_400_000, 0)
    assert watermark.time_ms == ledger.time_ms == 60_000
    for p in (watermark, ledger):
        p.note("b", 120_000, 0)
        p.note("c", 180_000, 0)
        p.note("liar2", 86_460_000, 0)
    assert watermark.time_ms == ledger.time_ms == 180_000   # the two liars are the top two
    for p in (watermark, ledger):
        p.note("a", 240_000, 0)
        p.note("b", 240_000, 0)
    assert watermark.time_ms == 240_000
    # Then only "a" sends, a batch a minute: after 16 minutes the others are forgotten.
    for k in range(1, 17):
        watermark.note("a", 240_000 + 60_000 * k, 60_000 * k)
        assert sorted(watermark.latest_of) == (["a"] if k == 16 else ["a", "b", "c", "liar", "liar2"])
    assert watermark.time_ms == 1_200_000


def test_the_span_search_equals_a_scan_of_every_span():
    """attributor.SpanSearch over ledger.union_spans (several sets searched together)
    against the plain rule: query i is unsettled when any exporter of its set has a span
    [a, b] with a <= hi and b >= lo. Random, overlapping, touching and inverted (b < a)
    spans, sets without spans, queries of every set interleaved."""
    import numpy as np

    from flink_jobs.attribution.attributor import SpanSearch
    from flink_jobs.attribution.ledger import FOREVER

    rng = np.random.default_rng(7)
    for trial in range(300):
        ledger = ExporterLedger(silence_ms=60_000)
        spans_of = {}
        for i in range(int(rng.integers(1, 7))):
            spans = spans_of[f"e{i}"] = []
            for _ in range(int(rng.integers(0, 6))):
                a = int(rng.integers(0, 1_000))
                # Some end before they start: an exporter whose clock stepped back across
                # a missing batch (the first merged version missed the spans before them).
                spans.append((a, FOREVER if rng.random() < 0.1 else a + int(rng.integers(-150, 200))))
        ledger.unsettled_spans = spans_of.get          # the spans this trial is about
        exporters = list(spans_of)
        groups = [exporters[int(rng.integers(0, len(exporters))):][:int(rng.integers(1, 4))] for _ in range(4)]
        search = SpanSearch()
        set_of_group = [search.add(ledger.union_spans(g, (trial, k))) for k, g in enumerate(groups)]
        group = rng.integers(0, len(groups), 80)
        lo = rng.integers(-100, 1_300, 80)
        hi = lo + rng.integers(0, 100, 80)
        expected = [any(a <= h and b >= q for e in groups[g] for a, b in spans_of[e])
                    for g, q, h in zip(group.tolist(), lo.tolist(), hi.tolist(), strict=True)]
        sets = np.array([set_of_group[g] for g in group.tolist()], np.int64)
        asked = sets >= 0            # a set without spans is never asked: nothing unsettled there
        got = np.zeros(len(group), bool)
        got[asked] = search.overlaps(sets[asked], lo[asked], hi[asked])
        assert got.tolist() == expected, trial


def test_an_exporter_read_behind_the_fleet_is_waited_for_while_it_is_heard_from():
    """Catching up on a backlog, exporters are keyed to partitions, and h1's partition is
    read 20 minutes of event time behind the others' (e1-e3). By event time alone h1
    looked gone (its latest batch 15+ min behind the fleet's), its batch #2 still unread
    was not waited for, and the claim of batch #1 (`old`, 1-59 s) won: the flow at
    50-61 s went to `old`, though h1's batch #2 holds `new`'s record of 45-61 s (the kind
    of misattribution the harsh fleet's e2e run showed once). h1 is heard from
    (listening time), so it is not gone."""
    e = Engine(CFG, "us-east-1", REGIONS)
    for k, exporter in enumerate(("e1", "e2", "e3")):
        e.learn_batch(exporter, 1, 1_200_000, 1_260_000, [], heard_at_ms=1_000 + k)
    e.learn_batch("h1", 1, 0, 60_000, e.claims(batch([
        ("10.0.0.7", 8080, "old", IP_MAP, "10.0.0.1", 40000, 1_000, 59_000)])), heard_at_ms=1_010)
    flow = batch([("10.0.0.1", 40002, "web", IP_MAP, "10.0.0.7", 8080, 50_000, 61_000)])
    assert outcome(e, flow) == [(RETRY, "EVIDENCE_UNSETTLED")]   # h1's batch #2 is still to come
    e.learn_batch("h1", 2, 60_000, 120_000, e.claims(batch([
        ("10.0.0.7", 8080, "new", IP_MAP, "10.0.0.1", 40002, 45_000, 61_000)])), heard_at_ms=1_020)
    assert outcome(e, flow) == [(UNATTRIBUTED, "CONFLICT")]


def test_a_gone_exporter_back_by_a_duplicate_is_waited_for_again():
    """h1 silent for 16 minutes of listening is gone, and a flow its batch #2 would
    contradict is attributed from its batch #1 (by design). Then batch #1 is delivered
    again (a spool resent after a restart): h1 is heard, so alive, and waited for again.
    The ledger ignored the duplicate and kept its cached spans of h1 gone: the flow went
    to `old` a second time (found by an adversarial review)."""
    e = Engine(CFG, "us-east-1", REGIONS)
    old = ("10.0.0.7", 8080, "old", IP_MAP, "10.0.0.1", 40000, 1_000, 59_000)
    flow = batch([("10.0.0.1", 40002, "web", IP_MAP, "10.0.0.7", 8080, 50_000, 61_000)])
    e.learn_batch("h1", 1, 0, 60_000, e.claims(batch([old])), heard_at_ms=1_000)
    for k in range(1, 17):
        e.learn_batch("e1", k, 60_000 * k, 60_000 * (k + 1), [], heard_at_ms=1_000 + 60_000 * k)
    assert outcome(e, flow) == [(ATTRIBUTED, "old")]
    e.learn_batch("h1", 1, 0, 60_000, e.claims(batch([old])), heard_at_ms=961_001)
    assert outcome(e, flow) == [(RETRY, "EVIDENCE_UNSETTLED")]

