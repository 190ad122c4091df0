"""flowattr: eBPF TCP flow logs to a trustworthy workload dependency graph.

cli/ is the command line, stack/ the embedded broker and Flink cluster, lab/ the simulator,
evaluation, benchmarks and demos."""
