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

from schemas.addresses import mapped_network

_MISSING = object()


_V4_MAPPED_WORD = 0x0000FFFF  # bytes 8-11 of an IPv4-mapped IPv6 address: 00 00 FF FF
_V4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


class RegionMap:
    def __init__(self, cidrs: dict[str, str]):
        """cidrs: CIDR text -> region, e.g. {"10.0.0.0/16": "us-east-1"}."""
        self.trie = pytricia.PyTricia(128)
        self.regions = sorted(set(cidrs.values()))
        self._code = {region: i for i, region in enumerate(self.regions)}
        # IP -> region cache for IPv6: the trie wants text keys, and formatting an IPv6
        # address costs ~5 us; the same IPs recur batch after batch. Bounded: cleared when big.
        self._cache: dict[bytes, str | None] = {}
        self._codes: dict[bytes, int] = {}  # the same, as codes_of's codes; cleared with it
        bounds = {0}
        for cidr, region in cidrs.items():
            net = mapped_network(cidr)  # IPv4 stored IPv4-mapped, like every IP here
            # IPv4 CIDRs, and IPv6 ones written in the mapped form (::ffff:127.0.0.0/104),
            # cut the IPv4 fast path below; a wider IPv6 CIDR (::/0) covers all of it.
            if net.subnet_of(_V4_MAPPED):
                first = int(net.network_address) - int(_V4_MAPPED.network_address)
                bounds |= {first, first + net.num_addresses}
            self.trie[str(net)] = region
        # IPv4 (the common case) without the trie: the CIDR bounds cut the address space
        # into elementary intervals, each wholly inside the same set of CIDRs, so the trie's
        # longest-prefix answer for an interval's first address holds for all of it.
        self._v4_bounds = np.array(sorted(b for b in bounds if b < 2**32), np.int64)
        self._v4_codes = np.array([self._code_of(self.trie.get(f"::ffff:{ipaddress.IPv4Address(int(b))}"))
                                   for b in self._v4_bounds], np.int16)

    def _code_of(self, region: str | None) -> int:
        return -1 if region is None else self._code[region]

    def region_of(self, ip: bytes) -> str | None:
        found = self._cache.get(ip, _MISSING)
        if found is _MISSING:
            if len(self._cache) > 2_000_000:
                self._cache.clear()
                self._codes.clear()
            found = self._cache[ip] = self.trie.get(str(ipaddress.IPv6Address(ip)))
        return found

    def codes_of(self, ips: np.ndarray) -> np.ndarray:
        """(n, 16) uint8 IPs -> int16 index into self.regions per IP, -1 where unknown.
        IPv4-mapped IPs: one searchsorted; others: a dict lookup each, and one trie lookup
        per IP not seen before (cached until the cache is cleared)."""
        ips = np.ascontiguousarray(ips, np.uint8).reshape(-1, 16)
        # Four big-endian 32-bit words per IP: IPv4-mapped is 0, 0, 0x0000FFFF, address
        # (three word compares, ~5x faster than comparing 12 bytes per row).
        words = ips.view(">u4")
        v4 = (words[:, 0] == 0) & (words[:, 1] == 0) & (words[:, 2] == _V4_MAPPED_WORD)
        codes = np.full(len(ips), -1, np.int16)
        if v4.any():
            addresses = words[v4, 3].astype(np.int64)
            codes[v4] = self._v4_codes[np.searchsorted(self._v4_bounds, addresses, "right") - 1]
        if not v4.all():
            # One dict lookup per row (sorting 16-byte keys for np.unique cost more).
            other = np.flatnonzero(~v4)
            raw = ips[other].tobytes()
            cached = self._codes.get
            looked_up = [cached(raw[i:i + 16]) for i in range(0, len(raw), 16)]
            for k, code in enumerate(looked_up):
                if code is None:
                    ip = raw[16 * k:16 * k + 16]
                    looked_up[k] = self._codes[ip] = self._code_of(self.region_of(ip))
            codes[other] = looked_up
        return codes

    def regions_of(self, ips: np.ndarray) -> np.ndarray:
        """(n, 16) uint8 IPs -> object array of region names (None where unknown)."""
        return np.array(self.regions + [None], dtype=object)[self.codes_of(ips)]


class CidrSet:
    """Membership of IPs in a set of CIDRs (e.g. the event-only load-balancer ranges)."""

    def __init__(self, cidrs: tuple[str, ...] | list[str]):
        self.map = RegionMap({c: "member" for c in cidrs}) if cidrs else None

    def contains(self, ips: np.ndarray) -> np.ndarray:
        if self.map is None:
            return np.zeros(len(ips), dtype=bool)
        return self.map.codes_of(ips) >= 0
