"""flowattr.graph: the rules that turn per-minute edge records into one dependency graph, worked
out by hand, and the shape of each rendering (escaping included). No browser here: the page's
script runs in tests/e2e/test_graph_browser.py."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest

from flowattr.graph import FORMATS, Edge, Node, build_graph, render

MINUTE = 60_000
T0 = 1_764_150_000_000 // MINUTE * MINUTE


def record(local: str, remote: str, direction: str, port: int, flows: int, *, minute: int = 0, bytes_out: int = 0,
           bytes_in: int = 0, retransmits: int = 0, p50: int = 0, p99: int = 0, heartbeat: int | None = None,
           ip_change: int = 0, reason: str = "") -> dict:
    """One edge record as the job emits it; attributed flows default to heartbeat evidence."""
    if heartbeat is None:
        heartbeat = 0 if reason else flows - ip_change
    return {"window_start_ms": T0 + minute * MINUTE, "local": local, "remote": remote, "direction": direction,
            "port": port, "flows": flows, "bytes_out": bytes_out, "bytes_in": bytes_in, "retransmits": retransmits,
            "rtt_p50_us": p50, "rtt_p99_us": p99, "evidence": {"HEARTBEAT": heartbeat, "IP_CHANGE_EVENT": ip_change},
            "reason": reason}


def unattributed(local: str, flows: int, reason: str = "NO_EVIDENCE", minute: int = 0) -> dict:
    return record(local, "", "out", 443, flows, minute=minute, reason=reason)


def edges_by_triple(graph) -> dict[tuple[str, str, int], Edge]:
    return {(e.client, e.server, e.port): e for e in graph.edges}


def nodes_by_name(graph) -> dict[str, Node]:
    return {n.name: n for n in graph.nodes}


# ---- rules ---------------------------------------------------------------------------------------

def test_both_ends_of_one_connection_make_one_edge_with_the_clients_numbers():
    graph = build_graph([
        record("web", "api", "out", 8080, 10, bytes_out=100, bytes_in=2_000, retransmits=1, p50=300, p99=900),
        # the server's view of the same connections: a little different, and ignored for the edge
        record("api", "web", "in", 8080, 9, bytes_out=1_900, bytes_in=95, retransmits=4, p50=280, p99=950),
    ])

    assert graph.edges == (Edge("web", "api", 8080, "client", flows=10, bytes_to_server=100, bytes_to_client=2_000,
                                retransmits=1, rtt_p50_us=300, rtt_p99_us=900,
                                evidence={"HEARTBEAT": 10, "IP_CHANGE_EVENT": 0}),)
    # each exporter's own flows still count for its node
    assert nodes_by_name(graph)["web"].attributed_flows == 10
    assert nodes_by_name(graph)["api"].attributed_flows == 9


def test_a_client_without_an_exporter_gets_its_edge_from_the_servers_in_records():
    graph = build_graph([
        record("db", "batch", "in", 5432, 4, bytes_out=400, bytes_in=40, p50=120, p99=500),
        record("db", "batch", "in", 5432, 2, minute=1, bytes_out=200, bytes_in=20, p50=150, p99=400),
    ])

    # in records: bytes_in is what the client sent; rtt p50 (120*4 + 150*2) / 6 = 130
    assert graph.edges == (Edge("batch", "db", 5432, "server", flows=6, bytes_to_server=60, bytes_to_client=600,
                                retransmits=0, rtt_p50_us=130, rtt_p99_us=500,
                                evidence={"HEARTBEAT": 6, "IP_CHANGE_EVENT": 0}),)
    assert nodes_by_name(graph)["batch"] == Node("batch", 0, 0, {})
    assert nodes_by_name(graph)["batch"].unattributed_share is None


def test_in_records_are_dropped_for_a_triple_with_any_out_record_in_the_range():
    records = [
        record("web", "api", "out", 80, 5, minute=0, bytes_out=50),
        record("api", "web", "in", 80, 5, minute=0, bytes_in=50),
        # the client's exporter missed minute 1; the server's record alone does not make it count
        record("api", "web", "in", 80, 7, minute=1, bytes_in=70),
    ]

    assert edges_by_triple(build_graph(records))[("web", "api", 80)].flows == 5
    # ...but over minute 1 alone there is no out record, so the server's record is the edge
    only_minute_1 = edges_by_triple(build_graph(records, start_ms=T0 + MINUTE))[("web", "api", 80)]
    assert (only_minute_1.flows, only_minute_1.bytes_to_server, only_minute_1.reported_by) == (7, 70, "server")


def test_other_ports_and_the_reverse_direction_are_other_edges():
    graph = build_graph([
        record("api", "db", "out", 5432, 3),
        record("api", "db", "out", 6432, 2),
        record("db", "api", "out", 8080, 1),   # db calls api back: client db, server api
        record("api", "db", "in", 8080, 1),
    ])

    assert sorted(edges_by_triple(graph)) == [("api", "db", 5432), ("api", "db", 6432), ("db", "api", 8080)]
    assert edges_by_triple(graph)[("db", "api", 8080)].reported_by == "client"


def test_unattributed_records_make_no_edge_and_set_the_share_by_reason():
    graph = build_graph([
        record("web", "api", "out", 443, 20),
        record("web", "lb", "in", 443, 10),
        unattributed("web", 4, minute=0),
        unattributed("web", 2, minute=1),
        unattributed("web", 4, reason="CONFLICTING_EVIDENCE"),
        unattributed("cron", 3),   # a workload with unattributed flows only
    ])

    web = nodes_by_name(graph)["web"]
    assert (web.attributed_flows, web.unattributed_flows) == (30, 10)
    assert web.unattributed_by_reason == {"CONFLICTING_EVIDENCE": 4, "NO_EVIDENCE": 6}
    assert web.unattributed_share == 10 / 40
    assert nodes_by_name(graph)["cron"] == Node("cron", 0, 3, {"NO_EVIDENCE": 3})
    assert nodes_by_name(graph)["cron"].unattributed_share == 1.0
    assert [n.name for n in graph.nodes] == ["api", "cron", "lb", "web"]   # no node named ""
    assert sorted(edges_by_triple(graph)) == [("lb", "web", 443), ("web", "api", 443)]


def test_the_time_range_keeps_windows_from_start_to_before_end():
    records = [record("web", "api", "out", 80, flows, minute=minute) for minute, flows in [(0, 1), (1, 10), (2, 100)]]
    records.append(unattributed("web", 5, minute=2))

    def flows(**time_range) -> int:
        return sum(e.flows for e in build_graph(records, **time_range).edges)

    assert flows() == 111
    assert flows(start_ms=T0 + MINUTE, end_ms=T0 + 2 * MINUTE) == 10
    assert flows(start_ms=T0 + MINUTE) == 110
    assert flows(end_ms=T0 + 2 * MINUTE) == 11
    assert nodes_by_name(build_graph(records, end_ms=T0 + 2 * MINUTE))["web"].unattributed_flows == 0
    assert build_graph(records, start_ms=T0 + 3 * MINUTE).nodes == ()
    assert build_graph(records, start_ms=T0, end_ms=T0 + MINUTE).start_ms == T0


def test_over_windows_counts_add_up_p50_is_the_flow_weighted_mean_and_p99_the_max():
    graph = build_graph([
        record("web", "api", "out", 80, 1, minute=0, bytes_out=10, bytes_in=100, retransmits=2, p50=100, p99=1_000),
        record("web", "api", "out", 80, 3, minute=1, bytes_out=30, bytes_in=300, retransmits=1, p50=300, p99=700,
               heartbeat=2, ip_change=1),
        record("web", "api", "out", 80, 6, minute=2, bytes_out=60, bytes_in=600, p50=210, p99=800),
    ])

    # p50: (100*1 + 300*3 + 210*6) / 10 = 2260 / 10 = 226; p99: max(1000, 700, 800)
    assert graph.edges == (Edge("web", "api", 80, "client", flows=10, bytes_to_server=100, bytes_to_client=1_000,
                                retransmits=3, rtt_p50_us=226, rtt_p99_us=1_000,
                                evidence={"HEARTBEAT": 9, "IP_CHANGE_EVENT": 1}),)


def test_a_record_with_an_unknown_direction_is_an_error():
    with pytest.raises(ValueError, match="'sideways'"):
        build_graph([record("web", "api", "sideways", 80, 1)])


# ---- renderings ----------------------------------------------------------------------------------

ODD_NAMES = ["ns/web-app.v2", 'say "hi"', "back\\slash", "#1 <b>&co</b>"]


def odd_graph():
    """Workloads whose names need quoting in every format, calling each other in a ring."""
    records = [record(a, b, "out", 80 + i, 10 * (i + 1), bytes_out=1_500)
               for i, (a, b) in enumerate(zip(ODD_NAMES, ODD_NAMES[1:] + ODD_NAMES[:1], strict=True))]
    return build_graph(records + [unattributed(ODD_NAMES[0], 10)])


DOT_STRING = r'"((?:[^"\\]|\\.)*)"'


def dot_unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), text)


def test_dot_quotes_every_name_and_has_one_statement_per_node_and_edge():
    dot = render(odd_graph(), "dot")
    lines = dot.splitlines()

    assert lines[0] == "digraph dependencies {" and lines[-1] == "}"
    edges = [re.fullmatch(rf"  {DOT_STRING} -> {DOT_STRING} \[label={DOT_STRING}, penwidth=[\d.]+\];", line)
             for line in lines if " -> " in line]
    assert [(dot_unescape(m[1]), dot_unescape(m[2])) for m in edges] == sorted(
        zip(ODD_NAMES, ODD_NAMES[1:] + ODD_NAMES[:1], strict=True))
    nodes = [re.fullmatch(rf"  {DOT_STRING} \[label={DOT_STRING}\];", line) for line in lines if "label" in line
             and " -> " not in line and line.startswith('  "')]
    assert sorted(dot_unescape(m[1]) for m in nodes) == sorted(ODD_NAMES)
    # the label's first line is the name itself; \n starts the second
    assert {dot_unescape(m[2]).split("\n")[0] for m in nodes} == set(ODD_NAMES)
    assert r'  "say \"hi\"" [label="say \"hi\"\n20 flows, 0.0% unattributed"];' in lines
    # penwidth 1.2 + 5.8 * sqrt(30 / 40) = 6.2
    assert r'  "back\\slash" -> "#1 <b>&co</b>" [label=":82 · 30 flows, 1.5 kB", penwidth=6.2];' in lines


def test_dot_dashes_edges_seen_only_by_the_server_and_workloads_without_exporter():
    dot = render(build_graph([record("db", "batch", "in", 5432, 4, bytes_out=4_000)]), "dot")

    assert '  "batch" -> "db" [label=":5432 · 4 flows, 4.0 kB", penwidth=7.0, style=dashed];' in dot.splitlines()
    assert '  "batch" [label="batch\\nno exporter", style="rounded,dashed"];' in dot.splitlines()


def test_mermaid_gives_nodes_plain_ids_and_entity_escapes_their_names():
    mermaid = render(odd_graph(), "mermaid")
    lines = mermaid.splitlines()

    assert lines[0] == "flowchart LR"
    labels = {}
    for line in lines:
        if m := re.fullmatch(r'  (n\d+)\["([^"]*)"\](:::noexporter)?', line):
            labels[m[1]] = re.sub(r"#(\d+);", lambda e: chr(int(e[1])), m[2])
    assert sorted(label.split("<br/>")[0] for label in labels.values()) == sorted(ODD_NAMES)
    assert '  n3["say #34;hi#34;<br/>20 flows, 0.0% unattributed"]' in lines
    assert '  n0["#35;1 #60;b#62;#38;co#60;/b#62;<br/>40 flows, 0.0% unattributed"]' in lines
    ids = {label.split("<br/>")[0]: node_id for node_id, label in labels.items()}
    edges = [re.fullmatch(r'  (n\d+) -->\|"([^"]*)"\| (n\d+)', line) for line in lines if "-->" in line]
    assert sorted((m[1], m[3]) for m in edges) == sorted(
        (ids[a], ids[b]) for a, b in zip(ODD_NAMES, ODD_NAMES[1:] + ODD_NAMES[:1], strict=True))


def test_mermaid_draws_edges_seen_only_by_the_server_dotted():
    mermaid = render(build_graph([record("db", "batch", "in", 5432, 4)]), "mermaid")

    assert '  n0 -.->|":5432 · 4 flows, 0 B"| n1' in mermaid.splitlines()
    assert '  n0["batch<br/>no exporter"]:::noexporter' in mermaid.splitlines()


def test_json_carries_every_field_and_the_share():
    document = json.loads(render(odd_graph(), "json"))

    assert (document["start_ms"], document["end_ms"]) == (None, None)
    assert [n["name"] for n in document["nodes"]] == sorted(ODD_NAMES)
    web = next(n for n in document["nodes"] if n["name"] == "ns/web-app.v2")
    assert web == {"name": "ns/web-app.v2", "attributed_flows": 10, "unattributed_flows": 10,
                   "unattributed_by_reason": {"NO_EVIDENCE": 10}, "unattributed_share": 0.5}
    assert document["edges"][0] == {
        "client": "#1 <b>&co</b>", "server": "ns/web-app.v2", "port": 83, "reported_by": "client", "flows": 40,
        "bytes_to_server": 1_500, "bytes_to_client": 0, "retransmits": 0, "rtt_p50_us": 0, "rtt_p99_us": 0,
        "evidence": {"HEARTBEAT": 40, "IP_CHANGE_EVENT": 0}}


class Elements(HTMLParser):
    """Every start tag as (tag, attributes), attribute values unescaped by the parser."""

    def __init__(self, text: str):
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None]]] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, dict(attrs)))

    def values(self, attribute: str) -> list[str | None]:
        return [attrs[attribute] for _, attrs in self.found if attribute in attrs]


def test_html_is_one_file_with_an_element_per_node_and_edge_and_nothing_external():
    graph = odd_graph()
    page = render(graph, "html")
    elements = Elements(page)

    assert page.startswith("<!DOCTYPE html>")
    assert sorted(elements.values("data-node")) == sorted(ODD_NAMES)
    assert sorted(elements.values("data-edge")) == sorted(e.key for e in graph.edges)
    assert sorted(elements.values("data-edge-row")) == sorted(e.key for e in graph.edges)
    assert len(elements.values("data-edge-label")) == len(graph.edges)
    # the only URL is the SVG namespace, an identifier no browser fetches
    assert re.findall(r"https?://[^\s\"']+", page) == ["http://www.w3.org/2000/svg"]
    assert not [tag for tag, attrs in elements.found if tag in ("link", "img", "iframe") or "src" in attrs]
    assert "dataset.rendered" in page and "#filter=" in page


def test_html_workload_rectangles_do_not_overlap():
    graph = build_graph([record(f"svc-{i % 4}", f"db-{i % 3}", "out", 5432 + i, i + 1) for i in range(12)]
                        + [record("svc-0", "svc-1", "out", 80, 5), record("svc-1", "svc-0", "out", 81, 5),
                           record("db-0", "db-0", "out", 7000, 2), unattributed("lonely", 3)])
    rects = []
    node = None
    for tag, attrs in Elements(render(graph, "html")).found:
        if "data-node" in attrs:
            node = attrs["data-node"]
        elif tag == "rect" and node is not None:
            rects.append((node, *(float(attrs[k]) for k in ("x", "y", "width", "height"))))
            node = None

    assert sorted(name for name, *_ in rects) == sorted(n.name for n in graph.nodes)
    for i, (a, ax, ay, aw, ah) in enumerate(rects):
        for b, bx, by, bw, bh in rects[i + 1:]:
            assert ax + aw <= bx or bx + bw <= ax or ay + ah <= by or by + bh <= ay, (a, b)


def test_html_of_a_graph_without_edges_or_nodes():
    assert Elements(render(build_graph([unattributed("lonely", 3)]), "html")).values("data-node") == ["lonely"]
    assert Elements(render(build_graph([]), "html")).values("data-node") == []


def test_an_unknown_format_names_the_valid_ones():
    with pytest.raises(ValueError, match="'svg'.*json, dot, mermaid, html"):
        render(build_graph([]), "svg")
    assert FORMATS == ("json", "dot", "mermaid", "html")
