"""flowattr: attribute eBPF TCP flow logs to workloads without ever guessing.

Every subcommand has --help with an example. The embedded stack (broker, Flink cluster)
keeps its pid, log and data files in one state directory (--state-dir, default
./.flowattr, or FLOWATTR_STATE_DIR).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from flowattr import paths
from flowattr.processes import PortInUseError
from schemas.topics import DEFAULT_REGION


def _subparser(sub, name: str, help_text: str, example: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=help_text, description=help_text,
                          epilog=f"example:\n  {example}",
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def _add_bootstrap(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bootstrap", help="Kafka bootstrap servers (default: the embedded "
                   "broker of the state dir, else 127.0.0.1:9092)")


def _bootstrap(args) -> str:
    if getattr(args, "bootstrap", None):
        return args.bootstrap
    from flowattr import broker
    st = broker.status(paths.state_dir(args.state_dir))
    return st.bootstrap if st.running else f"127.0.0.1:{broker.DEFAULT_PORT}"


def _add_scenario_flags(p: argparse.ArgumentParser, from_profile: bool = False) -> None:
    """One flag per FleetScenario knob. With `from_profile`, a flag given overrides the
    --profile's value and an absent one leaves it (no default is set in args)."""
    from dataclasses import fields

    from flowattr.simulate import FleetScenario
    for f in fields(FleetScenario):
        p.add_argument("--" + f.name.replace("_", "-"), type=type(f.default),
                       default=argparse.SUPPRESS if from_profile else f.default,
                       choices=("routes", "any") if f.name == "lb_targets" else None,
                       help=f"scenario knob (default: the profile's; {f.default} in 'default')" if from_profile
                       else f"scenario knob (default {f.default})")


def _scenario(args):
    from dataclasses import fields

    from flowattr.simulate import FleetScenario
    return FleetScenario(**{f.name: getattr(args, f.name) for f in fields(FleetScenario)})


def _profile_scenario(args):
    """The --profile's scenario for --seed and --minutes, with the knobs given as flags."""
    from dataclasses import fields, replace

    from flowattr.simulate import profile
    sc = profile(args.profile, getattr(args, "seed", 7), getattr(args, "minutes", None))
    return replace(sc, **{f.name: getattr(args, f.name) for f in fields(sc) if hasattr(args, f.name)})


def _add_evaluate_parser(sub) -> None:
    from flowattr.simulate import PROFILES
    p = _subparser(sub, "evaluate", "score heartbeat attribution and two event-based baselines "
                   "against a simulated fleet's ground truth (or score a job's output topics)",
                   "flowattr evaluate --seed 7\n  flowattr evaluate --profile harsh --seed 7 --json\n"
                   "  flowattr evaluate --profile harsh --minutes 10 --internet-fraction 0.1")
    p.add_argument("--profile", choices=list(PROFILES), default="default",
                   help="fault profile of the simulated fleet (default: default); knob flags override it")
    _add_scenario_flags(p, from_profile=True)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--without", choices=["settledness"], action="append", default=[],
                   help="measure what a safeguard costs: run with it OFF (unsafe, evaluation only); "
                        "compare with a run without this flag")
    p.add_argument("--score-topics", type=Path, metavar="TRUTH_NPZ",
                   help="instead: score the attributed/unattributed topics against this truth file")
    p.add_argument("--region", action="append", help="with --score-topics: regions to read")
    _add_bootstrap(p)


def _add_exporter_parser(sub) -> None:
    p = _subparser(sub, "exporter", "run the per-host eBPF flow exporter (root)",
                   "sudo flowattr exporter --bootstrap 127.0.0.1:9092 --region us-east-1 "
                   "--identity-file /etc/flowattr/identity.pem")
    p.add_argument("--bootstrap", default="127.0.0.1:9092")
    p.add_argument("--region", default=DEFAULT_REGION, help=f"the host's region (default {DEFAULT_REGION})")
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flowattr", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="example:\n  flowattr demo")
    parser.add_argument("--state-dir", help="state directory of the embedded stack")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _add_broker_parsers(sub)
    _add_topics_parsers(sub)
    _add_cluster_parsers(sub)
    _add_submit_parsers(sub)
    _add_tail_parsers(sub)
    _add_simulate_evaluate_parsers(sub)
    _add_exporter_ipmap_parsers(sub)
    _add_bench_parsers(sub)
    _add_demo_parsers(sub)
    return parser


def _add_broker_parsers(sub) -> None:
    """The `flowattr broker` sub-commands."""
    p = _subparser(sub, "broker", "run the embedded Kafka-compatible broker (tansu)",
                   "flowattr broker start --port 9092")
    bsub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    ps = _subparser(bsub, "start", "start the broker on 127.0.0.1", "flowattr broker start")
    ps.add_argument("--port", type=int, default=9092, help="listen port (default 9092)")
    _subparser(bsub, "stop", "stop the broker (its data is lost: memory storage)",
               "flowattr broker stop")
    _subparser(bsub, "status", "say whether the broker runs, and where",
               "flowattr broker status")


def _add_topics_parsers(sub) -> None:
    """The `flowattr topics` sub-commands."""
    p = _subparser(sub, "topics", "manage the project's Kafka topics",
                   "flowattr topics create --region us-east-1 --region eu-west-1")
    tsub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    pt = _subparser(tsub, "create", "create every topic of the given regions (idempotent)",
                    "flowattr topics create --region us-east-1")
    _add_bootstrap(pt)
    pt.add_argument("--region", action="append", help="region (repeatable; default us-east-1)")
    pt = _subparser(tsub, "list", "list topics on the broker", "flowattr topics list")
    _add_bootstrap(pt)


def _add_cluster_parsers(sub) -> None:
    """The `flowattr cluster` sub-commands."""
    p = _subparser(sub, "cluster", "run a standalone Flink cluster with the web UI on :8081",
                   "flowattr cluster start --slots 4")
    csub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    pc = _subparser(csub, "start", "start JobManager + TaskManager(s)",
                    "flowattr cluster start --taskmanagers 2 --slots 1")
    pc.add_argument("--slots", type=int, default=4, help="task slots per TaskManager (default 4)")
    pc.add_argument("--taskmanagers", type=int, default=1,
                    help="TaskManager JVMs (default 1); Python (thread mode) scales with these, one GIL each")
    _subparser(csub, "stop", "stop the cluster", "flowattr cluster stop")
    _subparser(csub, "status", "show the cluster overview", "flowattr cluster status")


def _add_submit_parsers(sub) -> None:
    """The `flowattr submit` sub-commands."""
    p = _subparser(sub, "submit", "submit a job to the standalone cluster (flink run -py)",
                   "flowattr submit flink_jobs/wiring_job.py -- --bootstrap 127.0.0.1:9092 "
                   "--input flows.us-east-1 --output wiring.us-east-1 "
                   "--dead-letter deadletter.us-east-1")
    p.add_argument("job", type=Path, help="path of the job's Python file")
    p.add_argument("job_args", nargs=argparse.REMAINDER, help="arguments for the job, after --")


def _add_tail_parsers(sub) -> None:
    """The `flowattr tail` sub-commands."""
    p = _subparser(sub, "tail", "print a topic's records as JSON lines (one line per flow)",
                   "flowattr tail attributed.us-east-1 --max 20")
    _add_bootstrap(p)
    p.add_argument("topic")
    p.add_argument("--max", type=int, default=0, help="stop after N lines (0: no limit)")
    p.add_argument("--idle", type=float, default=5.0,
                   help="stop after this many seconds without new records (default 5)")


def _add_simulate_evaluate_parsers(sub) -> None:
    """The `flowattr simulate` and `flowattr evaluate` sub-commands."""
    p = _subparser(sub, "simulate", "simulate a fleet (deterministic from --seed): batches, "
                   "IP-change events and ground truth, to files or Kafka",
                   "flowattr simulate --seed 7 --minutes 10 --out sim/   "
                   "(or --bootstrap 127.0.0.1:9092 --truth sim/truth.npz)")
    _add_scenario_flags(p)
    p.add_argument("--out", type=Path, help="write batches.bin, events.bin, truth.npz, scenario.json here")
    p.add_argument("--bootstrap", help="produce to flows.<region> and ipchanges.us-east-1 on this broker")
    p.add_argument("--truth", type=Path, help="with --bootstrap: where to write truth.npz")
    _add_evaluate_parser(sub)


def _add_exporter_ipmap_parsers(sub) -> None:
    """The `flowattr exporter` and `flowattr ipmap` sub-commands."""
    _add_exporter_parser(sub)
    p = _subparser(sub, "ipmap", "write the local-attribution BPF maps (the IP-assignment agent's side)",
                   "flowattr ipmap assign 10.2.0.7 checkout   |   flowattr ipmap assign-port 10.0.0.5 40001 search")
    isub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    pa = _subparser(isub, "assign", "IP -> workload", "flowattr ipmap assign 10.2.0.7 checkout")
    pa.add_argument("ip")
    pa.add_argument("workload")
    pa = _subparser(isub, "release", "forget an IP", "flowattr ipmap release 10.2.0.7")
    pa.add_argument("ip")
    pa = _subparser(isub, "assign-port", "(local IPv4, local port) -> workload, for translated sockets",
                    "flowattr ipmap assign-port 10.0.0.5 40001 search")
    pa.add_argument("ip")
    pa.add_argument("port", type=int)
    pa.add_argument("workload")
    pa = _subparser(isub, "release-port", "forget a translated socket", "flowattr ipmap release-port 10.0.0.5 40001")
    pa.add_argument("ip")
    pa.add_argument("port", type=int)


def _add_bench_parsers(sub) -> None:
    """The `flowattr bench` sub-commands."""
    p = _subparser(sub, "bench", "measure throughput, latency, state size and exporter overhead; "
                   "print a table and write bench/results.json", "flowattr bench --e2e-flows 20000000")
    p.add_argument("--port", type=int, default=9192, help="broker port for the benchmark (default 9192)")
    p.add_argument("--e2e-flows", type=int, default=20_000_000, help="flows pre-loaded for the e2e run")
    p.add_argument("--busy-factor", type=float, default=20,
                   help="connection rates x this in the throughput runs: busy hosts, large batches (default 20)")
    p.add_argument("--parallelism", type=int, default=2)
    p.add_argument("--latency-s", type=float, default=60, help="seconds of live traffic for the latency run")
    p.add_argument("--latency-hold-s", type=float, default=10, help="hold used in the latency run")
    p.add_argument("--exporter-s", type=float, default=20, help="seconds of 1k conn/s for the exporter run")
    p.add_argument("--only", action="append", choices=["limit", "state", "e2e", "latency", "exporter"],
                   help="run only these parts (repeatable); results merge into the JSON")
    p.add_argument("--out", type=Path, default=Path("bench/results.json"))


def _add_demo_parsers(sub) -> None:
    """The `flowattr demo` sub-commands."""
    p = _subparser(sub, "demo", "run the embedded stack end to end and print the report",
                   "flowattr demo --json")
    p.add_argument("--port", type=int, default=9092, help="broker port (default 9092)")
    p.add_argument("--seed", type=int, default=7, help="simulator seed (default 7)")
    p.add_argument("--minutes", type=int, default=5, help="simulated minutes of traffic (default 5)")
    p.add_argument("--source", choices=["auto", "ebpf", "simulator"], default="auto",
                   help="auto (default): real eBPF capture between namespace hosts when available, else simulator")
    p.add_argument("--traffic-s", type=float, default=40, help="eBPF demo: seconds of traffic (default 40)")
    p.add_argument("--keep-running", action="store_true",
                   help="leave the broker running afterwards, to inspect topics")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _cmd_broker(args) -> int:
    from flowattr import broker
    state = paths.state_dir(args.state_dir)
    if args.action == "start":
        st = broker.start(state, args.port)
        print(f"broker running: bootstrap {st.bootstrap} (pid {st.pid}); stop: flowattr broker stop")
    elif args.action == "stop":
        print("broker stopped" if broker.stop(state) else "broker was not running")
    else:
        st = broker.status(state)
        print(f"broker running on {st.bootstrap} (pid {st.pid}), log {st.log}" if st.running
              else "broker not running; start it: flowattr broker start")
        return 0 if st.running else 3
    return 0


def _cmd_topics(args) -> int:
    from flowattr import topics
    if args.action == "create":
        topics.create_topics(_bootstrap(args), args.region or [DEFAULT_REGION])
    else:
        from kafka.admin import KafkaAdminClient
        admin = KafkaAdminClient(bootstrap_servers=_bootstrap(args))
        for name in sorted(admin.list_topics()):
            print(name)
        admin.close()
    return 0


def _cmd_cluster(args) -> int:
    from flowattr import flink_cluster
    state = paths.state_dir(args.state_dir)
    if args.action == "start":
        flink_cluster.start(state, args.slots, taskmanagers=args.taskmanagers)
    elif args.action == "stop":
        flink_cluster.stop(state)
    else:
        if not flink_cluster.is_running():
            print("Flink cluster not running; start it: flowattr cluster start")
            return 3
        print(json.dumps(flink_cluster.rest_get("/overview"), indent=2))
    return 0


def _cmd_submit(args) -> int:
    from flowattr import flink_cluster
    job_args = args.job_args[1:] if args.job_args[:1] == ["--"] else args.job_args
    flink_cluster.submit(paths.state_dir(args.state_dir), args.job.resolve(), job_args)
    return 0


def _cmd_tail(args) -> int:
    from flowattr.kafka_clients import iter_topic
    from flowattr.render import records_as_dicts
    printed = 0
    for batch in iter_topic(_bootstrap(args), args.topic, idle_timeout_s=args.idle,
                            max_wait_s=float("inf")):
        for value in batch:
            for row in records_as_dicts(args.topic, value):
                print(json.dumps(row), flush=False)
                printed += 1
                if args.max and printed >= args.max:
                    return 0
        sys.stdout.flush()
    return 0


def _progress(*parts, end="\n"):
    print(*parts, end=end, file=sys.stderr, flush=True)


def _cmd_simulate(args) -> int:
    from flowattr import simulate
    if not args.out and not args.bootstrap:
        raise RuntimeError("say where to write: --out DIR, or --bootstrap HOST:PORT --truth FILE")
    scenario = _scenario(args)
    fleet = simulate.build_fleet(scenario)
    flows = simulate.simulate_flows(fleet)
    deliveries = simulate.batch_flows(fleet, flows)
    _progress(f"{len(flows.cols):,} flow records, {len(deliveries):,} batches, {len(fleet.events):,} events")
    if args.out:
        simulate.write_files(args.out, fleet, flows, deliveries)
        _progress(f"wrote {args.out}/batches.bin, events.bin, truth.npz, scenario.json")
    if args.bootstrap:
        sent = simulate.produce_to_kafka(args.bootstrap, fleet, flows, deliveries, progress=_progress)
        truth = args.truth or Path("truth.npz")
        simulate.write_truth(truth, fleet, flows, deliveries)
        _progress(f"produced {sent:,} batches and {len(fleet.events):,} events; truth in {truth}")
    return 0


def _cmd_evaluate(args) -> int:
    from flowattr import evaluate
    from flowattr.simulate import HOME_REGION, REMOTE_REGION
    if args.score_topics:
        report = evaluate.score_topics(_bootstrap(args), args.score_topics, args.region or [HOME_REGION, REMOTE_REGION],
                                       progress=_progress)
        print(json.dumps(report) if args.json else "\n".join(f"{k:<22} {v}" for k, v in report.items()))
        return 0
    cfg = evaluate.default_config()
    if "settledness" in args.without:
        cfg = replace(cfg, require_settled_evidence=False)
    report = evaluate.evaluate(_profile_scenario(args), cfg, progress=_progress)
    _progress("")
    print(json.dumps(report) if args.json else evaluate.format_table(report))
    return 0


def _host_local_cidrs(args) -> tuple[str, ...]:
    from schemas.addresses import HOST_LOCAL_CIDRS
    if args.export_host_local:
        return ()
    return tuple(args.host_local_cidr) if args.host_local_cidr else HOST_LOCAL_CIDRS


def _cmd_exporter(args) -> int:
    import logging
    import socket

    from exporter import agent
    from exporter.probe import EbpfUnavailable
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    host = socket.gethostname()
    cfg = agent.ExporterConfig(bootstrap=args.bootstrap, region=args.region, exporter_id=args.exporter_id or host,
                               host=host, window_s=args.window_s, identity_file=args.identity_file,
                               spool_dir=args.spool_dir, spool_max_bytes=args.spool_max_mb * 1024 * 1024,
                               local_cidrs=tuple(args.local_cidr), duration_s=args.duration_s,
                               host_local_cidrs=_host_local_cidrs(args))
    try:
        print(json.dumps(agent.run(cfg)))
    except EbpfUnavailable as exc:
        raise RuntimeError(f"eBPF capture is unavailable here: {exc}") from exc
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
    except (ipmap.IpMapError, ValueError) as exc:
        raise RuntimeError(str(exc)) from exc
    return 0


def _cmd_bench(args) -> int:
    from flowattr import bench
    cfg = bench.BenchConfig(state=paths.state_dir(args.state_dir), port=args.port, e2e_flows=args.e2e_flows,
                            busy_factor=args.busy_factor, parallelism=args.parallelism, latency_s=args.latency_s,
                            latency_hold_s=args.latency_hold_s, exporter_s=args.exporter_s, out=args.out)
    results = bench.run(cfg, _progress, args.only)
    print(bench.format_table(results))
    _progress(f"saved {args.out}")
    return 0


def _cmd_demo(args) -> int:
    from flowattr import demo
    cfg = demo.DemoConfig(state=paths.state_dir(args.state_dir), port=args.port, seed=args.seed,
                          minutes=args.minutes, keep_running=args.keep_running, as_json=args.json,
                          source=args.source, traffic_s=args.traffic_s)
    demo.print_report(demo.run(cfg), args.json)
    return 0


COMMANDS = {"broker": _cmd_broker, "topics": _cmd_topics, "cluster": _cmd_cluster,
            "submit": _cmd_submit, "tail": _cmd_tail, "demo": _cmd_demo,
            "simulate": _cmd_simulate, "evaluate": _cmd_evaluate, "exporter": _cmd_exporter,
            "ipmap": _cmd_ipmap, "bench": _cmd_bench}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (PortInUseError, paths.SetupError, RuntimeError) as exc:
        print(f"flowattr {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
