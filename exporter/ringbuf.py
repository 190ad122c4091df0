"""Bulk consumer of a BPF ring buffer (BPF_MAP_TYPE_RINGBUF) through mmap and numpy: one
read per poll returns every committed record as rows of a structured array, instead of
one Python callback per event (bcc's ring_buffer_poll / perf_buffer_poll).

Kernel layout (kernel/bpf/ringbuf.c, stable UAPI since 5.8):
* page 0 of the map fd: the consumer position (u64), mapped read-write;
* from page 1: the producer position page (u64), then the data area, mapped read-only and
  TWICE in a row, so a record that wraps around the end is still contiguous;
* each record: u32 length (bit 31 BUSY: reserved, not yet committed; bit 30 DISCARD),
  u32 page offset, then the payload, padded to 8 bytes.

Assumptions: every record has the same payload size (one struct flow_event), and the CPU
is x86-64 (TSO: a plain load of the length after the producer position observes the
kernel's release stores in order).
"""

from __future__ import annotations

import mmap
import struct

import numpy as np

BUSY_BIT = 1 << 31
DISCARD_BIT = 1 << 30
HEADER = 8


class RingReader:
    def __init__(self, map_fd: int, data_size: int, payload: np.dtype):
        if data_size & (data_size - 1):
            raise ValueError(f"ring size {data_size} is not a power of two")
        page = mmap.PAGESIZE
        self.payload = np.dtype(payload)
        self.record_size = (HEADER + self.payload.itemsize + 7) // 8 * 8
        self.mask = data_size - 1
        self._consumer = mmap.mmap(map_fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self._producer = mmap.mmap(map_fd, page + 2 * data_size, mmap.MAP_SHARED, mmap.PROT_READ, offset=page)
        self._data = np.frombuffer(self._producer, np.uint8, offset=page)
        self.discarded = 0

    def read(self) -> np.ndarray:
        """Every committed record since the last read, oldest first (a copy), and the ring
        space they held handed back to the kernel."""
        consumer = struct.unpack_from("<Q", self._consumer, 0)[0]
        producer = struct.unpack_from("<Q", self._producer, 0)[0]
        available = producer - consumer
        if available <= 0:
            return np.zeros(0, self.payload)
        if available % self.record_size:
            raise RuntimeError(f"ring holds {available} bytes, not a multiple of {self.record_size}: "
                               "records of another size were written; rebuild bpf/ and exporter/ together")
        start = consumer & self.mask
        rows = self._data[start:start + available].reshape(-1, self.record_size)
        lengths = rows[:, :4].copy().view("<u4").ravel()
        busy = np.flatnonzero(lengths & BUSY_BIT)
        if len(busy):  # stop at the first record still being written
            rows, lengths = rows[:busy[0]], lengths[:busy[0]]
        keep = (lengths & DISCARD_BIT) == 0
        self.discarded += int((~keep).sum())
        if (lengths[keep] != self.payload.itemsize).any():
            raise RuntimeError("a ring record has an unexpected length: bpf/flow_event.h and "
                               "exporter/events.py disagree")
        out = rows[keep, HEADER:HEADER + self.payload.itemsize].copy().view(self.payload).ravel()
        struct.pack_into("<Q", self._consumer, 0, consumer + len(rows) * self.record_size)
        return out

    def close(self) -> None:
        del self._data
        self._producer.close()
        self._consumer.close()
