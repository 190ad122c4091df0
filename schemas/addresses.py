"""Address ranges with a fixed meaning, shared by the exporter and the collector.

Pure module: stdlib only (no numpy, nothing else of the project), so either side can
import it without pulling in the other.

Convention (as everywhere in flowattr): an IP is 16 bytes and an IPv4 address is stored
IPv4-mapped (::ffff:a.b.c.d). An IPv4 CIDR below therefore stands for its IPv4-mapped
form as well; `mapped_network` spells that form out for code that works on 16-byte
addresses directly.
"""

from __future__ import annotations

import ipaddress

# Host-local, non-unique addresses: the same address exists on many hosts at once, so a
# flow on one of them names no single workload and is never exported as evidence.
HOST_LOCAL_CIDRS: tuple[str, ...] = (
    "127.0.0.0/8",      # IPv4 loopback
    "::1/128",          # IPv6 loopback
    "169.254.0.0/16",   # IPv4 link-local (also cloud metadata endpoints)
    "fe80::/10",        # IPv6 link-local
    "0.0.0.0/8",        # "this host on this network": never a peer's address
    "::/128",           # IPv6 unspecified, the counterpart of 0.0.0.0
    # Docker's default bridge: every Docker host has its own 172.17.0.0/16. Assumption:
    # the VPCs do not use 172.17.0.0/16; where one does, override the default list.
    "172.17.0.0/16",
)


def mapped_network(cidr: str) -> ipaddress.IPv6Network:
    """A CIDR as the 16-byte network it covers here: '127.0.0.0/8' -> ::ffff:7f00:0/104;
    IPv6 CIDRs are returned unchanged. Raises ValueError on a malformed CIDR."""
    net = ipaddress.ip_network(cidr)
    if net.version == 4:
        return ipaddress.IPv6Network(f"::ffff:{net.network_address}/{96 + net.prefixlen}")
    return net
