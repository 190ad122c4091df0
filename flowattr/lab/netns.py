"""Network-namespace "hosts" joined by veth pairs: real TCP traffic between distinct IPs on
one machine, for the demo, the eBPF tests and the exporter benchmark. Root only. Traffic
goes only to addresses inside namespaces created here."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass


def sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=check, capture_output=True, text=True)


@dataclass(frozen=True)
class HostPair:
    """Two namespaces: `a` with ips_a on one end of a veth pair, `b` with ips_b on the other."""

    a: str
    b: str
    ips_a: tuple[str, ...]
    ips_b: tuple[str, ...]
    prefix: int = 24

    def create(self) -> HostPair:
        self.delete()
        veth_a, veth_b = f"{self.a[:10]}_v", f"{self.b[:10]}_v"
        sh("ip", "netns", "add", self.a)
        sh("ip", "netns", "add", self.b)
        sh("ip", "link", "add", veth_a, "type", "veth", "peer", "name", veth_b)
        sh("ip", "link", "set", veth_a, "netns", self.a)
        sh("ip", "link", "set", veth_b, "netns", self.b)
        for ns, dev, ips in ((self.a, veth_a, self.ips_a), (self.b, veth_b, self.ips_b)):
            for ip in ips:
                sh("ip", "-n", ns, "addr", "add", f"{ip}/{self.prefix}", "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        return self

    def delete(self) -> None:
        for ns in (self.a, self.b):
            sh("ip", "netns", "del", ns, check=False)

    def __enter__(self) -> HostPair:
        return self.create()

    def __exit__(self, *exc) -> None:
        self.delete()
