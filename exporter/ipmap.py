"""The IP-assignment agent's side of local attribution: writes the pinned BPF maps that
flowtrace.c reads (through bpftool, so it works whether or not the exporter runs).

  ip_workloads:   16-byte IP (IPv4-mapped)                         -> 64-byte workload name
  port_workloads: (IPv4 network order, port u16 host order, 2 pad) -> 64-byte workload name
"""

from __future__ import annotations

import ipaddress
import shutil
import struct
import subprocess

from exporter.probe import PIN_DIR, ensure_mounts
from schemas.columns import ip_to_bytes
from schemas.errors import FlowattrError

MAPS = {"ip_workloads": (16, 64), "port_workloads": (8, 64)}


class IpMapError(FlowattrError):
    pass


def _bpftool(*args: str) -> str:
    tool = shutil.which("bpftool") or "/usr/sbin/bpftool"
    out = subprocess.run([tool, *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise IpMapError(f"bpftool {' '.join(args[:3])} failed: {out.stderr.strip()} "
                         "(root and bpftool are needed; run `make setup` as root)")
    return out.stdout


def ensure_maps() -> None:
    ensure_mounts()
    for name, (key, value) in MAPS.items():
        path = PIN_DIR / name
        if not path.exists():
            _bpftool("map", "create", str(path), "type", "hash", "key", str(key), "value", str(value),
                     "entries", "65536", "name", name)


def _hex(raw: bytes) -> list[str]:
    return [f"{b:02x}" for b in raw]


def _name(workload: str) -> bytes:
    raw = workload.encode()
    if not raw or len(raw) > 63:
        raise IpMapError("a workload name is 1 to 63 bytes of UTF-8")
    return raw.ljust(64, b"\0")


def _port_key(ipv4: str, port: int) -> bytes:
    return ipaddress.IPv4Address(ipv4).packed + struct.pack("<HH", port, 0)


def assign(ip: str, workload: str) -> None:
    ensure_maps()
    _bpftool("map", "update", "pinned", str(PIN_DIR / "ip_workloads"), "key", "hex", *_hex(ip_to_bytes(ip)),
             "value", "hex", *_hex(_name(workload)))


def release(ip: str) -> None:
    ensure_maps()
    _bpftool("map", "delete", "pinned", str(PIN_DIR / "ip_workloads"), "key", "hex", *_hex(ip_to_bytes(ip)))


def assign_port(ipv4: str, port: int, workload: str) -> None:
    ensure_maps()
    _bpftool("map", "update", "pinned", str(PIN_DIR / "port_workloads"), "key", "hex",
             *_hex(_port_key(ipv4, port)), "value", "hex", *_hex(_name(workload)))


def release_port(ipv4: str, port: int) -> None:
    ensure_maps()
    _bpftool("map", "delete", "pinned", str(PIN_DIR / "port_workloads"), "key", "hex", *_hex(_port_key(ipv4, port)))
