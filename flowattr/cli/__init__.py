"""flowattr: attribute eBPF TCP flow logs to workloads without ever guessing.

Every subcommand has --help with an example. The embedded stack (broker, Flink cluster)
keeps its pid, log and data files in one state directory (--state-dir, default
./.flowattr, or FLOWATTR_STATE_DIR).
"""

from __future__ import annotations

import argparse
import sys

from flowattr.cli import host, lab, observe, stack
from schemas.errors import FlowattrError

# One module per command group; each has COMMANDS = {name: (add its parser, run it)}.
COMMAND_GROUPS = (stack, observe, lab, host)


def _build(sub_commands: dict) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flowattr", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="example:\n  flowattr demo")
    parser.add_argument("--state-dir", help="state directory of the embedded stack")
    parser.add_argument("--version", action="version", version=f"flowattr {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in COMMAND_GROUPS:
        for name, (add_parser, run) in group.COMMANDS.items():
            add_parser(sub)
            sub_commands[name] = run
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("flowattr")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    return _build({})


def main(argv: list[str] | None = None) -> int:
    commands: dict = {}
    args = _build(commands).parse_args(argv)
    try:
        return commands[args.command](args)
    except FlowattrError as exc:  # expected, and it says what to do; a bug keeps its traceback
        print(f"flowattr {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130

