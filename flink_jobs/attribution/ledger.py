"""Which batches of each exporter have arrived: settledness of heartbeat evidence.

A claim learned first wins until a contradicting claim arrives; so a flow is attributed
from heartbeats only when every exporter that has claimed its IP has delivered all its
batches around the flow: no missing sequence number whose window could overlap the
flow's [start - tolerance, end + tolerance] (the other side of this very connection is
in the batch whose window holds its end), and batches up to the flow's end.

Assumptions, stated where they are enforced:
* every exporter sends one batch per window, empty when it saw no flows, numbered
  1, 2, 3 ... per exporter (`FlowBatch.sequence`), so a missing number is a missing batch;
* an exporter silent for `silence_ms` after the flow (no batch ending after
  flow start - silence_ms) is gone (host terminated); its claims are then final;
* sequences before the first one seen are history from before this collector's state.
Contradicting claims from an exporter that has never claimed the IP cannot be waited for
(nothing tells us it exists): best effort, documented in the README.
"""

from __future__ import annotations

import struct
from bisect import bisect_right
from dataclasses import dataclass


@dataclass
class Run:
    """Consecutive sequences first..last; windows from first_start to last_end."""

    first: int
    last: int
    first_start_ms: int
    first_end_ms: int
    last_start_ms: int
    last_end_ms: int


class ExporterLedger:
    def __init__(self, silence_ms: int):
        self.silence_ms = silence_ms
        self.runs: dict[str, list[Run]] = {}

    def record(self, exporter: str, sequence: int, window_start_ms: int, window_end_ms: int) -> bool:
        """Note that a batch arrived; False if it was already known (a duplicate)."""
        runs = self.runs.setdefault(exporter, [])
        k = bisect_right([r.first for r in runs], sequence) - 1   # the run starting at or before it
        if k >= 0 and sequence <= runs[k].last:
            return False
        joins_prev = k >= 0 and runs[k].last + 1 == sequence
        joins_next = k + 1 < len(runs) and runs[k + 1].first == sequence + 1
        if joins_prev and joins_next:
            prev, after = runs[k], runs.pop(k + 1)
            prev.last, prev.last_start_ms, prev.last_end_ms = after.last, after.last_start_ms, after.last_end_ms
        elif joins_prev:
            prev = runs[k]
            prev.last, prev.last_start_ms, prev.last_end_ms = sequence, window_start_ms, window_end_ms
        elif joins_next:
            after = runs[k + 1]
            after.first, after.first_start_ms, after.first_end_ms = sequence, window_start_ms, window_end_ms
        else:
            runs.insert(k + 1, Run(sequence, sequence, window_start_ms, window_end_ms, window_start_ms,
                                   window_end_ms))
        return True

    def unsettled_spans(self, exporter: str, after_ms: int) -> list[tuple[int, int]]:
        """Time spans [lo, hi] in which a batch of `exporter` may still be missing, as seen
        for flows starting at or after `after_ms`; empty when it is settled or gone."""
        runs = self.runs.get(exporter)
        if not runs:
            return []
        latest_end = runs[-1].last_end_ms
        if latest_end < after_ms - self.silence_ms:
            return []  # gone: nothing more will come from it
        spans = [(a.last_start_ms, b.first_end_ms) for a, b in zip(runs, runs[1:], strict=False)
                 if b.first_end_ms >= after_ms]  # gaps wholly before the flows cannot overlap them
        spans.append((latest_end, 2**62))  # not arrived yet: everything after its latest window
        return spans

    def prune(self, horizon_ms: int) -> list[str]:
        """Forget runs before the retention horizon (flows that old are expired); return
        the exporters whose runs changed (absent from `runs` if none is left)."""
        changed = []
        for exporter in list(self.runs):
            runs = self.runs[exporter]
            keep = [r for r in runs if r.last_end_ms >= horizon_ms]
            if len(keep) < len(runs):
                changed.append(exporter)
                if keep:
                    self.runs[exporter] = keep
                else:
                    del self.runs[exporter]
        return changed

    # -- broadcast-state encoding: one value per exporter ------------------------------
    def encode(self, exporter: str) -> bytes:
        return b"".join(struct.pack("<QQqqqq", r.first, r.last, r.first_start_ms, r.first_end_ms,
                                    r.last_start_ms, r.last_end_ms) for r in self.runs.get(exporter, []))

    def restore(self, exporter: str, value: bytes) -> None:
        self.runs[exporter] = [Run(*fields) for fields in struct.iter_unpack("<QQqqqq", value)]
