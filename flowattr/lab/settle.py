"""Waiting for every flow of a finite run to get an outcome, while event time keeps moving.

Real exporters send a batch every minute, even an empty one, so event time never stops.
A finite run (a simulated fleet, the demo, a benchmark) stops sending, and then the job's
watermark stops too: a retry read back after the last batch is due a minute after the
watermark it was attempted at, and would wait forever. EventClock stands in for the
exporters: between polls it sends the next minutes of empty batches from a "clock"
exporter on every partition, as advance_event_time does once. It ticks from its own
thread, a minute of event time a second, so a retry chain (one Kafka round trip per
attempt) is never held up by the time scoring the outputs takes.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from flowattr.lab.evaluate import score_topics
from flowattr.lab.simulate import advance_event_time
from flowattr.stack.kafka_clients import producer
from schemas.errors import FlowattrError


class EventClock:
    def __init__(self, bootstrap: str, regions: list[str], from_ms: int):
        self.producer = producer(bootstrap)
        self.regions = list(regions)
        self.next_ms = from_ms // 60_000 * 60_000
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.failure: Exception | None = None

    def check(self) -> None:
        """Raise if the ticking thread died: event time stopped, so a wait would only time out."""
        if self.failure is not None:
            raise FlowattrError(f"the event clock stopped: {self.failure}") from self.failure

    def tick(self, minutes: int) -> None:
        with self._lock:
            advance_event_time(self.producer, self.regions, self.next_ms, minutes)
            self.next_ms += minutes * 60_000

    def start(self, every_s: float = 1.0) -> EventClock:
        """Tick a minute every `every_s` seconds until close() (once: a second call is a no-op)."""
        if self._thread is not None:
            return self

        def run():
            try:
                while not self._stop.wait(every_s):
                    self.tick(1)
            except Exception as exc:  # noqa: BLE001 - reported by check(), not lost with the thread
                self.failure = exc
        self._thread = threading.Thread(target=run, name="event-clock", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop ticking (event time stays where it got)."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)

    def close(self) -> None:
        self.stop()
        self.producer.close()


def wait_for_outcomes(bootstrap: str, truth: Path, regions: list[str], clock: EventClock, timeout_s: float,
                      say, alive=lambda: True, poll_s: float = 5) -> dict:
    """Score the output topics against the truth until no flow is missing or the deadline;
    return the last scores (their `missing` says what never got an outcome). `alive` is
    checked every poll: a job that died ends the wait with an error."""
    deadline = time.monotonic() + timeout_s
    clock.start()
    while True:
        clock.check()
        if not alive():
            raise FlowattrError("a collector job stopped while flows were still waiting for an outcome; "
                               "see its log")
        scores = score_topics(bootstrap, truth, regions, progress=lambda *_: None)
        say(f"  {scores['flows'] - scores['missing']:,} of {scores['flows']:,} flows have an outcome "
            f"({scores['attributed']:,} attributed, {scores['unattributed']:,} unattributed)")
        if scores["missing"] == 0 or time.monotonic() > deadline:
            return scores
        time.sleep(poll_s)
