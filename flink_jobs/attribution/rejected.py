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
with the close times it may have: its batch's window and its own end_ms (either may be
the wrong one: a row is rejected when they disagree), widened by the close slack. A
batch with more than MAX_RECORDS_PER_IP rejected rows of one local IP (an exporter
sending a code this collector does not know, say) is recorded as one IP-wide loss for
the span instead: every flow to that IP ending there. A flow that may be its other side
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
# local IP, remote IP (16 bytes each), local port, remote port (u16 LE), end_ms (i64 LE)
RECORD_BYTES = 44
_TAIL = struct.Struct("<HHq")
# More rejected rows than this for one local IP in one batch: one IP-wide entry instead
# (bounds the state a broken exporter can make: 50,000 rows a batch, 3 h of retention).
MAX_RECORDS_PER_IP = 64
ANY_PEER = bytes(16)  # the peer of an IP-wide entry: it matches every flow to the IP
_TIME_BOUND = 2**62   # spans are clamped here: a row's end may be any int64


def records_of(local_ip: np.ndarray, remote_ip: np.ndarray, local_port: np.ndarray,
               remote_port: np.ndarray, end_ms: np.ndarray) -> list[bytes]:
    """Distinct connection records (RECORD_BYTES each) of the given rows' columns."""
    tail = np.zeros(len(end_ms), dtype=[("lp", "<u2"), ("rp", "<u2"), ("end", "<i8")])
    tail["lp"], tail["rp"], tail["end"] = local_port, remote_port, end_ms
    rows = np.hstack([np.asarray(local_ip, np.uint8).reshape(-1, 16), np.asarray(remote_ip, np.uint8).reshape(-1, 16),
                      tail.view(np.uint8).reshape(-1, 12)])
    return sorted({row.tobytes() for row in rows})


def _clamp(t: int) -> int:
    return max(-_TIME_BOUND, min(_TIME_BOUND, t))


class RejectedEvidence:
    def __init__(self):
        # local IP -> {(peer IP, local port, remote port, lo, hi)}: close-time spans [lo, hi]
        self.by_ip: dict[bytes, set[tuple[bytes, int, int, int, int]]] = {}

    def add_batch(self, records: list[bytes], window_start_ms: int, window_end_ms: int, slack_ms: int) -> list[bytes]:
        """One batch's rejected records (RECORD_BYTES each; others are ignored: they come
        from no collector of this version). Returns the local IPs that changed."""
        by_ip: dict[bytes, list[bytes]] = {}
        for record in records:
            if len(record) == RECORD_BYTES:
                by_ip.setdefault(record[:16], []).append(record)
        for ip, group in by_ip.items():
            entries = self.by_ip.setdefault(ip, set())
            if len(group) > MAX_RECORDS_PER_IP:
                ends = [_TAIL.unpack(r[32:])[2] for r in group]
                entries.add((ANY_PEER, 0, 0, _clamp(min(window_start_ms, *ends) - slack_ms),
                             _clamp(max(window_end_ms, *ends) + slack_ms)))
                continue
            for record in group:
                local_port, remote_port, end = _TAIL.unpack(record[32:])
                # the window and the row's own end: either may be what is wrong with the row
                entries.add((record[16:32], local_port, remote_port, _clamp(min(window_start_ms, end) - slack_ms),
                             _clamp(max(window_end_ms, end) + slack_ms)))
        return sorted(by_ip)

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
            if peer == ANY_PEER:
                hit |= (lo <= e) & (hi >= s)
                continue
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
        if len(value) % _ENTRY.size:  # never written so: a corrupted value loses nothing silently
            raise ValueError(f"broadcast state rej:{ip.hex()} holds {len(value)} bytes, not a multiple of "
                             f"{_ENTRY.size}; the checkpoint is damaged: restore from an earlier one")
        self.by_ip[ip] = set(_ENTRY.iter_unpack(value))
