"""Evidence lost at the door: the connections whose record the collector REJECTED.

The ledger (ledger.py) settles a flow's heartbeat evidence by counting batches: the
claim that contradicts a wrong one is the other side of this very connection, in the
remote host's batch for the window of the connection's end; once that batch has arrived,
the record is in hand. That holds only if the batch's rows were all learned. A row that
fails validation (rows.py), or every row of a batch whose workload dictionary is empty,
is dead-lettered: if it was the true owner's side of the connection, a stale claim
elsewhere looks settled (found by `flowattr evaluate --profile harsh --seed 3`: 2 flows
misattributed).

So every rejected row's connection (local IP and port, remote IP and port) is recorded
with its batch's window, widened by the close slack. A flow that may be its other side
is never settled, and as nothing will ever repair it, it is unattributed at once
(EVIDENCE_REJECTED): a flow from the row's remote IP and port to its local IP and port,
ending in that span (+- the skew tolerance). Other flows to the same IP are not touched:
the lost row is not their other side.

Assumptions: a rejected row's address and port columns are taken at face value, as they
are for valid rows (no rule can judge them; its times and workload are not trusted).
The two ends of a connection see each other's address and port (no NAT between hosts of
the region): the rule port-shared IPs already rest on, where a PORT_MAP row's local port
is the one its clients dial (heartbeats.py).
"""

from __future__ import annotations

import struct

import numpy as np

_ENTRY = struct.Struct("<16sHHqq")  # peer IP, local port, remote port, lo, hi
RECORD_BYTES = 36                   # local IP, remote IP (16 bytes each), local port, remote port (u16 LE)
_PORTS = struct.Struct("<HH")


def records_of(local_ip: np.ndarray, remote_ip: np.ndarray, local_port: np.ndarray,
               remote_port: np.ndarray) -> list[bytes]:
    """Distinct connection records (RECORD_BYTES each) of the given rows' columns."""
    ports = np.stack([np.asarray(local_port, "<u2"), np.asarray(remote_port, "<u2")], axis=1).view(np.uint8)
    rows = np.hstack([np.asarray(local_ip, np.uint8).reshape(-1, 16), np.asarray(remote_ip, np.uint8).reshape(-1, 16),
                      ports.reshape(-1, 4)])
    return sorted({row.tobytes() for row in rows})


class RejectedEvidence:
    def __init__(self):
        # local IP -> {(peer IP, local port, remote port, lo, hi)}: close-time spans [lo, hi]
        self.by_ip: dict[bytes, set[tuple[bytes, int, int, int, int]]] = {}

    def add(self, record: bytes, lo: int, hi: int) -> None:
        """The record (RECORD_BYTES) of a connection closed in [lo, hi] is lost."""
        local_port, remote_port = _PORTS.unpack(record[32:36])
        self.by_ip.setdefault(record[:16], set()).add((record[16:32], local_port, remote_port, lo, hi))

    def spans(self, ip: bytes) -> list[tuple[bytes, int, int, int, int]]:
        """(peer, local port, remote port, lo, hi) of every lost record of `ip`, sorted."""
        return sorted(self.by_ip.get(ip, ()))

    def overlaps(self, ip: bytes, peers: np.ndarray, peer_ports: np.ndarray, ip_ports: np.ndarray,
                 lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Per query i, a flow from (peers[i], peer_ports[i]) to (`ip`, ip_ports[i]) ending
        in [lo[i], hi[i]]: is a lost record of `ip` its other side?"""
        hit = np.zeros(len(lo), bool)
        if not len(lo):
            return hit
        peer_keys = np.ascontiguousarray(peers, np.uint8).reshape(-1, 16).view("V16").ravel()
        for peer, local_port, remote_port, s, e in self.by_ip.get(ip, ()):
            same_connection = (peer_keys == np.frombuffer(peer, "V16")[0]) & (
                (ip_ports == local_port) & (peer_ports == remote_port))
            hit |= same_connection & (lo <= e) & (hi >= s)
        return hit

    def prune(self, horizon_ms: int) -> list[bytes]:
        """Forget records closed before the horizon (flows that old are expired); return
        the local IPs that changed (absent from by_ip when nothing is left)."""
        changed = []
        for ip in list(self.by_ip):
            entries = self.by_ip[ip]
            kept = {entry for entry in entries if entry[4] >= horizon_ms}
            if len(kept) < len(entries):
                changed.append(ip)
                if kept:
                    self.by_ip[ip] = kept
                else:
                    del self.by_ip[ip]
        return changed

    # -- broadcast-state encoding: one value per local IP -------------------------------
    def encode(self, ip: bytes) -> bytes:
        return b"".join(_ENTRY.pack(*entry) for entry in self.spans(ip))

    def restore(self, ip: bytes, value: bytes) -> None:
        self.by_ip[ip] = set(_ENTRY.iter_unpack(value))
