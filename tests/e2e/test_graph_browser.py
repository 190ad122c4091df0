"""The dependency-graph page in a real browser: Debian's headless Chromium loads the HTML that
flowattr.graph renders for 12 workloads and 20 edges, runs its script, and the test reads the
DOM it dumps (every node and edge there, the script's count, the #filter= fragment hiding all
but one workload's neighbourhood) and a screenshot (not blank)."""

from __future__ import annotations

import struct
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import pytest

from flowattr.graph import build_graph, render

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
MINUTE = 60_000
T0 = 1_764_150_000_000 // MINUTE * MINUTE

# (client, server, port, flows per minute, which exporters report it). "both": the client's "out"
# record and the server's "in" record (one edge); "server": the client runs no exporter.
CONNECTIONS = [
    ("web-frontend", "api-gateway", 443, 900, "both"),
    ("api-gateway", "orders.svc", 8080, 400, "both"),
    ("api-gateway", "orders.svc", 8443, 40, "client"),
    ("api-gateway", "users/profile", 8080, 300, "both"),
    ("api-gateway", "auth", 9000, 600, "both"),
    ("orders.svc", "payments.v2", 8080, 120, "both"),
    ("payments.v2", "orders.svc", 8081, 30, "both"),  # the payment callback closes a cycle
    ("orders.svc", "orders-db", 5432, 350, "client"),
    ("orders.svc", "cache.redis", 6379, 500, "both"),
    ("orders.svc", "kafka-broker", 9092, 200, "both"),
    ("users/profile", "users-db", 5432, 250, "client"),
    ("users/profile", "cache.redis", 6379, 280, "both"),
    ("auth", "users-db", 5432, 90, "client"),
    ("auth", "cache.redis", 6379, 150, "both"),
    ("payments.v2", "kafka-broker", 9092, 60, "both"),
    ("kafka-broker", "kafka-broker", 9093, 45, "both"),  # replication between the broker's pods
    ('legacy "batch" job', "orders-db", 5432, 12, "server"),
    ('legacy "batch" job', "kafka-broker", 9092, 8, "server"),
    ("email-worker", "kafka-broker", 9092, 70, "both"),
    ("email-worker", "users/profile", 8080, 25, "client"),
]
WORKLOADS = {"web-frontend", "api-gateway", "orders.svc", "users/profile", "auth", "payments.v2", "orders-db",
             "cache.redis", "kafka-broker", "users-db", 'legacy "batch" job', "email-worker"}
UNATTRIBUTED = [("web-frontend", "NO_EVIDENCE", 100), ("orders.svc", "NO_EVIDENCE", 50),
                ("email-worker", "NO_EVIDENCE", 40), ("email-worker", "CONFLICTING_EVIDENCE", 15)]


def _record(minute: int, local: str, remote: str, direction: str, port: int, flows: int, reason: str = "") -> dict:
    return {"window_start_ms": T0 + minute * MINUTE, "local": local, "remote": remote, "direction": direction,
            "port": port, "flows": flows, "bytes_out": flows * 2_000, "bytes_in": flows * 30_000,
            "retransmits": flows // 50, "rtt_p50_us": 400, "rtt_p99_us": 9_000,
            "evidence": {"HEARTBEAT": 0 if reason else flows, "IP_CHANGE_EVENT": 0}, "reason": reason}


def _records() -> list[dict]:
    records = []
    for minute in range(3):
        for client, server, port, flows, reported_by in CONNECTIONS:
            if reported_by in ("both", "client"):
                records.append(_record(minute, client, server, "out", port, flows))
            if reported_by in ("both", "server"):
                records.append(_record(minute, server, client, "in", port, flows))
        records += [_record(minute, local, "", "out", 443, flows, reason) for local, reason, flows in UNATTRIBUTED]
    return records


class _Dom(HTMLParser):
    """The attributes of every element, as dicts (the parser unescapes the values)."""

    def __init__(self, text: str):
        super().__init__()
        self.elements: list[dict[str, str | None]] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.elements.append(dict(attrs))

    def with_attribute(self, name: str) -> dict[str, dict[str, str | None]]:
        return {e[name]: e for e in self.elements if name in e}

    def body(self) -> dict[str, str | None]:
        return next(e for e in self.elements if "data-rendered" in e)


def _chromium(profile: Path, *args: str) -> subprocess.CompletedProcess:
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: `bash scripts/setup.sh` installs Debian's chromium"
    command = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def _png_colours(path: Path) -> int:
    """Distinct RGB(A) colours in an 8-bit non-interlaced PNG (what Chromium writes), decoded with zlib."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, pos = {}, 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunks.setdefault(kind, []).append(data[pos + 8:pos + 8 + length])
        pos += 12 + length
    width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", chunks[b"IHDR"][0])
    assert (depth, interlace) == (8, 0) and colour_type in (2, 6), (depth, colour_type, interlace)
    channels = 3 if colour_type == 2 else 4
    raw = zlib.decompress(b"".join(chunks[b"IDAT"]))
    stride = width * channels
    previous, colours = bytearray(stride), set()
    for row in range(height):
        kind, line = raw[row * (stride + 1)], bytearray(raw[row * (stride + 1) + 1:(row + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, up_left = previous[i], previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:  # Paeth: the neighbour nearest to left + up - up_left
                estimate = left + up - up_left
                nearest = min((abs(estimate - left), 0, left), (abs(estimate - up), 1, up),
                              (abs(estimate - up_left), 2, up_left))[2]
                line[i] = (line[i] + nearest) & 0xFF
        colours.update(bytes(line[i:i + channels]) for i in range(0, stride, channels))
        previous = line
    return len(colours)


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    graph = build_graph(_records())
    path = tmp_path_factory.mktemp("graph") / "graph.html"
    path.write_text(render(graph, "html"), encoding="utf-8")
    return path


def test_the_page_renders_every_workload_and_edge_in_chromium(page, tmp_path):
    dom = _Dom(_chromium(tmp_path / "profile", "--dump-dom", page.as_uri()).stdout)

    assert dom.body()["data-rendered"] == f"{len(WORKLOADS)}/{len(CONNECTIONS)}"
    assert set(dom.with_attribute("data-node")) == WORKLOADS
    assert set(dom.with_attribute("data-edge")) == {f"{c}->{s}:{p}" for c, s, p, _, _ in CONNECTIONS}
    assert not dom.with_attribute("data-hidden"), "nothing is hidden without a filter"


def test_the_screenshot_is_not_blank(page, tmp_path):
    shot = tmp_path / "g.png"
    _chromium(tmp_path / "profile", f"--screenshot={shot}", "--window-size=1400,1000", page.as_uri())

    assert _png_colours(shot) > 3


def test_the_filter_fragment_hides_all_but_one_workload_and_its_neighbours(page, tmp_path):
    dom = _Dom(_chromium(tmp_path / "profile", "--dump-dom", page.as_uri() + "#filter=" + quote("cache.redis")).stdout)

    shown_edges = {"orders.svc->cache.redis:6379", "users/profile->cache.redis:6379", "auth->cache.redis:6379"}
    edges = dom.with_attribute("data-edge")
    assert {key for key, e in edges.items() if "data-hidden" not in e} == shown_edges
    assert all(e["data-hidden"] == "1" for key, e in edges.items() if key not in shown_edges)
    nodes = dom.with_attribute("data-node")
    assert {name for name, e in nodes.items() if "data-hidden" not in e} == {"cache.redis", "orders.svc",
                                                                               "users/profile", "auth"}
    assert [name for name, e in nodes.items() if "data-focus" in e] == ["cache.redis"]
    rows = dom.with_attribute("data-edge-row")
    assert {key for key, e in rows.items() if "data-hidden" not in e} == shown_edges


def test_the_filter_fragment_takes_a_name_with_quotes_and_spaces(page, tmp_path):
    name = 'legacy "batch" job'
    dom = _Dom(_chromium(tmp_path / "profile", "--dump-dom", page.as_uri() + "#filter=" + quote(name)).stdout)

    nodes = dom.with_attribute("data-node")
    assert {n for n, e in nodes.items() if "data-hidden" not in e} == {name, "orders-db", "kafka-broker"}
