"""The only module that imports bcc: loads bpf/flowtrace.c and streams flow events.

Needs root (CAP_BPF + CAP_PERFMON + CAP_SYS_ADMIN for the tracepoint and pinned maps),
tracefs, debugfs and bpffs mounted (mounted here when missing), and kernel headers for
bcc (scripts/setup.sh links Debian's). Struct offsets come from BTF (exporter/btf.py).
"""

from __future__ import annotations

import ctypes
import mmap
import os
import struct
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from exporter.btf import tcp_sock_defines
from exporter.events import FLOW_EVENT_DTYPE
from exporter.ringbuf import RingReader
from schemas.columns import V4_MAPPED_PREFIX

BPF_DIR = Path(__file__).resolve().parent.parent / "bpf"
PIN_DIR = Path("/sys/fs/bpf/flowattr")  # where flowtrace.c pins its maps (a test checks the C side)
# Ring buffer size: 2048 pages (8 MiB) hold ~52k records of 160 bytes: a second at the
# exporter's 1 poll/s (used under 10k events/s), ~520k/s at its 100 ms polls (used above;
# exporter/agent.py next_poll_ms).
RING_PAGES = 2048


class EbpfUnavailable(RuntimeError):
    """eBPF capture cannot run here; the message says why and what to do."""


def ensure_mounts() -> None:
    for target, fstype in (("/sys/kernel/tracing", "tracefs"), ("/sys/kernel/debug", "debugfs"),
                           ("/sys/fs/bpf", "bpf")):
        marker = {"tracefs": "events", "debugfs": "tracing", "bpf": None}[fstype]
        if marker and (Path(target) / marker).exists():
            continue
        if fstype == "bpf" and _is_mounted(target, "bpf"):
            continue
        subprocess.run(["mount", "-t", fstype, "nodev", target], check=False, capture_output=True)
    PIN_DIR.mkdir(parents=True, exist_ok=True)


def _is_mounted(target: str, fstype: str) -> bool:
    with open("/proc/mounts") as f:
        return any(line.split()[1] == target and line.split()[2] == fstype for line in f)


def unavailable_reason() -> str | None:
    """Why eBPF capture cannot run here, or None if it can."""
    if os.geteuid() != 0:
        return "not root: eBPF capture needs root (CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN)"
    if not Path("/sys/kernel/btf/vmlinux").exists():
        return "the kernel has no BTF (/sys/kernel/btf/vmlinux): tcp_sock offsets cannot be read"
    try:
        import bcc  # noqa: F401
    except ImportError:
        return "Debian's bcc (python3-bpfcc) is not installed or not linked into .venv; run `make setup` as root"
    return None


class FlowProbe:
    """Loaded BPF program; each poll() hands every event captured since the last one to the
    callback as one array of FLOW_EVENT_DTYPE rows (read in bulk from the ring buffer)."""

    def __init__(self, on_records: Callable[[np.ndarray], None]):
        reason = unavailable_reason()
        if reason:
            raise EbpfUnavailable(reason)
        ensure_mounts()
        from bcc import BPF

        cflags = [f"-I{BPF_DIR}", f"-DRING_PAGES={RING_PAGES}", *tcp_sock_defines(), "-Wno-macro-redefined"]
        try:
            # bcc warns (DeprecationWarning) on str arguments: pass bytes.
            self.bpf = BPF(src_file=str(BPF_DIR / "flowtrace.c").encode(), cflags=cflags)
        except Exception as exc:
            raise EbpfUnavailable(f"loading bpf/flowtrace.c failed: {exc}") from exc
        self._on_records = on_records
        self.ring = RingReader(self.bpf["flow_events"].map_fd, RING_PAGES * mmap.PAGESIZE, FLOW_EVENT_DTYPE)

    def poll(self, timeout_ms: int = 100) -> int:
        """Wait timeout_ms (the BPF side sends no wakeups: events are read at this cadence,
        in bulk), then deliver what the ring holds. Returns the number of events delivered."""
        if timeout_ms > 0:
            time.sleep(timeout_ms / 1000)
        rows = self.ring.read()
        if len(rows):
            self._on_records(rows)
        return len(rows)

    def port_shared_ips(self) -> set[bytes]:
        """The local IPv4s the port map holds an entry for (16 bytes, IPv4-mapped): shared
        by port with translated sockets (Batcher.declare_port_shared)."""
        # struct port_key's ipv4 holds the address's bytes in network order; read as a
        # little-endian u32 by ctypes, packed back the same way.
        return {V4_MAPPED_PREFIX + struct.pack("<I", key.ipv4) for key in self.bpf["port_workloads"].keys()}

    def counters(self) -> dict[str, int]:
        table = self.bpf["counters"]
        # A dropped event (ring full) is a metric, never a silence.
        return {"closes_without_start": int(table[ctypes.c_int(0)].value),
                "events_submitted": int(table[ctypes.c_int(1)].value),
                "events_lost": int(table[ctypes.c_int(2)].value)}

    def close(self) -> None:
        self.ring.close()
        self.bpf.cleanup()
