"""Regenerate schemas/*_pb2.py from schemas/*.proto with the pinned protoc.

Usage:
    python -m schemas.generate            # rewrite the generated files in place
    python -m schemas.generate --out DIR  # write them elsewhere (the drift test does this)

The protoc bundled with grpcio-tools 1.65.5 is release 26.1: generated code must not be
newer than the protobuf runtime (5.29, capped by apache-flink's pins) or imports fail.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

SCHEMA_DIR = Path(__file__).resolve().parent


def generate(out_dir: Path) -> list[Path]:
    """Compile every .proto in schemas/ into out_dir; return the files written."""
    from grpc_tools import protoc  # dev-only dependency

    protos = sorted(SCHEMA_DIR.glob("*.proto"))
    out_dir.mkdir(parents=True, exist_ok=True)
    args = ["protoc", f"-I{SCHEMA_DIR}", f"--python_out={out_dir}", f"--pyi_out={out_dir}"]
    code = protoc.main(args + [str(p) for p in protos])
    if code != 0:
        raise SystemExit(f"protoc failed with exit code {code}; fix the .proto error printed above")
    return sorted(out_dir.glob("*_pb2.py*"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=SCHEMA_DIR, help="output directory")
    args = parser.parse_args(argv)
    for path in generate(args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
