"""The hold's index by due time, without a Flink start: a timer takes exactly the batches
due at its time, each once, and a redelivered identical batch is held once."""

from __future__ import annotations

from flink_jobs.pending_hold import PendingHold
from schemas import flowattr_pb2 as pb
from tests.flowbuild import FakeMapState


def _pending(seq: int, due: int, attempts: int = 0, note: str = "") -> bytes:
    return pb.AttributedFlowBatch(source_exporter_id="h1" + note, source_sequence=seq, attempts=attempts,
                                  next_attempt_ms=due).SerializeToString()


def test_a_timer_takes_only_the_batches_due_at_its_time():
    state = FakeMapState()
    hold = PendingHold(state)
    a, b, c = _pending(1, 120_000), _pending(2, 180_000), _pending(3, 120_000, note="-other-part")
    assert [hold.hold(p) for p in (a, b, c)] == [120_000, 180_000, 120_000]
    assert sorted(hold.take_due(120_000)) == sorted([a, c])
    assert hold.take_due(120_000) == []            # taken once
    assert hold.take_due(150_000) == []            # nothing was due then
    assert hold.take_due(180_000) == [b]
    assert state == {}                             # nothing left behind


def test_a_redelivered_batch_is_held_once_and_a_retry_of_it_separately():
    hold = PendingHold(FakeMapState())
    first = _pending(7, 120_000)
    hold.hold(first)
    hold.hold(first)                               # the retry topic re-read after a restore
    retry = _pending(7, 120_000, attempts=1)       # a later attempt of the same batch, due at the same time
    hold.hold(retry)
    assert sorted(hold.take_due(120_000)) == sorted([first, retry])


def test_a_batch_due_at_or_before_the_watermark_is_attempted_not_held():
    """A retry that comes back from Kafka after the watermark passed its due time: a timer
    set in the past would wait for a watermark advance that may never come."""
    late = _pending(9, 120_000)
    assert PendingHold.read(late)[:2] == (120_000, 0)
    assert PendingHold.is_due(120_000, watermark_ms=120_000)
    assert PendingHold.is_due(120_000, watermark_ms=500_000)
    assert not PendingHold.is_due(120_000, watermark_ms=119_999)
    assert not PendingHold.is_due(120_000, watermark_ms=-(2**63))  # before any watermark


def test_batches_held_in_the_previous_layout_still_come_due():
    """A savepoint of the previous version holds str(due) -> {id: payload}; its timers
    still fire after the upgrade, and the batches must not be lost."""
    state = FakeMapState()
    old = _pending(4, 120_000)
    state.put("120000", {"4:0:x": old})
    hold = PendingHold(state)
    new = _pending(5, 120_000)
    hold.hold(new)
    assert hold.take_due(120_000) == [new, old]
    assert state == {}


def test_every_value_is_one_batch():
    """The values of the hold stay one batch big however many are due at one time (one
    value of all of them crashed a TaskManager inside pemja)."""
    state = FakeMapState()
    hold = PendingHold(state)
    for seq in range(100):
        hold.hold(_pending(seq, 120_000))
    payloads = [v for k, v in state.items() if k.startswith("batch:")]
    assert len(payloads) == 100 and all(isinstance(v, bytes) for v in payloads)
    assert len(state["due:120000"]) == 100 and all(isinstance(i, str) for i in state["due:120000"])


def test_a_retry_already_due_is_held_until_the_time_given_not_its_due_time():
    """Attribute holds a retry whose slot the watermark has already passed until the
    watermark's next advance (at_ms = watermark + 1): its timer, and the index, at that
    time; taken then, and not at the (past) due time."""
    hold = PendingHold(FakeMapState())
    late = _pending(4, 120_000, attempts=2)
    assert hold.hold(late, at_ms=300_001) == 300_001
    assert hold.take_due(120_000) == []
    assert hold.take_due(300_001) == [late]
