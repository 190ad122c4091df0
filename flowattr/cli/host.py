"""`flowattr exporter|ipmap`: what runs on each host (root)."""

from __future__ import annotations

import json
from pathlib import Path

from flink_jobs.job_config import default_regions
from flowattr.cli.common import action_parsers, subparser
from schemas.errors import FlowattrError


def _add_exporter(sub) -> None:
    p = subparser(sub, "exporter", "run the per-host eBPF flow exporter (root)",
                  "sudo flowattr exporter --bootstrap 127.0.0.1:9092 --region us-east-1 "
                  "--identity-file /etc/flowattr/identity.pem")
    p.add_argument("--bootstrap", default="127.0.0.1:9092")
    region = default_regions()[0]
    p.add_argument("--region", default=region, help=f"the host's region (default {region}, the config's)")
    p.add_argument("--exporter-id", help="stable exporter id (default: the host name)")
    p.add_argument("--window-s", type=float, default=60.0, help="batch window in seconds (default 60)")
    p.add_argument("--identity-file", type=Path, help="host mode: PEM certificate whose subject CN is the workload")
    p.add_argument("--spool-dir", type=Path, default=Path("/var/lib/flowattr/spool"))
    p.add_argument("--spool-max-mb", type=int, default=256)
    p.add_argument("--local-cidr", action="append", default=[],
                   help="export only flows whose local IP is in this CIDR (repeatable; default all)")
    host_local = p.add_mutually_exclusive_group()
    host_local.add_argument("--host-local-cidr", action="append", metavar="CIDR",
                            help="never export flows whose local IP is in this CIDR (repeatable); replaces "
                            "the default host-local list (loopback, link-local, 0.0.0.0/8, ::, docker0 172.17.0.0/16)")
    host_local.add_argument("--export-host-local", action="store_true",
                            help="export flows with a host-local local IP too (no host-local list)")
    p.add_argument("--duration-s", type=float, default=0.0, help="stop after this many seconds (0: run)")
    p.add_argument("--metrics-port", type=int, default=0,
                   help="serve Prometheus metrics on http://ADDRESS:PORT/metrics (0, the default: none)")
    p.add_argument("--metrics-address", default="127.0.0.1",
                   help="address the metrics are served on (default 127.0.0.1; 0.0.0.0 for a scraper elsewhere)")
    p.add_argument("--kafka-property", action="append", metavar="KEY=VALUE",
                   help="a Kafka client property by Kafka's name (repeatable), e.g. security.protocol=SASL_SSL")


def _add_ipmap(sub) -> None:
    isub = action_parsers(sub, "ipmap", "write the local-attribution BPF maps (the IP-assignment agent's side)",
                          "flowattr ipmap assign 10.2.0.7 checkout   |   "
                          "flowattr ipmap assign-port 10.0.0.5 40001 search")
    pa = subparser(isub, "assign", "IP -> workload", "flowattr ipmap assign 10.2.0.7 checkout")
    pa.add_argument("ip")
    pa.add_argument("workload")
    pa = subparser(isub, "release", "forget an IP", "flowattr ipmap release 10.2.0.7")
    pa.add_argument("ip")
    pa = subparser(isub, "assign-port", "(local IPv4, local port) -> workload, for translated sockets",
                   "flowattr ipmap assign-port 10.0.0.5 40001 search")
    pa.add_argument("ip")
    pa.add_argument("port", type=int)
    pa.add_argument("workload")
    pa = subparser(isub, "release-port", "forget a translated socket", "flowattr ipmap release-port 10.0.0.5 40001")
    pa.add_argument("ip")
    pa.add_argument("port", type=int)


def host_local_cidrs(args) -> tuple[str, ...]:
    from schemas.addresses import HOST_LOCAL_CIDRS
    if args.export_host_local:
        return ()
    return tuple(args.host_local_cidr) if args.host_local_cidr else HOST_LOCAL_CIDRS


def _cmd_exporter(args) -> int:
    import logging
    import socket

    from exporter import agent
    from exporter.probe import EbpfUnavailable
    from schemas import kafka_properties
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    host = socket.gethostname()
    cfg = agent.ExporterConfig(bootstrap=args.bootstrap, region=args.region, exporter_id=args.exporter_id or host,
                               host=host, window_s=args.window_s, identity_file=args.identity_file,
                               spool_dir=args.spool_dir, spool_max_bytes=args.spool_max_mb * 1024 * 1024,
                               local_cidrs=tuple(args.local_cidr), duration_s=args.duration_s,
                               host_local_cidrs=host_local_cidrs(args),
                               kafka_properties=tuple(kafka_properties.parse(args.kafka_property).items()),
                               metrics_port=args.metrics_port, metrics_address=args.metrics_address)
    try:
        print(json.dumps(agent.run(cfg)))
    except EbpfUnavailable as exc:
        raise FlowattrError(f"eBPF capture is unavailable here: {exc}") from exc
    return 0


def _cmd_ipmap(args) -> int:
    from exporter import ipmap
    try:
        if args.action == "assign":
            ipmap.assign(args.ip, args.workload)
        elif args.action == "release":
            ipmap.release(args.ip)
        elif args.action == "assign-port":
            ipmap.assign_port(args.ip, args.port, args.workload)
        else:
            ipmap.release_port(args.ip, args.port)
    except ValueError as exc:  # an address or port that does not parse (IpMapError is a FlowattrError)
        raise FlowattrError(str(exc)) from exc
    return 0


# command -> (adds its parser, runs it)
COMMANDS = {"exporter": (_add_exporter, _cmd_exporter), "ipmap": (_add_ipmap, _cmd_ipmap)}
