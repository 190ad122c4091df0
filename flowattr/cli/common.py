"""What every command group shares: sub-parsers with an example, the bootstrap flag, and
progress lines on stderr (stdout carries the result: JSON or a table)."""

from __future__ import annotations

import argparse
import sys

from flowattr.stack import paths


def subparser(sub, name: str, help_text: str, example: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=help_text, description=help_text,
                          epilog=f"example:\n  {example}",
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def action_parsers(sub, name: str, help_text: str, example: str):
    """A command whose first argument is an ACTION (`flowattr broker start`): its sub-parsers."""
    return subparser(sub, name, help_text, example).add_subparsers(dest="action", required=True, metavar="ACTION")


def add_bootstrap(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bootstrap", help="Kafka bootstrap servers (default: the embedded "
                   "broker of the state dir, else 127.0.0.1:9092)")


def bootstrap(args) -> str:
    if getattr(args, "bootstrap", None):
        return args.bootstrap
    from flowattr.stack import broker
    st = broker.status(paths.state_dir(args.state_dir))
    return st.bootstrap if st.running else f"127.0.0.1:{broker.DEFAULT_PORT}"


def progress(*parts, end="\n"):
    print(*parts, end=end, file=sys.stderr, flush=True)
