"""`flowattr broker|topics|cluster|submit|job`: the embedded stack's commands."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from flink_jobs.job_config import default_regions
from flowattr.cli.common import action_parsers, add_bootstrap, bootstrap, subparser
from flowattr.stack import paths


def _add_broker(sub) -> None:
    bsub = action_parsers(sub, "broker", "run the embedded Kafka-compatible broker (tansu)",
                          "flowattr broker start --port 9092")
    ps = subparser(bsub, "start", "start the broker on 127.0.0.1", "flowattr broker start")
    ps.add_argument("--port", type=int, default=9092, help="listen port (default 9092)")
    subparser(bsub, "stop", "stop the broker (its data is lost: memory storage)", "flowattr broker stop")
    subparser(bsub, "status", "say whether the broker runs, and where", "flowattr broker status")


def _add_topics(sub) -> None:
    tsub = action_parsers(sub, "topics", "manage the project's Kafka topics",
                          "flowattr topics create --region us-east-1 --region eu-west-1")
    pt = subparser(tsub, "create", "create every topic of the given regions (idempotent)",
                   "flowattr topics create --region us-east-1")
    add_bootstrap(pt)
    pt.add_argument("--region", action="append", help=f"region (repeatable; default {default_regions()[0]})")
    pt = subparser(tsub, "list", "list topics on the broker", "flowattr topics list")
    add_bootstrap(pt)


def _add_cluster(sub) -> None:
    csub = action_parsers(sub, "cluster", "run a standalone Flink cluster with the web UI on :8081",
                          "flowattr cluster start --slots 4")
    pc = subparser(csub, "start", "start JobManager + TaskManager(s)",
                   "flowattr cluster start --taskmanagers 2 --slots 1")
    pc.add_argument("--slots", type=int, default=4, help="task slots per TaskManager (default 4)")
    pc.add_argument("--taskmanagers", type=int, default=1,
                    help="TaskManager JVMs (default 1); Python (thread mode) scales with these, one GIL each")
    subparser(csub, "stop", "stop the cluster", "flowattr cluster stop")
    subparser(csub, "status", "show the cluster overview", "flowattr cluster status")


def _add_submit(sub) -> None:
    p = subparser(sub, "submit", "submit a job to the standalone cluster (flink run -py)",
                  "flowattr submit flink_jobs/attribution_job.py -- --bootstrap 127.0.0.1:9092 "
                  "--region us-east-1 --parallelism 2")
    p.add_argument("job", type=Path, help="path of the job's Python file")
    p.add_argument("job_args", nargs=argparse.REMAINDER, help="arguments for the job, after --")


def _add_job(sub) -> None:
    jsub = action_parsers(sub, "job", "the standalone cluster's jobs: list, stop with a savepoint, resume from one",
                          "flowattr job stop JOB_ID --savepoint /var/lib/flowattr/savepoints\n"
                          "  flowattr job resume --from file:///var/lib/flowattr/savepoints/savepoint-3f2a-... \\\n"
                          "      -- --bootstrap 127.0.0.1:9092 --region us-east-1\n\n"
                          "An upgrade: stop with a savepoint (the held flows, the learned ownership and the\n"
                          "Kafka offsets), install the new version, resume with the same job arguments.\n"
                          "Every operator has a uid, so the state maps back (README, 'Upgrades with savepoints').")
    subparser(jsub, "list", "list the cluster's jobs (id, state, name)", "flowattr job list")
    ps = subparser(jsub, "stop", "stop a job with a savepoint; prints the savepoint's path",
                   "flowattr job stop 3f2a... --savepoint /tmp/flowattr-savepoints")
    ps.add_argument("job_id", help="the job's id (flowattr job list)")
    ps.add_argument("--savepoint", required=True, help="directory (or file:// URI) the savepoint is written under")
    pr = subparser(jsub, "resume", "submit the collector again from a savepoint (flink run -s)",
                   "flowattr job resume --from file:///tmp/flowattr-savepoints/savepoint-3f2a-1b2c3d "
                   "-- --bootstrap 127.0.0.1:9092 --region us-east-1")
    pr.add_argument("--from", dest="savepoint", required=True,
                    help="the savepoint's path, as `flowattr job stop` printed it")
    pr.add_argument("--allow-non-restored-state", action="store_true",
                    help="resume even if the savepoint holds state of operators this version no longer has "
                    "(Flink's -n): that state is dropped. Needed across the upgrades the README lists under "
                    "'Upgrades with savepoints'; read what each drops there first")
    pr.add_argument("--job", type=Path, help="the job's Python file (default: the installed collector, "
                    "flink_jobs/attribution_job.py)")
    pr.add_argument("job_args", nargs=argparse.REMAINDER, help="the job's arguments, after -- (as at its first start)")


def _cmd_job(args) -> int:
    from flowattr.stack import flink_cluster
    if args.action == "list":
        for job in flink_cluster.list_jobs():
            print(f"{job['id']}  {job['state']:<10} {job['name']}")
    elif args.action == "stop":
        target = args.savepoint if "://" in args.savepoint else Path(args.savepoint).resolve().as_uri()
        print(flink_cluster.stop_with_savepoint(args.job_id, target))
    else:
        import flink_jobs
        job = (args.job or Path(flink_jobs.__file__).parent / "attribution_job.py").resolve()
        job_args = args.job_args[1:] if args.job_args[:1] == ["--"] else args.job_args
        print(flink_cluster.submit(paths.state_dir(args.state_dir), job, job_args, from_savepoint=args.savepoint,
                                   allow_non_restored_state=args.allow_non_restored_state))
    return 0


def _cmd_broker(args) -> int:
    from flowattr.stack import broker
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
    from flowattr.stack import topics
    if args.action == "create":
        topics.create_topics(bootstrap(args), args.region or [default_regions()[0]])
    else:
        from kafka.admin import KafkaAdminClient
        admin = KafkaAdminClient(bootstrap_servers=bootstrap(args))
        for name in sorted(admin.list_topics()):
            print(name)
        admin.close()
    return 0


def _cmd_cluster(args) -> int:
    from flowattr.stack import flink_cluster
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
    from flowattr.stack import flink_cluster
    job_args = args.job_args[1:] if args.job_args[:1] == ["--"] else args.job_args
    flink_cluster.submit(paths.state_dir(args.state_dir), args.job.resolve(), job_args)
    return 0


# command -> (adds its parser, runs it)
COMMANDS = {"broker": (_add_broker, _cmd_broker), "topics": (_add_topics, _cmd_topics),
            "cluster": (_add_cluster, _cmd_cluster), "submit": (_add_submit, _cmd_submit),
            "job": (_add_job, _cmd_job)}
