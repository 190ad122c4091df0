"""Framing of the attribution operator's output, and its split into one stream per sink.
Pure.

Why a frame and not side outputs: PyFlink 2.0.2's embedded (thread mode) keyed-broadcast
operator drops side outputs yielded from on_timer (its on_timer_func skips the side-output
routing that process_element gets), and attempts happen in on_timer. So Attribute yields
one stream of framed records: a 1-byte route, then the payload; a forward also names its
region, ended by a NUL byte (region names never contain one).

Why the split is one flat_map per sink and not one operator with side outputs: records a
Python function yields to a SIDE output lose their timestamp (thread mode), so the Kafka
sink stamps them with the wall clock. Retry and inbound records are read back, and their
timestamps make the watermark of the pending input: wall-clock stamps on simulated or
replayed time pushed that watermark months ahead, and retries then came due at a time the
watermark never reached again (found by `flowattr reliability`: flows lost after a
TaskManager kill). A main output keeps the attempt's event time.
"""

from __future__ import annotations

ATTRIBUTED, UNATTRIBUTED, RETRY, FORWARD, DEAD_LETTER, OWNERSHIP = b"A", b"U", b"R", b"F", b"D", b"O"
EDGE_PARTIALS = b"E"  # an attempt's edge partials, pickled (edges.decided_partials)
ROUTES = (ATTRIBUTED, UNATTRIBUTED, RETRY, FORWARD, DEAD_LETTER, OWNERSHIP, EDGE_PARTIALS)


def frame(route: bytes, payload: bytes) -> bytes:
    if route not in ROUTES or route == FORWARD:
        raise ValueError(f"route {route!r}: one of {ROUTES}, and forwards through frame_forward")
    return route + payload


def frame_forward(region: str, payload: bytes) -> bytes:
    if not region or "\x00" in region:
        raise ValueError(f"region {region!r} cannot be framed")
    return FORWARD + region.encode() + b"\x00" + payload


def keyed(key: bytes, value: bytes) -> bytes:
    """The payload of a keyed record (OWNERSHIP): u16 key length, the key, the value."""
    return len(key).to_bytes(2, "little") + key + value


def unkeyed(payload: bytes) -> tuple[bytes, bytes]:
    """(key, value) of a keyed payload."""
    n = int.from_bytes(payload[:2], "little")
    return payload[2:2 + n], payload[2 + n:]


def payloads_for(record: bytes, route: bytes, region: str = "") -> list[bytes]:
    """[payload] when the framed record goes to this route (and, for FORWARD, this region),
    else []: the flat_map of one sink's stream."""
    got_route, got_region, payload = unframe(record)
    return [payload] if got_route == route and got_region == region else []


def unframe(record: bytes) -> tuple[bytes, str, bytes]:
    """(route, region ('' unless FORWARD), payload). An unknown route is a bug between
    Attribute and Route: it raises rather than losing the record."""
    route, payload = record[:1], record[1:]
    if route == FORWARD:
        region, sep, batch = payload.partition(b"\x00")
        if not sep or not region:
            raise ValueError("a forward record without its region")
        return route, region.decode(), batch
    if route not in ROUTES:
        raise ValueError(f"unknown route {route!r}: Attribute and Route disagree")
    return route, "", payload
