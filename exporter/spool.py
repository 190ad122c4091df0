"""A bounded, durable, ordered on-disk spool of encoded batches.

Every batch is written here first (tmp file, fsync, rename, fsync of the directory)
and deleted only after Kafka acknowledged it (acks=all), so a batch the spool accepted
survives a broker outage and an exporter crash (SIGKILL), and is sent in order. A full
spool refuses the new batch: counted in `full_rejections` and logged loudly, never silent.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

log = logging.getLogger("flowattr.exporter.spool")


class Spool:
    def __init__(self, directory: Path, max_bytes: int):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.full_rejections = 0
        self._lock = threading.Lock()  # the capture loop puts while the publisher thread removes
        for tmp in self.dir.glob("*.tmp"):  # a crash mid-write: that batch was never accepted
            tmp.unlink()
        entries = self.entries()
        self._next = int(entries[-1].name.split(".")[0]) + 1 if entries else 1
        self._bytes = sum(p.stat().st_size for p in entries)

    def last_sequence(self) -> int:
        """The last batch sequence number handed out (persisted, so ids stay unique
        across exporter restarts)."""
        try:
            return int((self.dir / "sequence").read_text())
        except (OSError, ValueError):
            return 0

    def save_sequence(self, sequence: int) -> None:
        tmp = self.dir / "sequence.tmp"
        with open(tmp, "w") as f:
            f.write(str(sequence))
            f.flush()
            os.fsync(f.fileno())
        tmp.rename(self.dir / "sequence")

    def entries(self) -> list[Path]:
        return sorted(self.dir.glob("*.batch"))

    def __len__(self) -> int:
        return len(self.entries())

    @property
    def bytes(self) -> int:
        return self._bytes

    def put(self, timestamp_ms: int, value: bytes) -> bool:
        """Durably append; False (and a loud log line) when the spool is full."""
        with self._lock:
            return self._put(timestamp_ms, value)

    def _put(self, timestamp_ms: int, value: bytes) -> bool:
        if self._bytes + len(value) > self.max_bytes:
            self.full_rejections += 1
            log.error("SPOOL FULL (%d bytes of %d): batch of %d bytes REJECTED; %d rejected so far. "
                      "Kafka is unreachable or too slow; raise --spool-max-mb or fix the broker.",
                      self._bytes, self.max_bytes, len(value), self.full_rejections)
            return False
        name = f"{self._next:020d}.{timestamp_ms}.batch"
        tmp = self.dir / (name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(value)
            f.flush()
            os.fsync(f.fileno())
        tmp.rename(self.dir / name)
        dir_fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        self._next += 1
        self._bytes += len(value)
        return True

    def peek(self) -> tuple[Path, int, bytes] | None:
        entries = self.entries()
        if not entries:
            return None
        path = entries[0]
        return path, int(path.name.split(".")[1]), path.read_bytes()

    def remove(self, path: Path) -> None:
        with self._lock:
            self._bytes -= path.stat().st_size
            path.unlink()
