"""`flowattr tail`: read the output topics as JSON lines."""

from __future__ import annotations

import json
import sys

from flowattr.cli.common import add_bootstrap, bootstrap, subparser


def _add_tail(sub) -> None:
    p = subparser(sub, "tail", "print a topic's records as JSON lines (one line per flow)",
                  "flowattr tail attributed.us-east-1 --max 20")
    add_bootstrap(p)
    p.add_argument("topic")
    p.add_argument("--max", type=int, default=0, help="stop after N lines (0: no limit)")
    p.add_argument("--idle", type=float, default=5.0,
                   help="stop after this many seconds without new records (default 5)")


def _cmd_tail(args) -> int:
    from flowattr.cli.render import records_as_dicts
    from flowattr.stack.kafka_clients import iter_topic
    printed = 0
    for batch in iter_topic(bootstrap(args), args.topic, idle_timeout_s=args.idle, max_wait_s=float("inf")):
        for value in batch:
            for row in records_as_dicts(args.topic, value):
                print(json.dumps(row), flush=False)
                printed += 1
                if args.max and printed >= args.max:
                    return 0
        sys.stdout.flush()
    return 0


# command -> (adds its parser, runs it)
COMMANDS = {"tail": (_add_tail, _cmd_tail)}
