"""`flowattr simulate|evaluate|bench|demo`: the simulator, the evaluation against ground
truth, the benchmarks and the demo."""

from __future__ import annotations

import argparse
import json
from dataclasses import fields, replace
from pathlib import Path

from flowattr.cli.common import add_bootstrap, bootstrap, progress, subparser
from flowattr.stack import paths
from schemas.errors import FlowattrError


def _add_scenario_flags(p: argparse.ArgumentParser, from_profile: bool = False) -> None:
    """One flag per FleetScenario knob. With `from_profile`, a flag given overrides the
    --profile's value and an absent one leaves it (no default is set in args)."""
    from flowattr.lab.simulate import FleetScenario
    for f in fields(FleetScenario):
        p.add_argument("--" + f.name.replace("_", "-"), type=type(f.default),
                       default=argparse.SUPPRESS if from_profile else f.default,
                       choices=("routes", "any") if f.name == "lb_targets" else None,
                       help=f"scenario knob (default: the profile's; {f.default} in 'default')" if from_profile
                       else f"scenario knob (default {f.default})")


def _scenario(args):
    from flowattr.lab.simulate import FleetScenario
    return FleetScenario(**{f.name: getattr(args, f.name) for f in fields(FleetScenario)})


def _profile_scenario(args):
    """The --profile's scenario for --seed and --minutes, with the knobs given as flags."""
    from flowattr.lab.simulate import profile
    sc = profile(args.profile, getattr(args, "seed", 7), getattr(args, "minutes", None))
    return replace(sc, **{f.name: getattr(args, f.name) for f in fields(sc) if hasattr(args, f.name)})


def _add_simulate(sub) -> None:
    p = subparser(sub, "simulate", "simulate a fleet (deterministic from --seed): batches, "
                  "IP-change events and ground truth, to files or Kafka",
                  "flowattr simulate --seed 7 --minutes 10 --out sim/   "
                  "(or --bootstrap 127.0.0.1:9092 --truth sim/truth.npz)")
    _add_scenario_flags(p)
    p.add_argument("--out", type=Path, help="write batches.bin, events.bin, truth.npz, scenario.json here")
    p.add_argument("--bootstrap", help="produce to flows.<region> and ipchanges.<region> on this broker")
    p.add_argument("--truth", type=Path, help="with --bootstrap: where to write truth.npz")


def _add_evaluate(sub) -> None:
    from flowattr.lab.simulate import PROFILES
    p = subparser(sub, "evaluate", "score heartbeat attribution and two event-based baselines "
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
    add_bootstrap(p)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not at least 1")
    return value


def _add_bench(sub) -> None:
    p = subparser(sub, "bench", "measure throughput, latency, state size and exporter overhead; "
                  "print a table and write bench/results.json", "flowattr bench --e2e-flows 20000000")
    p.add_argument("--port", type=int, default=9192, help="broker port for the benchmark (default 9192)")
    p.add_argument("--e2e-flows", type=int, default=20_000_000, help="flows pre-loaded for the e2e run")
    p.add_argument("--e2e-bound-s", type=float, default=900,
                   help="an e2e run that has not given every flow an outcome by then fails (exit 2, "
                   "e2e_complete: false, no throughput; default 900)")
    p.add_argument("--busy-factor", type=float, default=20,
                   help="connection rates x this in the throughput runs: busy hosts, large batches (default 20)")
    p.add_argument("--parallelism", type=int, default=2)
    p.add_argument("--repeat", type=positive_int, default=3,
                   help="runs of the limit and e2e figures, alternating; each reported as median, min, max (default 3)")
    p.add_argument("--latency-s", type=float, default=60, help="seconds of live traffic for the latency run")
    p.add_argument("--latency-hold-s", type=float, default=10, help="hold used in the latency run")
    p.add_argument("--exporter-s", type=float, default=20, help="seconds of 1k conn/s for the exporter run")
    p.add_argument("--growth-e2e-flows", type=int, default=3_000_000,
                   help="the fleet's flows in each growth_e2e run (default 3,000,000)")
    p.add_argument("--growth-e2e-ips", type=positive_int, action="append",
                   help="IPs the job learns before a growth_e2e run (repeatable; default 10,000, 1,000,000 and "
                   "10,000,000)")
    p.add_argument("--only", action="append", choices=["limit", "state", "growth", "e2e", "e2e_rocksdb", "growth_e2e",
                                                         "latency", "exporter"],
                   help="run only these parts (repeatable); results merge into the JSON")
    p.add_argument("--out", type=Path, default=Path("bench/results.json"))


def _add_reliability(sub) -> None:
    p = subparser(sub, "reliability", "fuzz every input topic and kill -9 TaskManagers of the collector on the "
                  "standalone cluster; print a table and write bench/reliability.json",
                  "flowattr reliability   (small: --fuzz-records 3000 --kills 1 --minutes 3 --backlog-minutes 1 "
                  "--outage-s 10)")
    p.add_argument("--port", type=int, default=9292, help="broker port for the run (default 9292)")
    p.add_argument("--fuzz-records", type=int, default=100_000, help="malformed records (default 100000)")
    p.add_argument("--kills", type=int, default=3, help="TaskManager kills (default 3)")
    p.add_argument("--minutes", type=int, default=6, help="simulated minutes of fleet traffic (default 6)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--backlog-minutes", type=int, default=10, help="backlog phase: minutes of traffic waiting in "
                   "Kafka before the job starts (default 10; 0 skips the phase)")
    p.add_argument("--backlog-factor", type=float, default=5.0, help="the backlog's rate x this (default 5)")
    p.add_argument("--outage-s", type=float, default=60, help="exporter phase: seconds the broker is unreachable "
                   "(default 60; 0 skips; root: eBPF and iptables)")
    p.add_argument("--out", type=Path, default=Path("bench/reliability.json"))
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _add_demo(sub) -> None:
    p = subparser(sub, "demo", "run the embedded stack end to end and print the report", "flowattr demo --json")
    p.add_argument("--port", type=int, default=9092, help="broker port (default 9092)")
    p.add_argument("--seed", type=int, default=7, help="simulator seed (default 7)")
    p.add_argument("--minutes", type=int, default=5, help="simulated minutes of traffic (default 5)")
    p.add_argument("--source", choices=["auto", "ebpf", "simulator"], default="auto",
                   help="auto (default): real eBPF capture between namespace hosts when available, else simulator")
    p.add_argument("--traffic-s", type=float, default=40, help="eBPF demo: seconds of traffic (default 40)")
    p.add_argument("--keep-running", action="store_true", help="leave the broker running afterwards, to inspect topics")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _cmd_simulate(args) -> int:
    from flowattr.lab import simulate
    if not args.out and not args.bootstrap:
        raise FlowattrError("say where to write: --out DIR, or --bootstrap HOST:PORT --truth FILE")
    fleet = simulate.build_fleet(_scenario(args))
    flows = simulate.simulate_flows(fleet)
    deliveries = simulate.batch_flows(fleet, flows)
    progress(f"{len(flows.cols):,} flow records, {len(deliveries):,} batches, {len(fleet.events):,} events")
    if args.out:
        simulate.write_files(args.out, fleet, flows, deliveries)
        progress(f"wrote {args.out}/batches.bin, events.bin, truth.npz, scenario.json")
    if args.bootstrap:
        sent = simulate.produce_to_kafka(args.bootstrap, fleet, flows, deliveries, progress=progress)
        truth = args.truth or Path("truth.npz")
        simulate.write_truth(truth, fleet, flows, deliveries)
        progress(f"produced {sent:,} batches and {len(fleet.events):,} events; truth in {truth}")
    return 0


def _cmd_evaluate(args) -> int:
    from flowattr.lab import evaluate
    from flowattr.lab.simulate import HOME_REGION, REMOTE_REGION
    if args.score_topics:
        report = evaluate.score_topics(bootstrap(args), args.score_topics, args.region or [HOME_REGION, REMOTE_REGION],
                                       progress=progress)
        print(json.dumps(report) if args.json else "\n".join(f"{k:<22} {v}" for k, v in report.items()))
        return 0
    cfg = evaluate.default_config()
    if "settledness" in args.without:
        cfg = replace(cfg, require_settled_evidence=False)
    report = evaluate.evaluate(_profile_scenario(args), cfg, progress=progress)
    progress("")
    print(json.dumps(report) if args.json else evaluate.format_table(report))
    return 0


def _cmd_bench(args) -> int:
    from flowattr.lab import bench
    cfg = bench.BenchConfig(state=paths.state_dir(args.state_dir), port=args.port, e2e_flows=args.e2e_flows,
                            busy_factor=args.busy_factor, parallelism=args.parallelism, latency_s=args.latency_s,
                            latency_hold_s=args.latency_hold_s, exporter_s=args.exporter_s, out=args.out,
                            e2e_bound_s=args.e2e_bound_s, repeat=args.repeat, growth_e2e_flows=args.growth_e2e_flows,
                            growth_e2e_ips=tuple(args.growth_e2e_ips or bench.GROWTH_E2E_IPS))
    results = bench.run(cfg, progress, args.only)
    print(bench.format_table(results))
    progress(f"saved {args.out}")
    return 0


def _cmd_reliability(args) -> int:
    from flowattr.lab import reliability
    cfg = reliability.ReliabilityConfig(state=paths.state_dir(args.state_dir), port=args.port,
                                        fuzz_records=args.fuzz_records, kills=args.kills, minutes=args.minutes,
                                        seed=args.seed, backlog_minutes=args.backlog_minutes,
                                        backlog_factor=args.backlog_factor, outage_s=args.outage_s, out=args.out)
    report = reliability.run(cfg, progress)
    print(json.dumps(report) if args.json else reliability.format_table(report))
    progress(f"saved {args.out}")
    return 0 if report["ok"] else 1


def _cmd_demo(args) -> int:
    from flowattr.lab import demo
    cfg = demo.DemoConfig(state=paths.state_dir(args.state_dir), port=args.port, seed=args.seed,
                          minutes=args.minutes, keep_running=args.keep_running, as_json=args.json,
                          source=args.source, traffic_s=args.traffic_s)
    demo.print_report(demo.run(cfg), args.json)
    return 0


# command -> (adds its parser, runs it)
COMMANDS = {"simulate": (_add_simulate, _cmd_simulate), "evaluate": (_add_evaluate, _cmd_evaluate),
            "bench": (_add_bench, _cmd_bench), "reliability": (_add_reliability, _cmd_reliability),
            "demo": (_add_demo, _cmd_demo)}
