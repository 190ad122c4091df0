"""The job's broadcast-state side without a Flink start: what OwnershipStore writes after
batches, events and pruning rebuilds, in a fresh store, the same attribution."""

from __future__ import annotations

from flink_jobs import batches
from flink_jobs.attribution.attribute import ATTRIBUTED
from flink_jobs.attribution.config import AttributionConfig
from flink_jobs.attribution.engine import Engine
from flink_jobs.ownership_store import OwnershipStore
from schemas import flowattr_pb2 as pb
from schemas.columns import ip_to_bytes
from tests.flowbuild import REGIONS, FakeMapState, batch, flows_to_lb

IP_MAP, PORT_MAP = pb.LOCAL_ATTRIBUTION_IP_MAP, pb.LOCAL_ATTRIBUTION_PORT_MAP
CFG = AttributionConfig(event_cidrs=("10.250.0.0/24",), event_max_delay_ms=600_000, event_time_error_ms=1000)



def update(exporter: str, sequence: int, window_start: int, rows) -> bytes:
    cols = batch(rows)
    header = pb.FlowBatch(exporter_id=exporter, sequence=sequence, window_start_ms=window_start,
                          window_end_ms=window_start + 60_000, part_count=1)
    return batches.ownership_update(header, Engine(CFG, "us-east-1", REGIONS).claims(cols))


def event(ip: str, workload: str, action: int, at: int, emit: int, event_id: str) -> bytes:
    return pb.IpChangeEvent(ip=ip_to_bytes(ip), workload=workload, action=action, event_time_ms=at,
                            emit_time_ms=emit, event_id=event_id).SerializeToString()


def outcomes(store: OwnershipStore, cols) -> list[tuple[int, str]]:
    result = store.engine.attempt(cols, 0, 0).attribution
    names = store.engine.owner_names()
    return [(int(o), names[w] if o == ATTRIBUTED else "") for o, w in zip(result.outcome, result.owner, strict=True)]


def test_a_restored_store_attributes_exactly_as_the_live_one():
    live, state = OwnershipStore(Engine(CFG, "us-east-1", REGIONS)), FakeMapState()
    live.sync(state)
    for seq, start in ((1, 0), (2, 60_000), (3, 120_000)):
        live.learn(state, update("h5", seq, start, [
            ("10.0.0.5", 8080, "host-agent", IP_MAP, "10.0.0.1", 40000, start + 1_000, start + 50_000),
            ("10.0.0.5", 9090, "api", PORT_MAP, "10.0.0.1", 40001, start + 1_000, start + 50_000)]))
    live.learn(state, update("h5", 4, 840_000, []))  # the fleet's progress: 900 s (it caps the horizon)
    for i, (who, action, at) in enumerate([("cart", 1, 10_000), ("cart", 2, 100_000), ("search", 1, 110_000)]):
        live.apply_event(state, event("10.250.0.5", who, action, at, at + 500, f"e{i}"))
    live.engine.advance(900_000)   # the watermark ends the events' warm-up (on a timer) ...
    live.prune(state)              # ... and the next broadcast element saves them
    assert set(k.split(":")[0] for k in state) == {"hb", "seq", "sm", "ev", "ev-clock"}
    restored = OwnershipStore(Engine(CFG, "us-east-1", REGIONS))
    restored.sync(state)
    restored.engine.advance(900_000)
    flows = batch([("10.0.0.1", 40001, "web", IP_MAP, "10.0.0.5", 9090, 70_000, 71_000),
                   ("10.0.0.1", 40000, "web", IP_MAP, "10.0.0.5", 8080, 70_000, 71_000)])
    assert outcomes(live, flows) == outcomes(restored, flows) == [(ATTRIBUTED, "api"), (ATTRIBUTED, "host-agent")]
    assert restored.engine.attributor.heartbeats.subnets == live.engine.attributor.heartbeats.subnets
    lb = flows_to_lb([50_000, 105_000, 200_000])
    assert outcomes(live, lb) == outcomes(restored, lb)
    assert [w for _, w in outcomes(restored, lb)] == ["cart", "", "search"]
    # The restored store rebuilt the fleet's progress from the ledger: a watermark past it
    # (one exporter's clock ahead) moves neither store's event horizon past 900 - 600 s.
    for store in (live, restored):
        store.engine.advance(1_200_000)
        assert store.engine.attributor.events.horizon_ms == 300_000


def test_pruning_removes_what_the_engine_forgot():
    store, state = OwnershipStore(Engine(CFG, "us-east-1", REGIONS)), FakeMapState()
    store.learn(state, update("h1", 1, 0, [("10.0.0.7", 8080, "db", IP_MAP, "10.0.0.1", 40000, 1_000, 2_000)]))
    assert any(k.startswith("hb:") for k in state) and "seq:h1" in state
    store.engine.advance(CFG.retention_ms + 200_000)  # far past the retention
    store.prune(state)
    assert not any(k.startswith(("hb:", "seq:")) for k in state)
    assert store.engine.attributor.heartbeats.subnets == {}   # nor the subnet memberships


def test_every_move_of_the_event_clock_republishes_the_event_ips_ranges():
    """The changelog's event ranges end at the horizon, which moves with the event clock;
    an attempt attributes up to the horizon it sees. Republished only when a prune was due
    (every minute of event time), the changelog lagged the attempts by up to a minute and
    `flowattr whois` answered "unknown" for flows just attributed."""
    store, state = OwnershipStore(Engine(CFG, "us-east-1", REGIONS)), FakeMapState()
    store.sync(state)
    store.apply_event(state, event("10.250.0.5", "cart", 1, 10_000, 10_500, "e1"))
    store.engine.advance(900_000)
    store.prune(state)
    before = _event_range(store, store.take_changed())
    store.prune(state)                          # the clock did not move: nothing to republish
    assert store.take_changed() == set()
    store.engine.advance(905_000)               # 5 s: no prune due, the horizon moved
    store.prune(state)
    after = _event_range(store, store.take_changed())
    assert after == (before[0], before[1], before[2] + 5_000) and before[0] == "cart"


def _event_range(store: OwnershipStore, keys) -> tuple[str, int, int]:
    """The one range of the one key republished."""
    from flink_jobs import ownership_changelog

    (_, value), = ownership_changelog.changes(store.engine.attributor, keys, "us-east-1", 0)
    (r,) = pb.IpOwnership.FromString(value).ranges
    return r.workload, r.start_ms, r.end_ms


class CountingMapState(FakeMapState):
    """FakeMapState counting the calls that would cross into Java."""

    def __init__(self):
        super().__init__()
        self.calls: list[str] = []

    def put(self, key, value):
        raise AssertionError("the store writes through put_all, one call per element")

    def put_all(self, values):
        self.calls.append("put_all")
        super().put_all(values)

    def remove(self, key):
        self.calls.append("remove")
        super().remove(key)


def test_a_batch_of_many_ips_is_written_in_one_call_with_each_keys_last_value():
    store, state = OwnershipStore(Engine(CFG, "us-east-1", REGIONS)), CountingMapState()
    store.sync(state)
    rows = [(f"10.0.1.{i}", 8080, "api", IP_MAP, "10.0.0.1", 40000 + i, 1_000, 5_000) for i in range(1, 201)]
    store.learn(state, update("h1", 1, 0, rows))
    # 200 IPs' ranges, one subnet's members and the exporter's ledger: one crossing.
    assert state.calls == ["put_all"]
    assert len([k for k in state if k.startswith("hb:")]) == 200 and "seq:h1" in state
    assert sum(k.startswith("sm:") for k in state) == 1


def test_a_subnet_saved_in_the_format_before_two_join_times_is_restored_and_replaced():
    """A savepoint's "sn:" value (per member: u8 length, exporter id, i64 join; the heard
    time as a member with an empty id) restores each member as joined and named at its
    join, and the subnet's next save writes "sm:" and removes "sn:"."""
    import struct

    from flink_jobs.attribution.ranges import Subnet, subnet_key

    subnet = subnet_key(ip_to_bytes("10.0.7.9"))
    legacy = b"".join(struct.pack("<B", len(e)) + e + struct.pack("<q", t)
                      for e, t in ((b"h7", 120_000), (b"h3", 60_000), (b"", 90_000)))
    state = FakeMapState()
    state.put_all({"sn:" + subnet.hex(): legacy.decode("latin-1")})
    store = OwnershipStore(Engine(CFG, "us-east-1", REGIONS))
    store.sync(state)
    assert store.engine.attributor.heartbeats.subnets[subnet] == Subnet(
        {"h7": 120_000, "h3": 60_000}, {"h7": 120_000, "h3": 60_000}, 60_000, 90_000)
    row = ("10.0.7.20", 8080, "db", IP_MAP, "10.0.0.1", 40000, 181_000, 182_000)
    store.learn(state, update("h8", 1, 180_000, [row]))
    assert "sn:" + subnet.hex() not in state
    assert Subnet.decode(state.get("sm:" + subnet.hex()).encode("latin-1")) == Subnet(
        {"h7": 120_000, "h3": 60_000, "h8": 180_000}, {"h7": 120_000, "h3": 60_000, "h8": 180_000}, 60_000, 90_000)


def test_the_last_write_of_a_key_wins_within_one_call():
    from flink_jobs.ownership_store import StateWrites
    state = CountingMapState()
    state.put_all({"a": "old", "b": "old"})
    state.calls.clear()
    with StateWrites(state) as writes:
        writes.put("a", "1")
        writes.remove("a")      # put then remove: removed
        writes.remove("b")
        writes.put("b", "2")    # remove then put: the new value
        writes.put("c", "3")
        writes.put("c", "4")
        assert dict(state) == {"a": "old", "b": "old"}   # nothing written before the call ends
    assert dict(state) == {"b": "2", "c": "4"} and state.calls == ["put_all", "remove"]
    try:
        with StateWrites(state) as writes:
            writes.put("d", "5")
            raise RuntimeError("the element failed")
    except RuntimeError:
        pass
    assert "d" not in state   # a failed call writes nothing (the job restores its checkpoint)


def test_a_large_call_is_written_in_chunks_in_order(monkeypatch):
    from flink_jobs.ownership_store import StateWrites
    monkeypatch.setattr(StateWrites, "FLUSH_AT", 3)
    state = CountingMapState()
    state.put_all({"gone": "old"})
    state.calls.clear()
    with StateWrites(state) as writes:
        writes.put("a", "1")
        writes.put("b", "1")
        writes.put("gone", "new")     # the third write: a chunk of three puts goes
        assert dict(state) == {"gone": "new", "a": "1", "b": "1"}
        writes.remove("a")            # a later chunk removes what an earlier one put
        writes.put("c", "1")
        writes.remove("gone")         # the third write of this chunk: one put, two removes
        writes.put("d", "1")          # left for the end of the call
    assert dict(state) == {"b": "1", "c": "1", "d": "1"}
    assert state.calls == ["put_all", "put_all", "remove", "remove", "put_all"]


def _legacy_subnet(members) -> str:
    """An "sn:" value (the format before 2026-11-28): (exporter id, join); "" is the heard time."""
    import struct
    return b"".join(struct.pack("<B", len(e)) + e.encode() + struct.pack("<q", t) for e, t in members).decode("latin-1")


def test_a_subnet_with_both_an_old_and_a_new_value_restores_every_member_of_both():
    """helper-35: after a rollback to a release writing "sn:" and back, the state holds both
    values and neither is known to be newer. The restore kept "sm:" and dropped h7, known
    only to "sn:": a stale newcomer's flow no longer waited for h7's late batch. Now
    merged, in either order: every member, each time the earliest."""
    from flink_jobs.attribution.ranges import Subnet, subnet_key

    subnet = subnet_key(ip_to_bytes("10.0.7.9"))
    new = Subnet({"h1": 60_000, "n2": 30_000}, {"h1": 60_000}, 30_000, 45_000).encode().decode("latin-1")
    old = _legacy_subnet([("h1", 0), ("h7", 1_200_000), ("", 90_000)])
    merged = Subnet({"h1": 0, "n2": 30_000, "h7": 1_200_000}, {"h1": 0, "h7": 1_200_000}, 0, 45_000)
    for order in ((("sm:", new), ("sn:", old)), (("sn:", old), ("sm:", new))):
        state = FakeMapState()
        state.put_all({prefix + subnet.hex(): value for prefix, value in order})
        store = OwnershipStore(Engine(CFG, "us-east-1", REGIONS))
        store.sync(state)
        assert store.engine.attributor.heartbeats.subnets[subnet] == merged, order


def test_an_old_subnet_value_without_members_is_dropped_at_the_first_prune():
    """helper-35: the release before 2026-11-28 saved a subnet claimed only for unresolved
    workloads as a heard time and no member. Restored, no prune ever deleted it (a prune
    deleted a subnet only when it forgot a member) and its "sn:" key was never removed:
    its old heard time kept the subnet from ever looking new again, so a stale claim, the
    subnet's first named one, hours later, was neither new nor a newcomer's."""
    from flink_jobs.attribution.ranges import subnet_key

    subnet = subnet_key(ip_to_bytes("10.0.7.9"))
    state = FakeMapState()
    state.put_all({"sn:" + subnet.hex(): _legacy_subnet([("", 0)])})
    store = OwnershipStore(Engine(CFG, "us-east-1", REGIONS))
    store.sync(state)
    assert subnet in store.engine.attributor.heartbeats.subnets
    store.learn(state, update("h1", 1, 0, [("10.0.0.7", 8080, "db", IP_MAP, "10.0.0.1", 40000, 1_000, 2_000)]))
    store.engine.advance(120_000)
    store.prune(state)
    assert subnet not in store.engine.attributor.heartbeats.subnets
    assert not any(k.startswith(("sn:", "sm:")) and subnet.hex() in k for k in state)
