"""The only module that imports bcc: loads bpf/flowtrace.c and streams flow events.

Needs root (CAP_BPF + CAP_PERFMON + CAP_SYS_ADMIN for the tracepoint and pinned maps),
tracefs, debugfs and bpffs mounted (mounted here when missing), and kernel headers for
bcc (scripts/setup.sh links Debian's). Struct offsets come from BTF (exporter/btf.py).
"""

from __future__ import annotations

import ctypes
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from exporter.btf import tcp_sock_defines
from exporter.events import FlowEvent, decode

BPF_DIR = Path(__file__).resolve().parent.parent / "bpf"
PIN_DIR = Path("/sys/fs/bpf/flowattr")


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
    """Loaded BPF program; call poll() to deliver FlowEvents to the callback."""

    def __init__(self, on_event: Callable[[FlowEvent], None]):
        reason = unavailable_reason()
        if reason:
            raise EbpfUnavailable(reason)
        ensure_mounts()
        from bcc import BPF

        cflags = [f"-I{BPF_DIR}", *tcp_sock_defines(), "-Wno-macro-redefined"]
        try:
            # bcc warns (DeprecationWarning) on str arguments: pass bytes.
            self.bpf = BPF(src_file=str(BPF_DIR / "flowtrace.c").encode(), cflags=cflags)
        except Exception as exc:
            raise EbpfUnavailable(f"loading bpf/flowtrace.c failed: {exc}") from exc
        self.lost = 0
        self._on_event = on_event

        def handle(cpu, data, size):
            self._on_event(decode(ctypes.string_at(data, size)))

        def lost(count):
            self.lost += count  # a dropped event is a metric, never a silence

        self.bpf["flow_events"].open_perf_buffer(handle, page_cnt=256, lost_cb=lost)

    def poll(self, timeout_ms: int = 100) -> None:
        self.bpf.perf_buffer_poll(timeout=timeout_ms)

    def counters(self) -> dict[str, int]:
        table = self.bpf["counters"]
        return {"closes_without_start": int(table[ctypes.c_int(0)].value),
                "events_submitted": int(table[ctypes.c_int(1)].value), "events_lost": self.lost}

    def close(self) -> None:
        self.bpf.cleanup()
