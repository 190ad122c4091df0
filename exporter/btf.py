"""Struct member offsets from the RUNNING kernel's BTF (bpftool), for the BPF program.

The kernel headers installed here (Debian's 6.1 cloud headers) do not match the running
kernel, so offsets compiled from them are wrong (tcplife-bpfcc prints garbage byte
counts). These come from /sys/kernel/btf/vmlinux instead and are passed as -D flags.
"""

from __future__ import annotations

import re
import shutil
import subprocess

from schemas.errors import FlowattrError

TCP_SOCK_FIELDS = {"bytes_acked": "OFF_BYTES_ACKED", "bytes_received": "OFF_BYTES_RECEIVED",
                   "total_retrans": "OFF_TOTAL_RETRANS", "srtt_us": "OFF_SRTT_US"}


class BtfError(FlowattrError):
    pass


def _parse_types(raw_dump: str) -> dict[int, tuple[str, list[tuple[str, int, int, bool]]]]:
    """STRUCT/UNION id -> (name, [(member, type_id, bits_offset, is_bitfield)])."""
    types: dict[int, tuple[str, list]] = {}
    current = None
    for line in raw_dump.splitlines():
        head = re.match(r"\[(\d+)\] (STRUCT|UNION) '([^']*)' size=", line)
        if head:
            current = types[int(head.group(1))] = (head.group(3), [])
            continue
        if line.startswith("["):
            current = None
            continue
        m = re.match(r"\s+'([^']*)' type_id=(\d+) bits_offset=(\d+)( bitfield_size=\d+)?", line)
        if m and current is not None:
            current[1].append((m.group(1), int(m.group(2)), int(m.group(3)), bool(m.group(4))))
    return types


def struct_member_offsets(raw_dump: str, struct: str, members: list[str]) -> dict[str, int]:
    """Byte offsets of members of `struct` (looking inside anonymous structs and unions)
    in `bpftool btf dump ... format raw` output."""
    types = _parse_types(raw_dump)
    root = next((tid for tid, (name, _) in types.items() if name == struct), None)
    if root is None:
        raise BtfError(f"struct {struct} not found in BTF")
    found: dict[str, int] = {}

    def walk(tid: int, base_bits: int) -> None:
        for name, type_id, bits, bitfield in types[tid][1]:
            if name in members and name not in found:
                if bitfield or (base_bits + bits) % 8:
                    raise BtfError(f"{struct}.{name} is a bit field")
                found[name] = (base_bits + bits) // 8
            elif name == "(anon)" and type_id in types:
                walk(type_id, base_bits + bits)
    walk(root, 0)
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
    # sock.sk_flags is sock_common.skc_flags (struct sock starts with __sk_common).
    flags = struct_member_offsets(dump, "sock_common", ["skc_flags"])["skc_flags"]
    return [f"-D{TCP_SOCK_FIELDS[name]}={off}" for name, off in sorted(offsets.items())] + [f"-DOFF_SK_FLAGS={flags}"]
