"""FleetProgress keeps the `rank` latest ends incrementally (every collector instance notes
every exporter's batches); it must always equal the definition, recomputed from scratch."""

from __future__ import annotations

import heapq

from hypothesis import given, settings
from hypothesis import strategies as st

from flink_jobs.attribution.ledger import FOREVER, FleetProgress

STEPS = st.lists(st.tuples(st.sampled_from(["note", "note", "note", "forget"]), st.integers(0, 6),
                           st.integers(0, 20), st.integers(0, 3)), max_size=60)


@settings(max_examples=300, deadline=None)
@given(rank=st.integers(1, 4), steps=STEPS)
def test_the_time_is_always_the_rank_th_latest_end_of_the_exporters_known(rank, steps):
    progress = FleetProgress(rank, silence_ms=5)
    now, noted = 0, []
    for op, exporter, end, wait in steps:
        now += wait  # the clock: an exporter silent for more than 5 is forgotten ...
        if op == "note":
            progress.note(f"e{exporter}", end * 60_000, now)
            noted.append(f"e{exporter}")
        else:
            progress.forget(f"e{exporter}")
        ends = list(progress.latest_of.values())
        top = heapq.nlargest(rank, ends)
        assert progress.time_ms == (top[-1] if top else -FOREVER)
        if op == "note":  # ... once `rank` batches of others came after its last
            for e in progress.latest_of:
                after = len(noted) - 1 - max(i for i, x in enumerate(noted) if x == e)
                assert now - progress.heard_ms[e] <= 5 or after < rank


def test_a_worked_example():
    """rank 2: ends 5, 9, 7 -> the 2nd latest is 7; e9 is forgotten -> 5 and 7 -> 5."""
    progress = FleetProgress(2)
    for name, end in (("a", 5), ("b", 9), ("c", 7)):
        progress.note(name, end)
    assert progress.time_ms == 7
    progress.forget("b")
    assert progress.time_ms == 5
    progress.note("a", 8)   # a's end grows past c's: the 2nd latest is c's 7
    assert progress.time_ms == 7


def test_a_note_without_a_time_is_heard_at_the_last_time_given():
    """Exporters noted without a time (a caller that lost its clock) must not block the
    silence expiry of those behind them: they count as heard at the last time given."""
    progress = FleetProgress(1, silence_ms=10)
    progress.note("old", 1, now_ms=0)
    progress.note("untimed", 2)
    for k in range(3):       # rank 1: forgotten once a batch of another came after theirs
        progress.note("live", 3 + k, now_ms=100 + k)
    assert list(progress.latest_of) == ["live"]
