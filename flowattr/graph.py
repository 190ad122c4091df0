"""The workload dependency graph of attributed flows, rendered as JSON, Graphviz DOT, Mermaid or
one self-contained HTML page (an SVG laid out here, in Python; no external resource).

Pure: the standard library only, so the CLI and tests use it without pyflink or kafka.

Input: the edge records the Flink job emits per minute of flow start, one dict each:
  window_start_ms  the minute of flow start, ms since the epoch (a multiple of 60000)
  local            the workload on the exporter's host side
  remote           the attributed remote workload; "" when unattributed
  direction        "out": local is the client (it dialled remote:port); "in": local is the server
  port             the service port (the server side's port)
  flows, bytes_out, bytes_in, retransmits   bytes_out = bytes sent by local
  rtt_p50_us, rtt_p99_us                    the window's round-trip-time percentiles
  evidence         attributed flows by evidence source: {"HEARTBEAT": n, "IP_CHANGE_EVENT": n}
  reason           "" when attributed; else why not, e.g. "NO_EVIDENCE"

Rules:
* An edge is client -> server on the server's port: an "out" record is local -> remote, an "in"
  record remote -> local.
* Both ends of one connection may be reported (the client's exporter and the server's), and an
  edge counts each connection once: the client side's "out" records give an edge's numbers; "in"
  records count only for (client, server, port) triples that have no "out" record in the selected
  time range (clients without an exporter). Bytes to the server are bytes_out of an "out" record
  and bytes_in of an "in" record; Edge.reported_by says which side's records an edge comes from.
* Unattributed records (reason != "") never make edges. They add, per local workload and reason,
  to that node's unattributed flows. A node's unattributed share is unattributed / (attributed +
  unattributed) flows over the records whose local is that node (what its own exporter saw, both
  directions); a workload seen only as a remote has no exporter and no share (None).
* Over several windows flows, bytes, retransmits and evidence counts are summed. Percentiles do
  not add up, so two approximations: rtt_p50_us is the flow-weighted mean of the windows' p50
  (rounded to the microsecond; the true median of all flows lies between the smallest and the
  largest window p50, not necessarily at this mean), and rtt_p99_us is the largest window p99 (an
  upper bound of the p99 of all flows, since no window has more than 1 % of its flows above it).
* The optional time range [start_ms, end_ms) keeps the records whose window_start_ms is in it.
"""

from __future__ import annotations

import html
import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime


@dataclass(frozen=True)
class Node:
    name: str
    attributed_flows: int               # attributed flows in the records whose local is this workload
    unattributed_flows: int             # unattributed flows in those records
    unattributed_by_reason: dict[str, int]  # unattributed flows by reason, reasons sorted

    @property
    def unattributed_share(self) -> float | None:
        """None when the workload reported no flows itself (it appears only as a remote)."""
        total = self.attributed_flows + self.unattributed_flows
        return self.unattributed_flows / total if total else None


@dataclass(frozen=True)
class Edge:
    client: str
    server: str
    port: int                           # the server's port
    reported_by: str                    # "client": from the client's "out" records; "server": only the server saw it
    flows: int
    bytes_to_server: int
    bytes_to_client: int
    retransmits: int
    rtt_p50_us: int                     # flow-weighted mean of the windows' p50 (approximation)
    rtt_p99_us: int                     # max of the windows' p99 (upper bound)
    evidence: dict[str, int]            # attributed flows by evidence source, sources sorted

    @property
    def key(self) -> str:
        """The edge's name in the HTML page's data-edge attribute."""
        return f"{self.client}->{self.server}:{self.port}"


@dataclass(frozen=True)
class Graph:
    nodes: tuple[Node, ...]             # sorted by name
    edges: tuple[Edge, ...]             # sorted by (client, server, port)
    start_ms: int | None                # the time range the graph was built for, None where open
    end_ms: int | None


def build_graph(records: Iterable[Mapping], start_ms: int | None = None, end_ms: int | None = None) -> Graph:
    """The graph of the records whose window_start_ms is in [start_ms, end_ms) (see the module doc)."""
    attributed: Counter[str] = Counter()
    unattributed: defaultdict[str, Counter[str]] = defaultdict(Counter)
    by_direction: dict[str, defaultdict[tuple[str, str, int], list[Mapping]]] = {
        "out": defaultdict(list), "in": defaultdict(list)}
    for record in records:
        window = record["window_start_ms"]
        if (start_ms is not None and window < start_ms) or (end_ms is not None and window >= end_ms):
            continue
        local = record["local"]
        if record["reason"]:
            unattributed[local][record["reason"]] += record["flows"]
            continue
        attributed[local] += record["flows"]
        direction = record["direction"]
        if direction not in by_direction:
            raise ValueError(f"record direction must be 'out' or 'in', got {direction!r}")
        pair = (local, record["remote"]) if direction == "out" else (record["remote"], local)
        by_direction[direction][(*pair, record["port"])].append(record)

    client_side, server_side = by_direction["out"], by_direction["in"]
    edges = [_edge(triple, "client", rs) for triple, rs in client_side.items()]
    edges += [_edge(triple, "server", rs) for triple, rs in server_side.items() if triple not in client_side]
    edges.sort(key=lambda e: (e.client, e.server, e.port))

    names = set(attributed) | set(unattributed) | {e.client for e in edges} | {e.server for e in edges}
    nodes = tuple(Node(name, attributed[name], sum(unattributed[name].values()),
                       dict(sorted(unattributed[name].items()))) for name in sorted(names))
    return Graph(nodes, tuple(edges), start_ms, end_ms)


def _edge(triple: tuple[str, str, int], reported_by: str, records: list[Mapping]) -> Edge:
    client, server, port = triple
    # bytes_out is what the exporter's side sent: the client's on "out" records, the server's on "in"
    to_server, to_client = ("bytes_out", "bytes_in") if reported_by == "client" else ("bytes_in", "bytes_out")
    flows = sum(r["flows"] for r in records)
    evidence: Counter[str] = Counter()
    for r in records:
        evidence.update(r["evidence"])
    weighted_p50 = sum(r["rtt_p50_us"] * r["flows"] for r in records)
    return Edge(client, server, port, reported_by, flows,
                bytes_to_server=sum(r[to_server] for r in records),
                bytes_to_client=sum(r[to_client] for r in records),
                retransmits=sum(r["retransmits"] for r in records),
                rtt_p50_us=round(weighted_p50 / flows) if flows else 0,
                rtt_p99_us=max(r["rtt_p99_us"] for r in records),
                evidence=dict(sorted(evidence.items())))


def render(graph: Graph, fmt: str) -> str:
    """The graph as text in one of FORMATS."""
    if fmt not in _RENDERERS:
        raise ValueError(f"unknown graph format {fmt!r}; valid formats: {', '.join(FORMATS)}")
    return _RENDERERS[fmt](graph)


# ---- words and numbers shared by the formats --------------------------------------------------

def _human_bytes(n: int) -> str:
    value, unit = float(n), "B"
    for bigger in ("kB", "MB", "GB", "TB"):
        if value < 1000:
            break
        value, unit = value / 1000, bigger
    return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"


def _node_summary(node: Node) -> str:
    share = node.unattributed_share
    if share is None:
        return "no exporter"
    return f"{node.attributed_flows + node.unattributed_flows:,} flows, {share:.1%} unattributed"


def _edge_summary(edge: Edge) -> str:
    return ", ".join(_edge_label(edge))


def _edge_label(edge: Edge) -> tuple[str, str]:
    """What an edge's label says: its port and flows; its bytes, both ways."""
    return f":{edge.port} · {edge.flows:,} flows", _human_bytes(edge.bytes_to_server + edge.bytes_to_client)


def _range_text(graph: Graph) -> str:
    def minute(ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")
    if graph.start_ms is None and graph.end_ms is None:
        return "flows of all windows"
    if graph.end_ms is None:
        return f"flows starting from {minute(graph.start_ms)}"
    if graph.start_ms is None:
        return f"flows starting before {minute(graph.end_ms)}"
    return f"flows starting from {minute(graph.start_ms)} to before {minute(graph.end_ms)}"


# ---- JSON ---------------------------------------------------------------------------------------

def _render_json(graph: Graph) -> str:
    document = {
        "start_ms": graph.start_ms,
        "end_ms": graph.end_ms,
        "nodes": [{"name": n.name, "attributed_flows": n.attributed_flows, "unattributed_flows": n.unattributed_flows,
                   "unattributed_by_reason": n.unattributed_by_reason, "unattributed_share": n.unattributed_share}
                  for n in graph.nodes],
        "edges": [{"client": e.client, "server": e.server, "port": e.port, "reported_by": e.reported_by,
                   "flows": e.flows, "bytes_to_server": e.bytes_to_server, "bytes_to_client": e.bytes_to_client,
                   "retransmits": e.retransmits, "rtt_p50_us": e.rtt_p50_us, "rtt_p99_us": e.rtt_p99_us,
                   "evidence": e.evidence}
                  for e in graph.edges],
    }
    return json.dumps(document, indent=2) + "\n"


# ---- Graphviz DOT -------------------------------------------------------------------------------

def _dot_escape(text: str) -> str:
    r"""Inside a DOT double-quoted string: \" is a quote, and in labels a backslash starts an
    escape (\n, \N, ...), so both are escaped; names keep every other character as it is."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _render_dot(graph: Graph) -> str:
    top = max((e.flows for e in graph.edges), default=1)
    lines = ["digraph dependencies {", "  rankdir=LR;", '  node [shape=box, style=rounded, fontname="sans-serif"];',
             '  edge [fontname="sans-serif", fontsize=10];']
    for node in graph.nodes:
        style = ", style=\"rounded,dashed\"" if node.unattributed_share is None else ""
        lines.append(f'  "{_dot_escape(node.name)}" [label="{_dot_escape(node.name)}\\n'
                     f'{_dot_escape(_node_summary(node))}"{style}];')
    for edge in graph.edges:
        # only the server's exporter saw it: the client runs none
        style = ", style=dashed" if edge.reported_by == "server" else ""
        lines.append(f'  "{_dot_escape(edge.client)}" -> "{_dot_escape(edge.server)}" [label='
                     f'"{_dot_escape(_edge_summary(edge))}", penwidth={_edge_width(edge.flows, top):.1f}{style}];')
    lines.append("}")
    return "\n".join(lines) + "\n"


# ---- Mermaid ------------------------------------------------------------------------------------

def _mermaid_escape(text: str) -> str:
    """Mermaid ends a quoted label at any quote, reads #...; as an entity, a leading backtick as
    markdown and <, > and & as HTML: each becomes a numeric entity, '#' first."""
    for char in "#\"`<>&":
        text = text.replace(char, f"#{ord(char)};")
    return text


def _render_mermaid(graph: Graph) -> str:
    # Workload names are not valid Mermaid ids ("-", ".", "/" ...): nodes get n0, n1, ... and the
    # name goes in the quoted label.
    ids = {node.name: f"n{i}" for i, node in enumerate(graph.nodes)}
    lines = ["flowchart LR", "  classDef noexporter stroke-dasharray: 5 5"]
    for node in graph.nodes:
        css = ":::noexporter" if node.unattributed_share is None else ""
        lines.append(f'  {ids[node.name]}["{_mermaid_escape(node.name)}<br/>'
                     f'{_mermaid_escape(_node_summary(node))}"]{css}')
    for edge in graph.edges:
        arrow = "-.->" if edge.reported_by == "server" else "-->"
        lines.append(f'  {ids[edge.client]} {arrow}|"{_mermaid_escape(_edge_summary(edge))}"| {ids[edge.server]}')
    return "\n".join(lines) + "\n"


# ---- HTML: layered layout -----------------------------------------------------------------------
# Sugiyama-style, top to bottom: break cycles, give each workload the row of its longest path from
# a source, give every edge's label a point of its own in a row between two rows of workloads (so
# labels take room like nodes and never overlap them or each other), route edges that skip rows
# through points in the rows between (never across a workload), order each row by the barycentre
# of its neighbours, then place points sideways as near their neighbours as that order allows.
# Top to bottom because a dependency graph is broad rather than deep and screens are wide: left
# to right, 12 workloads five layers deep took 2,262 px of width (label columns between layers),
# top to bottom 1,454 x 770 px.
# Text widths are estimated from character counts (no font metrics here), on the generous side.

NAME_PX, SMALL_PX = 13, 11              # font sizes: workload name; statistics and edge labels
# Mean glyph width in em, ~20 % above what Chromium measures for workload names and numbers in
# Liberation Sans (0.49 bold, 0.45 regular) and about DejaVu Sans' (0.58, 0.52), the fallback.
NAME_EM, SMALL_EM = 0.58, 0.53
LINE_PX = 13                            # line height of small text
NODE_HEIGHT = 42
NODE_PADDING = 12                       # text to rectangle border, each side
LABEL_LINE_INSET = 2                    # an edge runs down the left of its label point, this far in
LABEL_INDENT = 8                        # and the label's text starts this far in
ROUTE_WIDTH = 4                         # a point where an edge only passes through a row
NODE_GAP, POINT_GAP = 28, 10            # space between two workloads in a row; when either is a point
ROW_GAP = 34                            # where edges curve between rows
ROW_PADDING = 8                         # a straight run in the row before a curve (room for the arrow)
ARROW = 10
LOOP_STEP = 16                          # each self-loop reaches this much further right of its workload
MARGIN = 20
MIN_SCALE = 0.75                        # the page shrinks the picture to fit, this far at most
ORDER_SWEEPS = 6
PLACE_SWEEPS = 8


def _text_width(text: str, px: int, em: float) -> float:
    return len(text) * px * em


def _edge_width(flows: int, top: int) -> float:
    """Stroke width by the square root of flows, so small edges stay visible next to big ones."""
    return 1.2 + 5.8 * math.sqrt(flows / top) if top else 1.2


@dataclass(eq=False)
class _Point:
    """A workload, or a point an edge passes (with its label, or not) in a row between."""
    row: int
    width: float
    height: float
    node: Node | None = None
    label: tuple[str, ...] = ()         # the label's lines on the one labelled point of an edge
    x: float = 0.0                      # centre
    up: list[_Point] = field(default_factory=list)      # neighbours in the row above
    down: list[_Point] = field(default_factory=list)    # neighbours in the row below


@dataclass
class _Route:
    edge: Edge
    points: list[_Point]                # top to bottom: from the server up where reversed
    reversed: bool                      # a back edge of a cycle: drawn upwards


@dataclass
class _Layout:
    row_top: list[float]
    row_height: list[float]
    routes: list[_Route]
    loops: dict[str, list[Edge]]        # self-loops by workload
    node_points: dict[str, _Point]
    width: float
    height: float


def _node_layers(names: list[str], pairs: set[tuple[str, str]]) -> tuple[dict[str, int], set[tuple[str, str]]]:
    """Each workload's layer (longest path from a source) and the pairs reversed to break cycles."""
    successors: dict[str, list[str]] = {name: [] for name in names}
    has_caller = set()
    for client, server in sorted(pairs):
        successors[client].append(server)
        has_caller.add(server)
    # Depth-first from the sources first, so a cycle is cut where it closes rather than at an entry.
    roots = [n for n in names if n not in has_caller] + [n for n in names if n in has_caller]
    state: dict[str, str] = {}          # "open" while on the stack, then "done"
    back: set[tuple[str, str]] = set()
    for root in roots:
        if root in state:
            continue
        state[root] = "open"
        stack = [(root, iter(successors[root]))]
        while stack:
            name, pending = stack[-1]
            successor = next(pending, None)
            if successor is None:
                state[name] = "done"
                stack.pop()
            elif state.get(successor) == "open":
                back.add((name, successor))
            elif successor not in state:
                state[successor] = "open"
                stack.append((successor, iter(successors[successor])))
    dag = {(b, a) if (a, b) in back else (a, b) for a, b in pairs}
    layer = dict.fromkeys(names, 0)
    incoming = Counter(b for _, b in dag)
    sources = [n for n in names if not incoming[n]]
    ready = list(sources)
    outgoing: defaultdict[str, list[str]] = defaultdict(list)
    for a, b in sorted(dag):
        outgoing[a].append(b)
    while ready:
        name = ready.pop()
        for successor in outgoing[name]:
            layer[successor] = max(layer[successor], layer[name] + 1)
            incoming[successor] -= 1
            if not incoming[successor]:
                ready.append(successor)
    # A source sits just above its nearest callee, not in the first layer: shorter edges.
    for name in sources:
        if outgoing[name]:
            layer[name] = min(layer[s] for s in outgoing[name]) - 1
    return layer, back


def _rect_width(node: Node) -> float:
    text = max(_text_width(node.name, NAME_PX, NAME_EM), _text_width(_node_summary(node), SMALL_PX, SMALL_EM))
    return text + 2 * NODE_PADDING


def _loops_width(loops: list[Edge]) -> float:
    """Room right of a workload for its self-loops and, beyond them, their one-line labels."""
    if not loops:
        return 0.0
    return LOOP_STEP * len(loops) + LABEL_INDENT + max(_text_width(_edge_summary(e), SMALL_PX, SMALL_EM) for e in loops)


def _layout(graph: Graph) -> _Layout:
    names = [n.name for n in graph.nodes]
    loops: defaultdict[str, list[Edge]] = defaultdict(list)
    for edge in graph.edges:
        if edge.client == edge.server:
            loops[edge.client].append(edge)
    layer, back = _node_layers(names, {(e.client, e.server) for e in graph.edges if e.client != e.server})
    node_points = {n.name: _Point(2 * layer[n.name], _rect_width(n) + _loops_width(loops[n.name]),
                                  max(NODE_HEIGHT, LINE_PX * len(loops[n.name])), node=n) for n in graph.nodes}
    rows: list[list[_Point]] = [[] for _ in range(2 * max(layer.values(), default=0) + 1)]
    for point in node_points.values():
        rows[point.row].append(point)

    routes = []
    for edge in graph.edges:
        if edge.client == edge.server:
            continue
        is_reversed = (edge.client, edge.server) in back
        upper, lower = (edge.server, edge.client) if is_reversed else (edge.client, edge.server)
        start, end = node_points[upper], node_points[lower]
        # the label goes in the middle one of the label rows the edge crosses
        label_row = start.row + 1 + 2 * (((end.row - start.row) // 2 - 1) // 2)
        chain = [start]
        for row in range(start.row + 1, end.row):
            if row == label_row:
                lines = _edge_label(edge)
                width = LABEL_INDENT + max(_text_width(line, SMALL_PX, SMALL_EM) for line in lines)
                point = _Point(row, width, LINE_PX * len(lines), label=lines)
            else:
                point = _Point(row, ROUTE_WIDTH, 0.0)
            rows[row].append(point)
            chain.append(point)
        chain.append(end)
        for a, b in zip(chain, chain[1:], strict=False):
            a.down.append(b)
            b.up.append(a)
        routes.append(_Route(edge, chain, is_reversed))

    _order(rows)
    _place(rows)
    left = min((p.x - p.width / 2 for row in rows for p in row), default=0.0)
    for row in rows:
        for point in row:
            point.x += MARGIN - left
    right = max((p.x + p.width / 2 for row in rows for p in row), default=0.0)
    row_height = [max([p.height for p in row] + [0.0]) + 2 * ROW_PADDING for row in rows]
    row_top = [MARGIN + sum(row_height[:i]) + ROW_GAP * i for i in range(len(rows))]
    height = row_top[-1] + row_height[-1] + MARGIN   # rows has one row at least, empty for an empty graph
    return _Layout(row_top, row_height, routes, loops, node_points, right + MARGIN, height)


def _order(rows: list[list[_Point]]) -> None:
    """Sort each row by the mean position of its neighbours in the row before it, sweeping down
    then up a fixed number of times (ties keep their order: the layout is deterministic)."""
    for _ in range(ORDER_SWEEPS):
        for i in range(1, len(rows)):
            _sort_by_barycentre(rows[i], rows[i - 1], "up")
        for i in range(len(rows) - 2, -1, -1):
            _sort_by_barycentre(rows[i], rows[i + 1], "down")


def _sort_by_barycentre(row: list[_Point], reference: list[_Point], neighbours_of: str) -> None:
    position = {id(p): k for k, p in enumerate(reference)}
    keys = {}
    for k, point in enumerate(row):
        near = [position[id(n)] for n in getattr(point, neighbours_of)]
        keys[id(point)] = (sum(near) / len(near) if near else k, k)
    row.sort(key=lambda p: keys[id(p)])


def _gap(a: _Point, b: _Point) -> float:
    """Centre to centre distance of two neighbours in a row."""
    between = NODE_GAP if a.node and b.node else POINT_GAP
    return (a.width + b.width) / 2 + between


def _isotonic(values: list[float]) -> list[float]:
    """The nondecreasing sequence nearest to values in least squares (pool adjacent violators)."""
    blocks: list[tuple[float, int]] = []    # (mean, count)
    for value in values:
        blocks.append((value, 1))
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            (m2, n2), (m1, n1) = blocks.pop(), blocks.pop()
            blocks.append(((m1 * n1 + m2 * n2) / (n1 + n2), n1 + n2))
    return [mean for mean, count in blocks for _ in range(count)]


def _place(rows: list[list[_Point]]) -> None:
    """Sideways positions: each point as near the mean of its neighbours in the row swept from as
    its row's order and spacing allow (the least-squares fit under those constraints)."""
    for row in rows:
        x = 0.0
        for k, point in enumerate(row):
            x += _gap(row[k - 1], point) if k else 0.0
            point.x = x

    def fit(row: list[_Point], neighbours_of: str) -> None:
        offsets = [0.0]
        for a, b in zip(row, row[1:], strict=False):
            offsets.append(offsets[-1] + _gap(a, b))
        wanted = []
        for point in row:
            near = getattr(point, neighbours_of)
            wanted.append(sum(n.x for n in near) / len(near) if near else point.x)
        fitted = _isotonic([w - o for w, o in zip(wanted, offsets, strict=True)])
        for point, base, offset in zip(row, fitted, offsets, strict=True):
            point.x = base + offset

    for _ in range(PLACE_SWEEPS):
        for row in rows[1:]:
            fit(row, "up")
        for row in reversed(rows[:-1]):
            fit(row, "down")


# ---- HTML: drawing ------------------------------------------------------------------------------

def _share_colour(share: float | None) -> str:
    """Node fill: pale blue with no unattributed flows, to orange when all are unattributed."""
    if share is None:
        return "#ffffff"
    low, high = (0xdb, 0xea, 0xfe), (0xfb, 0x92, 0x3c)
    return "#" + "".join(f"{round(a + (b - a) * share):02x}" for a, b in zip(low, high, strict=True))


def _row_centre(layout: _Layout, row: int) -> float:
    return layout.row_top[row] + layout.row_height[row] / 2


def _rect_centre(layout: _Layout, name: str) -> float:
    """A workload's rectangle is at the left of its point, its self-loops and their labels right of it."""
    return layout.node_points[name].x - _loops_width(layout.loops[name]) / 2


def _ports(layout: _Layout) -> dict[tuple[int, int], float]:
    """The x where each route leaves or enters a workload ((route index, 0 | -1) -> x): spread
    along the side in the order of the routes' next points, so arrowheads do not pile up."""
    sides: defaultdict[tuple[str, str], list[tuple[float, int, int]]] = defaultdict(list)
    for i, route in enumerate(layout.routes):
        first, last = route.points[0], route.points[-1]
        sides[(first.node.name, "bottom")].append((route.points[1].x, i, 0))
        sides[(last.node.name, "top")].append((route.points[-2].x, i, -1))
    ports = {}
    for (name, _), attached in sides.items():
        centre, usable = _rect_centre(layout, name), _rect_width(layout.node_points[name].node) - 2 * NODE_PADDING
        spacing = min(16.0, usable / max(len(attached) - 1, 1))
        for k, (_, i, end) in enumerate(sorted(attached)):
            ports[(i, end)] = centre + (k - (len(attached) - 1) / 2) * spacing
    return ports


def _route_path(layout: _Layout, index: int, ports: dict[tuple[int, int], float]) -> str:
    route = layout.routes[index]
    runs = []                           # per point, the straight run down its row: (y_in, y_out, x)
    for k, point in enumerate(route.points):
        top = layout.row_top[point.row]
        bottom = top + layout.row_height[point.row]
        centre = _row_centre(layout, point.row)
        if k == 0:
            runs.append((centre + NODE_HEIGHT / 2, bottom, ports[(index, 0)]))
        elif k == len(route.points) - 1:
            runs.append((top, centre - NODE_HEIGHT / 2, ports[(index, -1)]))
        else:
            runs.append((top, bottom, point.x - point.width / 2 + LABEL_LINE_INSET if point.label else point.x))
    if route.reversed:
        runs = [(y_out, y_in, x) for y_in, y_out, x in reversed(runs)]
    # Stop short of the border by the arrowhead's length; the marker draws the rest.
    y_in, y_out, x = runs[-1]
    runs[-1] = (y_in, y_out - ARROW if y_out > y_in else y_out + ARROW, x)
    y0, _, x0 = runs[0]
    parts = [f"M{x0:.1f},{y0:.1f}"]
    previous = None
    for y_in, y_out, x in runs:
        if previous is not None:
            px, py = previous
            middle = (py + y_in) / 2
            parts.append(f"C{px:.1f},{middle:.1f} {x:.1f},{middle:.1f} {x:.1f},{y_in:.1f}")
        parts.append(f"L{x:.1f},{y_out:.1f}")
        previous = (x, y_out)
    return " ".join(parts)


def _edge_title(edge: Edge) -> str:
    evidence = ", ".join(f"{source} {count:,}" for source, count in edge.evidence.items()) or "none"
    seen = "the client's exporter" if edge.reported_by == "client" else "only the server's exporter"
    return (f"{edge.client} -> {edge.server}:{edge.port}\n{edge.flows:,} flows, "
            f"{_human_bytes(edge.bytes_to_server)} to the server, {_human_bytes(edge.bytes_to_client)} back\n"
            f"retransmits {edge.retransmits:,}, rtt p50 {edge.rtt_p50_us:,} µs, p99 {edge.rtt_p99_us:,} µs\n"
            f"evidence: {evidence}\nseen by {seen}")


def _edge_group(edge: Edge, path: str, width: float) -> str:
    esc = html.escape
    return (f'<g data-edge="{esc(edge.key)}" data-client="{esc(edge.client)}" data-server="{esc(edge.server)}"'
            f' class="edge {edge.reported_by}"><title>{esc(_edge_title(edge))}</title>'
            f'<path d="{path}" stroke-width="{width:.1f}"/></g>')


def _label(edge: Edge, x: float, centre: float, lines: tuple[str, ...]) -> str:
    """Lines of text, left-aligned at x, centred on the height centre."""
    esc = html.escape
    spans = "".join(f'<tspan x="{x:.1f}" y="{centre + (i - (len(lines) - 1) / 2) * LINE_PX:.1f}">{esc(line)}</tspan>'
                    for i, line in enumerate(lines))
    return f'<text data-edge-label="{esc(edge.key)}">{spans}</text>'


def _svg(graph: Graph) -> str:
    esc = html.escape
    layout = _layout(graph)
    top = max((e.flows for e in graph.edges), default=1)
    ports = _ports(layout)
    edges, labels, nodes = [], [], []
    for i, route in enumerate(layout.routes):
        edges.append(_edge_group(route.edge, _route_path(layout, i, ports), _edge_width(route.edge.flows, top)))
        point = next(p for p in route.points if p.label)
        labels.append(_label(route.edge, point.x - point.width / 2 + LABEL_INDENT, _row_centre(layout, point.row),
                             point.label))
    for node in graph.nodes:
        row = layout.node_points[node.name].row
        cx, cy, width = _rect_centre(layout, node.name), _row_centre(layout, row), _rect_width(node)
        own_loops = layout.loops[node.name]
        for k, loop in enumerate(own_loops):
            # A cubic bulges 3/4 of the way to its control points: loop k reaches ~LOOP_STEP * (k + 1)
            # to the right, inside the room _loops_width kept, left of the labels.
            reach, right = LOOP_STEP * (k + 1) * 4 / 3, cx + width / 2
            path = (f"M{right:.1f},{cy - 6:.1f} C{right + reach:.1f},{cy - 6 - reach * 0.7:.1f} "
                    f"{right + reach:.1f},{cy + 6:.1f} {right + ARROW:.1f},{cy + 6:.1f}")
            edges.append(_edge_group(loop, path, _edge_width(loop.flows, top)))
            line_y = cy + (k - (len(own_loops) - 1) / 2) * LINE_PX
            text_x = right + LOOP_STEP * len(own_loops) + LABEL_INDENT
            labels.append(_label(loop, text_x, line_y, (_edge_summary(loop),)))
        reasons = ", ".join(f"{reason} {count:,}" for reason, count in node.unattributed_by_reason.items())
        title = f"{node.name}\n{_node_summary(node)}" + (f"\nunattributed: {reasons}" if reasons else "")
        no_exporter = " no-exporter" if node.unattributed_share is None else ""
        nodes.append(
            f'<g data-node="{esc(node.name)}" class="node{no_exporter}"><title>{esc(title)}</title>'
            f'<rect x="{cx - width / 2:.1f}" y="{cy - NODE_HEIGHT / 2:.1f}" width="{width:.1f}" height="{NODE_HEIGHT}"'
            f' rx="7" fill="{_share_colour(node.unattributed_share)}"/>'
            f'<text class="name" x="{cx:.1f}" y="{cy - 7:.1f}">{esc(node.name)}</text>'
            f'<text class="stats" x="{cx:.1f}" y="{cy + 10:.1f}">{esc(_node_summary(node))}</text></g>')
    marker = (f'<marker id="arrow" viewBox="0 0 {ARROW} {ARROW}" refX="0" refY="{ARROW / 2}" markerWidth="{ARROW}"'
              f' markerHeight="{ARROW}" markerUnits="userSpaceOnUse" orient="auto">'
              f'<path d="M0,0 L{ARROW},{ARROW / 2} L0,{ARROW} z" class="arrowhead"/></marker>')
    # Shrinks to fit the window, but to no less than MIN_SCALE: a larger graph scrolls sideways
    # rather than shrink its text out of reach.
    size = (f'width="{layout.width:.0f}" height="{layout.height:.0f}"'
            f' style="max-width: {layout.width:.0f}px; min-width: {layout.width * MIN_SCALE:.0f}px"')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" id="graph" {size}'
            f' viewBox="0 0 {layout.width:.0f} {layout.height:.0f}" role="img" aria-label="workload dependency graph">'
            f"<defs>{marker}</defs>\n<g class=\"edges\">\n" + "\n".join(edges)
            + '\n</g>\n<g class="edge-labels">\n' + "\n".join(labels)
            + '\n</g>\n<g class="nodes">\n' + "\n".join(nodes) + "\n</g>\n</svg>")


_STYLE = """
body { font-family: "Liberation Sans", Arial, Helvetica, sans-serif; margin: 16px 24px; color: #1f2937; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 24px 0 8px; }
.meta { color: #4b5563; margin: 0 0 12px; }
.controls { margin: 0 0 8px; } #filter { font: inherit; padding: 3px 6px; width: 18em; }
#filter-status { color: #4b5563; margin-left: 8px; }
.legend { display: flex; flex-wrap: wrap; gap: 6px 22px; font-size: 12px; color: #374151; margin: 0 0 10px; }
.legend span { display: inline-flex; align-items: center; gap: 6px; }
.picture { overflow-x: auto; } #graph { width: 100%; height: auto; display: block; }
.edge path { fill: none; stroke: #64748b; stroke-opacity: 0.75; marker-end: url(#arrow); }
.edge.server path { stroke-dasharray: 7 4; }
.arrowhead { fill: #475569; }
.edge-labels text { font-size: 11px; fill: #1e293b; dominant-baseline: central;
  paint-order: stroke; stroke: #ffffff; stroke-width: 4px; stroke-linejoin: round; }
.node rect { stroke: #334155; stroke-width: 1.2; }
.node.no-exporter rect { stroke-dasharray: 4 3; stroke: #6b7280; }
.node[data-focus] rect { stroke: #1d4ed8; stroke-width: 3; }
.node text { text-anchor: middle; dominant-baseline: central; fill: #111827; }
.node .name { font-size: 13px; font-weight: bold; } .node .stats { font-size: 11px; fill: #374151; }
table { border-collapse: collapse; font-size: 12px; }
th, td { border: 1px solid #d1d5db; padding: 3px 8px; text-align: right; }
th { background: #f3f4f6; } td.name { text-align: left; }
[data-hidden] { display: none; }
"""

# Runs after the page is parsed (it is the body's last element). It only reads the data-*
# attributes, so the page needs no embedded data and no network.
_SCRIPT = """
(function () {
  "use strict";
  const nodes = Array.from(document.querySelectorAll("svg [data-node]"));
  const edges = Array.from(document.querySelectorAll("svg [data-edge]"));
  const input = document.getElementById("filter");
  const status = document.getElementById("filter-status");
  document.body.dataset.rendered = nodes.length + "/" + edges.length;

  function show(elements, attribute, visible) {
    for (const element of elements) {
      if (visible.has(element.getAttribute(attribute))) element.removeAttribute("data-hidden");
      else element.setAttribute("data-hidden", "1");
    }
  }

  function apply(text) {
    const query = text.trim();
    const names = nodes.map((n) => n.dataset.node);
    // An exact name selects that workload alone ("db" must not also pick "db-replica");
    // otherwise every workload whose name contains the text, ignoring case.
    let focus = names.filter((n) => n === query);
    if (!focus.length) focus = names.filter((n) => n.toLowerCase().includes(query.toLowerCase()));
    const shownNodes = new Set(query ? focus : names);
    const shownEdges = new Set();
    for (const edge of edges) {
      const d = edge.dataset;
      if (!query || focus.includes(d.client) || focus.includes(d.server)) {
        shownEdges.add(d.edge);
        shownNodes.add(d.client);
        shownNodes.add(d.server);
      }
    }
    show(nodes, "data-node", shownNodes);
    show(edges, "data-edge", shownEdges);
    show(document.querySelectorAll("[data-edge-label]"), "data-edge-label", shownEdges);
    show(document.querySelectorAll("[data-edge-row]"), "data-edge-row", shownEdges);
    show(document.querySelectorAll("[data-node-row]"), "data-node-row", shownNodes);
    for (const node of nodes) {
      if (query && focus.includes(node.dataset.node)) node.setAttribute("data-focus", "1");
      else node.removeAttribute("data-focus");
    }
    status.textContent = !query ? "" : focus.length
      ? "showing " + shownNodes.size + " of " + nodes.length + " workloads"
      : "no workload matches";
  }

  input.addEventListener("input", () => apply(input.value));
  // #filter=<name> in the URL applies the filter on load (links, and headless browsers that cannot type).
  const fromUrl = location.hash.match(/^#filter=(.*)$/);
  if (fromUrl) input.value = decodeURIComponent(fromUrl[1]);
  apply(input.value);
})();
"""


def _legend() -> str:
    def swatch(body: str, width: int = 34) -> str:
        return f'<svg width="{width}" height="16" aria-hidden="true">{body}</svg>'
    gradient = "".join(f'<rect x="{k * 6}" y="2" width="6" height="12" fill="{_share_colour(k / 9)}"/>'
                       for k in range(10))
    no_exporter = ('<rect x="2" y="2" width="30" height="12" rx="3" fill="#fff" stroke="#6b7280"'
                   ' stroke-dasharray="4 3"/>')
    solid = '<path d="M2,8 L32,8" stroke="#64748b" stroke-width="2.5"/>'
    dashed = '<path d="M2,8 L32,8" stroke="#64748b" stroke-width="2.5" stroke-dasharray="7 4"/>'
    return ('<div class="legend">'
            f"<span>{swatch(gradient, 60)} share of the workload's own flows left unattributed, 0 to 100 %</span>"
            f"<span>{swatch(no_exporter)} no exporter</span>"
            f"<span>{swatch(solid)} client &#8594; server</span>"
            f"<span>{swatch(dashed)} seen only by the server's exporter</span>"
            "<span>width grows with &#8730;flows; label: :port &#183; flows, bytes both ways</span>"
            "</div>")


def _tables(graph: Graph) -> str:
    esc = html.escape
    edge_rows = []
    for e in graph.edges:
        evidence = ", ".join(f"{source} {count:,}" for source, count in e.evidence.items())
        edge_rows.append(
            f'<tr data-edge-row="{esc(e.key)}"><td class="name">{esc(e.client)}</td>'
            f'<td class="name">{esc(e.server)}</td>'
            f"<td>{e.port}</td><td>{e.flows:,}</td><td>{e.bytes_to_server:,}</td><td>{e.bytes_to_client:,}</td>"
            f"<td>{e.retransmits:,}</td><td>{e.rtt_p50_us:,}</td><td>{e.rtt_p99_us:,}</td>"
            f'<td class="name">{esc(evidence)}</td><td class="name">{e.reported_by}</td></tr>')
    node_rows = []
    for n in graph.nodes:
        share = "—" if n.unattributed_share is None else f"{n.unattributed_share:.1%}"
        reasons = ", ".join(f"{reason} {count:,}" for reason, count in n.unattributed_by_reason.items())
        node_rows.append(
            f'<tr data-node-row="{esc(n.name)}"><td class="name">{esc(n.name)}</td><td>{n.attributed_flows:,}</td>'
            f'<td>{n.unattributed_flows:,}</td><td>{share}</td><td class="name">{esc(reasons)}</td></tr>')
    return ("<h2>Edges</h2>\n<table><thead><tr><th>client</th><th>server</th><th>port</th><th>flows</th>"
            "<th>bytes to server</th><th>bytes to client</th><th>retransmits</th><th>rtt p50 µs</th>"
            "<th>rtt p99 µs (max)</th><th>evidence (flows)</th><th>seen by</th></tr></thead><tbody>\n"
            + "\n".join(edge_rows) + "\n</tbody></table>\n"
            "<h2>Workloads</h2>\n<table><thead><tr><th>workload</th><th>attributed flows</th>"
            "<th>unattributed flows</th><th>unattributed share</th><th>unattributed by reason</th></tr></thead>"
            "<tbody>\n"
            + "\n".join(node_rows) + "\n</tbody></table>\n")


def _render_html(graph: Graph) -> str:
    counts = f"{len(graph.nodes)} workloads, {len(graph.edges)} edges"
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
            f"<title>Workload dependency graph</title>\n<style>{_STYLE}</style></head>\n<body>\n"
            "<h1>Workload dependency graph</h1>\n"
            f'<p class="meta">{html.escape(_range_text(graph))} · {counts}</p>\n'
            '<div class="controls"><label>Filter: <input id="filter" type="search" '
            'placeholder="workload name" autocomplete="off"></label><span id="filter-status"></span></div>\n'
            f'{_legend()}\n<div class="picture">{_svg(graph)}</div>\n'
            f"{_tables(graph)}<script>{_SCRIPT}</script>\n</body></html>\n")


_RENDERERS = {"json": _render_json, "dot": _render_dot, "mermaid": _render_mermaid, "html": _render_html}
FORMATS = tuple(_RENDERERS)
