"""Struct member offsets from the RUNNING kernel's BTF (bpftool), for the BPF program.

The kernel headers installed here (Debian's 6.1 cloud headers) do not match the running
kernel, so offsets compiled from them are wrong (tcplife-bpfcc prints garbage byte
counts). These come from /sys/kernel/btf/vmlinux instead and are passed as -D flags.
"""

from __future__ import annotations

import re
import shutil
import subprocess

TCP_SOCK_FIELDS = {"bytes_acked": "OFF_BYTES_ACKED", "bytes_received": "OFF_BYTES_RECEIVED",
                   "total_retrans": "OFF_TOTAL_RETRANS", "srtt_us": "OFF_SRTT_US"}


class BtfError(RuntimeError):
    pass


def struct_member_offsets(raw_dump: str, struct: str, members: list[str]) -> dict[str, int]:
    """Byte offsets of direct members of `struct` in `bpftool btf dump ... format raw` output."""
    lines = raw_dump.splitlines()
    start = next((i for i, line in enumerate(lines) if re.match(rf"\[\d+\] STRUCT '{struct}' size=", line)), None)
    if start is None:
        raise BtfError(f"struct {struct} not found in BTF")
    found = {}
    for line in lines[start + 1:]:
        if line.startswith("["):
            break
        m = re.match(r"\s+'(\w+)' type_id=\d+ bits_offset=(\d+)", line)
        if m and m.group(1) in members:
            bits = int(m.group(2))
            if bits % 8:
                raise BtfError(f"{struct}.{m.group(1)} is a bit field")
            found[m.group(1)] = bits // 8
    missing = set(members) - set(found)
    if missing:
        raise BtfError(f"{struct} has no member(s) {sorted(missing)} in this kernel's BTF")
    return found


def tcp_sock_defines(vmlinux: str = "/sys/kernel/btf/vmlinux") -> list[str]:
    """-D flags with the tcp_sock offsets of the running kernel."""
    bpftool = shutil.which("bpftool") or "/usr/sbin/bpftool"
    try:
        dump = subprocess.run([bpftool, "btf", "dump", "file", vmlinux, "format", "raw"], check=True,
                              capture_output=True, text=True, timeout=120).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise BtfError(f"cannot read BTF with bpftool ({exc}); install bpftool (make setup, as root)") from exc
    offsets = struct_member_offsets(dump, "tcp_sock", list(TCP_SOCK_FIELDS))
    shutdown = struct_member_offsets(dump, "sock", ["sk_shutdown"])["sk_shutdown"]
    return [f"-D{TCP_SOCK_FIELDS[name]}={off}" for name, off in sorted(offsets.items())] + \
        [f"-DOFF_SK_SHUTDOWN={shutdown}"]
