"""Which batches of each exporter have arrived: settledness of heartbeat evidence.

A claim learned first wins until a contradicting claim arrives. The claim that
contradicts a wrong one for a flow is the other side of this very connection: the
remote host's own record of it, a claim covering [start, end], in that host's batch for
the window holding the connection's END. So a flow is attributed from heartbeats only
when every exporter that could hold that record has delivered its batches for the
window(s) around end ± tolerance: no missing sequence number there, and batches up to it.

Assumptions, stated where they are enforced:
* every exporter sends one batch per window, empty when it saw no flows, numbered
  1, 2, 3 ... per exporter (`FlowBatch.sequence`; a large window is split into parts
  with consecutive numbers), so a missing number is a missing batch;
* an exporter not heard from for `silence_ms` of the collector's listening time is gone
  (host terminated): nothing more is waited for from it (`fleet`: the attributor's
  FleetProgress). Without times (unit tests), by event time: its latest
  batch ends more than `silence_ms` before the fleet's progress, the `rank`-th latest
  exporter's latest window end, so fewer than `rank` exporters with clocks (or headers)
  far ahead cannot make the others look gone;
* the collector's state begins with the earliest window it has seen from any exporter:
  an exporter first seen at a sequence above 1 may still send the lower numbers for
  windows after that, so those are waited for (a new host whose batch #1 is late).
Which exporters could hold the record is decided by the Attributor (attributor.py).
"""

from __future__ import annotations

import heapq
import struct
from bisect import bisect_right
from dataclasses import dataclass

import numpy as np

FOREVER = 2**62


@dataclass
class Run:
    """Consecutive sequences first..last; windows from first_start to last_end."""

    first: int
    last: int
    first_start_ms: int
    first_end_ms: int
    last_start_ms: int
    last_end_ms: int
    first_is_part0: bool = True     # the run's first batch is the first part of its window
    last_is_final: bool = True      # the run's last batch is the last part of its window


_RUN = struct.Struct("<QQqqqq??")


class FleetProgress:
    """How far the fleet's clocks have got: the `rank`-th latest of the exporters' latest
    window ends, so fewer than `rank` exporters with clocks (or headers) far ahead cannot
    move it. While fewer than `rank` exporters are known: the earliest of them (the
    ledger then calls no exporter gone; a liar in a small fleet, or the first batch
    read after a restart, does not lead the watermark). `silence_ms`: an exporter not
    heard from while the caller listened this long no longer counts, so a fleet shrinking
    below `rank` hosts does not stop event time for good. Listening time is the caller's
    clock (`now_ms`) between two batches, each gap counted at most LISTEN_GAP_MS (a batch
    a minute per exporter): after a pause of the caller, or a jump of its clock, the
    first batches read (a liar's backlog, say) must not make every other exporter look
    gone, leaving the liar's clock the fleet's (found by two adversarial reviews: counted
    by the clock alone, then by the batches after an exporter's last).
    Not covered: with exactly `rank` exporters, one whose clock is far behind holds the
    time back for as long as it keeps sending."""

    MAX_EXPORTERS = 1_000_000  # beyond it the exporter heard from longest ago is forgotten
    LISTEN_GAP_MS = 60_000

    def __init__(self, rank: int, silence_ms: int | None = None):
        self.rank = rank
        self.silence_ms = silence_ms
        self.latest_of: dict[str, int] = {}  # exporter -> latest window end, least recently heard first
        self.heard_ms: dict[str, int] = {}   # exporter -> listening time when last heard from
        self.listened_ms = 0
        self.last_now_ms: int | None = None
        # The exporters holding the `rank` latest ends (all of them while fewer are known),
        # kept as ends grow, so a note costs O(rank), not a pass over the fleet (every
        # collector instance notes every exporter's batches). None: recompute.
        self._top: dict[str, int] | None = {}

    def note(self, exporter: str, window_end_ms: int, now_ms: int | None = None) -> None:
        latest = self.latest_of.pop(exporter, -FOREVER)  # re-inserted last: dicts keep insertion order
        latest = self.latest_of[exporter] = max(latest, window_end_ms)
        if now_ms is not None:   # a note without a time: heard at the listening time so far
            if self.last_now_ms is not None:
                self.listened_ms += min(max(now_ms - self.last_now_ms, 0), self.LISTEN_GAP_MS)
            self.last_now_ms = now_ms
        self.heard_ms[exporter] = self.listened_ms
        while self.silence_ms is not None and \
                self.heard_ms[first := next(iter(self.latest_of))] < self.listened_ms - self.silence_ms:
            self.forget(first)
        if len(self.latest_of) > self.MAX_EXPORTERS:
            self.forget(next(iter(self.latest_of)))
        top = self._top
        if top is None or exporter not in self.latest_of:
            return
        # Latest ends only grow: a member stays in the top; another enters it when its end
        # passes the top's smallest (which leaves).
        if exporter in top or len(top) < self.rank:
            top[exporter] = latest
        else:
            smallest = min(top, key=top.__getitem__)
            if latest > top[smallest]:
                del top[smallest]
                top[exporter] = latest

    def forget(self, exporter: str) -> None:
        self.heard_ms.pop(exporter, None)
        if self.latest_of.pop(exporter, None) is not None and self._top is not None and exporter in self._top:
            self._top = None

    @property
    def time_ms(self) -> int:
        if self._top is None:
            self._top = dict(heapq.nlargest(self.rank, self.latest_of.items(), key=lambda item: item[1]))
        return min(self._top.values()) if self._top else -FOREVER


class ExporterLedger:
    def __init__(self, silence_ms: int, rank: int = 3):
        self.silence_ms = silence_ms
        self.runs: dict[str, list[Run]] = {}
        self.progress = FleetProgress(rank)
        # The attributor's FleetProgress (with a silence): once its caller gives times, an
        # exporter it forgot (silent for silence_ms of listening) is gone. Without one, or
        # before any time (unit tests), gone is judged by event time.
        self.fleet: FleetProgress | None = None
        self.earliest_start_ms = FOREVER  # of any exporter: where this collector's knowledge begins
        self.version = 0               # bumped by every change, for the caches of union_spans
        self._unions: dict[object, tuple[int, list[tuple[int, int]]]] = {}

    def record(self, exporter: str, sequence: int, window_start_ms: int, window_end_ms: int,
               part: int = 0, part_count: int = 1) -> bool:
        """Note that a batch arrived; False if it was already known (a duplicate)."""
        runs = self.runs.setdefault(exporter, [])
        k = bisect_right([r.first for r in runs], sequence) - 1   # the run starting at or before it
        if k >= 0 and sequence <= runs[k].last:
            return False
        self.version += 1
        self.progress.note(exporter, window_end_ms)
        self.earliest_start_ms = min(self.earliest_start_ms, window_start_ms)
        part0, final = part == 0, part + 1 >= part_count
        joins_prev = k >= 0 and runs[k].last + 1 == sequence
        joins_next = k + 1 < len(runs) and runs[k + 1].first == sequence + 1
        if joins_prev and joins_next:
            prev, after = runs[k], runs.pop(k + 1)
            prev.last, prev.last_start_ms, prev.last_end_ms = after.last, after.last_start_ms, after.last_end_ms
            prev.last_is_final = after.last_is_final
        elif joins_prev:
            prev = runs[k]
            prev.last, prev.last_start_ms, prev.last_end_ms = sequence, window_start_ms, window_end_ms
            prev.last_is_final = final
        elif joins_next:
            after = runs[k + 1]
            after.first, after.first_start_ms, after.first_end_ms = sequence, window_start_ms, window_end_ms
            after.first_is_part0 = part0
        else:
            runs.insert(k + 1, Run(sequence, sequence, window_start_ms, window_end_ms, window_start_ms,
                                   window_end_ms, part0, final))
        return True

    @property
    def latest_end_ms(self) -> int:
        """The fleet's progress (FleetProgress): an exporter this far behind is gone."""
        return self.progress.time_ms

    def unsettled_spans(self, exporter: str) -> list[tuple[int, int]]:
        """Spans [lo, hi] of close times whose batch of `exporter` may still be missing
        (empty when it is unknown)."""
        runs = self.runs.get(exporter)
        if not runs:
            return []
        tail = runs[-1]
        head = runs[0]
        spans = []
        if head.first > 1 and head.first_start_ms > self.earliest_start_ms:
            # Lower numbers not seen yet, for windows this collector knows: they may come.
            spans.append((self.earliest_start_ms, (head.first_start_ms if head.first_is_part0
                                                   else head.first_end_ms) - 1))
        for a, b in zip(runs, runs[1:], strict=False):
            # The missing batches lie between a's last window and b's first, or are more
            # parts of those windows when a ended or b began in the middle of a window.
            lo = a.last_end_ms if a.last_is_final else a.last_start_ms
            hi = (b.first_start_ms if b.first_is_part0 else b.first_end_ms) - 1
            spans.append((lo, hi))
        # Batches after the latest: still to come, unless the exporter is gone (its gaps stay:
        # a batch lost before the host went away is still a batch we never saw). Gone: not
        # heard from for silence_ms of listening, when the caller gives times. By event time
        # (its latest batch silence_ms behind the fleet's), an exporter whose partition is
        # read behind the others' while the job catches up on a backlog looked gone, its
        # batches still unread were not waited for, and a flow went to a stale claimant
        # (the harsh fleet's e2e run, once its batches were keyed by exporter).
        fleet = self.fleet
        gone = (exporter not in fleet.latest_of if fleet is not None and fleet.last_now_ms is not None
                else tail.last_end_ms < self.latest_end_ms - self.silence_ms)
        if not gone:
            spans.append((tail.last_end_ms if tail.last_is_final else tail.last_start_ms, FOREVER))
        return spans

    def union_spans(self, exporters, cache_key: object) -> tuple[np.ndarray, np.ndarray]:
        """unsettled_spans of several exporters together, for attributor.SpanSearch:
        (starts sorted, the largest end of the spans up to each), int64. The running
        maximum, not a merge: a span may end before it starts (an exporter whose clock
        stepped back across a missing batch), and it must not hide the spans before it
        (found by an adversarial review). Cached under cache_key until the ledger changes."""
        cached = self._unions.get(cache_key)
        if cached is not None and cached[0] == self.version:
            return cached[1]
        spans = np.array(sorted(span for exporter in exporters for span in self.unsettled_spans(exporter)),
                         np.int64).reshape(-1, 2)
        union = (spans[:, 0].copy(), np.maximum.accumulate(spans[:, 1]))
        self._unions[cache_key] = (self.version, union)
        return union

    def prune(self, horizon_ms: int) -> list[str]:
        """Forget runs before the retention horizon (flows that old are expired); return
        the exporters whose runs changed (absent from `runs` if none is left)."""
        changed = []
        self.version += 1
        self._unions.clear()
        for exporter in list(self.runs):
            runs = self.runs[exporter]
            keep = [r for r in runs if r.last_end_ms >= horizon_ms]
            if len(keep) < len(runs):
                changed.append(exporter)
                if keep:
                    self.runs[exporter] = keep
                else:
                    del self.runs[exporter]
                    self.progress.forget(exporter)
        return changed

    # -- broadcast-state encoding: one value per exporter ------------------------------
    def encode(self, exporter: str) -> bytes:
        return b"".join(_RUN.pack(r.first, r.last, r.first_start_ms, r.first_end_ms, r.last_start_ms,
                                  r.last_end_ms, r.first_is_part0, r.last_is_final)
                        for r in self.runs.get(exporter, []))

    def restore(self, exporter: str, value: bytes) -> None:
        runs = self.runs[exporter] = [Run(*fields) for fields in _RUN.iter_unpack(value)]
        if runs:
            self.progress.note(exporter, max(r.last_end_ms for r in runs))
            self.earliest_start_ms = min(self.earliest_start_ms, runs[0].first_start_ms)
        self.version += 1
