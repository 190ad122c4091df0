"""Regions: a CIDR trie (pytricia) of VPC ranges maps an IP to its region, so a flow whose
remote IP is in another region is forwarded there (ownership state stays regional).

Assumption: VPC CIDRs do not overlap across regions; where they nest, the longest prefix
wins (ordinary routing semantics). IPs in no configured CIDR have region None and are
attributed locally (e.g. internet addresses: usually unattributed, never guessed).
"""

from __future__ import annotations

import ipaddress

import numpy as np
import pytricia

_MISSING = object()


class RegionMap:
    def __init__(self, cidrs: dict[str, str]):
        """cidrs: CIDR text -> region, e.g. {"10.0.0.0/16": "us-east-1"}."""
        self.trie = pytricia.PyTricia(128)
        self.regions = sorted(set(cidrs.values()))
        # IP -> region cache: the trie wants text keys, and formatting an IPv6 address costs
        # ~5 us; the same IPs recur batch after batch. Bounded: cleared when it grows too big.
        self._cache: dict[bytes, str | None] = {}
        for cidr, region in cidrs.items():
            net = ipaddress.ip_network(cidr)
            if net.version == 4:  # stored IPv4-mapped, like every IP here
                net = ipaddress.ip_network(f"::ffff:{net.network_address}/{96 + net.prefixlen}")
            self.trie[str(net)] = region

    def region_of(self, ip: bytes) -> str | None:
        found = self._cache.get(ip, _MISSING)
        if found is _MISSING:
            if len(self._cache) > 2_000_000:
                self._cache.clear()
            found = self._cache[ip] = self.trie.get(str(ipaddress.IPv6Address(ip)))
        return found

    def regions_of(self, ips: np.ndarray) -> np.ndarray:
        """(n, 16) uint8 IPs -> object array of region names (None where unknown).
        One trie lookup per DISTINCT IP."""
        flat = np.ascontiguousarray(ips).view("V16").ravel()
        uniq, inverse = np.unique(flat, return_inverse=True)
        looked_up = np.array([self.region_of(u.tobytes()) for u in uniq] + [None], dtype=object)[:-1]
        return looked_up[inverse]


class CidrSet:
    """Membership of IPs in a set of CIDRs (e.g. the event-only load-balancer ranges)."""

    def __init__(self, cidrs: tuple[str, ...] | list[str]):
        self.map = RegionMap({c: "member" for c in cidrs}) if cidrs else None

    def contains(self, ips: np.ndarray) -> np.ndarray:
        if self.map is None:
            return np.zeros(len(ips), dtype=bool)
        return self.map.regions_of(ips) == "member"
