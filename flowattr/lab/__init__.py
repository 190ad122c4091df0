"""The lab: the fleet simulator with ground truth, the evaluation that scores the engine and
the job against it, the benchmarks and the demos."""

# The lab's collectors are given a short simulated fleet's batches at once (the eBPF demo:
# two local exporters), and every subnet in it is new: they go without the new-subnet wait
# (the attribution setting new_subnet_ms, 15 min of the fleet's event time), which would
# hold most heartbeat attributions of their short runs. `flowattr evaluate` runs the
# engine with the wait, and tests/unit/test_new_subnets.py attacks it.
NO_NEW_SUBNET_WAIT = ["--new-subnet-ms", "0"]
