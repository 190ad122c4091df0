"""`flowattr tail`: read the output topics as JSON lines."""

from __future__ import annotations

import json
import sys
from datetime import UTC

from flowattr.cli.common import add_bootstrap, bootstrap, subparser


def _add_tail(sub) -> None:
    p = subparser(sub, "tail", "print a topic's records as JSON lines (one per flow; edges and ownership too)",
                  "flowattr tail unattributed.us-east-1 --follow --reason NO_EVIDENCE --workload web")
    add_bootstrap(p)
    p.add_argument("topic", help="e.g. attributed.us-east-1, unattributed.R, edges.R, ownership.R, deadletter.R")
    p.add_argument("--max", type=int, default=0, help="stop after N lines (0: no limit)")
    p.add_argument("--idle", type=float, default=5.0,
                   help="without --follow: stop after this many seconds without new records (default 5)")
    p.add_argument("--follow", action="store_true",
                   help="from the end of the topic, print new records as they come, until Ctrl-C")
    p.add_argument("--from-beginning", action="store_true", help="with --follow: start at the beginning")
    p.add_argument("--workload", help="only flows (or edges) with this workload on either side")
    p.add_argument("--remote-ip", help="only flows to (or ownership of) this IP")
    p.add_argument("--reason", help="only unattributed flows (or edges) with this reason, e.g. NO_EVIDENCE")


def _cmd_tail(args) -> int:
    from flowattr.cli.render import matches, records_as_dicts
    from flowattr.stack.kafka_clients import iter_topic
    printed = 0
    idle = float("inf") if args.follow else args.idle
    from_beginning = args.from_beginning or not args.follow
    for batch in iter_topic(bootstrap(args), args.topic, idle_timeout_s=idle, max_wait_s=float("inf"),
                            from_beginning=from_beginning):
        for value in batch:
            for row in records_as_dicts(args.topic, value):
                if not matches(row, args.workload, args.remote_ip, args.reason):
                    continue
                print(json.dumps(row), flush=False)
                printed += 1
                if args.max and printed >= args.max:
                    return 0
        sys.stdout.flush()
    return 0


def _add_graph(sub) -> None:
    p = subparser(sub, "graph", "write the dependency graph (edges.REGION topics) as json, dot, mermaid or html",
                  "flowattr graph --format html --output graph.html --from 2026-11-26T10:00 --to 2026-11-26T11:00")
    add_bootstrap(p)
    p.add_argument("--region", action="append", help="region whose edges to read (repeatable; default every "
                   "region of the default config)")
    p.add_argument("--from", dest="start", help="first minute of flow start: ISO 8601 (UTC) or epoch ms")
    p.add_argument("--to", dest="end", help="end (exclusive) of flow start: ISO 8601 (UTC) or epoch ms")
    p.add_argument("--format", choices=("json", "dot", "mermaid", "html"), default="json",
                   help="json (default), dot (Graphviz), mermaid, or html (one self-contained page)")
    p.add_argument("--output", help="write to this file instead of standard output")


def parse_time_ms(text: str | None) -> int | None:
    """Epoch milliseconds, or an ISO 8601 time (UTC unless it names its zone)."""
    from datetime import datetime

    from schemas.errors import FlowattrError
    if text is None:
        return None
    if text.isdigit():
        return int(text)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise FlowattrError(f"time {text!r}: use ISO 8601 (2026-11-26T10:00) or epoch milliseconds") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def _cmd_graph(args) -> int:
    from flink_jobs.job_config import load
    from flowattr.graph import render
    from flowattr.stack.edges import read_graph
    cfg = load(None, {})
    regions = args.region or sorted({cfg.region, *cfg.region_cidrs.values()})
    graph = read_graph(bootstrap(args), regions, parse_time_ms(args.start), parse_time_ms(args.end))
    text = render(graph, args.format)
    if args.output:
        with open(args.output, "w") as out:
            out.write(text)
        print(f"{len(graph.edges)} edges between {len(graph.nodes)} workloads written to {args.output}",
              file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _add_whois(sub) -> None:
    p = subparser(sub, "whois", "who owned an IP at a time, from the collector's ownership.REGION changelog",
                  "flowattr whois 10.1.0.24 --at 2026-11-26T10:15:00 --json")
    add_bootstrap(p)
    p.add_argument("ip", help="an IP, or IP:PORT for one port of a port-shared address")
    p.add_argument("--at", help="the instant: ISO 8601 (UTC) or epoch ms (default: every range learned)")
    p.add_argument("--region", help="the collector's region (default: the config's)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _cmd_whois(args) -> int:
    """Exit 0 with the answer (owned, unresolved, contested, clock_skew or unknown); a bad
    IP is an error."""
    import ipaddress

    from flink_jobs.job_config import load
    from flink_jobs.ownership_changelog import owner_at
    from flowattr.stack.kafka_clients import read_latest_by_key
    from schemas import flowattr_pb2 as pb
    from schemas.errors import FlowattrError
    ip, _, port = args.ip.rpartition(":") if args.ip.count(":") == 1 else (args.ip, "", "")
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        raise FlowattrError(f"{args.ip!r} is not an IP (or IPv4:PORT)") from None
    key = (str(address) + (f":{int(port)}" if port else "")).encode()
    region = args.region or load(None, {}).region
    table = read_latest_by_key(bootstrap(args), f"ownership.{region}")
    record = pb.IpOwnership.FromString(table[key]) if key in table else None
    ranges = [{"workload": r.workload, "start_ms": r.start_ms, "end_ms": r.end_ms, "contested": r.contested,
               "evidence": pb.EvidenceSource.Name(r.source).removeprefix("EVIDENCE_SOURCE_")}
              for r in (record.ranges if record else [])]
    answer: dict = {"ip": key.decode(), "region": region, "ranges": ranges}
    if args.at is not None:
        at = parse_time_ms(args.at)
        status, found = owner_at(record, at) if record else ("unknown", None)
        answer |= {"at_ms": at, "status": status, "owner": found.workload if found and not found.contested else "",
                   "range": next((r for r in ranges if found and r["start_ms"] == found.start_ms
                                  and r["end_ms"] == found.end_ms), None)}
    if args.json:
        print(json.dumps(answer))
    elif args.at is None:
        print(f"{answer['ip']} ({region}): {len(ranges)} range(s) learned" if ranges else
              f"{answer['ip']} ({region}): unknown (no evidence learned)")
        for r in ranges:
            who = "CONTESTED" if r["contested"] else r["workload"] or "UNRESOLVED (its host named no workload)"
            print(f"  {r['start_ms']} .. {r['end_ms']}  {who}  ({r['evidence']})")
    else:
        r = answer["range"]
        detail = f" [{r['start_ms']} .. {r['end_ms']}, {r['evidence']}]" if r else ""
        print(f"{answer['ip']} at {answer['at_ms']}: {answer['status']}"
              + (f" {answer['owner']}" if answer["owner"] else "") + detail)
    return 0


# command -> (adds its parser, runs it)
COMMANDS = {"tail": (_add_tail, _cmd_tail), "graph": (_add_graph, _cmd_graph), "whois": (_add_whois, _cmd_whois)}
