"""A bounded, durable, ordered on-disk spool of encoded batches.

Every batch is written here first (tmp file, fsync, rename, fsync of the directory)
and deleted only after Kafka acknowledged it (acks=all), so a batch the spool accepted
survives a broker outage and an exporter crash (SIGKILL), and is sent in order. A full
spool refuses the new batch: counted in `full_rejections` and logged loudly, never silent.

The directory is listed once, at start: the spool then keeps its entries in memory (one
process owns the directory), so the publisher's polling costs no directory scans.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
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
        entries = sorted(self.dir.glob("*.batch"))
        self._next = int(entries[-1].name.split(".")[0]) + 1 if entries else 1
        self._entries = deque((p, p.stat().st_size) for p in entries)   # oldest first
        self._bytes = sum(size for _, size in self._entries)
        self.ready = threading.Event()   # set when a batch is put: wakes the publisher

    def last_sequence(self) -> int:
        """The last batch sequence number handed out (persisted, so ids stay unique
        across exporter restarts)."""
        try:
            return int((self.dir / "sequence").read_text())
        except (OSError, ValueError):
            return 0

    def save_sequence(self, sequence: int) -> None:
        self._replace("sequence", str(sequence).encode())

    def port_shared_ips(self) -> set[bytes]:
        """The port-shared IPs saved (Batcher.port_shared_ips, 16 bytes each): declared for
        good, so across restarts too (a host connection after a restart may share a port
        with a translated socket from before it)."""
        try:
            raw = (self.dir / "port_shared_ips").read_bytes()
        except OSError:
            return set()
        return {raw[i:i + 16] for i in range(0, len(raw) // 16 * 16, 16)}

    def save_port_shared_ips(self, ips: set[bytes]) -> None:
        self._replace("port_shared_ips", b"".join(sorted(ips)))

    def _replace(self, name: str, data: bytes) -> None:
        """Write a small state file whole or not at all (a crash keeps the old one)."""
        tmp = self.dir / f"{name}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        tmp.rename(self.dir / name)

    def entries(self) -> list[Path]:
        with self._lock:
            return [p for p, _ in self._entries]

    def __len__(self) -> int:
        return len(self._entries)

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
        self._entries.append((self.dir / name, len(value)))
        self.ready.set()
        return True

    def peek(self) -> tuple[Path, int, bytes] | None:
        with self._lock:
            if not self._entries:
                return None
            path = self._entries[0][0]
        return path, int(path.name.split(".")[1]), path.read_bytes()

    def remove(self, path: Path) -> None:
        """Delete the oldest batch (the one peek() returned), once Kafka acknowledged it."""
        with self._lock:
            if not self._entries or self._entries[0][0] != path:
                raise ValueError(f"{path} is not the oldest spooled batch: batches leave in order")
            _, size = self._entries.popleft()
            self._bytes -= size
            path.unlink()
