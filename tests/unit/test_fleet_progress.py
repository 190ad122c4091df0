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
    """Against the definition, recomputed: the rank-th latest end of the exporters not
    silent for 5 ms of listening (clock advances between batches, each at most 3 ms here)."""
    progress = FleetProgress(rank, silence_ms=5)
    progress.LISTEN_GAP_MS = 3
    now, listened, last, heard, latest = 0, 0, None, {}, {}
    for op, exporter, end, wait in steps:
        now += wait
        name = f"e{exporter}"
        if op == "note":
            progress.note(name, end * 60_000, now)
            listened += 0 if last is None else min(now - last, 3)
            last = now
            latest[name] = max(latest.get(name, end * 60_000), end * 60_000)
            heard[name] = listened
            for x in [x for x in latest if heard[x] < listened - 5]:
                del latest[x], heard[x]
        else:
            progress.forget(name)
            latest.pop(name, None)
            heard.pop(name, None)
        assert progress.latest_of == latest
        top = heapq.nlargest(rank, latest.values())
        assert progress.time_ms == (top[-1] if top else -FOREVER)


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


def test_a_pause_counts_as_one_gap_and_untimed_notes_as_heard_now():
    """Silence is listening time: a 16-minute pause of the caller counts one minute, so the
    first batches after it do not make the others look gone; a minute a batch for 16
    minutes does. A note without a time is heard at the listening time so far."""
    progress = FleetProgress(1, silence_ms=900_000)
    progress.note("old", 1, now_ms=0)
    progress.note("untimed", 2)
    for k in range(5):   # a backlog read within 4 ms, after 16 minutes of pause
        progress.note("liar", 10 + k, now_ms=960_000 + k)
    assert sorted(progress.latest_of) == ["liar", "old", "untimed"]
    for k in range(1, 16):
        progress.note("liar", 20 + k, now_ms=960_004 + 60_000 * k)
    assert sorted(progress.latest_of) == ["liar"]
